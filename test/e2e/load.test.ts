/**
 * pasta under hostile load, end to end in the made test namespace (the
 * host side is the test process; 192.0.2.2 is its non-loopback address, so
 * connections to forwarded ports go over the tap and take flows).
 * - A forwarded port whose connection cannot be taken must not make pasta
 *   spin: flow table full (PASST_TS_FLOW_MAX) and no descriptor left
 *   (`prlimit --nofile` on the running pasta); counted, and the port works
 *   again afterwards.
 * - Floods (test/scripts/flood.py, in pasta's namespace and from the
 *   host): raw SYNs namespace → host, a connect loop host → forwarded
 *   port, UDP to 2000 ports, echo requests with 2000 identifiers.
 *   Meanwhile an established connection is not starved (its slowdown is
 *   logged: issue 13's goal of 2x is far from met on two shared cores),
 *   the flow tables stay within their (lowered) size with the excess
 *   counted; afterwards flows expire, descriptors and memory come back and
 *   the connection is back within twice its unloaded time.
 * Ports 18010–18099.
 */
import anyTest, { TestFn } from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { inTestNs, NOT_IN_NS, run, sleep, waitFor } from '../helpers/env';
import { startPasta, PastaNs } from '../helpers/pastaNs';
import { controlRequest } from '../../src/main/control/client';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('end-to-end load tests', (t) => t.pass(NOT_IN_NS));

const HOST4 = '192.0.2.2';
const QUIET = ['-u', 'none', '-T', 'none', '-U', 'none'];
const TICK_MS = 1000 / 100; // USER_HZ

/** CPU time (ms) a process and all its threads used so far. */
function cpuMs(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

/** CPU share (0..cores) of pid over ms milliseconds. */
async function cpuShare(pid: number, ms: number): Promise<number> {
  const c0 = cpuMs(pid);
  const t0 = performance.now();
  await sleep(ms);
  return (cpuMs(pid) - c0) / (performance.now() - t0);
}

function socketPath(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passt-ts-load-'));
  return path.join(dir, 'control.sock');
}

async function tcpCounters(sock: string): Promise<Record<string, number>> {
  const a = await controlRequest(sock, { cmd: 'stats' });
  if (!a.ok) throw new Error(String(a.error));
  return (a.workers as Record<string, Record<string, number>>).tcp0;
}

/** A connection that has echoed `msg` back (or the error it got). */
function echoOnce(host: string, port: number, msg: string, timeoutMs = 5000): Promise<{ sock: net.Socket | null; err: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let got = '';
    const done = (err: string): void => {
      clearTimeout(t);
      s.removeAllListeners('data');
      if (err) s.destroy();
      resolve({ sock: err ? null : s, err });
    };
    const t = setTimeout(() => done('timeout'), timeoutMs);
    s.on('connect', () => s.write(msg));
    s.on('data', (d) => { got += d.toString(); if (got === msg) done(''); });
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    s.on('close', () => done(got === msg ? '' : 'closed'));
  });
}

async function withPasta(args: string[], env: NodeJS.ProcessEnv, fn: (ns: PastaNs, sock: string) => Promise<void>): Promise<void> {
  const sock = socketPath();
  const ns = await startPasta(['--control', sock, ...QUIET, ...args], env);
  try {
    await fn(ns, sock);
  } finally {
    await ns.stop();
  }
}

e2e('flow table full: the forwarded port is not polled in a loop, the connection waits, then is served', async (t) => {
  await withPasta(['-t', '18010'], { PASST_TS_FLOW_MAX: '2' }, async (ns, sock) => {
    await ns.tool(['echo', '0.0.0.0', '18010']);
    const pid = ns.child.pid as number;
    const a = await echoOnce(HOST4, 18010, 'one');
    const b = await echoOnce(HOST4, 18010, 'two');
    t.is(a.err, '');
    t.is(b.err, '');
    // the third connection completes in the kernel's backlog, and waits there
    const third = echoOnce(HOST4, 18010, 'three', 15000);
    await sleep(300);
    const share = await cpuShare(pid, 1500);
    t.true(share < 0.3, `pasta used ${(share * 100).toFixed(0)} % of a core with a connection waiting`);
    const c = await tcpCounters(sock);
    t.is(c.active, 2);
    t.true(c.acceptPaused >= 1, `acceptPaused ${c.acceptPaused}`);
    t.is(c.accepted, 2);
    // a flow ends: the waiting connection gets its turn
    a.sock?.end();
    const r = await third;
    t.is(r.err, '', 'served once a flow was free');
    t.is((await tcpCounters(sock)).accepted, 3);
    b.sock?.destroy();
    r.sock?.destroy();
  });
});

e2e('no descriptor left (RLIMIT_NOFILE of the running pasta): connections are reset at once, no spinning, then served again', async (t) => {
  await withPasta(['-t', '18011'], {}, async (ns, sock) => {
    await ns.tool(['echo', '0.0.0.0', '18011']);
    const pid = ns.child.pid as number;
    t.is((await echoOnce(HOST4, 18011, 'before')).err, '');
    await sleep(200);
    const fds = fs.readdirSync(`/proc/${pid}/fd`).map(Number);
    const limit = Math.max(...fds) + 1;
    const holes = limit - fds.length;
    const soft = /Max open files\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1] ?? '65536';
    // the soft limit only: raising it again needs nothing
    const lowered = await run('prlimit', [`--pid=${pid}`, `--nofile=${limit}:`]);
    t.is(lowered.code, 0, lowered.stderr);
    try {
      // past the holes below the limit, every connection is refused with a reset
      const tries = holes + 6;
      const res = await Promise.all(Array.from({ length: tries }, (_, i) => echoOnce(HOST4, 18011, `x${i}`, 8000)));
      const reset = res.filter((r) => r.err === 'ECONNRESET' || r.err === 'closed').length;
      for (const r of res) r.sock?.destroy();
      t.true(reset >= 6, `${reset} of ${tries} refused (${res.map((r) => r.err || 'ok').join(' ')})`);
      t.false(res.some((r) => r.err === 'timeout'), 'none left hanging');
      // a connection still arriving keeps nothing spinning either
      const share = await cpuShare(pid, 1000);
      t.true(share < 0.3, `pasta used ${(share * 100).toFixed(0)} % of a core`);
      const c = await tcpCounters(sock).catch(() => null);
      if (c) t.true(c.acceptDropped >= 6, `acceptDropped ${c.acceptDropped}`);
    } finally {
      const back = await run('prlimit', [`--pid=${pid}`, `--nofile=${soft}:`]);
      t.is(back.code, 0, back.stderr);
    }
    // descriptors back: served again (the spare is reopened on the way)
    let lastErr = '';
    const after = await waitFor(async () => {
      const r = await echoOnce(HOST4, 18011, 'after');
      r.sock?.destroy();
      lastErr = r.err;
      return r.err === '';
    }, 5000, 200);
    t.truthy(after, `served again once descriptors are available (${lastErr})`);
    const c = await tcpCounters(sock);
    t.true(c.acceptDropped >= 6, `acceptDropped ${c.acceptDropped}`);
    t.true(c.acceptErrors >= c.acceptDropped);
  });
});
/** Bytes echoed on one long-lived connection: time for `bytes` to go there and back (ms). */
class EchoConn {
  private got = 0;
  private waiters: { want: number; done: () => void }[] = [];
  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.got += d.length;
      this.waiters = this.waiters.filter((w) => (this.got >= w.want ? (w.done(), false) : true));
    });
  }
  static async open(host: string, port: number): Promise<EchoConn> {
    const s = net.connect({ host, port });
    await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
    return new EchoConn(s);
  }
  async round(bytes: number, timeoutMs = 60000): Promise<number> {
    const t0 = performance.now();
    const want = this.got + bytes;
    const chunk = Buffer.alloc(1 << 16, 0x5a);
    const done = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`echo: ${this.got - (want - bytes)} of ${bytes} bytes back`)), timeoutMs);
      this.waiters.push({ want, done: () => { clearTimeout(t); resolve(); } });
    });
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      if (!this.sock.write(chunk.subarray(0, Math.min(chunk.length, bytes - sent)))) {
        await new Promise((r) => this.sock.once('drain', r));
      }
    }
    await done;
    return performance.now() - t0;
  }
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}
const fdCount = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length;

const FLOOD = path.join(__dirname, '..', '..', '..', 'test', 'scripts', 'flood.py');
const SYNS = Number(process.env.PASST_TS_FLOOD_SYNS ?? 100_000);
/** Connections host → forwarded port (100 000 take about 50 s of a core in flood.py). */
const CONNECTS = Number(process.env.PASST_TS_FLOOD_CONNECTS ?? 20_000);
/** Datagrams to 2000 ports, and ICMP echo requests (perf/hostile.sh sets any of the four to 0 to measure one flood alone). */
const UDPS = Number(process.env.PASST_TS_FLOOD_UDP ?? 100_000);
const PINGS = Number(process.env.PASST_TS_FLOOD_PINGS ?? 50_000);
const FLOW_LIMIT = 1024;

e2e(`floods (${SYNS} SYNs namespace → host, ${CONNECTS} connections host → forwarded port, ${UDPS} datagrams to 2000 ports, ${PINGS} pings): an existing transfer is not starved, flows bounded and counted, resources come back`, async (t) => {
  // host side: a server the namespace's SYNs reach (gateway → host loopback), dropping every connection
  const sink = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => sink.listen({ host: '127.0.0.1', port: 18022, backlog: 4096 }, r));
  try {
    await withPasta(['-t', '18020,18021'], {
      PASST_TS_FLOW_MAX: String(FLOW_LIMIT), PASST_TS_UDP_TIMEOUT_MS: '2000', PASST_TS_PING_TIMEOUT_MS: '2000',
    }, async (ns, sock) => {
      const pid = ns.child.pid as number;
      await ns.tool(['echo', '0.0.0.0', '18021']);
      await ns.tool(['echo', '0.0.0.0', '18020']);
      const conn = await EchoConn.open(HOST4, 18021);
      const BYTES = 16 << 20;
      await conn.round(BYTES); // warm-up
      const unloaded = Math.min(await conn.round(BYTES), await conn.round(BYTES));
      // the UDP worker starts on demand (supervisor.ts): one ping starts it,
      // so that the baseline holds its descriptors (its thread's epoll set,
      // its event loop's) and the flood meets it running
      await ns.nsExec(['python3', FLOOD, 'ping', '192.0.2.1', '1', '1']);
      await waitFor(async () => {
        const a = await controlRequest(sock, { cmd: 'stats' }).catch(() => null);
        return a?.ok && (a.workers as Record<string, Record<string, number>>).udp.frames > 0;
      }, 5000);
      await sleep(500);
      const base = { rss: rssMiB(pid), fds: fdCount(pid), tcp: await tcpCounters(sock) };

      // the floods, all at once
      const nsRun = (args: string[]) => ns.nsExec(args);
      const floods = Promise.all([
        nsRun(['python3', FLOOD, 'syn', '192.0.2.2', '192.0.2.1', '18022', String(SYNS)]),
        run('python3', [FLOOD, 'connect', HOST4, '18020', String(CONNECTS)], { timeoutMs: 180000 }).then((r) => r.stdout),
        nsRun(['python3', FLOOD, 'udp', '192.0.2.1', '19000', '2000', String(UDPS)]),
        nsRun(['python3', FLOOD, 'ping', '192.0.2.1', '2000', String(PINGS)]),
      ]);
      let maxActive = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const a = await controlRequest(sock, { cmd: 'stats' }).catch(() => null);
          if (a?.ok) {
            const w = a.workers as Record<string, Record<string, number>>;
            maxActive = Math.max(maxActive, w.tcp0.active, w.udp.activeTap + w.udp.activePing);
          }
          await sleep(100);
        }
      })();
      await sleep(300);
      const loaded = await conn.round(BYTES);
      const outs = await floods;
      sampling = false;
      await sampler;
      t.log(`echo of ${BYTES >> 20} MiB: ${unloaded.toFixed(0)} ms unloaded, ${loaded.toFixed(0)} ms during the floods`);
      t.log(outs.map((o) => o.trim().split('\n').slice(-2).join(' | ')).join('\n'));
      // the goal of issue 13 is 2x; on two cores shared with the flood
      // generators it is met in some runs, not all (see perf/README.md): what
      // is held here is that the connection is not starved (round() times
      // out at 60 s)
      t.log(`slowdown during the floods: ${(loaded / unloaded).toFixed(1)}x`);
      t.regex(outs[0], /SENT \d+/);
      t.true(maxActive <= FLOW_LIMIT, `at most ${FLOW_LIMIT} flows per table (saw ${maxActive})`);

      const after = await tcpCounters(sock);
      const a = await controlRequest(sock, { cmd: 'stats' });
      const udp = (a.workers as Record<string, Record<string, number>>).udp;
      const tapRx = (a.workers as Record<string, Record<string, number>>)['tap-rx'];
      t.log(`ring drops: ${(a.rings as { name: string; drops: number }[]).filter((r) => r.drops > 0).map((r) => `${r.name} ${r.drops}`).join(', ') || 'none'}; ` +
        `SYNs shed: ${tapRx.synShed}`);
      t.log(`tcp: +${after.flows - base.tcp.flows} flows, +${after.dropTableFull - base.tcp.dropTableFull} dropped (table full), ` +
        `+${after.accepted - base.tcp.accepted} accepted, acceptPaused ${after.acceptPaused}; udp: ${udp.flows} flows, ` +
        `${udp.tableFull} dropped (table full), ${udp.pingFlows} ping flows; tap-rx: ${tapRx.tcp} TCP frames, ${tapRx.ringFull} ring full`);
      const made = after.flows - base.tcp.flows;
      if (SYNS + CONNECTS > 0) t.true(made + after.dropTableFull - base.tcp.dropTableFull > 0, 'SYNs became flows or counted drops');
      if (UDPS + PINGS > FLOW_LIMIT) t.true(udp.tableFull > 0, 'UDP flows beyond the table are dropped and counted');
      t.true(udp.flows <= FLOW_LIMIT + udp.expired, 'never more UDP flows than the table holds');
      // the UDP flood runs at the same time and may hold the whole (shared)
      // table while the echo requests arrive: then they are table-full drops
      if (PINGS > 0) {
        t.true(tapRx.icmp > 0, 'the echo requests reached tap-RX');
        t.true((udp.pingFlows > 0 && udp.pingRequests > 0) || udp.tableFull > 0,
          'the echo requests made ping flows, or were counted as table-full drops');
      }

      // afterwards: flows expire, descriptors and memory come back. Under
      // listen-queue overflow a few of flood.py's resets never reach the
      // accepted socket (the kernel keeps it ESTABLISHED with its peer gone:
      // `ss` shows it, with no client socket left): pasta mirrors the
      // kernel and keeps those flows until the activity timeout. They are
      // counted, bounded, and must match one to one.
      const orphanSockets = async () => (await run('ss', ['-Htn', 'state', 'established', '( sport = :18020 )'])).stdout
        .split('\n').filter((l) => l.trim()).length;
      let last = '';
      let orphans = 0;
      const idle = await waitFor(async () => {
        const s = await controlRequest(sock, { cmd: 'stats' });
        const w = s.workers as Record<string, Record<string, number>>;
        orphans = await orphanSockets();
        last = `tcp0.active ${w.tcp0.active}, udp.activeTap ${w.udp.activeTap}, udp.activePing ${w.udp.activePing}, ` +
          `accepted sockets whose peer vanished ${orphans}`;
        return w.tcp0.active <= 1 + orphans && w.udp.activeTap === 0 && w.udp.activePing === 0 ? w : null;
      }, 30000, 500);
      if (!idle) {
        const f = await controlRequest(sock, { cmd: 'flows', limit: 50 }).catch(() => null);
        t.log(`flows left: ${JSON.stringify(f?.flows ?? f)}`);
        t.log(`host: ${(await run('ss', ['-tanoi', 'sport = :18020 or dport = :18020'])).stdout}`);
      }
      t.truthy(idle, `flows expire after the floods (still: ${last})`);
      t.log(`accepted sockets left ESTABLISHED by the kernel with their peer gone: ${orphans}`);
      t.true(orphans <= 64, `few resets lost (${orphans})`);
      await sleep(500);
      const fds = fdCount(pid);
      const rss = rssMiB(pid);
      t.log(`fds ${base.fds} → ${fds}, RSS ${base.rss.toFixed(0)} → ${rss.toFixed(0)} MiB`);
      t.true(fds <= base.fds + 2 + orphans, `descriptors back to baseline (${base.fds} → ${fds}, ${orphans} orphans)`);
      t.true(rss <= base.rss * 1.5 + 64, `RSS back near baseline (${base.rss.toFixed(0)} → ${rss.toFixed(0)} MiB)`);
      // and the connection still works
      // the better of two rounds, as for the unloaded figure
      const again = Math.min(await conn.round(BYTES), await conn.round(BYTES));
      t.true(again <= 2 * unloaded + 200, `after the floods: ${again.toFixed(0)} ms`);
      conn.sock.destroy();
    });
  } finally {
    sink.close();
  }
});

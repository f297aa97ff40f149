/**
 * The control socket end to end (`--control PATH`, README.md "Control
 * socket"): statistics that follow a transfer while it runs, flows listed
 * while open, ports added at run time that carry data byte-exact and are
 * gone after removal (while a connection made before finishes),
 * auto-detected ports in the table, concurrent and pipelining clients,
 * hostile clients (bad JSON, unknown verbs, huge lines, a client that never
 * reads) that leave the daemon unharmed, passt's control socket, quit, and
 * another user refused both by the socket's mode and by the peer check.
 * Ports 13400–13499.
 */
import anyTest, { TestFn } from 'ava';
import * as fs from 'node:fs';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { PASST, PASTA, ROOT, inTestNs, NOT_IN_NS, run, waitFor, sleep, alive, nsHolder } from '../helpers/env';
import { startPasta, connect, hostTcpListening, PastaNs } from '../helpers/pastaNs';
import { sendRandom, receiveAll, probe, Digest } from '../helpers/tcpTool';
import { asUser, readableInstall } from '../helpers/unpriv';
import { ControlClient, controlRequest, Answer } from '../../src/main/control/client';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('end-to-end control socket tests', (t) => t.pass(NOT_IN_NS));

const CTL = path.join(ROOT, 'bin', 'passt-ts-ctl.js');
const GW4 = '192.0.2.1';
const HOST4 = '192.0.2.2';
const MiB = 1 << 20;
const QUIET = ['-u', 'none', '-T', 'none', '-U', 'none'];

/**
 * A fresh socket path in a directory every user may enter (the other-user
 * test needs that) and write to, sticky like /tmp: a root-started program
 * runs as nobody after set-up and removes the socket at exit.
 */
function socketPath(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passt-ts-ctl-'));
  fs.chmodSync(dir, 0o1777);
  return path.join(dir, 'control.sock');
}

async function ok(p: string, req: Record<string, unknown>): Promise<Record<string, any>> {
  const a = await controlRequest(p, req);
  if (!a.ok) throw new Error(`${JSON.stringify(req)}: ${a.error}`);
  return a;
}

async function withPasta(args: string[], fn: (ns: PastaNs, sock: string) => Promise<void>): Promise<void> {
  const sock = socketPath();
  const ns = await startPasta(['--control', sock, ...args]);
  try {
    await fn(ns, sock);
  } finally {
    await ns.stop();
  }
}

function digestLine(l: string | null): Digest | null {
  const m = l ? /^(?:RECV|SENT) (\d+) ([0-9a-f]{64})$/.exec(l) : null;
  return m ? { bytes: Number(m[1]), sha: m[2] } : null;
}

e2e('stats and flows follow a transfer while it runs (tap path), in JSON and Prometheus text', async (t) => {
  await withPasta(['-t', 'none', ...QUIET], async (ns, sock) => {
    const st = fs.statSync(sock);
    t.true(st.isSocket());
    t.is(st.mode & 0o777, 0o600);
    // the user pasta runs as: nobody once a root-started one is isolated (isolation.ts)
    t.is(st.uid, process.geteuid?.() === 0 ? 65534 : process.geteuid?.() ?? 0);
    const before = await ok(sock, { cmd: 'stats' });
    t.is(before.mode, 'pasta');
    t.deepEqual(Object.keys(before.workers).sort(), ['tap-rx', 'tap-tx', 'tcp0', 'udp']);
    t.true(before.rings.some((r: any) => r.name === 'tap-rx→tcp0' && r.capacity > 0));

    // a host server that holds the connection until told to read
    let release!: () => void;
    const go = new Promise<void>((r) => { release = r; });
    let got!: Promise<Digest>;
    const srv = net.createServer({ allowHalfOpen: true }, (c) => {
      c.pause();
      got = go.then(() => { c.resume(); return receiveAll(c); });
    });
    await new Promise<void>((r) => srv.listen(13401, '127.0.0.1', () => r()));
    try {
      const size = 16 * MiB;
      const cli = await ns.tool(['source', GW4, '13401', String(size)], false);
      // while the host does not read: the flow is listed, bytes have moved
      const flow = await waitFor(async () => {
        const f = await ok(sock, { cmd: 'flows' });
        return f.flows.find((x: any) => x.proto === 'tcp' && x.path === 'tap' && x.to === `host ${GW4}:13401` && x.bytesOut > 0);
      }, 10000);
      t.truthy(flow, 'the open connection is listed');
      t.is(flow.worker, 'tcp0');
      t.regex(flow.state, /ESTABLISHED/);
      t.regex(flow.from, /^guest 192\.0\.2\.2:\d+$/);
      t.true(Number.isInteger(flow.ageMs));
      t.true(flow.ageMs >= 0);
      const during = await ok(sock, { cmd: 'stats' });
      t.true(during.flows.tcp.tap >= 1);
      t.true(during.traffic.tcp.tap.bytesFromGuest > before.traffic.tcp.tap.bytesFromGuest);
      t.true(during.traffic.tcp.tap.bytesFromGuest - before.traffic.tcp.tap.bytesFromGuest < size);
      release();
      const sent = digestLine(await cli.line(/^SENT /, 30000));
      t.deepEqual(await got, sent);
      const after = await waitFor(async () => {
        const s = await ok(sock, { cmd: 'stats' });
        return s.traffic.tcp.tap.bytesFromGuest - before.traffic.tcp.tap.bytesFromGuest >= size ? s : null;
      }, 10000);
      if (!after) return t.fail('every byte counted');
      t.true(after.traffic.tcp.tap.segmentsFromGuest > during.traffic.tcp.tap.segmentsFromGuest);
      t.true(after.workers.tcp0.flows >= 1);
      // the same counters in the Prometheus text format
      const prom = await ok(sock, { cmd: 'stats', format: 'prometheus' });
      const m = /^passt_ts_tcp_bytes_from_tap_total\{worker="tcp0"\} (\d+)$/m.exec(prom.text);
      t.truthy(m);
      t.true(Number(m?.[1]) >= after.traffic.tcp.tap.bytesFromGuest);
      t.regex(prom.text, /^# TYPE passt_ts_flows gauge$/m);
    } finally {
      srv.close();
    }
  });
});

e2e('a port added at run time carries 8 MiB byte-exact (spliced and over the tap), and is gone after removal', async (t) => {
  await withPasta(['-t', 'none', ...QUIET], async (ns, sock) => {
    const sink = await ns.tool(['sink', '::', '13410', '3']);
    t.is(await probe('127.0.0.1', 13410), 'ERR ECONNREFUSED');
    const added = await ok(sock, { cmd: 'add-port', option: '-t', spec: '13410' });
    t.deepEqual(added.added, [{ option: '-t', bind: null, port: 13410, target: 13410, auto: false }]);
    t.deepEqual((await ok(sock, { cmd: 'ports' })).ports, added.added);
    t.true(hostTcpListening().has(13410));
    for (const host of ['127.0.0.1', HOST4]) {
      const s = await connect(host, 13410);
      const sent = await sendRandom(s, 8 * MiB);
      const got = digestLine(await sink.line(new RegExp(`^RECV ${sent.bytes} ${sent.sha}$`), 30000));
      t.deepEqual(got, sent, `via ${host}: ${sink.lines.join(' | ')}`);
      s.destroy();
    }
    const st = await ok(sock, { cmd: 'stats' });
    t.true(st.traffic.tcp.splice.bytesFromClient >= 8 * MiB, 'spliced bytes counted');
    t.is(st.traffic.tcp.splice.bytesToClient, 0, 'the sink sent nothing back');
    t.true(st.traffic.tcp.tap.bytesToGuest >= 8 * MiB, 'tap bytes counted');

    // a connection made before the removal finishes after it
    const early = await connect('127.0.0.1', 13410);
    early.write(Buffer.alloc(1000, 1));
    await waitFor(async () => (await ok(sock, { cmd: 'stats' })).flows.tcp.splice >= 1, 5000);
    const removed = await ok(sock, { cmd: 'remove-port', option: '-t', spec: '13410' });
    t.deepEqual(removed.removed, added.added);
    t.truthy(await waitFor(() => !hostTcpListening().has(13410), 5000), 'listener closed');
    t.is(await probe('127.0.0.1', 13410), 'ERR ECONNREFUSED');
    t.deepEqual((await ok(sock, { cmd: 'ports' })).ports, []);
    const rest = await sendRandom(early, MiB);
    const line = await sink.line(/^RECV 1049576 /, 15000);
    t.truthy(line, `the early connection finished: ${sink.lines.join(' | ')}`);
    t.not(rest.bytes, 0);
    early.destroy();

    // errors name the bad part; nothing half-done
    const bad = await controlRequest(sock, { cmd: 'add-port', option: '-t', spec: '13411,13412-13411' });
    t.false(bad.ok);
    t.regex(String(bad.error), /Invalid port specifier 13411,13412-13411: first port 13412 is above last port 13411/);
    const again = await controlRequest(sock, { cmd: 'remove-port', option: '-t', spec: '13410' });
    t.regex(String(again.error), /Port 13410 is not forwarded by -t/);
    // a port that cannot be bound: an error answer, the others of the spec not bound either
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(13414, () => r()));
    const clash = await controlRequest(sock, { cmd: 'add-port', option: '-t', spec: '13413-13414' });
    busy.close();
    t.regex(String(clash.error), /Failed to bind port 13414 \(.*\) for option '-t'$/);
    t.false(hostTcpListening().has(13413));
    t.deepEqual((await ok(sock, { cmd: 'ports' })).ports, []);
    // -T at run time: namespace side, pasta only
    const tOut = await ok(sock, { cmd: 'add-port', option: '-T', spec: '13415:13416' });
    t.deepEqual(tOut.added, [{ option: '-T', bind: null, port: 13415, target: 13416, auto: false }]);
  });
});

/** Sends n datagrams of size bytes from a fresh socket to addr:port; resolves with how many came back unchanged. */
async function udpEchoes(addr: string, port: number, n: number, size: number, waitMs = 3000): Promise<number> {
  const s = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
  let back = 0;
  const sent = new Set<string>();
  s.on('message', (m) => { if (sent.has(m.toString('hex'))) back++; });
  await new Promise<void>((r) => s.bind(0, r));
  for (let i = 0; i < n; i++) {
    const b = Buffer.alloc(size, i + 1);
    sent.add(b.toString('hex'));
    s.send(b, port, addr);
  }
  await waitFor(() => back >= n, waitMs);
  s.close();
  return back;
}

e2e('UDP and ICMP: a -u port added at run time, flows listed per path and counted in the stats', async (t) => {
  await withPasta(['-t', 'none', ...QUIET], async (ns, sock) => {
    const echo = spawn('nsenter', ['-t', String(ns.nsPid), '-n', process.execPath,
      path.join(ROOT, 'dist', 'test', 'helpers', 'udpTool.js'), 'echo', '::', '13492', '--seconds', '30'],
    { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      let out = '';
      echo.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      t.truthy(await waitFor(() => out.includes('"ready"'), 10000), 'echo bound');
      await ok(sock, { cmd: 'add-port', option: '-u', spec: '13492' });
      t.is(await udpEchoes('127.0.0.1', 13492, 20, 1000), 20, 'spliced');
      t.is(await udpEchoes(HOST4, 13492, 20, 1000), 20, 'over the tap');
      const f = await ok(sock, { cmd: 'flows' });
      const spliced = f.flows.find((x: any) => x.proto === 'udp' && x.path === 'splice');
      const tapped = f.flows.find((x: any) => x.proto === 'udp' && x.path === 'tap');
      t.truthy(spliced, JSON.stringify(f.flows));
      t.truthy(tapped, JSON.stringify(f.flows));
      t.is(spliced.bytesOut, 20000);
      t.is(spliced.bytesIn, 20000);
      t.is(tapped.bytesOut, 20000);
      t.is(tapped.bytesIn, 20000);
      t.regex(spliced.from, /^host 127\.0\.0\.1:\d+$/);
      const s = await ok(sock, { cmd: 'stats' });
      t.is(s.flows.udp.splice, 1);
      t.is(s.flows.udp.tap, 1);
      t.deepEqual(s.traffic.udp.splice, { bytesFromClient: 20000, bytesToClient: 20000, datagrams: 40 });
      t.is(s.traffic.udp.tap.bytesToGuest, 20000);
      t.is(s.traffic.udp.tap.bytesFromGuest, 20000);
      t.is(s.workers.udp.listeners, 1);
      // echo requests count too, and their flow is listed
      await ns.nsExec(['busybox', 'ping', '-c', '2', '-i', '0.2', '-W', '2', GW4]);
      const pinged = await ok(sock, { cmd: 'stats' });
      t.is(pinged.traffic.icmp.tap.requestsFromGuest, 2);
      t.is(pinged.traffic.icmp.tap.repliesToGuest, 2);
      t.is(pinged.flows.icmp.tap, 1);
      const icmp = (await ok(sock, { cmd: 'flows' })).flows.find((x: any) => x.proto === 'icmp');
      t.regex(icmp?.to ?? '', /^host /);
      await ok(sock, { cmd: 'remove-port', option: '-u', spec: '13492' });
      t.truthy(await waitFor(async () => (await ok(sock, { cmd: 'stats' })).workers.udp.listeners === 0, 5000),
        'listener closed');
      t.is(await udpEchoes('127.0.0.1', 13492, 3, 100, 1000), 0, 'new sources are no longer forwarded');
    } finally {
      echo.kill('SIGKILL');
    }
  });
});

e2e('auto-detected ports show up in the table, marked', async (t) => {
  await withPasta(['-t', 'auto', '-u', 'none', '-T', 'none', '-U', 'none'], async (ns, sock) => {
    const srv = await ns.tool(['echo', '::', '13420']);
    const entry = await waitFor(async () => (await ok(sock, { cmd: 'ports' })).ports
      .find((p: any) => p.option === '-t' && p.port === 13420), 10000);
    t.deepEqual(entry, { option: '-t', bind: null, port: 13420, target: 13420, auto: true });
    // passt-ts-ctl's table says so too
    const r = await run(process.execPath, [CTL, sock, 'ports'], { timeoutMs: 10000 });
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /^-t\s+\*\s+13420\s+13420\s+auto$/m);
    srv.kill();
    t.truthy(await waitFor(async () => !(await ok(sock, { cmd: 'ports' })).ports.some((p: any) => p.port === 13420), 10000),
      'gone once the namespace stops listening');
  });
});

e2e('concurrent clients, and pipelined requests answered in order with their ids', async (t) => {
  await withPasta(['-t', '13430', ...QUIET], async (ns, sock) => {
    void ns;
    const verbs = ['stats', 'flows', 'ports'];
    const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => controlRequest(sock, { cmd: verbs[i % 3] })));
    t.true(answers.every((a) => a.ok), JSON.stringify(answers.find((a) => !a.ok)));
    const c = await ControlClient.connect(sock);
    try {
      const reqs = Array.from({ length: 50 }, (_, i) => c.request({ cmd: verbs[i % 3], id: i }));
      const got = await Promise.all(reqs);
      t.deepEqual(got.map((a) => a.id), Array.from({ length: 50 }, (_, i) => i));
    } finally {
      c.close();
    }
  });
});

e2e('bad requests get an error answer; hostile clients leave the daemon unharmed', async (t) => {
  await withPasta(['-t', '13440', ...QUIET], async (ns, sock) => {
    const c = await ControlClient.connect(sock);
    try {
      const cases: [string, RegExp][] = [
        ['{"cmd":"stats"', /malformed JSON/],
        ['not json at all', /malformed JSON/],
        ['{"cmd":"reboot"}', /unknown command "reboot"/],
        ['{"verb":"stats"}', /missing "cmd"/],
        ['{"cmd":"add-port","option":"-t"}', /missing "spec"/],
        ['{"cmd":"add-port","option":"-t","spec":"99999"}', /Invalid port specifier 99999: port 99999 is above 65535/],
        ['{"cmd":"add-port","option":"-t","spec":"auto"}', /cannot be changed at run time/],
        ['x'.repeat(3 * MiB), /request line longer than 65536 bytes/],
      ];
      for (const [line, re] of cases) {
        const a: Answer = await c.send(line);
        t.false(a.ok, line.slice(0, 60));
        if (!a.ok) t.regex(a.error, re, line.slice(0, 60));
      }
      t.true((await c.request({ cmd: 'ports' })).ok, 'the same connection still works');
    } finally {
      c.close();
    }

    // a client that sends and never reads: its answers pile up until it is cut off
    const hog = net.connect(sock);
    await new Promise<void>((r) => hog.once('connect', () => r()));
    hog.pause();
    const burst = '{"cmd":"stats","format":"prometheus"}\n'.repeat(2000);
    for (let i = 0; i < 10; i++) hog.write(burst);
    const closed = new Promise<void>((r) => hog.once('close', () => r()));
    hog.on('error', () => {});
    await sleep(1000);
    // meanwhile others are served
    const a = await ok(sock, { cmd: 'stats' });
    t.is(a.mode, 'pasta');
    t.truthy(await Promise.race([closed.then(() => true), sleep(20000).then(() => false)]), 'the hog is disconnected');
    // a client that connects and goes away mid-request
    const rude = net.connect(sock);
    rude.on('error', () => {});
    await new Promise<void>((r) => rude.once('connect', () => r()));
    rude.write('{"cmd":"flows"}\n{"cmd":"sta');
    rude.destroy();
    await sleep(200);
    t.true((await ok(sock, { cmd: 'ports' })).ports.length === 1);
    t.true(alive(ns.child.pid as number), 'daemon alive');
    // passt-ts-ctl reports an error answer with status 1
    const r = await run(process.execPath, [CTL, sock, 'add-port', '-t', '1-2:3'], { timeoutMs: 10000 });
    t.is(r.code, 1);
    t.regex(r.stderr, /Invalid port specifier 1-2:3: '1-2' has 2 ports but '3' has 1/);
  });
});

e2e('passt-ts-ctl: human tables, --json, top, quit', async (t) => {
  const sock = socketPath();
  const ns = await startPasta(['--control', sock, '-t', '13450', ...QUIET]);
  try {
    const ctl = (args: string[]) => run(process.execPath, [CTL, ...args], { timeoutMs: 15000 });
    let r = await ctl([sock, 'add-port', '-t', '13451-13452:13461-13462']);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /^added 2 ports$/m);
    r = await ctl([sock, 'ports']);
    t.regex(r.stdout, /^OPTION\s+BIND\s+PORT\s+TARGET\s+SOURCE$/m);
    t.regex(r.stdout, /^-t\s+\*\s+13452\s+13462\s+configured$/m);
    r = await ctl(['--json', sock, 'ports']);
    t.is(JSON.parse(r.stdout).ports.length, 3);
    r = await ctl([sock, 'stats']);
    t.regex(r.stdout, /^Flows$/m);
    t.regex(r.stdout, /^tap-rx→tcp0\s+\d+\s+8388608/m);
    r = await ctl([sock, 'stats', '--prometheus']);
    t.regex(r.stdout, /^passt_ts_tap_rx_frames_total\{worker="tap-rx"\} \d+$/m);
    r = await ctl([sock, 'flows', '--limit', '5']);
    t.regex(r.stdout, /flows? .*of \d+|no flows of 0/);
    r = await ctl([sock, 'top', '--count', '2', '--interval', '200']);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.match(/^Busiest flows$/gm)?.length, 2);
    r = await ctl([sock, 'bogus']);
    t.is(r.code, 2);
    r = await ctl([sock, 'quit']);
    t.is(r.code, 0, r.stderr);
    const code = await waitFor(() => ns.child.exitCode !== null, 10000);
    t.truthy(code, 'pasta quit');
    t.is(ns.child.exitCode, 0);
    t.false(fs.existsSync(sock), 'socket removed at exit');
  } finally {
    await ns.stop();
  }
});

e2e('passt: --control serves stats and -t ports; -T is refused', async (t) => {
  const sock = socketPath();
  const qsock = path.join(path.dirname(sock), 'passt.sock');
  const p = spawn(PASST, ['-f', '-s', qsock, '--control', sock, '-t', 'none'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  p.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  try {
    t.truthy(await waitFor(() => fs.existsSync(sock), 15000), stderr);
    const s = await ok(sock, { cmd: 'stats' });
    t.is(s.mode, 'passt');
    t.true('tap-rx' in s.workers && 'tcp0' in s.workers);
    const a = await ok(sock, { cmd: 'add-port', option: '-t', spec: '127.0.0.1/13470' });
    t.deepEqual(a.added, [{ option: '-t', bind: '127.0.0.1', port: 13470, target: 13470, auto: false }]);
    const bad = await controlRequest(sock, { cmd: 'add-port', option: '-T', spec: '13471' });
    t.regex(String(bad.error), /-T is for pasta mode only/);
    await ok(sock, { cmd: 'remove-port', option: '-t', spec: '127.0.0.1/13470' });
    await ok(sock, { cmd: 'quit' });
    t.truthy(await waitFor(() => p.exitCode !== null, 10000), stderr);
    t.is(p.exitCode, 0);
  } finally {
    p.kill('SIGKILL');
  }
});

e2e('daemonised (attached, no -f): the socket answers as soon as pasta returns; quit ends the daemon', async (t) => {
  const h = await nsHolder();
  const sock = socketPath();
  const pidFile = path.join(path.dirname(sock), 'pasta.pid');
  try {
    const r = await run(PASTA, ['--config-net', '--control', sock, '-P', pidFile, '-t', '13495', ...QUIET, String(h.pid)],
      { timeoutMs: 20000 });
    t.is(r.code, 0, r.stderr);
    const daemon = Number(fs.readFileSync(pidFile, 'utf8'));
    const a = await ok(sock, { cmd: 'ports' });
    t.deepEqual(a.ports.map((p: any) => p.port), [13495]);
    t.is((await ok(sock, { cmd: 'stats' })).pid, daemon);
    await ok(sock, { cmd: 'quit' });
    t.truthy(await waitFor(() => !alive(daemon), 10000), 'daemon gone');
    t.false(fs.existsSync(sock));
  } finally {
    await h.kill();
  }
});

e2e('a --control path that is taken stops the start with a clear error', async (t) => {
  const file = socketPath();
  fs.writeFileSync(file, 'not a socket');
  let r = await run(PASTA, ['--config-net', '--control', file, '--', 'true'], { timeoutMs: 20000 });
  t.is(r.code, 1);
  t.regex(r.stderr, /Control socket .*control\.sock: exists and is not a socket/);
  t.is(fs.readFileSync(file, 'utf8'), 'not a socket');
  const live = socketPath();
  const srv = net.createServer();
  await new Promise<void>((res) => srv.listen(live, () => res()));
  try {
    r = await run(PASTA, ['--config-net', '--control', live, '--', 'true'], { timeoutMs: 20000 });
    t.is(r.code, 1);
    t.regex(r.stderr, /Control socket .*: in use by another process/);
  } finally {
    srv.close();
  }
  // a stale one (nobody listening) is replaced
  const stale = socketPath();
  // a process that exits while listening leaves its socket file behind
  await run(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`]);
  t.true(fs.lstatSync(stale).isSocket());
  r = await run(PASTA, ['--config-net', '--control', stale, '--', 'true'], { timeoutMs: 20000 });
  t.is(r.code, 0, r.stderr);
});

e2e('another user cannot connect: mode 0600, and the peer check refuses even a loosened socket', async (t) => {
  const dir = readableInstall();
  const userCtl = path.join(dir, 'bin', 'passt-ts-ctl.js');
  await withPasta(['-t', '13480', ...QUIET], async (_ns, sock) => {
    const asOther = (args: string[]) => run(asUser()[0], [...asUser().slice(1), process.execPath, userCtl, ...args],
      { timeoutMs: 15000 });
    let r = await asOther(['--json', sock, 'ports']);
    t.is(r.code, 1, r.stdout);
    t.regex(r.stderr, /EACCES|permission denied/i);
    // as if the mode had been loosened: SO_PEERCRED still says who connects
    fs.chmodSync(sock, 0o666);
    r = await asOther(['--json', sock, 'ports']);
    t.is(r.code, 1, r.stdout);
    t.regex(r.stderr, /permission denied: another user/);
    t.notRegex(r.stdout, /13480/);
    // and we still get in
    t.is((await ok(sock, { cmd: 'ports' })).ports.length, 1);
  });
});

e2e('unprivileged: a normal user\'s pasta serves that user (uids as seen in its user namespace), and no one else', async (t) => {
  const dir = readableInstall();
  const userCtl = path.join(dir, 'bin', 'passt-ts-ctl.js');
  const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passt-ts-ctl-user-'));
  fs.chmodSync(sockDir, 0o777);
  const sock = path.join(sockDir, 'control.sock');
  const env = { ...process.env, HOME: '/tmp' };
  const pasta = run(asUser()[0], [...asUser().slice(1), path.join(dir, 'bin/pasta'), '--config-net', '--control', sock,
    '-t', '13485', '-u', 'none', '-T', 'none', '-U', 'none', '--', 'sleep', '6'], { timeoutMs: 20000, env });
  try {
    t.truthy(await waitFor(() => fs.existsSync(sock), 10000), 'socket made');
    const st = fs.statSync(sock);
    t.is(st.mode & 0o777, 0o600);
    t.not(st.uid, 0, 'owned by the user pasta runs as');
    const r = await run(asUser()[0], [...asUser().slice(1), process.execPath, userCtl, '--json', sock, 'ports'],
      { timeoutMs: 15000, env });
    t.is(r.code, 0, r.stderr);
    t.is(JSON.parse(r.stdout).ports[0].port, 13485);
    // root passes the file mode, but is nobody in that user namespace: the peer check refuses it
    const a = await controlRequest(sock, { cmd: 'ports' });
    t.false(a.ok);
    t.regex(String(a.error), /permission denied: another user/);
  } finally {
    await pasta;
  }
});

/**
 * Memory per instance (issue 16; perf/README.md "Memory per instance"):
 * the memory tuning reaches the processes that run. An idle attached pasta
 * daemon, launched by its foreground, runs with the V8 platform pool of the
 * tuning (its thread count says so), and every pipeline worker reports the
 * young-generation limit V8 applied to it. The same with the tuning turned
 * off shows Node's defaults, so neither check passes by accident. The UDP
 * worker starts on demand: an idle instance runs without it; the first
 * datagrams from the namespace start it, none lost, the replies come back,
 * and the control socket answers before (zeros) and after.
 * Runs only inside the namespace made by test/run.sh.
 */
import anyTest, { TestFn } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import { PASTA, PASST, inTestNs, NOT_IN_NS, run, sleep, waitFor, alive, nsHolder, tmpPath } from '../helpers/env';
import { controlRequest } from '../../src/main/control/client';
import { tuningFor } from '../../src/main/conf';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('memory tuning end to end', (t) => t.pass(NOT_IN_NS));

/** Node's own threads besides the main thread and V8's pool: the delayed-task scheduler, the inspector's SIGUSR1 thread. */
const NODE_OTHER_THREADS = 2;
/** Node's default V8 platform pool (no --v8-pool-size). */
const NODE_DEFAULT_POOL = 4;
/** pasta's pipeline while idle: tap-RX, tap-TX, one TCP worker (the UDP worker starts on demand). */
const PASTA_WORKERS = 3;

interface Idle {
  pid: number;
  threads: number;
  cmdline: string[];
  /** "name: limit MB" per worker, from their debug lines. */
  young: Map<string, { limitMb: number; newSpaceKiB: number }>;
  stop(): Promise<void>;
}

async function idle(prog: 'pasta' | 'passt', env: NodeJS.ProcessEnv, extra: string[] = []): Promise<Idle & { holder: number }> {
  const pidFile = tmpPath(`${prog}.pid`);
  let args: string[];
  let holder: Awaited<ReturnType<typeof nsHolder>> | null = null;
  if (prog === 'pasta') {
    holder = await nsHolder();
    args = ['--config-net', '-d', '-P', pidFile, ...extra, String(holder.pid)];
  } else {
    args = ['-d', '-P', pidFile, '-s', tmpPath('passt.sock'), ...extra];
  }
  // the foreground forwards the daemon's log until the daemon is ready, then exits
  const r = await run(prog === 'pasta' ? PASTA : PASST, args, { env: { ...process.env, ...env }, timeoutMs: 15000 });
  if (r.code !== 0) throw new Error(`${prog} failed (${r.code}): ${r.stderr}`);
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  const young = new Map<string, { limitMb: number; newSpaceKiB: number }>();
  for (const m of r.stderr.matchAll(/\b([\w-]+) heap: young generation up to (\d+) MB, new space (\d+) KiB/g))
    young.set(m[1], { limitMb: Number(m[2]), newSpaceKiB: Number(m[3]) });
  // threads start before readiness: the count is stable from here on
  const threads = fs.readdirSync(`/proc/${pid}/task`).length;
  const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  return {
    pid, threads, cmdline, young, holder: holder?.pid ?? 0,
    stop: async () => {
      process.kill(pid, 'SIGTERM');
      await waitFor(() => !alive(pid), 5000);
      await holder?.kill();
    },
  };
}

e2e('idle attached pasta: one V8 platform thread, young generation capped in every worker', async (t) => {
  const m = tuningFor('pasta', {}).memory;
  t.true(m.v8PoolSize > 0 && m.semiSpaceMb > 0, 'the defaults limit both');
  const youngMb = 3 * m.semiSpaceMb;
  const tuned = await idle('pasta', {});
  try {
    t.true(tuned.cmdline.includes(`--v8-pool-size=${m.v8PoolSize}`), tuned.cmdline.join(' '));
    t.true(tuned.cmdline.includes(`--max-semi-space-size=${m.semiSpaceMb}`), tuned.cmdline.join(' '));
    t.is(tuned.threads, 1 + PASTA_WORKERS + m.v8PoolSize + NODE_OTHER_THREADS);
    t.deepEqual([...tuned.young.keys()].sort(), ['tapRx', 'tapTx', 'tcp0']);
    for (const [name, y] of tuned.young) {
      t.is(y.limitMb, youngMb, name);
      // new space: the two semi-spaces
      t.true(y.newSpaceKiB <= 2 * m.semiSpaceMb * 1024, `${name}: new space ${y.newSpaceKiB} KiB`);
    }
  } finally {
    await tuned.stop();
  }
  const plain = await idle('pasta', { PASST_TS_V8_POOL_SIZE: '0', PASST_TS_SEMI_SPACE_MB: '0' });
  try {
    t.false(plain.cmdline.some((a) => a.startsWith('--v8-pool-size') || a.startsWith('--max-semi')), plain.cmdline.join(' '));
    t.is(plain.threads, 1 + PASTA_WORKERS + NODE_DEFAULT_POOL + NODE_OTHER_THREADS);
    t.is(plain.young.size, PASTA_WORKERS);
    for (const [name, y] of plain.young) t.true(y.limitMb > youngMb, `${name}: V8's default ${y.limitMb} MB`);
  } finally {
    await plain.stop();
  }
});

e2e('idle passt (socket mode): the same tuning in its daemon', async (t) => {
  const m = tuningFor('passt', {}).memory;
  const p = await idle('passt', {});
  try {
    t.true(p.cmdline.includes(`--v8-pool-size=${m.v8PoolSize}`), p.cmdline.join(' '));
    // passt runs tap-RX inside TCP worker 0: two workers while idle
    t.is(p.threads, 1 + 2 + m.v8PoolSize + NODE_OTHER_THREADS);
    t.deepEqual([...p.young.keys()].sort(), ['tapTx', 'tcp0']);
    for (const [name, y] of p.young) t.is(y.limitMb, 3 * m.semiSpaceMb, name);
  } finally {
    await p.stop();
  }
});

/** A control socket path in a directory the isolated (nobody) pasta can remove it from. */
function controlPath(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passt-ts-mem-'));
  fs.chmodSync(dir, 0o1777);
  return path.join(dir, 'control.sock');
}

async function stats(sock: string): Promise<Record<string, any>> {
  const a = await controlRequest(sock, { cmd: 'stats' });
  if (!a.ok) throw new Error(`stats: ${a.error}`);
  return a;
}

const threadsOf = (pid: number) => fs.readdirSync(`/proc/${pid}/task`).length;

/** The namespace's side: BURST datagrams at once to ADDR:PORT, no retries; prints how many echoes came back. */
const BURST = 40;
const BURST_JS = `
const s = require('node:dgram').createSocket('udp4');
let n = 0;
s.on('message', () => { if (++n === ${BURST}) done(); });
const done = () => { console.log(n); process.exit(0); };
setTimeout(done, 8000);
s.bind(0, () => { for (let i = 0; i < ${BURST}; i++) s.send(Buffer.alloc(200, i), Number(process.argv[1]), '192.0.2.1'); });
`;

e2e('the UDP worker starts on demand: idle without it, the first burst of datagrams starts it and none is lost', async (t) => {
  const m = tuningFor('pasta', {}).memory;
  t.true(m.lazyUdp, 'the default');
  const port = 14691;
  const echo = dgram.createSocket('udp4');
  let echoed = 0;
  echo.on('message', (b, r) => { echoed++; echo.send(b, r.port, r.address); });
  await new Promise<void>((res) => echo.bind(port, '127.0.0.1', res));
  const sock = controlPath();
  // no auto forwarding of UDP: nothing else would start it
  const p = await idle('pasta', {}, ['--control', sock, '-u', 'none', '-U', 'none']);
  try {
    const idleThreads = 1 + PASTA_WORKERS + m.v8PoolSize + NODE_OTHER_THREADS;
    t.is(p.threads, idleThreads);
    // the control socket answers for the worker that is not running: zeros
    const before = await stats(sock);
    t.deepEqual(Object.keys(before.workers).sort(), ['tap-rx', 'tap-tx', 'tcp0', 'udp']);
    t.true(Object.values(before.workers.udp as Record<string, number>).every((v) => v === 0), JSON.stringify(before.workers.udp));
    t.is(before.flows.udp.tap, 0);
    const f0 = await controlRequest(sock, { cmd: 'flows' });
    t.true(f0.ok);
    t.false((f0.flows as any[]).some((f) => f.worker === 'udp'));
    t.is(threadsOf(p.pid), idleThreads, 'asking did not start it');

    // (not spawnSync: the echo server answers from this process's event loop)
    const r = await run('nsenter', ['-t', String(p.holder), '-n', process.execPath, '-e', BURST_JS, String(port)], { timeoutMs: 20000 });
    t.is(r.code, 0, r.stderr);
    t.is(Number(r.stdout.trim()), BURST, 'every datagram of the first burst answered');
    t.is(echoed, BURST);
    t.is(threadsOf(p.pid), idleThreads + 1, 'the UDP worker runs');
    const after = await stats(sock);
    t.true(after.workers.udp.flows >= 1, JSON.stringify(after.workers.udp));
    const f1 = await controlRequest(sock, { cmd: 'flows' });
    t.true((f1.flows as any[]).some((f) => f.worker === 'udp' && f.proto === 'udp' && f.to === `host 127.0.0.1:${port}` && f.bytesOut === BURST * 200), JSON.stringify(f1.flows));
  } finally {
    await p.stop();
    echo.close();
  }
});

/** The namespace's side: an echo server on PORT that answers one datagram, then exits; prints "ready" when bound. */
const ECHO_ONCE_JS = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (b, r) => s.send(b, r.port, r.address, () => process.exit(0)));
s.bind(Number(process.argv[1]), '0.0.0.0', () => console.log('ready'));
setTimeout(() => process.exit(1), 15000);
`;

e2e('a forwarded UDP port does not start the UDP worker; its first datagram does, and is delivered', async (t) => {
  const m = tuningFor('pasta', {}).memory;
  const idleThreads = 1 + PASTA_WORKERS + m.v8PoolSize + NODE_OTHER_THREADS;
  const port = 14692;
  const p = await idle('pasta', {}, ['-u', String(port), '-U', 'none']);
  const srv = spawn('nsenter', ['-t', String(p.holder), '-n', process.execPath, '-e', ECHO_ONCE_JS, String(port)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((res) => srv.stdout.once('data', () => res()));
    t.is(threadsOf(p.pid), idleThreads, 'the listener is held by the main thread');
    // host → forwarded port (host loopback: spliced to the namespace's loopback)
    const c = dgram.createSocket('udp4');
    const back = new Promise<Buffer>((res) => c.once('message', (b) => res(b)));
    await new Promise<void>((res) => c.bind(0, '127.0.0.1', res));
    c.send(Buffer.from('first'), port, '127.0.0.1');
    const got = await Promise.race([back, sleep(10000).then(() => null)]);
    c.close();
    t.is(got?.toString(), 'first', 'the datagram that started the worker was delivered and answered');
    t.is(threadsOf(p.pid), idleThreads + 1, 'the UDP worker runs');
  } finally {
    srv.kill();
    await p.stop();
  }
});

/** Whether 127.0.0.1:port can be bound for UDP (without SO_REUSEADDR: not while a listener holds it). */
async function udpPortFree(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  const ok = await new Promise<boolean>((res) => {
    s.once('error', () => res(false));
    s.bind(port, '127.0.0.1', () => res(true));
  });
  s.close();
  return ok;
}

e2e('a UDP port added and removed over the control socket before the UDP worker runs: bound, then closed, worker never started', async (t) => {
  const m = tuningFor('pasta', {}).memory;
  const idleThreads = 1 + PASTA_WORKERS + m.v8PoolSize + NODE_OTHER_THREADS;
  const port = 14693;
  const sock = controlPath();
  const p = await idle('pasta', {}, ['--control', sock, '-u', 'none', '-U', 'none']);
  try {
    t.true(await udpPortFree(port));
    const add = await controlRequest(sock, { cmd: 'add-port', option: '-u', spec: String(port) });
    t.true(add.ok, String(add.error));
    t.false(await udpPortFree(port), 'bound, held by the main thread');
    t.is(threadsOf(p.pid), idleThreads);
    const rm = await controlRequest(sock, { cmd: 'remove-port', option: '-u', spec: String(port) });
    t.true(rm.ok, String(rm.error));
    t.true(await udpPortFree(port), 'closed by the main thread');
    t.is(threadsOf(p.pid), idleThreads, 'the worker was never started');
  } finally {
    await p.stop();
  }
});

e2e('PASST_TS_LAZY_UDP=0: the UDP worker starts with the others', async (t) => {
  const m = tuningFor('pasta', {}).memory;
  const eager = await idle('pasta', { PASST_TS_LAZY_UDP: '0' }, ['-u', 'none', '-U', 'none']);
  try {
    t.is(eager.threads, 1 + PASTA_WORKERS + 1 + m.v8PoolSize + NODE_OTHER_THREADS);
    t.true(eager.young.has('udp'));
  } finally {
    await eager.stop();
  }
});

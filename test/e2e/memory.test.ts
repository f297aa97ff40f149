/**
 * Memory per instance (issue 16; perf/README.md "Memory per instance"):
 * the memory tuning reaches the processes that run. An idle attached pasta
 * daemon, launched by its foreground, runs with the V8 platform pool of the
 * tuning (its thread count says so), and every pipeline worker reports the
 * young-generation limit V8 applied to it. The same with the tuning turned
 * off shows Node's defaults, so neither check passes by accident.
 * Runs only inside the namespace made by test/run.sh.
 */
import anyTest, { TestFn } from 'ava';
import * as fs from 'node:fs';
import { PASTA, PASST, inTestNs, NOT_IN_NS, run, waitFor, alive, nsHolder, tmpPath } from '../helpers/env';
import { tuningFor } from '../../src/main/conf';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('memory tuning end to end', (t) => t.pass(NOT_IN_NS));

/** Node's own threads besides the main thread and V8's pool: the delayed-task scheduler, the inspector's SIGUSR1 thread. */
const NODE_OTHER_THREADS = 2;
/** Node's default V8 platform pool (no --v8-pool-size). */
const NODE_DEFAULT_POOL = 4;
/** pasta's pipeline: tap-RX, tap-TX, one TCP worker, the UDP worker. */
const PASTA_WORKERS = 4;

interface Idle {
  pid: number;
  threads: number;
  cmdline: string[];
  /** "name: limit MB" per worker, from their debug lines. */
  young: Map<string, { limitMb: number; newSpaceKiB: number }>;
  stop(): Promise<void>;
}

async function idle(prog: 'pasta' | 'passt', env: NodeJS.ProcessEnv): Promise<Idle> {
  const pidFile = tmpPath(`${prog}.pid`);
  let args: string[];
  let holder: Awaited<ReturnType<typeof nsHolder>> | null = null;
  if (prog === 'pasta') {
    holder = await nsHolder();
    args = ['--config-net', '-d', '-P', pidFile, String(holder.pid)];
  } else {
    args = ['-d', '-P', pidFile, '-s', tmpPath('passt.sock')];
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
    pid, threads, cmdline, young,
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
    t.deepEqual([...tuned.young.keys()].sort(), ['tapRx', 'tapTx', 'tcp0', 'udp']);
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
    // passt runs tap-RX inside TCP worker 0: three workers
    t.is(p.threads, 1 + 3 + m.v8PoolSize + NODE_OTHER_THREADS);
    t.deepEqual([...p.young.keys()].sort(), ['tapTx', 'tcp0', 'udp']);
    for (const [name, y] of p.young) t.is(y.limitMb, 3 * m.semiSpaceMb, name);
  } finally {
    await p.stop();
  }
});

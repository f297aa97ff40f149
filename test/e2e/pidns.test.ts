/**
 * pasta as PID 1 of its PID namespace (a container's entrypoint, `unshare
 * --pid --fork`, a CI sandbox), and the spawn helper's orphan detection
 * (issue 11). The helper used to take `getppid() == 1` for "pasta is gone",
 * which is also what a live pasta looks like when it is PID 1; it now
 * compares with the PID pasta passes it (native/src/helper.cc).
 * Runs only inside the namespace made by test/run.sh.
 */
import anyTest, { TestFn } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PASST, PASTA, inTestNs, NOT_IN_NS, run, waitFor, alive, nsHolder, processesWith, tmpPath } from '../helpers/env';
import { helperPath } from '../../src/shared/native';
import { asUser, readableInstall } from '../helpers/unpriv';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('pasta as PID 1 tests', (t) => t.pass(NOT_IN_NS));

const GREETING = 'hello from the host';

/** A host server on 127.0.0.1 that greets every connection and closes it. */
function greeter(): Promise<{ port: number; close: () => void }> {
  return new Promise((resolve) => {
    const s = net.createServer((c) => c.end(`${GREETING}\n`));
    s.listen(0, '127.0.0.1', () => resolve({ port: (s.address() as net.AddressInfo).port, close: () => s.close() }));
  });
}

/** A command reading the host's greeting through the IPv4 gateway (host-loopback mapping, over the tap). */
function readGreeting(port: number): string[] {
  return ['socat', '-u', '-T', '5', `TCP:192.0.2.1:${port},connect-timeout=5`, '-'];
}

e2e('spawn form as PID 1 (unshare --pid --fork --mount-proc): command runs, reaches the host, its status propagates', async (t) => {
  const g = await greeter();
  try {
    const r = await run('unshare', ['--pid', '--fork', '--mount-proc', PASTA, '--config-net', '--', 'sh', '-c',
      `${readGreeting(g.port).join(' ')}; exit 7`], { timeoutMs: 30000 });
    t.false(r.timedOut);
    t.is(r.code, 7, r.stderr);
    t.is(r.stdout.trim(), GREETING, r.stderr);
    t.notRegex(r.stderr, /Couldn't start command/);
    // and without --mount-proc: /proc is then the outer PID namespace's, where
    // pasta's view of the helper's PID names another process
    const r2 = await run('unshare', ['--pid', '--fork', PASTA, '--config-net', '--', 'sh', '-c',
      `${readGreeting(g.port).join(' ')}; exit 3`], { timeoutMs: 30000 });
    t.is(r2.code, 3, r2.stderr);
    t.is(r2.stdout.trim(), GREETING, r2.stderr);
  } finally {
    g.close();
  }
});

e2e('spawn form as PID 1 for a normal user (unshare --user --map-root-user --pid --fork --mount-proc)', async (t) => {
  const pasta = path.join(readableInstall(), 'bin', 'pasta');
  const r = await run(asUser()[0], [...asUser().slice(1), 'unshare', '--user', '--map-root-user', '--pid', '--fork',
    '--mount-proc', pasta, '--config-net', '--', 'sh', '-c', 'ip -br addr show eth0; exit 9'], { timeoutMs: 30000 });
  t.is(r.code, 9, r.stderr);
  t.regex(r.stdout, /192\.0\.2\.2\/24/);
});

e2e('attach form (--netns NAME) as PID 1 without -f: stays in the foreground, configures, quits on ip netns del', async (t) => {
  const name = `passt-ts-pid1-${process.pid}`;
  t.is(spawnSync('ip', ['netns', 'add', name]).status, 0);
  const g = await greeter();
  const pidFile = tmpPath('pasta.pid');
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', PASTA, '--config-net', '-P', pidFile, '--netns', name],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    t.truthy(await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').endsWith('\n'), 20000), stderr);
    t.is(fs.readFileSync(pidFile, 'utf8'), '1\n', 'the PID file names pasta itself (PID 1), no daemon');
    t.regex(stderr, /not daemonising/);
    t.is(child.exitCode, null, 'the process unshare waits for is still running');
    const r = await run('ip', ['netns', 'exec', name, ...readGreeting(g.port)], { timeoutMs: 15000 });
    t.is(r.stdout.trim(), GREETING, r.stderr + stderr);
  } finally {
    spawnSync('ip', ['netns', 'del', name]);
    g.close();
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
  t.is(await exited, 0, stderr);
  clearTimeout(timer);
});

/** The process `unshare --fork` started (PID 1 of the new namespace), by its PID in ours. */
function forkedChild(unsharePid: number): number | null {
  try {
    return Number(fs.readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim().split(' ')[0]) || null;
  } catch {
    return null;
  }
}

e2e('attach form (PID) as PID 1 with -f: reaches the host, quits when the PID is gone', async (t) => {
  const h = await nsHolder();
  const g = await greeter();
  const child = spawn('unshare', ['--pid', '--fork', PASTA, '-f', '--config-net', String(h.pid)],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    const r = await waitFor(async () => {
      const x = await run('nsenter', ['-t', String(h.pid), '-n', ...readGreeting(g.port)], { timeoutMs: 10000 });
      return x.stdout.includes(GREETING) ? x : null;
    }, 20000, 200);
    t.truthy(r, stderr);
  } finally {
    g.close();
    await h.kill();
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
  t.is(await exited, 0, stderr);
  clearTimeout(timer);
});

e2e('real orphaning is still detected: pasta killed with SIGKILL takes the helper and the command with it', async (t) => {
  const marker = `400.${process.pid}`;
  const child = spawn(PASTA, ['--', 'sleep', marker], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const cmd = await waitFor(() => processesWith(marker).find((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('sleep')), 20000);
  t.truthy(cmd, 'command started');
  const helper = processesWith(marker).find((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('pasta-helper'));
  t.truthy(helper, 'helper running');
  child.kill('SIGKILL');
  await exited;
  t.truthy(await waitFor(() => !alive(cmd as number) && !alive(helper as number), 5000), 'helper and command are gone');
  t.deepEqual(processesWith(marker), []);
});

/** Runs pasta-helper spawn as pasta would, claiming `parent` as its parent; resolves with its status line and exit. */
function helperSpawn(parent: number, cmd: string[]): Promise<{ status: string; code: number | null }> {
  const h = spawn(helperPath, ['spawn', '--status-fd', '3', '--release-fd', '4', '--parent-pid', String(parent), '--', ...cmd],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  let status = '';
  (h.stdio[3] as NodeJS.ReadableStream).on('data', (d) => {
    status += d;
    // release the command, as pasta does once networking is ready
    if (status.includes('\n')) (h.stdio[4] as NodeJS.WritableStream).end('1');
  });
  const timer = setTimeout(() => h.kill('SIGKILL'), 10000);
  return new Promise((resolve) => h.on('close', (code) => {
    clearTimeout(timer);
    resolve({ status, code });
  }));
}

e2e('the helper refuses to run the command when its parent is not the pasta it was told of', async (t) => {
  const ran = tmpPath('ran');
  // as pasta calls it: our PID is the parent's, the command runs
  const ok = await helperSpawn(process.pid, ['sh', '-c', `touch ${ran}`]);
  t.regex(ok.status, /^OK \d+ \d+\n$/);
  t.is(ok.code, 0);
  t.true(fs.existsSync(ran), 'command ran with the right parent');
  fs.rmSync(ran);
  // orphaned before PR_SET_PDEATHSIG was armed: the parent it sees is not the expected one
  const orphan = await helperSpawn(process.pid + 1, ['sh', '-c', `touch ${ran}`]);
  t.is(orphan.status, '', 'no namespaces made, nothing reported');
  t.is(orphan.code, 1);
  t.false(fs.existsSync(ran), 'command not run');
});

e2e('PID 1 pasta still ends on SIGINT (Ctrl-C), which init ignores without a handler', async (t) => {
  const h = await nsHolder();
  const pidFile = tmpPath('pasta.pid');
  const child = spawn('unshare', ['--pid', '--fork', PASTA, '-f', '-P', pidFile, String(h.pid)], { stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    t.truthy(await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8') === '1\n', 20000));
    const pasta = forkedChild(child.pid as number);
    t.truthy(pasta);
    process.kill(pasta as number, 'SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    t.is(await exited, 130);
    clearTimeout(timer);
  } finally {
    await h.kill();
  }
});

e2e('passt as PID 1 without -f: stays in the foreground and listens', async (t) => {
  const sock = tmpPath('passt.sock');
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', PASST, '-s', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.truthy(await waitFor(() => fs.existsSync(sock), 20000), stderr);
  t.regex(stderr, /not daemonising/);
  t.is(child.exitCode, null);
  process.kill(forkedChild(child.pid as number) as number, 'SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
  t.is(await exited, 0, stderr);
  clearTimeout(timer);
});

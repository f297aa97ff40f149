/**
 * Shared helpers of the end-to-end tests: where the programs are, running
 * commands with a time bound, waiting for conditions, and the guard that
 * keeps every end-to-end test inside the namespace made by test/run.sh.
 */
import { spawn, spawnSync, SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const PASTA = path.join(ROOT, 'bin', 'pasta');
export const PASST = path.join(ROOT, 'bin', 'passt');

/** True only inside the namespace made by test/run.sh. */
export function inTestNs(): boolean {
  if (process.env.PASST_TS_TEST_NS !== '1') return false;
  // the made namespace has exactly lo, eth0 and uplink0
  const links = fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2)
    .map((l) => l.split(':')[0].trim()).filter(Boolean).sort();
  return links.join(',') === 'eth0,lo,uplink0';
}

/** Message for skipped end-to-end tests. */
export const NOT_IN_NS = 'end-to-end tests run only through test/run.sh (made network namespace)';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

/** Runs a command to completion (killed after timeoutMs). */
export function run(cmd: string, args: string[], opts: SpawnOptions & { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    if (opts.input !== undefined) child.stdin?.end(opts.input); else child.stdin?.end();
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 30000);
    // 'close' waits for stdout/stderr EOF as well as the exit
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0, timedOut });
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls fn until it returns a truthy value or timeoutMs passes; returns the value or null. */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs: number, stepMs = 50): Promise<T | null> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) return null;
    await sleep(stepMs);
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // a zombie still answers kill(0): look at its state
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(st);
  } catch {
    return false;
  }
}

/** A process holding a fresh network namespace (unshare -n sleep). */
export interface NsHolder {
  pid: number;
  kill(): Promise<void>;
}

export async function nsHolder(extra: string[] = []): Promise<NsHolder> {
  const child = spawn('unshare', [...extra, '-n', 'sleep', '600'], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const pid = child.pid as number;
  // wait until the namespace differs from ours
  const own = fs.readlinkSync('/proc/self/ns/net');
  await waitFor(() => {
    try { return fs.readlinkSync(`/proc/${pid}/ns/net`) !== own; } catch { return false; }
  }, 5000, 10);
  return {
    pid,
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** `ip -j ARGS` inside the network namespace of pid (or at a netns path). */
export function ipJson(target: number | string, args: string[]): any {
  const ns = typeof target === 'number' ? ['-t', String(target), '-n'] : [`--net=${target}`];
  const r = spawnSync('nsenter', [...ns, 'ip', '-j', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout || '[]');
}

/**
 * A path in a new temporary directory, world-writable and sticky like /tmp
 * itself: a root-started passt or pasta runs as nobody after set-up
 * (isolation.ts) and removes its socket files there at exit.
 */
export function tmpPath(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passt-ts-'));
  fs.chmodSync(dir, 0o1777);
  return path.join(dir, name);
}

/** PIDs of processes whose command line contains `marker`. */
export function processesWith(marker: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.includes(marker) && alive(Number(d))) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

/** sha256 of b, hex. */
export function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * The counters a worker printed at exit with -d ("name: {json}"), e.g.
 * workerStats(stderr, 'tcp0'); {} when absent.
 */
export function workerStats(stderr: string, name: string): Record<string, number> {
  const m = new RegExp(`\\b${name}: (\\{.*\\})`).exec(stderr);
  return m ? JSON.parse(m[1]) : {};
}

/**
 * pasta running a long `sleep` as its command, for tests that act on both
 * sides: the test process plays the host, and tools run inside pasta's
 * namespace through `nsenter -t PID -n` (PID: the command's).
 */
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PASTA, processesWith, waitFor, sleep } from './env';

const TOOL = path.join(__dirname, 'tcpTool.js');

let serial = 0;

/** A process printing lines (a tcpTool inside the namespace). */
export class LineProc {
  readonly lines: string[] = [];
  private waiters: (() => void)[] = [];
  readonly exited: Promise<number | null>;
  stderr = '';

  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    child.stderr?.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    this.exited = new Promise((r) => child.on('exit', (code) => {
      for (const w of this.waiters.splice(0)) w();
      r(code);
    }));
  }

  /** First line matching re (waiting up to timeoutMs), or null. */
  async line(re: RegExp, timeoutMs = 10000): Promise<string | null> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const l = this.lines.find((x) => re.test(x));
      if (l !== undefined) return l;
      if (Date.now() > end || this.child.exitCode !== null) return null;
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), sleep(Math.min(200, end - Date.now()))]);
    }
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

export interface PastaNs {
  child: ChildProcess;
  /** PID (in our PID namespace) of the command, i.e. a process inside the namespace. */
  nsPid: number;
  stderr(): string;
  /** Starts tcpTool inside the namespace; servers have printed READY when this resolves. */
  tool(args: string[], server?: boolean): Promise<LineProc>;
  /** Runs a command inside the namespace to completion; its stdout. */
  nsExec(cmd: string[]): Promise<string>;
  /** Ends the command (pasta exits with it); resolves with pasta's exit status. */
  stop(): Promise<number | null>;
}

/** Starts `pasta --config-net ARGS -- sleep …` (with `env` added to ours) and waits for its readiness. */
export async function startPasta(args: string[], env: NodeJS.ProcessEnv = {}): Promise<PastaNs> {
  const marker = `300.${process.pid}${++serial}`;
  const child = spawn(PASTA, ['--config-net', ...args, '--', 'sleep', marker],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const pid = await waitFor(() => processesWith(marker).find((p) => {
    try { return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('sleep'); } catch { return false; }
  }), 20000, 20);
  if (!pid) {
    child.kill('SIGKILL');
    throw new Error(`pasta did not start: ${stderr}`);
  }
  const procs: LineProc[] = [];
  const ns: PastaNs = {
    child,
    nsPid: pid,
    stderr: () => stderr,
    async tool(targs: string[], server = true): Promise<LineProc> {
      const p = new LineProc(spawn('nsenter', ['-t', String(pid), '-n', process.execPath, TOOL, ...targs],
        { stdio: ['ignore', 'pipe', 'pipe'] }));
      procs.push(p);
      if (server && !(await p.line(/^READY$/, 10000))) throw new Error(`tcpTool ${targs.join(' ')} not ready: ${p.stderr}`);
      return p;
    },
    nsExec(cmd: string[]): Promise<string> {
      return new Promise((resolve) => {
        const c = spawn('nsenter', ['-t', String(pid), '-n', ...cmd], { stdio: ['ignore', 'pipe', 'ignore'] });
        let out = '';
        c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
        c.on('close', () => resolve(out));
      });
    },
    async stop(): Promise<number | null> {
      for (const p of procs) p.kill();
      // the command is PID 1 of its PID namespace: only SIGKILL reaches it from here
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      const t = setTimeout(() => child.kill('SIGKILL'), 10000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
  return ns;
}

/** Connects to host:port; rejects on error. */
export function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, allowHalfOpen: true });
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** A one-shot host server; resolves with the first connection's socket. */
export function hostServer(host: string, port: number): Promise<{ server: net.Server; conn: Promise<net.Socket> }> {
  return new Promise((resolve, reject) => {
    let gotConn!: (s: net.Socket) => void;
    const conn = new Promise<net.Socket>((r) => { gotConn = r; });
    const server = net.createServer({ allowHalfOpen: true }, (s) => gotConn(s));
    server.once('error', reject);
    server.listen({ host, port }, () => resolve({ server, conn }));
  });
}

/** Ports listening (TCP) or bound unconnected (UDP) per /proc/net text. */
export function procPorts(text: string, state: string): Set<number> {
  const out = new Set<number>();
  for (const l of text.split('\n').slice(1)) {
    const f = l.trim().split(/\s+/);
    if (f.length > 3 && f[3] === state) out.add(parseInt(f[1].split(':')[1], 16));
  }
  return out;
}

/** Host (our namespace) TCP listening ports. */
export function hostTcpListening(): Set<number> {
  const s = procPorts(fs.readFileSync('/proc/net/tcp', 'utf8'), '0A');
  for (const p of procPorts(fs.readFileSync('/proc/net/tcp6', 'utf8'), '0A')) s.add(p);
  return s;
}

/** Host UDP bound ports. */
export function hostUdpBound(): Set<number> {
  const s = procPorts(fs.readFileSync('/proc/net/udp', 'utf8'), '07');
  for (const p of procPorts(fs.readFileSync('/proc/net/udp6', 'utf8'), '07')) s.add(p);
  return s;
}

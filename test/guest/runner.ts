/**
 * Boots the test guest (build.sh) under qemu against a passt-compatible
 * program and runs one shell script in it.
 *
 * Theory of operation
 * - The caller must already be inside a made network namespace
 *   (test/run.sh, or perf/'s own): passt's host side is that namespace.
 * - passt runs in the foreground (`-f -s SOCK`, plus `-D none -S none`
 *   so the guest is told no resolver, plus the caller's arguments),
 *   optionally through a prefix such as `setpriv --reuid bench` (the C
 *   passt refuses to run as root). Once SOCK exists, qemu boots with
 *   TCG (the KVM of these machines cannot run a stock kernel), one vCPU,
 *   `-netdev stream` to SOCK and a virtio-net NIC.
 * - The per-run script and files go into a second, uncompressed cpio
 *   appended to the guest's initramfs: /guest/cmd and /guest/files/NAME.
 *   The guest's /init runs DHCP, then the script between the markers
 *   "@@GUEST-BEGIN …@@" and "@@GUEST-END rc=N …@@", then powers off.
 * - Every console line is kept and offered to the caller while the guest
 *   runs (waitLine), so host-side steps can follow the guest's.
 * - passt's CPU time (user + system, /proc/PID/stat, all threads) is read
 *   just before it is stopped: the benchmark's measure.
 */
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cpioPack, CpioEntry } from './cpio';

export const GUEST_CACHE = process.env.PASST_TS_GUEST_CACHE ?? '/var/cache/passt-ts-guest';
export const GUEST_IMAGE = path.join(GUEST_CACHE, 'image');
const QEMU = 'qemu-system-x86_64';

export interface GuestOptions {
  /** Shell script run in the guest (cwd /guest). */
  script: string;
  /** The passt program and leading arguments (default: this project's bin/passt). */
  passt: string[];
  /** Further passt arguments (e.g. ['-t', '13010']). */
  passtArgs?: string[];
  /** Prefix to run passt as another user, e.g. ['setpriv', '--reuid=bench', ...]. */
  asUser?: string[];
  /** Files for /guest/files/NAME. */
  files?: Record<string, Buffer>;
  /** Whole run limit (default 240 s). */
  timeoutMs?: number;
  /** Extra kernel command line. */
  append?: string;
  /** Guest memory in MiB (default 384). */
  memMiB?: number;
  /** Directory for the socket and logs (default: a new one under /tmp, removed after). */
  workDir?: string;
  /**
   * vhost-user instead of `-netdev stream`: passt gets --vhost-user, qemu a
   * shared memfd as the guest's memory and `-netdev vhost-user` (CLIENTS.md
   * §4.3), with `vectors=0` (under TCG the guest sees no MSI-X interrupts
   * from a vhost-user back end otherwise).
   */
  vhostUser?: boolean;
  /**
   * A passt already running (its socket and PID): the guest boots against
   * it, and it is left running after the run (restart tests). `passt`,
   * `passtArgs` and `asUser` are then unused.
   */
  external?: { sock: string; pid: number };
  /** SIGKILL qemu as soon as a console line matches (a guest killed mid-run). */
  killOn?: RegExp;
}

export interface GuestResult {
  /** The script's exit status, or null when the end marker never came. */
  rc: number | null;
  /** Console lines between the markers. */
  output: string;
  /** The whole console. */
  console: string;
  /** passt's stdout and stderr. */
  passtLog: string;
  /** passt's CPU seconds (user + system) over the run, or null if it had exited. */
  passtCpuS: number | null;
  /** passt's CPU seconds when the guest script started (after boot and DHCP), or null. */
  passtCpuAtBeginS: number | null;
  passtAlive: boolean;
  /** Seconds from qemu start to the begin marker, or null. */
  bootS: number | null;
  timedOut: boolean;
}

export interface RunningGuest {
  /** Console lines so far. */
  readonly lines: string[];
  /** Resolves with the first console line matching re (also past ones), or null after ms. */
  waitLine(re: RegExp, ms: number): Promise<string | null>;
  readonly done: Promise<GuestResult>;
  readonly passtPid: number;
}

/** Why the guest cannot run here, or null when it can. */
export function guestUnavailable(): string | null {
  const q = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  if (q.error || q.status !== 0) return `${QEMU} is not installed (apt-get install qemu-system-x86)`;
  const acc = spawnSync(QEMU, ['-accel', 'help'], { encoding: 'utf8' });
  if (!/\btcg\b/.test(acc.stdout ?? '')) return `${QEMU} has no TCG accelerator`;
  for (const f of ['vmlinuz', 'initramfs.img'])
    if (!fs.existsSync(path.join(GUEST_IMAGE, f))) return `no guest image in ${GUEST_IMAGE} (run test/guest/build.sh)`;
  return null;
}

function cpuSeconds(pid: number): number | null {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    // fields 14..17 (utime, stime, cutime, cstime) are 11..14 after the name
    const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    return ticks / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

function waitExit(c: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (c.exitCode !== null || c.signalCode !== null) r();
    else c.once('exit', () => r());
  });
}

/**
 * Writes the guest's initramfs for one run to `file`: the built image
 * followed by a second cpio with /guest/cmd (the script) and
 * /guest/files/NAME. Returns `file`.
 */
export function writeGuestInitrd(file: string, script: string, files?: Record<string, Buffer>): string {
  const entries: CpioEntry[] = [
    { name: 'guest', mode: 0o040755, data: Buffer.alloc(0) },
    { name: 'guest/cmd', mode: 0o100755, data: Buffer.from(script + '\n') },
  ];
  if (files && Object.keys(files).length) {
    entries.push({ name: 'guest/files', mode: 0o040755, data: Buffer.alloc(0) });
    for (const [n, d] of Object.entries(files).sort()) entries.push({ name: `guest/files/${n}`, mode: 0o100644, data: d });
  }
  fs.writeFileSync(file, Buffer.concat([fs.readFileSync(path.join(GUEST_IMAGE, 'initramfs.img')), cpioPack(entries)]));
  return file;
}

/**
 * The guest's console as lines: bytes go in as they come (qemu's stdout,
 * or a serial log file read as it grows), and callers wait for a line.
 */
export class ConsoleLines {
  readonly lines: string[] = [];
  private partial = '';
  private readonly waiters: { re: RegExp; resolve: (l: string | null) => void }[] = [];
  /** Called for each complete line. */
  onLine: (line: string) => void = () => {};

  push(d: Buffer): void {
    this.partial += d.toString('latin1');
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl).replace(/\r$/, '');
      this.partial = this.partial.slice(nl + 1);
      this.lines.push(line);
      this.onLine(line);
      if (process.env.PASST_TS_GUEST_VERBOSE) process.stderr.write(`guest: ${line}\n`);
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.waiters[i].re.test(line)) {
          this.waiters[i].resolve(line);
          this.waiters.splice(i, 1);
        }
      }
    }
  }

  /** The console ended: a partial last line counts, waiters get null. */
  end(): void {
    if (this.partial) this.lines.push(this.partial);
    this.partial = '';
    for (const w of this.waiters.splice(0)) w.resolve(null);
  }

  /** Resolves with the first line matching re (also past ones), or null after ms. */
  waitLine(re: RegExp, ms: number): Promise<string | null> {
    const past = this.lines.find((l) => re.test(l));
    if (past !== undefined) return Promise.resolve(past);
    return new Promise((resolve) => {
      const w = { re, resolve: (l: string | null) => { clearTimeout(t); resolve(l); } };
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(null);
      }, ms);
      this.waiters.push(w);
    });
  }

  /** The script's output (between the markers), its status, and the whole console. */
  result(): { output: string; rc: number | null; console: string } {
    const b = this.lines.findIndex((l) => l.includes('@@GUEST-BEGIN'));
    const e = this.lines.findIndex((l) => l.includes('@@GUEST-END'));
    return {
      output: b >= 0 ? this.lines.slice(b + 1, e >= 0 ? e : undefined).join('\n') : '',
      rc: e >= 0 ? Number(/rc=(\d+)/.exec(this.lines[e])?.[1] ?? NaN) : null,
      console: this.lines.join('\n'),
    };
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stands in for the ChildProcess of a passt the caller runs (o.external): never exits here, never killed. */
function externalPasst(pid: number): ChildProcess {
  return { pid, exitCode: null, signalCode: null, stdout: null, stderr: null, kill: () => false } as unknown as ChildProcess;
}

/** qemu's network arguments for a run: `-netdev stream`, or vhost-user over a shared memfd. */
export function qemuNet(o: Pick<GuestOptions, 'vhostUser' | 'memMiB'>, sock: string): string[] {
  if (!o.vhostUser) {
    return ['-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${sock}`,
      '-device', 'virtio-net-pci,netdev=n0,romfile='];
  }
  return [
    '-object', `memory-backend-memfd,id=mem0,share=on,size=${o.memMiB ?? 384}M`, '-numa', 'node,memdev=mem0',
    '-chardev', `socket,id=chr0,path=${sock}`, '-netdev', 'vhost-user,id=n0,chardev=chr0',
    '-device', 'virtio-net-pci,netdev=n0,romfile=,vectors=0',
  ];
}

/** Starts passt and the guest; see RunningGuest. */
export function startGuest(o: GuestOptions): RunningGuest {
  const own = !o.workDir;
  const dir = o.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'passt-ts-guest-'));
  fs.chmodSync(dir, 0o777);
  const ext = o.external;
  const sock = ext ? ext.sock : path.join(dir, 'passt.socket');
  const con = new ConsoleLines();

  const initrd = writeGuestInitrd(path.join(dir, 'initrd.img'), o.script, o.files);

  let passtLog = '';
  const passtArgv = [...(o.asUser ?? []), ...o.passt, '-f', '-s', sock, '-D', 'none', '-S', 'none',
    ...(o.vhostUser ? ['--vhost-user'] : []), ...(o.passtArgs ?? [])];
  const passt: ChildProcess = ext ? externalPasst(ext.pid)
    : spawn(passtArgv[0], passtArgv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  passt.stdout?.on('data', (d: Buffer) => { passtLog += d.toString(); });
  passt.stderr?.on('data', (d: Buffer) => { passtLog += d.toString(); });
  const passtExit = ext ? Promise.resolve() : waitExit(passt);

  const done = (async (): Promise<GuestResult> => {
    const deadline = Date.now() + (o.timeoutMs ?? 240000);
    const result: GuestResult = {
      rc: null, output: '', console: '', passtLog: '', passtCpuS: null, passtCpuAtBeginS: null, passtAlive: false, bootS: null,
      timedOut: false,
    };
    // the socket appears once passt listens
    const sockDeadline = Date.now() + 15000;
    while (!fs.existsSync(sock)) {
      if (passt.exitCode !== null || passt.signalCode !== null || Date.now() > sockDeadline) {
        result.passtLog = passtLog + `\n(passt did not create ${sock})`;
        passt.kill('SIGKILL');
        await passtExit;
        if (own) fs.rmSync(dir, { recursive: true, force: true });
        return result;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const t0 = Date.now();
    const qemu = spawn(QEMU, [
      '-accel', process.env.PASST_TS_GUEST_ACCEL ?? 'tcg', '-cpu', process.env.PASST_TS_GUEST_CPU ?? 'qemu64',
      '-m', String(o.memMiB ?? 384), '-smp', '1',
      '-nodefaults', '-no-user-config', '-nographic', '-serial', 'stdio', '-no-reboot',
      '-kernel', path.join(GUEST_IMAGE, 'vmlinuz'), '-initrd', initrd,
      '-append', `console=ttyS0 quiet panic=-1 ${o.append ?? ''}`.trim(),
      ...qemuNet(o, sock),
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    con.onLine = (line) => {
      if (o.killOn?.test(line)) qemu.kill('SIGKILL');
      if (result.bootS === null && line.includes('@@GUEST-BEGIN')) {
        result.bootS = (Date.now() - t0) / 1000;
        result.passtCpuAtBeginS = passt.pid ? cpuSeconds(passt.pid) : null;
      }
    };
    const onData = (d: Buffer) => con.push(d);
    qemu.stdout?.on('data', onData);
    qemu.stderr?.on('data', onData);
    const timer = setTimeout(() => {
      result.timedOut = true;
      qemu.kill('SIGKILL');
    }, Math.max(1000, deadline - Date.now()));
    await waitExit(qemu);
    clearTimeout(timer);
    con.end();

    result.passtAlive = ext ? pidAlive(ext.pid) : passt.exitCode === null && passt.signalCode === null;
    result.passtCpuS = passt.pid && result.passtAlive ? cpuSeconds(passt.pid) : null;
    if (!ext) {
      passt.kill('SIGTERM');
      const killer = setTimeout(() => passt.kill('SIGKILL'), 5000);
      await passtExit;
      clearTimeout(killer);
    }

    Object.assign(result, con.result());
    result.passtLog = passtLog;
    if (own) fs.rmSync(dir, { recursive: true, force: true });
    return result;
  })();

  return {
    lines: con.lines,
    passtPid: passt.pid ?? -1,
    done,
    waitLine: (re: RegExp, ms: number) => con.waitLine(re, ms),
  };
}

/** Runs a guest to the end. */
export function runGuest(o: GuestOptions): Promise<GuestResult> {
  return startGuest(o).done;
}

/** A short report of a failed run for assertion messages. */
export function describeRun(r: GuestResult): string {
  const tail = (s: string, n: number) => s.split('\n').slice(-n).join('\n');
  return `rc=${r.rc} timedOut=${r.timedOut} boot=${r.bootS}s passtAlive=${r.passtAlive}\n` +
    `--- console (tail) ---\n${tail(r.console, 40)}\n--- passt (tail) ---\n${tail(r.passtLog, 20)}`;
}

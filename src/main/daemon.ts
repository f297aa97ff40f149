/**
 * Daemonising without fork() (CLIENTS.md §0, SPEC.md §9.7).
 *
 * Node cannot fork, so the foreground process validates the command line,
 * then spawns the daemon (the same program with PASST_TS_STAGE=daemon) in a
 * new session with stdin/stdout/stderr on /dev/null and a readiness pipe on
 * fd 3. While setting up, the daemon sends its log lines through the pipe
 * ("LOG text"), and the foreground copies them to its stderr. Once the
 * namespace is configured and forwarded ports are bound the daemon sends
 * "READY pid" and closes the pipe; the foreground writes the PID file
 * ("PID\n", truncating) and exits 0 — the caller's readiness signal. If the
 * daemon exits first, the foreground exits non-zero with its messages.
 * Nothing of the caller's stdio stays open in the daemon, so callers using
 * Go's CombinedOutput() (Podman, Buildah, rootlesskit) return at once.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { log } from '../shared/log';
import { native } from '../shared/native';
import { PipeSink } from '../shared/logSinks';

export const STAGE_ENV = 'PASST_TS_STAGE';
export const READY_FD_ENV = 'PASST_TS_READY_FD';

/**
 * Removes the hand-over variables of the re-exec'd stages (STAGE_ENV,
 * READY_FD_ENV and the caller's own) from this process's environment once
 * they are read, so that nothing spawned later (pasta's command, a login
 * shell, a nested pasta) inherits them.
 */
export function forgetHandOver(...names: string[]): void {
  for (const k of [STAGE_ENV, READY_FD_ENV, ...names]) delete process.env[k];
}

/**
 * Our PID as /proc (and whoever started us) sees it: a daemon in the PID
 * namespace daemonize() made is 1 there. Read at start-up, while /proc is
 * still reachable (isolation.ts).
 */
export const procPid: number = (() => {
  try {
    return Number(fs.readlinkSync('/proc/self')) || process.pid;
  } catch {
    return process.pid;
  }
})();

/**
 * PID 1 of a PID namespace (a container's entrypoint, `unshare --pid
 * --fork pasta ...`) cannot daemonise: when it exits, the kernel kills every
 * other process of the namespace, the daemon too. There the program stays in
 * the foreground as with -f (the PID file gets its own PID), and says so.
 * The C original forks anyway and its daemon dies with the namespace.
 */
export function stayInForegroundAsInit(o: { foreground: boolean }): void {
  // the daemon itself may be PID 1 of the namespace daemonize() made for it
  if (o.foreground || process.pid !== 1 || process.env[STAGE_ENV] === 'daemon') return;
  log.info('PID 1 of its PID namespace: not daemonising (the namespace would end with this process)');
  o.foreground = true;
}

/** Writes "PID\n" to path, truncating an existing file (QEMU pre-creates it). */
export function writePidFile(path: string, pid: number): void {
  fs.writeFileSync(path, `${pid}\n`, { mode: 0o644 });
}

/**
 * Opens the PID file of a foreground run before the process is isolated
 * (isolation.ts: it may no longer reach the path afterwards); the file is
 * not truncated until writePidFd(), so a reader never sees it half-done.
 */
export function openPidFile(path: string): number {
  return fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644);
}

/** Writes "PID\n" into a file from openPidFile(), replacing what it held, and closes it. */
export function writePidFd(fd: number, pid: number): void {
  try {
    fs.ftruncateSync(fd, 0);
    fs.writeSync(fd, `${pid}\n`, 0);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Foreground half: spawns the daemon and waits for its readiness.
 * @param passFds descriptors to hand over (they appear as fd 4, 5, ... in the daemon)
 * @param env environment for the daemon (PASST_TS_* additions)
 * @param onFail called before the foreground exits non-zero (clean-up of what it made)
 * @param nodeArgs Node's flags for the daemon (conf.ts nodeFlags())
 */
export function daemonize(pidFile: string | null, passFds: number[], env: NodeJS.ProcessEnv, onFail: () => void = () => {},
  nodeArgs: readonly string[] = process.execArgv, newPidNs = false): Promise<never> {
  return new Promise<never>(() => {
    if (newPidNs) {
      // the daemon becomes PID 1 of a PID namespace of its own, as the
      // original's (isolation.ts says what it is for); we stay outside it,
      // and this thread can make no more threads (we only wait and exit)
      const r = native.newPidNamespaceForChildren();
      if (r < 0) log.debug(`No PID namespace for the daemon: ${native.strerror(-r)}`);
    }
    const child = spawn(process.execPath, [...nodeArgs, process.argv[1], ...process.argv.slice(2)], {
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore', 'pipe', ...passFds],
      env: { ...process.env, ...env, [STAGE_ENV]: 'daemon', [READY_FD_ENV]: '3' },
    });
    let ready = false;
    let buf = '';
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.setEncoding('utf8');
    pipe.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('LOG ')) process.stderr.write(line.slice(4) + '\n');
        else if (line.startsWith('READY ')) {
          ready = true;
          // ours, not its own: in its PID namespace it is 1
          const pid = child.pid ?? Number(line.slice(6));
          try {
            if (pidFile) writePidFile(pidFile, pid);
          } catch (e) {
            process.stderr.write(`Couldn't write PID file ${pidFile}: ${(e as Error).message}\n`);
            try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
            onFail();
            process.exit(1);
          }
          child.unref();
          process.exit(0);
        }
      }
    });
    child.on('exit', (code, signal) => {
      if (ready) return;
      void signal;
      onFail();
      process.exit(code ? code : 1);
    });
    child.on('error', (e) => {
      process.stderr.write(`Couldn't start daemon: ${e.message}\n`);
      onFail();
      process.exit(1);
    });
  });
}

/** Daemon half: the readiness pipe, and a log sink writing into it. */
export class ReadyChannel {
  readonly sink: PipeSink;
  private open = true;

  constructor(readonly fd: number) {
    this.sink = new PipeSink(fd);
  }

  /** Announces readiness; the foreground exits 0 on it. */
  ready(): void {
    if (!this.open) return;
    fs.writeSync(this.fd, `READY ${process.pid}\n`);
    fs.closeSync(this.fd);
    this.open = false;
  }
}

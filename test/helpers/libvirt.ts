/**
 * A real libvirt `qemu:///session` daemon for the end-to-end test of
 * libvirt's passt back end (test/e2e/libvirt.test.ts).
 *
 * Theory of operation
 * - libvirtd runs in the foreground as the unprivileged test user
 *   (unpriv.ts), with its own HOME and XDG_RUNTIME_DIR under one work
 *   directory, so the session's config (~/.config/libvirt/qemu.conf),
 *   logs, state and sockets all live there and go away with it. virsh
 *   finds the daemon through $XDG_RUNTIME_DIR/libvirt/libvirt-sock.
 * - libvirt 9.0 runs `passt` by name (a PATH lookup at exec time). The
 *   daemon gets a mount namespace of its own (`unshare --mount`, inside
 *   test/run.sh's), where a wrapper that starts this tree's passt is
 *   bind-mounted over /usr/bin/passt; the same wrapper's directory also
 *   leads PATH. Nothing outside the daemon's namespace sees either.
 * - Debian bookworm's libvirt 9.0.0 carries a Debian-only patch
 *   (debian/patches/debian/Disable-passt-support.patch, changelog
 *   9.0.0-2: "not quite ready for prime time") that makes the domain XML
 *   parser reject `<backend type='passt'/>` ("Invalid value for attribute
 *   'type' in element 'backend': 'passt'"); libvirt's passt code itself
 *   (qemu_passt.c) is compiled in unchanged. When the installed libvirt
 *   rejects passt, passtGuardLifted() writes a copy of libvirt.so in which
 *   that one check is a no-op and the daemon's namespace bind-mounts it
 *   over the library. On amd64 the check compiles to
 *   `test %eax,%eax; js …; cmpl $1,0x78(%rbx); je <error>` right after
 *   the virXMLPropEnum() call of virDomainNetBackendParseXML(); the 6-byte
 *   `je` becomes a 6-byte nop. The byte pattern must occur exactly once,
 *   otherwise the copy is not made and the caller skips, saying why.
 */
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, RunResult, waitFor } from './env';
import { ensureUser, TEST_USER } from './unpriv';

export const LIBVIRT_PKGS = 'libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-daemon-system';

/** Why the real libvirt cannot run here, or null. */
export function libvirtUnavailable(): string | null {
  for (const p of ['/usr/sbin/libvirtd', '/usr/bin/virsh']) {
    if (!fs.existsSync(p)) return `${p} is not installed (apt-get install ${LIBVIRT_PKGS})`;
  }
  if (!fs.existsSync('/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so'))
    return 'the libvirt qemu driver is not installed (apt-get install libvirt-daemon-driver-qemu)';
  return null;
}

const PROBE_XML = `<domain type='test'><name>passt-probe</name><memory unit='MiB'>64</memory>
<os><type>hvm</type></os><devices><interface type='user'><backend type='passt'/></interface></devices></domain>`;

/** Does this libvirt's XML parser accept `<backend type='passt'/>`? (the in-process test driver) */
function parserAcceptsPasst(dir: string, prefix: string[] = []): { ok: boolean; err: string } {
  const f = path.join(dir, 'passt-probe.xml');
  fs.writeFileSync(f, PROBE_XML);
  fs.chmodSync(f, 0o644);
  const argv = [...prefix, 'virsh', '-c', 'test:///default', 'define', f];
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 20000 });
  return { ok: r.status === 0, err: (r.stderr ?? '').trim() };
}

/** The libvirt shared library file (resolved), as the dynamic linker finds it. */
function libvirtSo(): string {
  return fs.realpathSync('/usr/lib/x86_64-linux-gnu/libvirt.so.0');
}

// test %eax,%eax; js rel32; cmpl $1,0x78(%rbx); je rel32
const GUARD = /\x85\xc0\x0f\x88[\s\S]{4}\x83\x7b\x78\x01\x0f\x84/g;
const JE_AT = 12;
const NOP6 = Buffer.from([0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00]);

export interface PasstGuard {
  /** A patched copy of libvirt.so to bind-mount over `target`, or null when none is needed. */
  copy: string | null;
  target: string;
  /** Why libvirt cannot be used with passt here, or null. */
  why: string | null;
  /** What the unmodified library said about `<backend type='passt'/>`. */
  original: string;
}

/** Checks the installed libvirt for the passt back end; makes the patched copy if needed (see top). */
export function passtGuardLifted(dir: string): PasstGuard {
  const target = libvirtSo();
  const probe = parserAcceptsPasst(dir);
  if (probe.ok) return { copy: null, target, why: null, original: 'accepted' };
  if (!/Invalid value for attribute 'type' in element 'backend': 'passt'/.test(probe.err))
    return { copy: null, target, why: `virsh could not probe the passt back end: ${probe.err}`, original: probe.err };
  const lib = fs.readFileSync(target);
  const hits = [...lib.toString('latin1').matchAll(GUARD)].map((m) => m.index ?? -1);
  if (hits.length !== 1) {
    return {
      copy: null, target, original: probe.err,
      why: `this libvirt rejects <backend type='passt'/> and its guard was not found once in ${target} (${hits.length} matches)`,
    };
  }
  NOP6.copy(lib, hits[0] + JE_AT);
  const copy = path.join(dir, path.basename(target));
  fs.writeFileSync(copy, lib, { mode: 0o644 });
  return { copy, target, why: null, original: probe.err };
}

export interface SessionOptions {
  /** Work directory (HOME, XDG_RUNTIME_DIR and the passt wrapper go here); must be short: socket paths. */
  dir: string;
  /** The command that runs this tree's passt (e.g. [node, INSTALL/bin/passt]). */
  passt: string[];
  guard: PasstGuard;
  /** Lines for ~/.config/libvirt/qemu.conf. */
  qemuConf: string;
}

/** One session daemon as the test user; see the top of this file. */
export class LibvirtSession {
  readonly home: string;
  readonly runtimeDir: string;
  readonly wrapper: string;
  private daemon: ChildProcess | null = null;
  private daemonOut = '';
  readonly uid: number;
  readonly gid: number;

  constructor(readonly o: SessionOptions) {
    ({ uid: this.uid, gid: this.gid } = ensureUser());
    this.home = path.join(o.dir, 'home');
    this.runtimeDir = path.join(o.dir, 'run');
    this.wrapper = path.join(o.dir, 'bin', 'passt');
    fs.mkdirSync(path.join(this.home, '.config', 'libvirt'), { recursive: true });
    fs.mkdirSync(this.runtimeDir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.dirname(this.wrapper), { recursive: true });
    fs.writeFileSync(path.join(this.home, '.config', 'libvirt', 'qemu.conf'), o.qemuConf);
    const quoted = o.passt.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    fs.writeFileSync(this.wrapper, `#!/bin/sh\n# this tree's passt, started by libvirt as "passt"\nexec ${quoted} "$@"\n`, { mode: 0o755 });
    spawnSync('chown', ['-R', `${this.uid}:${this.gid}`, o.dir]);
    fs.chmodSync(o.dir, 0o755);
  }

  /** Environment of the daemon and of virsh. */
  private env(): NodeJS.ProcessEnv {
    return {
      PATH: `${path.dirname(this.wrapper)}:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: this.home, XDG_RUNTIME_DIR: this.runtimeDir, USER: TEST_USER, LOGNAME: TEST_USER, LC_ALL: 'C',
    };
  }

  private asUser(): string[] {
    return ['setpriv', `--reuid=${this.uid}`, `--regid=${this.gid}`, '--clear-groups'];
  }

  /** Starts libvirtd (foreground, its own mount namespace) and waits for its socket. */
  async start(): Promise<void> {
    const mounts: string[] = [];
    if (fs.existsSync('/usr/bin/passt')) mounts.push(`mount --bind '${this.wrapper}' /usr/bin/passt`);
    if (this.o.guard.copy) mounts.push(`mount --bind '${this.o.guard.copy}' '${this.o.guard.target}'`);
    const script = [...mounts, 'exec "$@"'].join(' && ');
    const argv = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', ...this.asUser(), '/usr/sbin/libvirtd'];
    this.daemon = spawn(argv[0], argv.slice(1), { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.daemon.stdout?.on('data', (d: Buffer) => { this.daemonOut += d.toString(); });
    this.daemon.stderr?.on('data', (d: Buffer) => { this.daemonOut += d.toString(); });
    const sock = path.join(this.runtimeDir, 'libvirt', 'libvirt-sock');
    const up = await waitFor(() => fs.existsSync(sock) || this.daemon?.exitCode !== null, 30000, 50);
    if (!up || !fs.existsSync(sock)) throw new Error(`libvirtd did not start: ${this.daemonOut}`);
  }

  /** The daemon's PID (for the lookup of the processes it started). */
  get pid(): number {
    return this.daemon?.pid ?? -1;
  }

  /** Output of libvirtd so far. */
  get output(): string {
    return this.daemonOut;
  }

  /** Runs virsh (default connection qemu:///session) as the test user. */
  virsh(args: string[], timeoutMs = 60000): Promise<RunResult> {
    const conn = args[0] === '-c' ? [] : ['-c', 'qemu:///session'];
    const argv = [...this.asUser(), 'virsh', ...conn, ...args];
    return run(argv[0], argv.slice(1), { env: this.env(), timeoutMs });
  }

  /** Path of a domain's log file (qemu's stderr and the commands libvirt ran for it). */
  domainLog(name: string): string {
    return path.join(this.home, '.cache', 'libvirt', 'qemu', 'log', `${name}.log`);
  }

  /** Where libvirt keeps passt's socket and PID file (cfg->passtStateDir). */
  get passtStateDir(): string {
    return path.join(this.runtimeDir, 'libvirt', 'qemu', 'run', 'passt');
  }

  /** SIGTERM to libvirtd, SIGKILL after 10 s. */
  async stop(): Promise<void> {
    const d = this.daemon;
    if (!d || d.exitCode !== null || d.signalCode !== null) return;
    const gone = new Promise<void>((r) => d.once('exit', () => r()));
    d.kill('SIGTERM');
    const t = setTimeout(() => d.kill('SIGKILL'), 10000);
    await gone;
    clearTimeout(t);
  }
}

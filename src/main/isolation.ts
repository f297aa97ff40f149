/**
 * Self-isolation once set-up is complete (SPEC.md §11; the C original's
 * isolation.c): pasta, passt and slirp4netns-ts alike, unless --no-sandbox.
 *
 * Theory of operation
 *
 * The run-as user is picked from the command line before anything else
 * (`--runas UID[:GID]` or `LOGIN[:GROUP]`; otherwise the current user, or
 * `nobody` if that is root in the initial user namespace) and handed to
 * the later stages of the run (the user-namespace re-exec, the daemon) in
 * PASST_TS_RUNAS as IDs of the initial user namespace. Set-up runs with the
 * original credentials: it opens files, binds forwarded ports, creates the
 * tap and configures the namespace.
 *
 * Then, before readiness is announced, one step is applied to every thread
 * of the process (native isolateThreads(), isolate.cc: credentials,
 * namespaces and the root directory are per thread, and a Node process has
 * many):
 * - new mount, IPC and UTS namespaces, with an empty read-only tmpfs as
 *   the root (pivot_root, the old root detached), where we hold
 *   CAP_SYS_ADMIN (not a normal user's passt, which has no user namespace
 *   of its own). What run-time features still reach was opened before: the
 *   log and pcap files, the /proc/net files of `auto`, the netns
 *   directory of the quit watch, syslog's socket, the directories of the
 *   socket files removed at exit; every module is loaded by then (Node's
 *   own are in its binary, ours were required at start-up);
 * - the bounding, inheritable and ambient capability sets are emptied
 *   (without CAP_SETPCAP, a normal user's passt, the bounding set stays);
 * - supplementary groups are dropped, then GID and UID switched (as IDs of
 *   our user namespace: pasta runs in one of its own, which maps the
 *   run-as user too);
 * - effective and permitted capabilities are cut to what run-time features
 *   still need (runTimeCaps());
 * - no_new_privs is set.
 * Every thread's /proc/self/task/TID/status is checked afterwards; a
 * failure is fatal, as a failed sandbox is in the original.
 *
 * Last, the seccomp allow-list filter (seccompPolicy.ts: the list, grouped,
 * with the reasons and how it was measured) goes into every thread at once
 * (native seccompFilter(), SECCOMP_FILTER_FLAG_TSYNC; threads made later
 * inherit it). A call outside it kills the process with SIGSYS; with
 * --seccomp-log (or PASST_TS_SECCOMP_LOG=1) the kernel logs it instead and
 * lets it run. Only on x86_64, the architecture the list was measured on.
 *
 * PID namespace: a process cannot enter a new one itself
 * (unshare(CLONE_NEWPID) only places its later children there), so, as the
 * C original forks its daemon into one, our foreground process unshares
 * before it spawns the daemon (daemon.ts daemonize()), which is then PID 1
 * of a PID namespace of its own, seeing only itself and its children (the
 * helper and command of pasta): it cannot name, signal or trace anything
 * outside. Being PID 1, it gets no signal it has no handler for; runtime.ts
 * handles SIGINT and SIGHUP there, as for a container's entrypoint. Its PID
 * file, stats and log header give the PID /proc outside shows (procPid),
 * and a client's SO_PEERCRED PID reads 0 (logged as outside). A process
 * that stays in the foreground (-f, pasta with a command, PID 1 already)
 * has none, as in the original. What the namespace hides stays out of its
 * reach all the same: /proc is not mounted in the empty root, so no host
 * process can be listed or opened, and the filter denies every call that
 * acts on another process (ptrace, process_vm_*, pidfd_getfd, kcmp, kill);
 * only tgkill() stays, for raise() and abort() in the process itself.
 */
import * as fs from 'node:fs';
import type { Config, Mode } from '../shared/config';
import { PasstError } from '../shared/errors';
import { log } from '../shared/log';
import { native } from '../shared/native';
import { allowedNumbers, X86_64 } from './seccompPolicy';

/** Environment variable carrying the run-as user to later stages: "UID:GID" (initial user namespace). */
export const RUNAS_ENV = 'PASST_TS_RUNAS';

/**
 * Test hook: the name of a system call the seccomp filter denies, which the
 * process attempts once isolated and ready (tests only: it shows the filter
 * kills, or logs with --seccomp-log). Read once at start, then forgotten.
 */
export const FORBIDDEN_ENV = 'PASST_TS_TEST_FORBIDDEN_SYSCALL';
let forbiddenCall: string | null = null;

/** Takes the test hook's value from the environment (call before forgetHandOver()). */
export function takeTestHook(): void {
  const v = process.env[FORBIDDEN_ENV];
  if (v !== undefined && v !== '') forbiddenCall = v;
}

/** Capability numbers (linux/capability.h). */
export const CAP = {
  KILL: 5,
  NET_BIND_SERVICE: 10,
  NET_ADMIN: 12,
  SYS_ADMIN: 21,
} as const;

/** isolateThreads() flags (isolate.cc). */
const ISO = { SETGROUPS: 1, SETIDS: 2, CLAMP: 4, CAPS: 8, NO_NEW_PRIVS: 16, DETACH: 32 } as const;

export interface RunAs {
  uid: number;
  gid: number;
}

interface PwEntry {
  name: string;
  id: number;
  gid: number;
}

function readDb(path: string): PwEntry[] {
  let text = '';
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: PwEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || !/^\d+$/.test(f[2])) continue;
    out.push({ name: f[0], id: Number(f[2]), gid: /^\d+$/.test(f[3] ?? '') ? Number(f[3]) : Number(f[2]) });
  }
  return out;
}

const MAX_ID = 0xfffffffe;

function numericId(s: string): number | null {
  if (!/^\d+$/.test(s)) return null;
  const n = Number(s);
  return n <= MAX_ID ? n : null;
}

/**
 * Parses --runas: numeric IDs, or a login (its primary group unless a
 * group is given) and a group name looked up in /etc/passwd, /etc/group.
 * As in the original, a login name for UID 0 is refused (numeric 0 is not).
 * @throws PasstError
 */
export function parseRunAs(spec: string, passwd = '/etc/passwd', group = '/etc/group'): RunAs {
  const bad = () => new PasstError('PASST_ERR_RUNAS', `Invalid --runas option: ${spec}`);
  const [u, g] = spec.split(':', 2);
  let uid = numericId(u);
  let gid = uid;
  if (uid === null) {
    const pw = readDb(passwd).find((e) => e.name === u);
    if (!pw || pw.id === 0) throw bad();
    uid = pw.id;
    gid = pw.gid;
  }
  if (g !== undefined) {
    gid = numericId(g);
    if (gid === null) {
      const gr = readDb(group).find((e) => e.name === g);
      if (!gr) throw bad();
      gid = gr.id;
    }
  }
  return { uid, gid: gid as number };
}

/** True if this process is in the initial user namespace (its uid_map is the identity over the full range). */
export function inInitUserns(): boolean {
  try {
    const m = fs.readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/);
    return m.length === 3 && m[0] === '0' && m[1] === '0' && m[2] === '4294967295';
  } catch {
    return false;
  }
}

/**
 * The user to run as, as IDs of the initial user namespace, or null to
 * keep the current one (SPEC.md §11.1). A later stage of the run takes
 * what the first one decided (RUNAS_ENV).
 * @throws PasstError for a bad --runas
 */
export function chooseRunAs(runas: string | null): RunAs | null {
  const inherited = /^(\d+):(\d+)$/.exec(process.env[RUNAS_ENV] ?? '');
  if (inherited) return { uid: Number(inherited[1]), gid: Number(inherited[2]) };
  if (runas !== null) return parseRunAs(runas);
  if (process.geteuid?.() !== 0 || !inInitUserns()) return null;
  log.warn('Started as root, will change to nobody.');
  const pw = readDb('/etc/passwd').find((e) => e.name === 'nobody');
  return pw ? { uid: pw.id, gid: pw.gid } : { uid: 65534, gid: 65534 };
}

/** Maps an ID of the initial user namespace into ours through /proc/self/{uid,gid}_map, or null. */
export function mapId(which: 'uid' | 'gid', id: number): number | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/self/${which}_map`, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length !== 3 || f.some((x) => !Number.isFinite(x))) continue;
    const [inside, outside, count] = f;
    if (id >= outside && id < outside + count) return inside + (id - outside);
  }
  return null;
}

/**
 * Capabilities a run-time feature still needs after set-up (in our user
 * namespace), as a bit mask:
 * - pasta keeps CAP_SYS_ADMIN: namespace-side sockets are made at run time
 *   by a thread that setns()es into the target network namespace (spliced
 *   connections, socket pools, the `auto` scans of /proc/thread-self/net),
 *   as the original keeps it for the same reason;
 * - pasta keeps CAP_NET_BIND_SERVICE, as the original does: ports below
 *   1024 bound at run time (`auto` forwards, control-socket add-port, both
 *   ends of spliced connections). It only counts in network namespaces
 *   that our user namespace owns: a rootless pasta still can't bind them
 *   on the host;
 * - passt keeps CAP_NET_BIND_SERVICE only with --control (add-port of a
 *   port below 1024); the original keeps none, having no run-time binding.
 * - pasta that spawned a command and then switched to its run-as user
 *   (root-started) keeps CAP_KILL, in its own user namespace, where only
 *   the command's processes live: the kernel checks the permission to
 *   signal when it delivers pasta-helper's parent-death signal
 *   (PR_SET_PDEATHSIG: the helper and the command die with pasta), and
 *   nobody may not signal the helper, which runs as root there.
 * Nothing else: CAP_NET_ADMIN (tap and address set-up), CAP_SETUID/SETGID
 * (the switch itself) and the rest are no longer needed.
 */
export function runTimeCaps(mode: Mode, control: boolean, childAfterSwitch = false): bigint {
  const bit = (c: number) => 1n << BigInt(c);
  if (mode === 'pasta') return bit(CAP.SYS_ADMIN) | bit(CAP.NET_BIND_SERVICE) | (childAfterSwitch ? bit(CAP.KILL) : 0n);
  return control ? bit(CAP.NET_BIND_SERVICE) : 0n;
}

/** What isolate() did, for the log and tests. */
export interface IsolationResult {
  threads: number;
  uid: number;
  gid: number;
  /** The filesystem was detached (empty root). */
  detached: boolean;
  /** The seccomp filter is in. */
  seccomp: boolean;
}

/** True if the calling thread has capability `cap` in its effective set. */
export function hasCap(cap: number): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/thread-self/status', 'utf8'));
    return m !== null && ((BigInt(`0x${m[1]}`) >> BigInt(cap)) & 1n) === 1n;
  } catch {
    return false;
  }
}

/**
 * Isolates every thread of the process (see the top). Call once set-up is
 * complete, before readiness.
 * @param runAs from chooseRunAs(), or null
 * @param beforeSwitch called with the run-as IDs (of our namespace) just
 *   before they are taken, to hand over files that must stay removable
 * @param hasChild a spawned command's helper runs as our child (pasta)
 * @throws PasstError if any step fails
 */
export function isolate(cfg: Config, runAs: RunAs | null, beforeSwitch: (uid: number, gid: number) => void = () => {},
  hasChild = false): IsolationResult | null {
  if (cfg.noSandbox) {
    log.warn('--no-sandbox: not isolating the process');
    return null;
  }
  const uring = process.env.UV_USE_IO_URING;
  if (uring !== undefined && uring !== '' && uring !== '0' && process.arch === 'x64') {
    // libuv reads it when its loop starts, so it is too late to change here
    throw new PasstError('PASST_ERR_SANDBOX', `UV_USE_IO_URING=${uring}: io_uring is outside the seccomp filter; unset it or use --no-sandbox`);
  }
  let flags: number = ISO.CLAMP | ISO.SETGROUPS | ISO.CAPS | ISO.NO_NEW_PRIVS;
  const detach = hasCap(CAP.SYS_ADMIN);
  if (detach) flags |= ISO.DETACH;
  else log.debug('No CAP_SYS_ADMIN: the filesystem stays visible (no mount namespace of our own)');
  let uid = process.getuid?.() ?? 0;
  let gid = process.getgid?.() ?? 0;
  if (runAs) {
    const u = mapId('uid', runAs.uid);
    const g = mapId('gid', runAs.gid);
    if (u === null || g === null) {
      // a user namespace joined as root (`pasta PID` of another user's
      // container): the original fails earlier there, switching before
      // joining; we keep the IDs we have and isolate all the same
      log.warn(`Can't switch to UID ${runAs.uid}, GID ${runAs.gid}: not mapped in the user namespace`);
    } else {
      if (u !== uid || g !== gid || u !== process.geteuid?.()) {
        flags |= ISO.SETIDS;
        beforeSwitch(u, g);
      }
      uid = u;
      gid = g;
    }
  }
  const keep = runTimeCaps(cfg.mode, cfg.control !== null, hasChild && (flags & ISO.SETIDS) !== 0);
  const errTid = new Int32Array(1);
  const r = native.isolateThreads(flags, uid, gid, Number(keep & 0xffffffffn), Number(keep >> 32n), errTid);
  if (r < 0) {
    if (errTid[0] === -1) throw new PasstError('PASST_ERR_SANDBOX', `Failed to detach isolating namespaces: ${native.strerror(-r)}`);
    const who = errTid[0] ? `thread ${errTid[0]}` : 'main thread';
    throw new PasstError('PASST_ERR_SANDBOX', `Failed to sandbox process (${who}): ${native.strerror(-r)}`);
  }
  const filtered = installFilter(cfg);
  log.debug(`Isolated ${r} threads: UID ${uid}, GID ${gid}, capabilities kept 0x${keep.toString(16)}, no_new_privs` +
    (detach ? ', empty root' : '') + (filtered ? `, seccomp filter${cfg.seccompLog ? ' (log mode)' : ''}` : ''));
  return { threads: r, uid, gid, detached: detach, seccomp: filtered };
}

/**
 * The seccomp filter, the last step (see the top). False where there is
 * none (not x86_64).
 * @throws PasstError if it can't be installed
 */
function installFilter(cfg: Config): boolean {
  if (process.arch !== 'x64') {
    log.warn(`No seccomp filter on ${process.arch}: its allow-list is measured on x86_64 only`);
    return false;
  }
  const r = native.seccompFilter(allowedNumbers(), cfg.seccompLog);
  if (r < 0) throw new PasstError('PASST_ERR_SANDBOX', `Failed to install the seccomp filter: ${native.strerror(-r)}`);
  if (cfg.seccompLog) log.warn('--seccomp-log: system calls outside the seccomp filter are logged by the kernel (dmesg), not fatal');
  if (forbiddenCall !== null) {
    const name = forbiddenCall;
    // once readiness is announced (the rest of set-up is synchronous)
    setImmediate(() => {
      const nr = X86_64[name];
      if (nr === undefined) {
        log.warn(`${FORBIDDEN_ENV}: unknown system call ${name}`);
        return;
      }
      log.warn(`Test hook: attempting the forbidden system call ${name} (${nr})`);
      const res = native.forbiddenSyscall(nr);
      log.warn(`Test hook: ${name} returned ${res < 0 ? native.strerror(-res) : res}: not killed (seccomp log mode)`);
    });
  }
  return true;
}

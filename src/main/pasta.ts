/**
 * pasta's namespace lifecycle (SPEC.md §9): spawn a command in new
 * namespaces or attach to an existing network namespace, create and
 * configure the tap there, and quit with the command or when the namespace
 * goes away.
 *
 * Theory of operation — stages of one run (PASST_TS_STAGE):
 * 1. (unset) Parse options; open the target netns and its parent directory
 *    once (a PID keeps its original namespace even if recycled). If a user
 *    namespace must be created (spawning) or joined (a PID's, or --userns),
 *    execve() pasta-helper, which takes that step single-threaded and execs
 *    Node again with the descriptors inherited ("userns" stage).
 * 2. Attached without -f: the foreground process spawns the daemon and
 *    waits for its readiness (daemon.ts); the daemon is the "daemon" stage.
 * 3. Set up: host addresses and routes (netlink, init namespace), spawn the
 *    command through pasta-helper (new net/mount/UTS/IPC/PID namespaces; it
 *    waits to be released), create the tap inside the namespace from a
 *    native thread, bring lo up, --config-net, start the pipeline, start the
 *    quit watch, then announce readiness: release the command, tell the
 *    foreground, or write the PID file.
 */
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Config } from '../shared/config';
import { PasstError } from '../shared/errors';
import { log } from '../shared/log';
import { native, helperPath, check } from '../shared/native';
import {
  O_RDONLY, O_PATH, O_DIRECTORY, O_CLOEXEC, IFF_TAP, IFF_NO_PI, NSFS_MAGIC, IFF_VNET_HDR, TUNSETOFFLOAD,
  TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, VIRTIO_NET_HDR_LEN as VNET_HDR_LEN,
} from '../shared/linux';
import { resolveConfig, Options, relaunchNodeFlags } from './conf';
import { discoverFamily, readResolvConf, AF_INET, AF_INET6, HostFamily } from './hostInfo';
import { Netlink } from './netlink';
import { basicNsSetup, configNet, readLinkLocal } from './nsConfig';
import { daemonize, ReadyChannel, openPidFile, writePidFd, stayInForegroundAsInit, STAGE_ENV, READY_FD_ENV, forgetHandOver } from './daemon';
import { watchNetns } from './quit';
import { setupRunLogging, afterReadyLogging, beforeIsolation } from './logging';
import { Runtime } from './runtime';
import { chooseRunAs, isolate, RunAs, RUNAS_ENV, FORBIDDEN_ENV, takeTestHook } from './isolation';

const NSFD_ENV = 'PASST_TS_NSFD';
const DIRFD_ENV = 'PASST_TS_DIRFD';
const NSPATH_ENV = 'PASST_TS_NSPATH';

/** The namespace pasta attaches to, opened once. */
interface Target {
  nsfd: number;
  dirfd: number;
  path: string;
}

function openTarget(o: Options): Target {
  const p = o.targetPid > 0 ? `/proc/${o.targetPid}/ns/net` : (o.netns as string);
  // no O_CLOEXEC: these survive the execve() into the user namespace
  const nsfd = native.open(p, O_RDONLY, 0);
  if (nsfd < 0) throw new PasstError('PASST_ERR_NETNS', `Couldn't open network namespace ${p}: ${native.strerror(-nsfd)}`);
  const type = native.fstatfs(nsfd);
  if (type !== NSFS_MAGIC) {
    native.close(nsfd);
    throw new PasstError('PASST_ERR_NETNS', `${p} is not a network namespace`);
  }
  // readable if we may (quit.ts lists it once we may no longer search it)
  let dirfd = native.open(path.dirname(p), O_RDONLY | O_DIRECTORY, 0);
  if (dirfd < 0) dirfd = native.open(path.dirname(p), O_PATH | O_DIRECTORY, 0);
  if (dirfd < 0) {
    native.close(nsfd);
    throw new PasstError('PASST_ERR_NETNS', `Couldn't open ${path.dirname(p)}: ${native.strerror(-dirfd)}`);
  }
  return { nsfd, dirfd, path: p };
}

function targetFromEnv(): Target | null {
  const ns = process.env[NSFD_ENV];
  if (ns === undefined) return null;
  return { nsfd: Number(ns), dirfd: Number(process.env[DIRFD_ENV]), path: process.env[NSPATH_ENV] ?? '' };
}

/** 'new', a user namespace path to join, or null. */
function wantedUserns(o: Options): string | null {
  if (o.command !== null) return 'new';
  if (o.userns) return o.userns;
  if (o.targetPid > 0 && !o.netnsOnly) return `/proc/${o.targetPid}/ns/user`;
  return null;
}

function sameNs(p: string): boolean {
  try {
    const a = fs.statSync(p);
    const b = fs.statSync('/proc/self/ns/user');
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    throw new PasstError('PASST_ERR_USERNS', `Couldn't open user namespace ${p}: ${native.strerror(2)}`);
  }
}

function reexecInUserns(o: Options, userns: string, target: Target | null, runAs: RunAs | null): never {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  env[STAGE_ENV] = 'userns';
  if (target) {
    env[NSFD_ENV] = String(target.nsfd);
    env[DIRFD_ENV] = String(target.dirfd);
    env[NSPATH_ENV] = target.path;
  }
  // root spawning: the new namespace maps the run-as user too, for the
  // switch after set-up (isolation.ts)
  const alsoMap = userns === 'new' && runAs && process.geteuid?.() === 0 ? ['--also-map', `${runAs.uid}:${runAs.gid}`] : [];
  const args = ['pasta-helper', 'userns', ...(userns === 'new' ? ['--new', ...alsoMap] : ['--join', userns]), '--',
    process.execPath, ...relaunchNodeFlags(o.mode), process.argv[1], ...process.argv.slice(2)];
  const r = native.execve(helperPath, args, Object.entries(env).map(([k, v]) => `${k}=${v}`));
  throw new PasstError('PASST_ERR_USERNS', `Couldn't run ${helperPath}: ${native.strerror(-r)}`);
}

/** Host templates per family, honouring -4/-6, -i and --outbound-if*. */
export function hostTemplates(o: Options): { t4: HostFamily | null; t6: HostFamily | null } {
  const nl = Netlink.host();
  try {
    const t4 = o.only6 ? null : discoverFamily(nl, AF_INET, o.ifname ?? o.outboundIf4);
    const t6 = o.only4 ? null : discoverFamily(nl, AF_INET6, o.ifname ?? o.outboundIf6);
    for (const t of [t4, t6]) if (t?.ambiguous) log.info(`Multiple interfaces with routes, using ${t.ifname}`);
    return { t4, t6 };
  } finally {
    nl.close();
  }
}

/** The spawned command: its helper, the helper's PID as /proc names it, and its release. */
interface Spawned {
  helper: ChildProcess;
  procPid: number;
  release: () => void;
}

/**
 * Spawns the command through pasta-helper; resolves once its namespaces exist.
 * The helper is told our PID to detect, race-free, that we died before it
 * could arm PR_SET_PDEATHSIG (helper.cc): comparing its parent with 1 would
 * take a pasta that is PID 1 of its PID namespace for a dead one. The death
 * signal follows the thread that forked: this is the main thread, which
 * lives as long as the process.
 */
function spawnCommand(cfg: Config): Promise<Spawned> {
  let cmd = cfg.command ?? [];
  const login = cmd.length === 0;
  if (login) cmd = [process.env.SHELL || '/bin/sh'];
  const hostname = `pasta-${os.hostname()}`.slice(0, 64);
  // the environment is the caller's: the hand-over variables are gone by now (forgetHandOver)
  const helper = spawn(helperPath, ['spawn', '--status-fd', '3', '--release-fd', '4', '--parent-pid', String(process.pid),
    '--hostname', hostname,
    ...(login ? ['--login'] : []), '--', ...cmd], { stdio: ['inherit', 'inherit', 'inherit', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    const status = helper.stdio[3] as NodeJS.ReadableStream;
    status.setEncoding('utf8');
    const onExit = (code: number | null) =>
      reject(new PasstError('PASST_ERR_SPAWN', `Couldn't start command (status ${code})`));
    helper.once('exit', onExit);
    status.on('data', (c: string) => {
      buf += c;
      if (!buf.includes('\n')) return;
      helper.removeListener('exit', onExit);
      const line = buf.trim();
      if (!line.startsWith('OK ')) {
        reject(new PasstError('PASST_ERR_SPAWN', `Couldn't create namespaces for the command: ${line}`));
        return;
      }
      // "OK <command pid> <helper pid in /proc>": the latter differs from
      // helper.pid when /proc is another PID namespace's (unshare --pid
      // without --mount-proc, pasta being PID 1 there)
      const procPid = Number(line.split(' ')[2]) || (helper.pid as number);
      const rel = helper.stdio[4] as NodeJS.WritableStream;
      resolve({ helper, procPid, release: () => rel.end('1') });
    });
  });
}

/** Enables checksum and TSO offloads on a tap opened with IFF_VNET_HDR; returns the header size. */
function tapOffload(tapfd: number): number {
  const r = native.ioctlInt(tapfd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
  if (r < 0) log.debug(`TUNSETOFFLOAD: ${native.strerror(-r)}: no offloads`);
  return VNET_HDR_LEN;
}

/**
 * Gives socket files we made to the run-as user, who removes them at exit
 * (the original makes them as that user in the first place).
 */
export function handOver(paths: (string | null | undefined)[], uid: number, gid: number): void {
  for (const p of paths) {
    if (!p) continue;
    try {
      fs.lchownSync(p, uid, gid);
    } catch (e) {
      log.debug(`Couldn't hand ${p} over to UID ${uid}: ${(e as Error).message}`);
    }
  }
}

/** What a front end built on pasta's engine (slirp4netns-ts) adds to a run. */
export interface PastaHooks {
  /**
   * Called once everything is set up, just before readiness is announced;
   * a rejection is fatal like any set-up failure.
   */
  beforeReady?(rt: Runtime, cfg: Config): Promise<void> | void;
  /** Called once the process is isolated, as readiness is announced. */
  ready?(): void;
  /** Socket files the front end made, handed over to the run-as user with ours. */
  socketFiles?: string[];
}

/** Runs pasta; resolves only through process exit. */
export async function runPasta(o: Options, hooks: PastaHooks = {}): Promise<void> {
  const stage = process.env[STAGE_ENV];
  // the run-as user, decided by the first stage (isolation.ts)
  const runAs = o.noSandbox ? null : chooseRunAs(o.runas);
  if (runAs) process.env[RUNAS_ENV] = `${runAs.uid}:${runAs.gid}`;

  // 1. target namespace and user namespace
  let target: Target | null = null;
  if (stage === undefined) {
    if (o.command === null) target = openTarget(o);
    const userns = wantedUserns(o);
    if (userns === 'new' || (userns !== null && !sameNs(userns))) reexecInUserns(o, userns, target, runAs);
  } else {
    target = targetFromEnv();
  }

  // 2. daemonise (attached, no -f): the foreground process waits here and exits
  let readyChannel: ReadyChannel | null = null;
  stayInForegroundAsInit(o);
  if (!o.foreground) {
    if (stage !== 'daemon') {
      await daemonize(o.pidFile, target ? [target.nsfd, target.dirfd] : [],
        target ? { [NSFD_ENV]: '4', [DIRFD_ENV]: '5', [NSPATH_ENV]: target.path } : {}, undefined,
        relaunchNodeFlags(o.mode), !o.noSandbox);
    }
    readyChannel = new ReadyChannel(Number(process.env[READY_FD_ENV]));
  }
  takeTestHook();
  forgetHandOver(NSFD_ENV, DIRFD_ENV, NSPATH_ENV, RUNAS_ENV, FORBIDDEN_ENV);
  if (target) {
    // from here on, don't leak them into anything we spawn
    native.fcntl(target.nsfd, 2 /* F_SETFD */, 1 /* FD_CLOEXEC */);
    native.fcntl(target.dirfd, 2, 1);
  }

  // 3. set-up
  const { t4, t6 } = hostTemplates(o);
  const cfg = resolveConfig(o, { tmpl4: t4, tmpl6: t6, resolv: readResolvConf() });
  setupRunLogging(cfg, readyChannel);
  for (const w of o.warnings) log.warn(w);
  if (cfg.localMode) log.info('No routable interface: switch to local mode');

  const rt = new Runtime(cfg);
  let spawned: Spawned | null = null;
  let nsfd: number;
  if (cfg.command !== null) {
    spawned = await spawnCommand(cfg);
    const h = spawned.helper;
    h.on('exit', (code, signal) => {
      const status = code ?? 128 + (signal ? os.constants.signals[signal] : 0);
      void rt.shutdown(status, true);
    });
    nsfd = check(native.open(`/proc/${spawned.procPid}/ns/net`, O_RDONLY | O_CLOEXEC, 0), 'open', 'command network namespace');
  } else {
    nsfd = (target as Target).nsfd;
  }

  // tap device and namespace configuration
  const nameOut = new Uint8Array(16);
  // the tap's virtio-net header and offloads (DESIGN.md "Performance
  // levers"): with them the namespace hands us TSO super-frames of up to
  // 64 KiB and partial checksums even at MTU 1500, and takes ours: the TCP
  // worker sends GSO frames with checksum offload (frames of every other
  // stage carry a zeroed header: no offload)
  const offload = cfg.tuning.offload;
  const tapfd = native.nsTun(nsfd, cfg.nsIfname, IFF_TAP | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0), nameOut);
  if (tapfd < 0) throw new PasstError('PASST_ERR_TAP', `Failed to open tap device ${cfg.nsIfname} in namespace: ${native.strerror(-tapfd)}`);
  const vnetLen = offload ? tapOffload(tapfd) : 0;
  const tapName = Buffer.from(nameOut).toString('utf8').replace(/\0.*$/s, '');
  const nsNl = Netlink.inNamespace(nsfd);
  const link = basicNsSetup(nsNl, cfg, tapName);
  if (cfg.configNet) configNet(nsNl, cfg, link, t4, t6);
  else link.linkLocal = readLinkLocal(nsNl, link.ifindex);
  nsNl.close();

  await rt.start({ nsfd, tapfd, tapName, backend: 'tap', guestMac: link.mac, guestLinkLocal: link.linkLocal, vnetLen });

  // quit detection (attached only)
  if (target && !cfg.noNetnsQuit) {
    const w = watchNetns(target.dirfd, path.dirname(target.path), path.basename(target.path), () => {
      log.info('Namespace gone, exiting');
      void rt.shutdown(0);
    });
    log.debug(`Watching ${target.path} for namespace removal (${w.mode})`);
  }

  // readiness, once isolated (the PID file was opened with the original credentials)
  if (hooks.beforeReady) await hooks.beforeReady(rt, cfg);
  const pidFd = cfg.pidFile && o.foreground ? openPidFile(cfg.pidFile) : -1;
  beforeIsolation(cfg);
  isolate(cfg, runAs, (uid, gid) => handOver([cfg.control, ...(hooks.socketFiles ?? [])], uid, gid), spawned !== null);
  if (pidFd >= 0) writePidFd(pidFd, process.pid);
  if (hooks.ready) hooks.ready();
  if (readyChannel) readyChannel.ready();
  afterReadyLogging(cfg);
  rt.afterReady();
  if (spawned) spawned.release();
}

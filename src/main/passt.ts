/**
 * passt mode: serves a qemu guest over a UNIX stream socket (SPEC.md §1.2,
 * §10; CLIENTS.md §0, §3, §4).
 *
 * Theory of operation — one run:
 * 1. Options are parsed (index.ts). With `--fd FD` the descriptor is
 *    checked at once, so a bad one fails in the foreground.
 * 2. The listening socket (tapBackend.ts: `-s PATH` or the first free
 *    /tmp/passt_N.socket) is made first, by the process the caller started,
 *    before anything slow: libvirt 9.0 starts qemu without waiting for
 *    passt, and qemu 7.2's `-netdev stream` connects once, at its start, so
 *    the socket must exist as soon as it can. Connections wait in its
 *    backlog until the pipeline runs.
 * 3. Without -f the foreground spawns the daemon and waits for its
 *    readiness (daemon.ts): the daemon has none of the caller's stdio, gets
 *    the listening socket or the `--fd` socket as fd 4 (fd 3 is the
 *    readiness pipe), and its log lines reach the caller's stderr until it
 *    is ready. The foreground writes the PID file and exits 0 — the
 *    readiness later libvirt and qemu's `-netdev passt` wait for. If the
 *    daemon fails, the foreground removes the socket file it made.
 * 4. Set-up: host templates (netlink) and resolv.conf → Config, logging,
 *    the pipeline (backend 'stream'), forwarded ports. Only then readiness
 *    is announced.
 * 5. Clients come one at a time (ClientSlot). When one leaves, passt waits
 *    for the next, keeping flows and forwarded ports; with `--one-off` or
 *    `--fd` it exits 0 instead. SIGTERM/SIGQUIT exit 0 (runtime.ts). The
 *    socket file goes away with the process.
 */
import { PasstError } from '../shared/errors';
import { log } from '../shared/log';
import { native, helperPath } from '../shared/native';
import { F_SETFD, FD_CLOEXEC } from '../shared/linux';
import { resolveConfig, Options, relaunchNodeFlags } from './conf';
import { readResolvConf } from './hostInfo';
import { daemonize, ReadyChannel, openPidFile, writePidFd, stayInForegroundAsInit, STAGE_ENV, READY_FD_ENV, forgetHandOver } from './daemon';
import { setupRunLogging, afterReadyLogging, beforeIsolation } from './logging';
import { Runtime } from './runtime';
import { hostTemplates, handOver } from './pasta';
import { Removable } from './removable';
import { chooseRunAs, isolate, hasCap, CAP, RunAs, RUNAS_ENV, FORBIDDEN_ENV, takeTestHook } from './isolation';
import { ClientSlot, openListener, removeSocketFile, adoptClientFd, qemuHints, Listener } from './tapBackend';
import { VhostUserSlot, vhostUserHints } from './vhostUser';

/** Environment variable telling the daemon where the `--fd` socket went. */
const CLIENT_FD_ENV = 'PASST_TS_CLIENT_FD';
/** The daemon receives the --fd socket, or the listening socket, as this descriptor (after the readiness pipe on 3). */
const DAEMON_CLIENT_FD = 4;
/** Environment variable carrying the listening socket to the daemon: "FD INODE PATH". */
const LISTENER_ENV = 'PASST_TS_LISTENER';

/** The listening socket the foreground made, as the daemon received it. */
function inheritedListener(): Listener | null {
  const m = /^(\d+) (\d+) (.+)$/.exec(process.env[LISTENER_ENV] ?? '');
  if (!m) return null;
  native.fcntl(Number(m[1]), F_SETFD, FD_CLOEXEC);
  // the file's directory is opened now, for its removal at exit (removable.ts)
  return { fd: Number(m[1]), ino: Number(m[2]), path: m[3], file: Removable.of(m[3]) };
}

/**
 * Replaces the process (same PID) by passt again inside a new user
 * namespace made by pasta-helper (a Node process cannot unshare one); if
 * none can be made, it runs without (--soft).
 */
function reexecInOwnUserns(o: Options): never {
  if (o.fd >= 0) native.fcntl(o.fd, F_SETFD, 0);  // the --fd socket survives the execve()
  const env: string[] = [];
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== STAGE_ENV) env.push(`${k}=${v}`);
  env.push(`${STAGE_ENV}=userns`);
  const r = native.execve(helperPath, ['pasta-helper', 'userns', '--new', '--soft', '--',
    process.execPath, ...relaunchNodeFlags(o.mode), process.argv[1], ...process.argv.slice(2)], env);
  throw new PasstError('PASST_ERR_USERNS', `Couldn't run ${helperPath}: ${native.strerror(-r)}`);
}

/** Runs passt; resolves only through process exit. */
export async function runPasst(o: Options): Promise<void> {
  const stage = process.env[STAGE_ENV];
  // the run-as user, decided by the first stage (isolation.ts)
  const runAs = o.noSandbox ? null : chooseRunAs(o.runas);
  if (runAs) process.env[RUNAS_ENV] = `${runAs.uid}:${runAs.gid}`;
  // a normal user's passt runs in a user namespace of its own, as the
  // original does, where isolation can detach the filesystem and empty the
  // bounding set (the host's network namespace is still the one served)
  if (stage === undefined && !o.noSandbox && !hasCap(CAP.SYS_ADMIN)) reexecInOwnUserns(o);

  // the connected socket of --fd: checked before anything else
  let clientFd = -1;
  if (o.fd >= 0) {
    clientFd = stage === 'daemon' ? Number(process.env[CLIENT_FD_ENV] ?? DAEMON_CLIENT_FD) : o.fd;
    if (native.fcntl(clientFd, 1 /* F_GETFD */, 0) < 0)
      throw new PasstError('PASST_ERR_FD', `Invalid --fd ${o.fd}: ${native.strerror(9 /* EBADF */)}`);
    adoptClientFd(clientFd);
  }

  // the socket qemu connects to: first of all (see the top), so a busy path also fails at once
  let listener: Listener | null = null;
  if (clientFd < 0) listener = stage === 'daemon' ? inheritedListener() : openListener(o.socketPath);
  if (clientFd < 0 && !listener) throw new PasstError('PASST_ERR_SOCKET', 'Listening socket not received from the foreground');

  // daemonise (no -f): the foreground waits here and exits
  let readyChannel: ReadyChannel | null = null;
  stayInForegroundAsInit(o);
  if (!o.foreground) {
    if (stage !== 'daemon') {
      const l = listener;
      await daemonize(o.pidFile, clientFd >= 0 ? [clientFd] : [l!.fd],
        clientFd >= 0
          ? { [CLIENT_FD_ENV]: String(DAEMON_CLIENT_FD) }
          : { [LISTENER_ENV]: `${DAEMON_CLIENT_FD} ${l!.ino} ${l!.path}` },
        () => { if (l) removeSocketFile(l); }, relaunchNodeFlags(o.mode), !o.noSandbox);
    }
    readyChannel = new ReadyChannel(Number(process.env[READY_FD_ENV]));
  }
  takeTestHook();
  forgetHandOver(CLIENT_FD_ENV, LISTENER_ENV, RUNAS_ENV, FORBIDDEN_ENV);

  try {
    await serve(o, listener, clientFd, readyChannel, runAs);
  } catch (e) {
    // a failed start leaves no socket file behind
    if (listener) removeSocketFile(listener);
    throw e;
  }
}

/** Set-up after the socket exists (and after daemonising), then readiness. */
async function serve(o: Options, listener: Listener | null, clientFd: number, readyChannel: ReadyChannel | null,
  runAs: RunAs | null): Promise<void> {
  // configuration from the host (SPEC §2: addressing is the same as pasta's)
  const { t4, t6 } = hostTemplates(o);
  const cfg = resolveConfig(o, { tmpl4: t4, tmpl6: t6, resolv: readResolvConf() });
  setupRunLogging(cfg, readyChannel);
  for (const w of o.warnings) log.warn(w);
  if (cfg.localMode) log.info('No routable interface: switch to local mode');

  const rt = new Runtime(cfg);
  const backend = o.vhostUser ? 'vhost-user' : 'stream';
  await rt.start({ nsfd: -1, tapfd: -1, tapName: backend, backend, guestMac: null, guestLinkLocal: null });
  const slot = o.vhostUser ? new VhostUserSlot(rt.sup) : new ClientSlot(rt.sup);
  const oneOff = cfg.oneOff || clientFd >= 0;
  slot.onGone = (reason) => {
    log.info(`Client connection closed: ${reason}`);
    if (oneOff) void rt.shutdown(0);
  };
  rt.onExit = () => {
    slot.closeAll();
    if (listener) removeSocketFile(listener);
  };

  // forwarded ports (-t/-u) were bound by rt.start(), before readiness (forward.ts)

  if (listener) {
    await slot.listen(listener.fd);
    for (const l of (o.vhostUser ? vhostUserHints : qemuHints)(listener.path)) log.info(l);
  } else {
    slot.attach(clientFd, 0);
  }

  // readiness, once isolated (the PID file was opened with the original credentials)
  const pidFd = cfg.pidFile && o.foreground ? openPidFile(cfg.pidFile) : -1;
  beforeIsolation(cfg);
  isolate(cfg, runAs, (uid, gid) => handOver([listener?.path, cfg.control], uid, gid));
  if (pidFd >= 0) writePidFd(pidFd, process.pid);
  if (readyChannel) readyChannel.ready();
  afterReadyLogging(cfg);
  rt.afterReady();
}

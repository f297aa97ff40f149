/**
 * passt mode: serves a qemu guest over a UNIX stream socket (SPEC.md §1.2,
 * §10; CLIENTS.md §0, §3, §4).
 *
 * Theory of operation — one run:
 * 1. Options are parsed (index.ts). With `--fd FD` the descriptor is
 *    checked at once, so a bad one fails in the foreground.
 * 2. Without -f the foreground spawns the daemon and waits for its
 *    readiness (daemon.ts): the daemon has none of the caller's stdio, gets
 *    the `--fd` socket as fd 4 (fd 3 is the readiness pipe), and its log
 *    lines reach the caller's stderr until it is ready. The foreground
 *    writes the PID file and exits 0 — the readiness libvirt and qemu's
 *    `-netdev passt` wait for.
 * 3. Set-up: host templates (netlink) and resolv.conf → Config, logging,
 *    the listening socket (tapBackend.ts: `-s PATH` or the first free
 *    /tmp/passt_N.socket), the pipeline (backend 'stream'), forwarded ports.
 *    Only then readiness is announced, so the socket already listens when
 *    the caller goes on to start qemu.
 * 4. Clients come one at a time (ClientSlot). When one leaves, passt waits
 *    for the next, keeping flows and forwarded ports; with `--one-off` or
 *    `--fd` it exits 0 instead. SIGTERM/SIGQUIT exit 0 (runtime.ts). The
 *    socket file goes away with the process.
 */
import { PasstError } from '../shared/errors';
import { log } from '../shared/log';
import { native } from '../shared/native';
import { resolveConfig, Options } from './conf';
import { readResolvConf } from './hostInfo';
import { daemonize, ReadyChannel, writePidFile, STAGE_ENV, READY_FD_ENV } from './daemon';
import { setupRunLogging, afterReadyLogging } from './logging';
import { Runtime } from './runtime';
import { hostTemplates } from './pasta';
import { ClientSlot, openListener, removeSocketFile, adoptClientFd, qemuHints } from './tapBackend';

/** Environment variable telling the daemon where the `--fd` socket went. */
const CLIENT_FD_ENV = 'PASST_TS_CLIENT_FD';
/** The daemon receives the --fd socket as this descriptor (after the readiness pipe on 3). */
const DAEMON_CLIENT_FD = 4;

/** Runs passt; resolves only through process exit. */
export async function runPasst(o: Options): Promise<void> {
  const stage = process.env[STAGE_ENV];

  // the connected socket of --fd: checked before anything else
  let clientFd = -1;
  if (o.fd >= 0) {
    clientFd = stage === 'daemon' ? Number(process.env[CLIENT_FD_ENV] ?? DAEMON_CLIENT_FD) : o.fd;
    if (native.fcntl(clientFd, 1 /* F_GETFD */, 0) < 0)
      throw new PasstError('PASST_ERR_FD', `Invalid --fd ${o.fd}: ${native.strerror(9 /* EBADF */)}`);
    adoptClientFd(clientFd);
  }

  // daemonise (no -f): the foreground waits here and exits
  let readyChannel: ReadyChannel | null = null;
  if (!o.foreground) {
    if (stage !== 'daemon') {
      await daemonize(o.pidFile, clientFd >= 0 ? [clientFd] : [],
        clientFd >= 0 ? { [CLIENT_FD_ENV]: String(DAEMON_CLIENT_FD) } : {});
    }
    readyChannel = new ReadyChannel(Number(process.env[READY_FD_ENV]));
  }

  // configuration from the host (SPEC §2: addressing is the same as pasta's)
  const { t4, t6 } = hostTemplates(o);
  const cfg = resolveConfig(o, { tmpl4: t4, tmpl6: t6, resolv: readResolvConf() });
  setupRunLogging(cfg, readyChannel);
  for (const w of o.warnings) log.warn(w);
  if (cfg.localMode) log.info('No routable interface: switch to local mode');

  // the socket qemu connects to (before the pipeline, so a busy path fails fast)
  const listener = clientFd < 0 ? openListener(cfg.socketPath) : null;

  const rt = new Runtime(cfg);
  await rt.start({ nsfd: -1, tapfd: -1, tapName: 'stream', backend: 'stream', guestMac: null, guestLinkLocal: null });
  const slot = new ClientSlot(rt.sup);
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
    for (const l of qemuHints(listener.path)) log.info(l);
  } else {
    slot.attach(clientFd, 0);
  }

  // readiness
  if (cfg.pidFile && o.foreground) writePidFile(cfg.pidFile, process.pid);
  if (readyChannel) readyChannel.ready();
  afterReadyLogging(cfg);
  rt.afterReady();
}

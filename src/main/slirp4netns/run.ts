/**
 * slirp4netns-ts: a slirp4netns 1.x command running pasta's engine.
 *
 * Theory of operation
 * - The slirp4netns command line is validated (options.ts) and mapped to a
 *   pasta command line, which pasta's own parser turns into Options; then
 *   runPasta() attaches to the namespace in the foreground, exactly as
 *   `pasta --foreground PID` would (joining the PID's user namespace, or
 *   --userns-path, through pasta-helper: the process is re-executed with
 *   the same argv, so parsing runs again there; messages are printed once).
 * - Just before readiness (a pasta hook): the API socket is bound with the
 *   forwarding table behind it, the --exit-fd watch starts, slirp4netns'
 *   "Starting slirp" summary goes to stdout, and "1" is written to the
 *   --ready-fd, which is then closed (slirp4netns >= 0.4 writes it after
 *   the API socket is set up; Podman and rootlesskit wait for it).
 * - Like slirp4netns the process never daemonises and keeps running when
 *   the namespace's processes are gone; it exits 0 on an event on the
 *   --exit-fd (data, end of file, or an invalid descriptor, which poll()
 *   reports too) and on SIGTERM.
 * - API forwards are host-side listeners of pasta's Forwarder: bound in the
 *   init namespace on host_addr:host_port and delivered to the namespace's
 *   address at guest_port (spliced for loopback clients, through the tap
 *   otherwise), like pasta's -t/-u, and entered in its table.
 * - --control PATH (or SLIRP4NETNS_TS_CONTROL) opens passt-ts' control
 *   socket as pasta's --control does: `ports` lists the API's forwards.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PasstError, ErrnoError } from '../../shared/errors';
import { log } from '../../shared/log';
import type { ListenerInfo } from '../../shared/messages';
import { native } from '../../shared/native';
import { parseOptions } from '../conf';
import { STAGE_ENV } from '../daemon';
import type { HeldPort } from '../forward';
import type { Runtime } from '../runtime';
import { HostfwdApi, Backend, Proto } from './api';
import { ApiServer } from './apiServer';
import { parseSlirpArgs, slirpAddressing, toPastaArgv, SlirpOptions, SlirpUsageError, SlirpAddressing } from './options';
import { slirpUsage, slirpVersion } from './usage';

function writeLine(fd: number, line: string): void {
  try {
    fs.writeSync(fd, line + '\n');
  } catch { /* closed */ }
}

const stderrLine = (line: string) => writeLine(2, line);

/** slirp4netns' start-up summary (stdout). */
export function banner(o: SlirpOptions, a: SlirpAddressing): string {
  const row = (k: string, v: string) => `* ${(k + ':').padEnd(16)} ${v}\n`;
  let s = 'Starting slirp\n' + row('MTU', String(o.mtu)) + row('Network', a.network) + row('Netmask', a.netmask) +
    row('Gateway', a.gateway) + (o.disableDns ? '' : row('DNS', a.dns)) +
    row('DHCP begin', a.guest) + row('DHCP end', a.guest) + row('Recommended IP', a.guest);
  if (o.apiSocket) s += row('API Socket', o.apiSocket);
  if (o.outboundAddr) s += row('Outbound IPv4', o.outboundAddr);
  if (o.outboundAddr6 && o.enableIpv6) s += row('Outbound IPv6', o.outboundAddr6);
  if (o.enableIpv6) s += row('IPv6 Network', `${a.network6}/64`) + row('IPv6 Gateway', a.gateway6) +
    (o.disableDns ? '' : row('IPv6 DNS', a.dns6));
  if (!o.disableHostLoopback) {
    s += `WARNING: 127.0.0.1:* on the host is accessible as ${a.gateway} ` +
      '(set --disable-host-loopback to prohibit connecting to 127.0.0.1:*)\n';
  }
  return s;
}

/**
 * API forwards as host-side listeners of pasta's Forwarder, entered in its
 * table (the control socket's `ports` lists them as -t/-u forwards).
 */
function forwarderBackend(rt: Runtime): Backend {
  return {
    add(proto: Proto, hostAddr: string, hostPort: number, guestPort: number) {
      const fwd = rt.fwd;
      if (!fwd) return { error: 'forwarding is not running' };
      const r = fwd.bindHost(proto, hostAddr, null, hostPort);
      if ('errno' in r) return { error: `bind: ${native.strerror(r.errno)}` };
      const delta = (guestPort - hostPort + 0x10000) & 0xffff;
      const ls: ListenerInfo[] = r.fds.map((fd) => ({ id: fwd.allocId(), fd, proto, side: 'host', port: hostPort, delta }));
      const held: HeldPort = { opt: proto === 'tcp' ? '-t' : '-u', addr: hostAddr, ifname: null, port: hostPort, delta, ls };
      if (!fwd.hold(held)) {
        for (const l of ls) native.close(l.fd);
        return { error: 'bind: Address already in use' };
      }
      return { handle: held };
    },
    remove(handle: unknown) {
      rt.fwd?.unhold(handle as HeldPort);
    },
  };
}

/**
 * Exit on any poll() event on fd: data, end of file, error, or a
 * descriptor Node cannot watch as a stream (a regular file is always
 * readable; a closed one reports POLLNVAL).
 */
function watchExitFd(fd: number, onEvent: () => void): void {
  let fired = false;
  const fire = () => {
    if (fired) return;
    fired = true;
    onEvent();
  };
  let s: net.Socket;
  try {
    s = new net.Socket({ fd, readable: true, writable: false });
  } catch {
    setImmediate(fire);
    return;
  }
  s.on('data', fire);
  s.on('end', fire);
  s.on('error', fire);
  s.on('close', fire);
}

async function beforeReady(o: SlirpOptions, rt: Runtime): Promise<void> {
  const a = slirpAddressing(o.cidr);
  let server: ApiServer | null = null;
  if (o.apiSocket) {
    const api = new HostfwdApi(a.guest, forwarderBackend(rt), stderrLine);
    try {
      server = await ApiServer.listen(o.apiSocket, api, stderrLine);
    } catch (e) {
      throw new PasstError('PASST_ERR_CONF', `api_bindlisten: ${(e as Error).message}`);
    }
    const prev = rt.onExit;
    rt.onExit = () => {
      server?.close();
      prev();
    };
  }
  if (o.exitFd >= 0) {
    watchExitFd(o.exitFd, () => {
      stderrLine('exitfd event');
      void rt.shutdown(0);
    });
  }
}

/** Readiness, once the process is isolated: the banner, then the ready descriptor. */
function announce(o: SlirpOptions): void {
  writeLine(1, banner(o, slirpAddressing(o.cidr)).replace(/\n$/, ''));
  if (o.readyFd >= 0) {
    try {
      fs.writeSync(o.readyFd, '1');
    } catch (e) {
      stderrLine(`write(ready_fd): ${(e as Error).message}`);
    }
    try {
      fs.closeSync(o.readyFd);
    } catch { /* already closed */ }
  }
}

function fail(msg: string): never {
  if (msg) stderrLine(msg);
  process.exit(1);
}

/** Entry point when invoked as slirp4netns-ts (or any name containing "slirp4netns"). */
export function mainSlirp4netns(): void {
  const prog = path.basename(process.argv[1] ?? 'slirp4netns-ts');
  const firstStage = process.env[STAGE_ENV] === undefined;
  let so: SlirpOptions;
  try {
    so = parseSlirpArgs(prog, process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof SlirpUsageError)) throw e;
    if (e.message) stderrLine(e.message);
    if (e.showUsage) writeLine(1, slirpUsage(prog).replace(/\n$/, ''));
    process.exit(1);
  }
  if (so.help) {
    process.stdout.write(slirpUsage(prog));
    return;
  }
  if (so.version) {
    process.stdout.write(slirpVersion(prog));
    return;
  }
  if (firstStage) for (const w of so.warnings) writeLine(1, w);
  // Node marks inherited descriptors close-on-exec at start-up: keep the
  // ready and exit descriptors across pasta-helper's re-execution
  for (const fd of [so.readyFd, so.exitFd]) if (fd >= 0) native.fcntl(fd, 2 /* F_SETFD */, 0);

  const argv = toPastaArgv(so);
  if (process.env.SLIRP4NETNS_TS_DEBUG === '1') argv.splice(argv.indexOf('--quiet'), 1, '--debug');
  log.configure({ prefix: prog });
  let opts;
  try {
    opts = parseOptions('pasta', argv);
  } catch (e) {
    if (e instanceof PasstError) fail(e.message);
    throw e;
  }
  log.configure({ level: opts.logLevel ?? 'info', timestamps: opts.logLevel === 'debug' });
  native.raiseNofile();
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { runPasta } = require('../pasta') as typeof import('../pasta');
  runPasta(opts, {
    beforeReady: (rt) => beforeReady(so, rt),
    ready: () => announce(so),
    socketFiles: so.apiSocket ? [so.apiSocket] : [],
  }).catch((e: unknown) => {
    if (e instanceof PasstError || e instanceof ErrnoError) fail(e.message);
    fail(`Internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  });
}

/**
 * passt's side of qemu's `-netdev stream` socket (SPEC.md §10, CLIENTS.md
 * §4): the listening UNIX socket, and the one client connection at a time
 * that the pipeline's tap-RX and tap-TX workers read and write.
 *
 * Theory of operation
 * - Path: `-s PATH`, else the first free `/tmp/passt_N.socket`, N = 1…99.
 *   A path is busy when a probe connect() succeeds or fails with anything
 *   but ENOENT, ECONNREFUSED or EACCES (a stale socket file); a free path is
 *   unlinked and bound. A busy explicit path is fatal. On exit the socket
 *   file is removed, if the path still names the one we bound (a client
 *   such as libvirt 9.0 leaves it to us, and it would only be stale).
 * - The listening socket is ours (native socket/bind/listen); Node's
 *   net.Server only watches it, so the main thread learns about a new
 *   connection without a loop of its own. Connections arrive paused
 *   (libuv never reads them); the descriptor is duplicated and Node's copy
 *   closed at once, so the pipeline owns a plain descriptor nobody else
 *   polls.
 * - One client at a time: a connection arriving while one is active is
 *   closed at once (its PID logged). The client's descriptor goes to tap-RX
 *   and tap-TX with a `tap` control message; when either reports
 *   `tapGone` (EOF, hang-up, error, bad frame length), both are switched
 *   to -1 and the descriptor is closed only once both acknowledged the
 *   switch, so a worker never touches a number that was closed and reused.
 *   Flows, forwarded ports and the guest's learnt state stay as they are.
 * - `--fd FD` (qemu's `-netdev passt`, muvm): an already connected socket,
 *   no listener; the run ends when it goes away (one-off implied).
 */
import * as net from 'node:net';
import * as fs from 'node:fs';
import { Removable } from './removable';
import { PasstError } from '../shared/errors';
import { log } from '../shared/log';
import { native, E } from '../shared/native';
import {
  AF_UNIX, SOCK_STREAM, SOCK_CLOEXEC, SOCK_NONBLOCK, SOL_SOCKET, SO_PEERCRED, SO_SNDBUF, SO_RCVBUF,
  F_DUPFD_CLOEXEC, F_GETFL, F_SETFL, F_SETFD, FD_CLOEXEC, O_NONBLOCK,
} from '../shared/linux';
import type { Supervisor } from './supervisor';

/** sizeof(sun_path) */
export const UNIX_PATH_MAX = 108;
/** Probed paths: /tmp/passt_1.socket … /tmp/passt_99.socket (SPEC §13.4). */
export const PROBE_MAX = 99;
const SO_TYPE = 3;

/** struct sockaddr_un bytes for a path. */
export function unixSockaddr(path: string): Uint8Array {
  const p = Buffer.from(path);
  if (p.length >= UNIX_PATH_MAX) throw new PasstError('PASST_ERR_SOCKET', `UNIX socket path too long: ${path}`);
  const sa = new Uint8Array(2 + p.length + 1);
  sa[0] = AF_UNIX;
  sa.set(p, 2);
  return sa;
}

/** True if something accepts connections on path (SPEC §10 probing rule). */
export function socketPathBusy(path: string): boolean {
  const fd = native.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw new PasstError('PASST_ERR_SOCKET', `UNIX socket: ${native.strerror(-fd)}`);
  const r = native.connect(fd, unixSockaddr(path));
  native.close(fd);
  return !(r === -E.ENOENT || r === -E.ECONNREFUSED || r === -E.EACCES);
}

/** A listening socket made by openListener(). */
export interface Listener {
  fd: number;
  path: string;
  /** Inode of the socket file as bound, to recognise it at exit. */
  ino: number;
  /** The file, for its removal at exit (through its directory: see removable.ts). */
  file?: Removable | null;
}

/**
 * Creates the listening socket: the given path, or the first free probed
 * one. Returns the descriptor and the path bound.
 */
export function openListener(given: string | null): Listener {
  const candidates = given !== null ? [given] : Array.from({ length: PROBE_MAX }, (_, i) => `/tmp/passt_${i + 1}.socket`);
  for (const path of candidates) {
    if (socketPathBusy(path)) {
      if (given !== null) throw new PasstError('PASST_ERR_SOCKET', `Socket path ${path} already in use`);
      continue;
    }
    try {
      fs.unlinkSync(path);
    } catch { /* not there */ }
    const fd = native.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw new PasstError('PASST_ERR_SOCKET', `UNIX socket: ${native.strerror(-fd)}`);
    let r = native.bind(fd, unixSockaddr(path));
    if (r === 0) r = native.listen(fd, 0);
    if (r < 0) {
      native.close(fd);
      if (given !== null || r !== -E.EADDRINUSE)
        throw new PasstError('PASST_ERR_SOCKET', `Couldn't bind UNIX socket ${path}: ${native.strerror(-r)}`);
      continue;
    }
    const file = Removable.of(path);
    return { fd, path, ino: file ? file.ino : fs.statSync(path).ino, file };
  }
  throw new PasstError('PASST_ERR_SOCKET', `No free UNIX socket path in /tmp/passt_1.socket … _${PROBE_MAX}.socket`);
}

/** Removes the socket file at exit, unless the path now names another file. */
export function removeSocketFile(l: Listener): void {
  if (l.file === undefined) l.file = Removable.of(l.path);
  if (l.file && l.file.ino === l.ino) l.file.remove();
}

/** The lines the original prints so users know how to start qemu. */
export function qemuHints(path: string): string[] {
  return [
    `UNIX domain socket bound at ${path}`,
    'You can now start qemu (>= 7.2, with commit 13c6be96618c):',
    `    kvm ... -device virtio-net-pci,netdev=s -netdev stream,id=s,server=off,addr.type=unix,addr.path=${path}`,
    'or qrap, for earlier qemu versions:',
    '    ./qrap 5 kvm ... -net socket,fd=5 -net nic,model=virtio',
  ];
}

/** PID of the process at the other end of a UNIX socket, or 0. */
export function peerPid(fd: number): number {
  const cred = new Uint8Array(12);
  if (native.getsockoptBytes(fd, SOL_SOCKET, SO_PEERCRED, cred) < 0) return 0;
  return new DataView(cred.buffer).getInt32(0, true);
}

/**
 * Checks that fd is an open stream socket usable as the client connection
 * (`--fd`), and makes it non-blocking.
 */
export function adoptClientFd(fd: number): void {
  const type = native.getsockoptInt(fd, SOL_SOCKET, SO_TYPE);
  if (type < 0) throw new PasstError('PASST_ERR_FD', `Invalid --fd ${fd}: ${native.strerror(-type)}`);
  if (type !== SOCK_STREAM) throw new PasstError('PASST_ERR_FD', `Invalid --fd ${fd}: not a stream socket`);
  const fl = native.fcntl(fd, F_GETFL, 0);
  if (fl >= 0 && !(fl & O_NONBLOCK)) native.fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  native.fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/** Socket buffers as large as the system allows (SPEC §10: "maximised"). */
function maximiseBuffers(fd: number): void {
  native.setsockoptInt(fd, SOL_SOCKET, SO_SNDBUF, 0x7fffffff);
  native.setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, 0x7fffffff);
}

/** Descriptor retired from the workers, closed once both acknowledged. */
interface Retired {
  fd: number;
  seq: number;
}

/**
 * The one-client slot: hands client descriptors to tap-RX/tap-TX and takes
 * them back. Also used for `--fd` (a client given from the start).
 */
export class ClientSlot {
  /** The active client's descriptor, or -1. */
  fd = -1;
  private seq = 0;
  private readonly acked = { tapRx: 0, tapTx: 0 };
  private readonly retired: Retired[] = [];
  private server: net.Server | null = null;
  /** Clients served so far. */
  served = 0;
  /** Called after a client left (with the reason the worker gave). */
  onGone: (reason: string) => void = () => {};

  constructor(private readonly sup: Supervisor) {
    sup.onTapGone = (fd, reason) => this.gone(fd, reason);
    sup.onTapAck = (stage, seq) => {
      this.acked[stage] = Math.max(this.acked[stage], seq);
      this.closeRetired();
    };
  }

  /** Makes fd the client (workers switch to it); pid: the client's, 0 if none (--fd), -1 if outside our PID namespace. */
  attach(fd: number, pid: number): void {
    maximiseBuffers(fd);
    this.fd = fd;
    this.served++;
    this.switchTo(fd);
    log.info(pid > 0 ? `Accepted connection from PID ${pid}`
      : pid < 0 ? `Accepted connection on fd ${fd} (the client's PID is outside our PID namespace)` : `Client connection on fd ${fd}`);
  }

  /** Starts accepting on a listening descriptor created by openListener(). */
  listen(listenFd: number): Promise<void> {
    const server = net.createServer({ pauseOnConnect: true });
    this.server = server;
    server.on('connection', (sock) => this.accepted(sock));
    server.on('error', (e) => log.error(`UNIX socket: ${e.message}`));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      // Node re-issues listen() with this backlog; 1 is the nearest to the original's 0 it allows
      server.listen({ fd: listenFd, backlog: 1 }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  }

  /** Stops accepting (one-off: the single client came and went). */
  stopListening(): void {
    this.server?.close();
    this.server = null;
  }

  private accepted(sock: net.Socket): void {
    const h = (sock as unknown as { _handle?: { fd?: number } })._handle;
    const nodeFd = h?.fd ?? -1;
    const pid = nodeFd >= 0 ? peerPid(nodeFd) : 0;
    if (this.fd >= 0 || nodeFd < 0) {
      log.info(`Discarding connection from PID ${pid}: one client at a time`);
      sock.destroy();
      return;
    }
    const fd = native.fcntl(nodeFd, F_DUPFD_CLOEXEC, 3);
    sock.destroy();
    if (fd < 0) {
      log.error(`Couldn't take client connection: ${native.strerror(-fd)}`);
      return;
    }
    // SO_PEERCRED gives 0 for a client outside our PID namespace (a
    // daemon is in one of its own: daemon.ts)
    this.attach(fd, pid === 0 ? -1 : pid);
  }

  /**
   * Switches both workers to fd. tap-TX is told first: frames for a new
   * client come from tap-RX reading it, which it does only after its own
   * message, so tap-TX always has the client before such a frame reaches it
   * (it drains its messages before dropping frames for want of a client).
   */
  private switchTo(fd: number): number {
    const seq = ++this.seq;
    this.sup.control({ type: 'tap', fd, seq }, 'tapTx');
    this.sup.control({ type: 'tap', fd, seq }, 'tapRx');
    return seq;
  }

  private gone(fd: number, reason: string): void {
    if (fd !== this.fd || fd < 0) return; // already handled (both workers may report)
    this.fd = -1;
    const seq = this.switchTo(-1);
    this.retired.push({ fd, seq });
    this.onGone(reason);
  }

  private closeRetired(): void {
    while (this.retired.length) {
      const r = this.retired[0];
      if (this.acked.tapRx < r.seq || this.acked.tapTx < r.seq) return;
      this.retired.shift();
      native.close(r.fd);
    }
  }

  /** Closes whatever is left (shutdown). */
  closeAll(): void {
    this.stopListening();
    for (const r of this.retired) native.close(r.fd);
    this.retired.length = 0;
  }
}

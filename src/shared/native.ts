/**
 * The whole native surface of passt-ts, declared in one place (STYLE.md
 * guideline 13). This is the only module that loads the addon.
 *
 * Every function returns a number: a result >= 0, or a negative errno
 * (compare with `-E.EAGAIN`, etc.). Nothing here throws on the data path;
 * `check()` turns a setup-path failure into an ErrnoError.
 *
 * Buffers are typed arrays, usually over a SharedArrayBuffer; offsets and
 * lengths are in bytes of the `u8` argument. Socket addresses are raw
 * `struct sockaddr` bytes (see sockaddr.ts).
 */
import * as path from 'node:path';
import { constants as osConstants } from 'node:os';
import { ErrnoError } from './errors';

export interface NativeAddon {
  // epoll
  epollCreate(): number;
  /** ref: unsigned 32-bit tag reported with each event. */
  epollCtl(epfd: number, op: number, fd: number, events: number, ref: number): number;
  /** out: [events, ref] pairs. Returns the event count (0 on timeout/EINTR). */
  epollWait(epfd: number, out: Int32Array, maxEvents: number, timeoutMs: number): number;

  // eventfd
  eventfdCreate(initval: number, flags: number): number;
  eventfdWrite(fd: number, value?: number): number;
  eventfdRead(fd: number): number;

  // plain descriptors
  close(fd: number): number;
  read(fd: number, u8: Uint8Array, off: number, len: number): number;
  write(fd: number, u8: Uint8Array, off: number, len: number): number;
  /**
   * One frame per read(), packed: frame i at cursor+hdrRoom, the cursor then
   * moves to the next 8-byte boundary after it. lens[i] = length of frame i;
   * lens[n] = stop status (0 for EAGAIN/budget, -errno, -ENODATA for EOF).
   * lens must hold maxFrames + 1 entries. Returns n.
   */
  readFrames(fd: number, u8: Uint8Array, off: number, len: number, hdrRoom: number, lens: Int32Array,
    maxFrames: number, minFree: number): number;
  /** One write() per frame. Returns frames written, or -errno if none. */
  writeFrames(fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, count: number): number;
  /** recvmsg() scattering into ranges of u8. Returns bytes or -errno. */
  recvIov(fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, count: number, flags: number): number;
  /** sendmsg() gathering ranges of u8. Returns bytes or -errno. */
  sendIov(fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, count: number, flags: number): number;
  /** writev() gathering ranges of u8 (files, pipes, tap). Returns bytes or -errno. */
  writev(fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, count: number): number;
  /** recv(NULL, n, MSG_TRUNC|flags): discard queued stream data. */
  recvDiscard(fd: number, n: number, flags: number): number;

  // pipes
  pipe2(out: Int32Array, flags: number): number;
  splice(fdIn: number, fdOut: number, len: number, flags: number): number;
  fcntl(fd: number, cmd: number, arg: number): number;
  ioctlInt(fd: number, req: number, value: number): number;
  ioctlIntPtr(fd: number, req: number, value: number): number;

  // files and processes
  open(path: string, flags: number, mode: number): number;
  openat(dirfd: number, path: string, flags: number, mode: number): number;
  unlinkat(dirfd: number, path: string, flags: number): number;
  /** Names in the directory behind dirfd (opened for reading), or -errno. */
  listDir(dirfd: number): string[] | number;
  /** Inode number of path relative to dirfd (symbolic links not followed), or -errno. */
  inodeAt(dirfd: number, path: string): number;
  /** f_type of the filesystem holding fd. */
  fstatfs(fd: number): number;
  /** Replaces the process; returns only on failure (-errno). */
  execve(path: string, argv: string[], envp: string[]): number;
  /** Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit or -errno. */
  raiseNofile(): number;
  /** strerror(errno): the C library's message text. */
  strerror(errno: number): string;

  // sockets
  socket(domain: number, type: number, proto: number): number;
  /** socketpair(); the two fds go to out[0], out[1]. */
  socketpair(domain: number, type: number, proto: number, out: Int32Array): number;
  bind(fd: number, sa: Uint8Array): number;
  connect(fd: number, sa: Uint8Array): number;
  listen(fd: number, backlog: number): number;
  /** peer (optional) receives the peer's sockaddr bytes. */
  accept4(fd: number, flags: number, peer?: Uint8Array): number;
  getsockname(fd: number, out: Uint8Array): number;
  getpeername(fd: number, out: Uint8Array): number;
  setsockoptInt(fd: number, level: number, name: number, value: number): number;
  setsockoptBytes(fd: number, level: number, name: number, value: Uint8Array): number;
  getsockoptInt(fd: number, level: number, name: number): number;
  getsockoptBytes(fd: number, level: number, name: number, out: Uint8Array): number;
  shutdown(fd: number, how: number): number;
  /**
   * Datagram i into u8[offs[i], +lens[i]); outLens[i] = its length (-1 if
   * truncated); addrs (count*28 bytes, optional) receives source sockaddrs.
   */
  recvmmsg(fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, count: number,
    addrs: Uint8Array | null, outLens: Int32Array, flags: number): number;
  /** addrs (count*28 bytes, optional): destination sockaddr of datagram i. */
  sendmmsg(fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, count: number,
    addrs: Uint8Array | null, flags: number): number;
  /** Drain IP_RECVERR queue; returns the last queued ee_errno (0: none). */
  drainErrQueue(fd: number): number;

  // network namespaces (a native thread enters the namespace)
  nsSockets(nsfd: number, domain: number, type: number, proto: number, count: number, out: Int32Array): number;
  nsOpen(nsfd: number, path: string, flags: number): number;
  /** Opens /dev/net/tun in the namespace and TUNSETIFF's it; name written to outName. */
  nsTun(nsfd: number, name: string, ifrFlags: number, outName: Uint8Array): number;
  nsCheck(nsfd: number): number;

  /**
   * Applies one isolation step (flags: isolation.ts ISO) to every thread of
   * the process, checking each thread's /proc status afterwards (isolate.cc).
   * keepLo/keepHi: capabilities kept, bits 0-31 and 32-63. Returns the
   * number of threads, or -errno; errTid[0] names a thread that failed.
   */
  isolateThreads(flags: number, uid: number, gid: number, keepLo: number, keepHi: number, errTid: Int32Array): number;

  /**
   * Installs the seccomp allow-list filter in every thread (TSYNC): the
   * system call numbers of `allowed` (x86_64) run, others kill the process
   * or, with logMode, are logged by the kernel and run. 0 or -errno
   * (-ENOSYS on other architectures). After isolateThreads().
   */
  seccompFilter(allowed: Int32Array, logMode: boolean): number;

  /**
   * unshare(CLONE_NEWPID): the calling thread's next child is PID 1 of a new
   * PID namespace (the caller stays, and can't make threads afterwards).
   */
  newPidNamespaceForChildren(): number;

  /** Test hook: system call nr with harmless invalid arguments; its result or -errno. */
  forbiddenSyscall(nr: number): number;

  /** 16-bit one's-complement sum (not complemented) of u8[off, off+len). */
  csum(u8: Uint8Array, off: number, len: number): number;

  // vhost-user (link/vhostUser): guest memory and descriptor passing
  /** mmap(MAP_SHARED) of fd's first len bytes into a process-wide table: a handle >= 0, or -errno. */
  mapShared(fd: number, len: number): number;
  /**
   * This thread's own ArrayBuffer over bytes [off, off+len) of mapping
   * `handle` (all of it by default; at most 2^32 bytes), undefined if bad
   * or unmapped. Every thread that touches guest memory asks for its own.
   */
  mapView(handle: number, off?: number, len?: number): ArrayBuffer | undefined;
  /**
   * Lets go of the guest memory at once: views still alive then read zeros,
   * never fault; the address range is freed when the last view is collected.
   */
  mapUnmap(handle: number): number;
  /**
   * The bytes of a frame between u8 and the guest buffers of a descriptor
   * chain (segment s: bytes [off[s], off[s]+segLen[s]) of regions[reg[s]],
   * s from first, count of them), one memcpy per segment. toSegs:
   * u8[u8Off, u8Off+len) into the segments from byte `skip` of theirs on,
   * as far as they hold; else the segments' bytes from `skip` on into u8 at
   * u8Off, at most len. The bytes copied, or -EINVAL for a range outside
   * its array (checked here too).
   */
  vuCopy(toSegs: boolean, u8: Uint8Array, u8Off: number, len: number, skip: number, regions: readonly Uint8Array[],
    reg: Int32Array, off: Float64Array, segLen: Int32Array, first: number, count: number): number;
  /**
   * recvmsg() straight into guest buffers: segments 0 … count-1 (at most
   * 1024) as in vuCopy, all checked before anything is received. Bytes, or
   * -errno (-EINVAL for a segment outside its region).
   */
  vuRecv(fd: number, regions: readonly Uint8Array[], reg: Int32Array, off: Float64Array, segLen: Int32Array,
    count: number, flags: number): number;
  /** Mappings not yet unmapped (tests). */
  mapCount(): number;
  /**
   * recvmsg() into u8[off, off+len); fds[0] = descriptors received (SCM_RIGHTS,
   * close-on-exec), fds[1..] the descriptors. Bytes or -errno (-EMSGSIZE: the
   * descriptors were cut, and closed).
   */
  recvFds(fd: number, u8: Uint8Array, off: number, len: number, fds: Int32Array, flags: number): number;
  /** sendmsg() of u8[off, off+len) with fds[0..count) attached. Bytes or -errno. */
  sendFds(fd: number, u8: Uint8Array, off: number, len: number, fds: Int32Array, count: number, flags: number): number;
  memfdCreate(name: string, flags: number): number;
  /**
   * Main thread: calls cb whenever fd is readable (or hung up) from Node's
   * own event loop (uv_poll): a watch id, or -errno. fdUnwatch() before fd
   * is closed.
   */
  fdWatch(fd: number, cb: (status: number, events: number) => void): number;
  fdUnwatch(id: number): number;
  ftruncate(fd: number, len: number): number;
  /** malloc_trim(0): free pages of every malloc arena back to the kernel; 1 if any were released. */
  mallocTrim(): number;
}

function load(): NativeAddon {
  // dist/src/shared/native.js → <root>/native
  const root = path.resolve(__dirname, '..', '..', '..', 'native');
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeAddon;
  return nodeGypBuild(root);
}

export const native: NativeAddon = load();

/** Absolute path of the pasta-helper executable built with the addon. */
export const helperPath = path.resolve(__dirname, '..', '..', '..', 'native', 'build', 'Release', 'pasta-helper');

/** errno values by name (ENOENT, EAGAIN, ...). */
export const E = osConstants.errno as Record<string, number> & {
  EAGAIN: number; EINTR: number; ENOENT: number; EACCES: number; EINPROGRESS: number; EPIPE: number;
  ECONNREFUSED: number; EADDRINUSE: number; EADDRNOTAVAIL: number; EINVAL: number; ENODATA: number;
  ECONNRESET: number; EPERM: number; ENOBUFS: number; ENOSPC: number; EIO: number; EEXIST: number;
  ESRCH: number; EHOSTUNREACH: number; ENETUNREACH: number; ETIMEDOUT: number; EBADF: number;
  EMFILE: number; ENOTCONN: number; EALREADY: number; EISCONN: number; EMSGSIZE: number; EPROTO: number; ECONNABORTED: number; ENFILE: number;
};

const errnoNames = new Map<number, string>();
for (const [k, v] of Object.entries(osConstants.errno)) if (!errnoNames.has(v)) errnoNames.set(v, k);

/** Name of an errno value (positive or negative), e.g. "ENOENT". */
export function errnoName(e: number): string {
  return errnoNames.get(Math.abs(e)) ?? `errno ${Math.abs(e)}`;
}

/**
 * Setup-path helper: returns r when r >= 0, throws ErrnoError otherwise.
 * @param syscall name reported in the error message
 */
export function check(r: number, syscall: string, detail?: string): number {
  if (r < 0) throw new ErrnoError(-r, syscall, detail);
  return r;
}

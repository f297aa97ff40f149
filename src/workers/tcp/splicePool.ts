/**
 * Pre-opened resources of spliced TCP (SPEC.md §4.12, §4.14), owned by the
 * TCP worker and refilled in its deferred work, never on the main thread.
 *
 * - PipePool: pairs of non-blocking pipes (one per direction of a spliced
 *   connection). At start 32 pairs are opened and their size probed: try
 *   8 MiB for every pipe, halving until all of them accept the size
 *   (usually ending at fs.pipe-max-size, 1 MiB). Later pipes get the probed
 *   size too, or whatever the kernel grants (a user over its pipe-page
 *   budget gets small pipes, which still work).
 * - SocketPool: TCP sockets of one family on one side, host (the init
 *   namespace: targets of -T) or namespace (targets of -t, created by a
 *   native thread inside the namespace, in batches). An empty pool opens a
 *   socket synchronously.
 * - probeBuffers(): the start-up probe deciding whether SO_SNDBUF/SO_RCVBUF
 *   are raised on every socket (SPEC §4.12: "low wmem"/"low rmem").
 */
import { native } from '../../shared/native';
import {
  F_SETPIPE_SZ, F_GETPIPE_SZ, O_NONBLOCK, O_CLOEXEC, SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC, IPPROTO_TCP,
  SOL_SOCKET, SO_SNDBUF, SO_RCVBUF, AF_INET,
} from '../../shared/linux';

/** Pipe pairs kept pre-opened. */
export const PIPE_POOL_SIZE = 32;
/** First pipe size tried by the probe. */
export const MAX_PIPE_SIZE = 8 << 20;
/** The kernel's default pipe size: the probe never goes below it. */
export const MIN_PIPE_SIZE = 64 << 10;
/** Sockets kept pre-opened per family and side. */
export const SOCKET_POOL_SIZE = 32;

/** One pipe: read end, write end, capacity in bytes. */
export interface Pipe {
  r: number;
  w: number;
  size: number;
}

const pipeFds = new Int32Array(2);

/** Opens one non-blocking pipe and asks for `size` bytes; null if pipe2() fails. */
function openPipe(size: number): Pipe | null {
  if (native.pipe2(pipeFds, O_NONBLOCK | O_CLOEXEC) < 0) return null;
  const p: Pipe = { r: pipeFds[0], w: pipeFds[1], size: 0 };
  const got = native.fcntl(p.w, F_SETPIPE_SZ, size);
  p.size = got > 0 ? got : native.fcntl(p.w, F_GETPIPE_SZ, 0);
  if (p.size <= 0) p.size = MIN_PIPE_SIZE;
  return p;
}

export function closePipe(p: Pipe): void {
  native.close(p.r);
  native.close(p.w);
}

export class PipePool {
  /** Probed pipe size in bytes. */
  readonly pipeSize: number;
  private readonly pairs: [Pipe, Pipe][] = [];

  constructor() {
    const pipes: Pipe[] = [];
    for (let i = 0; i < 2 * PIPE_POOL_SIZE; i++) {
      const p = openPipe(MIN_PIPE_SIZE);
      if (p) pipes.push(p);
    }
    let size = MAX_PIPE_SIZE;
    for (; size > MIN_PIPE_SIZE; size >>= 1) {
      let all = true;
      for (const p of pipes) {
        const got = native.fcntl(p.w, F_SETPIPE_SZ, size);
        if (got < size) {
          all = false;
          break;
        }
        p.size = got;
      }
      if (all) break;
    }
    this.pipeSize = Math.max(size, MIN_PIPE_SIZE);
    for (const p of pipes) {
      if (p.size !== this.pipeSize) {
        const got = native.fcntl(p.w, F_SETPIPE_SZ, this.pipeSize);
        p.size = got > 0 ? got : native.fcntl(p.w, F_GETPIPE_SZ, 0);
      }
    }
    for (let i = 0; i + 1 < pipes.length; i += 2) this.pairs.push([pipes[i], pipes[i + 1]]);
    if (pipes.length & 1) closePipe(pipes[pipes.length - 1]);
  }

  get size(): number {
    return this.pairs.length;
  }

  /** A pair of pipes, from the pool or freshly opened; null if none can be opened. */
  take(): [Pipe, Pipe] | null {
    return this.pairs.pop() ?? this.openPair();
  }

  /** Two new pipes of the pool's size; null (none left open) if either fails. */
  private openPair(): [Pipe, Pipe] | null {
    const a = openPipe(this.pipeSize);
    if (!a) return null;
    const b = openPipe(this.pipeSize);
    if (!b) {
      closePipe(a);
      return null;
    }
    return [a, b];
  }

  /** Tops the pool up to PIPE_POOL_SIZE pairs. */
  refill(): void {
    while (this.pairs.length < PIPE_POOL_SIZE) {
      const pair = this.openPair();
      if (!pair) return;
      this.pairs.push(pair);
    }
  }

  closeAll(): void {
    for (const [a, b] of this.pairs) {
      closePipe(a);
      closePipe(b);
    }
    this.pairs.length = 0;
  }
}

const SOCK_TYPE = SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC;

/** Non-blocking TCP sockets of one family, in the init namespace (nsfd -1) or inside nsfd. */
export class SocketPool {
  private readonly fds: number[] = [];
  private readonly batch = new Int32Array(SOCKET_POOL_SIZE);

  constructor(readonly family: number, private readonly nsfd: number) {}

  get size(): number {
    return this.fds.length;
  }

  /** A socket from the pool, or a new one; -errno if none can be opened. */
  take(): number {
    const fd = this.fds.pop();
    if (fd !== undefined) return fd;
    if (this.nsfd < 0) return native.socket(this.family, SOCK_TYPE, IPPROTO_TCP);
    const n = native.nsSockets(this.nsfd, this.family, SOCK_TYPE, IPPROTO_TCP, 1, this.batch);
    return n === 1 ? this.batch[0] : n < 0 ? n : -24 /* EMFILE */;
  }

  /** Tops the pool up to SOCKET_POOL_SIZE (one native thread for a namespace pool). */
  refill(): void {
    const want = SOCKET_POOL_SIZE - this.fds.length;
    if (want <= 0) return;
    if (this.nsfd < 0) {
      for (let i = 0; i < want; i++) {
        const fd = native.socket(this.family, SOCK_TYPE, IPPROTO_TCP);
        if (fd < 0) return;
        this.fds.push(fd);
      }
      return;
    }
    const n = native.nsSockets(this.nsfd, this.family, SOCK_TYPE, IPPROTO_TCP, want, this.batch);
    for (let i = 0; i < n; i++) this.fds.push(this.batch[i]);
  }

  closeAll(): void {
    for (const fd of this.fds) native.close(fd);
    this.fds.length = 0;
  }
}

/** Result of the buffer probe: true means "never set that buffer size". */
export interface BufferProbe {
  lowWmem: boolean;
  lowRmem: boolean;
}

/** INT_MAX / 2: what every TCP socket asks for unless the probe found the limits low. */
export const SOCK_BUF_MAX = 0x3fffffff;

/**
 * SPEC §4.12: on a scratch TCP socket request INT_MAX/2 for both buffers and
 * read them back; SO_SNDBUF < 4 MiB is "low wmem", SO_RCVBUF < 2 MiB "low rmem".
 */
export function probeBuffers(): BufferProbe {
  const fd = native.socket(AF_INET, SOCK_TYPE, IPPROTO_TCP);
  if (fd < 0) return { lowWmem: true, lowRmem: true };
  native.setsockoptInt(fd, SOL_SOCKET, SO_SNDBUF, SOCK_BUF_MAX);
  native.setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, SOCK_BUF_MAX);
  const snd = native.getsockoptInt(fd, SOL_SOCKET, SO_SNDBUF);
  const rcv = native.getsockoptInt(fd, SOL_SOCKET, SO_RCVBUF);
  native.close(fd);
  return { lowWmem: snd < 4 << 20, lowRmem: rcv < 2 << 20 };
}

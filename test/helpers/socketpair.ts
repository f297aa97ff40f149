/**
 * A connected pair of AF_UNIX stream sockets made with the addon's own
 * calls (it has no socketpair()): listen on a fresh abstract address,
 * connect, accept. Both ends are non-blocking raw descriptors.
 */
import { native, check } from '../../src/shared/native';
import { AF_UNIX, SOCK_STREAM, SOCK_CLOEXEC, SOCK_NONBLOCK, SOL_SOCKET, SO_SNDBUF, SO_RCVBUF } from '../../src/shared/linux';

let seq = 0;

export function abstractSockaddr(name: string): Uint8Array {
  const p = Buffer.from(name);
  const sa = new Uint8Array(3 + p.length);
  sa[0] = AF_UNIX;
  sa.set(p, 3); // sun_path[0] = 0: abstract namespace
  return sa;
}

/** [a, b]: a connected stream socket pair (non-blocking, close-on-exec). */
export function socketPair(opts: { bufBytes?: number } = {}): [number, number] {
  const name = `passt-ts-test-${process.pid}-${++seq}-${Date.now()}`;
  const sa = abstractSockaddr(name);
  const flags = SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK;
  const l = check(native.socket(AF_UNIX, flags, 0), 'socket');
  check(native.bind(l, sa), 'bind');
  check(native.listen(l, 1), 'listen');
  const a = check(native.socket(AF_UNIX, flags, 0), 'socket');
  check(native.connect(a, sa), 'connect');
  const b = check(native.accept4(l, SOCK_NONBLOCK | SOCK_CLOEXEC), 'accept4');
  native.close(l);
  if (opts.bufBytes) {
    for (const fd of [a, b]) {
      native.setsockoptInt(fd, SOL_SOCKET, SO_SNDBUF, opts.bufBytes);
      native.setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, opts.bufBytes);
    }
  }
  return [a, b];
}

/** Writes all of data to a (non-blocking) descriptor, spinning on EAGAIN; returns bytes written. */
export function writeAll(fd: number, data: Uint8Array): number {
  let off = 0;
  let spins = 0;
  while (off < data.length) {
    const r = native.write(fd, data, off, data.length - off);
    if (r < 0) {
      if (++spins > 1e6) throw new Error(`write: ${native.strerror(-r)}`);
      continue;
    }
    off += r;
  }
  return off;
}

/** Reads whatever is queued (non-blocking) into a Buffer. */
export function readAvailable(fd: number, max = 16 << 20): Buffer {
  const buf = new Uint8Array(Math.min(max, 1 << 20));
  const parts: Buffer[] = [];
  let total = 0;
  while (total < max) {
    const r = native.read(fd, buf, 0, Math.min(buf.length, max - total));
    if (r <= 0) break;
    parts.push(Buffer.from(buf.subarray(0, r)));
    total += r;
  }
  return Buffer.concat(parts);
}

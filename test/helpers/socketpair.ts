/**
 * A connected pair of AF_UNIX stream sockets (raw, non-blocking
 * descriptors) and byte helpers for the stream back end's tests.
 */
import { native, check } from '../../src/shared/native';
import { AF_UNIX, SOCK_STREAM, SOCK_CLOEXEC, SOCK_NONBLOCK, SOL_SOCKET, SO_SNDBUF, SO_RCVBUF } from '../../src/shared/linux';

/** [a, b]: a connected stream socket pair (non-blocking, close-on-exec). */
export function socketPair(opts: { bufBytes?: number } = {}): [number, number] {
  const out = new Int32Array(2);
  check(native.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, out), 'socketpair');
  const [a, b] = [out[0], out[1]];
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

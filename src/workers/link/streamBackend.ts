/**
 * passt's stream back end, send side (SPEC.md §1.2): every frame goes out
 * preceded by its 32-bit big-endian length, many frames per sendmsg().
 *
 * The length is written into the 4 bytes just before the frame (the ring
 * record's REC_PREFIX_ROOM, which its writer owns: layout.ts),
 * so each frame is one contiguous iovec. A send the kernel accepts only in
 * part is resumed from the exact byte on the next call (the ring record
 * stays pending until its last byte left), never blocking the worker.
 */
import { native, E } from '../../shared/native';
import { EPOLLOUT, MSG_DONTWAIT, MSG_NOSIGNAL } from '../../shared/linux';
import { REC_PREFIX_ROOM } from '../../shared/ring/layout';
import type { LinkBackend, LinkFailure } from './link';

const MAX_IOV = 128;

export class StreamBackend implements LinkBackend {
  readonly waitEvents = EPOLLOUT;
  /** Bytes of the first pending frame (prefix included) already sent. */
  private partial = 0;
  private readonly offs = new Int32Array(MAX_IOV);
  private readonly lens = new Int32Array(MAX_IOV);

  reset(): void {
    this.partial = 0;
  }

  /** Bytes of the first pending frame (length prefix included) already sent. */
  get partialBytes(): number {
    return this.partial;
  }

  /** Resumes a frame another writer left half sent (txGate.ts). */
  resume(bytes: number): void {
    this.partial = bytes;
  }

  /** Any error on the client's socket means the client is gone. */
  failure(_errno: number): LinkFailure {
    return 'gone';
  }

  waitFd(fd: number): number {
    return fd;
  }

  /**
   * Sends frames first … first+count-1 (frame i at u8[offs[i], +lens[i]])
   * in order. Returns how many were sent completely (>= 0; 0 with nothing
   * sent means EAGAIN), or -errno.
   */
  send(fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, first: number, count: number): number {
    const n = Math.min(count, MAX_IOV);
    for (let i = 0; i < n; i++) {
      const o = offs[first + i] - REC_PREFIX_ROOM;
      const l = lens[first + i];
      u8[o] = l >>> 24;
      u8[o + 1] = (l >>> 16) & 0xff;
      u8[o + 2] = (l >>> 8) & 0xff;
      u8[o + 3] = l & 0xff;
      this.offs[i] = o;
      this.lens[i] = l + 4;
    }
    this.offs[0] += this.partial;
    this.lens[0] -= this.partial;
    const r = native.sendIov(fd, u8, this.offs, this.lens, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0) return r === -E.EAGAIN ? 0 : r;
    let left = r;
    let done = 0;
    while (done < n && left >= this.lens[done]) {
      left -= this.lens[done];
      done++;
    }
    this.partial = done === 0 ? this.partial + left : left;
    return done;
  }
}

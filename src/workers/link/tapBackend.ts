/**
 * The tap back end (pasta, SPEC.md §1.1): one write() per frame, and one
 * read() per frame, many frames per native call. The tap takes and gives
 * a frame whole or not at all, so nothing is ever cut; a full queue
 * (EAGAIN) means "wait for EPOLLOUT".
 */
import { native, E } from '../../shared/native';
import { EPOLLOUT } from '../../shared/linux';
import type { FrameRing } from '../../shared/ring/frameRing';
import { RING_REC_HDR } from '../../shared/ring/layout';
import type { LinkBackend, LinkFailure, LinkReceiver } from './link';

export class TapBackend implements LinkBackend {
  readonly partialBytes = 0;
  readonly waitEvents = EPOLLOUT;

  send(fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, first: number, count: number): number {
    const r = first === 0
      ? native.writeFrames(fd, u8, offs, lens, count)
      : native.writeFrames(fd, u8, offs.subarray(first), lens.subarray(first), count);
    return r === -E.EAGAIN ? 0 : r;
  }

  resume(_bytes: number): void {}

  reset(): void {}

  /** The kernel refused this frame (SPEC §1.1): counted and skipped; anything else ends the program. */
  failure(errno: number): LinkFailure {
    const e = -errno;
    return e === E.ENOBUFS || e === E.ENOSPC || e === E.EIO || e === E.EINVAL || e === E.EMSGSIZE ? 'drop' : 'fatal';
  }

  waitFd(fd: number): number {
    return fd;
  }
}

export class TapReceiver implements LinkReceiver {
  readonly keepsRing = false;
  readonly hangUp = 'hang-up on tap';
  readonly lost = 'fatal';

  read(fd: number, ring: FrameRing, recOff: number, space: number, lens: Int32Array, max: number,
    maxRead: number): number {
    return native.readFrames(fd, ring.u8, recOff, space, RING_REC_HDR, lens, max, maxRead);
  }

  /** Stopped on EAGAIN, unless the batch limit or the contiguous space ran out first. */
  more(n: number, max: number, space: number, used: number, maxRead: number): boolean {
    return n === max || space - used < RING_REC_HDR + maxRead;
  }

  reset(): void {}

  failure(status: number): string {
    if (status === -E.ENODATA) return 'EOF on tap';
    if (status === -E.EPROTO) return 'bad frame length';
    return `read error on tap: ${native.strerror(-status)}`;
  }
}

/**
 * passt's stream back end, receive side (SPEC.md §1.2): qemu's
 * `-netdev stream` sends every Ethernet frame preceded by a 32-bit
 * big-endian length, and reads may split anywhere. This reassembles frames
 * from a private buffer and copies each, complete, into ring records laid
 * out like native.readFrames' (header room 16, 8-byte aligned).
 *
 * A length below 14 (an Ethernet header) or above 65535 is a protocol
 * error: the caller drops the client (one log line) rather than
 * desynchronising. A partial trailing frame is kept for the next read.
 */
import { native, E } from '../shared/native';
import type { FrameRing } from '../shared/ring/frameRing';

const BUF = 4 << 20;
/** An Ethernet header: anything shorter cannot be a frame. */
const MIN_FRAME = 14;
/** Largest length accepted on the stream (SPEC §1.2). */
const MAX_LEN = 65535;

export class StreamReader {
  private readonly buf = new Uint8Array(BUF);
  private readonly dv = new DataView(this.buf.buffer);
  private start = 0;
  private end = 0;
  /** The socket returned EAGAIN since the last call with data. */
  private drained = false;
  /** Description of the last protocol error. */
  error: string | null = null;

  constructor(readonly maxFrame: number) {}

  reset(): void {
    this.start = this.end = 0;
    this.drained = false;
    this.error = null;
  }

  /** Bytes of an incomplete frame are buffered (the client left mid-frame if EOF follows). */
  get midFrame(): boolean {
    return this.end > this.start;
  }

  /** True if the next read() can produce something without a new EPOLLIN. */
  get pending(): boolean {
    if (!this.drained) return true;
    const avail = this.end - this.start;
    return avail >= 4 && avail >= 4 + this.dv.getUint32(this.start);
  }

  /**
   * Moves complete frames into ring records at u8[recOff…recOff+space),
   * reading the socket as needed. lens[i] = frame length, lens[n] = status:
   * 0 (EAGAIN or out of space/batch), -ENODATA (EOF), -EPROTO (bad length,
   * see `error`), or another -errno. Returns n.
   */
  read(fd: number, ring: FrameRing, recOff: number, space: number, lens: Int32Array, max: number, _maxRead: number): number {
    const u8 = ring.u8;
    let n = 0;
    let pos = recOff;
    const end = recOff + space;
    for (;;) {
      while (n < max && this.end - this.start >= 4) {
        const flen = this.dv.getUint32(this.start);
        if (flen < MIN_FRAME || flen > MAX_LEN) {
          this.error = `bad frame length ${flen} from client (expected ${MIN_FRAME}..${MAX_LEN}), resetting connection`;
          lens[n] = -E.EPROTO;
          return n;
        }
        if (this.end - this.start < 4 + flen) break;
        if (pos + 16 + flen > end) {
          lens[n] = 0;
          return n;
        }
        u8.set(this.buf.subarray(this.start + 4, this.start + 4 + flen), pos + 16);
        lens[n++] = flen;
        this.start += 4 + flen;
        pos = (pos + 16 + flen + 7) & ~7;
      }
      if (n >= max) {
        lens[n] = 0;
        return n;
      }
      if (this.start === this.end) this.start = this.end = 0;
      else if (this.end === BUF || BUF - this.start < 4 + 65535) {
        this.buf.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      }
      const r = native.read(fd, this.buf, this.end, BUF - this.end);
      if (r < 0) {
        if (r === -E.EAGAIN) {
          this.drained = true;
          lens[n] = 0;
        } else {
          lens[n] = r;
        }
        return n;
      }
      if (r === 0) {
        lens[n] = -E.ENODATA;
        return n;
      }
      this.drained = false;
      this.end += r;
    }
  }
}

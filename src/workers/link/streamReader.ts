/**
 * passt's stream back end, receive side (SPEC.md §1.2): qemu's
 * `-netdev stream` sends every Ethernet frame preceded by a 32-bit
 * big-endian length, and reads may split anywhere. This turns the byte
 * stream into ring records laid out like native.readFrames' (room for the
 * record header before each frame, 8-byte aligned: ring/layout.ts).
 *
 * Theory of operation
 * - Small frames (everything below DIRECT_MIN: ARP, ACKs, MTU-1500
 *   traffic) are read in bulk into a private buffer, as many as the
 *   socket holds, and each complete frame is copied into its record: one
 *   syscall for many frames, a copy that costs little next to the frame's
 *   handling.
 * - Large frames (a guest with the default 65520-byte MTU sends TCP
 *   segments of nearly 64 KiB) are read straight into their record once
 *   their length is known: the bytes of the frame already buffered are
 *   copied in, and one recvmsg() fills the rest of the record and, behind
 *   it, a short look-ahead (LOOK bytes) that usually brings the next
 *   frame's length. Only the look-ahead is copied back to the private
 *   buffer, so a bulk transfer costs one syscall and almost no user-space
 *   copy per frame. When nothing is buffered while frames are large, even
 *   the length is read into the record's header room, the frame behind it
 *   (readSpeculative): a frame that arrives alone costs one read. A frame that arrives in pieces stays "parked" in its
 *   record between calls (moved along if the ring wraps meanwhile). While frames are large, bulk reads shrink to LOOK too,
 *   so that the next large frame is not swallowed into the buffer; it takes
 *   LARGE_MEMORY small frames in a row to go back to large bulk reads.
 * - A length below 14 (an Ethernet header) or above 65535 is a protocol
 *   error: the caller drops the client (one log line) rather than
 *   desynchronising. A partial trailing frame is kept for the next call
 *   (in the private buffer: the record it will go to may move when the
 *   ring wraps).
 */
import { native, E } from '../../shared/native';
import { MSG_DONTWAIT } from '../../shared/linux';
import type { FrameRing } from '../../shared/ring/frameRing';
import { rd32 } from '../../shared/wire/bytes';
import { REC_PREFIX_ROOM, nextRecord, recordData } from '../../shared/ring/layout';
import type { LinkReceiver } from './link';

const BUF = 4 << 20;
/** An Ethernet header: anything shorter cannot be a frame. */
const MIN_FRAME = 14;
/** Largest length accepted on the stream (SPEC §1.2). */
const MAX_LEN = 65535;
/** Frames at least this long are read straight into their record. */
export const DIRECT_MIN = 16384;
/** Look-ahead behind a directly read frame, and bulk read size while frames are large. */
const LOOK = 4096;
/** Small frames it takes, after a large one, to go back to bulk reads. */
const LARGE_MEMORY = 64;

export class StreamReader implements LinkReceiver {
  /** A large frame received in part waits in its record (parked). */
  readonly keepsRing = true;
  readonly hangUp = 'client hang-up';
  readonly lost = 'gone';
  private readonly buf = new Uint8Array(BUF);
  private readonly dv = new DataView(this.buf.buffer);
  private start = 0;
  private end = 0;
  /** The socket had no more data at the last read (EAGAIN, or less than asked for). */
  private drained = false;
  /**
   * Large frames seen lately: set on each, worn down by small ones. While
   * non-zero, bulk reads are look-ahead sized, so that the next large frame
   * goes straight into its record (the ACKs and other small frames between
   * a guest's large segments do not switch this off at once).
   */
  private largeRecent = 0;
  private readonly iovOffs = new Int32Array(2);
  private readonly iovLens = new Int32Array(2);
  /** Description of the last protocol error. */
  error: string | null = null;
  /** Frames read straight into the ring (for tests and counters). */
  directFrames = 0;
  /** Of those, frames that took a single read, length included (readSpeculative). */
  oneReadFrames = 0;
  /**
   * A large frame being received straight into its ring record: its
   * length (0: none), the bytes already there, and where they are (the
   * record may move before the next call if the ring wraps).
   */
  private parkLen = 0;
  private parkHave = 0;
  private parkOff = 0;
  /** Length of the frame readDirect() just completed. */
  private parkDone = 0;

  constructor(readonly maxFrame: number) {}

  reset(): void {
    this.start = this.end = 0;
    this.parkLen = this.parkHave = 0;
    this.drained = false;
    this.largeRecent = 0;
    this.error = null;
  }

  /** Bytes of an incomplete frame are buffered (the client left mid-frame if EOF follows). */
  get midFrame(): boolean {
    return this.end > this.start || this.parkLen > 0;
  }

  /** More without a new EPOLLIN: the socket was not drained, or whole frames are buffered. */
  more(_n: number, _max: number, _space: number, _used: number, _maxRead: number): boolean {
    return this.pending;
  }

  failure(status: number): string {
    if (status === -E.ENODATA) {
      return this.midFrame ? 'client closed the connection in the middle of a frame' : 'client closed the connection';
    }
    if (status === -E.EPROTO) return this.error ?? 'bad frame length';
    return `receive error on client connection: ${native.strerror(-status)}`;
  }

  /** True if the next read() can produce something without a new EPOLLIN. */
  get pending(): boolean {
    if (!this.drained) return true;
    if (this.parkLen > 0) return false;
    const avail = this.end - this.start;
    if (avail < 4) return false;
    const flen = this.dv.getUint32(this.start);
    // a whole frame, or a bad length to report
    return avail >= 4 + flen || flen < MIN_FRAME || flen > MAX_LEN;
  }

  /**
   * Moves complete frames into ring records at u8[recOff…recOff+space),
   * reading the socket as needed. lens[i] = frame length, lens[n] = status:
   * 0 (no more data, or out of space/batch), -ENODATA (EOF), -EPROTO (bad
   * length, see `error`), or another -errno. Returns n.
   */
  read(fd: number, ring: FrameRing, recOff: number, space: number, lens: Int32Array, max: number, _maxRead: number): number {
    const u8 = ring.u8;
    let n = 0;
    let pos = recOff;
    const end = recOff + space;
    for (;;) {
      // a large frame partly received into its record: the rest goes there
      // too; or, when frames have been large and nothing is buffered, the
      // next one is read whole (length and all) straight into its record
      const parked = this.parkLen > 0;
      if (parked || (this.largeRecent > 0 && this.start === this.end && n < max && recordData(pos) + MAX_LEN <= end)) {
        if (parked && (n >= max || recordData(pos) + this.parkLen > end)) {
          lens[n] = 0;
          return n;
        }
        if (parked && this.parkOff !== recordData(pos)) {
          // the record moved (the ring wrapped, or frames went before it): bring the bytes along
          u8.copyWithin(recordData(pos), this.parkOff, this.parkOff + this.parkHave);
          this.parkOff = recordData(pos);
        }
        this.parkDone = 0;
        const r = parked ? this.readDirect(fd, u8, end) : this.readSpeculative(fd, u8, pos, end);
        if (r < 0) {
          if (r === -E.EAGAIN) this.drained = true;
          lens[n] = r === -E.EAGAIN ? 0 : r;
          return n;
        }
        if (r === 0) {
          lens[n] = -E.ENODATA;
          return n;
        }
        if (this.parkDone > 0) { // complete in its record
          const flen = this.parkDone;
          lens[n++] = flen;
          this.noteLen(flen);
          this.directFrames++;
          if (!parked) this.oneReadFrames++;
          pos = nextRecord(pos, flen);
        }
        if (this.drained && !this.pending) {
          // the socket is empty and no whole frame is buffered: don't ask again in this call
          lens[n] = 0;
          return n;
        }
        continue;
      }

      // complete frames already buffered
      while (n < max && this.end - this.start >= 4) {
        const flen = this.dv.getUint32(this.start);
        if (flen < MIN_FRAME || flen > MAX_LEN) return this.badLength(flen, lens, n);
        if (this.end - this.start < 4 + flen) break;
        if (recordData(pos) + flen > end) {
          lens[n] = 0;
          return n;
        }
        u8.set(this.buf.subarray(this.start + 4, this.start + 4 + flen), recordData(pos));
        lens[n++] = flen;
        this.noteLen(flen);
        this.start += 4 + flen;
        pos = nextRecord(pos, flen);
      }
      if (n >= max) {
        lens[n] = 0;
        return n;
      }
      if (this.start === this.end) this.start = this.end = 0;
      else if (BUF - this.start < 4 + MAX_LEN) {
        this.buf.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      }

      // a large frame whose length is known: park its first bytes in its record, read the rest there
      if (this.end - this.start >= 4) {
        const flen = this.dv.getUint32(this.start);
        if (flen >= DIRECT_MIN) {
          if (recordData(pos) + flen > end) {
            lens[n] = 0;
            return n;
          }
          const have = this.end - this.start - 4;
          if (have > 0) u8.set(this.buf.subarray(this.start + 4, this.end), recordData(pos));
          this.start = this.end = 0;
          this.parkLen = flen;
          this.parkHave = have;
          this.parkOff = recordData(pos);
          continue;
        }
      }

      // bulk read into the buffer (small while frames are large, see above)
      const room = BUF - this.end;
      const want = this.largeRecent > 0 ? Math.min(LOOK, room) : room;
      const r = native.read(fd, this.buf, this.end, want);
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
      this.drained = r < want;
      this.end += r;
      if (this.drained && !this.pending) {
        lens[n] = 0;
        return n;
      }
    }
  }

  /**
   * Receives the rest of the parked frame into its record (at parkOff) and,
   * behind it, a look-ahead (within the space up to end), in one recvmsg().
   * The look-ahead goes to the buffer; parkLen becomes 0 when the frame is
   * complete (its length in parkDone). Returns bytes received, 0 at EOF, or
   * -errno.
   */
  private readDirect(fd: number, u8: Uint8Array, end: number): number {
    const flen = this.parkLen;
    const rest = flen - this.parkHave;
    const lookOff = this.parkOff + flen;
    const look = Math.max(0, Math.min(LOOK, end - lookOff));
    this.iovOffs[0] = this.parkOff + this.parkHave;
    this.iovLens[0] = rest;
    this.iovOffs[1] = lookOff;
    this.iovLens[1] = look;
    const r = native.recvIov(fd, u8, this.iovOffs, this.iovLens, look > 0 ? 2 : 1, MSG_DONTWAIT);
    if (r <= 0) return r;
    this.drained = r < rest + look;
    if (r < rest) {
      this.parkHave += r;
      return r;
    }
    this.parkDone = flen;
    this.parkLen = 0;
    const extra = r - rest;
    if (extra > 0) {
      this.buf.set(u8.subarray(lookOff, lookOff + extra), this.end);
      this.end += extra;
    }
    return r;
  }

  /**
   * With nothing buffered, reads the next frame's length into the last four
   * bytes of its record header room (REC_PREFIX_ROOM, right before the
   * record's data) and the frame,
   * plus whatever follows, behind it: a whole frame costs one syscall and
   * no copy. Bytes beyond the frame go to the buffer; a frame that is not
   * complete yet is parked in its record. Returns bytes received (the
   * frame's length in parkDone if it completed), 0 at EOF, -EPROTO (bad
   * length) or another -errno, as readDirect().
   */
  private readSpeculative(fd: number, u8: Uint8Array, pos: number, end: number): number {
    const at = recordData(pos) - REC_PREFIX_ROOM;
    const want = Math.min(4 + MAX_LEN + LOOK, end - at);
    const r = native.read(fd, u8, at, want);
    if (r <= 0) return r;
    this.drained = r < want;
    if (r < 4) {
      this.buf.set(u8.subarray(at, at + r), 0);
      this.start = 0;
      this.end = r;
      return r;
    }
    const flen = rd32(u8, at);
    if (flen < MIN_FRAME || flen > MAX_LEN) {
      this.setLengthError(flen);
      return -E.EPROTO;
    }
    const got = r - 4;
    if (got < flen) {
      this.parkLen = flen;
      this.parkHave = got;
      this.parkOff = recordData(pos);
      return r;
    }
    const extra = got - flen;
    this.start = 0;
    this.end = extra;
    if (extra > 0) this.buf.set(u8.subarray(recordData(pos) + flen, recordData(pos) + got), 0);
    this.parkDone = flen;
    return r;
  }

  private noteLen(flen: number): void {
    if (flen >= DIRECT_MIN) this.largeRecent = LARGE_MEMORY;
    else if (this.largeRecent > 0) this.largeRecent--;
  }

  private setLengthError(flen: number): void {
    this.error = `bad frame length ${flen} from client (expected ${MIN_FRAME}..${MAX_LEN}), resetting connection`;
  }

  private badLength(flen: number, lens: Int32Array, n: number): number {
    this.setLengthError(flen);
    lens[n] = -E.EPROTO;
    return n;
  }
}

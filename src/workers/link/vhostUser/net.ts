/**
 * virtio-net over the two virtqueues (virtio 1.x §5.1): frames into the
 * guest's receive queue (0) and out of its transmit queue (1), each behind
 * the 12-byte struct virtio_net_hdr_mrg_rxbuf (VIRTIO_F_VERSION_1 makes it
 * 12 bytes whether or not MRG_RXBUF was negotiated).
 *
 * Theory of operation
 * - Receive (to the guest): a frame takes one chain, or with
 *   VIRTIO_NET_F_MRG_RXBUF as many chains as it needs, num_buffers in the
 *   header saying how many. The header is the C passt's: DATA_VALID (the
 *   guest need not verify checksums we made), no GSO. Chains are popped
 *   until the frame fits; if the guest has not posted enough, they are put
 *   back and the frame waits (`0`: would block, nothing lost). A bad chain
 *   met on the way is given back empty by the queue; if the frame then does
 *   not fit, the chains taken for it cannot be put back behind it, so they
 *   go back empty too and the frame is dropped (counted).
 * - In place (host → guest without a copy): an L4 worker takes chains for
 *   a batch of frames (`reserve()`, each frame's chains as putFrame()
 *   would take them), lists the buffers past each frame's headers
 *   (`placeSegs()`) for one recvmsg() straight into them, writes the
 *   headers (`placeBytes()`), and ends the batch with the bytes each frame
 *   got (`endPlace()`: header with num_buffers, used entries pushed, not
 *   yet flushed). Chains taken for frames that got nothing, or for the end
 *   of a frame that got less, go back unused (put back, or — once a bad
 *   chain was given back behind them — given back empty). A frame that
 *   does not fit now is not reserved: nothing of it is taken, and the
 *   caller goes the copying way (which waits, or drops what never fits).
 * - Transmit (from the guest): each chain is one frame after its header,
 *   copied out whole into the caller's buffer and the chain given back at
 *   once (length 0: the device writes nothing into a transmit buffer). A
 *   chain with writable buffers, or shorter than a header, or longer than
 *   the caller takes, is dropped and counted.
 */
import { Element, POP_BAD, POP_EMPTY, SplitQueue } from './virtqueue';

export const VNET_HDR_LEN = 12;
const VIRTIO_NET_HDR_F_DATA_VALID = 2;
/** Most chains one received frame may take (64 KiB in buffers of 256 bytes or more). */
export const RX_MAX_CHAINS = 256;
/** Most segments of one chain. */
export const MAX_SEGS = 64;

/** putFrame() results < 0. */
export const RX_DROPPED = -1;

/** Why frames were dropped at the virtio-net layer (counter names). */
export const NET_DROP = {
  /** A receive chain without writable buffers. */
  RX_NOT_WRITABLE: 'rxNotWritable',
  /** The frame can never fit (without MRG_RXBUF, in one chain; with it, in RX_MAX_CHAINS). */
  RX_TOO_BIG: 'rxTooBig',
  /** Chains taken for a frame that then did not fit behind a bad chain. */
  RX_LOST: 'rxLost',
  /** A transmit chain with writable buffers. */
  TX_WRITABLE: 'txWritable',
  /** A transmit chain shorter than the header (or a frame under 14 bytes). */
  TX_SHORT: 'txShort',
  /** A transmit frame longer than the caller takes. */
  TX_LONG: 'txLong',
} as const;
export type NetDrop = typeof NET_DROP[keyof typeof NET_DROP];

const hdr = new Uint8Array(VNET_HDR_LEN);

/** What both directions keep: their queue, and the drops for the guest's faults. */
abstract class NetQueue {
  /** Drops by reason, and their total. */
  readonly drops = new Map<NetDrop, number>();
  dropped = 0;

  constructor(readonly q: SplitQueue) {}

  protected drop(why: NetDrop): void {
    this.drops.set(why, (this.drops.get(why) ?? 0) + 1);
    this.dropped++;
  }

  /** Chains and frames dropped for the guest's faults, here and in the queue. */
  get guestDrops(): number {
    return this.dropped + this.q.dropped;
  }
}

export class VirtioNetRx extends NetQueue {
  private readonly els: Element[] = [];

  constructor(q: SplitQueue, readonly mergeable: boolean) {
    super(q);
    const n = mergeable ? RX_MAX_CHAINS : 1;
    for (let i = 0; i < n; i++) this.els.push(new Element(MAX_SEGS));
  }

  /**
   * Places one frame, src[off, off+len), into the guest's receive buffers
   * (used entries pushed, not yet flushed): 1, 0 (no room now: nothing
   * taken), or RX_DROPPED (counted).
   */
  putFrame(src: Uint8Array, off: number, len: number): number {
    const q = this.q, els = this.els;
    const total = VNET_HDR_LEN + len;
    let have = 0, n = 0, bad = false;
    while (have < total) {
      if (n === els.length) break;
      const el = els[n];
      const r = q.pop(el);
      if (r === POP_EMPTY) break;
      if (r === POP_BAD) {
        bad = true;
        continue;
      }
      if (el.inLen === 0) {
        this.drop(NET_DROP.RX_NOT_WRITABLE);
        q.push(el.head, 0);
        bad = true;
        continue;
      }
      have += el.inLen;
      n++;
      if (!this.mergeable) break;
    }
    if (have < total) {
      if (bad) {
        for (let i = 0; i < n; i++) q.push(els[i].head, 0);
        this.drop(NET_DROP.RX_LOST);
        return RX_DROPPED;
      }
      q.unpop(n);
      if (n === els.length) {
        // as many chains as a frame may take, and still too small: it never fits
        this.drop(NET_DROP.RX_TOO_BIG);
        return RX_DROPPED;
      }
      return 0;
    }
    hdr.fill(0);
    hdr[0] = VIRTIO_NET_HDR_F_DATA_VALID;
    hdr[10] = n & 0xff;
    hdr[11] = n >>> 8;
    // header and frame, chain after chain
    let done = 0;
    for (let i = 0; i < n; i++) {
      const el = els[i];
      let at = 0;
      if (i === 0) at = q.copyIn(el, 0, hdr, 0, VNET_HDR_LEN);
      const w = q.copyIn(el, at, src, off + done, len - done);
      done += w;
      q.push(el.head, at + w);
    }
    return 1;
  }

  // ------------------------------------------------------------ in place
  /** Chains taken for the batch (els[0 … placeChains-1]). */
  private placeChains = 0;
  private placeFrames = 0;
  /** A bad chain was given back behind chains of the batch: those cannot be put back. */
  private placeBad = false;
  /** First chain of each frame of the batch (and one past the last). */
  private readonly placeFirst = new Int32Array(PLACE_MAX_FRAMES + 1);

  /** Starts an in-place batch. */
  beginPlace(): void {
    this.placeChains = this.placeFrames = 0;
    this.placeBad = false;
  }

  /** Frames reserved in the batch. */
  get placed(): number {
    return this.placeFrames;
  }

  /**
   * Takes chains for one more frame of `total` bytes (virtio-net header
   * included): true; false when it does not fit now (nothing taken for it;
   * a bad chain met is counted and given back, and ends the batch's
   * reservations: the copying way goes on past it).
   */
  reserve(total: number): boolean {
    if (this.placeBad || this.placeFrames === PLACE_MAX_FRAMES) return false;
    const q = this.q, els = this.els;
    const start = this.placeChains;
    let have = 0, n = start;
    while (have < total && n < els.length) {
      const el = els[n];
      const r = q.pop(el);
      if (r === POP_EMPTY) break;
      if (r === POP_BAD) {
        this.placeBad = true;
        break;
      }
      if (el.inLen === 0) {
        this.drop(NET_DROP.RX_NOT_WRITABLE);
        q.push(el.head, 0);
        this.placeBad = true;
        break;
      }
      have += el.inLen;
      n++;
      if (!this.mergeable) break;
    }
    if (have >= total) {
      this.placeFirst[this.placeFrames++] = start;
      this.placeFirst[this.placeFrames] = n;
      this.placeChains = n;
      return true;
    }
    if (this.placeBad) {
      for (let i = start; i < n; i++) q.push(els[i].head, 0);
      if (n > start) this.drop(NET_DROP.RX_LOST);
    } else {
      q.unpop(n - start);
    }
    return false;
  }

  /**
   * Appends `want` bytes of frame f's buffers from its byte `skip` on as
   * segments (reg, off, len) from index `at`: the new count, or -1 when
   * more than `max` would be needed or the frame has fewer bytes.
   */
  placeSegs(f: number, skip: number, want: number, reg: Int32Array, off: Float64Array, len: Int32Array, at: number,
    max: number): number {
    const els = this.els;
    for (let i = this.placeFirst[f]; i < this.placeFirst[f + 1] && want > 0; i++) {
      const el = els[i];
      for (let s = el.nOut; s < el.nOut + el.nIn && want > 0; s++) {
        let l = el.len[s];
        if (skip >= l) {
          skip -= l;
          continue;
        }
        if (at >= max) return -1;
        l -= skip;
        const take = l < want ? l : want;
        reg[at] = el.reg[s];
        off[at] = el.off[s] + skip;
        len[at] = take;
        at++;
        want -= take;
        skip = 0;
      }
    }
    return want === 0 ? at : -1;
  }

  /** Copies src[srcOff, srcOff+len) into frame f from its byte `at` on: the bytes copied. */
  placeBytes(f: number, at: number, src: Uint8Array, srcOff: number, len: number): number {
    const q = this.q, els = this.els;
    let w = 0;
    for (let i = this.placeFirst[f]; i < this.placeFirst[f + 1] && w < len; i++) {
      const el = els[i];
      if (at >= el.inLen) {
        at -= el.inLen;
        continue;
      }
      const c = q.copyIn(el, at, src, srcOff + w, len - w);
      w += c;
      at = 0;
    }
    return w;
  }

  /**
   * Ends the batch: frames 0 … n-1 got bytes[f] bytes each after the
   * virtio-net header (written here, with num_buffers), their chains are
   * pushed (not yet flushed); the chains no frame used go back.
   */
  endPlace(n: number, bytes: Int32Array): void {
    const q = this.q, els = this.els;
    let used = 0;
    for (let f = 0; f < n && f < this.placeFrames; f++) {
      let left = VNET_HDR_LEN + bytes[f];
      const first = this.placeFirst[f];
      let k = first;
      for (; k < this.placeFirst[f + 1] && left > 0; k++) left -= els[k].inLen;
      const nBufs = k - first;
      hdr.fill(0);
      hdr[0] = VIRTIO_NET_HDR_F_DATA_VALID;
      hdr[10] = nBufs & 0xff;
      hdr[11] = nBufs >>> 8;
      this.placeBytes(f, 0, hdr, 0, VNET_HDR_LEN);
      let rest = VNET_HDR_LEN + bytes[f];
      for (let i = first; i < k; i++) {
        const w = rest < els[i].inLen ? rest : els[i].inLen;
        q.push(els[i].head, w);
        rest -= w;
      }
      used = k;
      // a frame that used less than its chains ends the frames that got bytes
      if (k < this.placeFirst[f + 1]) break;
    }
    const unused = this.placeChains - used;
    if (unused > 0) {
      if (this.placeBad) for (let i = used; i < this.placeChains; i++) q.push(els[i].head, 0);
      else q.unpop(unused);
    }
    this.placeChains = this.placeFrames = 0;
    this.placeBad = false;
  }
}

/** Most frames of one in-place batch. */
export const PLACE_MAX_FRAMES = 64;

export class VirtioNetTx extends NetQueue {
  private readonly el = new Element(MAX_SEGS);

  /**
   * Takes the guest's next frame into dst at dstOff (at most max bytes;
   * dst must hold them): its length, 0 when no chain is left, or -1 for a
   * chain dropped (counted; call again). The chain is pushed back, not yet
   * flushed.
   */
  takeFrame(dst: Uint8Array, dstOff: number, max: number): number {
    const q = this.q, el = this.el;
    const r = q.pop(el);
    if (r === POP_EMPTY) return 0;
    if (r === POP_BAD) return -1;
    let len = -1;
    if (el.nIn > 0) this.drop(NET_DROP.TX_WRITABLE);
    else if (el.outLen < VNET_HDR_LEN + 14) this.drop(NET_DROP.TX_SHORT);
    else {
      len = q.copyOut(el, VNET_HDR_LEN, dst, dstOff, max);
      if (len < 0) this.drop(NET_DROP.TX_LONG);
    }
    q.push(el.head, 0);
    return len;
  }
}

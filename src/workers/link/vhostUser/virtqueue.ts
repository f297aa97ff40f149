/**
 * A split virtqueue (virtio 1.x §2.7) read and written by the device side,
 * over guest memory (memory.ts).
 *
 * Theory of operation
 * - The guest posts descriptor chains: heads in the available ring, chains
 *   through the descriptor table (addr, len, flags, next). The device pops
 *   a head, walks its chain into an Element (the chain's readable and
 *   writable bytes as segments of the memory regions), uses it, and
 *   returns the head in the used ring with the bytes it wrote.
 * - Everything in the rings is the guest's and may be hostile, or change
 *   under us while we read it: each descriptor field is read once, every
 *   range is checked against the memory table before any byte moves
 *   (GuestMemory), and a chain is walked at most `num` steps. A bad chain
 *   is counted by reason (VQ_DROP) and given back with length 0, so the
 *   guest does not lose it; a head out of the table cannot be given back
 *   and is only counted. An available index more than `num` ahead of ours
 *   breaks the queue (counted once; nothing more is popped until the front
 *   end sets it up again): no well-behaved driver does that.
 * - Indirect descriptors are not offered (the features are those of the C
 *   passt: VERSION_1, MRG_RXBUF), so INDIRECT is a bad chain; a readable
 *   descriptor after a writable one too (§2.7.4.2).
 * - Barriers: the available index is loaded, and the used index stored,
 *   with Atomics (sequentially consistent: on x86 a load is an acquire and
 *   the store is a full barrier), so the ring entry loaded after the index
 *   is the one the guest published, and the used entries are visible before
 *   the index and before the avail flags are read for the notification
 *   decision (virtio's mb() before checking VRING_AVAIL_F_NO_INTERRUPT).
 * - Positions (the next available entry to pop, our used index) live in an
 *   Int32Array the caller gives, so another thread can go on with the same
 *   queue where this one stopped (several writers take turns on the receive
 *   queue under the link's gate) and the front end's GET_VRING_BASE can be
 *   answered from it.
 */
import { native } from '../../../shared/native';
import { GuestMemory, readAddr } from './memory';

export const VRING_DESC_F = { NEXT: 1, WRITE: 2, INDIRECT: 4 } as const;
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
export const VRING_USED_F_NO_NOTIFY = 1;
/** Largest queue size (virtio: 32768; qemu's virtio-net: 1024). */
export const VQ_MAX_SIZE = 32768;
const DESC_SIZE = 16;

/** Why a chain, or the queue, was dropped: the names of the drop counters. */
export const VQ_DROP = {
  /** The head is not a descriptor of the table. */
  BAD_HEAD: 'badHead',
  /** A next index past the table. */
  BAD_NEXT: 'badNext',
  /** The chain is longer than the table: it loops. */
  LOOP: 'loop',
  /** A buffer not (all) inside the memory table. */
  OUT_OF_REGION: 'outOfRegion',
  /** VRING_DESC_F_INDIRECT, not negotiated. */
  INDIRECT: 'indirect',
  /** A readable buffer after a writable one. */
  ORDER: 'order',
  /** More segments than an element holds. */
  TOO_MANY: 'tooMany',
  /** The available index ran more than the queue size ahead: the queue is broken. */
  AVAIL_IDX: 'availIdx',
} as const;
export type VqDrop = typeof VQ_DROP[keyof typeof VQ_DROP];

/** pop() results >= 0. */
export const POP_EMPTY = 0;
export const POP_OK = 1;
/** pop() result < 0: a bad chain (counted in drops, given back if it could be). */
export const POP_BAD = -1;

/** Positions of a queue in its Int32Array (QUEUE_POS_WORDS words from `base`). */
export const QUEUE_POS = { LAST_AVAIL: 0, USED_IDX: 1, BROKEN: 2 } as const;
export const QUEUE_POS_WORDS = 4;

/** One popped chain: its readable ("out") then its writable ("in") segments. */
export class Element {
  head = -1;
  nOut = 0;
  nIn = 0;
  outLen = 0;
  inLen = 0;
  readonly reg: Int32Array;
  readonly off: Float64Array;
  readonly len: Int32Array;

  constructor(readonly maxSegs: number) {
    this.reg = new Int32Array(maxSegs);
    this.off = new Float64Array(maxSegs);
    this.len = new Int32Array(maxSegs);
  }
}

/** Where a queue's rings are: qemu's virtual addresses (VHOST_USER_SET_VRING_ADDR). */
export interface VringAddr {
  desc: number;
  avail: number;
  used: number;
}

export class SplitQueue {
  /** Drops by reason, and their total. */
  readonly drops = new Map<VqDrop, number>();
  dropped = 0;
  private readonly desc: DataView;
  /** flags, idx, ring[num] (used_event unused: no EVENT_IDX). */
  private readonly avail: Uint16Array;
  /** flags, idx; the entries through usedDv. */
  private readonly used16: Uint16Array;
  private readonly usedDv: DataView;
  private readonly mask: number;
  /** Used entries written but not yet published (flush()). */
  private pendingUsed = 0;

  private constructor(readonly mem: GuestMemory, readonly num: number, desc: DataView, avail: Uint16Array,
    used16: Uint16Array, usedDv: DataView, private readonly pos: Int32Array, private readonly base: number) {
    this.desc = desc;
    this.avail = avail;
    this.used16 = used16;
    this.usedDv = usedDv;
    this.mask = num - 1;
  }

  /**
   * A queue of `num` entries at `addr`, its positions at pos[base …]: the
   * queue, or why not (a size that is no power of two, a ring not inside
   * one region or misaligned).
   */
  static create(mem: GuestMemory, num: number, addr: VringAddr, pos: Int32Array, base: number): SplitQueue | string {
    if (!(num >= 1 && num <= VQ_MAX_SIZE && (num & (num - 1)) === 0)) return `bad queue size ${num}`;
    const d = mem.qvaRange(addr.desc, DESC_SIZE * num);
    const a = mem.qvaRange(addr.avail, 6 + 2 * num);
    const u = mem.qvaRange(addr.used, 6 + 8 * num);
    if (!d || !a || !u) return 'vring outside the memory table';
    const rd = mem.regions[d.region].u8, ra = mem.regions[a.region].u8, ru = mem.regions[u.region].u8;
    const dOff = rd.byteOffset + d.off, aOff = ra.byteOffset + a.off, uOff = ru.byteOffset + u.off;
    if (dOff % 16 !== 0 || aOff % 2 !== 0 || uOff % 4 !== 0) return 'misaligned vring';
    const used16 = new Uint16Array(ru.buffer, uOff, 2);
    // a fresh base (SET_VRING_BASE): our used index goes on from the guest's used ring; only
    // the first of the threads opening the queue sets it (another may be writing already)
    if (pos[base + QUEUE_POS.USED_IDX] < 0) Atomics.compareExchange(pos, base + QUEUE_POS.USED_IDX, -1, Atomics.load(used16, 1));
    return new SplitQueue(mem, num,
      new DataView(rd.buffer, dOff, DESC_SIZE * num),
      new Uint16Array(ra.buffer, aOff, 3 + num),
      used16,
      new DataView(ru.buffer, uOff, 6 + 8 * num),
      pos, base);
  }

  get lastAvail(): number {
    return this.pos[this.base + QUEUE_POS.LAST_AVAIL];
  }

  private set lastAvail(v: number) {
    this.pos[this.base + QUEUE_POS.LAST_AVAIL] = v & 0xffff;
  }

  get usedIdx(): number {
    return this.pos[this.base + QUEUE_POS.USED_IDX];
  }

  get broken(): boolean {
    return this.pos[this.base + QUEUE_POS.BROKEN] !== 0;
  }

  private drop(why: VqDrop): void {
    this.drops.set(why, (this.drops.get(why) ?? 0) + 1);
    this.dropped++;
  }

  /** Chains the guest made available and we did not pop yet (0 if broken). */
  available(): number {
    if (this.broken) return 0;
    const n = (Atomics.load(this.avail, 1) - this.lastAvail) & 0xffff;
    if (n > this.num) {
      this.pos[this.base + QUEUE_POS.BROKEN] = 1;
      this.drop(VQ_DROP.AVAIL_IDX);
      return 0;
    }
    return n;
  }

  /**
   * Pops the next available chain into el: POP_OK, POP_EMPTY, or POP_BAD
   * (counted; given back with length 0 unless its head was no descriptor).
   */
  pop(el: Element): number {
    if (this.available() === 0) return POP_EMPTY;
    const last = this.lastAvail;
    const head = this.avail[2 + (last & this.mask)];
    this.lastAvail = last + 1;
    if (head >= this.num) {
      this.drop(VQ_DROP.BAD_HEAD);
      return POP_BAD;
    }
    el.head = head;
    const why = this.walk(el, head);
    if (why === null) return POP_OK;
    this.drop(why);
    this.push(head, 0);
    return POP_BAD;
  }

  /** Walks the chain from head into el; null, or why it is bad. */
  private walk(el: Element, head: number): VqDrop | null {
    const dv = this.desc, mem = this.mem, regions = mem.regions;
    el.nOut = el.nIn = el.outLen = el.inLen = 0;
    let n = 0;
    let i = head;
    for (let steps = 0; ; steps++) {
      if (steps >= this.num) return VQ_DROP.LOOP;
      const o = i * DESC_SIZE;
      let addr = readAddr(dv, o);
      let len = dv.getUint32(o + 8, true);
      const flags = dv.getUint16(o + 12, true);
      const next = dv.getUint16(o + 14, true);
      if (flags & VRING_DESC_F.INDIRECT) return VQ_DROP.INDIRECT;
      const write = (flags & VRING_DESC_F.WRITE) !== 0;
      if (!write && el.nIn > 0) return VQ_DROP.ORDER;
      if (write) el.inLen += len;
      else el.outLen += len;
      // the buffer, split where it crosses from one region into the next
      while (len > 0) {
        const r = mem.regionOf(addr);
        if (r < 0) return VQ_DROP.OUT_OF_REGION;
        if (n >= el.maxSegs) return VQ_DROP.TOO_MANY;
        const reg = regions[r];
        const take = Math.min(len, reg.gpa + reg.size - addr);
        el.reg[n] = r;
        el.off[n] = addr - reg.gpa;
        el.len[n] = take;
        n++;
        if (write) el.nIn++;
        else el.nOut++;
        addr += take;
        len -= take;
      }
      if (!(flags & VRING_DESC_F.NEXT)) return null;
      if (next >= this.num) return VQ_DROP.BAD_NEXT;
      i = next;
    }
  }

  /** Puts the last n popped chains back, unused (they are popped again next time). */
  unpop(n: number): void {
    this.lastAvail = this.lastAvail - n;
  }

  /** Returns chain `head` to the guest with `len` bytes written (seen once flushed). */
  push(head: number, len: number): void {
    const o = 4 + ((this.usedIdx + this.pendingUsed) & this.mask) * 8;
    this.usedDv.setUint32(o, head, true);
    this.usedDv.setUint32(o + 4, len, true);
    this.pendingUsed++;
  }

  /** Publishes the pushed entries. True if there were any. */
  flush(): boolean {
    if (this.pendingUsed === 0) return false;
    const idx = (this.usedIdx + this.pendingUsed) & 0xffff;
    this.pendingUsed = 0;
    this.pos[this.base + QUEUE_POS.USED_IDX] = idx;
    Atomics.store(this.used16, 1, idx);
    return true;
  }

  /**
   * Asks the guest to kick (true) or not to (false: VRING_USED_F_NO_NOTIFY)
   * when it makes chains available. After turning kicks on, look at
   * available() once more before sleeping: the store is a full barrier, so
   * a chain the guest posted before it saw the flag is seen then, and one
   * posted after is kicked (virtio §2.7.10).
   */
  setKicks(on: boolean): void {
    Atomics.store(this.used16, 0, on ? 0 : VRING_USED_F_NO_NOTIFY);
  }

  /** After flush(): the guest wants an interrupt (VRING_AVAIL_F_NO_INTERRUPT clear). */
  wantsInterrupt(): boolean {
    return (Atomics.load(this.avail, 0) & VRING_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /**
   * Copies the element's readable bytes from byte `skip` on into dst at
   * dstOff, at most max of them: the count, or -1 if there were more.
   * One memcpy per segment (native.vuCopy: dst is often a ring in shared
   * memory, where a TypedArray copy goes word by word).
   */
  copyOut(el: Element, skip: number, dst: Uint8Array, dstOff: number, max: number): number {
    const want = el.outLen - skip;
    if (want > max) return -1;
    if (want <= 0) return 0;
    const r = native.vuCopy(false, dst, dstOff, want, skip, this.mem.u8s, el.reg, el.off, el.len, 0, el.nOut);
    return r < 0 ? -1 : r;
  }

  /**
   * Copies src[srcOff, srcOff+len) into the element's writable bytes from
   * byte `at` on; returns the bytes copied (less than len when it is full).
   */
  copyIn(el: Element, at: number, src: Uint8Array, srcOff: number, len: number): number {
    if (len <= 0 || at >= el.inLen) return 0;
    const room = el.inLen - at;
    const r = native.vuCopy(true, src, srcOff, len < room ? len : room, at, this.mem.u8s, el.reg, el.off, el.len,
      el.nOut, el.nIn);
    return r < 0 ? 0 : r;
  }
}

/**
 * A driver's side of a split virtqueue pair, in plain memory, for the
 * vhost-user unit tests: lays out descriptor tables and rings in a region
 * with canary bytes on both sides, posts chains, reads the used ring.
 */
import { GuestMemory } from '../../src/workers/link/vhostUser/memory';
import { QUEUE_POS_WORDS, QUEUE_POS, SplitQueue, VRING_DESC_F } from '../../src/workers/link/vhostUser/virtqueue';

export const GUARD = 4096;
export const CANARY = 0xa5;
export const GPA_BASE = 0x100000;
export const QVA_BASE = 0x7f1234560000;

export interface Ring {
  num: number;
  desc: number; // gpa
  avail: number;
  used: number;
  nextDesc: number;
  availIdx: number;
  usedSeen: number;
}

export class FakeGuest {
  /** The whole buffer: GUARD canary bytes, the region, GUARD canary bytes. */
  readonly all: Uint8Array;
  readonly ram: Uint8Array;
  readonly dv: DataView;
  readonly mem: GuestMemory;
  private brk = 0;

  /** @param backing the whole buffer (GUARD * 2 + size bytes), e.g. a mapped memfd; default: fresh memory */
  constructor(readonly size = 1 << 20, backing?: Uint8Array) {
    this.all = (backing ?? new Uint8Array(GUARD * 2 + size)).fill(CANARY);
    this.ram = this.all.subarray(GUARD, GUARD + size);
    this.ram.fill(0);
    this.dv = new DataView(this.all.buffer, this.all.byteOffset + GUARD, size);
    this.mem = new GuestMemory([{ gpa: GPA_BASE, size, qva: QVA_BASE, mmapOffset: 0, u8: this.ram }]);
  }

  /** Every canary byte is intact. */
  canariesIntact(): boolean {
    for (let i = 0; i < GUARD; i++) if (this.all[i] !== CANARY || this.all[GUARD + this.size + i] !== CANARY) return false;
    return true;
  }

  /** Allocates len bytes (aligned): its guest-physical address. */
  alloc(len: number, align = 16): number {
    this.brk = (this.brk + align - 1) & ~(align - 1);
    const off = this.brk;
    this.brk += len;
    if (this.brk > this.size) throw new Error('fake guest out of memory');
    return GPA_BASE + off;
  }

  off(gpa: number): number {
    return gpa - GPA_BASE;
  }

  qva(gpa: number): number {
    return gpa - GPA_BASE + QVA_BASE;
  }

  ring(num: number): Ring {
    const desc = this.alloc(16 * num, 16);
    const avail = this.alloc(6 + 2 * num, 2);
    const used = this.alloc(6 + 8 * num, 4);
    return { num, desc, avail, used, nextDesc: 0, availIdx: 0, usedSeen: 0 };
  }

  /** The device's queue over ring r (positions in a fresh array). */
  queue(r: Ring, pos = new Int32Array(new SharedArrayBuffer(4 * QUEUE_POS_WORDS)).fill(0)): SplitQueue {
    pos[QUEUE_POS.USED_IDX] = -1;
    const q = SplitQueue.create(this.mem, r.num, { desc: this.qva(r.desc), avail: this.qva(r.avail), used: this.qva(r.used) },
      pos, 0);
    if (typeof q === 'string') throw new Error(q);
    return q;
  }

  /** Writes descriptor i raw (addr may be any u64 as a bigint). */
  setDesc(r: Ring, i: number, addr: bigint | number, len: number, flags: number, next: number): void {
    const o = this.off(r.desc) + 16 * i;
    this.dv.setBigUint64(o, BigInt(addr), true);
    this.dv.setUint32(o + 8, len >>> 0, true);
    this.dv.setUint16(o + 12, flags, true);
    this.dv.setUint16(o + 14, next, true);
  }

  /** Makes head available. */
  postHead(r: Ring, head: number): void {
    const a = this.off(r.avail);
    this.dv.setUint16(a + 4 + 2 * (r.availIdx % r.num), head, true);
    r.availIdx = (r.availIdx + 1) & 0xffff;
    this.dv.setUint16(a + 2, r.availIdx, true);
  }

  /** Sets the available index as is (for a runaway guest). */
  setAvailIdx(r: Ring, idx: number): void {
    r.availIdx = idx & 0xffff;
    this.dv.setUint16(this.off(r.avail) + 2, r.availIdx, true);
  }

  setAvailFlags(r: Ring, flags: number): void {
    this.dv.setUint16(this.off(r.avail), flags, true);
  }

  /**
   * Posts a chain of buffers (fresh memory each, `fill` written into
   * readable ones): head index and the buffers' addresses.
   */
  postChain(r: Ring, bufs: { len: number; write: boolean; data?: Uint8Array; gpa?: number }[]): { head: number; addrs: number[] } {
    const head = r.nextDesc;
    const addrs: number[] = [];
    bufs.forEach((b, k) => {
      const i = (head + k) % r.num;
      // gpa: a buffer the guest points anywhere (out of its memory, say)
      const addr = b.gpa ?? this.alloc(Math.max(b.len, 1), 8);
      if (b.data) this.ram.set(b.data, this.off(addr));
      addrs.push(addr);
      const last = k === bufs.length - 1;
      this.setDesc(r, i, addr, b.len, (b.write ? VRING_DESC_F.WRITE : 0) | (last ? 0 : VRING_DESC_F.NEXT),
        last ? 0 : (i + 1) % r.num);
    });
    r.nextDesc = (head + bufs.length) % r.num;
    this.postHead(r, head);
    return { head, addrs };
  }

  /** Used entries published since the last call: [id, len] pairs. */
  takeUsed(r: Ring): [number, number][] {
    const u = this.off(r.used);
    const idx = this.dv.getUint16(u + 2, true);
    const out: [number, number][] = [];
    while (r.usedSeen !== idx) {
      const o = u + 4 + 8 * (r.usedSeen % r.num);
      out.push([this.dv.getUint32(o, true), this.dv.getUint32(o + 4, true)]);
      r.usedSeen = (r.usedSeen + 1) & 0xffff;
    }
    return out;
  }

  bytes(gpa: number, len: number): Uint8Array {
    return this.ram.subarray(this.off(gpa), this.off(gpa) + len);
  }
}

export function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (seed * 131 + i * 7 + (i >> 8)) & 0xff;
  return b;
}

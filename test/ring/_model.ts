/**
 * A reference model of FrameRing for tests: the same rules written on
 * unbounded integer positions and an explicit list of segments (records,
 * SKIPs, WRAP gaps), instead of positions modulo 2 * capacity and headers
 * in memory. Every answer of the real ring must match the model's.
 */
import { recordSize, REC_KIND, RING_REC_HDR } from '../../src/shared/ring/layout';

export interface Segment {
  pos: number;
  size: number;
  /** REC_KIND.WRAP for a wrap gap (marked or implicit). */
  kind: number;
  len: number;
  meta1: number;
  meta2: number;
}

export class RingModel {
  /** Producer cursor, published frontier, consumer cursor, released position. */
  P = 0;
  pub = 0;
  cons = 0;
  R = 0;
  waiting = false;
  /** Segments ended and not yet passed by the consumer, in order. */
  readonly segs: Segment[] = [];
  private peeked: Segment | null = null;

  constructor(readonly cap: number) {}

  /** Data-area offset of the record's data, or -1 (mirrors FrameRing.beginWrite). */
  beginWrite(minBytes: number): number {
    const need = RING_REC_HDR + minBytes;
    const off = this.P % this.cap;
    const toEnd = this.cap - off;
    let free = this.cap - (this.P - this.R);
    if (toEnd >= need) return free >= need ? off + RING_REC_HDR : -1;
    if (free < toEnd) return -1;
    this.segs.push({ pos: this.P, size: toEnd, kind: REC_KIND.WRAP, len: 0, meta1: 0, meta2: 0 });
    this.P += toEnd;
    free -= toEnd;
    return free >= need ? RING_REC_HDR : -1;
  }

  contiguousFree(): number {
    return Math.min(this.cap - (this.P - this.R), this.cap - (this.P % this.cap));
  }

  endWrite(len: number, kind: number, meta1: number, meta2: number): void {
    const size = recordSize(len);
    if (size > this.contiguousFree()) throw new Error('model: overrun');
    this.segs.push({ pos: this.P, size, kind, len, meta1, meta2 });
    this.P += size;
  }

  publish(): boolean {
    const changed = this.pub !== this.P;
    this.pub = this.P;
    return changed;
  }

  /** The next published user record, passing WRAP and SKIP; null if none. */
  peek(): Segment | null {
    if (this.peeked) return this.peeked;
    while (this.segs.length && this.segs[0].pos < this.pub) {
      const s = this.segs[0];
      if (s.kind >= 0) return (this.peeked = s);
      this.cons = s.pos + s.size;
      this.segs.shift();
    }
    return null;
  }

  consume(): void {
    const s = this.peeked!;
    this.cons = s.pos + s.size;
    this.segs.shift();
    this.peeked = null;
  }

  release(): boolean {
    if (this.cons === this.R) return false;
    this.R = this.cons;
    const w = this.waiting;
    this.waiting = false;
    return w;
  }

  /** Data-area offset of an unbounded position. */
  offset(pos: number): number {
    return pos % this.cap;
  }

  /** The value the ring keeps for an unbounded position (mod 2 * capacity). */
  wire(pos: number): number {
    return pos % (2 * this.cap);
  }
}

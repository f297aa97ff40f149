/**
 * Flow table of one worker (SPEC.md §7, STYLE.md guideline 12).
 *
 * Theory of operation
 * - A flow has two sides (INISIDE 0: the side that initiated it, TGTSIDE 1:
 *   the target), each on a pif (TAP, HOST, SPLICE) with "our" address:port
 *   and the endpoint's address:port on that pif. Protocol state lives in
 *   the owning worker's own arrays, indexed by the same flow index.
 * - The table is preallocated and fixed-capacity: flow indices come from a
 *   free stack, then from the never-used ones in ascending order; a full
 *   table refuses new flows (the caller drops the SYN or datagram, nothing
 *   aborts). No array is filled at start-up: the kernel maps pages of
 *   zeros until they are written, so an idle instance pays for the flows it
 *   had, not for the capacity (perf/README.md "Memory per instance"; the
 *   bucket array of 131 071 flows alone is 2 MiB).
 * - Sides that must be found from a packet are hashed: key = (L4 protocol,
 *   pif, our address, endpoint address, our port, endpoint port), 40 bytes,
 *   hashed with a per-process random seed into an open-addressing array
 *   (linear probing, at most 50 % load, deletion by shifting the probe run
 *   back so no tombstones accumulate). A bucket holds the side reference
 *   plus one (0: empty); a lookup returns the side reference `flow << 1 | side`.
 * - Each worker owns its table outright; no other thread reads it.
 */
import { randomFillSync } from 'node:crypto';

export const PIF = { NONE: 0, TAP: 1, HOST: 2, SPLICE: 3 } as const;
export type Pif = (typeof PIF)[keyof typeof PIF];
export const PIF_NAMES = { 0: 'none', 1: 'tap', 2: 'host', 3: 'splice' } satisfies Record<Pif, string>;

export const INISIDE = 0;
export const TGTSIDE = 1;

/** Byte layout of one side's key. */
export const FLOW_KEY = {
  PROTO: 0,
  PIF: 1,
  OUR_PORT: 2,
  EP_PORT: 4,
  OUR_ADDR: 8,
  EP_ADDR: 24,
  LEN: 40,
} as const;

/** An empty bucket (buckets hold side reference + 1). */
const EMPTY = 0;

export class FlowTable {
  readonly capacity: number;
  /** Keys of every side: (flow*2+side)*FLOW_KEY.LEN. */
  readonly keys: Uint8Array;
  private readonly hashed: Uint8Array;
  private readonly buckets: Int32Array;
  private readonly mask: number;
  /** Freed indices, reused first (last freed on top). */
  private readonly freeStack: Int32Array;
  private freeTop = 0;
  /** Indices from here up were never handed out. */
  private fresh = 0;
  private readonly inUse: Uint8Array;
  private readonly seed: number;
  private readonly scratch = new Uint8Array(FLOW_KEY.LEN);
  /** Flows currently allocated. */
  count = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.keys = new Uint8Array(capacity * 2 * FLOW_KEY.LEN);
    this.hashed = new Uint8Array(capacity * 2);
    let nb = 1;
    while (nb < capacity * 4) nb <<= 1; // 2 sides per flow, <= 50 % load
    this.buckets = new Int32Array(nb);
    this.mask = nb - 1;
    this.freeStack = new Int32Array(capacity);
    this.inUse = new Uint8Array(capacity);
    const s = new Uint32Array(1);
    randomFillSync(s);
    this.seed = s[0];
  }

  /** Allocates a flow index, or -1 if the table is full. */
  alloc(): number {
    let idx: number;
    if (this.freeTop > 0) idx = this.freeStack[--this.freeTop];
    else if (this.fresh < this.capacity) idx = this.fresh++;
    else return -1;
    this.inUse[idx] = 1;
    this.count++;
    return idx;
  }

  /** Frees a flow: both sides leave the hash, the index is reusable. */
  release(idx: number): void {
    if (!this.inUse[idx]) return;
    this.remove(idx, INISIDE);
    this.remove(idx, TGTSIDE);
    this.inUse[idx] = 0;
    this.freeStack[this.freeTop++] = idx;
    this.count--;
  }

  isUsed(idx: number): boolean {
    return this.inUse[idx] === 1;
  }

  private fillKey(k: Uint8Array, o: number, proto: number, pif: number, ourAddr: Uint8Array, ourOff: number,
    ourPort: number, epAddr: Uint8Array, epOff: number, epPort: number): void {
    k[o] = proto;
    k[o + 1] = pif;
    k[o + 2] = ourPort >>> 8;
    k[o + 3] = ourPort & 0xff;
    k[o + 4] = epPort >>> 8;
    k[o + 5] = epPort & 0xff;
    k[o + 6] = 0;
    k[o + 7] = 0;
    for (let i = 0; i < 16; i++) {
      k[o + 8 + i] = ourAddr[ourOff + i];
      k[o + 24 + i] = epAddr[epOff + i];
    }
  }

  private hash(k: Uint8Array, o: number): number {
    // murmur3-style mixing of ten 32-bit words
    let h = this.seed;
    for (let i = 0; i < FLOW_KEY.LEN; i += 4) {
      let w = (k[o + i] | (k[o + i + 1] << 8) | (k[o + i + 2] << 16) | (k[o + i + 3] << 24)) >>> 0;
      w = Math.imul(w, 0xcc9e2d51);
      w = (w << 15) | (w >>> 17);
      w = Math.imul(w, 0x1b873593);
      h ^= w;
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    }
    h ^= FLOW_KEY.LEN;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  }

  private keyEq(sideRef: number, k: Uint8Array, o: number): boolean {
    const base = sideRef * FLOW_KEY.LEN;
    const keys = this.keys;
    for (let i = 0; i < FLOW_KEY.LEN; i++) if (keys[base + i] !== k[o + i]) return false;
    return true;
  }

  /**
   * Stores side `side` of flow idx and hashes it. Returns false (nothing
   * hashed) if an identical key is already in the table.
   */
  insert(idx: number, side: number, proto: number, pif: number, ourAddr: Uint8Array, ourOff: number, ourPort: number,
    epAddr: Uint8Array, epOff: number, epPort: number): boolean {
    const ref = idx * 2 + side;
    if (this.hashed[ref]) this.remove(idx, side);
    this.fillKey(this.keys, ref * FLOW_KEY.LEN, proto, pif, ourAddr, ourOff, ourPort, epAddr, epOff, epPort);
    let b = this.hash(this.keys, ref * FLOW_KEY.LEN) & this.mask;
    for (;;) {
      const cur = this.buckets[b];
      if (cur === EMPTY) break;
      if (this.keyEq(cur - 1, this.keys, ref * FLOW_KEY.LEN)) return false;
      b = (b + 1) & this.mask;
    }
    this.buckets[b] = ref + 1;
    this.hashed[ref] = 1;
    return true;
  }

  /** Stores a side's key without hashing it (sides reached through epoll refs). */
  setKey(idx: number, side: number, proto: number, pif: number, ourAddr: Uint8Array, ourOff: number, ourPort: number,
    epAddr: Uint8Array, epOff: number, epPort: number): void {
    const ref = idx * 2 + side;
    if (this.hashed[ref]) this.remove(idx, side);
    this.fillKey(this.keys, ref * FLOW_KEY.LEN, proto, pif, ourAddr, ourOff, ourPort, epAddr, epOff, epPort);
  }

  /** Takes a side out of the hash (its key bytes stay readable). */
  remove(idx: number, side: number): void {
    const ref = idx * 2 + side;
    if (!this.hashed[ref]) return;
    this.hashed[ref] = 0;
    let b = this.hash(this.keys, ref * FLOW_KEY.LEN) & this.mask;
    while (this.buckets[b] !== ref + 1) {
      if (this.buckets[b] === EMPTY) return; // not found: nothing to do
      b = (b + 1) & this.mask;
    }
    // backward-shift deletion
    let hole = b;
    let j = b;
    for (;;) {
      j = (j + 1) & this.mask;
      const cur = this.buckets[j];
      if (cur === EMPTY) break;
      const home = this.hash(this.keys, (cur - 1) * FLOW_KEY.LEN) & this.mask;
      // can cur move into the hole? only if its home is not in (hole, j]
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        this.buckets[hole] = cur;
        hole = j;
      }
    }
    this.buckets[hole] = EMPTY;
  }

  /** Side reference (flow << 1 | side) matching the key, or -1. */
  lookup(proto: number, pif: number, ourAddr: Uint8Array, ourOff: number, ourPort: number,
    epAddr: Uint8Array, epOff: number, epPort: number): number {
    const k = this.scratch;
    this.fillKey(k, 0, proto, pif, ourAddr, ourOff, ourPort, epAddr, epOff, epPort);
    let b = this.hash(k, 0) & this.mask;
    for (;;) {
      const cur = this.buckets[b];
      if (cur === EMPTY) return -1;
      if (this.keyEq(cur - 1, k, 0)) return cur - 1;
      b = (b + 1) & this.mask;
    }
  }

  /** Offset in `keys` of a side's key (read fields with FLOW_KEY offsets). */
  keyOff(idx: number, side: number): number {
    return (idx * 2 + side) * FLOW_KEY.LEN;
  }

  ourPort(idx: number, side: number): number {
    const o = this.keyOff(idx, side);
    return (this.keys[o + FLOW_KEY.OUR_PORT] << 8) | this.keys[o + FLOW_KEY.OUR_PORT + 1];
  }

  epPort(idx: number, side: number): number {
    const o = this.keyOff(idx, side);
    return (this.keys[o + FLOW_KEY.EP_PORT] << 8) | this.keys[o + FLOW_KEY.EP_PORT + 1];
  }
}

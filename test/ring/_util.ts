/**
 * Helpers shared by the ring tests and benchmarks: a seeded PRNG and a cheap
 * content pattern that can be written and checked a word at a time.
 */

/** mulberry32: a small seeded PRNG; returns uint32 values. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** A 32-bit hash of (seed, n), used as the pattern seed of record n. */
export function mix(seed: number, n: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(n + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h | 0;
}

const STEP = 0x9e3779b1 | 0;

/**
 * Writes `len` bytes of the pattern of `s` at u8[off] (off a multiple of 4):
 * word j = s + j * STEP, then the low bytes of ~s for the tail.
 */
export function fillPattern(u8: Uint8Array, i32: Int32Array, off: number, len: number, s: number): void {
  const words = len >> 2;
  const base = off >> 2;
  let w = s;
  for (let j = 0; j < words; j++) {
    i32[base + j] = w;
    w = (w + STEP) | 0;
  }
  const t = ~s;
  for (let k = words << 2; k < len; k++) u8[off + k] = (t >>> ((k & 3) * 8)) & 0xff;
}

/** Index of the first byte that differs from the pattern of `s`, or -1. */
export function checkPattern(u8: Uint8Array, i32: Int32Array, off: number, len: number, s: number): number {
  const words = len >> 2;
  const base = off >> 2;
  let w = s;
  for (let j = 0; j < words; j++) {
    if (i32[base + j] !== w) return j << 2;
    w = (w + STEP) | 0;
  }
  const t = ~s;
  for (let k = words << 2; k < len; k++) if (u8[off + k] !== ((t >>> ((k & 3) * 8)) & 0xff)) return k;
  return -1;
}

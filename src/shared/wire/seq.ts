/**
 * TCP sequence-number arithmetic, modulo 2^32 (RFC 9293 §3.4).
 *
 * Theory of operation: sequence numbers are unsigned 32-bit values that wrap.
 * Following SPEC §4.3, comparisons use a 2^24 horizon rather than the usual
 * 2^31: "a before b" iff (b − a) mod 2^32 lies in (0, 2^24). Two numbers
 * more than 16 MiB apart are therefore neither before nor after each other,
 * which is what callers want for windows capped at 16 MiB (SPEC §4.7): a
 * value that far out is garbage, not "in the past". Every function returns
 * unsigned 32-bit results; never compare sequence numbers with < or > inline.
 */

/** Comparison horizon: 2^24 (SPEC §4.3). */
export const SEQ_HORIZON = 0x1000000;

/** (a + n) mod 2^32. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** (a − b) mod 2^32: how far a is ahead of b. */
export function seqDiff(a: number, b: number): number {
  return (a - b) >>> 0;
}

/** a before b: (b − a) mod 2^32 in (0, 2^24). */
export function seqBefore(a: number, b: number): boolean {
  const d = (b - a) >>> 0;
  return d > 0 && d < SEQ_HORIZON;
}

/** a before or equal to b: (b − a) mod 2^32 in [0, 2^24). */
export function seqBeforeEq(a: number, b: number): boolean {
  return ((b - a) >>> 0) < SEQ_HORIZON;
}

/** a after b (b before a). */
export function seqAfter(a: number, b: number): boolean {
  return seqBefore(b, a);
}

/** a after or equal to b. */
export function seqAfterEq(a: number, b: number): boolean {
  return seqBeforeEq(b, a);
}

/** The later of a and b under seqAfter (a if neither is after the other). */
export function seqMax(a: number, b: number): number {
  return seqAfter(b, a) ? b : a;
}

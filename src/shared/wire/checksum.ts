/**
 * Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers of RFC 768,
 * RFC 9293 §3.1 and RFC 8200 §8.1.
 *
 * Theory of operation: a checksum is built from an *accumulator*, a plain
 * non-negative number holding an unfolded sum of big-endian 16-bit words.
 * `sum16` adds a byte range to it, `fold` reduces it to 16 bits with
 * end-around carry, and `finish` returns the one's complement, ready for the
 * header field. Ranges are summed as if they started on a word boundary, so
 * when one checksum spans several ranges every range but the last must have
 * an even length. The accumulator stays exact up to 2^53, i.e. far beyond any
 * 64 KiB frame.
 *
 * Small ranges (headers) are summed in JavaScript; from `NATIVE_CSUM_MIN`
 * bytes on, `csum` calls the addon's `native.csum`, which is several times
 * faster on payloads (perf/wire.bench.ts). The addon is loaded lazily, so this
 * module stays usable (pure JS) where the addon is not built.
 */
import { IP6_LEN } from './bytes';

/**
 * Range length from which `csum` uses the native sum (measured crossover in
 * perf/wire.bench.ts: the call overhead of the addon is ~100 ns).
 */
export const NATIVE_CSUM_MIN = 256;

/** Adds the big-endian 16-bit words of u8[off, off+len) to acc (odd tail padded with zero). */
export function sum16(u8: Uint8Array, off: number, len: number, acc = 0): number {
  let i = off;
  const end = off + (len & ~1);
  // Unrolled by 8 bytes: 4 words stay well inside the 32-bit SMI-friendly range.
  for (; i + 8 <= end; i += 8) {
    acc += ((u8[i] << 8) | u8[i + 1]) + ((u8[i + 2] << 8) | u8[i + 3])
      + ((u8[i + 4] << 8) | u8[i + 5]) + ((u8[i + 6] << 8) | u8[i + 7]);
  }
  for (; i < end; i += 2) acc += (u8[i] << 8) | u8[i + 1];
  if (len & 1) acc += u8[end] << 8;
  return acc;
}

/** Folds an accumulator to 16 bits with end-around carry (result 0…0xffff). */
export function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc % 0x10000) + Math.floor(acc / 0x10000);
  return acc;
}

/** One's complement of the folded sum: the value to store in a checksum field. */
export function finish(acc: number): number {
  return ~fold(acc) & 0xffff;
}

type CsumFn = (u8: Uint8Array, off: number, len: number) => number;
let nativeCsum: CsumFn | null | undefined;

function loadNative(): CsumFn | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const n = (require('../native') as typeof import('../native')).native;
    return (u8, off, len) => n.csum(u8, off, len);
  } catch {
    return null;
  }
}

/** Like sum16, but ranges of NATIVE_CSUM_MIN bytes or more go through the addon. */
export function csum(u8: Uint8Array, off: number, len: number, acc = 0): number {
  if (len < NATIVE_CSUM_MIN) return sum16(u8, off, len, acc);
  if (nativeCsum === undefined) nativeCsum = loadNative();
  if (nativeCsum === null) return sum16(u8, off, len, acc);
  const r = nativeCsum(u8, off, len);
  return r < 0 ? sum16(u8, off, len, acc) : acc + r;
}

/** Forces the pure-JS path (tests, benchmarks) or re-enables native lookup. */
export function setNativeCsum(enabled: boolean): void {
  nativeCsum = enabled ? undefined : null;
}

/** Pseudo-header sum for IPv4 (RFC 768 / RFC 9293): src, dst, protocol, L4 length. */
export function pseudo4(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number,
  proto: number, l4Len: number): number {
  return sum16(src, srcOff, 4, sum16(dst, dstOff, 4, proto + l4Len));
}

/** Pseudo-header sum for IPv6 (RFC 8200 §8.1): src, dst, upper-layer length, next header. */
export function pseudo6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number,
  nextHeader: number, l4Len: number): number {
  // The 32-bit length contributes its two 16-bit halves.
  return sum16(src, srcOff, IP6_LEN, sum16(dst, dstOff, IP6_LEN,
    nextHeader + (l4Len >>> 16) + (l4Len & 0xffff)));
}

/**
 * Checksum of an L4 segment over IPv4 (checksum field must be zero or is
 * included as is): the value to store.
 */
export function l4Checksum4(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number,
  proto: number, u8: Uint8Array, l4Off: number, l4Len: number): number {
  return finish(csum(u8, l4Off, l4Len, pseudo4(src, srcOff, dst, dstOff, proto, l4Len)));
}

/** Checksum of an L4 segment over IPv6: the value to store. */
export function l4Checksum6(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number,
  nextHeader: number, u8: Uint8Array, l4Off: number, l4Len: number): number {
  return finish(csum(u8, l4Off, l4Len, pseudo6(src, srcOff, dst, dstOff, nextHeader, l4Len)));
}

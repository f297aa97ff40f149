/**
 * Byte-level helpers shared by every wire-format view and service.
 *
 * Theory of operation: all multi-byte fields on the wire are big-endian
 * (network order). Views read them through a DataView over the same bytes as
 * their Uint8Array (measured faster than manual shifts in
 * perf/wire.bench.ts); the free functions here (`rd16`, `wr32`, ...) are for
 * code that writes into arbitrary output buffers without a view. Address
 * helpers convert between the canonical strings of Config (ipaddr.js
 * formatting) and the raw bytes used on the data path. Nothing here allocates
 * except the string conversions, which belong to set-up and tracing paths.
 */
import * as ipaddr from 'ipaddr.js';

export const MAC_LEN = 6;
export const IP4_LEN = 4;
export const IP6_LEN = 16;

/** A DataView covering exactly the bytes of `u8` (same indices). */
export function dataViewOf(u8: Uint8Array): DataView {
  return new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
}

/**
 * True if [off, off+len) is a valid byte range of `u8`: both integers,
 * non-negative, and inside the array. Never throws, whatever the arguments.
 */
export function rangeOk(u8: Uint8Array, off: number, len: number): boolean {
  return (off >>> 0) === off && (len >>> 0) === len && off + len <= u8.length;
}

/** Big-endian 16-bit read. */
export function rd16(u8: Uint8Array, off: number): number {
  return (u8[off] << 8) | u8[off + 1];
}

/** Big-endian 32-bit read (unsigned). */
export function rd32(u8: Uint8Array, off: number): number {
  return ((u8[off] << 24) | (u8[off + 1] << 16) | (u8[off + 2] << 8) | u8[off + 3]) >>> 0;
}

/** Big-endian 16-bit write. */
export function wr16(u8: Uint8Array, off: number, v: number): void {
  u8[off] = v >>> 8;
  u8[off + 1] = v;
}

/** Big-endian 32-bit write. */
export function wr32(u8: Uint8Array, off: number, v: number): void {
  u8[off] = v >>> 24;
  u8[off + 1] = v >>> 16;
  u8[off + 2] = v >>> 8;
  u8[off + 3] = v;
}

/** Copies n bytes (a plain loop: cheaper than subarray()+set() for header-sized runs). */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, n: number): void {
  if (n > 64) {
    dst.set(src.subarray(srcOff, srcOff + n), dstOff);
    return;
  }
  for (let i = 0; i < n; i++) dst[dstOff + i] = src[srcOff + i];
}

/** Sets n bytes to v. */
export function fillBytes(dst: Uint8Array, off: number, n: number, v = 0): void {
  for (let i = 0; i < n; i++) dst[off + i] = v;
}

/** True if the n bytes at a[aOff] and b[bOff] are equal. */
export function bytesEqual(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/** True if the n bytes at off are all zero. */
export function isZero(u8: Uint8Array, off: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (u8[off + i] !== 0) return false;
  return true;
}

// ---------------------------------------------------------------- MAC

/** Parses "aa:bb:cc:dd:ee:ff" (also '-' separated); null if malformed. */
export function macFromString(s: string): Uint8Array | null {
  const parts = s.trim().split(/[:-]/);
  if (parts.length !== MAC_LEN) return null;
  const out = new Uint8Array(MAC_LEN);
  for (let i = 0; i < MAC_LEN; i++) {
    if (!/^[0-9a-fA-F]{1,2}$/.test(parts[i])) return null;
    out[i] = parseInt(parts[i], 16);
  }
  return out;
}

/** Formats the 6 bytes at off as "aa:bb:cc:dd:ee:ff". */
export function macToString(u8: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < MAC_LEN; i++) {
    const b = u8[off + i] ?? 0;
    s += (i ? ':' : '') + (b < 16 ? '0' : '') + b.toString(16);
  }
  return s;
}

/** True for a group (multicast or broadcast) MAC: I/G bit of the first byte. */
export function macIsGroup(u8: Uint8Array, off: number): boolean {
  return (u8[off] & 1) !== 0;
}

// ---------------------------------------------------------------- IPv4

/** Parses a dotted-quad IPv4 address; null if malformed. */
export function ip4FromString(s: string): Uint8Array | null {
  if (!ipaddr.IPv4.isValidFourPartDecimal(s)) return null;
  return Uint8Array.from(ipaddr.IPv4.parse(s).toByteArray());
}

/** Formats the 4 bytes at off as a dotted quad. */
export function ip4ToString(u8: Uint8Array, off = 0): string {
  return `${u8[off] ?? 0}.${u8[off + 1] ?? 0}.${u8[off + 2] ?? 0}.${u8[off + 3] ?? 0}`;
}

/** The 4 bytes at off as an unsigned 32-bit number. */
export function ip4ToU32(u8: Uint8Array, off: number): number {
  return rd32(u8, off);
}

/** True for 127.0.0.0/8. */
export function ip4IsLoopback(u8: Uint8Array, off: number): boolean {
  return u8[off] === 127;
}

/** Netmask bytes for a prefix length 0–32 (clamped). */
export function ip4MaskFromPrefix(prefixLen: number): Uint8Array {
  const p = Math.max(0, Math.min(32, prefixLen | 0));
  const m = p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0;
  const out = new Uint8Array(4);
  wr32(out, 0, m);
  return out;
}

/** True if a and b are in the same subnet under mask (all 4-byte fields). */
export function ip4SameSubnet(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, mask: Uint8Array): boolean {
  for (let i = 0; i < 4; i++) if ((a[aOff + i] & mask[i]) !== (b[bOff + i] & mask[i])) return false;
  return true;
}

// ---------------------------------------------------------------- IPv6

/** Parses an IPv6 address (any RFC 4291 text form, no zone); null if malformed. */
export function ip6FromString(s: string): Uint8Array | null {
  if (s.includes('%') || !ipaddr.IPv6.isValid(s)) return null;
  return Uint8Array.from(ipaddr.IPv6.parse(s).toByteArray());
}

/** Formats the 16 bytes at off in RFC 5952 compressed form. */
export function ip6ToString(u8: Uint8Array, off = 0): string {
  const b: number[] = new Array(IP6_LEN);
  for (let i = 0; i < IP6_LEN; i++) b[i] = u8[off + i] ?? 0;
  return new ipaddr.IPv6(b).toRFC5952String();
}

/** True for ::. */
export function ip6IsUnspecified(u8: Uint8Array, off: number): boolean {
  return isZero(u8, off, IP6_LEN);
}

/** True for ::1. */
export function ip6IsLoopback(u8: Uint8Array, off: number): boolean {
  return isZero(u8, off, 15) && u8[off + 15] === 1;
}

/** True for fe80::/10. */
export function ip6IsLinkLocal(u8: Uint8Array, off: number): boolean {
  return u8[off] === 0xfe && (u8[off + 1] & 0xc0) === 0x80;
}

/** True for ff00::/8. */
export function ip6IsMulticast(u8: Uint8Array, off: number): boolean {
  return u8[off] === 0xff;
}

/** ff02::1, all-nodes link-local multicast (RFC 4291). */
export const IP6_ALL_NODES: Uint8Array = Uint8Array.of(0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);

/**
 * Addresses of either family as 16 bytes (STYLE.md guideline 12, passt's
 * `inany`): IPv6 as is, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), so flow
 * keys, lookups and comparisons have one path.
 */
import * as ipaddr from 'ipaddr.js';

export const INANY_LEN = 16;

/** Writes ::ffff:a.b.c.d from the 4 bytes at src[sOff] into dst[dOff]. */
export function inanyFrom4(dst: Uint8Array, dOff: number, src: Uint8Array, sOff: number): void {
  for (let i = 0; i < 10; i++) dst[dOff + i] = 0;
  dst[dOff + 10] = 0xff;
  dst[dOff + 11] = 0xff;
  dst[dOff + 12] = src[sOff];
  dst[dOff + 13] = src[sOff + 1];
  dst[dOff + 14] = src[sOff + 2];
  dst[dOff + 15] = src[sOff + 3];
}

/** Copies 16 bytes. */
export function inanyCopy(dst: Uint8Array, dOff: number, src: Uint8Array, sOff: number): void {
  for (let i = 0; i < 16; i++) dst[dOff + i] = src[sOff + i];
}

/** True if the address is IPv4-mapped. */
export function inanyIs4(a: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 10; i++) if (a[off + i] !== 0) return false;
  return a[off + 10] === 0xff && a[off + 11] === 0xff;
}

export function inanyEq(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 16; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

export function inanyIsUnspecified(a: Uint8Array, off = 0): boolean {
  if (inanyIs4(a, off)) return a[off + 12] === 0 && a[off + 13] === 0 && a[off + 14] === 0 && a[off + 15] === 0;
  for (let i = 0; i < 16; i++) if (a[off + i] !== 0) return false;
  return true;
}

/** 127.0.0.0/8 or ::1. */
export function inanyIsLoopback(a: Uint8Array, off = 0): boolean {
  if (inanyIs4(a, off)) return a[off + 12] === 127;
  for (let i = 0; i < 15; i++) if (a[off + i] !== 0) return false;
  return a[off + 15] === 1;
}

/** Multicast, or IPv4 broadcast 255.255.255.255. */
export function inanyIsMulticast(a: Uint8Array, off = 0): boolean {
  if (inanyIs4(a, off)) {
    const b = a[off + 12];
    return (b >= 224 && b <= 239) || (b === 255 && a[off + 13] === 255 && a[off + 14] === 255 && a[off + 15] === 255);
  }
  return a[off] === 0xff;
}

/** IPv6 fe80::/10 (IPv4 link-local is not special here). */
export function inanyIsLinkLocal6(a: Uint8Array, off = 0): boolean {
  return a[off] === 0xfe && (a[off + 1] & 0xc0) === 0x80;
}

/** A unicast address usable as a flow endpoint. */
export function inanyIsUnicast(a: Uint8Array, off = 0): boolean {
  return !inanyIsUnspecified(a, off) && !inanyIsMulticast(a, off);
}

/** Parses an IPv4 or IPv6 string into 16 bytes. */
export function inanyParse(s: string): Uint8Array {
  const a = ipaddr.parse(s);
  const out = new Uint8Array(16);
  if (a.kind() === 'ipv4') inanyFrom4(out, 0, Uint8Array.from(a.toByteArray()), 0);
  else out.set(a.toByteArray());
  return out;
}

/** Like inanyParse, but null for null. */
export function inanyParseOrNull(s: string | null): Uint8Array | null {
  return s === null ? null : inanyParse(s);
}

export function inanyToString(a: Uint8Array, off = 0): string {
  if (inanyIs4(a, off)) return `${a[off + 12]}.${a[off + 13]}.${a[off + 14]}.${a[off + 15]}`;
  return ipaddr.fromByteArray(Array.from(a.subarray(off, off + 16))).toString();
}

/** "addr:port" or "[addr]:port". */
export function endpointString(a: Uint8Array, off: number, port: number): string {
  return inanyIs4(a, off) ? `${inanyToString(a, off)}:${port}` : `[${inanyToString(a, off)}]:${port}`;
}

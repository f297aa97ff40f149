/**
 * struct sockaddr bytes for the native addon: sockaddr_in (16 bytes) for
 * IPv4-mapped addresses, sockaddr_in6 (28 bytes) otherwise. The family is
 * in host byte order (little-endian on every platform Node runs passt-ts
 * on), port and address in network order.
 */
import { AF_INET, AF_INET6 } from './linux';
import { inanyIs4, inanyFrom4 } from './flow/inany';

export const SOCKADDR_LEN = 28;

/**
 * Writes the sockaddr for (addr16 at a[aOff], port) at out[off]; returns
 * its length (16 or 28). The remaining bytes up to 28 are zeroed.
 */
export function sockaddrFrom(out: Uint8Array, off: number, a: Uint8Array, aOff: number, port: number, scopeId = 0): number {
  out.fill(0, off, off + SOCKADDR_LEN);
  if (inanyIs4(a, aOff)) {
    out[off] = AF_INET;
    out[off + 2] = port >>> 8;
    out[off + 3] = port & 0xff;
    out[off + 4] = a[aOff + 12];
    out[off + 5] = a[aOff + 13];
    out[off + 6] = a[aOff + 14];
    out[off + 7] = a[aOff + 15];
    return 16;
  }
  out[off] = AF_INET6;
  out[off + 2] = port >>> 8;
  out[off + 3] = port & 0xff;
  for (let i = 0; i < 16; i++) out[off + 8 + i] = a[aOff + i];
  out[off + 24] = scopeId & 0xff;
  out[off + 25] = (scopeId >>> 8) & 0xff;
  out[off + 26] = (scopeId >>> 16) & 0xff;
  out[off + 27] = (scopeId >>> 24) & 0xff;
  return 28;
}

/** A fresh sockaddr buffer of the right length for (addr16, port). */
export function sockaddr(a: Uint8Array, port: number, scopeId = 0): Uint8Array {
  const b = new Uint8Array(SOCKADDR_LEN);
  const n = sockaddrFrom(b, 0, a, 0, port, scopeId);
  return b.subarray(0, n);
}

/** Family of the sockaddr at sa[off] (AF_INET, AF_INET6, or other). */
export function sockaddrFamily(sa: Uint8Array, off = 0): number {
  return sa[off] | (sa[off + 1] << 8);
}

/**
 * Reads an AF_INET/AF_INET6 sockaddr at sa[off] into addr16 at out[oOff].
 * Returns the port, or -1 for another family.
 */
export function sockaddrTo(sa: Uint8Array, off: number, out: Uint8Array, oOff: number): number {
  const fam = sockaddrFamily(sa, off);
  const port = (sa[off + 2] << 8) | sa[off + 3];
  if (fam === AF_INET) {
    inanyFrom4(out, oOff, sa, off + 4);
    return port;
  }
  if (fam === AF_INET6) {
    for (let i = 0; i < 16; i++) out[oOff + i] = sa[off + 8 + i];
    return port;
  }
  return -1;
}

/** Scope id of an AF_INET6 sockaddr. */
export function sockaddrScope(sa: Uint8Array, off = 0): number {
  return (sa[off + 24] | (sa[off + 25] << 8) | (sa[off + 26] << 16) | (sa[off + 27] << 24)) >>> 0;
}

export { inanyIs4 };

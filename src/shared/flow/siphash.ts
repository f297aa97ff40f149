/**
 * SipHash-2-4 (Aumasson & Bernstein, 2012) with a 128-bit key, over a byte
 * string, returning the 64-bit result as two 32-bit halves. Used once per
 * TCP connection for initial sequence numbers (RFC 6528, SPEC.md §4.8), so
 * BigInt arithmetic is fast enough and keeps the code plain.
 */

const MASK = (1n << 64n) - 1n;

function rotl(x: bigint, b: bigint): bigint {
  return ((x << b) | (x >> (64n - b))) & MASK;
}

function le64(u8: Uint8Array, off: number): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(u8[off + i]);
  return v;
}

/** SipHash-2-4 of msg with a 16-byte key; returns [hi32, lo32]. */
export function siphash24(key: Uint8Array, msg: Uint8Array): [number, number] {
  const k0 = le64(key, 0);
  const k1 = le64(key, 8);
  let v0 = 0x736f6d6570736575n ^ k0;
  let v1 = 0x646f72616e646f6dn ^ k1;
  let v2 = 0x6c7967656e657261n ^ k0;
  let v3 = 0x7465646279746573n ^ k1;
  const round = () => {
    v0 = (v0 + v1) & MASK; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & MASK; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & MASK; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & MASK; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };
  const len = msg.length;
  const end = len - (len % 8);
  for (let i = 0; i < end; i += 8) {
    const m = le64(msg, i);
    v3 ^= m;
    round(); round();
    v0 ^= m;
  }
  let b = BigInt(len & 0xff) << 56n;
  for (let i = len % 8 - 1; i >= 0; i--) b |= BigInt(msg[end + i]) << BigInt(8 * i);
  v3 ^= b;
  round(); round();
  v0 ^= b;
  v2 ^= 0xffn;
  round(); round(); round(); round();
  const r = (v0 ^ v1 ^ v2 ^ v3) & MASK;
  return [Number(r >> 32n), Number(r & 0xffffffffn)];
}

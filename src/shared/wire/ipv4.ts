/**
 * IPv4 header (RFC 791) and its header checksum (RFC 1071).
 *
 * Theory of operation: `reset` accepts a header when version = 4,
 * IHL ≥ 5, header length ≤ total length ≤ available bytes (trailing padding,
 * e.g. to the Ethernet minimum, is allowed and excluded from the payload).
 * Options are skipped, never interpreted. The header checksum of guest
 * packets is not verified on the data path (SPEC §1.3), but
 * `verifyChecksum()` exists for tests and tools. Fragments (MF set or a
 * non-zero offset; DF alone is fine) are recognised with `isFragment` and
 * dropped by the caller, as are 127.0.0.0/8 sources and destinations.
 * Headers we build (`writeIpv4Header`): version 4, IHL 5, TOS 0, ID 0, no
 * DF, TTL 255, correct checksum (SPEC §1.4).
 */
import { copyBytes, IP4_LEN, ip4IsLoopback, rangeOk } from './bytes';
import { finish, sum16 } from './checksum';
import { WireView } from './view';

export const IPV4_FIELD = {
  VER_IHL: 0, TOS: 1, TOTAL_LEN: 2, IDENT: 4, FLAGS_FRAG: 6, TTL: 8, PROTOCOL: 9, CHECKSUM: 10,
  SRC: 12, DST: 16,
} as const;
export const IPV4_HEADER_LEN = 20;
/** Bits of the 16-bit flags/fragment-offset field. */
export const IPV4_FLAG = { DF: 0x4000, MF: 0x2000 } as const;
export const IPV4_FRAG_OFFSET_MASK = 0x1fff;
export const IP_PROTO = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;
/** TTL of every packet we send to the guest (SPEC §1.4). */
export const IPV4_TTL = 255;

/** Header length in bytes if u8[off, off+len) is a well-formed IPv4 header, else 0. */
export function ipv4HeaderLen(u8: Uint8Array, off: number, len: number): number {
  if (len < IPV4_HEADER_LEN) return 0;
  const b = u8[off];
  if (b >>> 4 !== 4) return 0;
  const hl = (b & 0x0f) << 2;
  const total = (u8[off + IPV4_FIELD.TOTAL_LEN] << 8) | u8[off + IPV4_FIELD.TOTAL_LEN + 1];
  if (hl < IPV4_HEADER_LEN || total < hl || total > len) return 0;
  return hl;
}

/** View of an IPv4 header and its payload. */
export class Ipv4View extends WireView {
  /** Validates version 4, IHL ≥ 5, header ≤ total length ≤ len. */
  reset(off: number, len: number): boolean {
    if (!rangeOk(this.u8, off, len) || ipv4HeaderLen(this.u8, off, len) === 0) return this.fail();
    this.off = off;
    this.len = len;
    return true;
  }

  /** A new view of [off, off+len), or null if malformed. */
  static check(u8: Uint8Array, off: number, len: number): Ipv4View | null {
    const v = new Ipv4View(u8);
    return v.reset(off, len) ? v : null;
  }

  get version(): number { return this.u8[this.off] >>> 4; }
  /** Header length in 32-bit words. */
  get ihl(): number { return this.u8[this.off] & 0x0f; }
  /** Header length in bytes. */
  get headerLen(): number { return (this.u8[this.off] & 0x0f) << 2; }
  get tos(): number { return this.u8[this.off + IPV4_FIELD.TOS]; }
  get totalLen(): number { return this.dv.getUint16(this.off + IPV4_FIELD.TOTAL_LEN); }
  get ident(): number { return this.dv.getUint16(this.off + IPV4_FIELD.IDENT); }
  /** The whole 16-bit flags + fragment offset field. */
  get flagsFrag(): number { return this.dv.getUint16(this.off + IPV4_FIELD.FLAGS_FRAG); }
  get dontFrag(): boolean { return (this.flagsFrag & IPV4_FLAG.DF) !== 0; }
  get moreFrags(): boolean { return (this.flagsFrag & IPV4_FLAG.MF) !== 0; }
  /** Fragment offset in 8-byte units. */
  get fragOffset(): number { return this.flagsFrag & IPV4_FRAG_OFFSET_MASK; }
  /** True for any fragment: MF set or a non-zero offset (DF alone is not). */
  get isFragment(): boolean { return (this.flagsFrag & (IPV4_FLAG.MF | IPV4_FRAG_OFFSET_MASK)) !== 0; }
  get ttl(): number { return this.u8[this.off + IPV4_FIELD.TTL]; }
  get protocol(): number { return this.u8[this.off + IPV4_FIELD.PROTOCOL]; }
  get checksum(): number { return this.dv.getUint16(this.off + IPV4_FIELD.CHECKSUM); }
  /** Offsets in u8 of the 4-byte addresses. */
  get srcOff(): number { return this.off + IPV4_FIELD.SRC; }
  get dstOff(): number { return this.off + IPV4_FIELD.DST; }
  /** Addresses as unsigned 32-bit numbers. */
  get src(): number { return this.dv.getUint32(this.off + IPV4_FIELD.SRC); }
  get dst(): number { return this.dv.getUint32(this.off + IPV4_FIELD.DST); }
  /** True if source or destination is in 127.0.0.0/8 (dropped, SPEC §1.3). */
  get hasLoopback(): boolean { return ip4IsLoopback(this.u8, this.srcOff) || ip4IsLoopback(this.u8, this.dstOff); }
  /** L4 start: after the header (options included). */
  get payloadOff(): number { return this.off + this.headerLen; }
  /** L4 length: total length minus header; never reaches past the frame. */
  get payloadLen(): number { return this.totalLen - this.headerLen; }
  /** True if the header checksum is correct. */
  verifyChecksum(): boolean { return finish(sum16(this.u8, this.off, this.headerLen)) === 0; }

  setTos(v: number): void { this.u8[this.off + IPV4_FIELD.TOS] = v; }
  /** Breaks the check if set beyond `len` or below the header length: re-`reset` after. */
  setTotalLen(v: number): void { this.dv.setUint16(this.off + IPV4_FIELD.TOTAL_LEN, v); }
  setIdent(v: number): void { this.dv.setUint16(this.off + IPV4_FIELD.IDENT, v); }
  setFlagsFrag(v: number): void { this.dv.setUint16(this.off + IPV4_FIELD.FLAGS_FRAG, v); }
  setTtl(v: number): void { this.u8[this.off + IPV4_FIELD.TTL] = v; }
  setProtocol(v: number): void { this.u8[this.off + IPV4_FIELD.PROTOCOL] = v; }
  setChecksum(v: number): void { this.dv.setUint16(this.off + IPV4_FIELD.CHECKSUM, v); }
  setSrc(a: Uint8Array, aOff = 0): void { copyBytes(this.u8, this.off + IPV4_FIELD.SRC, a, aOff, IP4_LEN); }
  setDst(a: Uint8Array, aOff = 0): void { copyBytes(this.u8, this.off + IPV4_FIELD.DST, a, aOff, IP4_LEN); }
  /** Recomputes and stores the header checksum. */
  fillChecksum(): void {
    this.setChecksum(0);
    this.setChecksum(finish(sum16(this.u8, this.off, this.headerLen)));
  }
}

/**
 * Writes a 20-byte IPv4 header for `payloadLen` bytes of protocol `proto` at
 * out[off], with our fixed fields and a correct checksum; returns 20.
 */
export function writeIpv4Header(out: Uint8Array, off: number, payloadLen: number, proto: number,
  src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): number {
  const total = IPV4_HEADER_LEN + payloadLen;
  out[off] = 0x45;
  out[off + 1] = 0;
  out[off + 2] = total >>> 8;
  out[off + 3] = total;
  out[off + 4] = 0; out[off + 5] = 0; // ident 0
  out[off + 6] = 0; out[off + 7] = 0; // no DF, no fragment
  out[off + IPV4_FIELD.TTL] = IPV4_TTL;
  out[off + IPV4_FIELD.PROTOCOL] = proto;
  out[off + 10] = 0; out[off + 11] = 0;
  copyBytes(out, off + IPV4_FIELD.SRC, src, srcOff, IP4_LEN);
  copyBytes(out, off + IPV4_FIELD.DST, dst, dstOff, IP4_LEN);
  const c = finish(sum16(out, off, IPV4_HEADER_LEN));
  out[off + 10] = c >>> 8;
  out[off + 11] = c;
  return IPV4_HEADER_LEN;
}

/**
 * ICMP (RFC 792) and ICMPv6 (RFC 4443) headers, with the echo fields.
 *
 * Theory of operation: both share one 8-byte layout: type, code, checksum,
 * then 4 bytes that are identifier and sequence number for echo messages.
 * `reset` checks only len ≥ 8 (every message we handle has at least that);
 * the type is the caller's business: echo requests go to the ping-socket path
 * (SPEC §6), ICMPv6 133–136 to NDP (wire/ndp.ts, services/ndp.ts), the rest is
 * dropped. ICMP checksums cover the message only; ICMPv6 checksums also the
 * IPv6 pseudo-header (checksum.ts `l4Checksum6` with next header 58).
 */
import { rangeOk } from './bytes';
import { WireView } from './view';

export const ICMP_FIELD = { TYPE: 0, CODE: 1, CHECKSUM: 2, IDENT: 4, SEQ: 6 } as const;
export const ICMP_HEADER_LEN = 8;
export const ICMP_TYPE = { ECHO_REPLY: 0, ECHO_REQUEST: 8 } as const;
export const ICMPV6_TYPE = {
  ECHO_REQUEST: 128, ECHO_REPLY: 129,
  ROUTER_SOLICITATION: 133, ROUTER_ADVERTISEMENT: 134,
  NEIGHBOR_SOLICITATION: 135, NEIGHBOR_ADVERTISEMENT: 136, REDIRECT: 137,
} as const;

abstract class IcmpViewBase extends WireView {
  /** Validates len ≥ 8. */
  reset(off: number, len: number): boolean {
    if (!rangeOk(this.u8, off, len) || len < ICMP_HEADER_LEN) return this.fail();
    this.off = off;
    this.len = len;
    return true;
  }

  get type(): number { return this.u8[this.off + ICMP_FIELD.TYPE]; }
  get code(): number { return this.u8[this.off + ICMP_FIELD.CODE]; }
  get checksum(): number { return this.dv.getUint16(this.off + ICMP_FIELD.CHECKSUM); }
  /** Echo identifier (meaningful for echo types only). */
  get identifier(): number { return this.dv.getUint16(this.off + ICMP_FIELD.IDENT); }
  /** Echo sequence number (meaningful for echo types only). */
  get sequenceNumber(): number { return this.dv.getUint16(this.off + ICMP_FIELD.SEQ); }
  get payloadOff(): number { return this.off + ICMP_HEADER_LEN; }
  get payloadLen(): number { return this.len - ICMP_HEADER_LEN; }

  setType(v: number): void { this.u8[this.off + ICMP_FIELD.TYPE] = v; }
  setCode(v: number): void { this.u8[this.off + ICMP_FIELD.CODE] = v; }
  setChecksum(v: number): void { this.dv.setUint16(this.off + ICMP_FIELD.CHECKSUM, v); }
  setIdentifier(v: number): void { this.dv.setUint16(this.off + ICMP_FIELD.IDENT, v); }
  setSequenceNumber(v: number): void { this.dv.setUint16(this.off + ICMP_FIELD.SEQ, v); }
}

/** View of an ICMP (IPv4) message. */
export class Icmpv4View extends IcmpViewBase {
  /** A new view of [off, off+len), or null if shorter than 8 bytes. */
  static check(u8: Uint8Array, off: number, len: number): Icmpv4View | null {
    const v = new Icmpv4View(u8);
    return v.reset(off, len) ? v : null;
  }
  get isEcho(): boolean { const t = this.type; return t === ICMP_TYPE.ECHO_REQUEST || t === ICMP_TYPE.ECHO_REPLY; }
}

/** View of an ICMPv6 message. */
export class Icmpv6View extends IcmpViewBase {
  /** A new view of [off, off+len), or null if shorter than 8 bytes. */
  static check(u8: Uint8Array, off: number, len: number): Icmpv6View | null {
    const v = new Icmpv6View(u8);
    return v.reset(off, len) ? v : null;
  }
  get isEcho(): boolean { const t = this.type; return t === ICMPV6_TYPE.ECHO_REQUEST || t === ICMPV6_TYPE.ECHO_REPLY; }
  /** True for RS, RA, NS, NA (types 133–136), consumed by NDP (SPEC §3.1). */
  get isNdp(): boolean { const t = this.type; return t >= ICMPV6_TYPE.ROUTER_SOLICITATION && t <= ICMPV6_TYPE.NEIGHBOR_ADVERTISEMENT; }
}

/** Writes an 8-byte echo header (checksum 0) at out[off]; returns 8. */
export function writeIcmpEchoHeader(out: Uint8Array, off: number, type: number, ident: number, seq: number): number {
  out[off] = type; out[off + 1] = 0;
  out[off + 2] = 0; out[off + 3] = 0;
  out[off + 4] = ident >>> 8; out[off + 5] = ident;
  out[off + 6] = seq >>> 8; out[off + 7] = seq;
  return ICMP_HEADER_LEN;
}

/**
 * IPv6 fixed header (RFC 8200) and the walk over extension headers to the
 * upper-layer (L4) header.
 *
 * Theory of operation: `reset` accepts a packet when version = 6 and the
 * payload length equals the bytes after the 40-byte fixed header exactly
 * (SPEC §1.3: no padding for IPv6), then walks the extension-header chain:
 *
 * - Hop-by-Hop (0), Routing (43), Destination Options (60), Mobility (135,
 *   RFC 6275), HIP (139, RFC 7401), Shim6 (140, RFC 5533) and the
 *   experimental 253/254 (RFC 3692) use the RFC 8200 §4.8 layout: next
 *   header, then the length in 8-octet units not counting the first 8.
 * - Fragment (44) is always 8 octets; a fragment (offset ≠ 0 or M set) is
 *   reported by `isFragment` so the caller can drop it (we never reassemble).
 * - AH (51, RFC 4302) counts its length in 4-octet units minus 2.
 * - ESP (50, RFC 4303) hides the next header in its encrypted trailer, so the
 *   walk stops there and reports protocol 50 (the caller drops it as an
 *   unsupported protocol).
 *
 * A header that would run past the end of the payload makes `reset` fail.
 * After the walk, `protocol` is the upper-layer protocol (59 "no next
 * header" is reported as is; the caller drops it) and `payloadOff`/`payloadLen`
 * delimit its bytes. Headers we build (`writeIpv6Header`): traffic class 0,
 * hop limit 255, a caller-chosen flow label (SPEC §1.4).
 */
import { copyBytes, IP6_LEN, ip6IsLoopback, rangeOk } from './bytes';
import { WireView } from './view';

export const IPV6_FIELD = {
  VER_TC_FLOW: 0, PAYLOAD_LEN: 4, NEXT_HEADER: 6, HOP_LIMIT: 7, SRC: 8, DST: 24,
} as const;
export const IPV6_HEADER_LEN = 40;
/** Hop limit of every packet we send to the guest (SPEC §1.4). */
export const IPV6_HOP_LIMIT = 255;

/** Next-header values the walk knows (RFC 8200 and the IANA registry). */
export const IPV6_NH = {
  HOP_BY_HOP: 0, TCP: 6, UDP: 17, ROUTING: 43, FRAGMENT: 44, ESP: 50, AH: 51, ICMPV6: 58,
  NO_NEXT: 59, DEST_OPTS: 60, MOBILITY: 135, HIP: 139, SHIM6: 140, EXP1: 253, EXP2: 254,
} as const;

/** True for the extension headers skipped on the way to L4 (SPEC §1.3). */
export function ipv6IsExtHeader(nh: number): boolean {
  switch (nh) {
    case 0: case 43: case 44: case 50: case 51: case 60: case 135: case 139: case 140: case 253: case 254:
      return true;
    default:
      return false;
  }
}

/** View of an IPv6 packet: fixed header, extension headers, upper-layer payload. */
export class Ipv6View extends WireView {
  /** Upper-layer protocol found by the walk. */
  protocol = 0;
  /** Offset in u8 of the upper-layer header. */
  payloadOff = 0;
  /** Bytes of the upper-layer header and data (never past the packet). */
  payloadLen = 0;
  /** True if a Fragment header with offset ≠ 0 or M = 1 was crossed. */
  isFragment = false;

  /** Validates version 6, payload length = len − 40, and the extension-header chain. */
  reset(off: number, len: number): boolean {
    const u8 = this.u8;
    if (!rangeOk(u8, off, len) || len < IPV6_HEADER_LEN || u8[off] >>> 4 !== 6) return this.fail();
    const plen = (u8[off + IPV6_FIELD.PAYLOAD_LEN] << 8) | u8[off + IPV6_FIELD.PAYLOAD_LEN + 1];
    if (plen !== len - IPV6_HEADER_LEN) return this.fail();
    const end = off + len;
    let nh = u8[off + IPV6_FIELD.NEXT_HEADER];
    let p = off + IPV6_HEADER_LEN;
    let frag = false;
    while (ipv6IsExtHeader(nh) && nh !== IPV6_NH.ESP) {
      if (p + 8 > end) return this.fail(); // every extension header is at least 8 bytes
      let hl: number;
      if (nh === IPV6_NH.FRAGMENT) {
        hl = 8;
        const fo = (u8[p + 2] << 8) | u8[p + 3];
        if ((fo & 0xfff9) !== 0) frag = true; // offset (high 13 bits) or M (bit 0)
      } else if (nh === IPV6_NH.AH) {
        hl = (u8[p + 1] + 2) << 2;
      } else {
        hl = (u8[p + 1] + 1) << 3;
      }
      if (p + hl > end) return this.fail();
      nh = u8[p];
      p += hl;
    }
    this.off = off;
    this.len = len;
    this.protocol = nh;
    this.payloadOff = p;
    this.payloadLen = end - p;
    this.isFragment = frag;
    return true;
  }

  protected fail(): false {
    this.protocol = 0;
    this.payloadOff = 0;
    this.payloadLen = 0;
    this.isFragment = false;
    return super.fail();
  }

  /** A new view of [off, off+len), or null if malformed. */
  static check(u8: Uint8Array, off: number, len: number): Ipv6View | null {
    const v = new Ipv6View(u8);
    return v.reset(off, len) ? v : null;
  }

  get version(): number { return this.u8[this.off] >>> 4; }
  get trafficClass(): number { return (this.dv.getUint16(this.off) >>> 4) & 0xff; }
  get flowLabel(): number { return this.dv.getUint32(this.off) & 0xfffff; }
  /** The Payload Length field (= len − 40 after a successful reset). */
  get payloadLength(): number { return this.dv.getUint16(this.off + IPV6_FIELD.PAYLOAD_LEN); }
  /** Next Header of the fixed header (not necessarily the L4 protocol). */
  get nextHeader(): number { return this.u8[this.off + IPV6_FIELD.NEXT_HEADER]; }
  get hopLimit(): number { return this.u8[this.off + IPV6_FIELD.HOP_LIMIT]; }
  /** Offsets in u8 of the 16-byte addresses. */
  get srcOff(): number { return this.off + IPV6_FIELD.SRC; }
  get dstOff(): number { return this.off + IPV6_FIELD.DST; }
  /** Bytes of extension headers between the fixed header and L4. */
  get extLen(): number { return this.payloadOff - this.off - IPV6_HEADER_LEN; }
  /** True if source or destination is ::1 (dropped, SPEC §1.3). */
  get hasLoopback(): boolean { return ip6IsLoopback(this.u8, this.srcOff) || ip6IsLoopback(this.u8, this.dstOff); }

  setFlowLabel(v: number): void {
    this.dv.setUint32(this.off, (this.dv.getUint32(this.off) & 0xfff00000) | (v & 0xfffff));
  }
  setHopLimit(v: number): void { this.u8[this.off + IPV6_FIELD.HOP_LIMIT] = v; }
  setSrc(a: Uint8Array, aOff = 0): void { copyBytes(this.u8, this.off + IPV6_FIELD.SRC, a, aOff, IP6_LEN); }
  setDst(a: Uint8Array, aOff = 0): void { copyBytes(this.u8, this.off + IPV6_FIELD.DST, a, aOff, IP6_LEN); }
}

/**
 * Writes a 40-byte IPv6 header (no extension headers) at out[off]; returns 40.
 * @param flowLabel low 20 bits used
 */
export function writeIpv6Header(out: Uint8Array, off: number, payloadLen: number, nextHeader: number,
  flowLabel: number, src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): number {
  out[off] = 0x60;
  out[off + 1] = (flowLabel >>> 16) & 0x0f;
  out[off + 2] = flowLabel >>> 8;
  out[off + 3] = flowLabel;
  out[off + 4] = payloadLen >>> 8;
  out[off + 5] = payloadLen;
  out[off + IPV6_FIELD.NEXT_HEADER] = nextHeader;
  out[off + IPV6_FIELD.HOP_LIMIT] = IPV6_HOP_LIMIT;
  copyBytes(out, off + IPV6_FIELD.SRC, src, srcOff, IP6_LEN);
  copyBytes(out, off + IPV6_FIELD.DST, dst, dstOff, IP6_LEN);
  return IPV6_HEADER_LEN;
}

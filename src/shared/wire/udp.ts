/**
 * UDP header (RFC 768).
 *
 * Theory of operation: `reset(off, len)` is given the L4 bytes from the IP
 * layer and checks 8 ≤ length field ≤ len; the payload is length − 8 bytes
 * (bytes after the length are ignored). Link services additionally require
 * the length field to match the IP payload exactly (`exactLength`, SPEC §3.4,
 * §3.5). Guest checksums are not verified (SPEC §1.3). Towards the guest, UDP
 * over IPv4 carries checksum 0 and UDP over IPv6 a computed one, with 0
 * transmitted as 0xffff (RFC 768, RFC 8200 §8.1).
 */
import { rangeOk } from './bytes';
import { WireView } from './view';

export const UDP_FIELD = { SRC_PORT: 0, DST_PORT: 2, LENGTH: 4, CHECKSUM: 6 } as const;
export const UDP_HEADER_LEN = 8;

/** View of a UDP datagram. */
export class UdpView extends WireView {
  /** Validates 8 ≤ length ≤ len. */
  reset(off: number, len: number): boolean {
    if (!rangeOk(this.u8, off, len) || len < UDP_HEADER_LEN) return this.fail();
    const l = (this.u8[off + UDP_FIELD.LENGTH] << 8) | this.u8[off + UDP_FIELD.LENGTH + 1];
    if (l < UDP_HEADER_LEN || l > len) return this.fail();
    this.off = off;
    this.len = len;
    return true;
  }

  /** A new view of [off, off+len), or null if malformed. */
  static check(u8: Uint8Array, off: number, len: number): UdpView | null {
    const v = new UdpView(u8);
    return v.reset(off, len) ? v : null;
  }

  get srcPort(): number { return this.dv.getUint16(this.off + UDP_FIELD.SRC_PORT); }
  get dstPort(): number { return this.dv.getUint16(this.off + UDP_FIELD.DST_PORT); }
  get length(): number { return this.dv.getUint16(this.off + UDP_FIELD.LENGTH); }
  get checksum(): number { return this.dv.getUint16(this.off + UDP_FIELD.CHECKSUM); }
  /** True if the length field equals the bytes given to reset (no trailing bytes). */
  get exactLength(): boolean { return this.length === this.len; }
  get payloadOff(): number { return this.off + UDP_HEADER_LEN; }
  get payloadLen(): number { return this.length - UDP_HEADER_LEN; }

  setSrcPort(v: number): void { this.dv.setUint16(this.off + UDP_FIELD.SRC_PORT, v); }
  setDstPort(v: number): void { this.dv.setUint16(this.off + UDP_FIELD.DST_PORT, v); }
  /** Breaks the check if set above len or below 8: re-`reset` after. */
  setLength(v: number): void { this.dv.setUint16(this.off + UDP_FIELD.LENGTH, v); }
  setChecksum(v: number): void { this.dv.setUint16(this.off + UDP_FIELD.CHECKSUM, v); }
}

/** Writes an 8-byte UDP header (checksum 0) for payloadLen bytes at out[off]; returns 8. */
export function writeUdpHeader(out: Uint8Array, off: number, srcPort: number, dstPort: number,
  payloadLen: number): number {
  const l = UDP_HEADER_LEN + payloadLen;
  out[off] = srcPort >>> 8; out[off + 1] = srcPort;
  out[off + 2] = dstPort >>> 8; out[off + 3] = dstPort;
  out[off + 4] = l >>> 8; out[off + 5] = l;
  out[off + 6] = 0; out[off + 7] = 0;
  return UDP_HEADER_LEN;
}

/** The value to transmit for a computed UDP checksum (0 becomes 0xffff). */
export function udpChecksumValue(c: number): number {
  return c === 0 ? 0xffff : c;
}

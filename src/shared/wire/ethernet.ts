/**
 * Ethernet II framing (IEEE 802.3 / RFC 894), as carried by the tap device and
 * the qemu stream socket: no preamble, no FCS, no VLAN tags.
 *
 * Theory of operation: frames from the guest are 14…65535 bytes (SPEC §1.1,
 * §1.2); anything else is not a frame. Only EtherTypes IPv4, ARP and IPv6
 * are demultiplexed (SPEC §1.3); an 802.1Q tag is just another EtherType
 * (dropped by the caller). Frames we build are not padded to the 60-byte
 * minimum (SPEC §1.4): destination = the guest MAC, source = our MAC.
 */
import { copyBytes, MAC_LEN, rangeOk } from './bytes';
import { WireView } from './view';

export const ETH_FIELD = { DST: 0, SRC: 6, ETHERTYPE: 12 } as const;
export const ETH_HEADER_LEN = 14;
/** Smallest and largest frame accepted from the guest (SPEC §1.1). */
export const ETH_MIN_FRAME = ETH_HEADER_LEN;
export const ETH_MAX_FRAME = 65535;

export const ETHERTYPE = { IPV4: 0x0800, ARP: 0x0806, IPV6: 0x86dd } as const;
export type EtherType = (typeof ETHERTYPE)[keyof typeof ETHERTYPE];

/** View of an Ethernet II header and its payload. */
export class EthernetView extends WireView {
  /** Validates 14 ≤ len ≤ 65535. */
  reset(off: number, len: number): boolean {
    if (!rangeOk(this.u8, off, len) || len < ETH_MIN_FRAME || len > ETH_MAX_FRAME) return this.fail();
    this.off = off;
    this.len = len;
    return true;
  }

  /** A new view of [off, off+len), or null if it is not an Ethernet frame. */
  static check(u8: Uint8Array, off: number, len: number): EthernetView | null {
    const v = new EthernetView(u8);
    return v.reset(off, len) ? v : null;
  }

  /** Offset in u8 of the destination MAC (6 bytes). */
  get dstOff(): number { return this.off + ETH_FIELD.DST; }
  /** Offset in u8 of the source MAC (6 bytes). */
  get srcOff(): number { return this.off + ETH_FIELD.SRC; }
  get etherType(): number { return this.dv.getUint16(this.off + ETH_FIELD.ETHERTYPE); }
  get payloadOff(): number { return this.off + ETH_HEADER_LEN; }
  get payloadLen(): number { return this.len - ETH_HEADER_LEN; }

  setDst(mac: Uint8Array, macOff = 0): void { copyBytes(this.u8, this.off + ETH_FIELD.DST, mac, macOff, MAC_LEN); }
  setSrc(mac: Uint8Array, macOff = 0): void { copyBytes(this.u8, this.off + ETH_FIELD.SRC, mac, macOff, MAC_LEN); }
  setEtherType(t: number): void { this.dv.setUint16(this.off + ETH_FIELD.ETHERTYPE, t); }
}

/** Writes a 14-byte Ethernet header at out[off]; returns 14. */
export function writeEthHeader(out: Uint8Array, off: number, dst: Uint8Array, dstOff: number,
  src: Uint8Array, srcOff: number, etherType: number): number {
  copyBytes(out, off + ETH_FIELD.DST, dst, dstOff, MAC_LEN);
  copyBytes(out, off + ETH_FIELD.SRC, src, srcOff, MAC_LEN);
  out[off + ETH_FIELD.ETHERTYPE] = etherType >>> 8;
  out[off + ETH_FIELD.ETHERTYPE + 1] = etherType;
  return ETH_HEADER_LEN;
}

/**
 * ARP (RFC 826) packets, generic layout plus the Ethernet/IPv4 repr.
 *
 * Theory of operation: the fixed part is 8 bytes (hardware type, protocol
 * type, their address lengths, opcode), followed by sender hardware address,
 * sender protocol address, target hardware address, target protocol address,
 * whose lengths come from the fixed part. The view validates that all four
 * addresses fit. The proxy (services/arp.ts) only considers Ethernet/IPv4
 * (htype 1, ptype 0x0800, hlen 6, plen 4): `parseArp` returns a repr for those
 * and null for everything else; `emitArp` writes the 28-byte Ethernet/IPv4
 * form.
 */
import { copyBytes, IP4_LEN, MAC_LEN, rangeOk, wr16 } from './bytes';
import { ETHERTYPE } from './ethernet';
import { WireView } from './view';

export const ARP_FIELD = { HTYPE: 0, PTYPE: 2, HLEN: 4, PLEN: 5, OPER: 6, SHA: 8 } as const;
export const ARP_FIXED_LEN = 8;
/** Length of an Ethernet/IPv4 ARP packet. */
export const ARP_ETH_IP4_LEN = ARP_FIXED_LEN + 2 * MAC_LEN + 2 * IP4_LEN;
export const ARP_HTYPE_ETHERNET = 1;
export const ARP_OP = { REQUEST: 1, REPLY: 2 } as const;

/** View of an ARP packet with any address lengths. */
export class ArpView extends WireView {
  /** Validates len ≥ 8 + 2·hlen + 2·plen. */
  reset(off: number, len: number): boolean {
    if (!rangeOk(this.u8, off, len) || len < ARP_FIXED_LEN) return this.fail();
    const need = ARP_FIXED_LEN + 2 * this.u8[off + ARP_FIELD.HLEN] + 2 * this.u8[off + ARP_FIELD.PLEN];
    if (len < need) return this.fail();
    this.off = off;
    this.len = len;
    return true;
  }

  /** A new view of [off, off+len), or null if malformed. */
  static check(u8: Uint8Array, off: number, len: number): ArpView | null {
    const v = new ArpView(u8);
    return v.reset(off, len) ? v : null;
  }

  get htype(): number { return this.dv.getUint16(this.off + ARP_FIELD.HTYPE); }
  get ptype(): number { return this.dv.getUint16(this.off + ARP_FIELD.PTYPE); }
  get hlen(): number { return this.u8[this.off + ARP_FIELD.HLEN]; }
  get plen(): number { return this.u8[this.off + ARP_FIELD.PLEN]; }
  get oper(): number { return this.dv.getUint16(this.off + ARP_FIELD.OPER); }
  /** Offsets in u8 of the four addresses. */
  get shaOff(): number { return this.off + ARP_FIELD.SHA; }
  get spaOff(): number { return this.shaOff + this.hlen; }
  get thaOff(): number { return this.spaOff + this.plen; }
  get tpaOff(): number { return this.thaOff + this.hlen; }
  /** True for the Ethernet/IPv4 combination (htype 1, ptype 0x0800, 6/4). */
  get isEthIp4(): boolean {
    return this.htype === ARP_HTYPE_ETHERNET && this.ptype === ETHERTYPE.IPV4
      && this.hlen === MAC_LEN && this.plen === IP4_LEN;
  }

  setOper(op: number): void { this.dv.setUint16(this.off + ARP_FIELD.OPER, op); }
}

/** Ethernet/IPv4 ARP packet contents. */
export interface ArpRepr {
  oper: number;
  senderMac: Uint8Array;
  senderIp: Uint8Array;
  targetMac: Uint8Array;
  targetIp: Uint8Array;
}

/** Repr of an Ethernet/IPv4 ARP packet, or null for other hardware/protocol types. */
export function parseArp(v: ArpView): ArpRepr | null {
  if (v.len < ARP_ETH_IP4_LEN || !v.isEthIp4) return null;
  const s = v.shaOff;
  return {
    oper: v.oper,
    senderMac: v.u8.slice(s, s + 6),
    senderIp: v.u8.slice(s + 6, s + 10),
    targetMac: v.u8.slice(s + 10, s + 16),
    targetIp: v.u8.slice(s + 16, s + 20),
  };
}

/** Writes the 28-byte Ethernet/IPv4 ARP packet at out[off]; returns 28. */
export function emitArp(r: ArpRepr, out: Uint8Array, off: number): number {
  wr16(out, off + ARP_FIELD.HTYPE, ARP_HTYPE_ETHERNET);
  wr16(out, off + ARP_FIELD.PTYPE, ETHERTYPE.IPV4);
  out[off + ARP_FIELD.HLEN] = MAC_LEN;
  out[off + ARP_FIELD.PLEN] = IP4_LEN;
  wr16(out, off + ARP_FIELD.OPER, r.oper);
  const s = off + ARP_FIELD.SHA;
  copyBytes(out, s, r.senderMac, 0, 6);
  copyBytes(out, s + 6, r.senderIp, 0, 4);
  copyBytes(out, s + 10, r.targetMac, 0, 6);
  copyBytes(out, s + 16, r.targetIp, 0, 4);
  return ARP_ETH_IP4_LEN;
}

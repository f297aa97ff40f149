/**
 * A set of re-usable views that parse one Ethernet frame down to its L4
 * header, for the link services, the learning rules and the pretty-printer.
 *
 * Theory of operation: `FrameViews` owns one view per header type over one
 * buffer (construct once per buffer; `forBuffer` re-creates them only when
 * the buffer changes). `parse(off, len)` resets the Ethernet view, then the
 * ARP, IPv4 or IPv6 view by EtherType, then the UDP, TCP or ICMP view by
 * protocol, and records how far it got. Every step is a `reset`, so every
 * length field is validated once and no view can reach outside the frame.
 * IPv4 L4 ranges end at the IPv4 total length (padding excluded).
 */
import { ArpView } from './arp';
import { EthernetView, ETHERTYPE } from './ethernet';
import { Icmpv4View, Icmpv6View } from './icmp';
import { IP_PROTO, Ipv4View } from './ipv4';
import { Ipv6View } from './ipv6';
import { TcpView } from './tcp';
import { UdpView } from './udp';

/** How far `FrameViews.parse` got. */
export const FRAME_LAYER = {
  /** Not an Ethernet frame (length outside 14…65535, or a bad range). */
  NONE: 0,
  /** Ethernet header only: unknown EtherType or malformed L3. */
  L2: 1,
  /** ARP, IPv4 or IPv6 header valid; L4 unknown or malformed. */
  L3: 2,
  /** L4 header (UDP, TCP, ICMP, ICMPv6) valid too. */
  L4: 3,
} as const;
export type FrameLayer = (typeof FRAME_LAYER)[keyof typeof FRAME_LAYER];

/** Views of one frame's headers, over one buffer. */
export class FrameViews {
  readonly u8: Uint8Array;
  readonly eth: EthernetView;
  readonly arp: ArpView;
  readonly ip4: Ipv4View;
  readonly ip6: Ipv6View;
  readonly udp: UdpView;
  readonly tcp: TcpView;
  readonly icmp4: Icmpv4View;
  readonly icmp6: Icmpv6View;
  /** Result of the last parse. */
  layer: FrameLayer = FRAME_LAYER.NONE;
  /** EtherType of the last frame (0 if layer NONE). */
  etherType = 0;
  /** L4 protocol number of the last IP packet (−1 if not IP). */
  l4Proto = -1;

  constructor(u8: Uint8Array) {
    this.u8 = u8;
    this.eth = new EthernetView(u8);
    this.arp = new ArpView(u8);
    this.ip4 = new Ipv4View(u8);
    this.ip6 = new Ipv6View(u8);
    this.udp = new UdpView(u8);
    this.tcp = new TcpView(u8);
    this.icmp4 = new Icmpv4View(u8);
    this.icmp6 = new Icmpv6View(u8);
  }

  /** `prev` if it is over u8, else new views over u8. */
  static forBuffer(prev: FrameViews | null, u8: Uint8Array): FrameViews {
    return prev !== null && prev.u8 === u8 ? prev : new FrameViews(u8);
  }

  /** Parses the frame at [off, off+len); returns (and records) the layer reached. */
  parse(off: number, len: number): FrameLayer {
    this.etherType = 0;
    this.l4Proto = -1;
    if (!this.eth.reset(off, len)) return (this.layer = FRAME_LAYER.NONE);
    const et = this.eth.etherType;
    this.etherType = et;
    const po = this.eth.payloadOff;
    const pl = this.eth.payloadLen;
    let l4Off: number;
    let l4Len: number;
    if (et === ETHERTYPE.ARP) {
      return (this.layer = this.arp.reset(po, pl) ? FRAME_LAYER.L3 : FRAME_LAYER.L2);
    } else if (et === ETHERTYPE.IPV4) {
      if (!this.ip4.reset(po, pl)) return (this.layer = FRAME_LAYER.L2);
      this.l4Proto = this.ip4.protocol;
      l4Off = this.ip4.payloadOff;
      l4Len = this.ip4.payloadLen;
    } else if (et === ETHERTYPE.IPV6) {
      if (!this.ip6.reset(po, pl)) return (this.layer = FRAME_LAYER.L2);
      this.l4Proto = this.ip6.protocol;
      l4Off = this.ip6.payloadOff;
      l4Len = this.ip6.payloadLen;
    } else {
      return (this.layer = FRAME_LAYER.L2);
    }
    let ok: boolean;
    switch (this.l4Proto) {
      case IP_PROTO.UDP: ok = this.udp.reset(l4Off, l4Len); break;
      case IP_PROTO.TCP: ok = this.tcp.reset(l4Off, l4Len); break;
      case IP_PROTO.ICMP: ok = et === ETHERTYPE.IPV4 && this.icmp4.reset(l4Off, l4Len); break;
      case IP_PROTO.ICMPV6: ok = et === ETHERTYPE.IPV6 && this.icmp6.reset(l4Off, l4Len); break;
      default: ok = false;
    }
    return (this.layer = ok ? FRAME_LAYER.L4 : FRAME_LAYER.L3);
  }
}

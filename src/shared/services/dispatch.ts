/**
 * Which frames belong to the link services, and one entry point for them
 * (SPEC §3.1).
 *
 * Theory of operation: tap-RX parses each frame once (wire/frame.ts
 * FrameViews) and asks `linkServiceFor` whether a link service owns it:
 * ARP frames → ARP proxy; IPv4 UDP to port 67 → DHCP, whatever the
 * destination address; ICMPv6 types 133–136 → NDP; IPv6 UDP to port 547 →
 * DHCPv6. Such frames are consumed (never forwarded) whether or not they
 * are answered. `linkHandle` then runs the service and returns the length of
 * the reply written at out[outOff] (0 = no reply). The caller passes an
 * output slot of LINK_REPLY_MAX bytes that does not overlap the request.
 */
import { DHCP_PORT } from '../wire/dhcpv4';
import { DHCPV6_PORT } from '../wire/dhcpv6';
import { ETHERTYPE } from '../wire/ethernet';
import { FRAME_LAYER, FrameViews } from '../wire/frame';
import { IP_PROTO } from '../wire/ipv4';
import { arpHandle, ARP_REPLY_LEN } from './arp';
import { ServiceContext } from './context';
import { dhcpHandle, DHCP_REPLY_MAX } from './dhcp';
import { dhcpv6Handle, DHCPV6_REPLY_MAX } from './dhcpv6';
import { ndpHandle, NDP_REPLY_MAX } from './ndp';

export const LINK_SERVICE = { NONE: 0, ARP: 1, DHCP: 2, NDP: 3, DHCPV6: 4 } as const;
export type LinkService = (typeof LINK_SERVICE)[keyof typeof LINK_SERVICE];

/** Output room that suffices for any link-service reply. */
export const LINK_REPLY_MAX = Math.max(ARP_REPLY_LEN, DHCP_REPLY_MAX, NDP_REPLY_MAX, DHCPV6_REPLY_MAX);

/**
 * The link service owning the frame just parsed by fv.parse(), or NONE.
 * ARP frames are claimed even when malformed (ARP is never forwarded).
 */
export function linkServiceFor(fv: FrameViews): LinkService {
  if (fv.layer === FRAME_LAYER.NONE) return LINK_SERVICE.NONE;
  const et = fv.etherType;
  if (et === ETHERTYPE.ARP) return LINK_SERVICE.ARP;
  if (fv.layer !== FRAME_LAYER.L4) return LINK_SERVICE.NONE;
  if (et === ETHERTYPE.IPV4) {
    if (fv.l4Proto === IP_PROTO.UDP && fv.udp.dstPort === DHCP_PORT.SERVER) return LINK_SERVICE.DHCP;
  } else if (et === ETHERTYPE.IPV6) {
    if (fv.l4Proto === IP_PROTO.ICMPV6 && fv.icmp6.isNdp) return LINK_SERVICE.NDP;
    if (fv.l4Proto === IP_PROTO.UDP && fv.udp.dstPort === DHCPV6_PORT.SERVER) return LINK_SERVICE.DHCPV6;
  }
  return LINK_SERVICE.NONE;
}

/** Runs service `svc` on the frame; returns the reply length at out[outOff] (0: none). */
export function linkHandle(ctx: ServiceContext, svc: LinkService, u8: Uint8Array, off: number, len: number,
  out: Uint8Array, outOff: number): number {
  switch (svc) {
    case LINK_SERVICE.NONE: return 0;
    case LINK_SERVICE.ARP: return arpHandle(ctx, u8, off, len, out, outOff);
    case LINK_SERVICE.DHCP: return dhcpHandle(ctx, u8, off, len, out, outOff);
    case LINK_SERVICE.NDP: return ndpHandle(ctx, u8, off, len, out, outOff);
    case LINK_SERVICE.DHCPV6: return dhcpv6Handle(ctx, u8, off, len, out, outOff);
    default: {
      const never: never = svc;
      return never;
    }
  }
}

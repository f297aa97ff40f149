/**
 * Framing of the link services' replies towards the guest (SPEC §1.4).
 *
 * Theory of operation: a handler writes its message where the L4 payload
 * goes (out[outOff + UDP4_PAYLOAD_OFF], ...), then calls one `finish*`
 * function here, which writes the headers in front of it: Ethernet
 * (destination = the guest MAC, source = our MAC, no padding), IPv4 (TTL 255,
 * ID 0, no DF, correct header checksum) or IPv6 (hop limit 255, traffic
 * class 0, given flow label), UDP (checksum 0 over IPv4, computed over IPv6)
 * or the ICMPv6 checksum. They return the whole frame length.
 */
import { IP_PROTO, IPV4_HEADER_LEN, writeIpv4Header } from '../wire/ipv4';
import { IPV6_HEADER_LEN, writeIpv6Header } from '../wire/ipv6';
import { ETH_HEADER_LEN, ETHERTYPE, writeEthHeader } from '../wire/ethernet';
import { UDP_HEADER_LEN, udpChecksumValue, writeUdpHeader } from '../wire/udp';
import { l4Checksum6 } from '../wire/checksum';
import { ICMP_FIELD } from '../wire/icmp';
import { ServiceContext } from './context';

/** Where the UDP payload of a UDP/IPv4 reply starts, from the frame start. */
export const UDP4_PAYLOAD_OFF = ETH_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN;
/** Where the UDP payload of a UDP/IPv6 reply starts. */
export const UDP6_PAYLOAD_OFF = ETH_HEADER_LEN + IPV6_HEADER_LEN + UDP_HEADER_LEN;
/** Where the ICMPv6 message of a reply starts. */
export const ICMP6_OFF = ETH_HEADER_LEN + IPV6_HEADER_LEN;

/** Writes Ethernet, IPv4 and UDP headers (checksum 0) before payloadLen bytes; returns the frame length. */
export function finishUdp4(ctx: ServiceContext, out: Uint8Array, outOff: number,
  src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number,
  srcPort: number, dstPort: number, payloadLen: number): number {
  writeEthHeader(out, outOff, ctx.guestMac, 0, ctx.ourMac, 0, ETHERTYPE.IPV4);
  writeIpv4Header(out, outOff + ETH_HEADER_LEN, UDP_HEADER_LEN + payloadLen, IP_PROTO.UDP, src, srcOff, dst, dstOff);
  writeUdpHeader(out, outOff + ETH_HEADER_LEN + IPV4_HEADER_LEN, srcPort, dstPort, payloadLen);
  return UDP4_PAYLOAD_OFF + payloadLen;
}

/** Writes Ethernet, IPv6 and UDP headers (with checksum) before payloadLen bytes; returns the frame length. */
export function finishUdp6(ctx: ServiceContext, out: Uint8Array, outOff: number,
  src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number,
  srcPort: number, dstPort: number, payloadLen: number, flowLabel: number): number {
  const l4Len = UDP_HEADER_LEN + payloadLen;
  const ipOff = outOff + ETH_HEADER_LEN;
  const udpOff = ipOff + IPV6_HEADER_LEN;
  writeEthHeader(out, outOff, ctx.guestMac, 0, ctx.ourMac, 0, ETHERTYPE.IPV6);
  writeIpv6Header(out, ipOff, l4Len, IP_PROTO.UDP, flowLabel, src, srcOff, dst, dstOff);
  writeUdpHeader(out, udpOff, srcPort, dstPort, payloadLen);
  const c = l4Checksum6(out, ipOff + 8, out, ipOff + 24, IP_PROTO.UDP, out, udpOff, l4Len);
  out[udpOff + 6] = udpChecksumValue(c) >>> 8;
  out[udpOff + 7] = udpChecksumValue(c);
  return UDP6_PAYLOAD_OFF + payloadLen;
}

/**
 * Writes Ethernet and IPv6 headers (from our link-local address, flow label 0)
 * before the msgLen-byte ICMPv6 message and fills its checksum; returns the frame length.
 */
export function finishIcmp6(ctx: ServiceContext, out: Uint8Array, outOff: number,
  dst: Uint8Array, dstOff: number, msgLen: number): number {
  const ipOff = outOff + ETH_HEADER_LEN;
  const icmpOff = ipOff + IPV6_HEADER_LEN;
  writeEthHeader(out, outOff, ctx.guestMac, 0, ctx.ourMac, 0, ETHERTYPE.IPV6);
  writeIpv6Header(out, ipOff, msgLen, IP_PROTO.ICMPV6, 0, ctx.ip6.ourLinkLocal, 0, dst, dstOff);
  out[icmpOff + ICMP_FIELD.CHECKSUM] = 0;
  out[icmpOff + ICMP_FIELD.CHECKSUM + 1] = 0;
  const c = l4Checksum6(out, ipOff + 8, out, ipOff + 24, IP_PROTO.ICMPV6, out, icmpOff, msgLen);
  out[icmpOff + ICMP_FIELD.CHECKSUM] = c >>> 8;
  out[icmpOff + ICMP_FIELD.CHECKSUM + 1] = c;
  return ICMP6_OFF + msgLen;
}

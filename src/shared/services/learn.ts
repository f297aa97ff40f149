/**
 * What we learn from guest frames (SPEC §2.4, §2.5): the guest MAC and the
 * "seen" source addresses used as destinations towards the guest (§2.7).
 *
 * Theory of operation: tap-RX calls `noteGuestFrame` for every frame read
 * from the guest, before any other processing (SPEC §1.3). The source MAC of
 * every frame of 14…65535 bytes becomes the guest MAC when it differs. For
 * IPv4 and IPv6 packets that pass the checks of SPEC §1.3 (valid header, no
 * loopback source or destination, not an IPv4 fragment), the source address
 * is learned: IPv4 non-zero sources become addrSeen; IPv6 link-local sources
 * become addrLlSeen (and addrSeen and the assigned address while those are
 * unset, which is how local mode gets a guest address); other unicast
 * sources become addrSeen. Unspecified and multicast IPv6 sources teach
 * nothing. Callers that already hold parsed views can use the finer
 * `noteGuestMac`/`noteIp4Source`/`noteIp6Source` instead. DHCPv6's own rules
 * (request → addrLlSeen, reply → addrSeen reset) live in services/dhcpv6.ts.
 */
import { bytesEqual, copyBytes, IP6_LEN, ip6IsLinkLocal, ip6IsMulticast, ip6IsUnspecified, isZero, MAC_LEN } from '../wire/bytes';
import { ETH_FIELD, ETH_MAX_FRAME, ETH_MIN_FRAME, ETHERTYPE } from '../wire/ethernet';
import { ServiceContext, viewsFor } from './context';

/** Takes the MAC at u8[macOff] as the guest MAC if it differs. */
export function noteGuestMac(ctx: ServiceContext, u8: Uint8Array, macOff: number): void {
  if (!bytesEqual(ctx.guestMac, 0, u8, macOff, MAC_LEN)) copyBytes(ctx.guestMac, 0, u8, macOff, MAC_LEN);
}

/** Learns an IPv4 source address (ignored if 0.0.0.0). */
export function noteIp4Source(ctx: ServiceContext, u8: Uint8Array, srcOff: number): void {
  if (!isZero(u8, srcOff, 4)) copyBytes(ctx.ip4.addrSeen, 0, u8, srcOff, 4);
}

/** Learns an IPv6 source address (ignored if unspecified or multicast). */
export function noteIp6Source(ctx: ServiceContext, u8: Uint8Array, srcOff: number): void {
  const ip6 = ctx.ip6;
  if (ip6IsUnspecified(u8, srcOff) || ip6IsMulticast(u8, srcOff)) return;
  if (ip6IsLinkLocal(u8, srcOff)) {
    copyBytes(ip6.addrLlSeen, 0, u8, srcOff, IP6_LEN);
    ip6.hasAddrLlSeen = true;
    if (!ip6.hasAddrSeen) {
      copyBytes(ip6.addrSeen, 0, u8, srcOff, IP6_LEN);
      ip6.hasAddrSeen = true;
    }
    if (!ip6.hasAddr) {
      copyBytes(ip6.addr, 0, u8, srcOff, IP6_LEN);
      ip6.hasAddr = true;
    }
  } else {
    copyBytes(ip6.addrSeen, 0, u8, srcOff, IP6_LEN);
    ip6.hasAddrSeen = true;
  }
}

/** Applies the learning rules to one frame from the guest; never throws. */
export function noteGuestFrame(ctx: ServiceContext, u8: Uint8Array, off: number, len: number): void {
  const fv = viewsFor(ctx, u8);
  if (!fv.eth.reset(off, len) || len < ETH_MIN_FRAME || len > ETH_MAX_FRAME) return;
  noteGuestMac(ctx, u8, off + ETH_FIELD.SRC);
  const et = fv.eth.etherType;
  if (et === ETHERTYPE.IPV4) {
    const ip = fv.ip4;
    if (ctx.ip4.enabled && ip.reset(fv.eth.payloadOff, fv.eth.payloadLen) && !ip.isFragment && !ip.hasLoopback) {
      noteIp4Source(ctx, u8, ip.srcOff);
    }
  } else if (et === ETHERTYPE.IPV6) {
    const ip = fv.ip6;
    if (ctx.ip6.enabled && ip.reset(fv.eth.payloadOff, fv.eth.payloadLen) && !ip.hasLoopback) {
      noteIp6Source(ctx, u8, ip.srcOff);
    }
  }
}

/**
 * ARP proxy (RFC 826; SPEC §3.2): we answer every ARP request with our MAC,
 * so the guest sends everything to us, whatever the address.
 *
 * Theory of operation: only Ethernet/IPv4 requests (htype 1, ptype 0x0800,
 * lengths 6/4, opcode 1) are considered. Not answered: announcements
 * (gratuitous ARP: sender IP = target IP ≠ 0.0.0.0) and requests for the
 * guest's own assigned address, so that its duplicate-address probes succeed
 * (probes with sender 0.0.0.0 for any other target are answered). The reply
 * is opcode 2 with sender = (our MAC, the requested IP) and target = the
 * requester's (MAC, IP), sent to the requester's MAC: a 42-byte frame, not
 * padded. ARP with IPv4 disabled (-6) is dropped. Frames are consumed either
 * way (SPEC §3.1: ARP is never forwarded).
 */
import { bytesEqual, copyBytes, IP4_LEN, isZero, MAC_LEN, rangeOk, wr16 } from '../wire/bytes';
import { ARP_ETH_IP4_LEN, ARP_FIELD, ARP_OP } from '../wire/arp';
import { ETH_HEADER_LEN, ETHERTYPE, writeEthHeader } from '../wire/ethernet';
import { DROP, drop, ServiceContext, viewsFor } from './context';

/** Length of our ARP reply frame (Ethernet header + 28-byte ARP), and the room it needs. */
export const ARP_REPLY_LEN = ETH_HEADER_LEN + ARP_ETH_IP4_LEN;

/**
 * Answers the ARP request in the Ethernet frame u8[frameOff, +frameLen).
 * Writes the reply frame at out[outOff] (needs ARP_REPLY_LEN = 42 bytes of room; must not
 * overlap the request) and returns its length, or 0 if there is no reply (drop counted).
 */
export function arpHandle(ctx: ServiceContext, u8: Uint8Array, frameOff: number, frameLen: number,
  out: Uint8Array, outOff: number): number {
  if (!rangeOk(out, outOff, ARP_REPLY_LEN)) return drop(ctx, DROP.OUT_TOO_SMALL);
  const fv = viewsFor(ctx, u8);
  if (!fv.eth.reset(frameOff, frameLen) || fv.eth.etherType !== ETHERTYPE.ARP
    || !fv.arp.reset(fv.eth.payloadOff, fv.eth.payloadLen)) return drop(ctx, DROP.MALFORMED, u8, frameOff, frameLen);
  if (!ctx.ip4.enabled) return drop(ctx, DROP.ARP_DISABLED, u8, frameOff, frameLen);
  const a = fv.arp;
  if (!a.isEthIp4) return drop(ctx, DROP.ARP_UNSUPPORTED, u8, frameOff, frameLen);
  if (a.oper !== ARP_OP.REQUEST) return drop(ctx, DROP.ARP_NOT_REQUEST, u8, frameOff, frameLen);
  const sha = a.shaOff;
  const spa = a.spaOff;
  const tpa = a.tpaOff;
  if (bytesEqual(u8, spa, u8, tpa, IP4_LEN) && !isZero(u8, spa, IP4_LEN)) {
    return drop(ctx, DROP.ARP_ANNOUNCEMENT, u8, frameOff, frameLen);
  }
  if (ctx.ip4.hasAddr && bytesEqual(u8, tpa, ctx.ip4.addr, 0, IP4_LEN)) {
    return drop(ctx, DROP.ARP_GUEST_ADDR, u8, frameOff, frameLen);
  }

  writeEthHeader(out, outOff, u8, sha, ctx.ourMac, 0, ETHERTYPE.ARP);
  const r = outOff + ETH_HEADER_LEN;
  // The fixed part is the request's (Ethernet/IPv4, checked above) with opcode 2.
  copyBytes(out, r, u8, a.off, ARP_FIELD.SHA);
  wr16(out, r + ARP_FIELD.OPER, ARP_OP.REPLY);
  const s = r + ARP_FIELD.SHA;
  copyBytes(out, s, ctx.ourMac, 0, MAC_LEN);
  copyBytes(out, s + MAC_LEN, u8, tpa, IP4_LEN);
  copyBytes(out, s + MAC_LEN + IP4_LEN, u8, sha, MAC_LEN);
  copyBytes(out, s + 2 * MAC_LEN + IP4_LEN, u8, spa, IP4_LEN);
  return ARP_REPLY_LEN;
}

/**
 * DHCPv6 server (RFC 8415; DNS options RFC 3646; SPEC §3.5): hands the
 * configured IPv6 address to the guest, with infinite lifetimes.
 *
 * Theory of operation: every IPv6 UDP packet to port 547 is consumed here
 * (SPEC §3.1). It is answered only if DHCPv6 is on, the destination is
 * multicast, the UDP length matches, the options are complete, there is a
 * Client Identifier of at most 128 bytes, any Server Identifier is exactly
 * our 14-byte DUID-LLT, and every IA_NA/IA_TA has its 4-byte IAID and a
 * complete encapsulated chain. Then, by message type:
 *
 *   SOLICIT (no Server ID allowed)               → ADVERTISE (no rapid commit)
 *   REQUEST, RENEW (Server ID required)          → NotOnLink check → REPLY
 *   CONFIRM (no Server ID allowed)               → NotOnLink check → REPLY
 *   REBIND (Server ID required)                  → REPLY
 *   INFORMATION-REQUEST (no IA_NA/IA_TA allowed) → REPLY
 *   anything else                                → no reply
 *
 * NotOnLink: if an IA_NA or IA_TA holds an IA Address other than the
 * assigned one, the REPLY carries our Server ID, that IA's fixed part with a
 * Status Code NotOnLink (4) inside, and the Client ID. Otherwise the reply
 * carries, in order: Server ID; IA_NA with the client's IAID (0 if it sent
 * none), T1 = T2 = 0xffffffff, holding one IA Address = the assigned address
 * with infinite lifetimes (as the original, also in replies to
 * INFORMATION-REQUEST); the Client ID; DNS servers (23) if any and
 * advertised; the domain list (24, plain labels, as many names as fit) if
 * the search list is advertised; with --fqdn, the Client FQDN (39, RFC 4704:
 * flags 0, or O if the client's own option 39 asked us to update DNS (S),
 * which we never do; the name in wire labels) if it still fits, as the
 * original. The reply goes from our link-local address
 * port 547 to the request's source port 546, flow label = transaction id
 * low 20 bits. A request sets addrLlSeen to the client's source; after a
 * reply, addrSeen is reset to the assigned address (SPEC §2.4).
 */
import { bytesEqual, copyBytes, IP6_LEN, ip6IsMulticast, rangeOk, wr32 } from '../wire/bytes';
import {
  DHCPV6_CLIENTID_MAX, DHCPV6_HEADER_LEN, DHCPV6_IA_NA_FIXED, DHCPV6_IA_TA_FIXED, DHCPV6_IAADDR_FIXED,
  DHCPV6_INFINITY, DHCPV6_MSG, DHCPV6_OPT, DHCPV6_OPT_HEADER_LEN, DHCPV6_PORT, DHCPV6_STATUS,
  Dhcpv6OptionCursor, FQDN6_FLAG, Dhcpv6Repr, Dhcpv6View, DUID_LLT_LEN, parseDhcpv6, writeDhcpv6OptionHeader,
} from '../wire/dhcpv6';
import { ETHERTYPE } from '../wire/ethernet';
import { IP_PROTO } from '../wire/ipv4';
import { DROP, drop, ServiceContext, viewsFor } from './context';
import { finishUdp6, UDP6_PAYLOAD_OFF } from './reply';

/** Largest DHCPv6 reply frame (the domain list is capped to fit). */
export const DHCPV6_REPLY_MAX = 1500;
/** Text of our NotOnLink status (RFC 8415 §21.13: UTF-8, not terminated). */
export const NOT_ON_LINK_MESSAGE = 'Address not on link';
/**
 * Replies to INFORMATION-REQUEST carry the IA_NA block as the original does
 * (SPEC §3.5). RFC 8415 §18.3.6 has a server not send IAs there; set false
 * for that behaviour.
 */
export const DHCPV6_IA_IN_INFO_REPLY = true;

const notOnLinkText = new TextEncoder().encode(NOT_ON_LINK_MESSAGE);

/** Scratch view over the last input buffer (re-created when the buffer changes). */
let dhcpv6View: Dhcpv6View | null = null;
const outer = new Dhcpv6OptionCursor();
const inner = new Dhcpv6OptionCursor();

/** Result of scanning the IAs of a request. */
interface IaScan {
  ok: boolean;
  /** Offending IA (for NotOnLink): option code (0 = none), data offset. */
  badCode: number;
  badOff: number;
}

/** Checks every IA_NA/IA_TA and finds the first IA Address not equal to ours. */
function scanIas(ctx: ServiceContext, v: Dhcpv6View, res: IaScan): IaScan {
  res.ok = true;
  res.badCode = 0;
  res.badOff = 0;
  const c = v.options(outer);
  while (c.next()) {
    if (c.code !== DHCPV6_OPT.IA_NA && c.code !== DHCPV6_OPT.IA_TA) continue;
    const fixed = c.code === DHCPV6_OPT.IA_NA ? DHCPV6_IA_NA_FIXED : DHCPV6_IA_TA_FIXED;
    if (c.dataLen < DHCPV6_IA_TA_FIXED) { res.ok = false; return res; }
    if (c.dataLen <= fixed) continue; // IAID (and T1/T2) only: no addresses inside
    const i = inner.reset(v.u8, c.dataOff + fixed, c.dataLen - fixed);
    while (i.next()) {
      if (i.code !== DHCPV6_OPT.IAADDR) continue;
      if (i.dataLen < IP6_LEN) { res.ok = false; return res; }
      if (res.badCode === 0 && !bytesEqual(v.u8, i.dataOff, ctx.ip6.addr, 0, IP6_LEN)) {
        res.badCode = c.code;
        res.badOff = c.dataOff;
      }
    }
    if (i.malformed) { res.ok = false; return res; }
  }
  return res;
}

/** Writes Server ID (ours) at out[p]; returns its length. */
function putServerId(ctx: ServiceContext, out: Uint8Array, p: number): number {
  writeDhcpv6OptionHeader(out, p, DHCPV6_OPT.SERVERID, DUID_LLT_LEN);
  copyBytes(out, p + DHCPV6_OPT_HEADER_LEN, ctx.duid, 0, DUID_LLT_LEN);
  return DHCPV6_OPT_HEADER_LEN + DUID_LLT_LEN;
}

/** Copies the client's Client ID option to out[p]; returns its length. */
function putClientId(u8: Uint8Array, r: Dhcpv6Repr, out: Uint8Array, p: number): number {
  writeDhcpv6OptionHeader(out, p, DHCPV6_OPT.CLIENTID, r.clientIdLen);
  copyBytes(out, p + DHCPV6_OPT_HEADER_LEN, u8, r.clientIdOff, r.clientIdLen);
  return DHCPV6_OPT_HEADER_LEN + r.clientIdLen;
}

/** Writes the NotOnLink message body after the header at out[p]; returns the end offset. */
function putNotOnLink(ctx: ServiceContext, u8: Uint8Array, r: Dhcpv6Repr, scan: IaScan, out: Uint8Array, p: number): number {
  p += putServerId(ctx, out, p);
  const fixed = scan.badCode === DHCPV6_OPT.IA_NA ? DHCPV6_IA_NA_FIXED : DHCPV6_IA_TA_FIXED;
  const statusLen = 2 + notOnLinkText.length;
  writeDhcpv6OptionHeader(out, p, scan.badCode, fixed + DHCPV6_OPT_HEADER_LEN + statusLen);
  p += DHCPV6_OPT_HEADER_LEN;
  copyBytes(out, p, u8, scan.badOff, fixed);
  p += fixed;
  writeDhcpv6OptionHeader(out, p, DHCPV6_OPT.STATUS_CODE, statusLen);
  p += DHCPV6_OPT_HEADER_LEN;
  out[p] = 0;
  out[p + 1] = DHCPV6_STATUS.NOT_ON_LINK;
  copyBytes(out, p + 2, notOnLinkText, 0, notOnLinkText.length);
  p += statusLen;
  return p + putClientId(u8, r, out, p);
}

/** Writes the normal ADVERTISE/REPLY body at out[p]; returns the end offset. */
function putLease(ctx: ServiceContext, u8: Uint8Array, r: Dhcpv6Repr, withIa: boolean,
  out: Uint8Array, p: number, end: number): number {
  p += putServerId(ctx, out, p);
  if (withIa) {
    const iaLen = DHCPV6_IA_NA_FIXED + DHCPV6_OPT_HEADER_LEN + DHCPV6_IAADDR_FIXED;
    writeDhcpv6OptionHeader(out, p, DHCPV6_OPT.IA_NA, iaLen);
    p += DHCPV6_OPT_HEADER_LEN;
    if (r.iaNaLen >= 4) copyBytes(out, p, u8, r.iaNaOff, 4);
    else wr32(out, p, 0);
    wr32(out, p + 4, DHCPV6_INFINITY); // T1
    wr32(out, p + 8, DHCPV6_INFINITY); // T2
    p += DHCPV6_IA_NA_FIXED;
    writeDhcpv6OptionHeader(out, p, DHCPV6_OPT.IAADDR, DHCPV6_IAADDR_FIXED);
    p += DHCPV6_OPT_HEADER_LEN;
    copyBytes(out, p, ctx.ip6.addr, 0, IP6_LEN);
    wr32(out, p + 16, DHCPV6_INFINITY); // preferred lifetime
    wr32(out, p + 20, DHCPV6_INFINITY); // valid lifetime
    p += DHCPV6_IAADDR_FIXED;
  }
  p += putClientId(u8, r, out, p);
  const ip6 = ctx.ip6;
  if (ctx.advertiseDns && ip6.dnsCount > 0) {
    writeDhcpv6OptionHeader(out, p, DHCPV6_OPT.DNS_SERVERS, ip6.dnsCount * IP6_LEN);
    copyBytes(out, p + DHCPV6_OPT_HEADER_LEN, ip6.dns, 0, ip6.dnsCount * IP6_LEN);
    p += DHCPV6_OPT_HEADER_LEN + ip6.dnsCount * IP6_LEN;
  }
  const names = ctx.searchLabels;
  if (ctx.advertiseSearch && names.ends.length > 0) {
    let k = names.ends.length;
    while (k > 0 && p + DHCPV6_OPT_HEADER_LEN + names.ends[k - 1] > end) k--;
    if (k > 0) {
      const n = names.ends[k - 1];
      writeDhcpv6OptionHeader(out, p, DHCPV6_OPT.DOMAIN_LIST, n);
      copyBytes(out, p + DHCPV6_OPT_HEADER_LEN, names.data, 0, n);
      p += DHCPV6_OPT_HEADER_LEN + n;
    }
  }
  const fqdn = ctx.fqdn;
  if (fqdn.length > 0 && p + DHCPV6_OPT_HEADER_LEN + 1 + fqdn.length <= end) {
    writeDhcpv6OptionHeader(out, p, DHCPV6_OPT.CLIENT_FQDN, 1 + fqdn.length);
    const asked = r.clientFqdnFlags >= 0 && (r.clientFqdnFlags & FQDN6_FLAG.S) !== 0;
    out[p + DHCPV6_OPT_HEADER_LEN] = asked ? FQDN6_FLAG.O : 0;
    copyBytes(out, p + DHCPV6_OPT_HEADER_LEN + 1, fqdn, 0, fqdn.length);
    p += DHCPV6_OPT_HEADER_LEN + 1 + fqdn.length;
  }
  return p;
}

const scanResult: IaScan = { ok: true, badCode: 0, badOff: 0 };

/**
 * Answers the DHCPv6 message in the Ethernet frame u8[frameOff, +frameLen)
 * (an IPv6 UDP packet to port 547). Writes the reply at out[outOff] (needs
 * DHCPV6_REPLY_MAX = 1500 bytes of room; must not overlap the request) and
 * returns its length, or 0 if there is no reply (drop counted).
 */
export function dhcpv6Handle(ctx: ServiceContext, u8: Uint8Array, frameOff: number, frameLen: number,
  out: Uint8Array, outOff: number): number {
  if (!ctx.dhcpv6Enabled) return drop(ctx, DROP.DHCPV6_DISABLED, u8, frameOff, frameLen);
  if (!rangeOk(out, outOff, DHCPV6_REPLY_MAX)) return drop(ctx, DROP.OUT_TOO_SMALL);
  const fv = viewsFor(ctx, u8);
  const { eth, ip6, udp } = fv;
  if (!eth.reset(frameOff, frameLen) || eth.etherType !== ETHERTYPE.IPV6
    || !ip6.reset(eth.payloadOff, eth.payloadLen) || ip6.protocol !== IP_PROTO.UDP
    || !udp.reset(ip6.payloadOff, ip6.payloadLen) || udp.dstPort !== DHCPV6_PORT.SERVER) {
    return drop(ctx, DROP.MALFORMED, u8, frameOff, frameLen);
  }
  if (!ip6IsMulticast(u8, ip6.dstOff)) return drop(ctx, DROP.DHCPV6_NOT_MULTICAST, u8, frameOff, frameLen);
  if (!udp.exactLength || udp.payloadLen < DHCPV6_HEADER_LEN) return drop(ctx, DROP.DHCPV6_LENGTH, u8, frameOff, frameLen);
  const v = dhcpv6View = dhcpv6View?.u8 === u8 ? dhcpv6View : new Dhcpv6View(u8);
  if (!v.reset(udp.payloadOff, udp.payloadLen)) return drop(ctx, DROP.DHCPV6_BAD_OPTIONS, u8, frameOff, frameLen);
  const r = parseDhcpv6(v);
  if (r.clientIdLen < 0 || r.clientIdLen > DHCPV6_CLIENTID_MAX) {
    return drop(ctx, DROP.DHCPV6_NO_CLIENT_ID, u8, frameOff, frameLen);
  }
  const hasServerId = r.serverIdLen >= 0;
  if (hasServerId && (r.serverIdLen !== DUID_LLT_LEN || !bytesEqual(u8, r.serverIdOff, ctx.duid, 0, DUID_LLT_LEN))) {
    return drop(ctx, DROP.DHCPV6_SERVER_ID, u8, frameOff, frameLen);
  }
  const scan = scanIas(ctx, v, scanResult);
  if (!scan.ok) return drop(ctx, DROP.DHCPV6_BAD_IA, u8, frameOff, frameLen);

  let replyType: number = DHCPV6_MSG.REPLY;
  let notOnLinkCheck = false;
  let withIa = true;
  switch (r.msgType) {
    case DHCPV6_MSG.SOLICIT:
      if (hasServerId) return drop(ctx, DROP.DHCPV6_SERVER_ID, u8, frameOff, frameLen);
      replyType = DHCPV6_MSG.ADVERTISE;
      break;
    case DHCPV6_MSG.REQUEST:
    case DHCPV6_MSG.RENEW:
      if (!hasServerId) return drop(ctx, DROP.DHCPV6_SERVER_ID, u8, frameOff, frameLen);
      notOnLinkCheck = true;
      break;
    case DHCPV6_MSG.CONFIRM:
      if (hasServerId) return drop(ctx, DROP.DHCPV6_SERVER_ID, u8, frameOff, frameLen);
      notOnLinkCheck = true;
      break;
    case DHCPV6_MSG.REBIND:
      if (!hasServerId) return drop(ctx, DROP.DHCPV6_SERVER_ID, u8, frameOff, frameLen);
      break;
    case DHCPV6_MSG.INFORMATION_REQUEST:
      if (r.iaNaCount > 0 || r.iaTaCount > 0) return drop(ctx, DROP.DHCPV6_BAD_IA, u8, frameOff, frameLen);
      withIa = DHCPV6_IA_IN_INFO_REPLY;
      break;
    default:
      return drop(ctx, DROP.DHCPV6_IGNORED_TYPE, u8, frameOff, frameLen);
  }

  // SPEC §2.4: the request teaches the client's link-local address.
  copyBytes(ctx.ip6.addrLlSeen, 0, u8, ip6.srcOff, IP6_LEN);
  ctx.ip6.hasAddrLlSeen = true;

  const m = outOff + UDP6_PAYLOAD_OFF;
  out[m] = replyType;
  copyBytes(out, m + 1, u8, v.off + 1, 3); // transaction id
  const body = m + DHCPV6_HEADER_LEN;
  const end = notOnLinkCheck && scan.badCode !== 0
    ? putNotOnLink(ctx, u8, r, scan, out, body)
    : putLease(ctx, u8, r, withIa, out, body, outOff + DHCPV6_REPLY_MAX);
  const len = finishUdp6(ctx, out, outOff, ctx.ip6.ourLinkLocal, 0, u8, ip6.srcOff,
    DHCPV6_PORT.SERVER, DHCPV6_PORT.CLIENT, end - m, r.xid & 0xfffff);

  // SPEC §2.4: after a reply, addrSeen goes back to the assigned address.
  copyBytes(ctx.ip6.addrSeen, 0, ctx.ip6.addr, 0, IP6_LEN);
  ctx.ip6.hasAddrSeen = true;
  return len;
}

/**
 * DHCP server (RFC 2131, options RFC 2132, BOOTP RFC 951; SPEC §3.4): one
 * infinite lease of the assigned address to whoever asks.
 *
 * Theory of operation: every IPv4 UDP packet to port 67 is consumed here
 * (SPEC §3.1). It is answered only if DHCP is on, the UDP length matches the
 * IP payload, the message holds at least the BOOTP header and cookie (240
 * bytes), op is BOOTREQUEST and no option is truncated:
 *
 *   DISCOVER → OFFER, or ACK with an empty Rapid Commit option if the
 *   DISCOVER had one (RFC 4039); REQUEST → ACK (no NAK, no address check);
 *   no option 53 (plain BOOTP) → ACK; anything else → no reply.
 *
 * The reply echoes the request header (xid, flags, ciaddr, siaddr, giaddr,
 * chaddr, sname, file, cookie; htype/hlen too), with op 2, hops 0, secs 0,
 * yiaddr = the assigned address. Options: 53, 1, 3, 6 (DNS, if any and
 * advertised), 26 (MTU, unless 0), 51 (0xffffffff), 54 (our address = the
 * gateway), 80 (rapid-commit ACK only), 119 (search list with compression,
 * as much of it as fits), 121 (only when the gateway is outside the subnet:
 * gw/32 via 0.0.0.0, then 0/0 via gw, RFC 3442), 12 (--hostname) and 81
 * (--fqdn, RFC 4702: flags E, plus O when the client's own option 81 asked
 * us to update DNS (S), which we never do; RCODEs 255; the name in wire
 * labels). Order: 53 first unless the client's parameter request list (55)
 * names it, then the options in the order of 55, then the rest by
 * increasing number, each skipped if it no longer fits (as the original:
 * only a long hostname or FQDN can fill the area; the search list is cut to
 * what the others leave); then END and one zero byte, the options area
 * zero-padded to ≥ 60 bytes, ≤ 308 bytes. The
 * reply goes from our address:67 to port 68 of 255.255.255.255 if the
 * broadcast flag is set, else of the assigned address; UDP checksum 0.
 */
import { copyBytes, fillBytes, IP4_LEN, ip4SameSubnet, rangeOk, wr32 } from '../wire/bytes';
import {
  DHCP_FIELD, DHCP_FIXED_LEN, DHCP_FLAG_BROADCAST, DHCP_MSG, DHCP_OP, DHCP_OPT, DHCP_OPTIONS_MAX, DHCP_OPTIONS_MIN,
  DHCP_PORT, DhcpRepr, DhcpView, FQDN4_FLAG, FQDN4_RCODE, parseDhcp, writeDhcpReplyHeader,
} from '../wire/dhcpv4';
import { ETHERTYPE } from '../wire/ethernet';
import { IP_PROTO } from '../wire/ipv4';
import { DROP, drop, ServiceContext, viewsFor } from './context';
import { finishUdp4, UDP4_PAYLOAD_OFF } from './reply';

/** Largest reply frame: headers, BOOTP header + cookie, 308 bytes of options (590 bytes). */
export const DHCP_REPLY_MAX = UDP4_PAYLOAD_OFF + DHCP_FIXED_LEN + DHCP_OPTIONS_MAX;

/** Option codes we may send, in increasing order (the fallback order). */
const OUR_OPTIONS = [
  DHCP_OPT.SUBNET_MASK, DHCP_OPT.ROUTER, DHCP_OPT.DNS, DHCP_OPT.HOSTNAME, DHCP_OPT.MTU, DHCP_OPT.LEASE_TIME,
  DHCP_OPT.MSG_TYPE, DHCP_OPT.SERVER_ID, DHCP_OPT.RAPID_COMMIT, DHCP_OPT.CLIENT_FQDN, DHCP_OPT.DOMAIN_SEARCH,
  DHCP_OPT.CLASSLESS_ROUTES,
] as const;

/** Room for options before END and its zero byte. */
const OPTIONS_ROOM = DHCP_OPTIONS_MAX - 2;
/** Option 81 before the name: flags, RCODE1, RCODE2. */
const FQDN_FIXED = 3;

const BROADCAST = Uint8Array.of(255, 255, 255, 255);

/** Scratch view over the last input buffer (re-created when the buffer changes). */
let dhcpView: DhcpView | null = null;

/** Per-reply decisions, filled before any option is written. */
interface Plan {
  msgType: number;
  rapid: boolean;
  classless: boolean;
  /** Names of the search list to send (a prefix of it), 0 = no option 119. */
  searchNames: number;
  /** Flags of our option 81. */
  fqdnFlags: number;
}

/** Length of one option 119 payload split into ≤ 255-byte pieces (RFC 3396), headers included. */
function splitLen(dataLen: number): number {
  return dataLen === 0 ? 0 : dataLen + 2 * Math.ceil(dataLen / 255);
}

/** Bytes option `code` takes in this reply (header included), 0 if we don't send it. */
function optionLen(ctx: ServiceContext, plan: Plan, code: number): number {
  switch (code) {
    case DHCP_OPT.SUBNET_MASK: case DHCP_OPT.ROUTER: case DHCP_OPT.LEASE_TIME: case DHCP_OPT.SERVER_ID:
      return 6;
    case DHCP_OPT.DNS:
      return ctx.advertiseDns && ctx.ip4.dnsCount > 0 ? 2 + IP4_LEN * ctx.ip4.dnsCount : 0;
    case DHCP_OPT.MTU:
      return ctx.mtu !== 0 ? 4 : 0;
    case DHCP_OPT.MSG_TYPE:
      return 3;
    case DHCP_OPT.RAPID_COMMIT:
      return plan.rapid ? 2 : 0;
    case DHCP_OPT.DOMAIN_SEARCH:
      return plan.searchNames > 0 ? splitLen(ctx.searchCompressed.ends[plan.searchNames - 1]) : 0;
    case DHCP_OPT.CLASSLESS_ROUTES:
      return plan.classless ? 2 + 9 + 5 : 0;
    case DHCP_OPT.HOSTNAME:
      return ctx.hostname.length > 0 && ctx.hostname.length <= 255 ? 2 + ctx.hostname.length : 0;
    case DHCP_OPT.CLIENT_FQDN:
      return ctx.fqdn.length > 0 && FQDN_FIXED + ctx.fqdn.length <= 255 ? 2 + FQDN_FIXED + ctx.fqdn.length : 0;
    default:
      return 0;
  }
}

/** Writes option `code` (known to be sent) at out[p]; returns the bytes written. */
function writeOption(ctx: ServiceContext, plan: Plan, code: number, out: Uint8Array, p: number): number {
  const ip4 = ctx.ip4;
  const len = optionLen(ctx, plan, code);
  out[p] = code;
  out[p + 1] = len - 2;
  const d = p + 2;
  switch (code) {
    case DHCP_OPT.SUBNET_MASK: copyBytes(out, d, ip4.mask, 0, IP4_LEN); break;
    case DHCP_OPT.ROUTER: copyBytes(out, d, ip4.gateway, 0, IP4_LEN); break;
    case DHCP_OPT.SERVER_ID: copyBytes(out, d, ip4.gateway, 0, IP4_LEN); break;
    case DHCP_OPT.LEASE_TIME: wr32(out, d, 0xffffffff); break;
    case DHCP_OPT.DNS: copyBytes(out, d, ip4.dns, 0, IP4_LEN * ip4.dnsCount); break;
    case DHCP_OPT.MTU: out[d] = ctx.mtu >>> 8; out[d + 1] = ctx.mtu; break;
    case DHCP_OPT.MSG_TYPE: out[d] = plan.msgType; break;
    case DHCP_OPT.RAPID_COMMIT: break;
    case DHCP_OPT.HOSTNAME: copyBytes(out, d, ctx.hostname, 0, ctx.hostname.length); break;
    case DHCP_OPT.CLIENT_FQDN:
      out[d] = plan.fqdnFlags;
      out[d + 1] = FQDN4_RCODE;
      out[d + 2] = FQDN4_RCODE;
      copyBytes(out, d + FQDN_FIXED, ctx.fqdn, 0, ctx.fqdn.length);
      break;
    case DHCP_OPT.CLASSLESS_ROUTES:
      // gw/32 via 0.0.0.0 (the gateway is on-link), then 0/0 via gw.
      out[d] = 32;
      copyBytes(out, d + 1, ip4.gateway, 0, IP4_LEN);
      wr32(out, d + 5, 0);
      out[d + 9] = 0;
      copyBytes(out, d + 10, ip4.gateway, 0, IP4_LEN);
      break;
    case DHCP_OPT.DOMAIN_SEARCH: {
      // Pieces of ≤ 255 bytes, each with its own header (RFC 3396 concatenation).
      const data = ctx.searchCompressed.data;
      let left = ctx.searchCompressed.ends[plan.searchNames - 1];
      let src = 0;
      let q = p;
      while (left > 0) {
        const n = Math.min(255, left);
        out[q] = code;
        out[q + 1] = n;
        copyBytes(out, q + 2, data, src, n);
        q += 2 + n;
        src += n;
        left -= n;
      }
      return q - p;
    }
    default: break;
  }
  return len;
}

// Which options were already written (one reply at a time per thread).
const written = new Uint8Array(256);

/** Writes the options area at out[p] following the order rule; returns its length. */
function writeOptions(ctx: ServiceContext, plan: Plan, req: Uint8Array, r: DhcpRepr, out: Uint8Array, p: number): number {
  const start = p;
  written.fill(0);
  let prlHas53 = false;
  for (let i = 0; i < r.paramRequestLen; i++) if (req[r.paramRequestOff + i] === DHCP_OPT.MSG_TYPE) prlHas53 = true;
  const put = (code: number) => {
    const len = optionLen(ctx, plan, code);
    if (written[code] || len === 0 || p - start + len > OPTIONS_ROOM) return;
    p += writeOption(ctx, plan, code, out, p);
    written[code] = 1;
  };
  if (!prlHas53) put(DHCP_OPT.MSG_TYPE);
  for (let i = 0; i < r.paramRequestLen; i++) put(req[r.paramRequestOff + i]);
  for (const code of OUR_OPTIONS) put(code);
  out[p++] = DHCP_OPT.END;
  out[p++] = 0;
  if (p - start < DHCP_OPTIONS_MIN) {
    fillBytes(out, p, DHCP_OPTIONS_MIN - (p - start));
    p = start + DHCP_OPTIONS_MIN;
  }
  return p - start;
}

/** Chooses how many search names fit in what the other options leave of the 308 bytes. */
function planSearch(ctx: ServiceContext, plan: Plan): number {
  const ends = ctx.searchCompressed.ends;
  if (!ctx.advertiseSearch || ends.length === 0) return 0;
  let used = 0;
  for (const code of OUR_OPTIONS) if (code !== DHCP_OPT.DOMAIN_SEARCH) used += optionLen(ctx, plan, code);
  const room = OPTIONS_ROOM - used;
  for (let k = ends.length; k > 0; k--) if (splitLen(ends[k - 1]) <= room) return k;
  return 0;
}

/**
 * Answers the DHCP request in the Ethernet frame u8[frameOff, +frameLen) (an
 * IPv4 UDP packet to port 67). Writes the reply at out[outOff] (needs
 * DHCP_REPLY_MAX = 590 bytes of room; must not overlap the request) and
 * returns its length, or 0 if there is no reply (drop counted).
 */
export function dhcpHandle(ctx: ServiceContext, u8: Uint8Array, frameOff: number, frameLen: number,
  out: Uint8Array, outOff: number): number {
  if (!ctx.dhcpEnabled) return drop(ctx, DROP.DHCP_DISABLED, u8, frameOff, frameLen);
  if (!rangeOk(out, outOff, DHCP_REPLY_MAX)) return drop(ctx, DROP.OUT_TOO_SMALL);
  const fv = viewsFor(ctx, u8);
  const { eth, ip4, udp } = fv;
  if (!eth.reset(frameOff, frameLen) || eth.etherType !== ETHERTYPE.IPV4
    || !ip4.reset(eth.payloadOff, eth.payloadLen) || ip4.isFragment || ip4.protocol !== IP_PROTO.UDP
    || !udp.reset(ip4.payloadOff, ip4.payloadLen) || udp.dstPort !== DHCP_PORT.SERVER) {
    return drop(ctx, DROP.MALFORMED, u8, frameOff, frameLen);
  }
  if (!udp.exactLength) return drop(ctx, DROP.DHCP_LENGTH, u8, frameOff, frameLen);
  const m = dhcpView = dhcpView?.u8 === u8 ? dhcpView : new DhcpView(u8);
  if (!m.reset(udp.payloadOff, udp.payloadLen)) return drop(ctx, DROP.DHCP_LENGTH, u8, frameOff, frameLen);
  if (m.op !== DHCP_OP.BOOTREQUEST) return drop(ctx, DROP.DHCP_NOT_REQUEST, u8, frameOff, frameLen);
  const r = parseDhcp(m);
  if (r === null) return drop(ctx, DROP.DHCP_BAD_OPTIONS, u8, frameOff, frameLen);

  // RFC 4702 §3.1: we never update DNS, and say so (O) if the client asked us to (S)
  const fqdnFlags = FQDN4_FLAG.E | (r.clientFqdnFlags >= 0 && (r.clientFqdnFlags & FQDN4_FLAG.S) ? FQDN4_FLAG.O : 0);
  const plan: Plan = { msgType: 0, rapid: false, classless: false, searchNames: 0, fqdnFlags };
  switch (r.messageType) {
    case DHCP_MSG.DISCOVER:
      plan.rapid = r.rapidCommit;
      plan.msgType = r.rapidCommit ? DHCP_MSG.ACK : DHCP_MSG.OFFER;
      break;
    case DHCP_MSG.REQUEST:
    case 0: // plain BOOTP
      plan.msgType = DHCP_MSG.ACK;
      break;
    default:
      return drop(ctx, DROP.DHCP_IGNORED_TYPE, u8, frameOff, frameLen);
  }
  const c4 = ctx.ip4;
  plan.classless = !ip4SameSubnet(c4.addr, 0, c4.gateway, 0, c4.mask);
  plan.searchNames = planSearch(ctx, plan);

  const msgOff = outOff + UDP4_PAYLOAD_OFF;
  writeDhcpReplyHeader(out, msgOff, u8, m.off, c4.addr, 0);
  const optLen = writeOptions(ctx, plan, u8, r, out, msgOff + DHCP_FIELD.OPTIONS);
  const dst = (r.flags & DHCP_FLAG_BROADCAST) !== 0 ? BROADCAST : c4.addr;
  return finishUdp4(ctx, out, outOff, c4.gateway, 0, dst, 0, DHCP_PORT.SERVER, DHCP_PORT.CLIENT,
    DHCP_FIXED_LEN + optLen);
}

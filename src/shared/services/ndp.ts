/**
 * Neighbor Discovery responder and router (RFC 4861, SLAAC RFC 4862, DNS
 * options RFC 8106; SPEC §3.3).
 *
 * Theory of operation: ICMPv6 types 133–136 are consumed here (SPEC §3.1).
 * A message is considered only if it passes the RFC 4861 validity checks:
 * hop limit 255, code 0, well-formed options (wire/ndp.ts), and for NS a
 * non-multicast target. Guest checksums are not verified (SPEC §1.3).
 *
 * - NS → NA for whatever target was asked (we claim every address on the
 *   link), flags Router, Solicited, Override, with a target link-layer
 *   address option = our MAC, sent to the NS source. An NS from :: is the
 *   guest's duplicate address detection and is not answered.
 * - RS → RA to the RS source, or to ff02::1 if the source is :: (SPEC
 *   §13.11 fix), unless RAs are off. RA: cur hop limit 255, M=1, O=0, router
 *   lifetime 65535 s (RFC 8319), reachable time and retrans timer 0, then in
 *   this order: Prefix Information (/64 of the configured address with the
 *   host bits cleared, L+A, infinite lifetimes; omitted when no address is
 *   configured, as in local mode), source link-layer address, MTU (unless
 *   0), RDNSS (if DNS servers are advertised), DNSSL (only with RDNSS, if the
 *   search list is advertised; as many names as fit, padded only to the next
 *   multiple of 8).
 * - RA, NA and Redirect from the guest are ignored.
 *
 * `ndpUnsolicitedRa` builds the periodic RA to ff02::1; `raIntervalMs` picks
 * the random interval in [200, 600) s (MaxRtrAdvInterval 600,
 * MinRtrAdvInterval 200). All messages come from our link-local address
 * and MAC, to the guest MAC (SPEC §1.4: one guest, no neighbour table).
 */
import { copyBytes, IP6_ALL_NODES, IP6_LEN, ip6IsMulticast, ip6IsUnspecified, rangeOk, wr16, wr32 } from '../wire/bytes';
import { ETHERTYPE } from '../wire/ethernet';
import { ICMPV6_TYPE } from '../wire/icmp';
import { IP_PROTO } from '../wire/ipv4';
import { IPV6_HOP_LIMIT } from '../wire/ipv6';
import {
  dnsslOptionLen, NDP_FIELD, NDP_FIXED_LEN, NDP_INFINITE, NDP_NA_FLAG, NDP_OPT, NDP_OPT_LEN, NDP_PREFIX_FLAG,
  NDP_RA_FLAG, NdpView, writeDnsslOption, writeMtuOption, writeNdpLinkLayerOption, writePrefixInfoOption,
  writeRdnssOption,
} from '../wire/ndp';
import { DROP, drop, ServiceContext, viewsFor } from './context';
import { finishIcmp6, ICMP6_OFF } from './reply';

/** Scratch view over the last input buffer (re-created when the buffer changes). */
let ndpView: NdpView | null = null;

/** Largest NDP frame we build (an RA with a long DNSSL is capped to this). */
export const NDP_REPLY_MAX = 1500;
/** Length of our NA frame. */
export const NA_FRAME_LEN = ICMP6_OFF + NDP_FIXED_LEN.NA + NDP_OPT_LEN.LL_ADDR;
/** Router lifetime in our RAs, seconds (RFC 8319 maximum). */
export const RA_ROUTER_LIFETIME = 65535;
/** Prefix length advertised for SLAAC. */
export const RA_PREFIX_LEN = 64;
/** Unsolicited RA interval bounds, seconds (RFC 4861 §6.2.1 with MaxRtrAdvInterval 600). */
export const RA_MIN_INTERVAL_S = 200;
export const RA_MAX_INTERVAL_S = 600;

/** Milliseconds until the next unsolicited RA, for rand01 uniform in [0, 1). */
export function raIntervalMs(rand01: number): number {
  const r = rand01 >= 0 && rand01 < 1 ? rand01 : 0;
  return Math.floor((RA_MIN_INTERVAL_S + r * (RA_MAX_INTERVAL_S - RA_MIN_INTERVAL_S)) * 1000);
}

/** Writes an NA for the target at u8[targetOff] to dst; returns the frame length. */
function writeNa(ctx: ServiceContext, u8: Uint8Array, targetOff: number, dst: Uint8Array, dstOff: number,
  out: Uint8Array, outOff: number): number {
  const m = outOff + ICMP6_OFF;
  out[m + NDP_FIELD.TYPE] = ICMPV6_TYPE.NEIGHBOR_ADVERTISEMENT;
  out[m + NDP_FIELD.CODE] = 0;
  wr32(out, m + NDP_FIELD.NA_FLAGS, 0);
  out[m + NDP_FIELD.NA_FLAGS] = NDP_NA_FLAG.ROUTER | NDP_NA_FLAG.SOLICITED | NDP_NA_FLAG.OVERRIDE;
  copyBytes(out, m + NDP_FIELD.TARGET, u8, targetOff, IP6_LEN);
  writeNdpLinkLayerOption(out, m + NDP_FIXED_LEN.NA, NDP_OPT.TARGET_LL_ADDR, ctx.ourMac);
  return finishIcmp6(ctx, out, outOff, dst, dstOff, NDP_FIXED_LEN.NA + NDP_OPT_LEN.LL_ADDR);
}

/** Writes our RA to dst at out[outOff] (room NDP_REPLY_MAX checked by the caller); returns the frame length. */
function writeRa(ctx: ServiceContext, dst: Uint8Array, dstOff: number, out: Uint8Array, outOff: number): number {
  const m = outOff + ICMP6_OFF;
  const ip6 = ctx.ip6;
  out[m + NDP_FIELD.TYPE] = ICMPV6_TYPE.ROUTER_ADVERTISEMENT;
  out[m + NDP_FIELD.CODE] = 0;
  out[m + NDP_FIELD.CUR_HOP_LIMIT] = IPV6_HOP_LIMIT;
  out[m + NDP_FIELD.RA_FLAGS] = NDP_RA_FLAG.MANAGED;
  wr16(out, m + NDP_FIELD.ROUTER_LIFETIME, RA_ROUTER_LIFETIME);
  wr32(out, m + NDP_FIELD.REACHABLE_TIME, 0);
  wr32(out, m + NDP_FIELD.RETRANS_TIMER, 0);
  let p = m + NDP_FIXED_LEN.RA;
  if (ip6.addrConfigured) {
    p += writePrefixInfoOption(out, p, ip6.addr, 0, RA_PREFIX_LEN, NDP_PREFIX_FLAG.ON_LINK | NDP_PREFIX_FLAG.AUTONOMOUS,
      NDP_INFINITE, NDP_INFINITE);
  }
  p += writeNdpLinkLayerOption(out, p, NDP_OPT.SOURCE_LL_ADDR, ctx.ourMac);
  if (ctx.mtu !== 0) p += writeMtuOption(out, p, ctx.mtu);
  if (ctx.advertiseDns && ip6.dnsCount > 0) {
    p += writeRdnssOption(out, p, NDP_INFINITE, ip6.dns, ip6.dnsCount);
    const names = ctx.searchLabels;
    if (ctx.advertiseSearch && names.ends.length > 0) {
      const room = outOff + NDP_REPLY_MAX - p;
      let k = names.ends.length;
      while (k > 0 && dnsslOptionLen(names.ends[k - 1]) > room) k--;
      if (k > 0) p += writeDnsslOption(out, p, NDP_INFINITE, names.data, names.ends[k - 1]);
    }
  }
  return finishIcmp6(ctx, out, outOff, dst, dstOff, p - m);
}

/**
 * Handles the NDP message (ICMPv6 133–136) in the Ethernet frame
 * u8[frameOff, +frameLen). Writes an NA or RA at out[outOff] (needs
 * NDP_REPLY_MAX = 1500 bytes of room; must not overlap the request) and
 * returns its length, or 0 if there is no reply (drop counted).
 */
export function ndpHandle(ctx: ServiceContext, u8: Uint8Array, frameOff: number, frameLen: number,
  out: Uint8Array, outOff: number): number {
  if (!ctx.ndpEnabled) return drop(ctx, DROP.NDP_DISABLED, u8, frameOff, frameLen);
  if (!rangeOk(out, outOff, NDP_REPLY_MAX)) return drop(ctx, DROP.OUT_TOO_SMALL);
  const fv = viewsFor(ctx, u8);
  const { eth, ip6 } = fv;
  if (!eth.reset(frameOff, frameLen) || eth.etherType !== ETHERTYPE.IPV6
    || !ip6.reset(eth.payloadOff, eth.payloadLen) || ip6.protocol !== IP_PROTO.ICMPV6) {
    return drop(ctx, DROP.MALFORMED, u8, frameOff, frameLen);
  }
  const n = ndpView = ndpView?.u8 === u8 ? ndpView : new NdpView(u8);
  // RFC 4861 §6.1, §7.1 validity; RFC 6980: no fragmented NDP.
  if (!n.reset(ip6.payloadOff, ip6.payloadLen) || ip6.hopLimit !== IPV6_HOP_LIMIT || n.code !== 0 || ip6.isFragment) {
    return drop(ctx, DROP.NDP_INVALID, u8, frameOff, frameLen);
  }
  const srcOff = ip6.srcOff;
  switch (n.type) {
    case ICMPV6_TYPE.NEIGHBOR_SOLICITATION:
      if (ip6IsMulticast(u8, n.targetOff)) return drop(ctx, DROP.NDP_INVALID, u8, frameOff, frameLen);
      if (ip6IsUnspecified(u8, srcOff)) return drop(ctx, DROP.NDP_DAD, u8, frameOff, frameLen);
      return writeNa(ctx, u8, n.targetOff, u8, srcOff, out, outOff);
    case ICMPV6_TYPE.ROUTER_SOLICITATION: {
      if (!ctx.raEnabled) return drop(ctx, DROP.RA_DISABLED, u8, frameOff, frameLen);
      const unspec = ip6IsUnspecified(u8, srcOff);
      // RFC 4861 §6.1.1: no source link-layer address option from ::.
      if (unspec && n.findOption(NDP_OPT.SOURCE_LL_ADDR) >= 0) return drop(ctx, DROP.NDP_INVALID, u8, frameOff, frameLen);
      return unspec ? writeRa(ctx, IP6_ALL_NODES, 0, out, outOff) : writeRa(ctx, u8, srcOff, out, outOff);
    }
    default:
      return drop(ctx, DROP.NDP_IGNORED_TYPE, u8, frameOff, frameLen);
  }
}

/**
 * Builds an unsolicited RA to ff02::1 at out[outOff] (needs NDP_REPLY_MAX
 * bytes of room); returns its length, or 0 if RAs are off or room is short.
 */
export function ndpUnsolicitedRa(ctx: ServiceContext, out: Uint8Array, outOff: number): number {
  if (!ctx.raEnabled) return 0;
  if (!rangeOk(out, outOff, NDP_REPLY_MAX)) return drop(ctx, DROP.OUT_TOO_SMALL);
  return writeRa(ctx, IP6_ALL_NODES, 0, out, outOff);
}

/**
 * Neighbor Discovery messages (RFC 4861) and options, including the DNS
 * options of RFC 8106.
 *
 * Theory of operation: an NDP message is an ICMPv6 message of type 133 (RS),
 * 134 (RA), 135 (NS), 136 (NA) or 137 (Redirect) with a fixed part (8, 16,
 * 24, 24 and 40 bytes) followed by options. Each option is type, length in
 * units of 8 octets, value. `NdpView.reset` validates the structure once:
 * a known type, the fixed part present, and every option with a non-zero
 * length that fits the message (RFC 4861 §6.1, §7.1: otherwise the message
 * is silently discarded). Semantic checks (hop limit 255, code 0, target not
 * multicast, DAD) are the service's. Writers build the options we send in an
 * RA (prefix information, source link-layer address, MTU, RDNSS, DNSSL) and
 * the target link-layer address of an NA; DNSSL padding adds only what is
 * needed to reach a multiple of 8 (SPEC §13.11 fix).
 */
import { copyBytes, fillBytes, IP6_LEN, MAC_LEN, rangeOk, wr16, wr32 } from './bytes';
import { ICMPV6_TYPE } from './icmp';
import { WireView } from './view';

/** Fields shared by all NDP messages, and per-type ones (offsets in the ICMPv6 message). */
export const NDP_FIELD = {
  TYPE: 0, CODE: 1, CHECKSUM: 2,
  // RA
  CUR_HOP_LIMIT: 4, RA_FLAGS: 5, ROUTER_LIFETIME: 6, REACHABLE_TIME: 8, RETRANS_TIMER: 12,
  // NA
  NA_FLAGS: 4,
  // NS, NA, Redirect
  TARGET: 8,
} as const;

/** Length of the fixed part per message type. */
export const NDP_FIXED_LEN = { RS: 8, RA: 16, NS: 24, NA: 24, REDIRECT: 40 } as const;
export const NDP_RA_FLAG = { MANAGED: 0x80, OTHER: 0x40 } as const;
export const NDP_NA_FLAG = { ROUTER: 0x80, SOLICITED: 0x40, OVERRIDE: 0x20 } as const;

export const NDP_OPT = {
  SOURCE_LL_ADDR: 1, TARGET_LL_ADDR: 2, PREFIX_INFO: 3, REDIRECTED_HEADER: 4, MTU: 5,
  RDNSS: 25, DNSSL: 31,
} as const;
export const NDP_OPT_LEN = { LL_ADDR: 8, PREFIX_INFO: 32, MTU: 8, DNS_FIXED: 8 } as const;
export const NDP_PREFIX_FLAG = { ON_LINK: 0x80, AUTONOMOUS: 0x40 } as const;
/** Lifetime value meaning "infinity" in prefix, RDNSS and DNSSL options. */
export const NDP_INFINITE = 0xffffffff;

/** Length of the fixed part of an NDP message of this ICMPv6 type, or 0 if not NDP. */
export function ndpFixedLen(type: number): number {
  switch (type) {
    case ICMPV6_TYPE.ROUTER_SOLICITATION: return NDP_FIXED_LEN.RS;
    case ICMPV6_TYPE.ROUTER_ADVERTISEMENT: return NDP_FIXED_LEN.RA;
    case ICMPV6_TYPE.NEIGHBOR_SOLICITATION: return NDP_FIXED_LEN.NS;
    case ICMPV6_TYPE.NEIGHBOR_ADVERTISEMENT: return NDP_FIXED_LEN.NA;
    case ICMPV6_TYPE.REDIRECT: return NDP_FIXED_LEN.REDIRECT;
    default: return 0;
  }
}

/** View of an NDP message (the ICMPv6 bytes). */
export class NdpView extends WireView {
  /** Offset in u8 of the first option. */
  optionsOff = 0;

  /** Validates an NDP type, the fixed part, and that every option has length > 0 and fits. */
  reset(off: number, len: number): boolean {
    const u8 = this.u8;
    if (!rangeOk(u8, off, len) || len < 4) return this.fail();
    const fixed = ndpFixedLen(u8[off]);
    if (fixed === 0 || len < fixed) return this.fail();
    const end = off + len;
    let p = off + fixed;
    while (p < end) {
      if (p + 2 > end) return this.fail();
      const olen = u8[p + 1] << 3;
      if (olen === 0 || p + olen > end) return this.fail();
      p += olen;
    }
    this.off = off;
    this.len = len;
    this.optionsOff = off + fixed;
    return true;
  }

  protected fail(): false {
    this.optionsOff = 0;
    return super.fail();
  }

  /** A new view of [off, off+len), or null if malformed. */
  static check(u8: Uint8Array, off: number, len: number): NdpView | null {
    const v = new NdpView(u8);
    return v.reset(off, len) ? v : null;
  }

  get type(): number { return this.u8[this.off + NDP_FIELD.TYPE]; }
  get code(): number { return this.u8[this.off + NDP_FIELD.CODE]; }
  get checksum(): number { return this.dv.getUint16(this.off + NDP_FIELD.CHECKSUM); }
  /** Offset in u8 of the target address (NS, NA, Redirect), −1 for other types. */
  get targetOff(): number { return this.hasTarget ? this.off + NDP_FIELD.TARGET : -1; }
  private get hasTarget(): boolean {
    const t = this.type;
    return t === ICMPV6_TYPE.NEIGHBOR_SOLICITATION || t === ICMPV6_TYPE.NEIGHBOR_ADVERTISEMENT || t === ICMPV6_TYPE.REDIRECT;
  }
  private get isRa(): boolean { return this.type === ICMPV6_TYPE.ROUTER_ADVERTISEMENT; }
  // RA fields (0 for other types: the bytes may not be there)
  get curHopLimit(): number { return this.isRa ? this.u8[this.off + NDP_FIELD.CUR_HOP_LIMIT] : 0; }
  get raFlags(): number { return this.isRa ? this.u8[this.off + NDP_FIELD.RA_FLAGS] : 0; }
  get routerLifetime(): number { return this.isRa ? this.dv.getUint16(this.off + NDP_FIELD.ROUTER_LIFETIME) : 0; }
  get reachableTime(): number { return this.isRa ? this.dv.getUint32(this.off + NDP_FIELD.REACHABLE_TIME) : 0; }
  get retransTimer(): number { return this.isRa ? this.dv.getUint32(this.off + NDP_FIELD.RETRANS_TIMER) : 0; }
  /** NA flags (R, S, O); 0 for other types. */
  get naFlags(): number {
    return this.type === ICMPV6_TYPE.NEIGHBOR_ADVERTISEMENT ? this.u8[this.off + NDP_FIELD.NA_FLAGS] : 0;
  }
  get optionsLen(): number { return this.off + this.len - this.optionsOff; }

  /** Offset in u8 of the first option of this type, or -1. */
  findOption(type: number): number {
    const end = this.off + this.len;
    for (let p = this.optionsOff; p < end; p += this.u8[p + 1] << 3) if (this.u8[p] === type) return p;
    return -1;
  }
}

/** Writes a source (1) or target (2) link-layer address option; returns 8. */
export function writeNdpLinkLayerOption(out: Uint8Array, off: number, type: number, mac: Uint8Array, macOff = 0): number {
  out[off] = type;
  out[off + 1] = 1;
  copyBytes(out, off + 2, mac, macOff, MAC_LEN);
  return NDP_OPT_LEN.LL_ADDR;
}

/**
 * Writes a Prefix Information option; the prefix field carries `prefix` with
 * the bits beyond prefixLen cleared (SPEC §13.11 fix); returns 32.
 */
export function writePrefixInfoOption(out: Uint8Array, off: number, prefix: Uint8Array, prefixOff: number,
  prefixLen: number, flags: number, validLifetime: number, preferredLifetime: number): number {
  out[off] = NDP_OPT.PREFIX_INFO;
  out[off + 1] = 4;
  out[off + 2] = prefixLen;
  out[off + 3] = flags;
  wr32(out, off + 4, validLifetime);
  wr32(out, off + 8, preferredLifetime);
  wr32(out, off + 12, 0);
  for (let i = 0; i < IP6_LEN; i++) {
    const bits = Math.max(0, Math.min(8, prefixLen - 8 * i));
    out[off + 16 + i] = prefix[prefixOff + i] & ((0xff00 >>> bits) & 0xff);
  }
  return NDP_OPT_LEN.PREFIX_INFO;
}

/** Writes an MTU option; returns 8. */
export function writeMtuOption(out: Uint8Array, off: number, mtu: number): number {
  out[off] = NDP_OPT.MTU;
  out[off + 1] = 1;
  wr16(out, off + 2, 0);
  wr32(out, off + 4, mtu);
  return NDP_OPT_LEN.MTU;
}

/** Writes an RDNSS option (RFC 8106) with `count` addresses from addrs; returns 8 + 16·count. */
export function writeRdnssOption(out: Uint8Array, off: number, lifetime: number, addrs: Uint8Array, count: number): number {
  out[off] = NDP_OPT.RDNSS;
  out[off + 1] = 1 + 2 * count;
  wr16(out, off + 2, 0);
  wr32(out, off + 4, lifetime);
  copyBytes(out, off + 8, addrs, 0, count * IP6_LEN);
  return NDP_OPT_LEN.DNS_FIXED + count * IP6_LEN;
}

/** Length of a DNSSL option carrying namesLen bytes of encoded names. */
export function dnsslOptionLen(namesLen: number): number {
  return (NDP_OPT_LEN.DNS_FIXED + namesLen + 7) & ~7;
}

/**
 * Writes a DNSSL option (RFC 8106) from names[0, namesLen) (uncompressed
 * label encoding), zero-padded to the next multiple of 8 only; returns its length.
 */
export function writeDnsslOption(out: Uint8Array, off: number, lifetime: number, names: Uint8Array, namesLen: number): number {
  const total = dnsslOptionLen(namesLen);
  out[off] = NDP_OPT.DNSSL;
  out[off + 1] = total >>> 3;
  wr16(out, off + 2, 0);
  wr32(out, off + 4, lifetime);
  copyBytes(out, off + 8, names, 0, namesLen);
  fillBytes(out, off + 8 + namesLen, total - 8 - namesLen);
  return total;
}

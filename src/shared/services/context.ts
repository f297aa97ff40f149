/**
 * ServiceContext: everything the link services (ARP, DHCP, NDP, DHCPv6) and
 * the learning rules need, as bytes, built once from the frozen Config.
 *
 * Theory of operation: Config holds canonical address strings; the data path
 * wants bytes. `serviceContextFromConfig` converts once at worker start-up:
 * our MAC, the assigned addresses, gateway, our link-local address, DNS lists
 * (at most 3 per family, SPEC §2.9), the search list in its two wire
 * encodings (compressed for DHCP, plain labels for DHCPv6 and DNSSL), the
 * DHCPv6 DUID, --hostname as bytes and --fqdn in wire labels (DHCP options
 * 12 and 81, DHCPv6 option 39), and which services are on. The context is
 * then mutated only by the learning rules (services/learn.ts: guest MAC,
 * "seen" addresses, SPEC §2.4, §2.5) and by the services' drop counters. One context per tap-RX
 * worker; nothing in it is shared between threads.
 *
 * Service switches (SPEC §3): DHCP needs IPv4 with an assigned address and a
 * gateway, and no --no-dhcp. NDP needs IPv6, no --no-ndp and no --no-icmp
 * (which drops all ICMPv6). RAs also need no --no-ra and no --config-net.
 * DHCPv6 needs IPv6 with an assigned (configured) address, no --no-dhcpv6.
 */
import type { Config } from '../config';
import { ip4FromString, ip4MaskFromPrefix, ip6FromString, IP4_LEN, IP6_LEN, macFromString } from '../wire/bytes';
import { DUID_LLT_LEN, writeDuidLlt } from '../wire/dhcpv6';
import { encodeDomainNames, EncodedNames, normalizeDomain } from '../wire/dnsname';
import { FrameViews } from '../wire/frame';
import { prettyFrame } from '../wire/pretty';
import { log } from '../log';

/** Reasons a frame given to a service was dropped (index into ServiceContext.drops). */
export const DROP = {
  /** The output buffer has less room than the handler's maximum reply. */
  OUT_TOO_SMALL: 0,
  /** Not a valid frame of the kind the handler serves (bad Ethernet/IP/UDP/ICMPv6 header, wrong protocol or port). */
  MALFORMED: 1,
  ARP_DISABLED: 2,
  ARP_UNSUPPORTED: 3,
  ARP_NOT_REQUEST: 4,
  ARP_ANNOUNCEMENT: 5,
  ARP_GUEST_ADDR: 6,
  DHCP_DISABLED: 7,
  DHCP_LENGTH: 8,
  DHCP_NOT_REQUEST: 9,
  DHCP_BAD_OPTIONS: 10,
  DHCP_IGNORED_TYPE: 11,
  NDP_DISABLED: 12,
  NDP_INVALID: 13,
  NDP_DAD: 14,
  NDP_IGNORED_TYPE: 15,
  RA_DISABLED: 16,
  DHCPV6_DISABLED: 17,
  DHCPV6_NOT_MULTICAST: 18,
  DHCPV6_LENGTH: 19,
  DHCPV6_BAD_OPTIONS: 20,
  DHCPV6_NO_CLIENT_ID: 21,
  DHCPV6_SERVER_ID: 22,
  DHCPV6_BAD_IA: 23,
  DHCPV6_IGNORED_TYPE: 24,
} as const;
export type DropReason = (typeof DROP)[keyof typeof DROP];
export const DROP_COUNT = Object.keys(DROP).length;

/** Short names of the drop reasons, for traces and statistics. */
export const DROP_NAME = {
  [DROP.OUT_TOO_SMALL]: 'output buffer too small',
  [DROP.MALFORMED]: 'malformed frame',
  [DROP.ARP_DISABLED]: 'ARP: IPv4 disabled',
  [DROP.ARP_UNSUPPORTED]: 'ARP: not Ethernet/IPv4',
  [DROP.ARP_NOT_REQUEST]: 'ARP: not a request',
  [DROP.ARP_ANNOUNCEMENT]: 'ARP: announcement',
  [DROP.ARP_GUEST_ADDR]: 'ARP: probe for the guest address',
  [DROP.DHCP_DISABLED]: 'DHCP: disabled',
  [DROP.DHCP_LENGTH]: 'DHCP: length mismatch or short message',
  [DROP.DHCP_NOT_REQUEST]: 'DHCP: not a BOOTREQUEST',
  [DROP.DHCP_BAD_OPTIONS]: 'DHCP: truncated options',
  [DROP.DHCP_IGNORED_TYPE]: 'DHCP: message type not answered',
  [DROP.NDP_DISABLED]: 'NDP: disabled',
  [DROP.NDP_INVALID]: 'NDP: invalid message',
  [DROP.NDP_DAD]: 'NDP: duplicate address detection',
  [DROP.NDP_IGNORED_TYPE]: 'NDP: message type not answered',
  [DROP.RA_DISABLED]: 'NDP: router advertisements disabled',
  [DROP.DHCPV6_DISABLED]: 'DHCPv6: disabled',
  [DROP.DHCPV6_NOT_MULTICAST]: 'DHCPv6: destination not multicast',
  [DROP.DHCPV6_LENGTH]: 'DHCPv6: length mismatch',
  [DROP.DHCPV6_BAD_OPTIONS]: 'DHCPv6: truncated options',
  [DROP.DHCPV6_NO_CLIENT_ID]: 'DHCPv6: missing or oversized client identifier',
  [DROP.DHCPV6_SERVER_ID]: 'DHCPv6: server identifier missing, unexpected or not ours',
  [DROP.DHCPV6_BAD_IA]: 'DHCPv6: malformed IA',
  [DROP.DHCPV6_IGNORED_TYPE]: 'DHCPv6: message type not answered',
} as const satisfies Record<DropReason, string>;

/** At most this many DNS servers per family are handed out (SPEC §2.9). */
export const MAX_DNS = 3;

/** Seconds between 1970-01-01 and 2000-01-01 00:00:00 UTC (DUID-LLT epoch, RFC 8415 §11.2). */
export const DUID_EPOCH_OFFSET_S = 946684800;

export interface Ip4State {
  enabled: boolean;
  /** Assigned guest address (zeros if none). */
  addr: Uint8Array;
  hasAddr: boolean;
  prefixLen: number;
  mask: Uint8Array;
  /** Gateway = our address on the tap link (zeros if none). */
  gateway: Uint8Array;
  hasGateway: boolean;
  /** DNS servers to advertise, 4 bytes each. */
  dns: Uint8Array;
  dnsCount: number;
  /** Last non-zero source address seen from the guest (starts as addr). */
  addrSeen: Uint8Array;
}

export interface Ip6State {
  enabled: boolean;
  /** Assigned guest address; in local mode learned from the first link-local source. */
  addr: Uint8Array;
  hasAddr: boolean;
  /** True if addr came from the configuration (RA prefix and DHCPv6 need one). */
  addrConfigured: boolean;
  prefixLen: number;
  /** Our link-local address: source of NDP and DHCPv6. */
  ourLinkLocal: Uint8Array;
  gateway: Uint8Array;
  hasGateway: boolean;
  /** DNS servers to advertise, 16 bytes each. */
  dns: Uint8Array;
  dnsCount: number;
  /** Last specified source seen (starts as addr). */
  addrSeen: Uint8Array;
  hasAddrSeen: boolean;
  /** Last link-local source seen. */
  addrLlSeen: Uint8Array;
  hasAddrLlSeen: boolean;
}

export interface ServiceContext {
  ourMac: Uint8Array;
  /** Learned from every guest frame (SPEC §2.5). */
  guestMac: Uint8Array;
  /** Advertised MTU; 0 = don't advertise. */
  mtu: number;
  ip4: Ip4State;
  ip6: Ip6State;
  advertiseDns: boolean;
  advertiseSearch: boolean;
  dhcpEnabled: boolean;
  ndpEnabled: boolean;
  raEnabled: boolean;
  dhcpv6Enabled: boolean;
  /** Search list, RFC 1035 compression (DHCP option 119). */
  searchCompressed: EncodedNames;
  /** Search list, plain labels (DHCPv6 option 24, DNSSL). */
  searchLabels: EncodedNames;
  /** --hostname as sent in DHCP option 12 (empty: none). */
  hostname: Uint8Array;
  /** --fqdn as length-prefixed labels with the root's zero (empty: none). */
  fqdn: Uint8Array;
  /** Seconds since 2000-01-01 UTC at start-up, as in the DUID. */
  duidTime: number;
  /** Our DUID-LLT (14 bytes). */
  duid: Uint8Array;
  /** Per-reason drop counters, indexed by DropReason. */
  drops: Uint32Array;
  /**
   * Scratch views over the last input buffer (see viewsFor). Every service
   * call and noteGuestFrame re-targets them: callers keep their own FrameViews.
   */
  views: FrameViews | null;
}

/** DUID-LLT time for a start-up instant (ms since the Unix epoch): seconds since 2000, mod 2^32. */
export function duidTimeFromEpochMs(ms: number): number {
  const s = Math.floor(ms / 1000) - DUID_EPOCH_OFFSET_S;
  return s > 0 ? s >>> 0 : 0;
}

function addrList(list: readonly string[], parse: (s: string) => Uint8Array | null, size: number): [Uint8Array, number] {
  const out = new Uint8Array(MAX_DNS * size);
  let n = 0;
  for (const s of list) {
    if (n === MAX_DNS) break;
    const b = parse(s);
    if (b) out.set(b, size * n++);
  }
  return [out, n];
}

/** Splits, normalises and filters the search domains (SPEC §13.8: spaces separate entries). */
export function searchDomainList(domains: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of domains) {
    for (const part of d.split(/\s+/)) {
      const n = normalizeDomain(part);
      if (n !== null) out.push(n);
    }
  }
  return out;
}

/**
 * Builds the context of the link services from the configuration.
 * @param startTime start-up instant, ms since the Unix epoch (DUID time)
 */
export function serviceContextFromConfig(cfg: Config, startTime: number): ServiceContext {
  const ourMac = macFromString(cfg.ourMac) ?? Uint8Array.of(0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55);
  const guestMac = (cfg.nsMacAddr !== null ? macFromString(cfg.nsMacAddr) : null) ?? new Uint8Array(6).fill(0xff);

  const a4 = cfg.ip4.addr !== null ? ip4FromString(cfg.ip4.addr) : null;
  const g4 = cfg.ip4.gateway !== null ? ip4FromString(cfg.ip4.gateway) : null;
  const [dns4, dns4Count] = addrList(cfg.ip4.dns, ip4FromString, IP4_LEN);
  const ip4: Ip4State = {
    enabled: cfg.ip4.enabled,
    addr: a4 ?? new Uint8Array(IP4_LEN),
    hasAddr: a4 !== null,
    prefixLen: cfg.ip4.prefixLen,
    mask: ip4MaskFromPrefix(cfg.ip4.prefixLen),
    gateway: g4 ?? new Uint8Array(IP4_LEN),
    hasGateway: g4 !== null,
    dns: dns4,
    dnsCount: dns4Count,
    addrSeen: a4 ? a4.slice() : new Uint8Array(IP4_LEN),
  };

  const a6 = cfg.ip6.addr !== null ? ip6FromString(cfg.ip6.addr) : null;
  const g6 = cfg.ip6.gateway !== null ? ip6FromString(cfg.ip6.gateway) : null;
  const ll6 = ip6FromString(cfg.ip6.ourLinkLocal) ?? Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
  const [dns6, dns6Count] = addrList(cfg.ip6.dns, ip6FromString, IP6_LEN);
  const ip6: Ip6State = {
    enabled: cfg.ip6.enabled,
    addr: a6 ?? new Uint8Array(IP6_LEN),
    hasAddr: a6 !== null,
    addrConfigured: a6 !== null,
    prefixLen: cfg.ip6.prefixLen,
    ourLinkLocal: ll6,
    gateway: g6 ?? new Uint8Array(IP6_LEN),
    hasGateway: g6 !== null,
    dns: dns6,
    dnsCount: dns6Count,
    addrSeen: a6 ? a6.slice() : new Uint8Array(IP6_LEN),
    hasAddrSeen: a6 !== null,
    addrLlSeen: new Uint8Array(IP6_LEN),
    hasAddrLlSeen: false,
  };

  const names = searchDomainList(cfg.searchDomains);
  const fqdn = cfg.fqdn !== null ? normalizeDomain(cfg.fqdn) : null;
  const duidTime = duidTimeFromEpochMs(startTime);
  const duid = new Uint8Array(DUID_LLT_LEN);
  writeDuidLlt(duid, 0, duidTime, ourMac);

  const ndpEnabled = ip6.enabled && !cfg.noNdp && !cfg.noIcmp;
  return {
    ourMac,
    guestMac,
    mtu: cfg.mtu,
    ip4,
    ip6,
    advertiseDns: cfg.advertiseDns,
    advertiseSearch: cfg.advertiseSearch,
    dhcpEnabled: ip4.enabled && !cfg.noDhcp && ip4.hasAddr && ip4.hasGateway,
    ndpEnabled,
    raEnabled: ndpEnabled && !cfg.noRa && !cfg.configNet,
    dhcpv6Enabled: ip6.enabled && !cfg.noDhcpv6 && ip6.addrConfigured,
    searchCompressed: encodeDomainNames(names, true),
    searchLabels: encodeDomainNames(names, false),
    hostname: new TextEncoder().encode(cfg.hostname ?? ''),
    fqdn: encodeDomainNames(fqdn !== null ? [fqdn] : [], false).data,
    duidTime,
    duid,
    drops: new Uint32Array(DROP_COUNT),
    views: null,
  };
}

/**
 * Counts a drop (and traces it with the frame, if given and tracing is on);
 * returns 0 so handlers can `return drop(ctx, DROP.X, u8, off, len)`.
 */
export function drop(ctx: ServiceContext, reason: DropReason, u8?: Uint8Array, off = 0, len = 0): 0 {
  ctx.drops[reason]++;
  if (log.traceOn) log.trace(`${DROP_NAME[reason]}${u8 ? ': ' + prettyFrame(u8, off, len) : ''}`);
  return 0;
}

/** Drop counters by name (non-zero ones only), for statistics and tests. */
export function dropStats(ctx: ServiceContext): Record<string, number> {
  const out: Record<string, number> = {};
  for (let r = 0; r < DROP_COUNT; r++) if (ctx.drops[r]) out[DROP_NAME[r as DropReason]] = ctx.drops[r];
  return out;
}

/** Scratch views over u8 (re-created only when the buffer changes). */
export function viewsFor(ctx: ServiceContext, u8: Uint8Array): FrameViews {
  return (ctx.views = FrameViews.forBuffer(ctx.views, u8));
}

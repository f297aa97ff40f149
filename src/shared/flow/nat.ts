/**
 * Address translation between the guest and the host (SPEC.md §2.6–§2.8).
 * pasta has no NAT by default: the guest owns the host's address, and only
 * a few special addresses are rewritten.
 *
 * - Outbound (a flow starting on the tap): the guest's destination becomes
 *   the host-side target: DNS-forward address (ports 53/853) → --dns-host;
 *   map-host-loopback address → 127.0.0.1/::1; map-guest-addr address →
 *   the guest's own assigned address; anything else unchanged.
 * - Inbound (a flow from a host socket to the guest): the host-side source
 *   becomes what the guest sees: 127.0.0.1/::1 → map-host-loopback;
 *   the guest's own address → map-guest-addr; unusable sources (loopback,
 *   0.0.0.0, the guest's own or last-seen address) → our tap address (the
 *   IPv4 gateway, or our IPv6 link-local); otherwise unchanged. The
 *   destination is the guest's last-seen address (IPv6: link-local when the
 *   translated source is link-local).
 * All addresses are 16-byte inany values.
 */
import type { Config } from '../config';
import type { GuestState } from '../guestState';
import {
  inanyParseOrNull, inanyEq, inanyIs4, inanyCopy, inanyFrom4, inanyIsLoopback, inanyIsUnspecified, inanyIsLinkLocal6,
} from './inany';

export interface NatFamily {
  enabled: boolean;
  /** Guest's assigned address. */
  addr: Uint8Array | null;
  /** Our address on the tap link: IPv4 gateway, IPv6 our link-local. */
  ourTap: Uint8Array | null;
  mapHostLoopback: Uint8Array | null;
  mapGuestAddr: Uint8Array | null;
  dnsMatch: Uint8Array | null;
  dnsHost: Uint8Array | null;
  /** -o source address for outbound sockets, or null. */
  outbound: Uint8Array | null;
  /** --outbound-if4/6 device, or null. */
  outboundIf: string | null;
}

export const LOOPBACK4 = inanyParseOrNull('127.0.0.1') as Uint8Array;
export const LOOPBACK6 = inanyParseOrNull('::1') as Uint8Array;

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

export class Nat {
  readonly v4: NatFamily;
  readonly v6: NatFamily;

  constructor(cfg: Config) {
    this.v4 = {
      enabled: cfg.ip4.enabled,
      addr: inanyParseOrNull(cfg.ip4.addr),
      ourTap: inanyParseOrNull(cfg.ip4.gateway),
      mapHostLoopback: inanyParseOrNull(cfg.ip4.mapHostLoopback),
      mapGuestAddr: inanyParseOrNull(cfg.ip4.mapGuestAddr),
      dnsMatch: inanyParseOrNull(cfg.ip4.dnsMatch),
      dnsHost: inanyParseOrNull(cfg.ip4.dnsHost),
      outbound: inanyParseOrNull(cfg.ip4.outbound),
      outboundIf: cfg.ip4.outboundIf,
    };
    this.v6 = {
      enabled: cfg.ip6.enabled,
      addr: inanyParseOrNull(cfg.ip6.addr),
      ourTap: inanyParseOrNull(cfg.ip6.ourLinkLocal),
      mapHostLoopback: inanyParseOrNull(cfg.ip6.mapHostLoopback),
      mapGuestAddr: inanyParseOrNull(cfg.ip6.mapGuestAddr),
      dnsMatch: inanyParseOrNull(cfg.ip6.dnsMatch),
      dnsHost: inanyParseOrNull(cfg.ip6.dnsHost),
      outbound: inanyParseOrNull(cfg.ip6.outbound),
      outboundIf: cfg.ip6.outboundIf,
    };
  }

  family(a: Uint8Array, off = 0): NatFamily {
    return inanyIs4(a, off) ? this.v4 : this.v6;
  }

  /**
   * SPEC §2.6: the host-side target of a guest flow to dst:dport.
   * Writes 16 bytes at out[oOff].
   */
  outbound(proto: number, dst: Uint8Array, dOff: number, dport: number, out: Uint8Array, oOff: number): void {
    const f = this.family(dst, dOff);
    const v4 = f === this.v4;
    if ((proto === IPPROTO_TCP || proto === IPPROTO_UDP) && (dport === 53 || dport === 853) &&
        f.dnsMatch && f.dnsHost && inanyEq(dst, dOff, f.dnsMatch, 0)) {
      inanyCopy(out, oOff, f.dnsHost, 0);
    } else if (f.mapHostLoopback && inanyEq(dst, dOff, f.mapHostLoopback, 0)) {
      inanyCopy(out, oOff, v4 ? LOOPBACK4 : LOOPBACK6, 0);
    } else if (f.mapGuestAddr && f.addr && inanyEq(dst, dOff, f.mapGuestAddr, 0)) {
      inanyCopy(out, oOff, f.addr, 0);
    } else {
      inanyCopy(out, oOff, dst, dOff);
    }
  }

  /**
   * SPEC §2.7: the source the guest sees for a host peer at src. Writes 16
   * bytes at out[oOff]; false if the flow must be refused (IPv4 without a
   * gateway to stand in).
   */
  inboundSrc(src: Uint8Array, sOff: number, guest: GuestState, out: Uint8Array, oOff: number): boolean {
    const v4 = inanyIs4(src, sOff);
    const f = v4 ? this.v4 : this.v6;
    const exactLoopback = v4 ? inanyEq(src, sOff, LOOPBACK4, 0) : inanyEq(src, sOff, LOOPBACK6, 0);
    if (exactLoopback && f.mapHostLoopback) {
      inanyCopy(out, oOff, f.mapHostLoopback, 0);
      return true;
    }
    if (f.addr && f.mapGuestAddr && inanyEq(src, sOff, f.addr, 0)) {
      inanyCopy(out, oOff, f.mapGuestAddr, 0);
      return true;
    }
    const seen = this.seenAddr(v4, guest);
    const unusable = inanyIsLoopback(src, sOff) || inanyIsUnspecified(src, sOff) ||
      (f.addr !== null && inanyEq(src, sOff, f.addr, 0)) || inanyEq(src, sOff, seen, 0);
    if (unusable) {
      if (!f.ourTap) return false;
      inanyCopy(out, oOff, f.ourTap, 0);
      return true;
    }
    inanyCopy(out, oOff, src, sOff);
    return true;
  }

  /** SPEC §2.7: the guest-side destination, given the translated source. */
  inboundDst(translatedSrc: Uint8Array, tOff: number, guest: GuestState, out: Uint8Array, oOff: number): void {
    if (inanyIs4(translatedSrc, tOff)) {
      inanyFrom4(out, oOff, guest.addr4Seen, 0);
    } else if (inanyIsLinkLocal6(translatedSrc, tOff) && guest.hasLlSeen) {
      inanyCopy(out, oOff, guest.addr6LlSeen, 0);
    } else {
      inanyCopy(out, oOff, guest.addr6Seen, 0);
    }
  }

  private readonly seen4 = new Uint8Array(16);
  private readonly seen6 = new Uint8Array(16);

  private seenAddr(v4: boolean, guest: GuestState): Uint8Array {
    if (v4) {
      inanyFrom4(this.seen4, 0, guest.addr4Seen, 0);
      return this.seen4;
    }
    inanyCopy(this.seen6, 0, guest.addr6Seen, 0);
    return this.seen6;
  }
}

/**
 * Namespace interface set-up (SPEC.md §9.5), all through rtnetlink.
 *
 * Always: `lo` up (fatal on failure), optional MAC on the tap, read back the
 * tap's MAC (the guest's). With --config-net: MTU, link up (with IFF_NOARP
 * while IPv6 link-local appears, so no DAD runs), link-local made nodad,
 * then per family either a copy of the host template's addresses and routes
 * or just the assigned address and a default route.
 */
import * as ipaddr from 'ipaddr.js';
import type { Config } from '../shared/config';
import { ErrnoError, PasstError } from '../shared/errors';
import { log } from '../shared/log';
import { E } from '../shared/native';
import type { HostFamily } from './hostInfo';
import {
  Netlink, AF_INET, AF_INET6, IFF_UP, IFF_NOARP, IFA_F_NODAD, IFA_F_DEPRECATED, RT_SCOPE_LINK, Route,
} from './netlink';

export interface NsLinkInfo {
  ifindex: number;
  /** The tap's MAC address in the namespace (the guest's MAC). */
  mac: Uint8Array | null;
  /** The tap's IPv6 link-local address, once known. */
  linkLocal: string | null;
}

function ipBytes(a: string): Uint8Array {
  return Uint8Array.from(ipaddr.parse(a).toByteArray());
}

function macBytes(m: string): Uint8Array {
  return Uint8Array.from(m.split(':').map((x) => parseInt(x, 16)));
}

function fatal(step: string, e: unknown): never {
  const why = e instanceof Error ? e.message : String(e);
  throw new PasstError('PASST_ERR_NS_CONFIG', `${step}: ${why}`);
}

/** Brings lo up and applies --ns-mac-addr; returns the tap's index and MAC. */
export function basicNsSetup(nl: Netlink, cfg: Config, tapName: string): NsLinkInfo {
  try {
    nl.setLink(1, { flags: IFF_UP, change: IFF_UP });
  } catch (e) {
    fatal("Couldn't bring up loopback interface in namespace", e);
  }
  const link = nl.link(tapName);
  if (!link) throw new PasstError('PASST_ERR_NS_CONFIG', `Tap device ${tapName} missing in namespace`);
  if (cfg.nsMacAddr) {
    try {
      nl.setLink(link.index, { mac: macBytes(cfg.nsMacAddr) });
    } catch (e) {
      fatal(`Couldn't set MAC address ${cfg.nsMacAddr} on ${tapName}`, e);
    }
  }
  const now = nl.link(link.index);
  return { ifindex: link.index, mac: now?.mac ?? null, linkLocal: null };
}

function ignorable(e: unknown): boolean {
  return e instanceof ErrnoError && (e.errno === E.EEXIST || e.errno === E.ENETUNREACH || e.errno === E.EHOSTUNREACH);
}

/**
 * Replays routes, several rounds, so that a route whose gateway depends on
 * another route gets its turn; "exists" and "unreachable" leftovers are
 * skipped, any other failure is fatal.
 */
function copyRoutes(nl: Netlink, routes: Route[], ifindex: number, fam: string): void {
  let pending: { r: Route; err: unknown }[] = routes.map((r) => ({ r, err: null }));
  for (let round = 0; round < 8 && pending.length; round++) {
    const next: { r: Route; err: unknown }[] = [];
    for (const p of pending) {
      try {
        nl.copyRoute(p.r, ifindex);
      } catch (e) {
        if (!(e instanceof ErrnoError && e.errno === E.EEXIST)) next.push({ r: p.r, err: e });
      }
    }
    const stuck = next.length === pending.length;
    pending = next;
    if (stuck) break;
  }
  for (const p of pending) {
    if (!ignorable(p.err)) fatal(`Couldn't set ${fam} route(s) in guest`, p.err);
    log.debug(`Skipped ${fam} route /${p.r.dstLen}: ${(p.err as Error).message}`);
  }
}

/**
 * --config-net: MTU, link up, addresses and routes for each enabled family.
 * @param t4,t6 host templates (null in local mode or when disabled)
 */
export function configNet(nl: Netlink, cfg: Config, link: NsLinkInfo, t4: HostFamily | null, t6: HostFamily | null): void {
  const idx = link.ifindex;
  if (cfg.mtu) {
    try {
      nl.setLink(idx, { mtu: cfg.mtu });
    } catch (e) {
      log.warn(`Couldn't set MTU ${cfg.mtu} in namespace: ${(e as Error).message}`);
    }
  }
  try {
    nl.setLink(idx, { flags: IFF_UP | (cfg.ip6.enabled ? IFF_NOARP : 0), change: IFF_UP | IFF_NOARP });
  } catch (e) {
    log.warn(`Couldn't bring up ${cfg.nsIfname}: ${(e as Error).message}`);
  }

  if (cfg.ip4.enabled && cfg.ip4.addr) {
    const single = cfg.ip4.addrGiven || cfg.noCopyAddrs || !t4;
    try {
      if (single) {
        nl.addAddr({ family: AF_INET, index: idx, prefixLen: cfg.ip4.prefixLen, addr: ipBytes(cfg.ip4.addr), flags: 0 });
      } else {
        for (const a of t4.addrs) {
          if (a.scope === RT_SCOPE_LINK || a.flags & IFA_F_DEPRECATED) continue;
          nl.addAddr({ family: AF_INET, index: idx, prefixLen: a.prefixLen, addr: a.addr, flags: 0, scope: a.scope });
        }
      }
    } catch (e) {
      if (!(e instanceof ErrnoError && e.errno === E.EEXIST)) fatal("Couldn't set IPv4 address(es) in guest", e);
    }
    if (cfg.ip4.gatewayGiven || cfg.noCopyRoutes || !t4) {
      if (cfg.ip4.gateway) {
        try {
          nl.addDefaultRoute(AF_INET, idx, ipBytes(cfg.ip4.gateway));
        } catch (e) {
          if (!(e instanceof ErrnoError && e.errno === E.EEXIST)) fatal("Couldn't set IPv4 route(s) in guest", e);
        }
      }
    } else {
      copyRoutes(nl, t4.routes, idx, 'IPv4');
    }
  }

  if (cfg.ip6.enabled) {
    // the kernel made a link-local address when the link went up (no DAD under
    // IFF_NOARP): mark it nodad, then allow neighbour discovery again
    for (const a of nl.addrs(AF_INET6, idx)) {
      if (a.addr[0] === 0xfe && (a.addr[1] & 0xc0) === 0x80) {
        link.linkLocal = ipaddr.fromByteArray(Array.from(a.addr)).toString();
        try {
          nl.addAddr({ family: AF_INET6, index: idx, prefixLen: a.prefixLen, addr: a.addr, flags: a.flags | IFA_F_NODAD, scope: a.scope }, true);
        } catch (e) {
          log.debug(`Couldn't set nodad on link-local address: ${(e as Error).message}`);
        }
      }
    }
    try {
      nl.setLink(idx, { flags: IFF_UP, change: IFF_UP | IFF_NOARP });
    } catch (e) {
      log.warn(`Couldn't clear NOARP on ${cfg.nsIfname}: ${(e as Error).message}`);
    }
    if (cfg.ip6.addr) {
      const single = cfg.ip6.addrGiven || cfg.noCopyAddrs || !t6;
      try {
        if (single) {
          nl.addAddr({ family: AF_INET6, index: idx, prefixLen: 64, addr: ipBytes(cfg.ip6.addr), flags: IFA_F_NODAD });
        } else {
          for (const a of t6.addrs) {
            if (a.scope === RT_SCOPE_LINK || a.flags & IFA_F_DEPRECATED) continue;
            if (a.addr[0] === 0xfe && (a.addr[1] & 0xc0) === 0x80) continue;
            nl.addAddr({ family: AF_INET6, index: idx, prefixLen: a.prefixLen, addr: a.addr, flags: IFA_F_NODAD, scope: a.scope });
          }
        }
      } catch (e) {
        if (!(e instanceof ErrnoError && e.errno === E.EEXIST)) fatal("Couldn't set IPv6 address(es) in guest", e);
      }
    }
    if (cfg.ip6.gatewayGiven || cfg.noCopyRoutes || !t6) {
      if (cfg.ip6.gateway) {
        try {
          nl.addDefaultRoute(AF_INET6, idx, ipBytes(cfg.ip6.gateway));
        } catch (e) {
          if (!(e instanceof ErrnoError && e.errno === E.EEXIST)) fatal("Couldn't set IPv6 route(s) in guest", e);
        }
      }
    } else {
      copyRoutes(nl, t6.routes, idx, 'IPv6');
    }
  } else {
    try {
      nl.setLink(idx, { flags: IFF_UP, change: IFF_UP | IFF_NOARP });
    } catch { /* already reported */ }
  }
}

/** Reads the tap's IPv6 link-local address (the guest's), if any. */
export function readLinkLocal(nl: Netlink, ifindex: number): string | null {
  try {
    for (const a of nl.addrs(AF_INET6, ifindex))
      if (a.addr[0] === 0xfe && (a.addr[1] & 0xc0) === 0x80) return ipaddr.fromByteArray(Array.from(a.addr)).toString();
  } catch { /* none */ }
  return null;
}

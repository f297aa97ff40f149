/**
 * What the host offers as a template for the guest (SPEC.md §2.1, §2.2, §2.9):
 * the interface of the first default route per family, its gateway and
 * addresses, and the resolver configuration.
 */
import * as fs from 'node:fs';
import * as ipaddr from 'ipaddr.js';
import { Netlink, Route, Addr, AF_INET, AF_INET6, RT_TABLE_MAIN, RTN_UNICAST, IFA_F_DEPRECATED, RT_SCOPE_UNIVERSE } from './netlink';

export interface HostFamily {
  family: number;
  ifindex: number;
  ifname: string;
  gateway: Uint8Array | null;
  /** Best address: longest prefix, non-deprecated (IPv6: universe scope). */
  addr: Uint8Array | null;
  prefixLen: number;
  /** IPv6: the template interface's own link-local address. */
  linkLocal: Uint8Array | null;
  /** All main-table routes through the template interface (for --config-net). */
  routes: Route[];
  /** All addresses of the template interface (for --config-net). */
  addrs: Addr[];
  /** Several candidate interfaces existed. */
  ambiguous: boolean;
}

function isLinkLocalDst(r: Route): boolean {
  if (!r.dst) return false;
  if (r.family === AF_INET) return r.dstLen >= 16 && r.dst[0] === 169 && r.dst[1] === 254;
  return r.dstLen >= 10 && r.dst[0] === 0xfe && (r.dst[1] & 0xc0) === 0x80;
}

/** Output interface of a route: RTA_OIF, or the heaviest nexthop of a multipath route. */
function routeIf(r: Route): number {
  if (r.oif) return r.oif;
  if (r.multipath && r.multipath.length) return heaviest(r).ifindex;
  return 0;
}

/** The nexthop with the highest weight (the first of equal ones). */
function heaviest(r: Route) {
  const mp = r.multipath ?? [];
  let best = mp[0];
  for (const nh of mp) if (nh.weight > best.weight) best = nh;
  return best;
}

function mainUnicast(nl: Netlink, family: number): Route[] {
  return nl.routes(family).filter((r) => r.table === RT_TABLE_MAIN && r.type === RTN_UNICAST);
}

/**
 * Picks the template interface for a family and reads what the guest will
 * be given. Returns null if no usable interface exists.
 * @param forcedIf -i / --outbound-if* interface name, or null
 */
export function discoverFamily(nl: Netlink, family: number, forcedIf: string | null): HostFamily | null {
  let routes: Route[];
  try {
    routes = mainUnicast(nl, family);
  } catch {
    return null; // netlink error: family disabled
  }
  const links = nl.links();
  let ifindex = 0;
  let ambiguous = false;
  if (forcedIf) {
    const l = links.find((x) => x.name === forcedIf);
    if (!l) return null;
    ifindex = l.index;
  } else {
    const candidates = routes.filter((r) => routeIf(r) && !isLinkLocalDst(r));
    const def = candidates.find((r) => r.dstLen === 0);
    const pick = def ?? candidates[0];
    if (!pick) return null;
    ifindex = routeIf(pick);
    ambiguous = new Set(candidates.map(routeIf)).size > 1;
  }
  const link = links.find((l) => l.index === ifindex);
  if (!link) return null;

  const viaIf = routes.filter((r) => routeIf(r) === ifindex ||
    (r.multipath !== null && r.multipath.some((nh) => nh.ifindex === ifindex)));
  let gateway: Uint8Array | null = null;
  const defRoute = viaIf.find((r) => r.dstLen === 0);
  if (defRoute) gateway = defRoute.multipath && defRoute.multipath.length ? heaviest(defRoute).gateway : defRoute.gateway;

  const addrs = nl.addrs(family, ifindex);
  let best: Addr | null = null;
  let ll: Addr | null = null;
  for (const a of addrs) {
    if (a.flags & IFA_F_DEPRECATED) continue;
    if (family === AF_INET6) {
      const isLL = a.addr[0] === 0xfe && (a.addr[1] & 0xc0) === 0x80;
      if (isLL) {
        if (!ll || a.prefixLen > ll.prefixLen) ll = a;
        continue;
      }
      if (a.scope !== RT_SCOPE_UNIVERSE) continue;
    }
    if (!best || a.prefixLen > best.prefixLen) best = a;
  }
  return {
    family, ifindex, ifname: link.name, gateway,
    addr: best ? best.addr : null, prefixLen: best ? best.prefixLen : 0,
    linkLocal: ll ? ll.addr : null,
    routes: viaIf, addrs, ambiguous,
  };
}

export interface Resolv {
  nameservers4: string[];
  nameservers6: string[];
  search: string[];
}

/** Parses resolv.conf text: nameserver lines per family (zone stripped), first search line. */
export function parseResolvConf(text: string): Resolv {
  const out: Resolv = { nameservers4: [], nameservers6: [], search: [] };
  let searchSeen = false;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0]) {
      const a = rest[0].replace(/%.*$/, '');
      if (!ipaddr.isValid(a)) continue;
      const p = ipaddr.parse(a);
      if (p.kind() === 'ipv4') out.nameservers4.push(p.toString());
      else out.nameservers6.push(p.toString());
    } else if ((key === 'search' || key === 'domain') && !searchSeen && rest.length) {
      searchSeen = key === 'search';
      out.search = rest.slice(0, 5);
    }
  }
  return out;
}

export function readResolvConf(path = '/etc/resolv.conf'): Resolv {
  try {
    return parseResolvConf(fs.readFileSync(path, 'utf8'));
  } catch {
    return { nameservers4: [], nameservers6: [], search: [] };
  }
}

export { AF_INET, AF_INET6 };

/**
 * From the command line and the host's state to a frozen Config
 * (SPEC.md §2 addressing, §9.1 invocation forms, §12 options).
 *
 * Two steps, so both can be tested on their own:
 * - parseOptions(): argv → Options. Pure: validates every value, applies
 *   "last one wins" and accumulation rules, refuses options of the other
 *   mode. All user-facing validation messages live here.
 * - resolveConfig(): Options + host templates (netlink) + resolv.conf →
 *   Config: addresses, gateway, local mode, DNS, mappings, defaults.
 */
import * as ipaddr from 'ipaddr.js';
import { resolve as resolvePath } from 'node:path';
import { FLOW_MAX, PING_TIMEOUT_MS, UDP_BATCH, UDP_BATCH_MAX, UDP_TIMEOUT_MS } from '../shared/config';
import type { Config, ForwardSpec, LogLevel, MemoryTuning, Mode, Tuning } from '../shared/config';
import { PasstError } from '../shared/errors';
import { parseArgs, foreignRule } from './cli';
import { parseForwardOption, readEphemeralRange } from './portSpec';
import type { HostFamily, Resolv } from './hostInfo';
import { normalizeDomain } from '../shared/wire/dnsname';

export const DEFAULT_MAC = '9a:55:9a:55:9a:55';
export const DEFAULT_MTU = 65520;
const PATH_MAX = 4096;
const IFNAMSIZ = 16;
const UNIX_PATH_MAX = 108;
/** Longest --hostname / --fqdn text (the original's buffer: 254 with the NUL). */
const DNS_TEXT_MAX = 253;

/** Validated command line. `null` = not given. */
export interface Options {
  mode: Mode;
  help: boolean;
  version: boolean;
  printCapabilities: boolean;
  logLevel: LogLevel | null;
  foreground: boolean;
  logFile: string | null;
  logSize: number;
  runas: string | null;
  /** --no-sandbox: skip self-isolation (isolation.ts). */
  noSandbox: boolean;
  /** --seccomp-log: calls outside the seccomp filter are logged by the kernel, not fatal (isolation.ts). */
  seccompLog: boolean;
  pcap: string | null;
  pidFile: string | null;
  fd: number;
  mtu: number | null;
  addr4: string | null;
  addr6: string | null;
  prefix4: number | null;
  ourMac: string;
  gw4: string | null;
  gw6: string | null;
  ifname: string | null;
  outbound4: string | null;
  outbound6: string | null;
  outboundIf4: string | null;
  outboundIf6: string | null;
  dns: string[] | 'none' | null;
  search: string[] | 'none' | null;
  dnsForward4: string | null;
  dnsForward6: string | null;
  dnsHost4: string | null;
  dnsHost6: string | null;
  advertiseDns: boolean;
  advertiseSearch: boolean;
  noTcp: boolean;
  noUdp: boolean;
  noIcmp: boolean;
  noDhcp: boolean;
  noNdp: boolean;
  noDhcpv6: boolean;
  noRa: boolean;
  freebind: boolean;
  mapHostLoopback4: string | 'none' | null;
  mapHostLoopback6: string | 'none' | null;
  mapGuestAddr4: string | 'none' | null;
  mapGuestAddr6: string | 'none' | null;
  noMapGw: boolean;
  only4: boolean;
  only6: boolean;
  tcpIn: ForwardSpec | null;
  udpIn: ForwardSpec | null;
  tcpOut: ForwardSpec | null;
  udpOut: ForwardSpec | null;
  socketPath: string | null;
  /** --control PATH (absolute), or null. */
  control: string | null;
  oneOff: boolean;
  vhostUser: boolean;
  nsIfname: string | null;
  userns: string | null;
  netns: string | null;
  netnsOnly: boolean;
  noNetnsQuit: boolean;
  configNet: boolean;
  noCopyRoutes: boolean;
  noCopyAddrs: boolean;
  nsMacAddr: string | null;
  noSplice: boolean;
  hostLoToNsLo: boolean;
  hostname: string | null;
  fqdn: string | null;
  /** pasta: target PID, or -1. */
  targetPid: number;
  /** pasta: command to spawn ([] = the user's shell), or null when attaching. */
  command: string[] | null;
  /** Messages to log as warnings once logging is set up. */
  warnings: string[];
}

function fail(msg: string): never {
  throw new PasstError('PASST_ERR_CONF', msg);
}

function parseIp(value: string, what: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const v = value.replace(/^\[(.*)\]$/, '$1');
  if (!ipaddr.isValid(v)) fail(`Invalid ${what}: ${value}`);
  // ipaddr.js accepts some non-canonical IPv4 forms (e.g. "10"): insist on dotted quads
  const a = ipaddr.parse(v);
  if (a.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(v)) fail(`Invalid ${what}: ${value}`);
  return a;
}

/** An address usable as a unicast endpoint (SPEC §12 validation). */
function unicastAddr(value: string, what: string, opts: { noMapped?: boolean } = {}): ipaddr.IPv4 | ipaddr.IPv6 {
  const a = parseIp(value, what);
  const r = a.range();
  if (r === 'unspecified' || r === 'loopback' || r === 'multicast' || r === 'broadcast')
    fail(`Invalid ${what}: ${value}`);
  if (a.kind() === 'ipv6') {
    const b = a.toByteArray();
    const mapped = (a as ipaddr.IPv6).isIPv4MappedAddress();
    const compat = b.slice(0, 12).every((x) => x === 0);
    if (opts.noMapped && (mapped || compat)) fail(`Invalid ${what}: ${value}`);
  }
  return a;
}

function parseIntStrict(value: string, what: string, min: number, max: number): number {
  if (!/^[+-]?(0x[0-9a-f]+|\d+)$/i.test(value.trim())) fail(`Invalid ${what}: ${value}`);
  const n = Number(value.trim());
  if (!Number.isSafeInteger(n) || n < min || n > max) fail(`Invalid ${what}: ${value}`);
  return n;
}

function parseMac(value: string, what: string): string {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(value)) fail(`Invalid ${what}: ${value}`);
  return value.toLowerCase();
}

function parseNetmask(value: string): number {
  if (/^\d{1,2}$/.test(value)) return parseIntStrict(value, 'netmask', 0, 32);
  if (!ipaddr.IPv4.isValidFourPartDecimal(value)) fail(`Invalid netmask: ${value}`);
  const n = ipaddr.IPv4.parse(value).prefixLengthFromSubnetMask();
  if (n === null) fail(`Invalid netmask: ${value}`);
  return n;
}

function ifName(value: string, what: string): string {
  if (!value.length || Buffer.byteLength(value) >= IFNAMSIZ) fail(`Invalid ${what}: ${value}`);
  return value;
}

function pathArg(value: string, what: string, max = PATH_MAX): string {
  if (!value.length || Buffer.byteLength(value) >= max) fail(`Invalid ${what}: ${value}`);
  return value;
}

/**
 * -H/--hostname: at most 253 bytes (the original's PASST_MAXDNAME buffer);
 * an empty name means none, as in the original.
 */
function parseHostname(value: string): string | null {
  if (Buffer.byteLength(value) > DNS_TEXT_MAX) fail(`Invalid hostname: ${value}`);
  return value === '' ? null : value;
}

/**
 * --fqdn: a domain name that encodes (labels of 1–63 bytes, at most 253
 * bytes of text), trailing dots dropped; empty means none.
 */
function parseFqdn(value: string): string | null {
  if (value === '') return null;
  const n = Buffer.byteLength(value) <= DNS_TEXT_MAX ? normalizeDomain(value) : null;
  if (n === null) fail(`Invalid FQDN: ${value}`);
  return n;
}

/** IPv4 classful prefix length for an address given with -a and no -n. */
export function classfulPrefix(a: string): number {
  const first = ipaddr.IPv4.parse(a).octets[0];
  if (first < 128) return 8;
  if (first < 192) return 16;
  if (first < 224) return 24;
  return 32;
}

/**
 * Parses and validates the command line.
 * @throws PasstError (usage or validation) with a one-line message
 */
export function parseOptions(mode: Mode, argv: string[], ephemeral: [number, number] = readEphemeralRange()): Options {
  const { uses, positional } = parseArgs(mode, argv);
  const o: Options = {
    mode, help: false, version: false, printCapabilities: false, logLevel: null,
    foreground: false, logFile: null, logSize: 1024 * 1024, runas: null, noSandbox: false, seccompLog: false, pcap: null, pidFile: null, fd: -1,
    mtu: null, addr4: null, addr6: null, prefix4: null, ourMac: DEFAULT_MAC, gw4: null, gw6: null, ifname: null,
    outbound4: null, outbound6: null, outboundIf4: null, outboundIf6: null, dns: null, search: null,
    dnsForward4: null, dnsForward6: null, dnsHost4: null, dnsHost6: null,
    advertiseDns: mode === 'passt', advertiseSearch: mode === 'passt',
    noTcp: false, noUdp: false, noIcmp: false, noDhcp: false, noNdp: false, noDhcpv6: false, noRa: false,
    freebind: false, mapHostLoopback4: null, mapHostLoopback6: null, mapGuestAddr4: null, mapGuestAddr6: null,
    noMapGw: false, only4: false, only6: false, tcpIn: null, udpIn: null, tcpOut: null, udpOut: null,
    socketPath: null, control: null, oneOff: false, vhostUser: false, nsIfname: null, userns: null, netns: null,
    netnsOnly: false, noNetnsQuit: false, configNet: false, noCopyRoutes: false, noCopyAddrs: false,
    nsMacAddr: null, noSplice: false, hostLoToNsLo: false, hostname: null, fqdn: null,
    targetPid: -1, command: null, warnings: [],
  };
  let addrCount4 = 0;
  let addrCount6 = 0;

  for (const u of uses) {
    const rule = foreignRule(mode, u.name);
    if (rule === 'refuse') fail(`--${u.name} is for ${mode === 'pasta' ? 'passt' : 'pasta'} mode only`);
    if (rule === 'ignore') {
      // pasta ignores passt's --socket; passt ignores pasta's -I/-T/-U long forms (but not "auto")
      if ((u.name === 'tcp-ns' || u.name === 'udp-ns') && u.value === 'auto')
        fail(`'auto' port forwarding is only allowed for pasta`);
      continue;
    }
    const v = u.value === true ? '' : u.value;
    switch (u.name) {
      case 'debug': o.logLevel = 'debug'; break;
      case 'trace': o.logLevel = 'trace'; break;
      case 'quiet': o.logLevel = 'warning'; break;
      case 'foreground': o.foreground = true; break;
      case 'stderr': o.warnings.push('--stderr will be dropped soon'); break;
      case 'log-file': o.logFile = pathArg(v, 'log file path'); break;
      case 'log-size': o.logSize = parseIntStrict(v, 'log file size', 40960, Number.MAX_SAFE_INTEGER); break;
      case 'runas':
        if (!/^[^:\s]+(:[^:\s]+)?$/.test(v)) fail(`Invalid --runas value: ${v}`);
        o.runas = v;
        break;
      case 'no-sandbox': o.noSandbox = true; break;
      case 'seccomp-log': o.seccompLog = true; break;
      case 'help': o.help = true; break;
      case 'version': o.version = true; break;
      case 'pcap': o.pcap = pathArg(v, 'pcap path'); break;
      case 'pid': o.pidFile = pathArg(v, 'PID file path'); break;
      case 'fd': o.fd = parseIntStrict(v, 'file descriptor', 3, 0x7fffffff); break;
      case 'mtu': o.mtu = parseIntStrict(v, 'MTU', 0, 65535); if (o.mtu && o.mtu < 68) fail(`Invalid MTU: ${v}`); break;
      case 'address': {
        const a = unicastAddr(v, 'address', { noMapped: true });
        if (a.kind() === 'ipv4') {
          if (++addrCount4 > 1) fail('Multiple IPv4 addresses given');
          o.addr4 = a.toString();
        } else {
          if (++addrCount6 > 1) fail('Multiple IPv6 addresses given');
          o.addr6 = a.toString();
        }
        break;
      }
      case 'netmask': o.prefix4 = parseNetmask(v); break;
      case 'mac-addr': o.ourMac = parseMac(v, 'MAC address'); break;
      case 'gateway': {
        const a = unicastAddr(v, 'gateway address');
        if (a.kind() === 'ipv4') o.gw4 = a.toString(); else o.gw6 = a.toString();
        break;
      }
      case 'interface': o.ifname = ifName(v, 'interface name'); break;
      case 'outbound': {
        const a = unicastAddr(v, 'outbound address', { noMapped: true });
        if (a.kind() === 'ipv4') o.outbound4 = a.toString(); else o.outbound6 = a.toString();
        break;
      }
      case 'outbound-if4': o.outboundIf4 = ifName(v, 'outbound interface name'); break;
      case 'outbound-if6': o.outboundIf6 = ifName(v, 'outbound interface name'); break;
      case 'dns':
        if (v === 'none') o.dns = 'none';
        else {
          const a = parseIp(v, 'DNS address');
          if (a.range() === 'unspecified') fail(`Invalid DNS address: ${v}`);
          o.dns = (Array.isArray(o.dns) ? o.dns : []).concat(a.toString());
        }
        break;
      case 'search':
        if (v === 'none') o.search = 'none';
        else {
          const doms = v.split(/\s+/).filter(Boolean);
          for (const d of doms) if (d.length > 253 || !/^[A-Za-z0-9_.-]+$/.test(d)) fail(`Invalid search domain: ${d}`);
          o.search = (Array.isArray(o.search) ? o.search : []).concat(doms);
          if (o.search.length > 6) fail('Too many search domains');
        }
        break;
      case 'dns-forward': {
        const a = parseIp(v, '--dns-forward address');
        const r = a.range();
        if (r === 'unspecified' || r === 'loopback' || r === 'broadcast') fail(`Invalid --dns-forward address: ${v}`);
        if (a.kind() === 'ipv4') o.dnsForward4 = a.toString(); else o.dnsForward6 = a.toString();
        break;
      }
      case 'dns-host': {
        const a = parseIp(v, '--dns-host address');
        if (a.range() === 'unspecified') fail(`Invalid --dns-host address: ${v}`);
        if (a.kind() === 'ipv4') o.dnsHost4 = a.toString(); else o.dnsHost6 = a.toString();
        break;
      }
      case 'no-dhcp-dns': o.advertiseDns = false; break;
      case 'no-dhcp-search': o.advertiseSearch = false; break;
      case 'dhcp-dns': o.advertiseDns = true; break;
      case 'dhcp-search': o.advertiseSearch = true; break;
      case 'hostname': o.hostname = parseHostname(v); break;
      case 'fqdn': o.fqdn = parseFqdn(v); break;
      case 'no-tcp': o.noTcp = true; break;
      case 'no-udp': o.noUdp = true; break;
      case 'no-icmp': o.noIcmp = true; break;
      case 'no-dhcp': o.noDhcp = true; break;
      case 'no-ndp': o.noNdp = true; break;
      case 'no-dhcpv6': o.noDhcpv6 = true; break;
      case 'no-ra': o.noRa = true; break;
      case 'freebind': o.freebind = true; break;
      case 'map-host-loopback':
      case 'map-guest-addr': {
        const key = u.name === 'map-host-loopback' ? 'mapHostLoopback' : 'mapGuestAddr';
        if (v === 'none') {
          o[`${key}4`] = 'none';
          o[`${key}6`] = 'none';
          break;
        }
        const a = parseIp(v, `--${u.name} address`);
        const r = a.range();
        if (r === 'unspecified' || r === 'loopback' || r === 'multicast') fail(`Invalid --${u.name} address: ${v}`);
        if (a.kind() === 'ipv4') o[`${key}4`] = a.toString(); else o[`${key}6`] = a.toString();
        break;
      }
      case 'no-map-gw': o.noMapGw = true; break;
      case 'ipv4-only': o.only4 = true; o.only6 = false; break;
      case 'ipv6-only': o.only6 = true; o.only4 = false; break;
      case 'tcp-ports':
      case 'udp-ports':
      case 'tcp-ns':
      case 'udp-ns': {
        const flag = ({ 'tcp-ports': '-t', 'udp-ports': '-u', 'tcp-ns': '-T', 'udp-ns': '-U' } as const)[u.name];
        const key = ({ 'tcp-ports': 'tcpIn', 'udp-ports': 'udpIn', 'tcp-ns': 'tcpOut', 'udp-ns': 'udpOut' } as const)[u.name];
        const r = parseForwardOption(o[key] ?? undefined, flag, v, mode, ephemeral);
        o[key] = r.spec;
        o.warnings.push(...r.warnings);
        break;
      }
      case 'print-capabilities': o.printCapabilities = true; break;
      case 'socket': o.socketPath = pathArg(v, 'socket path', UNIX_PATH_MAX); break;
      case 'control': o.control = pathArg(resolvePath(pathArg(v, 'control socket path')), 'control socket path', UNIX_PATH_MAX); break;
      case 'one-off': o.oneOff = true; break;
      case 'vhost-user': o.vhostUser = true; break;
      case 'ns-ifname': o.nsIfname = ifName(v, 'namespace interface name'); break;
      case 'userns': o.userns = pathArg(v, 'user namespace path'); break;
      case 'netns': o.netns = pathArg(v, 'network namespace path'); break;
      case 'netns-only': o.netnsOnly = true; break;
      case 'no-netns-quit': o.noNetnsQuit = true; break;
      case 'config-net': o.configNet = true; break;
      case 'no-copy-routes': o.noCopyRoutes = true; o.warnings.push('--no-copy-routes will be dropped soon'); break;
      case 'no-copy-addrs': o.noCopyAddrs = true; o.warnings.push('--no-copy-addrs will be dropped soon'); break;
      case 'ns-mac-addr': o.nsMacAddr = parseMac(v, 'namespace MAC address'); break;
      case 'no-splice': o.noSplice = true; break;
      case 'host-lo-to-ns-lo': o.hostLoToNsLo = true; break;
      default:
        fail(`Unhandled option --${u.name}`);
    }
  }

  if (o.help || o.version || o.printCapabilities) return o;

  if (o.noTcp && (o.tcpIn?.mode === 'spec' || o.tcpOut?.mode === 'spec')) fail('TCP port forwarding requested but TCP is disabled');
  if (o.noUdp && (o.udpIn?.mode === 'spec' || o.udpOut?.mode === 'spec')) fail('UDP port forwarding requested but UDP is disabled');
  if ((o.noCopyRoutes || o.noCopyAddrs) && !o.configNet) o.warnings.push('--no-copy-routes/--no-copy-addrs need --config-net');

  if (mode === 'passt') {
    if (positional.length) fail(`Extra non-option argument: ${positional[0]}`);
    if (o.fd >= 0) o.oneOff = true;
    return o;
  }

  // pasta: what to connect (SPEC §9.1)
  if (o.netns !== null) {
    if (positional.length) fail('Both --netns and PID or command given');
    if (!o.netns.includes('/')) o.netns = resolveNetnsName(o.netns);
    if (o.userns === null) o.netnsOnly = true;
  } else if (positional.length === 1 && /^\d+$/.test(positional[0])) {
    const pid = Number(positional[0]);
    if (!Number.isSafeInteger(pid) || pid < 1 || pid > 0x3fffffff) fail(`Invalid PID: ${positional[0]}`);
    o.targetPid = pid;
  } else {
    o.command = positional;
  }
  if (o.command !== null) {
    // spawning: always foreground, quiet unless debugging was asked for
    o.foreground = true;
    if (o.logLevel === null) o.logLevel = 'warning';
    if (o.userns !== null) fail('--userns needs a PID or --netns');
  }
  return o;
}

/** Runtime netns directories where a bare --netns NAME is looked up. */
export function netnsDirs(): string[] {
  const dirs = ['/run/netns'];
  if (process.env.XDG_RUNTIME_DIR) dirs.push(`${process.env.XDG_RUNTIME_DIR}/netns`);
  return dirs;
}

function resolveNetnsName(name: string): string {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const fs = require('node:fs') as typeof import('node:fs');
  for (const d of netnsDirs()) if (fs.existsSync(`${d}/${name}`)) return `${d}/${name}`;
  return `/run/netns/${name}`;
}

function bytesToIp(b: Uint8Array | null): string | null {
  if (!b) return null;
  return ipaddr.fromByteArray(Array.from(b)).toString();
}

function isLinkLocal6(a: string | null): boolean {
  return a !== null && ipaddr.IPv6.parse(a).range() === 'linkLocal';
}

export interface HostState {
  tmpl4: HostFamily | null;
  tmpl6: HostFamily | null;
  resolv: Resolv;
}

/** Applies the addressing model (SPEC §2) to validated options and the host's state. */
export function resolveConfig(o: Options, host: HostState, env: NodeJS.ProcessEnv = process.env): Config {
  const warnings = o.warnings;
  const want4 = !o.only6;
  const want6 = !o.only4;
  const t4 = want4 ? host.tmpl4 : null;
  const t6 = want6 ? host.tmpl6 : null;

  // IPv4
  let addr4 = o.addr4 ?? bytesToIp(t4?.addr ?? null);
  let prefix4 = o.prefix4 ?? (o.addr4 ? classfulPrefix(o.addr4) : t4?.prefixLen ?? 0);
  let gw4 = o.gw4 ?? bytesToIp(t4?.gateway ?? null);
  let en4 = want4 && addr4 !== null && (t4 !== null || o.addr4 !== null);

  // IPv6: needs a global address and a link-local one
  const addr6 = o.addr6 ?? bytesToIp(t6?.addr ?? null);
  let gw6 = o.gw6 ?? bytesToIp(t6?.gateway ?? null);
  const ll6 = bytesToIp(t6?.linkLocal ?? null);
  let en6 = want6 && addr6 !== null && ll6 !== null;
  let ourLL = gw6 && isLinkLocal6(gw6) ? gw6 : ll6 ?? 'fe80::1';
  let addr6Final = addr6;

  // a given outbound interface must end up usable (SPEC §2.1)
  if ((o.outboundIf4 && want4 && !en4) || (o.outboundIf6 && want6 && !en6))
    throw new PasstError('PASST_ERR_NO_ROUTE', 'External interface not usable');
  // Local mode (SPEC §2.3): no *usable* template for either family. A host
  // interface that has the routes but not the addresses (a link up before
  // its DHCP lease, a default route on an unnumbered device) is no template:
  // it disables its family (§2.2) just as a missing one does.
  const localMode = !en4 && !en6 && !o.addr4 && !o.addr6;
  // the tap is named after a template only if that family uses it (§9.5)
  const templateIf4 = en4 && !localMode ? t4?.ifname ?? null : null;
  const templateIf6 = en6 && !localMode ? t6?.ifname ?? null : null;
  if (localMode) {
    if (want4) {
      addr4 = '169.254.2.1';
      prefix4 = 16;
      gw4 = o.gw4 ?? '169.254.2.2';
      en4 = true;
    }
    if (want6) {
      addr6Final = null;
      gw6 = o.gw6 ?? 'fe80::1';
      ourLL = 'fe80::1';
      en6 = true;
    }
  }
  if (!en4 && !en6) {
    throw new PasstError('PASST_ERR_NO_ROUTE', 'No routable interface for IPv4 or IPv6');
  }

  const mapLo = (given: string | 'none' | null, gw: string | null): string | null => {
    if (given === 'none') return null;
    if (given) return given;
    return o.noMapGw ? null : gw;
  };
  const mhl4 = en4 ? mapLo(o.mapHostLoopback4, gw4) : null;
  const mhl6 = en6 ? mapLo(o.mapHostLoopback6, gw6) : null;
  const mga4 = o.mapGuestAddr4 === 'none' ? null : o.mapGuestAddr4;
  const mga6 = o.mapGuestAddr6 === 'none' ? null : o.mapGuestAddr6;

  // DNS (SPEC §2.9)
  const dns4: string[] = [];
  const dns6: string[] = [];
  let match4: string | null = o.dnsForward4;
  let match6: string | null = o.dnsForward6;
  let host4: string | null = o.dnsHost4 ?? host.resolv.nameservers4[0] ?? null;
  let host6: string | null = o.dnsHost6 ?? host.resolv.nameservers6[0] ?? null;
  if (o.dns === 'none') {
    match4 = match6 = host4 = host6 = null;
  } else if (Array.isArray(o.dns)) {
    for (const d of o.dns) (d.includes(':') ? dns6 : dns4).push(d);
  } else {
    const add = (list: string[], ns: string[], mhl: string | null, isV4: boolean) => {
      for (const n of ns.slice(0, 3)) {
        const loop = ipaddr.parse(n).range() === 'loopback';
        if (!loop) { if (!list.includes(n)) list.push(n); continue; }
        if (!mhl) continue;
        if (!list.includes(mhl)) list.push(mhl);
        if (isV4 && !o.dnsForward4) match4 = mhl;
        if (!isV4 && !o.dnsForward6) match6 = mhl;
      }
    };
    if (en4) add(dns4, host.resolv.nameservers4, mhl4, true);
    if (en6) add(dns6, host.resolv.nameservers6, mhl6, false);
  }
  const search = o.search === 'none' ? [] : Array.isArray(o.search) ? o.search : host.resolv.search.slice(0, 5);
  if (o.dns !== 'none' && !dns4.length && !dns6.length && (o.advertiseDns || o.mode === 'passt'))
    warnings.push("Couldn't get any nameserver address");

  const mtu = o.mtu ?? DEFAULT_MTU;
  const defSpec = (): ForwardSpec => ({ mode: o.mode === 'pasta' ? 'auto' : 'none', rules: [] });

  const cfg: Config = {
    mode: o.mode,
    name: o.mode,
    logLevel: o.logLevel ?? 'info',
    foreground: o.foreground,
    logFile: o.logFile,
    logSize: o.logSize,
    runas: o.runas,
    noSandbox: o.noSandbox,
    // the variable is for callers whose command line can't change (podman, rootlesskit)
    seccompLog: o.seccompLog || process.env.PASST_TS_SECCOMP_LOG === '1',
    pcap: o.pcap,
    pidFile: o.pidFile,
    fd: o.fd,
    mtu,
    ourMac: o.ourMac,
    templateIf4,
    templateIf6,
    ifnameGiven: o.ifname,
    localMode,
    ip4: {
      enabled: en4, addr: en4 ? addr4 : null, prefixLen: prefix4, gateway: en4 ? gw4 : null,
      dns: dns4, dnsMatch: en4 ? match4 : null, dnsHost: en4 ? host4 : null,
      mapHostLoopback: mhl4, mapGuestAddr: en4 ? mga4 : null,
      outbound: o.outbound4, outboundIf: o.outboundIf4,
      addrGiven: o.addr4 !== null || localMode, gatewayGiven: o.gw4 !== null || localMode,
    },
    ip6: {
      enabled: en6, addr: en6 ? addr6Final : null, prefixLen: 64, gateway: en6 ? gw6 : null,
      ourLinkLocal: ourLL,
      dns: dns6, dnsMatch: en6 ? match6 : null, dnsHost: en6 ? host6 : null,
      mapHostLoopback: mhl6, mapGuestAddr: en6 ? mga6 : null,
      outbound: o.outbound6, outboundIf: o.outboundIf6,
      addrGiven: o.addr6 !== null || localMode, gatewayGiven: o.gw6 !== null || localMode,
    },
    searchDomains: search,
    hostname: o.hostname,
    fqdn: o.fqdn,
    advertiseDns: o.advertiseDns,
    advertiseSearch: o.advertiseSearch,
    noTcp: o.noTcp,
    noUdp: o.noUdp,
    noIcmp: o.noIcmp,
    noDhcp: o.noDhcp || !en4 || !gw4,
    noNdp: o.noNdp || o.noIcmp,
    noDhcpv6: o.noDhcpv6 || !en6 || !addr6Final,
    noRa: o.noRa || o.configNet || o.noNdp || o.noIcmp,
    freebind: o.freebind,
    tcpIn: o.noTcp ? { mode: 'none', rules: [] } : o.tcpIn ?? defSpec(),
    udpIn: o.noUdp ? { mode: 'none', rules: [] } : o.udpIn ?? defSpec(),
    tcpOut: o.mode === 'passt' || o.noTcp ? { mode: 'none', rules: [] } : o.tcpOut ?? defSpec(),
    udpOut: o.mode === 'passt' || o.noUdp ? { mode: 'none', rules: [] } : o.udpOut ?? defSpec(),
    socketPath: o.socketPath,
    control: o.control,
    oneOff: o.oneOff,
    vhostUser: o.vhostUser,
    nsIfname: o.nsIfname ?? templateIf4 ?? templateIf6 ?? 'tap0',
    nsMacAddr: o.nsMacAddr,
    netns: o.netns,
    userns: o.userns,
    netnsOnly: o.netnsOnly,
    noNetnsQuit: o.noNetnsQuit,
    configNet: o.configNet,
    noCopyRoutes: o.noCopyRoutes,
    noCopyAddrs: o.noCopyAddrs,
    noSplice: o.noSplice,
    hostLoToNsLo: o.hostLoToNsLo,
    targetPid: o.targetPid,
    command: o.command,
    tuning: tuningFor(o.mode, env, warnings),
  };
  return cfg;
}

// ------------------------------------------------------------------ tuning

/**
 * Placement and switches for a mode: one default each (perf/README.md
 * "Design experiments"), then the environment overrides of the README,
 * read here once. A value that does not parse is ignored with a warning.
 */
export function tuningFor(mode: Mode, env: NodeJS.ProcessEnv, warnings: string[] = []): Tuning {
  const passt = mode === 'passt';
  const flag = (k: string): boolean | undefined => {
    const v = env[k];
    if (v === undefined || v === '') return undefined;
    if (v === '0' || v === '1') return v === '1';
    warnings.push(`ignoring ${k}=${v}: not 0 or 1`);
    return undefined;
  };
  const num = (k: string, min: number, max: number): number | undefined => {
    const v = env[k];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (Number.isInteger(n) && n >= min && n <= max) return n;
    warnings.push(`ignoring ${k}=${v}: not an integer in ${min}..${max}`);
    return undefined;
  };
  const every = (spec: string, key: string): number => {
    const m = new RegExp(`(?:^|,)${key}=(\\d+)(?:,|$)`).exec(spec);
    return m ? Number(m[1]) : 0;
  };
  const drop = env.PASST_TS_TCP_DROP ?? '';
  if (drop !== '' && !/^(?:(?:to|from)=\d+)(?:,(?:to|from)=\d+)?$/.test(drop))
    warnings.push(`ignoring parts of PASST_TS_TCP_DROP=${drop}: expected "to=N,from=M"`);
  // direct writes: on where measured faster (both L4 workers in passt, the
  // UDP worker in pasta); PASST_TS_DIRECT_TX=0 turns them all off
  const direct = flag('PASST_TS_DIRECT_TX') ?? true;
  return {
    inlineRx: flag('PASST_TS_INLINE_RX') ?? passt,
    directTx: { tcp: direct && passt, udp: direct },
    spinUs: num('PASST_TS_SPIN_US', 0, 1_000_000) ?? 100,
    offload: flag('PASST_TS_OFFLOAD') ?? true,
    ringDebug: flag('PASST_RING_DEBUG') ?? false,
    tcpDrop: { toGuest: every(drop, 'to'), fromGuest: every(drop, 'from') },
    udpTimeoutMs: num('PASST_TS_UDP_TIMEOUT_MS', 1, UDP_TIMEOUT_MS) ?? UDP_TIMEOUT_MS,
    pingTimeoutMs: num('PASST_TS_PING_TIMEOUT_MS', 1, PING_TIMEOUT_MS) ?? PING_TIMEOUT_MS,
    udpBatch: num('PASST_TS_UDP_BATCH', 1, UDP_BATCH_MAX) ?? UDP_BATCH,
    flowMax: num('PASST_TS_FLOW_MAX', 1, FLOW_MAX) ?? FLOW_MAX,
    memory: {
      v8PoolSize: num('PASST_TS_V8_POOL_SIZE', 0, 64) ?? V8_POOL_SIZE,
      semiSpaceMb: num('PASST_TS_SEMI_SPACE_MB', 0, 64) ?? SEMI_SPACE_MB,
      compactAfterStart: flag('PASST_TS_COMPACT_AFTER_START') ?? true,
      lazyUdp: flag('PASST_TS_LAZY_UDP') ?? true,
      trimAfterStart: flag('PASST_TS_MALLOC_TRIM') ?? true,
    },
  };
}

/**
 * Memory defaults (perf/README.md "Memory per instance"): one V8 platform
 * thread instead of four, and semi-spaces of V8's smallest size (1 MiB; the
 * data path allocates little, so the scavenges this adds are rare and
 * short), and start-up's garbage compacted away once.
 */
const V8_POOL_SIZE = 1;
const SEMI_SPACE_MB = 1;

/**
 * Node's command-line flags for a process this one launches (the daemon,
 * the re-execution into a user namespace): its own, with the memory
 * tuning's process-wide V8 settings in place of any given.
 */
export function nodeFlags(m: MemoryTuning, execArgv: readonly string[] = process.execArgv): string[] {
  const ours = /^--(?:v8[-_]pool[-_]size|max[-_]semi[-_]space[-_]size)(=|$)/;
  const own: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const m2 = ours.exec(execArgv[i]);
    if (!m2) own.push(execArgv[i]);
    else if (m2[1] === '') i++; // "--flag VALUE"
  }
  if (m.v8PoolSize > 0) own.push(`--v8-pool-size=${m.v8PoolSize}`);
  if (m.semiSpaceMb > 0) own.push(`--max-semi-space-size=${m.semiSpaceMb}`);
  return own;
}

/** Node's flags for a re-launch of this program in `mode` (the daemon, a re-execution into a user namespace). */
export function relaunchNodeFlags(mode: Mode): string[] {
  return nodeFlags(tuningFor(mode, process.env).memory);
}

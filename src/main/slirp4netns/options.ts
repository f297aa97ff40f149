/**
 * slirp4netns-ts: the slirp4netns 1.x command line, and its mapping onto
 * pasta's options.
 *
 * Theory of operation
 * - parseSlirpArgs() reads argv the way slirp4netns 1.2 does (glibc
 *   getopt_long: options and operands in any order, `--opt=value` and
 *   `--opt value`, grouped short flags, unique prefixes of long options,
 *   `--` ends options) and validates every value with slirp4netns' own
 *   messages. It is pure except for the existence checks slirp4netns makes
 *   too (--netns-type=path target, --userns-path) and the interface lookup
 *   of --outbound-addr=INTERFACE.
 * - slirpAddressing() derives slirp4netns' fixed addressing from --cidr:
 *   network + 2 is the gateway and the host, + 3 the DNS forwarder, + 100
 *   the address --configure assigns; IPv6 is fd00::/64 with ::2, ::3, ::100.
 * - toPastaArgv() turns the result into a pasta command line: attach mode
 *   (PID, or --netns PATH [--userns PATH]), the tap named TAPNAME, the
 *   addressing above (--address/--netmask/--gateway, --dns and
 *   --dns-forward for the DNS address), --config-net for --configure,
 *   --no-map-gw for --disable-host-loopback, IPv4 only unless -6, no
 *   automatic port forwarding (ports come through the API socket), always
 *   in the foreground and never quitting on its own when the namespace goes
 *   away (slirp4netns ends on --exit-fd or a signal only), and passt-ts'
 *   --control socket when asked for (an extension). What pasta has no
 *   option for (--ready-fd, --exit-fd, --api-socket) stays in SlirpOptions
 *   for run.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ipaddr from 'ipaddr.js';
import { PasstError } from '../../shared/errors';

/** A command-line error: message for stderr (may be empty), and whether the usage text follows. */
export class SlirpUsageError extends PasstError {
  constructor(message: string, readonly showUsage: boolean) {
    super(showUsage ? 'PASST_ERR_USAGE' : 'PASST_ERR_CONF', message);
    this.name = 'SlirpUsageError';
  }
}

export interface SlirpOptions {
  help: boolean;
  version: boolean;
  configure: boolean;
  exitFd: number;
  readyFd: number;
  mtu: number;
  enableIpv6: boolean;
  apiSocket: string | null;
  /** Network address and prefix length of --cidr. */
  cidr: { network: string; prefix: number };
  disableHostLoopback: boolean;
  netnsType: 'pid' | 'path';
  usernsPath: string | null;
  enableSandbox: boolean;
  enableSeccomp: boolean;
  /** --outbound-addr as an IPv4 address (an interface name is resolved to its address). */
  outboundAddr: string | null;
  outboundAddr6: string | null;
  disableDns: boolean;
  macAddress: string | null;
  /** PID (netns-type pid) or namespace path. */
  target: string;
  tapName: string;
  /**
   * passt-ts' control socket (--control=PATH, or SLIRP4NETNS_TS_CONTROL for
   * callers that build the slirp4netns command line themselves), or null.
   */
  control: string | null;
  /** Non-fatal messages slirp4netns prints on stderr while parsing. */
  warnings: string[];
}

/** The addresses of the virtual network, as slirp4netns lays it out. */
export interface SlirpAddressing {
  network: string;
  prefix: number;
  netmask: string;
  gateway: string;
  dns: string;
  guest: string;
  network6: string;
  gateway6: string;
  dns6: string;
  guest6: string;
}

interface LongOpt {
  name: string;
  arg: boolean;
  short?: string;
}

const LONG_OPTS: LongOpt[] = [
  { name: 'configure', arg: false, short: 'c' },
  { name: 'exit-fd', arg: true, short: 'e' },
  { name: 'ready-fd', arg: true, short: 'r' },
  { name: 'mtu', arg: true, short: 'm' },
  { name: 'cidr', arg: true },
  { name: 'disable-host-loopback', arg: false },
  { name: 'netns-type', arg: true },
  { name: 'userns-path', arg: true },
  { name: 'api-socket', arg: true, short: 'a' },
  { name: 'enable-ipv6', arg: false, short: '6' },
  { name: 'enable-sandbox', arg: false },
  { name: 'enable-seccomp', arg: false },
  { name: 'outbound-addr', arg: true },
  { name: 'outbound-addr6', arg: true },
  { name: 'disable-dns', arg: false },
  { name: 'macaddress', arg: true },
  { name: 'target-type', arg: true },
  { name: 'control', arg: true },
  { name: 'help', arg: false, short: 'h' },
  { name: 'version', arg: false, short: 'v' },
];

const SHORT_OPTS = new Map(LONG_OPTS.filter((o) => o.short).map((o) => [o.short as string, o]));

export const DEFAULT_MTU = 1500;
/** slirp4netns' maximum MTU. */
export const MAX_MTU = 65521;
/** The IPv4 minimum (RFC 791): smaller MTUs are refused, where slirp4netns would start. */
export const MIN_MTU = 68;
/** pasta's largest MTU: slirp4netns' 65521 is brought down to it. */
const PASTA_MAX_MTU = 65520;
const UNIX_PATH_MAX = 108;

/** One option occurrence, in command-line order. */
interface Use {
  name: string;
  value: string | null;
}

/** getopt_long-style scan: options anywhere, operands collected in order. */
function scan(prog: string, argv: string[]): { uses: Use[]; operands: string[] } {
  const uses: Use[] = [];
  const operands: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const given = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      const exact = LONG_OPTS.find((o) => o.name === given);
      const prefixed = exact ? [exact] : LONG_OPTS.filter((o) => o.name.startsWith(given));
      if (prefixed.length === 0) throw new SlirpUsageError(`${prog}: unrecognized option '--${given}'`, true);
      if (prefixed.length > 1) {
        throw new SlirpUsageError(`${prog}: option '--${given}' is ambiguous; possibilities:` +
          prefixed.map((o) => ` '--${o.name}'`).join(''), true);
      }
      const opt = prefixed[0];
      if (!opt.arg) {
        if (eq >= 0) throw new SlirpUsageError(`${prog}: option '--${opt.name}' doesn't allow an argument`, true);
        uses.push({ name: opt.name, value: null });
      } else if (eq >= 0) {
        uses.push({ name: opt.name, value: a.slice(eq + 1) });
      } else {
        if (i + 1 >= argv.length) throw new SlirpUsageError(`${prog}: option '--${opt.name}' requires an argument`, true);
        uses.push({ name: opt.name, value: argv[++i] });
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const opt = SHORT_OPTS.get(a[j]);
        if (!opt) throw new SlirpUsageError(`${prog}: invalid option -- '${a[j]}'`, true);
        if (!opt.arg) {
          uses.push({ name: opt.name, value: null });
          continue;
        }
        if (j + 1 < a.length) uses.push({ name: opt.name, value: a.slice(j + 1) });
        else if (i + 1 < argv.length) uses.push({ name: opt.name, value: argv[++i] });
        else throw new SlirpUsageError(`${prog}: option requires an argument -- '${a[j]}'`, true);
        break;
      }
      continue;
    }
    operands.push(a);
  }
  return { uses, operands };
}

/** strtol(value, NULL, 10) with slirp4netns' checks: a whole decimal number or null. */
function decimal(value: string): number | null {
  if (!/^\s*[+-]?\d+$/.test(value)) return null;
  const n = Number(value.trim());
  return Number.isSafeInteger(n) ? n : null;
}

/** inet_pton(AF_INET) rules: four decimal parts 0-255, no leading zeros. */
export function isIpv4(s: string): boolean {
  return /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(s);
}

function isIpv6(s: string): boolean {
  return s.includes(':') && ipaddr.IPv6.isValid(s) && !s.includes('%');
}

function parseCidr(value: string): { network: string; prefix: number } {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(value);
  if (!m || !isIpv4(m[1])) throw new SlirpUsageError(`invalid CIDR: ${value}`, false);
  const prefix = Number(m[2]);
  if (prefix < 1 || prefix > 25) throw new SlirpUsageError('prefix length needs to be 1-25', false);
  const net = ipaddr.IPv4.networkAddressFromCIDR(value).toString();
  if (net !== m[1]) {
    throw new SlirpUsageError(`CIDR needs to be a network address like 10.0.2.0/24, not like ${value}`, false);
  }
  // the gateway, DNS and guest addresses must be usable unicast ones (slirp4netns does not check)
  for (const n of [2, 3, 100]) {
    const r = ipaddr.IPv4.parse(offset4(net, n)).range();
    if (r === 'unspecified' || r === 'loopback' || r === 'multicast' || r === 'broadcast') {
      throw new SlirpUsageError(`invalid CIDR: ${value} (${offset4(net, n)} is not a unicast address)`, false);
    }
  }
  return { network: net, prefix };
}

/** An address pasta accepts as outbound source: unicast, not loopback (pasta's --outbound rules). */
function outboundUsable(a: string): boolean {
  if (!ipaddr.isValid(a)) return false;
  const ip = ipaddr.parse(a);
  if (['unspecified', 'loopback', 'multicast', 'broadcast'].includes(ip.range())) return false;
  return ip.kind() === 'ipv4' || !ip.toByteArray().slice(0, 10).every((x) => x === 0);
}

/** The first usable address of the given family on a local interface, or null. */
function interfaceAddress(name: string, family: 'IPv4' | 'IPv6'): string | null {
  const addrs = os.networkInterfaces()[name];
  if (!addrs) return null;
  return addrs.find((a) => a.family === family && outboundUsable(a.address))?.address ?? null;
}

/**
 * Parses and validates a slirp4netns command line.
 * @param prog program name for getopt-style messages
 * @param env where SLIRP4NETNS_TS_CONTROL is looked up
 * @throws SlirpUsageError
 */
export function parseSlirpArgs(prog: string, argv: string[], env: NodeJS.ProcessEnv = process.env): SlirpOptions {
  const { uses, operands } = scan(prog, argv);
  const o: SlirpOptions = {
    help: false, version: false, configure: false, exitFd: -1, readyFd: -1, mtu: DEFAULT_MTU, enableIpv6: false,
    apiSocket: null, cidr: { network: '10.0.2.0', prefix: 24 }, disableHostLoopback: false, netnsType: 'pid',
    usernsPath: null, enableSandbox: false, enableSeccomp: false, outboundAddr: null, outboundAddr6: null,
    disableDns: false, macAddress: null, control: null, target: '', tapName: '', warnings: [],
  };
  let targetType = 'netns';
  let outbound: string | null = null;
  let outbound6: string | null = null;
  for (const u of uses) {
    const v = u.value ?? '';
    switch (u.name) {
      case 'configure': o.configure = true; break;
      case 'exit-fd':
      case 'ready-fd': {
        const n = decimal(v);
        if (n === null || n < 0 || n > 0x7fffffff) throw new SlirpUsageError(`${u.name} must be a non-negative integer`, true);
        if (u.name === 'exit-fd') o.exitFd = n; else o.readyFd = n;
        break;
      }
      case 'mtu': {
        const n = decimal(v);
        if (n === null || n <= 0 || n > MAX_MTU) throw new SlirpUsageError(`MTU must be a positive integer (< ${MAX_MTU + 1})`, true);
        // slirp4netns takes any; pasta's engine needs room for an IPv4 header and options
        if (n < MIN_MTU) throw new SlirpUsageError(`MTU must be at least ${MIN_MTU} (the IPv4 minimum)`, true);
        o.mtu = n;
        break;
      }
      case 'cidr': o.cidr = parseCidr(v); break;
      case 'disable-host-loopback': o.disableHostLoopback = true; break;
      case 'netns-type': o.netnsType = v === 'pid' ? 'pid' : 'path'; break;
      case 'userns-path': o.usernsPath = v; break;
      case 'api-socket': o.apiSocket = v; break;
      case 'enable-ipv6': o.enableIpv6 = true; break;
      case 'enable-sandbox': o.enableSandbox = true; break;
      case 'enable-seccomp': o.enableSeccomp = true; break;
      case 'outbound-addr': outbound = v; break;
      case 'outbound-addr6': outbound6 = v; break;
      case 'disable-dns': o.disableDns = true; break;
      case 'macaddress': o.macAddress = v; break;
      case 'target-type': targetType = v; break;
      case 'control': o.control = v; break;
      case 'help': o.help = true; break;
      case 'version': o.version = true; break;
    }
  }
  if (o.help || o.version) return o;
  if (o.control === null && env.SLIRP4NETNS_TS_CONTROL) o.control = env.SLIRP4NETNS_TS_CONTROL;
  if (o.control !== null && (o.control === '' || Buffer.byteLength(o.control) >= UNIX_PATH_MAX)) {
    throw new SlirpUsageError(`the specified control socket path is empty or too long (>= ${UNIX_PATH_MAX})`, false);
  }

  if (targetType !== 'netns' && targetType !== 'bess') {
    throw new SlirpUsageError('--target-type must be either "netns" or "bess"', true);
  }
  if (targetType === 'bess') throw new SlirpUsageError('--target-type=bess is not supported by slirp4netns-ts', false);
  if (o.enableIpv6) o.warnings.push('WARNING: Support for IPv6 is experimental');
  if (outbound !== null) {
    o.warnings.push('WARNING: Support for --outbound-addr is experimental');
    o.outboundAddr = isIpv4(outbound) ? outbound : interfaceAddress(outbound, 'IPv4');
    if (o.outboundAddr === null || !outboundUsable(o.outboundAddr)) throw new SlirpUsageError('outbound-addr has to be valid ipv4 address or interface name.', false);
  }
  if (outbound6 !== null) {
    o.warnings.push('WARNING: Support for --outbound-addr6 is experimental');
    o.outboundAddr6 = isIpv6(outbound6) ? ipaddr.IPv6.parse(outbound6).toString() : interfaceAddress(outbound6, 'IPv6');
    if (o.outboundAddr6 === null || !outboundUsable(o.outboundAddr6)) throw new SlirpUsageError('outbound-addr6 has to be valid ipv6 address or interface name.', false);
  }
  if (o.macAddress !== null) {
    if (!o.configure) throw new SlirpUsageError('--macaddr cannot be specified when --configure or -c is not specified', true);
    if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(o.macAddress)) {
      throw new SlirpUsageError(`"${o.macAddress}" is not a valid MAC address`, true);
    }
    o.macAddress = o.macAddress.toLowerCase();
  }
  if (o.apiSocket !== null && (o.apiSocket === '' || Buffer.byteLength(o.apiSocket) >= UNIX_PATH_MAX)) {
    throw new SlirpUsageError(`the specified API socket path is too long (>= ${UNIX_PATH_MAX})`, false);
  }

  if (operands.length < 2) throw new SlirpUsageError('', true);
  if (operands.length > 2) o.warnings.push('WARNING: too many arguments');
  [o.target, o.tapName] = operands;
  if (o.netnsType === 'pid') {
    const pid = decimal(o.target);
    if (pid === null || pid <= 0 || pid > 0x3fffffff) throw new SlirpUsageError('PID must be a positive integer', true);
    o.target = String(pid);
  } else if (!fs.existsSync(o.target)) {
    throw new SlirpUsageError('existing path expected when --netns-type=path: No such file or directory', true);
  }
  if (o.usernsPath !== null && !fs.existsSync(o.usernsPath)) {
    throw new SlirpUsageError(`userns path doesn't exist: ${o.usernsPath}`, true);
  }
  if (!o.tapName.length || Buffer.byteLength(o.tapName) >= 16) {
    throw new SlirpUsageError(`invalid TAPNAME: ${o.tapName}`, true);
  }
  return o;
}

function offset4(network: string, n: number): string {
  const b = ipaddr.IPv4.parse(network).octets;
  const v = ((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3] + n;
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
}

/** slirp4netns' addressing for a --cidr network. */
export function slirpAddressing(cidr: { network: string; prefix: number }): SlirpAddressing {
  return {
    network: cidr.network,
    prefix: cidr.prefix,
    netmask: ipaddr.IPv4.subnetMaskFromPrefixLength(cidr.prefix).toString(),
    gateway: offset4(cidr.network, 2),
    dns: offset4(cidr.network, 3),
    guest: offset4(cidr.network, 100),
    network6: 'fd00::',
    gateway6: 'fd00::2',
    dns6: 'fd00::3',
    guest6: 'fd00::100',
  };
}

/** The pasta command line (without the program name) that does what `o` asks. */
export function toPastaArgv(o: SlirpOptions): string[] {
  const a = slirpAddressing(o.cidr);
  const argv = ['--foreground', '--quiet', '--no-netns-quit', '--ns-ifname', o.tapName,
    '--mtu', String(Math.min(o.mtu, PASTA_MAX_MTU)),
    '--address', a.guest, '--netmask', String(a.prefix), '--gateway', a.gateway,
    '-t', 'none', '-u', 'none', '-T', 'none', '-U', 'none'];
  if (o.enableIpv6) argv.push('--address', a.guest6, '--gateway', a.gateway6);
  else argv.push('--ipv4-only');
  if (o.disableDns) {
    argv.push('--dns', 'none');
  } else {
    argv.push('--dns', a.dns, '--dns-forward', a.dns);
    if (o.enableIpv6) argv.push('--dns', a.dns6, '--dns-forward', a.dns6);
    argv.push('--dhcp-dns');
  }
  if (o.disableHostLoopback) argv.push('--no-map-gw');
  if (o.outboundAddr) argv.push('--outbound', o.outboundAddr);
  if (o.outboundAddr6 && o.enableIpv6) argv.push('--outbound', o.outboundAddr6);
  if (o.configure) argv.push('--config-net');
  if (o.macAddress) argv.push('--ns-mac-addr', o.macAddress);
  if (o.control) argv.push('--control', path.resolve(o.control));
  // paths as slirp4netns opens them: relative to the working directory (pasta
  // would look a bare name up in /run/netns)
  if (o.usernsPath) argv.push('--userns', path.resolve(o.usernsPath));
  if (o.netnsType === 'path') argv.push('--netns', path.resolve(o.target));
  else argv.push(o.target);
  return argv;
}

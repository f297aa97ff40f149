/**
 * Test helpers: hex fixtures, an independent checksum, frame builders,
 * canary buffers and a Config fixture. Deliberately written without the code
 * under test (no src/shared/wire imports except types), so that checksums
 * and layouts are verified independently.
 */
import type { Config } from '../../src/shared/config';
import { tuningFor } from '../../src/main/conf';

/** Bytes from a hex string with any whitespace or ':' between bytes. */
export function hex(s: string): Uint8Array {
  const clean = s.replace(/[\s:]/g, '');
  if (clean.length % 2) throw new Error('odd hex');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toHex(u8: Uint8Array, off = 0, len = u8.length - off): string {
  return Array.from(u8.subarray(off, off + len), (b) => b.toString(16).padStart(2, '0')).join('');
}

export function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function be16(v: number): number[] { return [(v >>> 8) & 0xff, v & 0xff]; }
export function be32(v: number): number[] { return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]; }
export function rd16(u8: Uint8Array, o: number): number { return u8[o] * 256 + u8[o + 1]; }
export function rd32(u8: Uint8Array, o: number): number { return ((u8[o] * 256 + u8[o + 1]) * 256 + u8[o + 2]) * 256 + u8[o + 3]; }

/** RFC 1071 checksum, the simplest way: sum 16-bit words in a wide accumulator. */
export function refChecksum(...parts: (Uint8Array | number[])[]): number {
  const b = concat(...parts);
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += b[i] * 256 + (i + 1 < b.length ? b[i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return (~sum) & 0xffff;
}

export function ip4(s: string): number[] { return s.split('.').map(Number); }
export function ip6(s: string): number[] {
  const [h, t] = s.includes('::') ? s.split('::') : [s, ''];
  const hs = h ? h.split(':') : [];
  const ts = t ? t.split(':') : [];
  const groups = [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts];
  return groups.flatMap((g) => be16(parseInt(g, 16)));
}
export function mac(s: string): number[] { return s.split(':').map((x) => parseInt(x, 16)); }

export const GUEST_MAC = '52:54:00:12:34:56';
export const OUR_MAC = '9a:55:9a:55:9a:55';

export function eth(dst: string, src: string, type: number, payload: Uint8Array): Uint8Array {
  return concat(mac(dst), mac(src), be16(type), payload);
}

export interface Ip4Opts { src: string; dst: string; proto: number; ttl?: number; id?: number; flags?: number; tos?: number }
export function ipv4(o: Ip4Opts, payload: Uint8Array): Uint8Array {
  const h = [0x45, o.tos ?? 0, ...be16(20 + payload.length), ...be16(o.id ?? 0), ...be16(o.flags ?? 0),
    o.ttl ?? 64, o.proto, 0, 0, ...ip4(o.src), ...ip4(o.dst)];
  const c = refChecksum(h);
  h[10] = c >>> 8; h[11] = c & 0xff;
  return concat(h, payload);
}

export function udp4(src: string, dst: string, sport: number, dport: number, payload: Uint8Array, csum = true): Uint8Array {
  const l = 8 + payload.length;
  const u = concat(be16(sport), be16(dport), be16(l), [0, 0], payload);
  if (csum) {
    let c = refChecksum(ip4(src), ip4(dst), [0, 17], be16(l), u);
    if (c === 0) c = 0xffff;
    u[6] = c >>> 8; u[7] = c & 0xff;
  }
  return u;
}

export interface Ip6Opts { src: string; dst: string; nh: number; hop?: number; flow?: number }
export function ipv6(o: Ip6Opts, payload: Uint8Array): Uint8Array {
  const f = o.flow ?? 0;
  return concat([0x60, (f >>> 16) & 0x0f, (f >>> 8) & 0xff, f & 0xff], be16(payload.length), [o.nh, o.hop ?? 64],
    ip6(o.src), ip6(o.dst), payload);
}

/** L4 checksum over IPv6 (pseudo-header per RFC 8200 §8.1). */
export function csum6(src: string, dst: string, nh: number, l4: Uint8Array): number {
  return refChecksum(ip6(src), ip6(dst), be32(l4.length), [0, 0, 0, nh], l4);
}

export function udp6(src: string, dst: string, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const l = 8 + payload.length;
  const u = concat(be16(sport), be16(dport), be16(l), [0, 0], payload);
  let c = csum6(src, dst, 17, u);
  if (c === 0) c = 0xffff;
  u[6] = c >>> 8; u[7] = c & 0xff;
  return u;
}

export function icmp6(src: string, dst: string, msg: Uint8Array): Uint8Array {
  const m = msg.slice();
  m[2] = 0; m[3] = 0;
  const c = csum6(src, dst, 58, m);
  m[2] = c >>> 8; m[3] = c & 0xff;
  return m;
}

/** A buffer of `pre` canary bytes, the data, and `post` canary bytes. */
export function withCanaries(data: Uint8Array, pre: number, post: number, canary = 0xa5): Uint8Array {
  const b = new Uint8Array(pre + data.length + post).fill(canary);
  b.set(data, pre);
  return b;
}

/** Same content in a SharedArrayBuffer-backed Uint8Array. */
export function shared(data: Uint8Array): Uint8Array {
  const b = new Uint8Array(new SharedArrayBuffer(data.length));
  b.set(data);
  return b;
}

/** True if every byte outside [off, off+len) equals the canary. */
export function canariesIntact(b: Uint8Array, off: number, len: number, canary = 0xa5): boolean {
  for (let i = 0; i < b.length; i++) if ((i < off || i >= off + len) && b[i] !== canary) return false;
  return true;
}

/** A complete Config as conf.ts would produce for passt with a typical host. */
export function makeConfig(over: Partial<Config> = {}, ip4Over: Partial<Config['ip4']> = {},
  ip6Over: Partial<Config['ip6']> = {}): Config {
  const fwd = { mode: 'none' as const, rules: [] };
  return {
    mode: 'passt', name: 'passt', logLevel: 'info', foreground: true, logFile: null, logSize: 0, runas: null, noSandbox: false, seccompLog: false,
    pcap: null, pidFile: null, fd: -1, mtu: 65520, ourMac: OUR_MAC, templateIf4: 'eth0', templateIf6: 'eth0',
    ifnameGiven: null, localMode: false,
    ip4: {
      enabled: true, addr: '192.168.1.100', prefixLen: 24, gateway: '192.168.1.1', dns: ['192.168.1.1', '8.8.8.8'],
      dnsMatch: null, dnsHost: null, mapHostLoopback: '192.168.1.1', mapGuestAddr: null, outbound: null,
      outboundIf: null, addrGiven: false, gatewayGiven: false, ...ip4Over,
    },
    ip6: {
      enabled: true, addr: '2001:db8:1:2:aaaa:bbbb:cccc:dddd', prefixLen: 64, gateway: 'fe80::1',
      ourLinkLocal: 'fe80::1', dns: ['2001:db8::53'], dnsMatch: null, dnsHost: null, mapHostLoopback: 'fe80::1',
      mapGuestAddr: null, outbound: null, outboundIf: null, addrGiven: false, gatewayGiven: false, ...ip6Over,
    },
    searchDomains: ['example.com', 'eng.example.com'], advertiseDns: true, advertiseSearch: true, hostname: null, fqdn: null,
    noTcp: false, noUdp: false, noIcmp: false, noDhcp: false, noNdp: false, noDhcpv6: false, noRa: false,
    freebind: false, tcpIn: fwd, udpIn: fwd, tcpOut: fwd, udpOut: fwd, socketPath: null, oneOff: false,
    vhostUser: false, nsIfname: 'tap0', nsMacAddr: null, netns: null, userns: null, netnsOnly: false,
    noNetnsQuit: false, configNet: false, noCopyRoutes: false, noCopyAddrs: false, noSplice: false,
    hostLoToNsLo: false, targetPid: -1, command: null, tuning: tuningFor('passt', {}), ...over,
  };
}

/** Start-up instant used by service tests: 2025-01-09T00:00:00Z. */
export const START_MS = Date.UTC(2025, 0, 9);
/** Its DUID time: seconds since 2000-01-01. */
export const START_DUID_TIME = (START_MS / 1000) - 946684800;

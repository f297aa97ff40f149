/**
 * Independent decoding of reply frames for service tests: plain offsets and
 * the reference checksum from frames.ts, no code under test.
 */
import { refChecksum, rd16, rd32, toHex } from './frames';

export function macStr(b: Uint8Array, o: number): string {
  return Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}
export function ip4Str(b: Uint8Array, o: number): string { return Array.from(b.subarray(o, o + 4)).join('.'); }
export function ip6Hex(b: Uint8Array, o: number): string { return toHex(b, o, 16); }

export interface Decoded4 {
  dstMac: string; srcMac: string; etherType: number;
  ipHeader: Uint8Array; ttl: number; proto: number; id: number; flags: number; tos: number; totalLen: number;
  src: string; dst: string; ipChecksumOk: boolean;
  sport: number; dport: number; udpLen: number; udpChecksum: number; payload: Uint8Array;
}

/** Decodes an Ethernet/IPv4/UDP frame with IHL 5. */
export function decodeUdp4(f: Uint8Array): Decoded4 {
  const ip = f.subarray(14, 34);
  const udp = 34;
  return {
    dstMac: macStr(f, 0), srcMac: macStr(f, 6), etherType: rd16(f, 12),
    ipHeader: ip, tos: ip[1], totalLen: rd16(ip, 2), id: rd16(ip, 4), flags: rd16(ip, 6), ttl: ip[8], proto: ip[9],
    src: ip4Str(ip, 12), dst: ip4Str(ip, 16), ipChecksumOk: ip[0] === 0x45 && refChecksum(ip) === 0,
    sport: rd16(f, udp), dport: rd16(f, udp + 2), udpLen: rd16(f, udp + 4), udpChecksum: rd16(f, udp + 6),
    payload: f.subarray(udp + 8),
  };
}

export interface Decoded6 {
  dstMac: string; srcMac: string; etherType: number;
  version: number; trafficClass: number; flowLabel: number; payloadLen: number; nextHeader: number; hopLimit: number;
  src: string; dst: string; l4: Uint8Array; l4ChecksumOk: boolean;
}

/** Decodes an Ethernet/IPv6 frame without extension headers, verifying the L4 checksum. */
export function decode6(f: Uint8Array): Decoded6 {
  const w = rd32(f, 14);
  const l4 = f.subarray(54);
  const pseudo = [...f.subarray(22, 54), 0, 0, (l4.length >>> 8) & 0xff, l4.length & 0xff, 0, 0, 0, f[20]];
  return {
    dstMac: macStr(f, 0), srcMac: macStr(f, 6), etherType: rd16(f, 12),
    version: Math.floor(w / 2 ** 28), trafficClass: Math.floor(w / 2 ** 20) & 0xff, flowLabel: w % 2 ** 20,
    payloadLen: rd16(f, 18), nextHeader: f[20], hopLimit: f[21], src: ip6Hex(f, 22), dst: ip6Hex(f, 38),
    l4, l4ChecksumOk: refChecksum(pseudo, l4) === 0,
  };
}

/** DHCP options area → list of [code, value bytes] up to END; also returns where END was. */
export function dhcpOptions(opts: Uint8Array): { list: [number, number[]][]; endAt: number } {
  const list: [number, number[]][] = [];
  let p = 0;
  while (p < opts.length) {
    const c = opts[p];
    if (c === 0) { p++; continue; }
    if (c === 255) return { list, endAt: p };
    const l = opts[p + 1];
    list.push([c, Array.from(opts.subarray(p + 2, p + 2 + l))]);
    p += 2 + l;
  }
  return { list, endAt: -1 };
}

/** DHCPv6 option chain → list of [code, data]. */
export function dhcpv6Options(b: Uint8Array): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  let p = 0;
  while (p + 4 <= b.length) {
    const c = rd16(b, p);
    const l = rd16(b, p + 2);
    out.push([c, b.subarray(p + 4, p + 4 + l)]);
    p += 4 + l;
  }
  return out;
}

/** NDP options → list of [type, whole option bytes]. */
export function ndpOptions(b: Uint8Array): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  let p = 0;
  while (p + 2 <= b.length && b[p + 1] > 0) {
    out.push([b[p], b.subarray(p, p + 8 * b[p + 1])]);
    p += 8 * b[p + 1];
  }
  return out;
}

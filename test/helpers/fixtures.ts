/**
 * Captured-style frames, written by hand from the RFC layouts. Checksums are
 * filled by the independent helpers in frames.ts.
 */
import type { HostFamily } from '../../src/main/hostInfo';
import {
  concat, eth, GUEST_MAC, hex, icmp6, ipv4, ipv6, udp4, udp6, refChecksum, ip4,
} from './frames';

export const GUEST_LL = 'fe80::5054:ff:fe12:3456';

/** ARP who-has 10.0.2.2 tell 10.0.2.15, as sent from a tap (not padded). */
export const ARP_REQUEST = hex(`
  ff ff ff ff ff ff  52 54 00 12 34 56  08 06
  00 01  08 00  06  04  00 01
  52 54 00 12 34 56  0a 00 02 0f
  00 00 00 00 00 00  0a 00 02 02`);

/** DHCPDISCOVER as busybox udhcpc sends it (parameter request list, vendor class, 300-byte BOOTP). */
export function dhcpDiscoverPayload(opts: { xid?: number; flags?: number; extraOptions?: number[]; prl?: number[];
  msgType?: number | null; op?: number } = {}): Uint8Array {
  const xid = opts.xid ?? 0x3903f326;
  const header = concat(
    [opts.op ?? 1, 1, 6, 0],
    [(xid >>> 24) & 255, (xid >>> 16) & 255, (xid >>> 8) & 255, xid & 255],
    [0, 0, ((opts.flags ?? 0) >>> 8) & 255, (opts.flags ?? 0) & 255],
    new Uint8Array(16), // ciaddr, yiaddr, siaddr, giaddr
    hex('525400123456'), new Uint8Array(10), // chaddr
    new Uint8Array(64), new Uint8Array(128), // sname, file
    hex('63825363'));
  const prl = opts.prl ?? [1, 3, 6, 12, 15, 28, 42, 119, 121];
  const optsBytes: number[] = [];
  if (opts.msgType !== null) optsBytes.push(53, 1, opts.msgType ?? 1);
  optsBytes.push(61, 7, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
  optsBytes.push(57, 2, 0x02, 0x40);
  optsBytes.push(55, prl.length, ...prl);
  optsBytes.push(...(opts.extraOptions ?? []));
  const vendor = Array.from(new TextEncoder().encode('udhcp 1.36.1'));
  optsBytes.push(60, vendor.length, ...vendor);
  optsBytes.push(255);
  while (optsBytes.length < 60) optsBytes.push(0);
  return concat(header, optsBytes);
}

/** The DISCOVER in a frame: 0.0.0.0:68 → 255.255.255.255:67. */
export function dhcpFrame(payload: Uint8Array, dst = '255.255.255.255'): Uint8Array {
  return eth('ff:ff:ff:ff:ff:ff', GUEST_MAC, 0x0800,
    ipv4({ src: '0.0.0.0', dst, proto: 17, ttl: 64 }, udp4('0.0.0.0', dst, 68, 67, payload)));
}

export const DHCP_DISCOVER = dhcpFrame(dhcpDiscoverPayload());

/** DHCPv6 SOLICIT: DUID-LL client id, ORO 23/24, elapsed time, IA_NA with IAID 0x00123456. */
export const SOLICIT_PAYLOAD = hex(`
  01 0a 1b 2c
  00 01 00 0a  00 03 00 01 52 54 00 12 34 56
  00 06 00 04  00 17 00 18
  00 08 00 02  00 00
  00 03 00 0c  00 12 34 56 00 00 00 00 00 00 00 00`);

export function dhcpv6Frame(payload: Uint8Array, src = GUEST_LL, dst = 'ff02::1:2'): Uint8Array {
  return eth('33:33:00:01:00:02', GUEST_MAC, 0x86dd,
    ipv6({ src, dst, nh: 17, hop: 1 }, udp6(src, dst, 546, 547, payload)));
}

export const DHCPV6_SOLICIT = dhcpv6Frame(SOLICIT_PAYLOAD);

/** Router Solicitation with a source link-layer address option. */
export function rsFrame(src = GUEST_LL, hop = 255, withSlla = true): Uint8Array {
  const msg = withSlla ? hex('85 00 00 00 00 00 00 00  01 01 52 54 00 12 34 56') : hex('85 00 00 00 00 00 00 00');
  return eth('33:33:00:00:00:02', GUEST_MAC, 0x86dd, ipv6({ src, dst: 'ff02::2', nh: 58, hop }, icmp6(src, 'ff02::2', msg)));
}
export const NDP_RS = rsFrame();

/** Neighbor Solicitation for fe80::1 from the guest's link-local address. */
export function nsFrame(target = 'fe80::1', src = GUEST_LL, hop = 255): Uint8Array {
  const dst = 'ff02::1:ff00:1';
  const t = ipv6Bytes(target);
  const msg = concat(hex('87 00 00 00 00 00 00 00'), t, hex('01 01 52 54 00 12 34 56'));
  return eth('33:33:ff:00:00:01', GUEST_MAC, 0x86dd, ipv6({ src, dst, nh: 58, hop }, icmp6(src, dst, msg)));
}
export const NDP_NS = nsFrame();

function ipv6Bytes(s: string): Uint8Array {
  // local copy to keep fixtures self-contained
  const [h, t] = s.includes('::') ? s.split('::') : [s, ''];
  const hs = h ? h.split(':') : [];
  const ts = t ? t.split(':') : [];
  const groups = [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts];
  return Uint8Array.from(groups.flatMap((g) => [parseInt(g, 16) >>> 8, parseInt(g, 16) & 255]));
}

/** TCP SYN as Linux sends it: MSS 1460, SACK-permitted, timestamps, NOP, window scale 7. */
export const TCP_SYN_SEGMENT = (() => {
  const seg = hex(`
    b2 6e 00 50  7a 3c 1f 00  00 00 00 00  a0 02 fa f0  00 00 00 00
    02 04 05 b4  04 02  08 0a 00 0b 8f 3c 00 00 00 00  01  03 03 07`);
  const c = refChecksum(ip4('10.0.2.15'), ip4('93.184.216.34'), [0, 6, 0, seg.length], seg);
  seg[16] = c >>> 8; seg[17] = c & 0xff;
  return seg;
})();

export const TCP_SYN = eth('9a:55:9a:55:9a:55', GUEST_MAC, 0x0800,
  ipv4({ src: '10.0.2.15', dst: '93.184.216.34', proto: 6, ttl: 64, id: 0x1c46, flags: 0x4000 }, TCP_SYN_SEGMENT));

/**
 * A host template as netlink would report it (conf.ts resolveConfig): eth0
 * with 192.0.2.2/24 via 192.0.2.1, or 2001:db8::2/64 via 2001:db8::1 and
 * link-local fe80::9.
 */
export function hostFamily(family: number, over: Partial<HostFamily> = {}): HostFamily {
  const v4 = family === 2;
  return {
    family, ifindex: 2, ifname: 'eth0',
    gateway: Uint8Array.from(v4 ? [192, 0, 2, 1] : [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
    addr: Uint8Array.from(v4 ? [192, 0, 2, 2] : [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
    prefixLen: v4 ? 24 : 64,
    linkLocal: v4 ? null : Uint8Array.from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]),
    routes: [], addrs: [], ambiguous: false, ...over,
  };
}

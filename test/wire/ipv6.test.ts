import test from 'ava';
import { Ipv6View, IPV6_HEADER_LEN, IPV6_NH, ipv6IsExtHeader, writeIpv6Header } from '../../src/shared/wire/ipv6';
import { ip6ToString } from '../../src/shared/wire/bytes';
import { DHCPV6_SOLICIT, GUEST_LL } from '../helpers/fixtures';
import { canariesIntact, concat, ip6, ipv6, shared } from '../helpers/frames';

const solicitIp = () => shared(DHCPV6_SOLICIT.subarray(14));

test('deconstruct the SOLICIT packet header', (t) => {
  const u8 = solicitIp();
  const v = Ipv6View.check(u8, 0, u8.length)!;
  t.is(v.version, 6);
  t.is(v.trafficClass, 0);
  t.is(v.flowLabel, 0);
  t.is(v.payloadLength, u8.length - 40);
  t.is(v.nextHeader, 17);
  t.is(v.protocol, 17);
  t.is(v.hopLimit, 1);
  t.is(ip6ToString(u8, v.srcOff), GUEST_LL);
  t.is(ip6ToString(u8, v.dstOff), 'ff02::1:2');
  t.is(v.payloadOff, 40);
  t.is(v.payloadLen, u8.length - 40);
  t.is(v.extLen, 0);
  t.false(v.isFragment);
  t.false(v.hasLoopback);
});

test('writeIpv6Header into a 0xa5 buffer', (t) => {
  const b = new Uint8Array(50).fill(0xa5);
  const s = Uint8Array.from(ip6('fe80::1'));
  const d = Uint8Array.from(ip6(GUEST_LL));
  t.is(writeIpv6Header(b, 3, 0x1234, 17, 0xabcdef, s, 0, d, 0), IPV6_HEADER_LEN);
  t.deepEqual([...b.subarray(3, 11)], [0x60, 0x0b, 0xcd, 0xef, 0x12, 0x34, 17, 255]);
  t.deepEqual([...b.subarray(11, 27)], ip6('fe80::1'));
  t.deepEqual([...b.subarray(27, 43)], ip6(GUEST_LL));
  t.true(canariesIntact(b, 3, 40));
});

test('setters keep version and traffic class', (t) => {
  const u8 = solicitIp();
  u8[0] = 0x6a; u8[1] = 0xb0; // traffic class 0xab
  const v = Ipv6View.check(u8, 0, u8.length)!;
  v.setFlowLabel(0x12345);
  t.is(v.flowLabel, 0x12345);
  t.is(v.trafficClass, 0xab);
  t.is(v.version, 6);
  v.setHopLimit(255);
  t.is(v.hopLimit, 255);
  v.setSrc(Uint8Array.from(ip6('::1')));
  t.true(v.hasLoopback);
  v.setDst(Uint8Array.from(ip6('ff02::2')));
  t.is(ip6ToString(u8, v.dstOff), 'ff02::2');
});

test('payload length must equal the bytes after the fixed header', (t) => {
  const u8 = solicitIp();
  const v = new Ipv6View(u8);
  t.true(v.reset(0, u8.length));
  t.false(v.reset(0, u8.length - 1), 'truncated');
  const padded = concat(u8, [0, 0]);
  t.is(Ipv6View.check(padded, 0, padded.length), null, 'trailing bytes');
  t.false(v.reset(0, 39));
  const bad = u8.slice();
  bad[0] = 0x40;
  t.is(Ipv6View.check(bad, 0, bad.length), null, 'version 4');
});

const SRC = 'fe80::2';
const DST = 'fe80::1';
const udpBytes = Uint8Array.of(0x12, 0x34, 0x00, 0x35, 0x00, 0x0a, 0, 0, 0xde, 0xad);

function chain(first: number, ...exts: Uint8Array[]): Uint8Array {
  return ipv6({ src: SRC, dst: DST, nh: first }, concat(...exts));
}

test('extension-header chain: hop-by-hop, routing, fragment, destination options, AH → UDP', (t) => {
  const hbh = Uint8Array.of(43, 0, 1, 4, 0, 0, 0, 0); // PadN
  const rt = Uint8Array.of(44, 2, 0, 0, 0, 0, 0, 0, ...new Uint8Array(16)); // 24 bytes
  const frag = Uint8Array.of(60, 0, 0, 0, 0, 0, 0, 1); // offset 0, M=0, id 1
  const dst = Uint8Array.of(51, 0, 1, 4, 0, 0, 0, 0);
  const ah = Uint8Array.of(17, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0); // (2+2)*4 = 16 bytes
  const p = chain(0, hbh, rt, frag, dst, ah, udpBytes);
  const v = Ipv6View.check(p, 0, p.length)!;
  t.truthy(v);
  t.is(v.protocol, 17);
  t.is(v.nextHeader, 0);
  t.is(v.extLen, 8 + 24 + 8 + 8 + 16);
  t.is(v.payloadOff, 40 + 64);
  t.is(v.payloadLen, 10);
  t.false(v.isFragment);
});

test('mobility, HIP, shim6 and experimental headers use the 8-octet rule', (t) => {
  for (const nh of [135, 139, 140, 253, 254]) {
    const p = chain(nh, Uint8Array.of(59, 1, ...new Uint8Array(14)));
    const v = Ipv6View.check(p, 0, p.length)!;
    t.truthy(v, `nh ${nh}`);
    t.is(v.protocol, IPV6_NH.NO_NEXT);
    t.is(v.payloadLen, 0);
  }
});

test('fragments are reported', (t) => {
  const mf = chain(44, Uint8Array.of(17, 0, 0, 1, 0, 0, 0, 9), udpBytes);
  t.true(Ipv6View.check(mf, 0, mf.length)!.isFragment);
  const later = chain(44, Uint8Array.of(17, 0, 0, 8, 0, 0, 0, 9), udpBytes);
  t.true(Ipv6View.check(later, 0, later.length)!.isFragment);
});

test('ESP stops the walk', (t) => {
  const p = chain(0, Uint8Array.of(50, 0, 1, 4, 0, 0, 0, 0), Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff));
  const v = Ipv6View.check(p, 0, p.length)!;
  t.is(v.protocol, IPV6_NH.ESP);
  t.is(v.payloadOff, 48);
});

test('a walk that would run past the end fails', (t) => {
  // hop-by-hop claims 16 bytes, only 8 present
  const p1 = chain(0, Uint8Array.of(17, 1, 0, 0, 0, 0, 0, 0));
  t.is(Ipv6View.check(p1, 0, p1.length), null);
  // fewer than 8 bytes for an extension header
  const p2 = chain(60, Uint8Array.of(17, 0, 0, 0));
  t.is(Ipv6View.check(p2, 0, p2.length), null);
  // AH length beyond the end
  const p3 = chain(51, Uint8Array.of(17, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  t.is(Ipv6View.check(p3, 0, p3.length), null);
  // exactly ending at the end is fine
  const p4 = chain(60, Uint8Array.of(59, 0, 0, 0, 0, 0, 0, 0));
  t.truthy(Ipv6View.check(p4, 0, p4.length));
  // chain of empty headers cut in the middle
  const p5 = chain(0, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0), Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0), Uint8Array.of(0, 0));
  t.is(Ipv6View.check(p5, 0, p5.length), null);
  const v = new Ipv6View(p5);
  t.false(v.reset(0, p5.length));
  t.is(v.protocol, 0);
  t.is(v.payloadLen, 0);
});

test('ipv6IsExtHeader lists exactly SPEC §1.3', (t) => {
  const ext = [];
  for (let i = 0; i < 256; i++) if (ipv6IsExtHeader(i)) ext.push(i);
  t.deepEqual(ext, [0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254]);
});

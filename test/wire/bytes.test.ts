import test from 'ava';
import {
  bytesEqual, copyBytes, dataViewOf, ip4FromString, ip4MaskFromPrefix, ip4SameSubnet, ip4ToString, ip6FromString,
  ip6IsLinkLocal, ip6IsLoopback, ip6IsMulticast, ip6IsUnspecified, ip6ToString, isZero, macFromString, macIsGroup,
  macToString, rangeOk, rd16, rd32, wr16, wr32,
} from '../../src/shared/wire/bytes';

test('rd/wr 16 and 32 bits are big-endian and unsigned', (t) => {
  const b = new Uint8Array(8);
  wr16(b, 1, 0xbeef);
  wr32(b, 3, 0xdeadbeef);
  t.deepEqual([...b], [0, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0]);
  t.is(rd16(b, 1), 0xbeef);
  t.is(rd32(b, 3), 0xdeadbeef);
  wr16(b, 0, 0x12345); // only the low 16 bits
  t.is(rd16(b, 0), 0x2345);
});

test('rangeOk rejects everything that is not an in-bounds integer range', (t) => {
  const b = new Uint8Array(10);
  t.true(rangeOk(b, 0, 10));
  t.true(rangeOk(b, 10, 0));
  t.false(rangeOk(b, 1, 10));
  t.false(rangeOk(b, -1, 2));
  t.false(rangeOk(b, 0, -1));
  t.false(rangeOk(b, 0.5, 1));
  t.false(rangeOk(b, NaN, 1));
  t.false(rangeOk(b, 0, Infinity));
  t.false(rangeOk(b, 2 ** 32, 0));
});

test('dataViewOf covers the same bytes as a subarray', (t) => {
  const whole = Uint8Array.from([1, 2, 3, 4, 5]);
  const sub = whole.subarray(2);
  const dv = dataViewOf(sub);
  t.is(dv.byteLength, 3);
  t.is(dv.getUint8(0), 3);
});

test('MAC strings', (t) => {
  const m = macFromString('9a:55:9A:55:9a:05')!;
  t.deepEqual([...m], [0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x05]);
  t.is(macToString(m), '9a:55:9a:55:9a:05');
  t.is(macFromString('9a:55:9a:55:9a'), null);
  t.is(macFromString('9a:55:9a:55:9a:zz'), null);
  t.is(macFromString('9a:55:9a:55:9a:555'), null);
  t.true(macIsGroup(Uint8Array.of(0x33, 0x33, 0, 0, 0, 1), 0));
  t.false(macIsGroup(m, 0));
});

test('IPv4 strings, masks and subnets', (t) => {
  const a = ip4FromString('192.168.1.100')!;
  t.deepEqual([...a], [192, 168, 1, 100]);
  t.is(ip4ToString(a), '192.168.1.100');
  t.is(ip4FromString('192.168.1'), null);
  t.is(ip4FromString('::1'), null);
  t.deepEqual([...ip4MaskFromPrefix(24)], [255, 255, 255, 0]);
  t.deepEqual([...ip4MaskFromPrefix(0)], [0, 0, 0, 0]);
  t.deepEqual([...ip4MaskFromPrefix(32)], [255, 255, 255, 255]);
  t.deepEqual([...ip4MaskFromPrefix(17)], [255, 255, 128, 0]);
  const m = ip4MaskFromPrefix(24);
  t.true(ip4SameSubnet(a, 0, ip4FromString('192.168.1.1')!, 0, m));
  t.false(ip4SameSubnet(a, 0, ip4FromString('192.168.2.1')!, 0, m));
});

test('IPv6 strings and classes', (t) => {
  const a = ip6FromString('2001:db8::1')!;
  t.is(a.length, 16);
  t.is(ip6ToString(a), '2001:db8::1');
  t.is(ip6ToString(ip6FromString('2001:0db8:0:0:1:0:0:1')!), '2001:db8::1:0:0:1');
  t.is(ip6FromString('fe80::1%eth0'), null);
  t.is(ip6FromString('1.2.3.4'), null);
  t.true(ip6IsLinkLocal(ip6FromString('fe80::1')!, 0));
  t.true(ip6IsLinkLocal(ip6FromString('febf::1')!, 0));
  t.false(ip6IsLinkLocal(ip6FromString('fec0::1')!, 0));
  t.true(ip6IsMulticast(ip6FromString('ff02::1')!, 0));
  t.true(ip6IsUnspecified(ip6FromString('::')!, 0));
  t.true(ip6IsLoopback(ip6FromString('::1')!, 0));
  t.false(ip6IsLoopback(ip6FromString('::2')!, 0));
});

test('copyBytes, bytesEqual, isZero, small and large', (t) => {
  const src = Uint8Array.from({ length: 200 }, (_, i) => i);
  const dst = new Uint8Array(210);
  copyBytes(dst, 5, src, 0, 8);
  t.true(bytesEqual(dst, 5, src, 0, 8));
  copyBytes(dst, 5, src, 0, 200);
  t.true(bytesEqual(dst, 5, src, 0, 200));
  t.false(bytesEqual(dst, 4, src, 0, 2));
  t.true(isZero(dst, 205, 5));
  t.false(isZero(dst, 6, 1));
});

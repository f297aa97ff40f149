import test from 'ava';
import { Ipv4View, IPV4_HEADER_LEN, ipv4HeaderLen, writeIpv4Header } from '../../src/shared/wire/ipv4';
import { ip4ToString } from '../../src/shared/wire/bytes';
import { TCP_SYN } from '../helpers/fixtures';
import { canariesIntact, concat, ip4, ipv4, refChecksum, shared } from '../helpers/frames';

const ipPart = () => shared(TCP_SYN.subarray(14));

test('deconstruct the SYN packet header', (t) => {
  const u8 = ipPart();
  const v = Ipv4View.check(u8, 0, u8.length)!;
  t.is(v.version, 4);
  t.is(v.ihl, 5);
  t.is(v.headerLen, 20);
  t.is(v.tos, 0);
  t.is(v.totalLen, 60);
  t.is(v.ident, 0x1c46);
  t.true(v.dontFrag);
  t.false(v.moreFrags);
  t.is(v.fragOffset, 0);
  t.false(v.isFragment);
  t.is(v.ttl, 64);
  t.is(v.protocol, 6);
  t.is(ip4ToString(u8, v.srcOff), '10.0.2.15');
  t.is(ip4ToString(u8, v.dstOff), '93.184.216.34');
  t.is(v.src, 0x0a00020f);
  t.true(v.verifyChecksum());
  t.is(v.payloadOff, 20);
  t.is(v.payloadLen, 40);
  t.false(v.hasLoopback);
});

test('writeIpv4Header builds our fixed header into a 0xa5 buffer', (t) => {
  const b = new Uint8Array(30).fill(0xa5);
  const src = Uint8Array.from(ip4('192.168.1.1'));
  const dst = Uint8Array.from(ip4('192.168.1.100'));
  t.is(writeIpv4Header(b, 5, 308, 17, src, 0, dst, 0), IPV4_HEADER_LEN);
  const h = b.subarray(5, 25);
  const expect = [0x45, 0, 0x01, 0x48, 0, 0, 0, 0, 255, 17, 0, 0, ...ip4('192.168.1.1'), ...ip4('192.168.1.100')];
  const c = refChecksum(expect);
  expect[10] = c >>> 8; expect[11] = c & 0xff;
  t.deepEqual([...h], expect);
  t.true(canariesIntact(b, 5, 20));
  const v = Ipv4View.check(b, 5, 20 + 0);
  t.is(v, null, 'total length 328 > 20 available');
});

test('setters and fillChecksum', (t) => {
  const u8 = ipPart();
  const v = Ipv4View.check(u8, 0, u8.length)!;
  v.setTtl(255);
  v.setIdent(0);
  v.setFlagsFrag(0);
  v.setTos(0x10);
  v.setProtocol(17);
  v.setSrc(Uint8Array.of(1, 2, 3, 4));
  v.setDst(Uint8Array.of(9, 9, 1, 2, 3, 4), 2);
  t.false(v.verifyChecksum());
  v.fillChecksum();
  t.true(v.verifyChecksum());
  t.is(refChecksum(u8.subarray(0, 20)), 0);
  t.is(v.dst, 0x01020304);
  v.setChecksum(0x1234);
  t.is(v.checksum, 0x1234);
  v.setTotalLen(40);
  t.is(v.payloadLen, 20);
});

test('IHL, total length and version checks', (t) => {
  const pkt = ipPart();
  const v = new Ipv4View(pkt);
  t.true(v.reset(0, 60));
  t.false(v.reset(0, 59), 'total length 60 > 59 available');
  t.false(v.reset(0, 19));
  const b = pkt.slice();
  b[0] = 0x44; // IHL 4
  t.false(Ipv4View.check(b, 0, 60) !== null);
  b[0] = 0x4f; // IHL 15 = 60 bytes: exactly the total length
  t.truthy(Ipv4View.check(b, 0, 60));
  t.is(Ipv4View.check(b, 0, 60)!.payloadLen, 0);
  b[2] = 0; b[3] = 59; // total 59 < header 60
  t.is(Ipv4View.check(b, 0, 60), null);
  const c = pkt.slice();
  c[0] = 0x65; // version 6
  t.is(Ipv4View.check(c, 0, 60), null);
  t.is(ipv4HeaderLen(c, 0, 60), 0);
});

test('padding after the total length is allowed and excluded from the payload', (t) => {
  const p = concat(ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: 17 }, new Uint8Array(8)), new Uint8Array(18));
  const v = Ipv4View.check(p, 0, p.length)!;
  t.is(v.totalLen, 28);
  t.is(v.payloadLen, 8);
});

test('options are skipped', (t) => {
  const h = [0x46, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd];
  const v = Ipv4View.check(Uint8Array.from(h), 0, h.length)!;
  t.is(v.headerLen, 24);
  t.is(v.payloadOff, 24);
  t.is(v.payloadLen, 4);
});

test('fragment test: MF or offset, DF alone is not a fragment', (t) => {
  const mk = (flags: number) => ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: 17, flags }, new Uint8Array(8));
  t.false(Ipv4View.check(mk(0x4000), 0, 28)!.isFragment);
  t.true(Ipv4View.check(mk(0x2000), 0, 28)!.isFragment);
  t.true(Ipv4View.check(mk(0x0001), 0, 28)!.isFragment);
  t.is(Ipv4View.check(mk(0x0001), 0, 28)!.fragOffset, 1);
  t.true(Ipv4View.check(mk(0x6000), 0, 28)!.moreFrags);
});

test('loopback source or destination is flagged', (t) => {
  const p = ipv4({ src: '127.0.0.53', dst: '10.0.0.2', proto: 17 }, new Uint8Array(8));
  t.true(Ipv4View.check(p, 0, p.length)!.hasLoopback);
  const q = ipv4({ src: '10.0.0.1', dst: '127.1.2.3', proto: 17 }, new Uint8Array(8));
  t.true(Ipv4View.check(q, 0, q.length)!.hasLoopback);
});

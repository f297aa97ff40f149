import test from 'ava';
import { UdpView, udpChecksumValue, writeUdpHeader } from '../../src/shared/wire/udp';
import { Icmpv4View, Icmpv6View, ICMPV6_TYPE, ICMP_TYPE, writeIcmpEchoHeader } from '../../src/shared/wire/icmp';
import { DHCP_DISCOVER } from '../helpers/fixtures';
import { canariesIntact, hex, shared } from '../helpers/frames';

test('UDP: deconstruct the DISCOVER datagram', (t) => {
  const u8 = shared(DHCP_DISCOVER);
  const v = UdpView.check(u8, 34, u8.length - 34)!;
  t.is(v.srcPort, 68);
  t.is(v.dstPort, 67);
  t.is(v.length, 308);
  t.true(v.exactLength);
  t.not(v.checksum, 0);
  t.is(v.payloadOff, 42);
  t.is(v.payloadLen, 300);
});

test('UDP: construct into 0xa5 buffer; setters', (t) => {
  const b = new Uint8Array(12).fill(0xa5);
  t.is(writeUdpHeader(b, 2, 67, 68, 300), 8);
  t.deepEqual(b.subarray(2, 10), hex('0043 0044 0134 0000'));
  t.true(canariesIntact(b, 2, 8));
  const c = new Uint8Array(8);
  const v = new UdpView(c);
  c[5] = 8;
  t.true(v.reset(0, 8));
  v.setSrcPort(546); v.setDstPort(547); v.setChecksum(0xbeef); v.setLength(8);
  t.deepEqual(c, hex('0222 0223 0008 beef'));
  t.is(udpChecksumValue(0), 0xffff);
  t.is(udpChecksumValue(5), 5);
});

test('UDP: length field must lie within 8…len', (t) => {
  const u8 = hex('0044 0043 0009 0000 aa');
  const v = new UdpView(u8);
  t.true(v.reset(0, 9));
  t.false(v.reset(0, 8), 'length 9 > 8 available');
  t.false(v.reset(0, 7));
  u8[5] = 7;
  t.false(v.reset(0, 9), 'length 7 < 8');
  u8[5] = 8;
  t.true(v.reset(0, 9));
  t.false(v.exactLength, 'trailing byte');
  t.is(v.payloadLen, 0);
});

test('ICMP echo request: deconstruct and construct', (t) => {
  const msg = hex('0800 f7fc 1234 0001 6869');
  const v = Icmpv4View.check(msg, 0, msg.length)!;
  t.is(v.type, ICMP_TYPE.ECHO_REQUEST);
  t.is(v.code, 0);
  t.is(v.checksum, 0xf7fc);
  t.is(v.identifier, 0x1234);
  t.is(v.sequenceNumber, 1);
  t.true(v.isEcho);
  t.is(v.payloadLen, 2);
  const b = new Uint8Array(12).fill(0xa5);
  t.is(writeIcmpEchoHeader(b, 2, 8, 0x1234, 1), 8);
  t.deepEqual(b.subarray(2, 10), hex('0800 0000 1234 0001'));
  t.true(canariesIntact(b, 2, 8));
  v.setType(0); v.setCode(0); v.setIdentifier(7); v.setSequenceNumber(9); v.setChecksum(1);
  t.deepEqual(msg.subarray(0, 8), hex('0000 0001 0007 0009'));
});

test('ICMPv6: echo and NDP classification, short messages', (t) => {
  const m = hex('8000 0000 0001 0002');
  const v = Icmpv6View.check(m, 0, 8)!;
  t.true(v.isEcho);
  t.false(v.isNdp);
  for (const ty of [133, 134, 135, 136]) { m[0] = ty; t.true(Icmpv6View.check(m, 0, 8)!.isNdp); }
  m[0] = ICMPV6_TYPE.REDIRECT;
  t.false(Icmpv6View.check(m, 0, 8)!.isNdp);
  t.is(Icmpv6View.check(m, 0, 7), null);
  t.is(Icmpv4View.check(m, 1, 8), null);
});

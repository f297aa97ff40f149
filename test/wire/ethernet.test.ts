import test from 'ava';
import { EthernetView, ETHERTYPE, ETH_HEADER_LEN, writeEthHeader } from '../../src/shared/wire/ethernet';
import { macToString } from '../../src/shared/wire/bytes';
import { ARP_REQUEST } from '../helpers/fixtures';
import { hex, shared, withCanaries, canariesIntact } from '../helpers/frames';

test('deconstruct an ARP frame header', (t) => {
  const u8 = shared(ARP_REQUEST);
  const v = EthernetView.check(u8, 0, u8.length)!;
  t.truthy(v);
  t.is(macToString(u8, v.dstOff), 'ff:ff:ff:ff:ff:ff');
  t.is(macToString(u8, v.srcOff), '52:54:00:12:34:56');
  t.is(v.etherType, ETHERTYPE.ARP);
  t.is(v.payloadOff, 14);
  t.is(v.payloadLen, 28);
});

test('construct into a 0xa5-filled buffer with writer and setters', (t) => {
  const expected = ARP_REQUEST.subarray(0, 14);
  const b = new Uint8Array(30).fill(0xa5);
  t.is(writeEthHeader(b, 8, hex('ffffffffffff'), 0, hex('525400123456'), 0, ETHERTYPE.ARP), ETH_HEADER_LEN);
  t.deepEqual(b.subarray(8, 22), expected);
  t.true(canariesIntact(b, 8, 14));
  const c = new Uint8Array(20).fill(0xa5);
  const v = new EthernetView(c);
  t.true(v.reset(3, 14));
  v.setDst(hex('00ffffffffffff'), 1);
  v.setSrc(hex('525400123456'));
  v.setEtherType(0x0806);
  t.deepEqual(c.subarray(3, 17), expected);
  t.true(canariesIntact(c, 3, 14));
});

test('length limits: 14…65535', (t) => {
  const b = new Uint8Array(70000);
  const v = new EthernetView(b);
  t.false(v.reset(0, 13));
  t.true(v.reset(0, 14));
  t.is(v.payloadLen, 0);
  t.true(v.reset(0, 65535));
  t.false(v.reset(0, 65536));
  t.false(v.reset(69990, 14));
  t.is(v.len, 0);
  t.is(EthernetView.check(b, -1, 20), null);
});

test('a view over a subarray reads that subarray', (t) => {
  const big = withCanaries(ARP_REQUEST, 5, 5, 0x00);
  const sub = big.subarray(5, 5 + ARP_REQUEST.length);
  const v = EthernetView.check(sub, 0, sub.length)!;
  t.is(v.etherType, 0x0806);
});

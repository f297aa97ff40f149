import test from 'ava';
import { ArpView, ARP_ETH_IP4_LEN, ARP_OP, emitArp, parseArp } from '../../src/shared/wire/arp';
import { ip4ToString, macToString } from '../../src/shared/wire/bytes';
import { ARP_REQUEST } from '../helpers/fixtures';
import { canariesIntact, hex, shared } from '../helpers/frames';

const arp = () => shared(ARP_REQUEST.subarray(14));

test('deconstruct an Ethernet/IPv4 request', (t) => {
  const u8 = arp();
  const v = ArpView.check(u8, 0, u8.length)!;
  t.is(v.htype, 1);
  t.is(v.ptype, 0x0800);
  t.is(v.hlen, 6);
  t.is(v.plen, 4);
  t.is(v.oper, ARP_OP.REQUEST);
  t.true(v.isEthIp4);
  t.is(macToString(u8, v.shaOff), '52:54:00:12:34:56');
  t.is(ip4ToString(u8, v.spaOff), '10.0.2.15');
  t.is(macToString(u8, v.thaOff), '00:00:00:00:00:00');
  t.is(ip4ToString(u8, v.tpaOff), '10.0.2.2');
  const r = parseArp(v)!;
  t.is(r.oper, 1);
  t.deepEqual([...r.targetIp], [10, 0, 2, 2]);
});

test('emit into a 0xa5-filled buffer equals the capture; parse/emit round trip', (t) => {
  const u8 = arp();
  const r = parseArp(ArpView.check(u8, 0, u8.length)!)!;
  const b = new Uint8Array(40).fill(0xa5);
  t.is(emitArp(r, b, 4), ARP_ETH_IP4_LEN);
  t.deepEqual(b.subarray(4, 32), u8);
  t.true(canariesIntact(b, 4, 28));
});

test('truncated and oversized address lengths', (t) => {
  const u8 = arp();
  const v = new ArpView(u8);
  t.false(v.reset(0, 7));
  t.false(v.reset(0, 27));
  t.true(v.reset(0, 28));
  u8[4] = 20; // hlen that does not fit
  t.false(v.reset(0, 28));
  t.is(v.len, 0);
});

test('other hardware/protocol types are viewable but not parsed', (t) => {
  // IEEE 802 (htype 6), 2-byte "addresses", 1-byte protocol addresses
  const u8 = hex('0006 0800 02 01 0001  aaaa 01 bbbb 02');
  const v = ArpView.check(u8, 0, u8.length)!;
  t.truthy(v);
  t.false(v.isEthIp4);
  t.is(v.tpaOff, 8 + 2 + 1 + 2);
  t.is(parseArp(v), null);
});

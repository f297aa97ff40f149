import test from 'ava';
import {
  DHCPV6_OPT, Dhcpv6OptionCursor, Dhcpv6View, dhcpv6OptionsValid, parseDhcpv6, writeDhcpv6OptionHeader,
  writeDuidLlt,
} from '../../src/shared/wire/dhcpv6';
import { SOLICIT_PAYLOAD } from '../helpers/fixtures';
import { canariesIntact, concat, hex, shared } from '../helpers/frames';

test('deconstruct a SOLICIT', (t) => {
  const u8 = shared(SOLICIT_PAYLOAD);
  const v = Dhcpv6View.check(u8, 0, u8.length)!;
  t.is(v.msgType, 1);
  t.is(v.xid, 0x0a1b2c);
  t.is(v.optionsOff, 4);
  const codes: number[] = [];
  const c = v.options();
  while (c.next()) codes.push(c.code);
  t.deepEqual(codes, [1, 6, 8, 3]);
  t.false(c.malformed);
  const r = parseDhcpv6(v);
  t.is(r.clientIdLen, 10);
  t.deepEqual(u8.subarray(r.clientIdOff, r.clientIdOff + 10), hex('0003 0001 525400123456'));
  t.is(r.serverIdLen, -1);
  t.is(r.iaNaLen, 12);
  t.deepEqual(u8.subarray(r.iaNaOff, r.iaNaOff + 4), hex('00123456'));
  t.is(r.iaNaCount, 1);
  t.is(r.iaTaCount, 0);
});

test('truncated chains are rejected; zero-length options and unknown codes are fine', (t) => {
  const u8 = SOLICIT_PAYLOAD;
  t.is(Dhcpv6View.check(u8, 0, 3), null);
  t.truthy(Dhcpv6View.check(u8, 0, 4), 'no options');
  t.is(Dhcpv6View.check(u8, 0, u8.length - 1), null, 'last option cut');
  t.is(Dhcpv6View.check(u8, 0, 6), null, 'option header cut');
  const lying = u8.slice();
  lying[7] = 0xff; // client id length 255
  t.is(Dhcpv6View.check(lying, 0, lying.length), null);
  const odd = concat(hex('0b 000001'), hex('1234 0000  ffff 0001 aa'));
  t.truthy(Dhcpv6View.check(odd, 0, odd.length));
  t.true(dhcpv6OptionsValid(odd, 4, odd.length - 4));
});

test('cursor over encapsulated options reports malformed chains', (t) => {
  const ia = hex('00000001 00000000 00000000  0005 0018 20010db8000000000000000000000001 ffffffff ffffffff');
  const c = new Dhcpv6OptionCursor().reset(ia, 12, ia.length - 12);
  t.true(c.next());
  t.is(c.code, DHCPV6_OPT.IAADDR);
  t.is(c.dataLen, 24);
  t.false(c.next());
  t.false(c.malformed);
  const cut = new Dhcpv6OptionCursor().reset(ia, 12, ia.length - 13);
  t.false(cut.next());
  t.true(cut.malformed);
});

test('first occurrence wins; counts of IAs', (t) => {
  const m = concat(hex('03 000001'), hex('0001 0002 aaaa  0001 0002 bbbb  0003 0004 00000001  0003 0004 00000002  0004 0004 00000003'));
  const r = parseDhcpv6(Dhcpv6View.check(m, 0, m.length)!);
  t.is(m[r.clientIdOff], 0xaa);
  t.is(r.iaNaCount, 2);
  t.is(r.iaTaCount, 1);
  t.is(m[r.iaNaOff + 3], 1);
});

test('writers into 0xa5 buffers: option header and DUID-LLT', (t) => {
  const b = new Uint8Array(24).fill(0xa5);
  t.is(writeDhcpv6OptionHeader(b, 1, 2, 14), 4);
  t.is(writeDuidLlt(b, 5, 0x2f0b6c80, hex('9a559a559a55')), 14);
  t.deepEqual(b.subarray(1, 19), hex('0002 000e  0001 0001 2f0b6c80 9a559a559a55'));
  t.true(canariesIntact(b, 1, 18));
});

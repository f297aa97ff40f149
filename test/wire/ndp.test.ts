import test from 'ava';
import {
  dnsslOptionLen, NDP_NA_FLAG, NDP_OPT, NdpView, writeDnsslOption, writeMtuOption, writeNdpLinkLayerOption,
  writePrefixInfoOption, writeRdnssOption,
} from '../../src/shared/wire/ndp';
import { ip6ToString, macToString } from '../../src/shared/wire/bytes';
import { NDP_NS, NDP_RS } from '../helpers/fixtures';
import { canariesIntact, concat, hex, ip6, shared } from '../helpers/frames';

test('deconstruct an RS with a source link-layer option', (t) => {
  const u8 = shared(NDP_RS);
  const v = NdpView.check(u8, 54, u8.length - 54)!;
  t.is(v.type, 133);
  t.is(v.code, 0);
  t.is(v.optionsOff, 54 + 8);
  t.is(v.optionsLen, 8);
  const o = v.findOption(NDP_OPT.SOURCE_LL_ADDR);
  t.is(o, 62);
  t.is(macToString(u8, o + 2), '52:54:00:12:34:56');
  t.is(v.findOption(NDP_OPT.MTU), -1);
});

test('deconstruct an NS', (t) => {
  const u8 = shared(NDP_NS);
  const v = NdpView.check(u8, 54, u8.length - 54)!;
  t.is(v.type, 135);
  t.is(ip6ToString(u8, v.targetOff), 'fe80::1');
  t.is(v.findOption(1), 54 + 24);
});

test('RA and NA fields', (t) => {
  const ra = hex('86 00 0000 40 80 ffff 00000001 00000002');
  const v = NdpView.check(ra, 0, ra.length)!;
  t.is(v.curHopLimit, 64);
  t.is(v.raFlags, 0x80);
  t.is(v.routerLifetime, 65535);
  t.is(v.reachableTime, 1);
  t.is(v.retransTimer, 2);
  const na = concat(hex('88 00 0000 e0 000000'), ip6('fe80::1'));
  const n = NdpView.check(na, 0, na.length)!;
  t.is(n.naFlags, NDP_NA_FLAG.ROUTER | NDP_NA_FLAG.SOLICITED | NDP_NA_FLAG.OVERRIDE);
});

test('structure checks: type, fixed part, zero-length and overlong options', (t) => {
  const rs = hex('85 00 0000 00000000  01 01 525400123456');
  t.truthy(NdpView.check(rs, 0, 16));
  t.is(NdpView.check(rs, 0, 7), null, 'fixed part');
  t.is(NdpView.check(rs, 0, 15), null, 'option cut');
  t.is(NdpView.check(rs, 0, 9), null, 'option header cut');
  const zero = hex('85 00 0000 00000000  01 00 525400123456');
  t.is(NdpView.check(zero, 0, 16), null, 'length 0');
  const long = hex('85 00 0000 00000000  01 02 525400123456');
  t.is(NdpView.check(long, 0, 16), null, 'runs past the end');
  const unknown = hex('85 00 0000 00000000  fe 01 000000000000');
  t.truthy(NdpView.check(unknown, 0, 16), 'unknown options are skipped');
  const notNdp = hex('80 00 0000 00000000');
  t.is(NdpView.check(notNdp, 0, 8), null);
  const ns = concat(hex('87 00 0000 00000000'), new Uint8Array(15));
  t.is(NdpView.check(ns, 0, ns.length), null, 'NS needs 24 bytes');
  const redirect = new Uint8Array(40); redirect[0] = 137;
  t.truthy(NdpView.check(redirect, 0, 40));
});

test('option writers into 0xa5 buffers', (t) => {
  const b = new Uint8Array(80).fill(0xa5);
  t.is(writeNdpLinkLayerOption(b, 1, 2, hex('9a559a559a55')), 8);
  t.deepEqual(b.subarray(1, 9), hex('0201 9a559a559a55'));
  t.true(canariesIntact(b, 1, 8));

  const p = new Uint8Array(40).fill(0xa5);
  const addr = Uint8Array.from(ip6('2001:db8:1:2:aaaa:bbbb:cccc:dddd'));
  t.is(writePrefixInfoOption(p, 2, addr, 0, 64, 0xc0, 0xffffffff, 0xffffffff), 32);
  t.deepEqual(p.subarray(2, 34), concat(hex('03 04 40 c0 ffffffff ffffffff 00000000'), ip6('2001:db8:1:2::')));
  t.true(canariesIntact(p, 2, 32));
  writePrefixInfoOption(p, 2, addr, 0, 61, 0xc0, 1, 1);
  t.deepEqual([...p.subarray(18, 34)], ip6('2001:db8:1:0::'), '/61 clears the low 3 bits of byte 7');

  const m = new Uint8Array(10).fill(0xa5);
  t.is(writeMtuOption(m, 1, 65520), 8);
  t.deepEqual(m.subarray(1, 9), hex('05 01 0000 0000fff0'));
  t.true(canariesIntact(m, 1, 8));

  const r = new Uint8Array(60).fill(0xa5);
  const dns = Uint8Array.from([...ip6('2001:db8::53'), ...ip6('2001:db8::54')]);
  t.is(writeRdnssOption(r, 0, 0xffffffff, dns, 2), 40);
  t.deepEqual(r.subarray(0, 40), concat(hex('19 05 0000 ffffffff'), dns));
  t.true(canariesIntact(r, 0, 40));
});

test('DNSSL length and padding (no extra 8 bytes when aligned)', (t) => {
  t.is(dnsslOptionLen(0), 8);
  t.is(dnsslOptionLen(1), 16);
  t.is(dnsslOptionLen(8), 16);
  t.is(dnsslOptionLen(9), 24);
  // "example.com" = 13 bytes encoded → 8 + 13 = 21 → 24
  const names = hex('07 6578616d706c65 03 636f6d 00');
  const b = new Uint8Array(30).fill(0xa5);
  t.is(writeDnsslOption(b, 2, 0xffffffff, names, names.length), 24);
  t.deepEqual(b.subarray(2, 26), concat(hex('1f 03 0000 ffffffff'), names, [0, 0, 0]));
  t.true(canariesIntact(b, 2, 24));
  // 8 bytes of names exactly: option is 16 bytes, length field 2
  const eight = hex('06 616263646566 00');
  const c = new Uint8Array(20).fill(0xa5);
  t.is(writeDnsslOption(c, 0, 1, eight, 8), 16);
  t.is(c[1], 2);
  t.true(canariesIntact(c, 0, 16));
});

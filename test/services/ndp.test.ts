import test from 'ava';
import { DROP, serviceContextFromConfig, ServiceContext } from '../../src/shared/services/context';
import {
  NA_FRAME_LEN, ndpHandle, NDP_REPLY_MAX, ndpUnsolicitedRa, raIntervalMs,
} from '../../src/shared/services/ndp';
import { GUEST_LL, NDP_NS, NDP_RS, nsFrame, rsFrame } from '../helpers/fixtures';
import { canariesIntact, concat, eth, GUEST_MAC, hex, icmp6, ip6, ipv6, makeConfig, rd16, rd32, START_MS, toHex } from '../helpers/frames';
import { decode6, ndpOptions } from '../helpers/decode';

type Over = Parameters<typeof makeConfig>;
const ctxOf = (o: Over[0] = {}, i4: Over[1] = {}, i6: Over[2] = {}) => {
  const c = serviceContextFromConfig(makeConfig(o, i4, i6), START_MS);
  c.guestMac.set(hex('525400123456'));
  return c;
};
const h6 = (s: string) => toHex(Uint8Array.from(ip6(s)));

function run(c: ServiceContext, frame: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(NDP_REPLY_MAX + 16).fill(0xa5);
  const n = ndpHandle(c, frame, 0, frame.length, out, 8);
  if (n === 0) {
    if (!canariesIntact(out, 0, 0)) throw new Error('wrote without replying');
    return null;
  }
  if (!canariesIntact(out, 8, n)) throw new Error('wrote outside the reply');
  return out.slice(8, 8 + n);
}

test('NS → NA: every field, checksum verified independently', (t) => {
  const r = run(ctxOf(), NDP_NS)!;
  t.is(r.length, NA_FRAME_LEN);
  t.is(r.length, 86);
  const d = decode6(r);
  t.is(d.dstMac, '52:54:00:12:34:56');
  t.is(d.srcMac, '9a:55:9a:55:9a:55');
  t.is(d.etherType, 0x86dd);
  t.is(d.version, 6);
  t.is(d.trafficClass, 0);
  t.is(d.flowLabel, 0);
  t.is(d.payloadLen, 32);
  t.is(d.nextHeader, 58);
  t.is(d.hopLimit, 255);
  t.is(d.src, h6('fe80::1'), 'from our link-local address');
  t.is(d.dst, h6(GUEST_LL), 'to the NS source');
  t.true(d.l4ChecksumOk);
  t.deepEqual(d.l4, concat(hex('88 00'), d.l4.subarray(2, 4), hex('e0 000000'), ip6('fe80::1'), hex('02 01 9a559a559a55')));
});

test('NS for any target is answered (we claim every address)', (t) => {
  const r = run(ctxOf(), nsFrame('2001:db8:1:2::1234'))!;
  t.deepEqual([...decode6(r).l4.subarray(8, 24)], ip6('2001:db8:1:2::1234'));
  const g = run(ctxOf(), nsFrame('fe80::1', '2001:db8:1:2::5'))!;
  t.is(decode6(g).dst, h6('2001:db8:1:2::5'));
});

test('NS not answered: DAD from ::, hop limit ≠ 255, code ≠ 0, multicast target, bad options', (t) => {
  const c = ctxOf();
  t.is(run(c, nsFrame('fe80::1', '::')), null);
  t.is(c.drops[DROP.NDP_DAD], 1);
  t.is(run(c, nsFrame('fe80::1', GUEST_LL, 64)), null);
  const coded = NDP_NS.slice();
  coded[55] = 1;
  t.is(run(c, coded), null);
  t.is(run(c, nsFrame('ff02::1')), null);
  const zeroOpt = NDP_NS.slice();
  zeroOpt[54 + 25] = 0;
  t.is(run(c, zeroOpt), null);
  t.is(c.drops[DROP.NDP_INVALID], 4);
});

test('RS → RA: fixed part and options in order, byte by byte', (t) => {
  const r = run(ctxOf(), NDP_RS)!;
  const d = decode6(r);
  t.is(d.src, h6('fe80::1'));
  t.is(d.dst, h6(GUEST_LL));
  t.is(d.hopLimit, 255);
  t.is(d.flowLabel, 0);
  t.true(d.l4ChecksumOk);
  const m = d.l4;
  t.is(m[0], 134);
  t.is(m[1], 0);
  t.is(m[4], 255, 'cur hop limit');
  t.is(m[5], 0x80, 'M=1, O=0');
  t.is(rd16(m, 6), 65535, 'router lifetime');
  t.is(rd32(m, 8), 0);
  t.is(rd32(m, 12), 0);
  const opts = ndpOptions(m.subarray(16));
  t.deepEqual(opts.map(([ty]) => ty), [3, 1, 5, 25, 31]);
  t.deepEqual(opts[0][1], concat(hex('03 04 40 c0 ffffffff ffffffff 00000000'), ip6('2001:db8:1:2::')),
    'prefix /64 with host bits cleared');
  t.deepEqual(opts[1][1], hex('01 01 9a559a559a55'));
  t.deepEqual(opts[2][1], hex('05 01 0000 0000fff0'));
  t.deepEqual(opts[3][1], concat(hex('19 03 0000 ffffffff'), ip6('2001:db8::53')));
  // DNSSL: example.com (13) + eng.example.com (17) = 30 bytes; 8 + 30 = 38 → 40
  t.deepEqual(opts[4][1], concat(hex('1f 05 0000 ffffffff'),
    hex('07 6578616d706c65 03 636f6d 00  03 656e67 07 6578616d706c65 03 636f6d 00'), [0, 0]));
  t.is(16 + 32 + 8 + 8 + 24 + 40, m.length);
});

test('DNSSL already a multiple of 8: no extra padding', (t) => {
  // abcdefghij.klmno = 1+10+1+5+1 = 18 bytes, a.bc = 1+1+1+2+1 = 6: 8 + 24 = 32, aligned
  const r = run(ctxOf({ searchDomains: ['abcdefghij.klmno', 'a.bc'] }), NDP_RS)!;
  const dnssl = ndpOptions(decode6(r).l4.subarray(16)).find(([ty]) => ty === 31)![1];
  t.is(dnssl.length, 32);
  t.is(dnssl[1], 4);
  t.is(decode6(r).l4.length, 16 + 32 + 8 + 8 + 24 + 32, 'nothing after the option');
});

test('RS from :: is answered to ff02::1', (t) => {
  const r = run(ctxOf(), rsFrame('::', 255, false))!;
  t.is(decode6(r).dst, h6('ff02::1'));
  t.true(decode6(r).l4ChecksumOk);
  const c = ctxOf();
  t.is(run(c, rsFrame('::', 255, true)), null, 'RFC 4861: no SLLA option from ::');
  t.is(c.drops[DROP.NDP_INVALID], 1);
});

test('RA options follow the switches', (t) => {
  const optTypes = (c: ServiceContext) => ndpOptions(decode6(run(c, NDP_RS)!).l4.subarray(16)).map(([ty]) => ty);
  t.deepEqual(optTypes(ctxOf({ mtu: 0 })), [3, 1, 25, 31], 'no MTU option with -m 0');
  t.deepEqual(optTypes(ctxOf({}, {}, { dns: [] })), [3, 1, 5], 'no DNSSL without RDNSS');
  t.deepEqual(optTypes(ctxOf({ advertiseDns: false })), [3, 1, 5]);
  t.deepEqual(optTypes(ctxOf({ advertiseSearch: false })), [3, 1, 5, 25]);
  t.deepEqual(optTypes(ctxOf({ searchDomains: [] })), [3, 1, 5, 25]);
  t.deepEqual(optTypes(ctxOf({ localMode: true }, {}, { addr: null })), [1, 5, 25, 31], 'no prefix to advertise');
  const three = ctxOf({}, {}, { dns: ['2001:db8::1', '2001:db8::2', '2001:db8::3'] });
  const rdnss = ndpOptions(decode6(run(three, NDP_RS)!).l4.subarray(16)).find(([ty]) => ty === 25)![1];
  t.is(rdnss[1], 7);
  t.is(rdnss.length, 56);
});

test('a long search list is cut to whole names within 1500 bytes', (t) => {
  const names = Array.from({ length: 40 }, (_, i) => `host${i}-${'z'.repeat(50)}.example.org`);
  const r = run(ctxOf({ searchDomains: names }), NDP_RS)!;
  t.true(r.length <= NDP_REPLY_MAX);
  t.true(decode6(r).l4ChecksumOk);
  const dnssl = ndpOptions(decode6(r).l4.subarray(16)).find(([ty]) => ty === 31)![1];
  t.is(dnssl.length % 8, 0);
  t.true(dnssl.length > 1000);
});

test('RA, NA, redirect from the guest: ignored; RS with RAs off: ignored, NS still answered', (t) => {
  const c = ctxOf();
  for (const ty of [134, 136]) {
    const msg = concat([ty, 0, 0, 0], new Uint8Array(ty === 134 ? 12 : 20));
    const f = eth('33:33:00:00:00:01', GUEST_MAC, 0x86dd, ipv6({ src: GUEST_LL, dst: 'ff02::1', nh: 58, hop: 255 },
      icmp6(GUEST_LL, 'ff02::1', msg)));
    t.is(run(c, f), null);
  }
  const redirect = eth('33:33:00:00:00:01', GUEST_MAC, 0x86dd, ipv6({ src: GUEST_LL, dst: 'ff02::1', nh: 58, hop: 255 },
    icmp6(GUEST_LL, 'ff02::1', concat([137, 0, 0, 0], new Uint8Array(36)))));
  t.is(run(c, redirect), null);
  t.is(c.drops[DROP.NDP_IGNORED_TYPE], 3);
  const nora = ctxOf({ noRa: true });
  t.is(run(nora, NDP_RS), null);
  t.is(nora.drops[DROP.RA_DISABLED], 1);
  t.truthy(run(nora, NDP_NS));
});

test('--no-ndp, --no-icmp, IPv6 off: nothing answered', (t) => {
  for (const c of [ctxOf({ noNdp: true }), ctxOf({ noIcmp: true }), ctxOf({}, {}, { enabled: false })]) {
    t.is(run(c, NDP_NS), null);
    t.is(run(c, NDP_RS), null);
    t.is(c.drops[DROP.NDP_DISABLED], 2);
  }
});

test('malformed frames: not ICMPv6, truncated, out room', (t) => {
  const c = ctxOf();
  t.is(run(c, NDP_NS.subarray(0, NDP_NS.length - 1)), null);
  const udp = NDP_NS.slice();
  udp[20] = 17;
  t.is(run(c, udp), null);
  t.is(c.drops[DROP.MALFORMED], 2);
  t.is(ndpHandle(c, NDP_NS, 0, NDP_NS.length, new Uint8Array(NDP_REPLY_MAX), 1), 0);
  t.is(c.drops[DROP.OUT_TOO_SMALL], 1);
});

test('unsolicited RA goes to ff02::1; none when RAs are off', (t) => {
  const out = new Uint8Array(NDP_REPLY_MAX).fill(0xa5);
  const n = ndpUnsolicitedRa(ctxOf(), out, 0);
  t.true(n > 0);
  const d = decode6(out.subarray(0, n));
  t.is(d.dst, h6('ff02::1'));
  t.is(d.dstMac, '52:54:00:12:34:56');
  t.true(d.l4ChecksumOk);
  t.is(d.l4[0], 134);
  t.is(ndpUnsolicitedRa(ctxOf({ noRa: true }), out, 0), 0);
  t.is(ndpUnsolicitedRa(ctxOf(), new Uint8Array(100), 0), 0);
});

test('unsolicited RA interval in [200, 600) s', (t) => {
  t.is(raIntervalMs(0), 200000);
  t.true(raIntervalMs(0.999999) < 600000);
  t.is(raIntervalMs(0.5), 400000);
  t.is(raIntervalMs(NaN), 200000);
  t.is(raIntervalMs(1), 200000);
});

import test from 'ava';
import { DROP, serviceContextFromConfig, ServiceContext } from '../../src/shared/services/context';
import { dhcpHandle, DHCP_REPLY_MAX } from '../../src/shared/services/dhcp';
import { dhcpDiscoverPayload, dhcpFrame, DHCP_DISCOVER } from '../helpers/fixtures';
import { canariesIntact, concat, hex, makeConfig, START_MS } from '../helpers/frames';
import { decodeUdp4, dhcpOptions } from '../helpers/decode';

type Over = Parameters<typeof makeConfig>;
const ctxOf = (o: Over[0] = {}, i4: Over[1] = {}) => serviceContextFromConfig(makeConfig(o, i4), START_MS);

function run(c: ServiceContext, frame: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(DHCP_REPLY_MAX + 20).fill(0xa5);
  const n = dhcpHandle(c, frame, 0, frame.length, out, 10);
  if (n === 0) {
    if (!canariesIntact(out, 0, 0)) throw new Error('wrote without replying');
    return null;
  }
  if (!canariesIntact(out, 10, n)) throw new Error('wrote outside the reply');
  if (n > DHCP_REPLY_MAX) throw new Error('reply too long');
  return out.slice(10, 10 + n);
}

const frameWith = (o: Parameters<typeof dhcpDiscoverPayload>[0]) => dhcpFrame(dhcpDiscoverPayload(o));
const codes = (r: Uint8Array) => dhcpOptions(decodeUdp4(r).payload.subarray(240)).list.map(([c]) => c);
const opt = (r: Uint8Array, code: number) => dhcpOptions(decodeUdp4(r).payload.subarray(240)).list.find(([c]) => c === code)?.[1];

test('DISCOVER → OFFER: Ethernet, IPv4, UDP headers field by field', (t) => {
  const c = ctxOf();
  c.guestMac.set(hex('525400123456'));
  const r = run(c, DHCP_DISCOVER)!;
  const d = decodeUdp4(r);
  t.is(d.dstMac, '52:54:00:12:34:56');
  t.is(d.srcMac, '9a:55:9a:55:9a:55');
  t.is(d.etherType, 0x0800);
  t.is(d.ipHeader[0], 0x45);
  t.is(d.tos, 0);
  t.is(d.totalLen, r.length - 14);
  t.is(d.id, 0);
  t.is(d.flags, 0, 'no DF');
  t.is(d.ttl, 255);
  t.is(d.proto, 17);
  t.true(d.ipChecksumOk, 'IPv4 header checksum verified independently');
  t.is(d.src, '192.168.1.1', 'from our tap address (the gateway)');
  t.is(d.dst, '192.168.1.100', 'no broadcast flag: to the assigned address');
  t.is(d.sport, 67);
  t.is(d.dport, 68);
  t.is(d.udpLen, r.length - 34);
  t.is(d.udpChecksum, 0, 'UDP over IPv4: checksum 0');
});

test('reply BOOTP header echoes the request', (t) => {
  const req = dhcpDiscoverPayload({ flags: 0x8000 });
  req.set([1, 2, 3, 4], 12); // ciaddr
  req.set([5, 6, 7, 8], 20); // siaddr
  req.set([9, 9, 9, 9], 24); // giaddr
  req[3] = 1; // hops
  req[9] = 7; // secs
  req.set(hex('7365727665722d6e616d65'), 44); // sname
  req.set(hex('626f6f74'), 108); // file
  const r = run(ctxOf(), dhcpFrame(req))!;
  const m = decodeUdp4(r).payload;
  const expect = req.slice(0, 240);
  expect[0] = 2; // BOOTREPLY
  expect[3] = 0; // hops
  expect[8] = 0; expect[9] = 0; // secs
  expect.set([192, 168, 1, 100], 16); // yiaddr
  t.deepEqual(m.subarray(0, 240), expect);
});

test('options follow the client\'s list: 53 first, then 55 order, then ascending', (t) => {
  const r = run(ctxOf(), DHCP_DISCOVER)!;
  // 55 = 1 3 6 12 15 28 42 119 121; we have 1 3 6 119 of those (no 121: gateway on-link)
  t.deepEqual(codes(r), [53, 1, 3, 6, 119, 26, 51, 54]);
  t.deepEqual(opt(r, 53), [2]);
  t.deepEqual(opt(r, 1), [255, 255, 255, 0]);
  t.deepEqual(opt(r, 3), [192, 168, 1, 1]);
  t.deepEqual(opt(r, 6), [192, 168, 1, 1, 8, 8, 8, 8]);
  t.deepEqual(opt(r, 26), [0xff, 0xf0]);
  t.deepEqual(opt(r, 51), [0xff, 0xff, 0xff, 0xff]);
  t.deepEqual(opt(r, 54), [192, 168, 1, 1]);
  t.deepEqual(opt(r, 119), [...hex('07 6578616d706c65 03 636f6d 00  03 656e67 c0 00')]);
  const r2 = run(ctxOf(), frameWith({ prl: [54, 3, 53, 1, 3, 250] }))!;
  t.deepEqual(codes(r2), [54, 3, 53, 1, 6, 26, 51, 119], '53 where 55 lists it; duplicates and unknown codes skipped');
  const r3 = run(ctxOf(), frameWith({ prl: [] }))!;
  t.deepEqual(codes(r3), [53, 1, 3, 6, 26, 51, 54, 119]);
});

test('END, one zero byte, zero padding to ≥ 60 bytes, ≤ 308 bytes', (t) => {
  const r = run(ctxOf({ searchDomains: [] }, { dns: [] }), frameWith({ prl: [1] }))!;
  const opts = decodeUdp4(r).payload.subarray(240);
  const { endAt } = dhcpOptions(opts);
  t.is(opts[endAt], 255);
  t.is(opts.length, 60);
  t.true(opts.subarray(endAt + 1).every((b) => b === 0));
  const full = run(ctxOf(), DHCP_DISCOVER)!;
  const o2 = decodeUdp4(full).payload.subarray(240);
  const e2 = dhcpOptions(o2).endAt;
  t.is(o2.length, Math.max(60, e2 + 2), 'END then exactly one zero byte when above 60');
  t.is(o2[e2 + 1], 0);
});

test('rapid commit DISCOVER → ACK with an empty option 80', (t) => {
  const r = run(ctxOf(), frameWith({ extraOptions: [80, 0] }))!;
  t.deepEqual(opt(r, 53), [5]);
  t.deepEqual(opt(r, 80), []);
  t.true(codes(r).includes(80));
  const offer = run(ctxOf(), DHCP_DISCOVER)!;
  t.false(codes(offer).includes(80), 'no option 80 in an OFFER');
});

test('REQUEST → ACK; plain BOOTP (no 53) → ACK; DECLINE/RELEASE/INFORM → nothing', (t) => {
  t.deepEqual(opt(run(ctxOf(), frameWith({ msgType: 3 }))!, 53), [5]);
  const bootp = run(ctxOf(), frameWith({ msgType: null }))!;
  t.deepEqual(opt(bootp, 53), [5]);
  const c = ctxOf();
  for (const ty of [4, 7, 8, 2, 5, 6, 99]) t.is(run(c, frameWith({ msgType: ty })), null, `type ${ty}`);
  t.is(c.drops[DROP.DHCP_IGNORED_TYPE], 7);
});

test('broadcast flag → 255.255.255.255', (t) => {
  const r = run(ctxOf(), frameWith({ flags: 0x8000 }))!;
  t.is(decodeUdp4(r).dst, '255.255.255.255');
  t.deepEqual([...decodeUdp4(r).payload.subarray(10, 12)], [0x80, 0]);
});

test('option 121 only when the gateway is outside the subnet', (t) => {
  const r = run(ctxOf({}, { addr: '192.168.1.100', prefixLen: 24, gateway: '10.0.0.1' }), DHCP_DISCOVER)!;
  t.deepEqual(opt(r, 121), [32, 10, 0, 0, 1, 0, 0, 0, 0, 0, 10, 0, 0, 1]);
  t.deepEqual(codes(r), [53, 1, 3, 6, 119, 121, 26, 51, 54]);
  const slash32 = run(ctxOf({}, { addr: '10.0.0.5', prefixLen: 32, gateway: '10.0.0.1' }), DHCP_DISCOVER)!;
  t.truthy(opt(slash32, 121));
  t.deepEqual(opt(slash32, 1), [255, 255, 255, 255]);
});

test('MTU, DNS and search options follow the switches', (t) => {
  const r = run(ctxOf({ mtu: 0, advertiseDns: false, advertiseSearch: false }), DHCP_DISCOVER)!;
  t.deepEqual(codes(r), [53, 1, 3, 51, 54]);
  const r2 = run(ctxOf({}, { dns: [] }), DHCP_DISCOVER)!;
  t.false(codes(r2).includes(6));
  const r3 = run(ctxOf({ mtu: 1500 }), DHCP_DISCOVER)!;
  t.deepEqual(opt(r3, 26), [0x05, 0xdc]);
});

/** Number of names in RFC 1035 data (pointers end a name); -1 if it does not end on a name boundary. */
function countNames(data: number[]): number {
  let p = 0;
  let n = 0;
  while (p < data.length) {
    for (;;) {
      if (p >= data.length) return -1;
      const b = data[p];
      if (b === 0) { p++; break; }
      if ((b & 0xc0) === 0xc0) { p += 2; break; }
      p += b + 1;
    }
    n++;
  }
  return p === data.length ? n : -1;
}

test('long search lists: cut to whole names that fit in the 308 bytes', (t) => {
  const names = Array.from({ length: 12 }, (_, i) => `d${i}-${'x'.repeat(40)}.example${i}.org`);
  const r = run(ctxOf({ searchDomains: names }), DHCP_DISCOVER)!;
  const opts = decodeUdp4(r).payload.subarray(240);
  t.true(opts.length <= 308);
  const list = dhcpOptions(opts).list;
  const data = list.filter(([c]) => c === 119).flatMap(([, v]) => v);
  t.is(countNames(data), 4, '4 names (223 bytes, with compression of "org") fit');
  t.true(data.includes(0xc0), 'compression pointers used');
  for (const c of [53, 1, 3, 6, 26, 51, 54]) t.true(list.some(([x]) => x === c), `option ${c} kept`);
});

test('search data over 255 bytes is split into consecutive option 119 pieces (RFC 3396)', (t) => {
  const names = ['x'.repeat(63) + '.' + 'y'.repeat(63) + '.a', 'x'.repeat(63) + '.' + 'y'.repeat(63) + '.b'];
  const r = run(ctxOf({ searchDomains: names, mtu: 0 }, { dns: [] }), DHCP_DISCOVER)!;
  const list = dhcpOptions(decodeUdp4(r).payload.subarray(240)).list;
  const pieces = list.filter(([c]) => c === 119).map(([, v]) => v.length);
  t.deepEqual(pieces, [255, 7]);
  t.deepEqual(codes(r), [53, 1, 3, 119, 119, 51, 54]);
  t.is(countNames(list.filter(([c]) => c === 119).flatMap(([, v]) => v)), 2);
});

test('disabled or automatically off: silently dropped', (t) => {
  for (const c of [ctxOf({ noDhcp: true }), ctxOf({}, { gateway: null }), ctxOf({}, { enabled: false })]) {
    t.is(run(c, DHCP_DISCOVER), null);
    t.is(c.drops[DROP.DHCP_DISABLED], 1);
  }
});

test('bad requests are dropped', (t) => {
  const c = ctxOf();
  // UDP length larger than the IP payload
  const lying = DHCP_DISCOVER.slice();
  lying[38] = 0x01; lying[39] = 0x40;
  t.is(run(c, lying), null);
  t.is(c.drops[DROP.MALFORMED], 1);
  // UDP length shorter than the IP payload (trailing bytes inside IP)
  const short = DHCP_DISCOVER.slice();
  short[39] -= 4;
  t.is(run(c, short), null);
  t.is(c.drops[DROP.DHCP_LENGTH], 1);
  // fewer than 240 bytes of BOOTP
  t.is(run(c, dhcpFrame(dhcpDiscoverPayload().subarray(0, 239))), null);
  t.is(c.drops[DROP.DHCP_LENGTH], 2);
  // BOOTREPLY
  t.is(run(c, frameWith({ op: 2 })), null);
  t.is(c.drops[DROP.DHCP_NOT_REQUEST], 1);
  // truncated option
  const trunc = concat(dhcpDiscoverPayload().subarray(0, 240), [53, 1, 1, 55, 9, 1, 3]);
  t.is(run(c, dhcpFrame(trunc)), null);
  t.is(c.drops[DROP.DHCP_BAD_OPTIONS], 1);
  // not to port 67 (the caller should not have sent it)
  const p68 = DHCP_DISCOVER.slice();
  p68[37] = 68;
  t.is(run(c, p68), null);
  t.is(c.drops[DROP.MALFORMED], 2);
  // output slot too small
  t.is(dhcpHandle(c, DHCP_DISCOVER, 0, DHCP_DISCOVER.length, new Uint8Array(DHCP_REPLY_MAX - 1), 0), 0);
  t.is(c.drops[DROP.OUT_TOO_SMALL], 1);
});

test('any destination address is served (port 67 is what counts)', (t) => {
  const r = run(ctxOf(), dhcpFrame(dhcpDiscoverPayload(), '192.168.1.1'));
  t.truthy(r);
});

test('reply length: headers + 240 + options, padded minimum 342 bytes', (t) => {
  const r = run(ctxOf({ searchDomains: [] }, { dns: [] }), frameWith({ prl: [1] }))!;
  t.is(r.length, 14 + 20 + 8 + 240 + 60);
});

/** Option 81 as a client sends it: flags, RCODE1, RCODE2, name. */
const clientFqdn = (flags: number, name = 'guest.example.com') => {
  const labels = name.split('.').flatMap((l) => [l.length, ...new TextEncoder().encode(l)]);
  return [81, 3 + labels.length + 1, flags, 0, 0, ...labels, 0];
};

test('--hostname: option 12 carries the name as is, in ascending place; absent without it', (t) => {
  const none = run(ctxOf(), frameWith({ prl: [1] }))!;
  t.false(codes(none).includes(12));
  t.false(codes(none).includes(81));
  const r = run(ctxOf({ hostname: 'guest-1' }), frameWith({ prl: [1] }))!;
  t.deepEqual(opt(r, 12), Array.from(new TextEncoder().encode('guest-1')));
  t.deepEqual(codes(r), [53, 1, 3, 6, 12, 26, 51, 54, 119]);
  // asked for first in the parameter request list: sent first after 53
  const asked = run(ctxOf({ hostname: 'guest-1' }), frameWith({ prl: [12, 1] }))!;
  t.deepEqual(codes(asked).slice(0, 3), [53, 12, 1]);
});

test('--fqdn: option 81 with flags E, RCODEs 255 and the name in wire labels (RFC 4702)', (t) => {
  const r = run(ctxOf({ fqdn: 'vm.example.org' }), frameWith({ prl: [1] }))!;
  t.deepEqual(opt(r, 81), [0x04, 255, 255, 2, 0x76, 0x6d, 7, ...new TextEncoder().encode('example'), 3, 0x6f, 0x72, 0x67, 0]);
  t.deepEqual(codes(r), [53, 1, 3, 6, 26, 51, 54, 81, 119]);
  // in the ACK too, and with a trailing dot given the encoding is the same
  const ack = run(ctxOf({ fqdn: 'vm.example.org.' }), frameWith({ prl: [1], msgType: 3 }))!;
  t.deepEqual(opt(ack, 53), [5]);
  t.deepEqual(opt(ack, 81), opt(r, 81));
});

test('--fqdn: the client asking us to update DNS (S) gets O, as we never do; N or E alone change nothing', (t) => {
  const c = ctxOf({ fqdn: 'vm.example.org' });
  const flagsFor = (extra: number[]) => opt(run(c, frameWith({ prl: [1], extraOptions: extra }))!, 81)![0];
  t.is(flagsFor(clientFqdn(0x01)), 0x04 | 0x02, 'S → O');
  t.is(flagsFor(clientFqdn(0x05)), 0x04 | 0x02, 'S+E → O');
  t.is(flagsFor(clientFqdn(0x08)), 0x04, 'N');
  t.is(flagsFor(clientFqdn(0x04)), 0x04, 'E');
  t.is(flagsFor([81, 0]), 0x04, 'empty option 81: no flags, request still answered');
  // the client's option 81 without --fqdn: nothing sent back
  t.false(codes(run(ctxOf(), frameWith({ extraOptions: clientFqdn(0x01) }))!).includes(81));
});

test('long hostname and FQDN: options that no longer fit are skipped, the area stays within 308 bytes', (t) => {
  const label = 'a'.repeat(63);
  const fqdn = [label, label, label, 'b'.repeat(57)].join('.'); // 249 bytes: option 81 of 254
  const c = ctxOf({ hostname: 'h'.repeat(253), fqdn });
  const r = run(c, frameWith({ prl: [1, 3, 12, 81] }))!;
  const area = decodeUdp4(r).payload.subarray(240);
  const list = dhcpOptions(area).list;
  t.deepEqual(codes(r).slice(0, 4), [53, 1, 3, 12], '81 does not fit after a 253-byte hostname');
  t.false(codes(r).includes(81));
  t.false(codes(r).includes(119), 'no room for the search list');
  t.true(area.length <= 308);
  t.is(list.find(([code]) => code === 12)![1].length, 253);
  // without the hostname, option 81 fits
  const f = run(ctxOf({ fqdn }), frameWith({ prl: [1] }))!;
  t.is(opt(f, 81)!.length, 3 + 251);
});

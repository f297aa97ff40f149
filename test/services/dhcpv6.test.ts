import test from 'ava';
import { DROP, serviceContextFromConfig, ServiceContext } from '../../src/shared/services/context';
import { dhcpv6Handle, DHCPV6_REPLY_MAX, NOT_ON_LINK_MESSAGE } from '../../src/shared/services/dhcpv6';
import { dhcpv6Frame, DHCPV6_SOLICIT, GUEST_LL, SOLICIT_PAYLOAD } from '../helpers/fixtures';
import { be16, be32, canariesIntact, concat, hex, ip6, makeConfig, START_MS, toHex } from '../helpers/frames';
import { decode6, dhcpv6Options } from '../helpers/decode';

type Over = Parameters<typeof makeConfig>;
const ctxOf = (o: Over[0] = {}, i4: Over[1] = {}, i6: Over[2] = {}) => {
  const c = serviceContextFromConfig(makeConfig(o, i4, i6), START_MS);
  c.guestMac.set(hex('525400123456'));
  return c;
};
const h6 = (s: string) => toHex(Uint8Array.from(ip6(s)));
const ADDR = ip6('2001:db8:1:2:aaaa:bbbb:cccc:dddd');
const OUR_DUID = hex('0001 0001 2f11ce00 9a559a559a55');
const CLIENT_ID = hex('0003 0001 525400123456');

function run(c: ServiceContext, frame: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(DHCPV6_REPLY_MAX + 12).fill(0xa5);
  const n = dhcpv6Handle(c, frame, 0, frame.length, out, 6);
  if (n === 0) {
    if (!canariesIntact(out, 0, 0)) throw new Error('wrote without replying');
    return null;
  }
  if (!canariesIntact(out, 6, n)) throw new Error('wrote outside the reply');
  return out.slice(6, 6 + n);
}

const opt = (code: number, data: Uint8Array | number[]) => concat(be16(code), be16(data.length), data);
const IA_NA = (iaid: number, inner: Uint8Array = new Uint8Array(0)) =>
  opt(3, concat(be32(iaid), be32(0), be32(0), inner));
const IAADDR = (a: string) => opt(5, concat(ip6(a), be32(0), be32(0)));
function msg(type: number, ...opts: Uint8Array[]): Uint8Array {
  return concat([type, 0x0a, 0x1b, 0x2c], ...opts);
}
const frame = (m: Uint8Array, src = GUEST_LL, dst = 'ff02::1:2') => dhcpv6Frame(m, src, dst);

function body(r: Uint8Array): { type: number; xid: string; opts: [number, Uint8Array][] } {
  const d = decode6(r);
  const u = d.l4.subarray(8);
  return { type: u[0], xid: toHex(u, 1, 3), opts: dhcpv6Options(u.subarray(4)) };
}

test('SOLICIT → ADVERTISE: IPv6/UDP framing, flow label = xid low 20 bits', (t) => {
  const r = run(ctxOf(), DHCPV6_SOLICIT)!;
  const d = decode6(r);
  t.is(d.dstMac, '52:54:00:12:34:56');
  t.is(d.srcMac, '9a:55:9a:55:9a:55');
  t.is(d.src, h6('fe80::1'), 'from our link-local');
  t.is(d.dst, h6(GUEST_LL), 'to the client link-local');
  t.is(d.hopLimit, 255);
  t.is(d.trafficClass, 0);
  t.is(d.flowLabel, 0xa1b2c);
  t.is(d.nextHeader, 17);
  t.is(d.payloadLen, d.l4.length);
  t.is((d.l4[0] << 8) | d.l4[1], 547);
  t.is((d.l4[2] << 8) | d.l4[3], 546);
  t.is((d.l4[4] << 8) | d.l4[5], d.l4.length);
  t.true(d.l4ChecksumOk, 'UDP checksum over IPv6 verified independently');
});

test('ADVERTISE contents in order: Server ID, IA_NA, Client ID, DNS, domain list', (t) => {
  const b = body(run(ctxOf(), DHCPV6_SOLICIT)!);
  t.is(b.type, 2);
  t.is(b.xid, '0a1b2c');
  t.deepEqual(b.opts.map(([c]) => c), [2, 3, 1, 23, 24]);
  t.deepEqual(b.opts[0][1], OUR_DUID);
  t.deepEqual(b.opts[1][1], concat(hex('00123456 ffffffff ffffffff'), be16(5), be16(24), ADDR, hex('ffffffff ffffffff')));
  t.deepEqual(b.opts[2][1], CLIENT_ID);
  t.deepEqual(b.opts[3][1], Uint8Array.from(ip6('2001:db8::53')));
  t.deepEqual(b.opts[4][1], hex('07 6578616d706c65 03 636f6d 00  03 656e67 07 6578616d706c65 03 636f6d 00'));
});

test('REQUEST/RENEW/REBIND with our Server ID → REPLY; learning rules', (t) => {
  const c = ctxOf();
  c.ip6.addrSeen.set(ip6('2001:db8:1:2::77'));
  for (const ty of [3, 5, 6]) {
    const r = run(c, frame(msg(ty, opt(1, CLIENT_ID), opt(2, OUR_DUID), IA_NA(7, IAADDR('2001:db8:1:2:aaaa:bbbb:cccc:dddd')))))!;
    const b = body(r);
    t.is(b.type, 7, `type ${ty}`);
    t.deepEqual(b.opts.map(([x]) => x), [2, 3, 1, 23, 24]);
    t.deepEqual(b.opts[1][1].subarray(0, 4), hex('00000007'));
  }
  t.deepEqual([...c.ip6.addrLlSeen], ip6(GUEST_LL), 'a request teaches the client link-local');
  t.deepEqual([...c.ip6.addrSeen], ADDR, 'a reply resets addrSeen to the assigned address');
});

test('Server ID rules', (t) => {
  const c = ctxOf();
  const wrong = hex('0001 0001 00000000 9a559a559a55');
  t.is(run(c, frame(msg(3, opt(1, CLIENT_ID)))), null, 'REQUEST without Server ID');
  t.is(run(c, frame(msg(3, opt(1, CLIENT_ID), opt(2, wrong)))), null, 'not ours');
  t.is(run(c, frame(msg(5, opt(1, CLIENT_ID), opt(2, OUR_DUID.subarray(0, 13))))), null, 'short');
  t.is(run(c, frame(msg(6, opt(1, CLIENT_ID)))), null, 'REBIND without Server ID (SPEC §3.5)');
  t.is(run(c, frame(msg(1, opt(1, CLIENT_ID), opt(2, OUR_DUID)))), null, 'SOLICIT with Server ID');
  t.is(run(c, frame(msg(4, opt(1, CLIENT_ID), opt(2, OUR_DUID)))), null, 'CONFIRM with Server ID');
  t.is(c.drops[DROP.DHCPV6_SERVER_ID], 6);
  t.truthy(run(c, frame(msg(11, opt(1, CLIENT_ID), opt(2, OUR_DUID)))), 'INFORMATION-REQUEST with ours');
  t.truthy(run(c, frame(msg(11, opt(1, CLIENT_ID)))), 'INFORMATION-REQUEST without');
  t.is(run(c, frame(msg(11, opt(1, CLIENT_ID), opt(2, wrong)))), null);
});

test('CONFIRM with our address → REPLY; with another → NotOnLink', (t) => {
  const ok = body(run(ctxOf(), frame(msg(4, opt(1, CLIENT_ID), IA_NA(9, IAADDR('2001:db8:1:2:aaaa:bbbb:cccc:dddd')))))!);
  t.is(ok.type, 7);
  t.deepEqual(ok.opts.map(([x]) => x), [2, 3, 1, 23, 24]);
  const nol = body(run(ctxOf(), frame(msg(4, opt(1, CLIENT_ID), IA_NA(9, IAADDR('2001:db8:99::1')))))!);
  t.is(nol.type, 7);
  t.deepEqual(nol.opts.map(([x]) => x), [2, 3, 1]);
  t.deepEqual(nol.opts[0][1], OUR_DUID);
  const text = new TextEncoder().encode(NOT_ON_LINK_MESSAGE);
  t.deepEqual(nol.opts[1][1], concat(hex('00000009 00000000 00000000'), be16(13), be16(2 + text.length), be16(4), text));
  t.deepEqual(nol.opts[2][1], CLIENT_ID);
});

test('NotOnLink for REQUEST and RENEW, IA_TA too; the first offending IA is reported', (t) => {
  const iaTa = opt(4, concat(be32(0x55), IAADDR('2001:db8:99::2')));
  const r = body(run(ctxOf(), frame(msg(3, opt(1, CLIENT_ID), opt(2, OUR_DUID),
    IA_NA(1, IAADDR('2001:db8:1:2:aaaa:bbbb:cccc:dddd')), iaTa, IA_NA(2, IAADDR('2001:db8:99::3')))))!);
  t.deepEqual(r.opts.map(([x]) => x), [2, 4, 1]);
  t.deepEqual(r.opts[1][1].subarray(0, 8), concat(be32(0x55), be16(13), be16(2 + NOT_ON_LINK_MESSAGE.length)));
  const renew = body(run(ctxOf(), frame(msg(5, opt(1, CLIENT_ID), opt(2, OUR_DUID), IA_NA(3, IAADDR('::1')))))!);
  t.deepEqual(renew.opts.map(([x]) => x), [2, 3, 1]);
  const rebind = body(run(ctxOf(), frame(msg(6, opt(1, CLIENT_ID), opt(2, OUR_DUID), IA_NA(3, IAADDR('::1')))))!);
  t.deepEqual(rebind.opts.map(([x]) => x), [2, 3, 1, 23, 24], 'REBIND has no NotOnLink check');
  const sol = body(run(ctxOf(), frame(msg(1, opt(1, CLIENT_ID), IA_NA(3, IAADDR('::1')))))!);
  t.is(sol.type, 2, 'nor SOLICIT');
});

test('INFORMATION-REQUEST → REPLY (IA_NA with IAID 0, as the original); IAs in it → dropped', (t) => {
  const b = body(run(ctxOf(), frame(msg(11, opt(1, CLIENT_ID))))!);
  t.is(b.type, 7);
  t.deepEqual(b.opts.map(([x]) => x), [2, 3, 1, 23, 24]);
  t.deepEqual(b.opts[1][1].subarray(0, 4), hex('00000000'));
  const c = ctxOf();
  t.is(run(c, frame(msg(11, opt(1, CLIENT_ID), IA_NA(1)))), null);
  t.is(run(c, frame(msg(11, opt(1, CLIENT_ID), opt(4, be32(1))))), null);
  t.is(c.drops[DROP.DHCPV6_BAD_IA], 2);
});

test('RELEASE, DECLINE, ADVERTISE, REPLY, relay messages: no reply', (t) => {
  const c = ctxOf();
  for (const ty of [8, 9, 2, 7, 12, 13, 0, 255]) t.is(run(c, frame(msg(ty, opt(1, CLIENT_ID), opt(2, OUR_DUID)))), null);
  t.is(c.drops[DROP.DHCPV6_IGNORED_TYPE], 8);
});

test('validation: multicast destination, UDP length, options, Client ID, IA_NA size', (t) => {
  const c = ctxOf();
  t.is(run(c, frame(SOLICIT_PAYLOAD, GUEST_LL, 'fe80::1')), null);
  t.is(c.drops[DROP.DHCPV6_NOT_MULTICAST], 1);
  t.truthy(run(c, frame(SOLICIT_PAYLOAD, GUEST_LL, 'ff05::1:3')), 'any multicast destination');
  const lying = DHCPV6_SOLICIT.slice();
  lying[54 + 5] -= 2; // UDP length 2 shorter than the IPv6 payload
  t.is(run(c, lying), null);
  t.is(c.drops[DROP.DHCPV6_LENGTH], 1);
  t.is(run(c, frame(SOLICIT_PAYLOAD.subarray(0, 3))), null, 'shorter than the header');
  t.is(run(c, frame(SOLICIT_PAYLOAD.subarray(0, SOLICIT_PAYLOAD.length - 1))), null, 'truncated IA_NA');
  t.is(c.drops[DROP.DHCPV6_BAD_OPTIONS], 1);
  t.is(run(c, frame(msg(1, IA_NA(1)))), null, 'no Client ID');
  t.is(run(c, frame(msg(1, opt(1, new Uint8Array(129))))), null, 'Client ID over 128 bytes');
  t.is(c.drops[DROP.DHCPV6_NO_CLIENT_ID], 2);
  const big = body(run(c, frame(msg(1, opt(1, new Uint8Array(128).fill(7)))))!);
  t.deepEqual(big.opts[2][1], new Uint8Array(128).fill(7), '128 bytes accepted and copied');
  t.is(run(c, frame(msg(1, opt(1, CLIENT_ID), opt(3, [0, 0, 1])))), null, 'IA_NA below 4 bytes');
  t.is(run(c, frame(msg(3, opt(1, CLIENT_ID), opt(2, OUR_DUID), IA_NA(1, hex('0005 0010 0000'))))), null, 'bad nested chain');
  t.is(run(c, frame(msg(3, opt(1, CLIENT_ID), opt(2, OUR_DUID), IA_NA(1, opt(5, new Uint8Array(8)))))), null, 'IA Address too short');
  t.is(c.drops[DROP.DHCPV6_BAD_IA], 3);
  const tiny = body(run(c, frame(msg(1, opt(1, CLIENT_ID), opt(3, be32(0xabcdef01)))))!);
  t.deepEqual(tiny.opts[1][1].subarray(0, 4), hex('abcdef01'), 'IA_NA of 4 bytes: IAID copied');
});

test('DNS and domain-list options follow the switches', (t) => {
  const codes = (c: ServiceContext) => body(run(c, DHCPV6_SOLICIT)!).opts.map(([x]) => x);
  t.deepEqual(codes(ctxOf({ advertiseDns: false })), [2, 3, 1, 24]);
  t.deepEqual(codes(ctxOf({}, {}, { dns: [] })), [2, 3, 1, 24]);
  t.deepEqual(codes(ctxOf({ advertiseSearch: false })), [2, 3, 1, 23]);
  t.deepEqual(codes(ctxOf({ searchDomains: ['.', 'a.example.'] })).slice(-1), [24]);
  const b = body(run(ctxOf({ searchDomains: ['.', 'a.example.'] }), DHCPV6_SOLICIT)!);
  t.deepEqual(b.opts[4][1], hex('01 61 07 6578616d706c65 00'), 'root skipped, trailing dot ignored');
  const names = Array.from({ length: 40 }, (_, i) => `h${i}-${'q'.repeat(50)}.example.org`);
  const r = run(ctxOf({ searchDomains: names }), DHCPV6_SOLICIT)!;
  t.true(r.length <= DHCPV6_REPLY_MAX);
  t.true(decode6(r).l4ChecksumOk);
});

test('disabled: --no-dhcpv6, IPv6 off, no address (local mode)', (t) => {
  for (const c of [ctxOf({ noDhcpv6: true }), ctxOf({}, {}, { enabled: false }), ctxOf({ localMode: true }, {}, { addr: null })]) {
    t.is(run(c, DHCPV6_SOLICIT), null);
    t.is(c.drops[DROP.DHCPV6_DISABLED], 1);
  }
});

test('the request is not modified; room check', (t) => {
  const f = DHCPV6_SOLICIT.slice();
  run(ctxOf(), f);
  t.deepEqual(f, DHCPV6_SOLICIT);
  const c = ctxOf();
  t.is(dhcpv6Handle(c, f, 0, f.length, new Uint8Array(DHCPV6_REPLY_MAX - 1), 0), 0);
  t.is(c.drops[DROP.OUT_TOO_SMALL], 1);
});

/** Client FQDN option 39 as a client sends it: flags, then the name in wire labels. */
const fqdnOpt = (flags: number, name = 'guest.example.org') =>
  opt(39, concat([flags], ...name.split('.').map((l) => concat([l.length], new TextEncoder().encode(l))), [0]));
const solicitWith = (...extra: Uint8Array[]) => frame(concat(SOLICIT_PAYLOAD, ...extra));

test('--fqdn: Client FQDN (39) after the domain list, flags 0, the name in wire labels (RFC 4704)', (t) => {
  t.false(body(run(ctxOf(), DHCPV6_SOLICIT)!).opts.some(([c]) => c === 39), 'absent without --fqdn');
  const b = body(run(ctxOf({ fqdn: 'vm.example.org' }), DHCPV6_SOLICIT)!);
  t.deepEqual(b.opts.map(([c]) => c), [2, 3, 1, 23, 24, 39]);
  t.deepEqual(b.opts[5][1], hex('00 02 766d 07 6578616d706c65 03 6f7267 00'));
  // REPLY to a REQUEST as well
  const req = msg(3, opt(1, CLIENT_ID), opt(2, OUR_DUID), IA_NA(1));
  t.deepEqual(body(run(ctxOf({ fqdn: 'vm.example.org' }), frame(req))!).opts.slice(-1)[0][0], 39);
  // --hostname has no DHCPv6 option
  t.false(body(run(ctxOf({ hostname: 'vm' }), DHCPV6_SOLICIT)!).opts.some(([c]) => c === 39));
});

test('--fqdn: a client asking us to update DNS (S) gets O, as we never do; other flags get 0', (t) => {
  const c = ctxOf({ fqdn: 'vm.example.org' });
  const flagsFor = (o: Uint8Array) => body(run(c, solicitWith(o))!).opts.find(([x]) => x === 39)![1][0];
  t.is(flagsFor(fqdnOpt(0x01)), 0x02, 'S → O');
  t.is(flagsFor(fqdnOpt(0x04)), 0x00, 'N');
  t.is(flagsFor(fqdnOpt(0x00)), 0x00);
  t.is(flagsFor(opt(39, [])), 0x00, 'empty option 39: no flags, still answered');
  // the NotOnLink reply carries no FQDN
  const bad = msg(4, opt(1, CLIENT_ID), IA_NA(1, IAADDR('2001:db8::99')), fqdnOpt(0x01));
  t.false(body(run(c, frame(bad))!).opts.some(([x]) => x === 39));
});

test('--fqdn: skipped when the domain list leaves no room', (t) => {
  const names = Array.from({ length: 40 }, (_, i) => `h${i}-${'q'.repeat(50)}.example.org`);
  const label = 'a'.repeat(63);
  const r = run(ctxOf({ searchDomains: names, fqdn: [label, label, label].join('.') }), DHCPV6_SOLICIT)!;
  t.true(r.length <= DHCPV6_REPLY_MAX);
  t.false(body(r).opts.some(([c]) => c === 39));
  t.true(decode6(r).l4ChecksumOk);
});

import test from 'ava';
import {
  DHCP_FIXED_LEN, DHCP_MAGIC_COOKIE, DHCP_MSG, DhcpView, parseDhcp, writeDhcpOption, writeDhcpReplyHeader,
} from '../../src/shared/wire/dhcpv4';
import { macToString } from '../../src/shared/wire/bytes';
import { dhcpDiscoverPayload } from '../helpers/fixtures';
import { canariesIntact, concat, hex, shared } from '../helpers/frames';

test('deconstruct a udhcpc DISCOVER', (t) => {
  const u8 = shared(dhcpDiscoverPayload());
  const v = DhcpView.check(u8, 0, u8.length)!;
  t.is(v.op, 1);
  t.is(v.htype, 1);
  t.is(v.hlen, 6);
  t.is(v.hops, 0);
  t.is(v.xid, 0x3903f326);
  t.is(v.secs, 0);
  t.is(v.flags, 0);
  t.false(v.broadcast);
  t.is(macToString(u8, v.chaddrOff), '52:54:00:12:34:56');
  t.is(v.cookie, DHCP_MAGIC_COOKIE);
  t.is(v.optionsOff, 240);
  t.is(v.optionsLen, 60);
  t.is(v.ciaddrOff, 12);
  t.is(v.yiaddrOff, 16);
  t.is(v.siaddrOff, 20);
  t.is(v.giaddrOff, 24);
  const r = parseDhcp(v)!;
  t.is(r.messageType, DHCP_MSG.DISCOVER);
  t.false(r.rapidCommit);
  t.is(r.paramRequestLen, 9);
  t.deepEqual([...u8.subarray(r.paramRequestOff, r.paramRequestOff + 9)], [1, 3, 6, 12, 15, 28, 42, 119, 121]);
});

test('rapid commit, broadcast flag, plain BOOTP', (t) => {
  const a = dhcpDiscoverPayload({ extraOptions: [80, 0], flags: 0x8000 });
  const v = DhcpView.check(a, 0, a.length)!;
  t.true(v.broadcast);
  t.true(parseDhcp(v)!.rapidCommit);
  const b = dhcpDiscoverPayload({ msgType: null });
  t.is(parseDhcp(DhcpView.check(b, 0, b.length)!)!.messageType, 0);
});

test('short messages, truncated options, empty option 53', (t) => {
  const u8 = dhcpDiscoverPayload();
  t.is(DhcpView.check(u8, 0, 239), null);
  t.truthy(DhcpView.check(u8, 0, 240));
  t.is(parseDhcp(DhcpView.check(u8, 0, 240)!)!.messageType, 0, 'no options at all');
  // cut inside option 55's value: 240 + 3 + 9 + 4 + 2 + 3
  t.is(parseDhcp(DhcpView.check(u8, 0, 261)!), null);
  // cut right after a type byte
  t.is(parseDhcp(DhcpView.check(u8, 0, 241)!), null);
  const e = concat(u8.subarray(0, 240), [53, 0, 255]);
  t.is(parseDhcp(DhcpView.check(e, 0, e.length)!), null);
});

test('pad is one byte, END stops the walk, missing END is fine, later option wins', (t) => {
  const base = dhcpDiscoverPayload().subarray(0, 240);
  const m = concat(base, [0, 0, 53, 1, 3, 0, 55, 2, 1, 3, 55, 1, 6, 255, 53, 1, 7, 99]);
  const r = parseDhcp(DhcpView.check(m, 0, m.length)!)!;
  t.is(r.messageType, 3);
  t.is(r.paramRequestLen, 1);
  t.is(m[r.paramRequestOff], 6);
  const n = concat(base, [53, 1, 1, 0xfe, 0]); // unknown option with empty value, no END
  t.is(parseDhcp(DhcpView.check(n, 0, n.length)!)!.messageType, 1);
});

test('reply header: echo rules into a 0xa5 buffer', (t) => {
  const req = dhcpDiscoverPayload({ flags: 0x8000 });
  req[3] = 2; // hops
  req[8] = 0x12; req[9] = 0x34; // secs
  req[12] = 10; // ciaddr
  req[20] = 20; // siaddr
  req[24] = 30; // giaddr
  req[44] = 0x41; // sname
  req[108] = 0x42; // file
  const out = new Uint8Array(260).fill(0xa5);
  t.is(writeDhcpReplyHeader(out, 10, req, 0, Uint8Array.of(192, 168, 1, 100), 0), DHCP_FIXED_LEN);
  const h = out.subarray(10, 250);
  const expect = req.slice(0, 240);
  expect[0] = 2; expect[3] = 0; expect[8] = 0; expect[9] = 0;
  expect.set([192, 168, 1, 100], 16);
  t.deepEqual(h, expect);
  t.true(canariesIntact(out, 10, 240));
});

test('writeDhcpOption', (t) => {
  const out = new Uint8Array(10).fill(0xa5);
  t.is(writeDhcpOption(out, 1, 3, hex('00c0a80101'), 1, 4), 6);
  t.deepEqual(out.subarray(1, 7), hex('03 04 c0a80101'));
  t.true(canariesIntact(out, 1, 6));
});

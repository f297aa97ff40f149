import test from 'ava';
import { serviceContextFromConfig } from '../../src/shared/services/context';
import { noteGuestFrame } from '../../src/shared/services/learn';
import { eth, GUEST_MAC, hex, ip6, ipv4, ipv6, makeConfig, START_MS } from '../helpers/frames';

const fresh = (local = false) => serviceContextFromConfig(local
  ? makeConfig({ localMode: true }, { addr: '169.254.2.1', prefixLen: 16, gateway: '169.254.2.2' }, { addr: null })
  : makeConfig(), START_MS);
const v4 = (src: string, dst = '1.1.1.1', flags = 0) =>
  eth('9a:55:9a:55:9a:55', GUEST_MAC, 0x0800, ipv4({ src, dst, proto: 17, flags }, new Uint8Array(8)));
const v6 = (src: string, dst = '2001:db8::9') =>
  eth('9a:55:9a:55:9a:55', GUEST_MAC, 0x86dd, ipv6({ src, dst, nh: 59 }, new Uint8Array(0)));

test('the guest MAC follows every frame of 14 bytes or more', (t) => {
  const ctx = fresh();
  noteGuestFrame(ctx, hex('ffffffffffff 020000000001 88cc'), 0, 14);
  t.deepEqual(ctx.guestMac, hex('020000000001'));
  noteGuestFrame(ctx, hex('ffffffffffff 020000000002 88'), 0, 13);
  t.deepEqual(ctx.guestMac, hex('020000000001'), 'too short: not a frame');
  noteGuestFrame(ctx, v4('10.0.0.1'), 0, 42);
  t.deepEqual(ctx.guestMac, hex('525400123456'));
});

test('IPv4: non-zero sources of valid packets become addrSeen', (t) => {
  const ctx = fresh();
  noteGuestFrame(ctx, v4('192.168.1.77'), 0, 42);
  t.deepEqual([...ctx.ip4.addrSeen], [192, 168, 1, 77]);
  noteGuestFrame(ctx, v4('0.0.0.0'), 0, 42);
  t.deepEqual([...ctx.ip4.addrSeen], [192, 168, 1, 77], '0.0.0.0 teaches nothing');
  noteGuestFrame(ctx, v4('127.0.0.1'), 0, 42);
  noteGuestFrame(ctx, v4('10.9.9.9', '127.0.0.1'), 0, 42);
  noteGuestFrame(ctx, v4('10.8.8.8', '1.1.1.1', 0x2000), 0, 42);
  t.deepEqual([...ctx.ip4.addrSeen], [192, 168, 1, 77], 'loopback and fragments are dropped, so not learned');
  const bad = v4('10.7.7.7');
  noteGuestFrame(ctx, bad, 0, 40);
  t.deepEqual([...ctx.ip4.addrSeen], [192, 168, 1, 77], 'truncated packet');
});

test('IPv6: link-local → addrLlSeen, global → addrSeen; ::, ::1, multicast ignored', (t) => {
  const ctx = fresh();
  noteGuestFrame(ctx, v6('fe80::5054:ff:fe12:3456'), 0, 54);
  t.true(ctx.ip6.hasAddrLlSeen);
  t.deepEqual([...ctx.ip6.addrLlSeen], ip6('fe80::5054:ff:fe12:3456'));
  t.deepEqual([...ctx.ip6.addrSeen], ip6('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), 'addrSeen already set');
  noteGuestFrame(ctx, v6('2001:db8:1:2::99'), 0, 54);
  t.deepEqual([...ctx.ip6.addrSeen], ip6('2001:db8:1:2::99'));
  for (const s of ['::', '::1', 'ff02::1']) noteGuestFrame(ctx, v6(s), 0, 54);
  noteGuestFrame(ctx, v6('2001:db8::5', '::1'), 0, 54);
  t.deepEqual([...ctx.ip6.addrSeen], ip6('2001:db8:1:2::99'));
  t.deepEqual([...ctx.ip6.addr], ip6('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), 'assigned address unchanged');
});

test('local mode: the first link-local source becomes addrSeen and the assigned address', (t) => {
  const ctx = fresh(true);
  t.false(ctx.ip6.hasAddr);
  noteGuestFrame(ctx, v6('fe80::abcd'), 0, 54);
  t.true(ctx.ip6.hasAddr);
  t.deepEqual([...ctx.ip6.addr], ip6('fe80::abcd'));
  t.deepEqual([...ctx.ip6.addrSeen], ip6('fe80::abcd'));
  noteGuestFrame(ctx, v6('fe80::ef'), 0, 54);
  t.deepEqual([...ctx.ip6.addr], ip6('fe80::abcd'), 'only while unset');
  t.deepEqual([...ctx.ip6.addrLlSeen], ip6('fe80::ef'));
  t.false(ctx.ip6.addrConfigured);
});

test('disabled family: nothing learned', (t) => {
  const ctx = serviceContextFromConfig(makeConfig({}, { enabled: false }), START_MS);
  noteGuestFrame(ctx, v4('10.1.1.1'), 0, 42);
  t.deepEqual([...ctx.ip4.addrSeen], [192, 168, 1, 100]);
});

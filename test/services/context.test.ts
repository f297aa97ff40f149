import test from 'ava';
import {
  DROP, DROP_COUNT, DROP_NAME, drop, dropStats, duidTimeFromEpochMs, searchDomainList, serviceContextFromConfig,
} from '../../src/shared/services/context';
import { hex, makeConfig, ip6, START_DUID_TIME, START_MS } from '../helpers/frames';

test('addresses and MACs become bytes', (t) => {
  const ctx = serviceContextFromConfig(makeConfig(), START_MS);
  t.deepEqual(ctx.ourMac, hex('9a559a559a55'));
  t.deepEqual(ctx.guestMac, hex('ffffffffffff'), 'passt starts with broadcast');
  t.is(ctx.mtu, 65520);
  t.deepEqual([...ctx.ip4.addr], [192, 168, 1, 100]);
  t.deepEqual([...ctx.ip4.mask], [255, 255, 255, 0]);
  t.deepEqual([...ctx.ip4.gateway], [192, 168, 1, 1]);
  t.deepEqual([...ctx.ip4.addrSeen], [192, 168, 1, 100]);
  t.is(ctx.ip4.dnsCount, 2);
  t.deepEqual([...ctx.ip4.dns.subarray(0, 8)], [192, 168, 1, 1, 8, 8, 8, 8]);
  t.deepEqual([...ctx.ip6.addr], ip6('2001:db8:1:2:aaaa:bbbb:cccc:dddd'));
  t.true(ctx.ip6.addrConfigured);
  t.deepEqual([...ctx.ip6.ourLinkLocal], ip6('fe80::1'));
  t.is(ctx.ip6.dnsCount, 1);
  t.false(ctx.ip6.hasAddrLlSeen);
  t.true(ctx.dhcpEnabled && ctx.ndpEnabled && ctx.raEnabled && ctx.dhcpv6Enabled);
});

test('pasta with --ns-mac-addr starts with that guest MAC', (t) => {
  const ctx = serviceContextFromConfig(makeConfig({ mode: 'pasta', nsMacAddr: '02:00:00:00:00:01' }), START_MS);
  t.deepEqual(ctx.guestMac, hex('020000000001'));
});

test('DNS lists: at most 3 per family, wrong-family entries skipped', (t) => {
  const ctx = serviceContextFromConfig(makeConfig({}, { dns: ['1.1.1.1', '::1', '2.2.2.2', '3.3.3.3', '4.4.4.4'] },
    { dns: ['1.1.1.1', '2001:db8::1'] }), START_MS);
  t.is(ctx.ip4.dnsCount, 3);
  t.deepEqual([...ctx.ip4.dns], [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
  t.is(ctx.ip6.dnsCount, 1);
});

test('DUID-LLT: type 1, Ethernet, seconds since 2000-01-01 UTC, our MAC', (t) => {
  t.is(duidTimeFromEpochMs(Date.UTC(2000, 0, 1)), 0);
  t.is(duidTimeFromEpochMs(Date.UTC(2000, 0, 1, 0, 0, 1, 999)), 1);
  t.is(duidTimeFromEpochMs(0), 0, 'before 2000 clamps to 0');
  const ctx = serviceContextFromConfig(makeConfig({ ourMac: '02:11:22:33:44:55' }), START_MS);
  t.is(ctx.duidTime, START_DUID_TIME);
  t.is(START_DUID_TIME, 789696000); // 9140 days: 25 years with 7 leap days, plus 8
  t.deepEqual(ctx.duid, hex('0001 0001 2f11 ce00 021122334455'));
});

test('service switches follow SPEC §3', (t) => {
  const on = (o: Parameters<typeof makeConfig>[0], i4 = {}, i6 = {}) => serviceContextFromConfig(makeConfig(o, i4, i6), START_MS);
  t.false(on({ noDhcp: true }).dhcpEnabled);
  t.false(on({}, { enabled: false }).dhcpEnabled);
  t.false(on({}, { gateway: null }).dhcpEnabled, 'no IPv4 gateway');
  t.false(on({}, { addr: null }).dhcpEnabled);
  t.false(on({ noNdp: true }).ndpEnabled);
  t.false(on({ noNdp: true }).raEnabled);
  t.false(on({ noIcmp: true }).ndpEnabled, '--no-icmp drops all ICMPv6');
  t.false(on({}, {}, { enabled: false }).ndpEnabled);
  const nora = on({ noRa: true });
  t.true(nora.ndpEnabled);
  t.false(nora.raEnabled);
  t.false(on({ configNet: true }).raEnabled, '--config-net implies --no-ra');
  t.false(on({ noDhcpv6: true }).dhcpv6Enabled);
  const local = on({ localMode: true }, { addr: '169.254.2.1', prefixLen: 16, gateway: '169.254.2.2' }, { addr: null });
  t.false(local.dhcpv6Enabled, 'local mode: no IPv6 address assigned');
  t.true(local.dhcpEnabled);
  t.true(local.raEnabled);
  t.false(local.ip6.addrConfigured);
});

test('search list: split on spaces, normalised, both encodings', (t) => {
  t.deepEqual(searchDomainList(['a.example. b.example', '.', 'bad..name', 'c.example.']), ['a.example', 'b.example', 'c.example']);
  const ctx = serviceContextFromConfig(makeConfig({ searchDomains: ['example.com', 'eng.example.com'] }), START_MS);
  t.deepEqual(ctx.searchLabels.ends, [13, 30]);
  t.deepEqual(ctx.searchCompressed.ends, [13, 19]);
});

test('drop counters and names', (t) => {
  const ctx = serviceContextFromConfig(makeConfig(), START_MS);
  t.is(ctx.drops.length, DROP_COUNT);
  t.is(drop(ctx, DROP.NDP_DAD), 0);
  drop(ctx, DROP.NDP_DAD, new Uint8Array(3), 0, 3);
  t.is(ctx.drops[DROP.NDP_DAD], 2);
  t.deepEqual(dropStats(ctx), { [DROP_NAME[DROP.NDP_DAD]]: 2 });
  t.is(Object.keys(DROP_NAME).length, DROP_COUNT);
});

import test from 'ava';
import { parseOptions, resolveConfig, classfulPrefix, HostState, tuningFor, nodeFlags } from '../../src/main/conf';
import { parseResolvConf } from '../../src/main/hostInfo';
import { hostFamily } from '../helpers/fixtures';
import { PasstError } from '../../src/shared/errors';

const EPH: [number, number] = [49152, 65535];
const p = (mode: 'pasta' | 'passt', ...argv: string[]) => parseOptions(mode, argv, EPH);
const bad = (mode: 'pasta' | 'passt', argv: string[], re: RegExp) => (t: any) => {
  const e = t.throws(() => p(mode, ...argv), { instanceOf: PasstError });
  t.regex(e.message, re);
};

test('getopt forms: grouped shorts, attached values, --opt=value, last scalar wins', (t) => {
  const o = p('pasta', '-fd', '-m1500', '--mtu=9000', '-q', '--', 'cmd', '-x');
  t.true(o.foreground);
  t.is(o.mtu, 9000);
  t.is(o.logLevel, 'warning', 'last of -d/-q wins');
  t.deepEqual(o.command, ['cmd', '-x']);
});

test('options stop at the first non-option argument', (t) => {
  const o = p('pasta', '--config-net', 'ls', '-l', '--config-net');
  t.deepEqual(o.command, ['ls', '-l', '--config-net']);
});

test('a single all-digit argument is a PID; --netns NAME resolves under /run/netns', (t) => {
  t.is(p('pasta', '1234').targetPid, 1234);
  const n = p('pasta', '--netns', 'foo');
  t.is(n.netns, '/run/netns/foo');
  t.true(n.netnsOnly);
  t.false(n.foreground);
  t.false(p('pasta', '--netns', 'foo', '--userns', '/proc/1/ns/user').netnsOnly);
});

test('spawning implies foreground and quiet unless -d', (t) => {
  const o = p('pasta', '--', 'true');
  t.true(o.foreground);
  t.is(o.logLevel, 'warning');
  t.is(p('pasta', '-d', '--', 'true').logLevel, 'debug');
});

test('mode-specific options', (t) => {
  bad('pasta', ['-s', 'x'], /invalid option -- 's'/)(t);
  bad('passt', ['-T', '1'], /invalid option -- 'T'/)(t);
  bad('passt', ['--config-net'], /--config-net is for pasta mode only/)(t);
  bad('pasta', ['--one-off'], /--one-off is for passt mode only/)(t);
  t.is(p('pasta', '--socket', '/x', '--', 'true').socketPath, null, 'pasta ignores --socket');
  t.is(p('passt', '--ns-ifname', 'x').nsIfname, null, 'passt ignores --ns-ifname');
  bad('passt', ['--tcp-ns', 'auto'], /only allowed for pasta/)(t);
  t.true(p('passt', '--print-capabilities').printCapabilities);
  t.true(p('pasta', '--print-capabilities').printCapabilities);
  bad('passt', ['extra'], /Extra non-option argument/)(t);
});

test('unknown options and missing arguments use getopt wording', (t) => {
  bad('pasta', ['--map-guest-addrx', '1'], /^pasta: unrecognized option '--map-guest-addrx'$/)(t);
  bad('pasta', ['-t'], /option requires an argument -- 't'/)(t);
  bad('pasta', ['--netns'], /option '--netns' requires an argument/)(t);
});

test('value validation', (t) => {
  for (const m of ['67', '65536', '-1', 'x', '1e3']) bad('pasta', ['-m', m], /Invalid MTU/)(t);
  t.is(p('pasta', '-m', '0').mtu, 0);
  t.is(p('pasta', '-m', '68').mtu, 68);
  bad('pasta', ['-M', '9a:55:9a:55:9a:5'], /Invalid MAC/)(t);
  bad('pasta', ['-M', '9a:55:9a:55:9a:5g'], /Invalid MAC/)(t);
  t.is(p('pasta', '-M', '9A:55:9a:55:9a:55').ourMac, '9a:55:9a:55:9a:55');
  for (const a of ['0.0.0.0', '127.0.0.1', '224.0.0.1', '255.255.255.255', '::', '::1', 'ff02::1', '::ffff:1.2.3.4', '1.2.3', 'x'])
    bad('pasta', ['-a', a], /Invalid address/)(t);
  bad('pasta', ['-a', '10.0.0.1', '-a', '10.0.0.2'], /Multiple IPv4/)(t);
  t.is(p('pasta', '-n', '255.255.255.0').prefix4, 24);
  t.is(p('pasta', '-n', '20').prefix4, 20);
  bad('pasta', ['-n', '255.0.255.0'], /Invalid netmask/)(t);
  bad('pasta', ['-n', '33'], /Invalid netmask/)(t);
  bad('pasta', ['-I', 'a-very-long-ifname'], /Invalid namespace interface name/)(t);
  bad('pasta', ['-F', '2'], /Invalid file descriptor/)(t);
  bad('pasta', ['--log-size', '40959'], /Invalid log file size/)(t);
  bad('passt', ['-s', 'x'.repeat(108)], /Invalid socket path/)(t);
  bad('pasta', ['--map-host-loopback', '127.0.0.1'], /Invalid/)(t);
  bad('pasta', ['--dns-forward', '0.0.0.0'], /Invalid/)(t);
});

test('per-family options and -4/-6 last wins', (t) => {
  const o = p('pasta', '-g', '10.0.0.1', '-g', 'fe80::1', '-o', '10.0.0.2', '-6', '-4');
  t.is(o.gw4, '10.0.0.1');
  t.is(o.gw6, 'fe80::1');
  t.is(o.outbound4, '10.0.0.2');
  t.true(o.only4);
  t.false(o.only6);
});

test('-D and -S accumulate; none disables', (t) => {
  const o = p('passt', '-D', '192.0.2.53', '-D', '2001:db8::53', '-S', 'a.example b.example', '-S', 'c.example');
  t.deepEqual(o.dns, ['192.0.2.53', '2001:db8::53']);
  t.deepEqual(o.search, ['a.example', 'b.example', 'c.example']);
  t.is(p('passt', '-D', 'none').dns, 'none');
});

test('classful prefix for -a without -n', (t) => {
  t.is(classfulPrefix('10.1.2.3'), 8);
  t.is(classfulPrefix('172.16.0.1'), 16);
  t.is(classfulPrefix('192.168.1.1'), 24);
  t.is(classfulPrefix('224.0.0.1'), 32);
});

const fam = hostFamily;
const resolv = parseResolvConf('nameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver ::1\nsearch a.example b.example\n');
const host: HostState = { tmpl4: fam(2), tmpl6: fam(10), resolv };

test('default addressing: the host address, prefix and gateway; gateway maps host loopback', (t) => {
  const c = resolveConfig(p('passt'), host);
  t.is(c.ip4.addr, '192.0.2.2');
  t.is(c.ip4.prefixLen, 24);
  t.is(c.ip4.gateway, '192.0.2.1');
  t.is(c.ip4.mapHostLoopback, '192.0.2.1');
  t.is(c.ip6.addr, '2001:db8::2');
  t.is(c.ip6.ourLinkLocal, 'fe80::9', 'our link-local is the template interface\'s when the gateway is global');
  t.is(c.mtu, 65520);
  t.is(c.ourMac, '9a:55:9a:55:9a:55');
  t.is(c.tcpIn.mode, 'none');
  t.is(c.nsIfname, 'eth0');
  t.false(c.localMode);
});

test('DNS: loopback resolvers become the host-loopback mapping and the forward match', (t) => {
  const c = resolveConfig(p('passt'), host);
  t.deepEqual(c.ip4.dns, ['192.0.2.1', '192.0.2.53']);
  t.is(c.ip4.dnsMatch, '192.0.2.1');
  t.is(c.ip4.dnsHost, '127.0.0.53');
  t.deepEqual(c.ip6.dns, ['2001:db8::1']);
  t.deepEqual(c.searchDomains, ['a.example', 'b.example']);
  t.true(c.advertiseDns);
  const nomap = resolveConfig(p('passt', '--no-map-gw'), host);
  t.deepEqual(nomap.ip4.dns, ['192.0.2.53'], 'without a mapping, loopback resolvers are skipped');
  t.is(nomap.ip4.dnsMatch, null);
  const pasta = resolveConfig(p('pasta', '--', 'true'), host);
  t.false(pasta.advertiseDns, 'pasta advertises DNS only with --dhcp-dns');
  t.deepEqual(resolveConfig(p('passt', '-D', 'none'), host).ip4.dns, []);
});

test('local mode when the host has no usable interface', (t) => {
  const c = resolveConfig(p('pasta', '--', 'true'), { tmpl4: null, tmpl6: null, resolv });
  t.true(c.localMode);
  t.is(c.ip4.addr, '169.254.2.1');
  t.is(c.ip4.prefixLen, 16);
  t.is(c.ip4.gateway, '169.254.2.2');
  t.is(c.ip6.gateway, 'fe80::1');
  t.is(c.ip6.addr, null);
  t.is(c.nsIfname, 'tap0');
});

test('-a/-g/-n override, and IPv6 needs a link-local address', (t) => {
  const c = resolveConfig(p('pasta', '-a', '10.0.2.100', '-n', '24', '-g', '10.0.2.2', '--', 'true'), host);
  t.is(c.ip4.addr, '10.0.2.100');
  t.is(c.ip4.prefixLen, 24);
  t.true(c.ip4.addrGiven && c.ip4.gatewayGiven);
  const noLL = resolveConfig(p('pasta', '--', 'true'), { ...host, tmpl6: fam(10, { linkLocal: null }) });
  t.false(noLL.ip6.enabled);
  const only4 = resolveConfig(p('pasta', '-4', '--', 'true'), host);
  t.false(only4.ip6.enabled);
  t.true(only4.ip4.enabled);
});

test('resolv.conf parsing strips zones and ignores junk', (t) => {
  const r = parseResolvConf('# c\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 10.0.0.1 # x\ndomain d.example\nsearch s.example\n');
  t.deepEqual(r.nameservers6, ['fe80::1']);
  t.deepEqual(r.nameservers4, ['10.0.0.1']);
  t.deepEqual(r.search, ['s.example']);
});

test('--hostname and --fqdn: both modes, validated, handed to the configuration', (t) => {
  for (const mode of ['pasta', 'passt'] as const) {
    const o = p(mode, '-H', 'guest-1', '--fqdn', 'guest-1.example.org.');
    t.is(o.hostname, 'guest-1');
    t.is(o.fqdn, 'guest-1.example.org', 'trailing dot dropped');
    t.deepEqual(o.warnings, [], 'no "not supported" warning any more');
    const c = resolveConfig(o, host);
    t.is(c.hostname, 'guest-1');
    t.is(c.fqdn, 'guest-1.example.org');
  }
  t.is(p('passt', '--hostname', 'x', '--hostname', '').hostname, null, 'empty means none, as in the original');
  t.is(p('passt', '--hostname', 'h'.repeat(253)).hostname, 'h'.repeat(253));
  bad('passt', ['--hostname', 'h'.repeat(254)], /Invalid hostname/)(t);
  t.is(resolveConfig(p('passt'), host).hostname, null);
  for (const f of ['a..b', `${'l'.repeat(64)}.example`, '.', `${'a.'.repeat(127)}b`]) bad('passt', ['--fqdn', f], /Invalid FQDN/)(t);
  t.is(p('passt', '--fqdn', `${'l'.repeat(63)}.example`).fqdn, `${'l'.repeat(63)}.example`);
});

test('local mode also when the templates have routes but no usable address; a usable family prevents it', (t) => {
  const unnumbered = { tmpl4: fam(2, { ifname: 'wlan0', addr: null, prefixLen: 0 }),
    tmpl6: fam(10, { ifname: 'wlan0', addr: null, linkLocal: null }), resolv };
  for (const mode of ['pasta', 'passt'] as const) {
    const c = resolveConfig(p(mode, ...(mode === 'pasta' ? ['--', 'true'] : [])), unnumbered);
    t.true(c.localMode, mode);
    t.is(c.ip4.addr, '169.254.2.1');
    t.is(c.ip4.gateway, '169.254.2.2');
    t.is(c.ip4.mapHostLoopback, '169.254.2.2', 'the gateway still reaches the host loopback');
    t.is(c.ip6.gateway, 'fe80::1');
    t.is(c.ip6.ourLinkLocal, 'fe80::1');
    t.is(c.ip6.mapHostLoopback, 'fe80::1');
    t.is(c.nsIfname, 'tap0', 'not named after an interface that is no template');
    t.false(c.noDhcp, 'DHCP hands out the link-local address');
    t.true(c.noDhcpv6, 'no IPv6 address to hand out');
  }
  // only IPv6 unusable: IPv4 from the host, no local mode
  const v4only = resolveConfig(p('pasta', '--', 'true'), { ...unnumbered, tmpl4: fam(2) });
  t.false(v4only.localMode);
  t.false(v4only.ip6.enabled);
  t.is(v4only.nsIfname, 'eth0');
  // only IPv4 unusable: the tap is named after the IPv6 template
  const v6only = resolveConfig(p('pasta', '--', 'true'), { ...unnumbered, tmpl6: fam(10, { ifname: 'eth6' }) });
  t.false(v6only.localMode);
  t.false(v6only.ip4.enabled);
  t.is(v6only.nsIfname, 'eth6');
  // -4 with an unusable IPv4 template: IPv4-only local mode
  const l4 = resolveConfig(p('pasta', '-4', '--', 'true'), { ...unnumbered, tmpl6: fam(10) });
  t.true(l4.localMode);
  t.false(l4.ip6.enabled);
  // a given outbound interface that is no usable template is fatal (SPEC §2.1)
  t.throws(() => resolveConfig(p('pasta', '--outbound-if4', 'wlan0', '--', 'true'), unnumbered),
    { message: /External interface not usable/ });
});

test('tuning: one default per mode (passt runs tap-RX in the TCP worker, pasta never lets the TCP worker write the tap)', (t) => {
  const passt = tuningFor('passt', {});
  const pasta = tuningFor('pasta', {});
  t.true(passt.inlineRx);
  t.false(pasta.inlineRx);
  t.deepEqual(passt.directTx, { tcp: true, udp: true });
  t.deepEqual(pasta.directTx, { tcp: false, udp: true });
  for (const x of [passt, pasta]) {
    t.is(x.spinUs, 100);
    t.true(x.offload);
    t.false(x.ringDebug);
    t.deepEqual(x.tcpDrop, { toGuest: 0, fromGuest: 0 });
    t.is(x.udpTimeoutMs, 180000);
    t.is(x.pingTimeoutMs, 60000);
    t.is(x.udpBatch, 32);
  }
  t.deepEqual(resolveConfig(p('pasta', '--', 'true'), host, {}).tuning, pasta);
});

test('tuning: the environment overrides, read once by conf.ts; bad values are ignored with a warning', (t) => {
  const w: string[] = [];
  const x = tuningFor('pasta', {
    PASST_TS_INLINE_RX: '1', PASST_TS_DIRECT_TX: '1', PASST_TS_SPIN_US: '0', PASST_TS_OFFLOAD: '0',
    PASST_RING_DEBUG: '1', PASST_TS_TCP_DROP: 'to=50,from=7', PASST_TS_UDP_TIMEOUT_MS: '1000',
    PASST_TS_PING_TIMEOUT_MS: '500', PASST_TS_UDP_BATCH: '1',
  }, w);
  t.deepEqual(w, []);
  t.true(x.inlineRx);
  t.deepEqual(x.directTx, { tcp: false, udp: true }, 'TCP direct writes in pasta are no variant any more');
  t.is(x.spinUs, 0);
  t.false(x.offload);
  t.true(x.ringDebug);
  t.deepEqual(x.tcpDrop, { toGuest: 50, fromGuest: 7 });
  t.is(x.udpTimeoutMs, 1000);
  t.is(x.pingTimeoutMs, 500);
  t.is(x.udpBatch, 1);
  t.deepEqual(tuningFor('passt', { PASST_TS_DIRECT_TX: '0', PASST_TS_INLINE_RX: '0' }).directTx, { tcp: false, udp: false });
  t.false(tuningFor('passt', { PASST_TS_INLINE_RX: '0' }).inlineRx);
  const bad = tuningFor('passt', { PASST_TS_UDP_BATCH: '65', PASST_TS_INLINE_RX: 'yes', PASST_TS_TCP_DROP: 'every=3' }, w);
  t.is(bad.udpBatch, 32);
  t.true(bad.inlineRx);
  t.deepEqual(bad.tcpDrop, { toGuest: 0, fromGuest: 0 });
  t.is(w.length, 3, w.join('; '));
});

test('tuning: memory per instance (V8 platform threads, semi-space size), overridable', (t) => {
  for (const mode of ['pasta', 'passt'] as const) t.deepEqual(tuningFor(mode, {}).memory, { v8PoolSize: 1, semiSpaceMb: 1, compactAfterStart: true, lazyUdp: true, trimAfterStart: true });
  t.deepEqual(tuningFor('pasta', { PASST_TS_V8_POOL_SIZE: '0', PASST_TS_SEMI_SPACE_MB: '0', PASST_TS_COMPACT_AFTER_START: '0', PASST_TS_LAZY_UDP: '0', PASST_TS_MALLOC_TRIM: '0' }).memory,
    { v8PoolSize: 0, semiSpaceMb: 0, compactAfterStart: false, lazyUdp: false, trimAfterStart: false });
  t.deepEqual(tuningFor('pasta', { PASST_TS_V8_POOL_SIZE: '2', PASST_TS_SEMI_SPACE_MB: '8' }).memory, { v8PoolSize: 2, semiSpaceMb: 8, compactAfterStart: true, lazyUdp: true, trimAfterStart: true });
  const w: string[] = [];
  t.deepEqual(tuningFor('pasta', { PASST_TS_V8_POOL_SIZE: '-1', PASST_TS_SEMI_SPACE_MB: 'big', PASST_TS_COMPACT_AFTER_START: 'yes', PASST_TS_LAZY_UDP: '2' }, w).memory,
    tuningFor('pasta', {}).memory);
  t.is(w.length, 4, w.join('; '));
});

test('nodeFlags: the launching process\'s own flags, with the tuning\'s V8 settings in place of any given', (t) => {
  const m = (v8PoolSize: number, semiSpaceMb = 0) => ({ v8PoolSize, semiSpaceMb, compactAfterStart: true, lazyUdp: true, trimAfterStart: true });
  t.deepEqual(nodeFlags(m(1, 1), []), ['--v8-pool-size=1', '--max-semi-space-size=1']);
  t.deepEqual(nodeFlags(m(2), ['--inspect', '--v8-pool-size=4', '--stack-size=900']), ['--inspect', '--stack-size=900', '--v8-pool-size=2']);
  t.deepEqual(nodeFlags(m(1, 2), ['--v8-pool-size', '4', '--v8_pool_size=3', '--max_semi_space_size=16', '--max-semi-space-size', '8']),
    ['--v8-pool-size=1', '--max-semi-space-size=2'], 'both spellings, value apart or not');
  t.deepEqual(nodeFlags(m(0), ['--v8-pool-size=1', '--max-semi-space-size=1', '--trace-gc']), ['--trace-gc'], "0: Node's defaults");
  t.deepEqual(nodeFlags(m(1), ['--max-old-space-size=64']), ['--max-old-space-size=64', '--v8-pool-size=1'], 'other flags kept');
});

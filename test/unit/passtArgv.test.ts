/**
 * The command lines real clients give passt (CLIENTS.md §3, §4) parse into
 * the configuration they mean: libvirt's (ports with ~ exclusions, :to
 * mappings, ADDR%DEV/ prefixes with unbracketed IPv6 addresses, `all`,
 * --address/--netmask per family, early versions' --mac-addr), qemu's
 * `-netdev passt` (--fd, --quiet, --search "d1 d2", per-family options),
 * muvm's `-q -f --fd N`, and passt's own test suite's.
 */
import test from 'ava';
import { parseOptions } from '../../src/main/conf';
import type { ForwardSpec } from '../../src/shared/config';
import { PasstError } from '../../src/shared/errors';

const EPH: [number, number] = [49152, 65535];
const passt = (...argv: string[]) => parseOptions('passt', argv, EPH);

/** "bind/port>target" strings of a spec. */
function ports(spec: ForwardSpec | null): string[] {
  if (!spec) return [];
  return spec.rules.flatMap((r) => r.ports.map((p) => {
    const bind = r.addr || r.ifname ? `${r.addr ?? ''}${r.ifname ? `%${r.ifname}` : ''}/` : '';
    return `${bind}${p.port}${p.delta ? `>${(p.port + p.delta) & 0xffff}` : ''}`;
  }));
}

test("libvirt's example argv (tests/qemuxmlconfdata/net-user-passt.x86_64-latest.args)", (t) => {
  const o = passt('--one-off', '--socket', '/var/run/libvirt/qemu/passt/-1-QEMUGuest1-net0.socket',
    '--pid', '/var/run/libvirt/qemu/passt/-1-QEMUGuest1-net0-passt.pid', '--mtu', '1500', '--interface', 'eth0',
    '--address', '192.0.2.1', '--netmask', '24', '--address', '2001:db8::5', // the fixture's ::ffff:c000:201 is refused, below
    '--tcp-ports', '2022:22', '--udp-ports', '1.2.3.4/5000-5020:6000-6020,~5010-5015',
    '--tcp-ports', '2001:db8:ac10:fd01::1:10%eth0/8080,4433:3444');
  t.true(o.oneOff);
  t.false(o.foreground, 'libvirt waits for the foreground process to exit');
  t.is(o.socketPath, '/var/run/libvirt/qemu/passt/-1-QEMUGuest1-net0.socket');
  t.is(o.pidFile, '/var/run/libvirt/qemu/passt/-1-QEMUGuest1-net0-passt.pid');
  t.is(o.mtu, 1500);
  t.is(o.ifname, 'eth0');
  t.is(o.addr4, '192.0.2.1');
  t.is(o.prefix4, 24);
  t.is(o.addr6, '2001:db8::5');
  t.deepEqual(ports(o.tcpIn).sort(), ['2001:db8:ac10:fd01::1:10%eth0/4433>3444', '2001:db8:ac10:fd01::1:10%eth0/8080', '2022>22']);
  const u = ports(o.udpIn);
  t.is(u.length, 21 - 6);
  t.true(u.includes('1.2.3.4/5000>6000'));
  t.true(u.includes('1.2.3.4/5020>6020'));
  t.false(u.some((p) => /\/501[0-5]>/.test(p)), 'exclusions ~5010-5015 applied');
});

test("libvirt's IPv4-mapped --address is refused like the original (not a usable guest address)", (t) => {
  t.throws(() => passt('--address', '::ffff:c000:201'), { instanceOf: PasstError, message: /Invalid address/ });
});

test('libvirt --tcp-ports all: every non-ephemeral port, best effort; exclusions-only likewise', (t) => {
  const all = passt('--tcp-ports', 'all').tcpIn as ForwardSpec;
  t.is(all.mode, 'all');
  t.is(all.rules[0].ports.length, 49151);
  t.true(all.rules[0].bestEffort);
  const ex = passt('--udp-ports', '~53,~5353').udpIn as ForwardSpec;
  t.is(ex.rules[0].ports.length, 49151 - 2);
  t.false(ex.rules[0].ports.some((p) => p.port === 53 || p.port === 5353));
});

test('libvirt with an address and a device only, and an interface prefix without address', (t) => {
  t.deepEqual(ports(passt('-t', '192.0.2.1%eth0/22').tcpIn), ['192.0.2.1%eth0/22']);
  t.deepEqual(ports(passt('-t', '%eth0/22-23').tcpIn), ['%eth0/22', '%eth0/23']);
});

test('early libvirt (9.0): --mac-addr and no --pid', (t) => {
  const o = passt('--one-off', '--socket', '/tmp/s', '--mac-addr', '52:54:00:AA:bb:cc');
  t.is(o.ourMac, '52:54:00:aa:bb:cc');
});

test("qemu -netdev passt argv (net/passt.c): --quiet, per-family options, --search list, --fd 3 (one-off implied)", (t) => {
  const o = passt('--quiet', '--mtu', '65520', '--address', '10.0.2.15', '--netmask', '255.255.255.0',
    '--mac-addr', '9a:55:9a:55:9a:56', '--gateway', '10.0.2.2', '--interface', 'eth0', '--outbound', '192.0.2.2',
    '--outbound-if4', 'eth0', '--outbound-if6', 'eth0', '--dns', '10.0.2.3', '--no-dhcp-dns', '--no-dhcp-search',
    '--map-host-loopback', '10.0.2.2', '--map-guest-addr', '10.0.2.100', '--dns-forward', '10.0.2.3',
    '--dns-host', '192.0.2.53', '--no-icmp', '--freebind', '--ipv4-only', '--search', 'example.com example.org',
    '--tcp-ports', '2222:22,8080', '--udp-ports', '5353', '--pid', '/tmp/passt-XXXXXX.pid', '--fd', '3');
  t.is(o.logLevel, 'warning');
  t.is(o.prefix4, 24);
  t.is(o.fd, 3);
  t.true(o.oneOff, '--fd implies --one-off');
  t.false(o.foreground, 'qemu waits for the foreground to exit');
  t.deepEqual(o.search, ['example.com', 'example.org']);
  t.deepEqual(ports(o.tcpIn), ['2222>22', '8080']);
  t.true(o.only4);
  t.false(o.advertiseDns);
});

test('muvm: -q -f --fd N; passt test suite: -s -f -t -u -P', (t) => {
  const m = passt('-q', '-f', '--fd', '5');
  t.true(m.foreground);
  t.is(m.fd, 5);
  const s = passt('-s', '/run/passt.socket', '-f', '-t', '10001', '-u', '10001', '-P', '/run/passt.pid');
  t.deepEqual(ports(s.tcpIn), ['10001']);
  t.deepEqual(ports(s.udpIn), ['10001']);
});

test('passt defaults (SPEC §8, §10): no forwarding, daemonise, DNS and search advertised', (t) => {
  const o = passt();
  t.is(o.tcpIn, null, 'resolved to none');
  t.false(o.foreground);
  t.false(o.oneOff);
  t.true(o.advertiseDns);
  t.true(o.advertiseSearch);
  t.is(o.socketPath, null, 'probe /tmp/passt_N.socket');
});

test('passt refuses what is not passt: auto, -T, --fd 2, extra arguments, socket paths too long', (t) => {
  t.throws(() => passt('-t', 'auto'), { instanceOf: PasstError });
  t.throws(() => passt('-T', '80'), { instanceOf: PasstError });
  t.throws(() => passt('--fd', '2'), { instanceOf: PasstError });
  t.throws(() => passt('extra'), { instanceOf: PasstError, message: /Extra non-option argument/ });
  t.throws(() => passt('-s', '/tmp/' + 'x'.repeat(110)), { instanceOf: PasstError });
});

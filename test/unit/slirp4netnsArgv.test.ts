/**
 * slirp4netns-ts's command line: the argv real clients give slirp4netns
 * (Podman's, CLIENTS.md §1.8; rootlesskit's, §5.1; the man page's), parsed
 * with slirp4netns 1.2's rules and messages, and mapped onto a pasta
 * command line whose configuration has slirp4netns' addressing.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseOptions, resolveConfig, HostState } from '../../src/main/conf';
import { parseResolvConf } from '../../src/main/hostInfo';
import {
  parseSlirpArgs, toPastaArgv, slirpAddressing, SlirpUsageError, SlirpOptions,
} from '../../src/main/slirp4netns/options';
import { slirpUsage } from '../../src/main/slirp4netns/usage';
import { banner } from '../../src/main/slirp4netns/run';
import { hostFamily } from '../helpers/fixtures';
import { testProp, fc } from '../_lib/fcAva';

const EPH: [number, number] = [49152, 65535];
const slirp = (...argv: string[]) => parseSlirpArgs('slirp4netns', argv);
const host: HostState = {
  tmpl4: hostFamily(2), tmpl6: hostFamily(10),
  resolv: parseResolvConf('nameserver 192.0.2.53\nnameserver 2001:db8::53\n'),
};
/** The pasta configuration a slirp4netns command line ends up with. */
const config = (o: SlirpOptions) => resolveConfig(parseOptions('pasta', toPastaArgv(o), EPH), host);

function usageError(t: import('ava').ExecutionContext, argv: string[], message: string | RegExp, showUsage: boolean): void {
  const e = t.throws(() => slirp(...argv), { instanceOf: SlirpUsageError }) as SlirpUsageError;
  if (typeof message === 'string') t.is(e.message, message); else t.regex(e.message, message);
  t.is(e.showUsage, showUsage);
}

let nsFile: string;
test.before(() => {
  nsFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'slirp4netns-argv-')), 'netns');
  fs.writeFileSync(nsFile, '');
});
test.after.always(() => fs.rmSync(path.dirname(nsFile), { recursive: true, force: true }));

test("Podman's default argv (--network slirp4netns, c/common slirp4netns.go)", (t) => {
  const o = slirp('--disable-host-loopback', '--mtu=65520', '--enable-sandbox', '--enable-seccomp', '--enable-ipv6',
    '-c', '-r', '3', '-e', '4', '--netns-type=path', nsFile, 'tap0');
  t.true(o.configure && o.disableHostLoopback && o.enableIpv6 && o.enableSandbox && o.enableSeccomp);
  t.is(o.mtu, 65520);
  t.is(o.readyFd, 3);
  t.is(o.exitFd, 4);
  t.is(o.netnsType, 'path');
  t.is(o.target, nsFile);
  t.is(o.tapName, 'tap0');
  t.deepEqual(o.warnings, ['WARNING: Support for IPv6 is experimental']);

  const p = parseOptions('pasta', toPastaArgv(o), EPH);
  t.is(p.netns, nsFile);
  t.true(p.netnsOnly, 'no --userns-path: the user namespace is not joined');
  t.is(p.targetPid, -1);
  t.is(p.command, null);
  t.true(p.foreground, 'slirp4netns never daemonises');
  t.true(p.noNetnsQuit, 'slirp4netns does not quit when the namespace goes away');
  t.true(p.configNet);
  t.true(p.noMapGw);
  t.is(p.nsIfname, 'tap0');

  const c = config(o);
  t.is(c.mtu, 65520);
  t.is(c.ip4.addr, '10.0.2.100');
  t.is(c.ip4.prefixLen, 24);
  t.is(c.ip4.gateway, '10.0.2.2');
  t.is(c.ip4.mapHostLoopback, null, '--disable-host-loopback');
  t.deepEqual(c.ip4.dns, ['10.0.2.3']);
  t.is(c.ip4.dnsMatch, '10.0.2.3');
  t.is(c.ip4.dnsHost, '192.0.2.53', "DNS goes to the host's resolver");
  t.true(c.ip6.enabled);
  t.is(c.ip6.addr, 'fd00::100');
  t.is(c.ip6.gateway, 'fd00::2');
  t.is(c.ip6.dnsMatch, 'fd00::3');
  t.deepEqual(c.ip6.dns, ['fd00::3']);
  t.true(c.advertiseDns, "DHCP hands out slirp4netns' DNS address");
  for (const spec of [c.tcpIn, c.udpIn, c.tcpOut, c.udpOut]) t.is(spec.mode, 'none', 'ports come only from the API');
});

test("Podman's argv with port_handler=slirp4netns, --cidr and outbound addresses", (t) => {
  const o = slirp('--disable-host-loopback', '--mtu=65520', '--enable-sandbox', '--enable-seccomp', '--cidr=10.0.3.0/24',
    '--outbound-addr=192.0.2.2', '--enable-ipv6', '--outbound-addr6=2001:db8::2', '-c', '-e', '3', '-r', '4',
    '--api-socket', '/tmp/ctr.net', '--netns-type=path', nsFile, 'tap0');
  t.is(o.apiSocket, '/tmp/ctr.net');
  const c = config(o);
  t.is(c.ip4.addr, '10.0.3.100');
  t.is(c.ip4.gateway, '10.0.3.2');
  t.is(c.ip4.dnsMatch, '10.0.3.3');
  t.is(c.ip4.outbound, '192.0.2.2');
  t.is(c.ip6.outbound, '2001:db8::2');
});

test("rootlesskit 1.1's argv (pkg/network/slirp4netns): PID, -r without -c, no IPv6", (t) => {
  const o = slirp('--mtu', '65520', '-r', '3', '--disable-host-loopback', '--api-socket', '/run/user/1000/rk/.s4n',
    '--enable-sandbox', '--enable-seccomp', '12345', 'tap0');
  t.false(o.configure);
  t.is(o.netnsType, 'pid');
  const p = parseOptions('pasta', toPastaArgv(o), EPH);
  t.is(p.targetPid, 12345, 'the PID form: its user namespace is joined');
  t.false(p.netnsOnly);
  t.false(p.configNet, 'the rootlesskit child configures tap0 itself');
  t.true(p.only4);
  const c = config(o);
  t.false(c.ip6.enabled);
  t.is(c.ip4.addr, '10.0.2.100', 'DHCP would hand out the --configure address');
});

test('defaults: MTU 1500, 10.0.2.0/24, host loopback reachable at the gateway, no IPv6', (t) => {
  const o = slirp('1', 'tap0');
  t.is(o.mtu, 1500);
  t.deepEqual(o.cidr, { network: '10.0.2.0', prefix: 24 });
  const c = config(o);
  t.is(c.mtu, 1500);
  t.is(c.ip4.mapHostLoopback, '10.0.2.2');
  t.false(c.ip6.enabled);
  t.deepEqual(slirpAddressing(o.cidr), {
    network: '10.0.2.0', prefix: 24, netmask: '255.255.255.0', gateway: '10.0.2.2', dns: '10.0.2.3', guest: '10.0.2.100',
    network6: 'fd00::', gateway6: 'fd00::2', dns6: 'fd00::3', guest6: 'fd00::100',
  });
});

test('options and operands in any order, grouped short flags, unique long prefixes, --', (t) => {
  const o = slirp('1', '-c6', 'tap1', '--mtu', '9000', '--disable-h', '-r5', '--', '-not-an-option');
  t.true(o.configure && o.enableIpv6 && o.disableHostLoopback);
  t.is(o.mtu, 9000);
  t.is(o.readyFd, 5);
  t.is(o.target, '1');
  t.is(o.tapName, 'tap1');
  t.deepEqual(o.warnings, ['WARNING: Support for IPv6 is experimental', 'WARNING: too many arguments']);
});

test('--userns-path with a path or a PID target', (t) => {
  const withPath = parseOptions('pasta', toPastaArgv(slirp('--netns-type=path', `--userns-path=${nsFile}`, nsFile, 'tap0')), EPH);
  t.is(withPath.userns, nsFile);
  t.is(withPath.netns, nsFile);
  t.false(withPath.netnsOnly);
  const withPid = parseOptions('pasta', toPastaArgv(slirp(`--userns-path=${nsFile}`, '42', 'tap0')), EPH);
  t.is(withPid.userns, nsFile);
  t.is(withPid.targetPid, 42);
});

test('relative namespace paths are relative to the working directory, as slirp4netns opens them', (t) => {
  const cwd = process.cwd();
  process.chdir(path.dirname(nsFile));
  try {
    const p = parseOptions('pasta', toPastaArgv(slirp('--netns-type=path', '--userns-path=netns', 'netns', 'tap0')), EPH);
    t.is(p.netns, nsFile, 'not /run/netns/netns');
    t.is(p.userns, nsFile);
  } finally {
    process.chdir(cwd);
  }
});

test('--disable-dns: no DNS address, no forwarding', (t) => {
  const c = config(slirp('--disable-dns', '1', 'tap0'));
  t.deepEqual(c.ip4.dns, []);
  t.is(c.ip4.dnsMatch, null);
});

test('--macaddress needs -c and goes to the tap; --outbound-addr=INTERFACE takes its address', (t) => {
  t.is(parseOptions('pasta', toPastaArgv(slirp('-c', '--macaddress=02:AB:00:00:00:01', '1', 'tap0')), EPH).nsMacAddr,
    '02:ab:00:00:00:01');
  const found = Object.entries(os.networkInterfaces())
    .find(([, as]) => as?.some((a) => a.family === 'IPv4' && !a.internal));
  if (found) {
    const [name, addrs] = found;
    t.is(slirp(`--outbound-addr=${name}`, '1', 'tap0').outboundAddr, addrs?.find((a) => a.family === 'IPv4' && !a.internal)?.address ?? null);
  }
  usageError(t, ['--outbound-addr=lo', '1', 'tap0'], 'outbound-addr has to be valid ipv4 address or interface name.', false);
  usageError(t, ['--outbound-addr=127.0.0.1', '1', 'tap0'], 'outbound-addr has to be valid ipv4 address or interface name.', false);
  t.is(slirp('-6', '--outbound-addr6=fe80::10', '1', 'tap0').outboundAddr6, 'fe80::10', "the man page's example");
});

test('MTU: 68..65521 (65521 becomes pasta maximum 65520)', (t) => {
  t.is(config(slirp('-m', '65521', '1', 'tap0')).mtu, 65520);
  t.is(config(slirp('-m', '68', '1', 'tap0')).mtu, 68);
  for (const m of ['0', '65522', 'abc', '', '-1', '1e3']) usageError(t, ['-m', m, '1', 'tap0'], 'MTU must be a positive integer (< 65522)', true);
  usageError(t, ['-m', '67', '1', 'tap0'], 'MTU must be at least 68 (the IPv4 minimum)', true);
});

test("errors carry slirp4netns 1.2's messages", (t) => {
  usageError(t, ['--bogus', '1', 'tap0'], "slirp4netns: unrecognized option '--bogus'", true);
  usageError(t, ['-x', '1', 'tap0'], "slirp4netns: invalid option -- 'x'", true);
  usageError(t, ['1', 'tap0', '-r'], "slirp4netns: option requires an argument -- 'r'", true);
  usageError(t, ['1', 'tap0', '--mtu'], "slirp4netns: option '--mtu' requires an argument", true);
  usageError(t, ['--configure=1', '1', 'tap0'], "slirp4netns: option '--configure' doesn't allow an argument", true);
  usageError(t, ['--enable-s', '1', 'tap0'], /^slirp4netns: option '--enable-s' is ambiguous; possibilities: '--enable-sandbox' '--enable-seccomp'$/, true);
  usageError(t, [], '', true);
  usageError(t, ['1'], '', true);
  usageError(t, ['abc', 'tap0'], 'PID must be a positive integer', true);
  usageError(t, ['0', 'tap0'], 'PID must be a positive integer', true);
  usageError(t, ['-r', 'x', '1', 'tap0'], 'ready-fd must be a non-negative integer', true);
  usageError(t, ['-e', '-1', '1', 'tap0'], 'exit-fd must be a non-negative integer', true);
  usageError(t, ['--cidr=10.0.2.0', '1', 'tap0'], 'invalid CIDR: 10.0.2.0', false);
  usageError(t, ['--cidr=fd00::/64', '1', 'tap0'], 'invalid CIDR: fd00::/64', false);
  usageError(t, ['--cidr=10.0.2.0/30', '1', 'tap0'], 'prefix length needs to be 1-25', false);
  usageError(t, ['--cidr=127.0.0.0/8', '1', 'tap0'], 'invalid CIDR: 127.0.0.0/8 (127.0.0.2 is not a unicast address)', false);
  usageError(t, ['--cidr=224.0.0.0/4', '1', 'tap0'], /^invalid CIDR: 224\.0\.0\.0\/4/, false);
  usageError(t, ['--cidr=10.0.2.5/24', '1', 'tap0'],
    'CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.5/24', false);
  usageError(t, ['--netns-type=path', '/nonexistent/netns', 'tap0'],
    'existing path expected when --netns-type=path: No such file or directory', true);
  usageError(t, ['--netns-type=foo', '/nonexistent/netns', 'tap0'],
    'existing path expected when --netns-type=path: No such file or directory', true);
  usageError(t, ['--userns-path=/nonexistent', '1', 'tap0'], "userns path doesn't exist: /nonexistent", true);
  usageError(t, ['--outbound-addr=1.2.3', '1', 'tap0'], 'outbound-addr has to be valid ipv4 address or interface name.', false);
  usageError(t, ['--outbound-addr=no-such-if0', '1', 'tap0'], 'outbound-addr has to be valid ipv4 address or interface name.', false);
  usageError(t, ['--macaddress=02:00:00:00:00:01', '1', 'tap0'],
    '--macaddr cannot be specified when --configure or -c is not specified', true);
  usageError(t, ['--target-type=foo', '1', 'tap0'], '--target-type must be either "netns" or "bess"', true);
  usageError(t, ['--target-type=bess', '1', 'tap0'], /bess is not supported/, false);
  usageError(t, ['-a', `/tmp/${'a'.repeat(110)}`, '1', 'tap0'], 'the specified API socket path is too long (>= 108)', false);
  usageError(t, ['1', 'a-very-long-tap-name'], /invalid TAPNAME/, true);
});

test('--help and --version stop parsing; --help lists what Podman and rootlesskit probe for', (t) => {
  t.true(slirp('--help').help);
  t.true(slirp('-v').version);
  const text = slirpUsage('slirp4netns-ts');
  for (const opt of ['--disable-host-loopback', '--mtu', '--enable-sandbox', '--enable-seccomp', '--cidr', '--outbound-addr',
    '--enable-ipv6', '--netns-type', '--api-socket', '--userns-path', '--ready-fd', '--exit-fd', '--configure'])
    t.true(text.includes(opt), opt);
});

test("the start-up summary matches slirp4netns' layout", (t) => {
  const o = slirp('-c', '-a', '/tmp/api.sock', '1', 'tap0');
  t.is(banner(o, slirpAddressing(o.cidr)),
    'Starting slirp\n' +
    '* MTU:             1500\n' +
    '* Network:         10.0.2.0\n' +
    '* Netmask:         255.255.255.0\n' +
    '* Gateway:         10.0.2.2\n' +
    '* DNS:             10.0.2.3\n' +
    '* DHCP begin:      10.0.2.100\n' +
    '* DHCP end:        10.0.2.100\n' +
    '* Recommended IP:  10.0.2.100\n' +
    '* API Socket:      /tmp/api.sock\n' +
    'WARNING: 127.0.0.1:* on the host is accessible as 10.0.2.2 (set --disable-host-loopback to prohibit connecting to 127.0.0.1:*)\n');
});

testProp('any --cidr that parses yields addresses inside it, and a config pasta accepts',
  [fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)), fc.integer({ min: 0, max: 33 })],
  (t, oct, prefix) => {
    const value = `${oct.join('.')}/${prefix}`;
    let o: SlirpOptions;
    try {
      o = slirp(`--cidr=${value}`, '1', 'tap0');
    } catch (e) {
      t.true(e instanceof SlirpUsageError);
      return;
    }
    t.true(prefix >= 1 && prefix <= 25);
    const c = config(o);
    const a = slirpAddressing(o.cidr);
    const num = (s: string) => s.split('.').reduce((n, x) => n * 256 + Number(x), 0);
    const base = num(a.network);
    t.is(num(c.ip4.addr as string) - base, 100);
    t.is(num(c.ip4.gateway as string) - base, 2);
    t.is(num(c.ip4.dnsMatch as string) - base, 3);
    t.is(c.ip4.prefixLen, prefix);
  }, { numRuns: 500 });

testProp('any argv either parses or fails with a SlirpUsageError, never anything else',
  [fc.array(fc.oneof(
    fc.constantFrom('-c', '-6', '-r', '-e', '-m', '-a', '--mtu', '--mtu=', '--cidr', '--cidr=10.0.0.0/8', '--netns-type=pid',
      '--netns-type', 'path', '--disable-host-loopback', '--disable', '--', '-', '-cr', '3', '1', '65521', 'tap0', '',
      '--outbound-addr=127.0.0.1', '--macaddress', '02:00:00:00:00:01', '--target-type=netns', '--enable-s', '-h', '-v'),
    fc.string({ maxLength: 12 })), { maxLength: 10 })],
  (t, argv) => {
    try {
      const o = slirp(...argv);
      if (!o.help && !o.version) t.notThrows(() => parseOptions('pasta', toPastaArgv(o), EPH));
      else t.pass();
    } catch (e) {
      t.true(e instanceof SlirpUsageError, String(e));
    }
  }, { numRuns: 1500 });

test('--control=PATH and SLIRP4NETNS_TS_CONTROL give pasta its control socket (absolute); the option wins', (t) => {
  const o = slirp('--control=rel/ctl.sock', '--netns-type=path', nsFile, 'tap0');
  t.is(o.control, 'rel/ctl.sock');
  t.is(parseOptions('pasta', toPastaArgv(o), EPH).control, path.resolve('rel/ctl.sock'));
  const e = parseSlirpArgs('slirp4netns', ['--netns-type=path', nsFile, 'tap0'], { SLIRP4NETNS_TS_CONTROL: '/run/x.sock' });
  t.is(parseOptions('pasta', toPastaArgv(e), EPH).control, '/run/x.sock');
  const both = parseSlirpArgs('slirp4netns', ['--control', '/a.sock', '--netns-type=path', nsFile, 'tap0'], { SLIRP4NETNS_TS_CONTROL: '/b.sock' });
  t.is(both.control, '/a.sock');
  t.is(slirp('--netns-type=path', nsFile, 'tap0').control, null);
  t.false(toPastaArgv(slirp('--netns-type=path', nsFile, 'tap0')).includes('--control'));
  usageError(t, ['--control=', '--netns-type=path', nsFile, 'tap0'], /control socket path is empty or too long/, false);
  usageError(t, [`--control=/${'x'.repeat(120)}`, '--netns-type=path', nsFile, 'tap0'], /control socket path is empty or too long/, false);
  t.regex(slirpUsage('slirp4netns-ts'), /--control=PATH/);
});

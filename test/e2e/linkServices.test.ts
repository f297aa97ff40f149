/**
 * The frame pipeline and the link services end to end (issue: pipeline):
 * real clients in a spawned namespace without --config-net — busybox
 * udhcpc (DHCP), the kernel's SLAAC from our router advertisements,
 * dhclient -6 (DHCPv6), ARP and NDP resolution of the gateway — plus the
 * pcap of such a run read back by tshark, and the --no-* switches.
 * Runs only inside the namespace made by test/run.sh.
 */
import anyTest, { TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PASTA, ROOT, inTestNs, NOT_IN_NS, run, tmpPath } from '../helpers/env';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test : test.skip;
if (!inTestNs()) test('end-to-end link services', (t) => t.pass(NOT_IN_NS));

const UDHCPC = path.join(ROOT, 'test/scripts/udhcpc-print.sh');
const DHCLIENT = path.join(ROOT, 'test/scripts/dhclient6-print.sh');

/** Runs sh -c SCRIPT in a namespace spawned by pasta with extra options. */
async function inPasta(opts: string[], script: string, timeoutMs = 30000) {
  const r = await run(PASTA, [...opts, '--', 'sh', '-c', `ip link set eth0 up; ${script}`], { timeoutMs });
  return r;
}

function kv(line: string | undefined): Record<string, string> {
  const o: Record<string, string> = {};
  for (const m of (line ?? '').matchAll(/(\w+)=(\S*)/g)) o[m[1]] = m[2];
  return o;
}

const udhcpc = (extra = '') =>
  `busybox udhcpc -i eth0 -n -q -f -t 3 -T 1 -s ${UDHCPC} -O mtu -O search ${extra} 2>/dev/null | grep 'event=bound'`;
/** Waits for the link-local address to leave DAD, then runs dhclient -6 once. */
const dhclient6 = (dir: string) =>
  `for i in $(seq 40); do ip -6 addr show dev eth0 scope link | grep -q tentative || break; sleep 0.1; done; ` +
  `timeout 8 dhclient -6 -1 -sf ${DHCLIENT} -lf ${dir}/lease6 -pf ${dir}/pid6 eth0 2>/dev/null | grep -E 'reason=(BOUND6|REBOOT6)'`;

e2e('DHCP: udhcpc gets the host address, mask, router, MTU 65520, infinite lease, server id', async (t) => {
  const r = await inPasta([], udhcpc());
  t.is(r.code, 0, r.stderr);
  const o = kv(r.stdout.trim().split('\n').pop());
  t.is(o.ip, '192.0.2.2');
  t.is(o.subnet, '255.255.255.0');
  t.is(o.router, '192.0.2.1');
  t.is(o.mtu, '65520');
  t.is(o.lease, '4294967295');
  t.is(o.serverid, '192.0.2.1');
  t.is(o.dns, '', 'pasta advertises no DNS without --dhcp-dns');
});

e2e('DHCP: -m 1500 and --dhcp-dns/--dhcp-search are honoured', async (t) => {
  const r = await inPasta(['-m', '1500', '--dhcp-dns', '--dhcp-search'], udhcpc());
  t.is(r.code, 0, r.stderr);
  const o = kv(r.stdout.trim().split('\n').pop());
  t.is(o.mtu, '1500');
  t.is(o.dns, '192.0.2.53', 'the stand-in resolv.conf of the made host namespace');
  t.is(o.search, 'example.test');
});

e2e('--hostname and --fqdn: udhcpc gets options 12 and 81, dhclient -6 the Client FQDN', async (t) => {
  const dir = path.dirname(tmpPath('x'));
  const r = await inPasta(['-H', 'vm-1', '--fqdn', 'vm-1.example.org'], `${udhcpc('-O hostname -O 81')}; ${dhclient6(dir)}`);
  t.is(r.code, 0, r.stderr);
  const [v4, v6] = r.stdout.trim().split('\n').map(kv);
  t.is(v4.hostname, 'vm-1');
  t.is(v4.opt81, '04ffff' + '04766d2d31076578616d706c65036f726700', 'flags E, RCODEs 255, wire labels');
  t.is(v6.fqdn, 'vm-1.example.org');
  const plain = kv((await inPasta([], udhcpc('-O hostname'))).stdout.trim());
  t.is(plain.hostname, '', 'no hostname without -H');
});

e2e('SLAAC: the router advertisement gives the namespace an address in the host /64 and a default route', async (t) => {
  const r = await inPasta([], 'sleep 3; ip -j -6 addr show dev eth0; echo ===; ip -j -6 route show default');
  t.is(r.code, 0, r.stderr);
  const [addrs, routes] = r.stdout.split('===').map((s) => JSON.parse(s));
  const globals = addrs[0].addr_info.filter((a: any) => a.scope === 'global');
  t.true(globals.some((a: any) => a.local.startsWith('2001:db8::') && a.prefixlen === 64), JSON.stringify(globals));
  t.true(routes.length > 0 && /^fe80::/.test(routes[0].gateway), 'default route via our link-local address');
});

e2e('DHCPv6: dhclient -6 gets the host address', async (t) => {
  const dir = path.dirname(tmpPath('x'));
  const r = await inPasta([], dhclient6(dir));
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /addr=2001:db8::2\/128/);
});

e2e('ARP and NDP: the gateway resolves to our MAC (and -M changes it)', async (t) => {
  const script = 'sleep 2.5; busybox arping -c 1 -w 2 -I eth0 192.0.2.1 | grep -o "\\[.*\\]"; ' +
    'ip -6 addr add 2001:db8::2/64 dev eth0 nodad; ip addr add 192.0.2.2/24 dev eth0; ' +
    'echo x | socat -u - UDP6:[2001:db8::1]:9; sleep 0.3; ip -j neigh show';
  const r = await inPasta([], script);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /\[9a:55:9a:55:9a:55\]/);
  const neigh = JSON.parse(r.stdout.slice(r.stdout.indexOf('[{')));
  t.truthy(neigh.find((n: any) => n.dst === '2001:db8::1' && n.lladdr === '9a:55:9a:55:9a:55'), JSON.stringify(neigh));
  const m = await inPasta(['-M', '02:00:00:00:00:01'], 'busybox arping -c 1 -w 2 -I eth0 192.0.2.1 | grep -o "\\[.*\\]"');
  t.regex(m.stdout, /\[02:00:00:00:00:01\]/);
});

e2e('pcap: the exchange is captured both ways and tshark reads it', async (t) => {
  const pcap = tmpPath('run.pcap');
  const dir = path.dirname(pcap);
  const r = await inPasta(['-p', pcap], `${udhcpc()}; ${dhclient6(dir)}; busybox arping -c 1 -w 2 -I eth0 192.0.2.1 >/dev/null`);
  t.is(r.code, 0, r.stderr);
  const head = fs.readFileSync(pcap).subarray(0, 24);
  t.is(head.readUInt32LE(0), 0xa1b2c3d4);
  t.is(head.readUInt16LE(4), 2);
  t.is(head.readUInt16LE(6), 4);
  t.is(head.readUInt32LE(16), 65535);
  t.is(head.readUInt32LE(20), 1);
  t.is(fs.statSync(pcap).mode & 0o777, 0o600);
  const ts = spawnSync('tshark', ['-r', pcap, '-T', 'fields', '-e', '_ws.col.Protocol', '-e', '_ws.col.Info'], { encoding: 'utf8' });
  t.is(ts.status, 0, ts.stderr);
  const text = ts.stdout;
  for (const re of [/DHCP Discover/, /DHCP Offer/, /DHCP Request/, /DHCP ACK/, /Solicit/, /Advertise/, /Reply/,
    /Router Solicitation/, /Router Advertisement/, /Who has 192\.0\.2\.1/, /192\.0\.2\.1 is at 9a:55:9a:55:9a:55/])
    t.regex(text, re);
  const td = spawnSync('tcpdump', ['-nr', pcap], { encoding: 'utf8' });
  t.is(td.status, 0, td.stderr);
});

e2e('--no-dhcp, --no-ndp, --no-ra, --no-dhcpv6 suppress their replies', async (t) => {
  const dir = path.dirname(tmpPath('x'));
  const noDhcp = await inPasta(['--no-dhcp'], `${udhcpc()} || echo NO-LEASE`);
  t.regex(noDhcp.stdout, /NO-LEASE/);
  const noRa = await inPasta(['--no-ra'], 'sleep 3; ip -6 addr show dev eth0 scope global | grep -c inet6 || true');
  t.is(noRa.stdout.trim(), '0');
  const noNdp = await inPasta(['--no-ndp'], 'sleep 3; ip -6 addr show dev eth0 scope global | grep -c inet6 || true; ' +
    'ip -6 addr add 2001:db8::2/64 dev eth0 nodad; echo x | socat -u - UDP6:[2001:db8::1]:9; sleep 1.5; ip -6 neigh show 2001:db8::1');
  const lines = noNdp.stdout.trim().split('\n');
  t.is(lines[0], '0', 'no SLAAC without NDP');
  t.notRegex(noNdp.stdout, /lladdr/, 'no neighbour answer');
  const noDhcpv6 = await inPasta(['--no-dhcpv6'], `${dhclient6(dir)} || echo NO-LEASE6`);
  t.regex(noDhcpv6.stdout, /NO-LEASE6/);
});

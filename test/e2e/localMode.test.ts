/**
 * Local mode end to end (SPEC §2.3, issue 11): a host with no usable
 * interface (an offline laptop, a build sandbox with only loopback) gets
 * pasta and passt started with link-local addressing instead of "No
 * routable interface". Each test makes such a host: a network namespace of
 * its own inside the one test/run.sh made, with only `lo` up (or an
 * interface that has a default route and no address), where the programs
 * and the "host" servers run.
 * Runs only inside the namespace made by test/run.sh.
 */
import anyTest, { TestFn } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PASST, PASTA, ROOT, inTestNs, NOT_IN_NS, run, tmpPath } from '../helpers/env';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('local mode tests', (t) => t.pass(NOT_IN_NS));

const UDHCPC = path.join(ROOT, 'test/scripts/udhcpc-print.sh');
const PORT = 8099;

/**
 * Runs `script` (sh) as the host of a fresh network namespace with only
 * loopback up, where servers on 127.0.0.1:PORT and [::1]:PORT answer
 * "via-ipv4" / "via-ipv6"; `setup` runs first (more host interfaces).
 */
function onLoopbackOnlyHost(script: string, setup = '', timeoutMs = 40000) {
  const host = [
    'ip link set lo up', setup,
    `socat TCP4-LISTEN:${PORT},bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo via-ipv4' & s4=$!`,
    `socat TCP6-LISTEN:${PORT},bind=[::1],reuseaddr,fork SYSTEM:'echo via-ipv6' & s6=$!`,
    script, 'rc=$?', 'kill $s4 $s6', 'exit $rc',
  ].filter(Boolean).join('\n');
  return run('unshare', ['-n', 'sh', '-c', host], { timeoutMs });
}

/** A file holding an sh script (no quoting through two shells). */
function scriptFile(lines: string[]): string {
  const f = tmpPath('inside.sh');
  fs.writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

/** Inside the namespace: what --config-net set, then both host servers through the gateways. */
const probe = (exit = 0) => scriptFile([
  'ip -j addr show dev tap0', 'echo ===', 'ip -j route', 'echo ===', 'ip -j -6 route', 'echo ===',
  `socat -u -T 5 TCP4:169.254.2.2:${PORT},connect-timeout=5 -`,
  'for i in $(seq 40); do ip -6 addr show dev tap0 scope link | grep -q tentative || break; sleep 0.1; done',
  `socat -u -T 5 'TCP6:[fe80::1%tap0]:${PORT},connect-timeout=5' -`,
  `exit ${exit}`,
]);

function checkConfigured(t: any, stdout: string, stderr: string) {
  const [addr, r4, r6, greetings] = stdout.split('===');
  const tap = JSON.parse(addr)[0];
  t.is(tap.ifname, 'tap0', 'tap named tap0 in local mode');
  const ai = tap.addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
  t.true(ai.includes('169.254.2.1/16'), ai.join(' '));
  t.false(tap.addr_info.some((a: any) => a.family === 'inet6' && a.scope === 'global'), 'no IPv6 address handed out');
  t.truthy(JSON.parse(r4).find((x: any) => x.dst === 'default' && x.gateway === '169.254.2.2' && x.dev === 'tap0'));
  t.truthy(JSON.parse(r6).find((x: any) => x.dst === 'default' && x.gateway === 'fe80::1' && x.dev === 'tap0'));
  t.deepEqual(greetings.trim().split('\n'), ['via-ipv4', 'via-ipv6'],
    `host loopback reached through 169.254.2.2 and fe80::1: ${stderr}`);
}

e2e('pasta --config-net on a loopback-only host: 169.254.2.1/16, gateways 169.254.2.2 and fe80::1, host reached', async (t) => {
  const r = await onLoopbackOnlyHost(`${PASTA} -d --config-net -- sh ${probe(3)}`);
  t.is(r.code, 3, r.stderr);
  t.regex(r.stderr, /switch to local mode/);
  checkConfigured(t, r.stdout, r.stderr);
});

e2e('a host interface with a default route but no address is no template: local mode too', async (t) => {
  const unnumbered = 'ip link add v0 type veth peer name v1; ip link set v1 up; ip link set v0 up; ip route add default dev v0';
  const r = await onLoopbackOnlyHost(`${PASTA} --config-net -- sh ${probe()}`, unnumbered);
  t.is(r.code, 0, r.stderr);
  t.notRegex(r.stderr, /No routable interface for IPv4 or IPv6/);
  checkConfigured(t, r.stdout, r.stderr);
});

e2e('without --config-net: DHCP hands out the link-local address, the RA a default route but no prefix, DHCPv6 nothing', async (t) => {
  const dir = path.dirname(tmpPath('x'));
  const inside = scriptFile([
    'ip link set tap0 up',
    `busybox udhcpc -i tap0 -n -q -f -t 3 -T 1 -s ${UDHCPC} 2>/dev/null | grep event=bound`,
    'echo ===',
    // the router advertisement answers the kernel's solicitation at link-up
    'for i in $(seq 50); do ip -6 route show default | grep -q fe80::1 && break; sleep 0.1; done',
    'ip -j -6 route show default', 'echo ===', 'ip -j -6 addr show dev tap0 scope global', 'echo ===',
    `timeout 3 dhclient -6 -1 -sf ${path.join(ROOT, 'test/scripts/dhclient6-print.sh')} -lf ${dir}/lease6l -pf ${dir}/pid6l tap0 2>/dev/null | grep -c BOUND6`,
  ]);
  const r = await onLoopbackOnlyHost(`${PASTA} -- sh ${inside}`);
  const [dhcp, ra, global, dhcpv6] = r.stdout.split('===');
  const kv: Record<string, string> = {};
  for (const m of dhcp.matchAll(/(\w+)=(\S*)/g)) kv[m[1]] = m[2];
  t.is(kv.ip, '169.254.2.1', r.stdout + r.stderr);
  t.is(kv.subnet, '255.255.0.0');
  t.is(kv.router, '169.254.2.2');
  t.is(kv.serverid, '169.254.2.2');
  t.truthy(JSON.parse(ra).find((x: any) => x.gateway === 'fe80::1'), 'RA: default route via fe80::1');
  t.deepEqual(JSON.parse(global).flatMap((l: any) => l.addr_info ?? []), [], 'no prefix to autoconfigure from');
  t.is(dhcpv6.trim(), '0', 'no DHCPv6 lease');
});

e2e('passt on a loopback-only host starts in local mode and listens', async (t) => {
  const sock = tmpPath('passt.sock');
  const r = await onLoopbackOnlyHost(
    `${PASST} -f -1 -s ${sock} & p=$!; for i in $(seq 100); do [ -S ${sock} ] && break; sleep 0.1; done; ` +
    `[ -S ${sock} ] && echo listening; kill $p; wait $p`);
  t.regex(r.stdout, /listening/, r.stderr);
  t.regex(r.stderr, /switch to local mode/);
  t.notRegex(r.stderr, /No routable interface for IPv4 or IPv6/);
  fs.rmSync(path.dirname(sock), { recursive: true, force: true });
});

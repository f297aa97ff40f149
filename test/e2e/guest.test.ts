/**
 * The project's own real-guest test (issue: passt mode): a tiny Linux guest
 * (test/guest/build.sh) boots under qemu (TCG) with `-netdev stream` to
 * this passt inside the namespace made by test/run.sh, and checks what a
 * guest sees: the DHCP lease (address, prefix, router, MTU), SLAAC from
 * our router advertisements, and a pcap of both directions.
 * Skipped, with the reason, only where qemu with TCG is not installed.
 */
import anyTest, { TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { PASST, inTestNs, NOT_IN_NS, tmpPath } from '../helpers/env';
import { runGuest, guestUnavailable, describeRun, GuestResult, GUEST_IMAGE } from '../guest/runner';

const test = anyTest as TestFn;
const why = inTestNs() ? guestUnavailable() : NOT_IN_NS;
const noQemu = why !== null && !why.startsWith('no guest image');
const guest = why === null ? test.serial : noQemu || !inTestNs() ? test.skip : test.serial;
if (why !== null) {
  if (noQemu || !inTestNs()) test(`real-guest tests skipped: ${why}`, (t) => t.pass());
  else test(`real-guest tests need the guest image: ${why}`, (t) => t.fail(`build it with test/guest/build.sh (into ${GUEST_IMAGE})`));
}

/** Waits (in the guest) for a global IPv6 address that passed DAD. */
const WAIT_SLAAC = `i=0; while ! ip -6 -o addr show dev eth0 scope global | grep -v tentative | grep -q inet6 && [ $i -lt 100 ]; do usleep 100000; i=$((i+1)); done`;

let link: Promise<{ r: GuestResult; pcap: string }> | null = null;
function linkRun() {
  if (!link) {
    const pcap = tmpPath('guest.pcap');
    link = runGuest({
      passt: [PASST],
      passtArgs: ['-p', pcap],
      script: `cat /run/lease
        echo "addr4: $(ip -4 -o addr show dev eth0 | awk '{print $4}')"
        echo "route4: $(ip -4 route show default)"
        echo "mtu: $(cat /sys/class/net/eth0/mtu)"
        ${WAIT_SLAAC}
        echo "addr6: $(ip -6 -o addr show dev eth0 scope global | awk '{print $4}')"
        echo "route6: $(ip -6 route show default)"`,
      timeoutMs: 120000,
    }).then((r) => ({ r, pcap }));
  }
  return link;
}

function field(out: string, name: string): string {
  return new RegExp(`^${name}: (.*)$`, 'm').exec(out)?.[1]?.trim() ?? '';
}

guest('DHCP: the guest gets the host address, prefix, default route and MTU 65520 from passt', async (t) => {
  const { r } = await linkRun();
  t.is(r.rc, 0, describeRun(r));
  t.is(field(r.output, 'addr4'), '192.0.2.2/24', describeRun(r));
  t.regex(field(r.output, 'route4'), /^default via 192\.0\.2\.1 dev eth0/);
  t.is(field(r.output, 'mtu'), '65520');
  t.regex(r.output, /lease: eth0 192\.0\.2\.2\/24 router=192\.0\.2\.1 mtu=65520/);
});

guest('SLAAC: a global address in 2001:db8::/64 and a default route from our router advertisement', async (t) => {
  const { r } = await linkRun();
  t.regex(field(r.output, 'addr6'), /^2001:db8::[0-9a-f:]+\/64$/, describeRun(r));
  t.regex(field(r.output, 'route6'), /^default via fe80::[0-9a-f:]+ dev eth0/);
});

guest('pcap: both directions captured, readable by tcpdump', async (t) => {
  const { r, pcap } = await linkRun();
  t.is(r.rc, 0);
  const b = fs.readFileSync(pcap);
  t.is(b.readUInt32LE(0), 0xa1b2c3d4);
  const td = spawnSync('tcpdump', ['-n', '-e', '-r', pcap], { encoding: 'utf8' });
  t.is(td.status, 0, td.stderr);
  const lines = td.stdout.split('\n');
  t.true(lines.some((l) => /9a:55:9a:55:9a:55 > .*BOOTP\/DHCP, Reply/.test(l)), 'our DHCP replies');
  t.true(lines.some((l) => /> ff:ff:ff:ff:ff:ff.*BOOTP\/DHCP, Request/.test(l)), "the guest's DHCP requests");
  t.true(lines.some((l) => /router advertisement/.test(l)), 'router advertisements');
  t.false(r.passtLog.includes('Error'), r.passtLog);
});

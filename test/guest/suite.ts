/**
 * The real-guest checks (test/e2e/guest.test.ts, guestVhostUser.test.ts):
 * a tiny Linux guest (build.sh) boots under qemu (TCG) against this passt
 * inside the namespace made by test/run.sh, over `-netdev stream` or
 * vhost-user, and checks what a guest sees: the DHCP lease (address,
 * prefix, router, MTU), SLAAC from our router advertisements, a pcap of
 * both directions, TCP 8 MiB both ways (IPv4 and IPv6, outbound and
 * forwarded), UDP, ping, and a refused connect.
 * Skipped, with the reason, only where qemu with TCG is not installed.
 */
import anyTest, { TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PASST, inTestNs, NOT_IN_NS, tmpPath, sha } from '../helpers/env';
import { runGuest, startGuest, guestUnavailable, describeRun, GuestResult, GUEST_IMAGE } from './runner';
import { sendAll } from '../helpers/tcpTool';


/** Which guest link a run of the suite uses. */
export interface GuestVariant {
  vhostUser?: boolean;
  /** Added to the host-side ports 13001-13006 (0-49 is the stream run's, 50-99 vhost-user's). */
  portOffset?: number;
}

export function guestSuite(v: GuestVariant): void {
  const test = anyTest as TestFn;
  const why = inTestNs() ? guestUnavailable() : NOT_IN_NS;
  const noQemu = why !== null && !why.startsWith('no guest image');
  const guest = why === null ? test.serial : noQemu || !inTestNs() ? test.skip : test.serial;
  if (why !== null) {
    if (noQemu || !inTestNs()) test(`real-guest tests skipped: ${why}`, (t) => t.pass());
    else test(`real-guest tests need the guest image: ${why}`, (t) => t.fail(`build it with test/guest/build.sh (into ${GUEST_IMAGE})`));
  }

  /**
   * The program under test: this project's passt, or PASST_TS_GUEST_PASST
   * (e.g. /usr/bin/passt, run as PASST_TS_GUEST_USER, default bench: the C
   * passt refuses to run as root) to check the test against the original.
   */
  function passtUnderTest(): { passt: string[]; asUser?: string[] } {
    const other = process.env.PASST_TS_GUEST_PASST;
    if (!other) return { passt: [PASST] };
    const u = process.env.PASST_TS_GUEST_USER ?? 'bench';
    return { passt: other.split(' '), asUser: ['setpriv', `--reuid=${u}`, `--regid=${u}`, '--init-groups'] };
  }

  /** Waits (in the guest) for a global IPv6 address that passed DAD. */
  const WAIT_SLAAC = `i=0; while ! ip -6 -o addr show dev eth0 scope global | grep -v tentative | grep -q inet6 && [ $i -lt 100 ]; do usleep 100000; i=$((i+1)); done`;

  let link: Promise<{ r: GuestResult; pcap: string }> | null = null;
  function linkRun() {
    if (!link) {
      const pcap = tmpPath('guest.pcap');
      fs.chmodSync(path.dirname(pcap), 0o777); // passt may run as another user
      link = runGuest({
        ...passtUnderTest(),
        vhostUser: v.vhostUser,
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

  // ---------------------------------------------------------------- L4 through the guest
  // One boot for everything below, host side served from this process. Ports
  // (13000-13999 is this test's range): 13001 upload sink, 13002 download
  // source, 13003/13004 forwarded to the guest (-t), 13005 UDP echo, 13006
  // IPv6 download source on ::1, 13999 closed.

  const SIZE = 8 << 20;
  // each variant its own ports (ava runs the variants' files side by side)
  const b = 13000 + (v.portOffset ?? 0);
  const PT = { up: b + 1, down: b + 2, inHostFirst: b + 3, inGuestFirst: b + 4, udp: b + 5, down6: b + 6, closed: 13999 };

  interface L4Run {
    r: GuestResult;
    data: Buffer;
    sum: string;
    /** sha256 of what the host received on the upload sink. */
    upSum: Promise<string>;
    /** sha256 of what the host read from the guest-speaks-first forwarded port. */
    inGuestFirstSum: string | null;
    hostErrors: string[];
  }

  /** A TCP server that sends `data` to each client and closes; or that hashes what it receives. */
  function sourceServer(host: string, port: number, data: Buffer): Promise<net.Server> {
    const s = net.createServer((c) => { c.on('error', () => {}); c.end(data); });
    return new Promise((r) => s.listen(port, host, () => r(s)));
  }
  function sinkServer(host: string, port: number): Promise<{ s: net.Server; sum: Promise<string> }> {
    let resolve!: (v: string) => void;
    const sum = new Promise<string>((r) => { resolve = r; });
    const s = net.createServer((c) => {
      const h = createHash('sha256');
      c.on('data', (d) => h.update(d));
      c.on('end', () => resolve(h.digest('hex')));
      c.on('error', () => resolve('error'));
    });
    return new Promise((r) => s.listen(port, host, () => r({ s, sum })));
  }

  /** Connects to host:port and returns everything read until EOF. */
  function readAll(host: string, port: number, ms: number): Promise<Buffer | null> {
    return new Promise((resolve) => {
      const parts: Buffer[] = [];
      const c = net.createConnection(port, host);
      const t = setTimeout(() => { c.destroy(); resolve(null); }, ms);
      c.on('data', (d) => parts.push(d));
      c.on('end', () => { clearTimeout(t); resolve(Buffer.concat(parts)); });
      c.on('error', () => { clearTimeout(t); resolve(null); });
    });
  }

  let l4Promise: Promise<L4Run> | null = null;
  function l4Run(): Promise<L4Run> {
    if (l4Promise) return l4Promise;
    l4Promise = (async () => {
      const data = randomBytes(SIZE);
      const sum = sha(data);
      const hostErrors: string[] = [];
      const up = await sinkServer('127.0.0.1', PT.up);
      const down = await sourceServer('127.0.0.1', PT.down, data);
      const down6 = await sourceServer('::1', PT.down6, data);
      const udp = dgram.createSocket('udp4');
      udp.on('message', (m, rinfo) => udp.send(Buffer.from(m.toString().toUpperCase()), rinfo.port, rinfo.address));
      await new Promise<void>((r) => udp.bind(PT.udp, '127.0.0.1', () => r()));
      const T = 'timeout 60';
      const g = startGuest({
        ...passtUnderTest(),
        vhostUser: v.vhostUser,
        passtArgs: ['-t', `${PT.inHostFirst},${PT.inGuestFirst}`],
        files: { 'data.bin': data },
        timeoutMs: 280000,
        script: `
          ${WAIT_SLAAC}
          ${T} socat -u OPEN:files/data.bin TCP:192.0.2.1:${PT.up}; echo "up-rc: $?"
          echo "down: $(${T} socat -u TCP:192.0.2.1:${PT.down} - | sha256sum | cut -d' ' -f1)"
          echo "down6: $(${T} socat -u TCP6:[2001:db8::1]:${PT.down6} - | sha256sum | cut -d' ' -f1)"
          echo "udp: $(echo udp-ping | timeout 5 socat - UDP:192.0.2.1:${PT.udp})"
          echo "ping4: $(ping -c 2 -W 2 192.0.2.1 | grep received)"
          echo "ping6: $(ping -c 2 -W 2 2001:db8::1 | grep received)"
          t0=$(cut -d' ' -f1 /proc/uptime)
          timeout 10 socat -u - TCP:192.0.2.1:${PT.closed} </dev/null 2>/tmp/e; rc=$?
          echo "refused: rc=$rc after $(awk "BEGIN{print $(cut -d' ' -f1 /proc/uptime)-$t0}")s $(grep -o 'Connection refused' /tmp/e)"
          ${T} socat -u TCP-LISTEN:${PT.inHostFirst},reuseaddr - > /tmp/in.bin & p1=$!
          ${T} socat -u OPEN:files/data.bin TCP-LISTEN:${PT.inGuestFirst},reuseaddr & p2=$!
          i=0; while ! netstat -lnt | grep -q ":${PT.inGuestFirst} " && [ $i -lt 100 ]; do usleep 50000; i=$((i+1)); done
          echo GUEST-LISTENING
          wait $p1; echo "in-host-first: $(sha256sum < /tmp/in.bin | cut -d' ' -f1)"
          wait $p2; echo "in-guest-first-rc: $?"`,
      });
      let inGuestFirstSum: string | null = null;
      if (await g.waitLine(/GUEST-LISTENING/, 240000)) {
        if (!(await sendAll('127.0.0.1', PT.inHostFirst, data, 60000))) hostErrors.push('sending to the host-speaks-first port failed');
        const got = await readAll('127.0.0.1', PT.inGuestFirst, 60000);
        inGuestFirstSum = got ? sha(got) : null;
      }
      const r = await g.done;
      for (const s of [up.s, down, down6]) s.close();
      udp.close();
      return { r, data, sum, upSum: Promise.race([up.sum, new Promise<string>((res) => setTimeout(() => res('none'), 2000))]), inGuestFirstSum, hostErrors };
    })();
    return l4Promise;
  }

  guest('TCP guest → host loopback (via 192.0.2.1): 8 MiB byte-exact', async (t) => {
    t.timeout(300000);
    const x = await l4Run();
    t.is(field(x.r.output, 'up-rc'), '0', describeRun(x.r));
    t.is(await x.upSum, x.sum);
  });

  guest('TCP host loopback → guest (via 192.0.2.1): 8 MiB byte-exact', async (t) => {
    t.timeout(300000);
    const x = await l4Run();
    t.is(field(x.r.output, 'down'), x.sum, describeRun(x.r));
  });

  guest("IPv6: TCP to the host's ::1 via 2001:db8::1, 8 MiB byte-exact", async (t) => {
    t.timeout(300000);
    const x = await l4Run();
    t.is(field(x.r.output, 'down6'), x.sum, describeRun(x.r));
  });

  guest('inbound -t port, host speaks first: 8 MiB byte-exact into the guest', async (t) => {
    t.timeout(300000);
    const x = await l4Run();
    t.deepEqual(x.hostErrors, []);
    t.is(field(x.r.output, 'in-host-first'), x.sum, describeRun(x.r));
  });

  guest('inbound -t port, guest speaks first: 8 MiB byte-exact out of the guest', async (t) => {
    t.timeout(300000);
    const x = await l4Run();
    t.is(x.inGuestFirstSum, x.sum, describeRun(x.r));
    t.is(field(x.r.output, 'in-guest-first-rc'), '0');
  });

  guest('UDP echo through the gateway address to the host loopback', async (t) => {
    t.timeout(300000);
    const x = await l4Run();
    t.is(field(x.r.output, 'udp'), 'UDP-PING', describeRun(x.r));
  });

  guest('ping both gateways (ICMP and ICMPv6 echo)', async (t) => {
    t.timeout(300000);
    const x = await l4Run();
    t.regex(field(x.r.output, 'ping4'), / 0% packet loss/, describeRun(x.r));
    t.regex(field(x.r.output, 'ping6'), / 0% packet loss/);
  });

  const cPasst = (process.env.PASST_TS_GUEST_PASST ?? '').length > 0;
  (cPasst ? test.skip : guest)('a connect to a closed host port is refused at once (RST with ACK)', async (t) => {
    t.timeout(300000);
    const x = await l4Run();
    const m = /^refused: rc=(\d+) after ([\d.]+)s (.*)$/m.exec(x.r.output);
    t.truthy(m, describeRun(x.r));
    t.not(m?.[1], '0');
    t.is(m?.[3], 'Connection refused');
    t.true(Number(m?.[2]) < 3, `took ${m?.[2]} s`);
  });
}

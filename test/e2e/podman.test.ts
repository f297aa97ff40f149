/**
 * The real Podman (Debian 12's podman 4.3.1, rootless, as the test user
 * with subuid/subgid ranges) runs passt-ts as the pasta of its containers
 * (test/helpers/podman.ts has the rig and why it goes through an OCI hook;
 * CLIENTS.md §1 the contract). Containers run an image imported from
 * busybox-static; the servers they reach are in this (made host) namespace,
 * on ports 16100–16199 and 127.0.16.53:53 (the resolver named by the
 * resolv.conf podman and pasta see). Runs only inside the namespace made by
 * test/run.sh.
 */
import anyTest, { TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inTestNs, NOT_IN_NS, run, waitFor, sha, alive, sleep } from '../helpers/env';
import { STANDIN_ANSWER } from '../helpers/dns';
import { makeRig, podmanMissing, PodmanRig, IMAGE, HOST_RESOLVER, PODMAN_DEFAULT_ARGV, globalAddrs, noPastaLeft, rigTests } from '../helpers/podman';
import { TestServers, TFTP_CONTENT, sendWhole } from '../helpers/servers';

const test = anyTest as TestFn;
const inNs = inTestNs();
if (!inNs) test('end-to-end Podman tests', (t) => t.pass(NOT_IN_NS));

let rig: PodmanRig | null = null;
let resolver: { count: number } = { count: 0 };
let skipWhy: string | null = inNs ? null : NOT_IN_NS;
const servers = new TestServers();

test.before(async () => {
  if (!inNs) return;
  skipWhy = await podmanMissing();
  if (skipWhy) return;
  resolver = await servers.dnsServer(HOST_RESOLVER, 53, STANDIN_ANSWER);
  rig = await makeRig();
});

test.after.always(async () => {
  servers.closeAll();
  await rig?.cleanup();
});

const e2e = rigTests<PodmanRig>(test, inNs, () => ({ rig, skipWhy }));

e2e('podman runs our pasta, with Podman 5.3\'s argv', async (t, r) => {
  const v = await run(r.pasta, ['--version']);
  t.is(v.code, 0);
  t.regex(v.stdout.split('\n')[0], /^pasta .*passt-ts/);
  const { r: res, rec } = await r.runCtr('ip link show eth0 | grep -c mtu');
  t.is(res.code, 0, res.stderr);
  t.truthy(rec, 'the hook ran');
  if (!rec) return;
  t.is(rec.code, 0, rec.output);
  t.deepEqual(rec.argv, PODMAN_DEFAULT_ARGV(rec.netns));
  t.regex(rec.netns, /\/run\/netns\/netns-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'Podman\'s netns file');
  t.false(fs.existsSync(rec.netns), 'removed at teardown');
  t.is(rec.output, '', '--quiet: nothing on the caller\'s pipe');
  t.is(res.stdout.trim(), '1', 'the container has the tap interface pasta made');
});

e2e('--network pasta: the host\'s addresses and routes; TCP and UDP to servers on the host; 8 MiB up; a name through the DNS forwarder', async (t, r) => {
  await servers.helloServer('0.0.0.0', 16101, 'tcp-on-host');
  const udp = await servers.tftpServer(16102, TFTP_CONTENT);
  const before = resolver.count;
  const sink = await servers.sinkServer(16103, 8 << 20);
  const { r: res, rec } = await r.runCtr([
    'ip addr show eth0', 'echo ROUTES', 'ip route', 'ip -6 route',
    'echo TCP $(nc 169.254.1.2 16101 </dev/null)',
    'echo UDP; tftp -g -r hello -l /tmp/hello 169.254.1.2 16102 && cat /tmp/hello',
    'echo DNS; nslookup passt.test',
    'dd if=/dev/urandom of=/tmp/up bs=65536 count=128 2>/dev/null',
    'echo UP $(sha256sum < /tmp/up)', 'nc 169.254.1.2 16103 < /tmp/up',
  ].join('; '), {}, 60000);
  t.is(res.code, 0, res.stderr + res.stdout);
  const out = res.stdout;
  // no NAT: the container has the host's (the made namespace's eth0) addresses
  const host = spawnSync('ip', ['addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' }).stdout;
  t.deepEqual(globalAddrs(host).sort(), ['inet 192.0.2.2/24', 'inet6 2001:db8::2/64']);
  t.deepEqual(globalAddrs(out.split('ROUTES')[0]).sort(), globalAddrs(host).sort());
  t.regex(out, /^default via 192\.0\.2\.1 dev eth0/m);
  t.regex(out, /^default via 2001:db8::1 dev eth0/m);
  t.regex(out, /^TCP HELLO tcp-on-host$/m, 'TCP to the host through --map-guest-addr 169.254.1.2');
  const udpPart = out.split('UDP')[1].split('DNS')[0];
  t.is(udpPart.trim(), TFTP_CONTENT.trim(), 'a UDP exchange (TFTP) with a server on the host');
  t.true(udp.requests >= 1 && udp.acks >= 1, JSON.stringify(udp));
  const dnsPart = out.split('DNS')[1];
  t.true(dnsPart.includes(STANDIN_ANSWER), `resolv.conf's 169.254.1.1 forwarded to the host's ${HOST_RESOLVER}: ${dnsPart}`);
  t.true(resolver.count > before);
  const up = await sink.got;
  t.is(up.bytes, 8 << 20);
  t.is(up.sha, /^UP ([0-9a-f]{64})/m.exec(out)?.[1] ?? 'no UP line');
  t.deepEqual(rec?.argv, PODMAN_DEFAULT_ARGV(rec?.netns ?? ''));
});

e2e('-p 16110:8080 publishes a port: host → container TCP, 8 MiB byte-exact, over loopback and the host\'s address', async (t, r) => {
  const a = crypto.randomBytes(8 << 20);
  const b = crypto.randomBytes(8 << 20);
  const ctr = r.runCtr('for i in 1 2; do nc -l -p 8080 > /tmp/got; echo GOT $(wc -c < /tmp/got) $(sha256sum < /tmp/got); done',
    { publish: ['16110:8080'] }, 90000);
  const deadline = Date.now() + 60000;
  t.true(await sendWhole('127.0.0.1', 16110, a, deadline), 'first transfer');
  t.true(await sendWhole('192.0.2.2', 16110, b, deadline), 'second transfer');
  const { r: res, rec } = await ctr;
  t.is(res.code, 0, res.stderr);
  const got = [...res.stdout.matchAll(/^GOT (\d+) ([0-9a-f]{64})/gm)].map((m) => [Number(m[1]), m[2]]);
  t.deepEqual(got, [[8 << 20, sha(a)], [8 << 20, sha(b)]]);
  t.deepEqual(rec?.argv.slice(0, 3), ['--config-net', '-t', '16110-16110:8080-8080']);
  t.false(rec?.argv.join(' ').includes('-t none'));
});

e2e('--network pasta:-T,16120 forwards the container\'s loopback port to the host\'s (argv as Podman builds it)', async (t, r) => {
  await servers.helloServer('127.0.0.1', 16120, 'tcp-ns-forward');
  const { r: res, rec } = await r.runCtr('nc 127.0.0.1 16120 </dev/null', { network: 'pasta:-T,16120' });
  t.is(res.code, 0, res.stderr);
  t.is(res.stdout.trim(), 'HELLO tcp-ns-forward');
  t.deepEqual(rec?.argv, ['--config-net', '-T', '16120', '--dns-forward', '169.254.1.1', '-t', 'none', '-u', 'none',
    '-U', 'none', '--no-map-gw', '--quiet', '--netns', rec?.netns, '--map-guest-addr', '169.254.1.2']);
});

e2e('--network pasta:--map-gw: the gateway reaches the host\'s loopback, IPv4 and IPv6', async (t, r) => {
  await servers.helloServer('127.0.0.1', 16121, 'gw4');
  await servers.helloServer('::1', 16122, 'gw6');
  const { r: res, rec } = await r.runCtr('nc 192.0.2.1 16121 </dev/null; nc 2001:db8::1 16122 </dev/null', { network: 'pasta:--map-gw' });
  t.is(res.code, 0, res.stderr);
  t.deepEqual(res.stdout.trim().split('\n'), ['HELLO gw4', 'HELLO gw6']);
  t.false(rec?.argv.includes('--map-gw'), 'podman strips --map-gw');
  t.false(rec?.argv.includes('--no-map-gw'));
});

e2e('--network pasta: with -m, -I, --ns-mac-addr, -4, -a/-n/-g: interface, MTU, MAC, families and addresses as asked', async (t, r) => {
  const one = await r.runCtr('ip link show podtap0; ip addr show podtap0',
    { network: 'pasta:-m,1280,-I,podtap0,--ns-mac-addr,02:00:00:00:00:42,-4' });
  t.is(one.r.code, 0, one.r.stderr);
  t.regex(one.r.stdout, /podtap0: .* mtu 1280/);
  t.regex(one.r.stdout, /link\/ether 02:00:00:00:00:42/);
  t.deepEqual(globalAddrs(one.r.stdout), ['inet 192.0.2.2/24'], '-4: no IPv6 address');
  const two = await r.runCtr('ip addr show eth0; ip route', { network: 'pasta:-a,198.51.100.7,-n,24,-g,198.51.100.1,-6' });
  t.is(two.r.code, 0, two.r.stderr);
  t.deepEqual(globalAddrs(two.r.stdout), ['inet6 2001:db8::2/64'], '-6 wins over the IPv4 options (last one takes effect)');
  const three = await r.runCtr('ip addr show eth0; ip route', { network: 'pasta:-a,198.51.100.7,-n,24,-g,198.51.100.1' });
  t.is(three.r.code, 0, three.r.stderr);
  t.true(globalAddrs(three.r.stdout).includes('inet 198.51.100.7/24'));
  t.regex(three.r.stdout, /^default via 198\.51\.100\.1 dev eth0/m);
});

e2e('--network pasta:--dns-forward,ADDR replaces Podman\'s 169.254.1.1 and resolves through ADDR', async (t, r) => {
  const before = resolver.count;
  const { r: res, rec } = await r.runCtr('nslookup passt.test', { network: 'pasta:--dns-forward,198.51.100.53', resolv: 'nameserver 198.51.100.53\n' });
  t.is(res.code, 0, res.stderr + res.stdout);
  t.true(res.stdout.includes(STANDIN_ANSWER), res.stdout);
  t.false(rec?.argv.includes('169.254.1.1'));
  t.deepEqual(rec?.argv.slice(0, 3), ['--config-net', '--dns-forward', '198.51.100.53']);
  t.true(resolver.count > before, 'the host\'s resolver answered');
});

e2e('podman run never waits on pasta\'s stdio: quiet, --debug and --trace all return at once; the daemon holds only /dev/null', async (t, r) => {
  for (const network of ['pasta', 'pasta:--debug', 'pasta:--trace']) {
    const t0 = Date.now();
    const { r: res, rec } = await r.runCtr('true', { network }, 20000);
    t.false(res.timedOut, `${network}: podman run returned`);
    t.is(res.code, 0, res.stderr);
    t.true(Date.now() - t0 < 15000, `${network}: ${Date.now() - t0} ms`);
    t.is(rec?.code, 0);
    t.true((rec?.ms ?? 1e9) < 10000, `${network}: the hook's CombinedOutput returned after ${rec?.ms} ms`);
    if (network !== 'pasta') {
      t.false(rec?.argv.includes('--quiet'), 'no --quiet with -d/--debug/--trace');
      t.true((rec?.output ?? '').length > 0, 'the foreground part logged before it returned');
    }
  }
  // a running container: the daemon's stdio is /dev/null, it leads its own session
  const started = await r.podman(['run', '-d', ...r.netArgs({ network: 'pasta:--debug' }), IMAGE, 'sleep', '30'], 20000);
  t.is(started.code, 0, started.stderr);
  const [daemon] = (await waitFor(() => { const p = r.pastaProcesses(); return p.length ? p : null; }, 5000)) ?? [];
  t.truthy(daemon, 'our pasta runs for the container');
  if (daemon) for (const fd of ['0', '1', '2']) t.is(fs.readlinkSync(`/proc/${daemon}/fd/${fd}`), '/dev/null');
  await r.podman(['rm', '-f', '-t', '0', started.stdout.trim()]);
  t.deepEqual(await noPastaLeft(r), [], 'podman rm -f: pasta quits with the container');
});

for (const netns of ['file', 'proc'] as const) {
  const form = netns === 'file' ? 'Podman\'s netns file, removed at teardown' : '/proc/PID/ns/net, as Buildah gives it';
  e2e(`container exit stops pasta (${form}): the daemon, ours, is gone within 5 s of the exit`, async (t, r) => {
    const cid = `${r.dir}/cid/exit-${netns}`;
    const started = await r.podman(['run', '-d', '--cidfile', cid, ...r.netArgs({ netns }), IMAGE, 'sleep', '3'], 20000);
    t.is(started.code, 0, started.stderr);
    const id = fs.readFileSync(cid, 'utf8').trim();
    const rec = r.record(id);
    const procs = r.pastaProcesses();
    t.true(procs.length >= 1, 'our pasta runs while the container does');
    const cmdlines = procs.map((p) => { try { return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0'); } catch { return []; } });
    t.true(cmdlines.some((c) => c.includes(r.pasta) && c.includes(rec?.netns ?? '?')), JSON.stringify(cmdlines));
    if (netns === 'proc') t.is(rec?.netns, `/proc/${rec?.pid}/ns/net`);
    const ctrPid = rec?.pid ?? 0;
    t.truthy(await waitFor(() => !alive(ctrPid), 15000, 100), 'the container exited');
    const exitedAt = Date.now();
    t.deepEqual(await noPastaLeft(r, 5000), []);
    t.log(`pasta gone ${Date.now() - exitedAt} ms after the container`);
    await r.podman(['rm', '-f', id]);
  });
}

e2e('another container\'s teardown (its netns file deleted next to ours) leaves a running container\'s pasta alone', async (t, r) => {
  await servers.helloServer('0.0.0.0', 16150, 'still-here');
  const cid = `${r.dir}/cid/sibling`;
  const a = await r.podman(['run', '-d', '--cidfile', cid, ...r.netArgs(), IMAGE, 'sleep', '60'], 20000);
  t.is(a.code, 0, a.stderr);
  const id = fs.readFileSync(cid, 'utf8').trim();
  const recA = r.record(id);
  const pastaA = r.pastaProcesses();
  t.is(pastaA.length, 1);
  for (let i = 0; i < 3; i++) {
    const b = await r.runCtr('true');
    t.is(b.r.code, 0, b.r.stderr);
    t.is(path.dirname(b.rec?.netns ?? ''), path.dirname(recA?.netns ?? '?'), 'the same netns directory');
    t.false(fs.existsSync(b.rec?.netns ?? ''), 'the sibling\'s file is gone');
  }
  await sleep(1500);
  t.deepEqual(pastaA.filter((p) => alive(p)), pastaA, 'A\'s pasta still runs');
  const e = await r.podman(['exec', id, 'sh', '-c', 'nc 169.254.1.2 16150 </dev/null'], 20000);
  t.is(e.stdout.trim(), 'HELLO still-here', e.stderr);
  await r.podman(['rm', '-f', '-t', '0', id], 20000);
  t.deepEqual(await noPastaLeft(r), []);
});

// "-T 16130" as one token (CLIENTS.md §6 item 10): the C pasta reads " 16130"
// with strtoul and then fails on Podman's "-T none" ("conflicts with
// previous mode"); passt-ts refuses the space itself. Either way: exit 1.
e2e('a pasta failure fails podman run ("-T 16130" as one token), bounded, with pasta\'s message, nothing left', async (t, r) => {
  const { r: res, rec } = await r.runCtr('true', { network: 'pasta:-T 16130' }, 20000);
  t.false(res.timedOut);
  t.not(res.code, 0);
  t.is(rec?.code, 1);
  t.regex(rec?.output ?? '', /Invalid port specifier +16130|conflicts with previous mode/);
  // crun reports the failed hook; Podman 5 would print the same output after "pasta failed with exit code 1:"
  t.regex(res.stderr, /error executing hook .*exit code: 1/);
  t.deepEqual(await noPastaLeft(r, 3000), []);
});

e2e('ten containers in a row and ten at once, each with its own pasta, all connected; none left after', async (t, r) => {
  await servers.helloServer('0.0.0.0', 16140, 'many');
  const check = (i: number) => r.runCtr(`echo ${i} $(nc 169.254.1.2 16140 </dev/null)`, {}, 90000);
  const pids = new Set<number>();
  for (let i = 0; i < 10; i++) {
    const { r: res, rec } = await check(i);
    t.is(res.code, 0, res.stderr);
    t.is(res.stdout.trim(), `${i} HELLO many`);
    if (rec) pids.add(rec.pid);
  }
  t.is(pids.size, 10, 'ten containers, ten network namespaces given to pasta');
  const t0 = Date.now();
  const all = await Promise.all([...Array(10).keys()].map((i) => check(100 + i)));
  t.log(`ten at once: ${Date.now() - t0} ms`);
  const netns = new Set<string>();
  all.forEach(({ r: res, rec }, i) => {
    t.is(res.code, 0, res.stderr);
    t.is(res.stdout.trim(), `${100 + i} HELLO many`);
    t.is(rec?.code, 0);
    if (rec) netns.add(rec.argv[rec.argv.indexOf('--netns') + 1]);
  });
  t.is(netns.size, 10, 'each with its own pasta on its own namespace');
  t.deepEqual(await noPastaLeft(r, 10000), []);
});

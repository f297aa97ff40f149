/**
 * The real Podman 5 (Debian 13's, rootless, as the test user with
 * subuid/subgid ranges) with its own `--network pasta`, finding passt-ts
 * through helper_binaries_dir (test/helpers/podman5.ts has the rig;
 * CLIENTS.md §1 the contract). Podman builds the argv, waits for pasta
 * with CombinedOutput(), reads the addresses back and removes the netns
 * file at teardown: nothing in between is the test's. Servers are in this
 * (made host) namespace on ports 16200–16299 and 127.0.16.54:53. Runs only
 * inside the namespace made by test/run.sh.
 */
import anyTest, { TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { inTestNs, NOT_IN_NS, waitFor, sha, alive, sleep } from '../helpers/env';
import { STANDIN_ANSWER } from '../helpers/dns';
import { IMAGE, PODMAN_DEFAULT_ARGV, globalAddrs, noPastaLeft, rigTests } from '../helpers/podman';
import { makePodman5Rig, podman5Missing, Podman5Rig, PODMAN5_RESOLVER } from '../helpers/podman5';
import { TestServers, TFTP_CONTENT, sendWhole } from '../helpers/servers';

const test = anyTest as TestFn;
const inNs = inTestNs();
if (!inNs) test('end-to-end Podman 5 tests', (t) => t.pass(NOT_IN_NS));

let rig: Podman5Rig | null = null;
let resolver: { count: number } = { count: 0 };
let skipWhy: string | null = inNs ? null : NOT_IN_NS;
const servers = new TestServers();

test.before(async () => {
  if (!inNs) return;
  skipWhy = podman5Missing();
  if (skipWhy) return;
  resolver = await servers.dnsServer(PODMAN5_RESOLVER, 53, STANDIN_ANSWER);
  rig = await makePodman5Rig();
});

test.after.always(async () => {
  servers.closeAll();
  await rig?.cleanup();
});

const e2e = rigTests<Podman5Rig>(test, inNs, () => ({ rig, skipWhy }));

e2e('Podman 5 runs our pasta from helper_binaries_dir, with its own argv; podman info reports it', async (t, r) => {
  t.log(r.version);
  t.regex(r.version, /^podman version 5\./);
  const info = await r.podman(['info', '--format', '{{.Host.Pasta.Executable}}|{{.Host.Pasta.Version}}']);
  t.is(info.code, 0, info.stderr);
  const [exe, version] = info.stdout.trim().split('|');
  t.is(exe, r.pasta);
  t.regex(version, /passt-ts/, 'podman ran `pasta --version`: ours');
  const { r: res, calls } = await r.runCtr('ip link show eth0 | grep -c mtu');
  t.is(res.code, 0, res.stderr);
  t.is(res.stdout.trim(), '1', 'the container has the tap interface pasta made');
  const run = calls.filter((c) => c.argv[0] === '--config-net');
  t.is(run.length, 1, JSON.stringify(calls.map((c) => c.argv)));
  t.deepEqual(run[0]?.argv, PODMAN_DEFAULT_ARGV(run[0]?.netns ?? ''));
  t.regex(run[0]?.netns ?? '', /\/run\/netns\/netns-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  t.false(fs.existsSync(run[0]?.netns ?? ''), 'podman removed the netns file');
  t.notRegex(res.stderr, /pasta logged warnings|pasta failed/, 'nothing on podman\'s pipe');
  t.deepEqual(await noPastaLeft(r), []);
});

e2e('--network pasta: the host\'s addresses and routes; TCP and UDP to servers on the host; 8 MiB up; a name through the DNS forwarder', async (t, r) => {
  await servers.helloServer('0.0.0.0', 16201, 'tcp-on-host');
  const udp = await servers.tftpServer(16202, TFTP_CONTENT);
  const before = resolver.count;
  const sink = await servers.sinkServer(16203, 8 << 20);
  const { r: res } = await r.runCtr([
    'ip addr show eth0', 'echo ROUTES', 'ip route', 'ip -6 route', 'echo RESOLV; cat /etc/resolv.conf',
    'echo TCP $(nc 169.254.1.2 16201 </dev/null)',
    'echo UDP; tftp -g -r hello -l /tmp/hello 169.254.1.2 16202 && cat /tmp/hello',
    'echo DNS; nslookup passt.test',
    'dd if=/dev/urandom of=/tmp/up bs=65536 count=128 2>/dev/null',
    'echo UP $(sha256sum < /tmp/up)', 'nc 169.254.1.2 16203 < /tmp/up',
  ].join('; '), {}, 60000);
  t.is(res.code, 0, res.stderr + res.stdout);
  const out = res.stdout;
  const host = spawnSync('ip', ['addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' }).stdout;
  t.deepEqual(globalAddrs(out.split('ROUTES')[0]).sort(), globalAddrs(host).sort(), 'no NAT: the host\'s addresses');
  t.regex(out, /^default via 192\.0\.2\.1 dev eth0/m);
  t.regex(out, /^default via 2001:db8::1 dev eth0/m);
  t.regex(out.split('RESOLV')[1], /^nameserver 169\.254\.1\.1$/m, 'Podman\'s own resolv.conf');
  t.regex(out, /^TCP HELLO tcp-on-host$/m, 'TCP to the host through --map-guest-addr 169.254.1.2');
  t.is(out.split('UDP')[1].split('DNS')[0].trim(), TFTP_CONTENT.trim(), 'a UDP exchange (TFTP) with a server on the host');
  t.true(udp.requests >= 1 && udp.acks >= 1, JSON.stringify(udp));
  t.true(out.split('DNS')[1].includes(STANDIN_ANSWER), `169.254.1.1 forwarded to the host's ${PODMAN5_RESOLVER}`);
  t.true(resolver.count > before);
  const up = await sink.got;
  t.is(up.bytes, 8 << 20);
  t.is(up.sha, /^UP ([0-9a-f]{64})/m.exec(out)?.[1] ?? 'no UP line');
});

e2e('-p 16210:8080 publishes a port: podman gives pasta the range form; host → container TCP, 8 MiB byte-exact, over loopback and the host\'s address', async (t, r) => {
  const a = crypto.randomBytes(8 << 20);
  const b = crypto.randomBytes(8 << 20);
  const ctr = r.runCtr('for i in 1 2; do nc -l -p 8080 > /tmp/got; echo GOT $(wc -c < /tmp/got) $(sha256sum < /tmp/got); done',
    { publish: ['16210:8080'] }, 90000);
  const deadline = Date.now() + 60000;
  t.true(await sendWhole('127.0.0.1', 16210, a, deadline), 'first transfer');
  t.true(await sendWhole('192.0.2.2', 16210, b, deadline), 'second transfer');
  const { r: res, calls } = await ctr;
  t.is(res.code, 0, res.stderr);
  const got = [...res.stdout.matchAll(/^GOT (\d+) ([0-9a-f]{64})/gm)].map((m) => [Number(m[1]), m[2]]);
  t.deepEqual(got, [[8 << 20, sha(a)], [8 << 20, sha(b)]]);
  const argv = calls.find((c) => c.argv[0] === '--config-net')?.argv ?? [];
  t.deepEqual(argv.slice(0, 3), ['--config-net', '-t', '16210-16210:8080-8080']);
  t.false(argv.join(' ').includes('-t none'));
});

e2e('pasta:OPTIONS forms: -T,PORT; --map-gw; -m,-I,--ns-mac-addr,-4; --dns-forward (argv as Podman 5 builds it)', async (t, r) => {
  await servers.helloServer('127.0.0.1', 16220, 'tcp-ns-forward');
  const one = await r.runCtr('nc 127.0.0.1 16220 </dev/null', { network: 'pasta:-T,16220' });
  t.is(one.r.code, 0, one.r.stderr);
  t.is(one.r.stdout.trim(), 'HELLO tcp-ns-forward');
  const a1 = one.calls[0];
  t.deepEqual(a1?.argv, ['--config-net', '-T', '16220', '--dns-forward', '169.254.1.1', '-t', 'none', '-u', 'none',
    '-U', 'none', '--no-map-gw', '--quiet', '--netns', a1?.netns, '--map-guest-addr', '169.254.1.2']);

  await servers.helloServer('127.0.0.1', 16221, 'gw4');
  const two = await r.runCtr('nc 192.0.2.1 16221 </dev/null', { network: 'pasta:--map-gw' });
  t.is(two.r.code, 0, two.r.stderr);
  t.is(two.r.stdout.trim(), 'HELLO gw4', 'the gateway reaches the host\'s loopback');
  t.false(two.calls[0]?.argv.includes('--map-gw'), 'podman strips --map-gw');
  t.false(two.calls[0]?.argv.includes('--no-map-gw'));

  const three = await r.runCtr('ip link show podtap0; ip addr show podtap0',
    { network: 'pasta:-m,1280,-I,podtap0,--ns-mac-addr,02:00:00:00:00:42,-4' });
  t.is(three.r.code, 0, three.r.stderr);
  t.regex(three.r.stdout, /podtap0: .* mtu 1280/);
  t.regex(three.r.stdout, /link\/ether 02:00:00:00:00:42/);
  t.deepEqual(globalAddrs(three.r.stdout), ['inet 192.0.2.2/24'], '-4: no IPv6 address');

  const before = resolver.count;
  const four = await r.runCtr('head -1 /etc/resolv.conf; nslookup passt.test 198.51.100.53', { network: 'pasta:--dns-forward,198.51.100.53' });
  t.is(four.r.code, 0, four.r.stderr + four.r.stdout);
  t.true(four.r.stdout.includes(STANDIN_ANSWER), four.r.stdout);
  t.deepEqual(four.calls[0]?.argv.slice(0, 3), ['--config-net', '--dns-forward', '198.51.100.53']);
  t.false(four.calls[0]?.argv.includes('169.254.1.1'), 'the user\'s --dns-forward replaces podman\'s');
  t.true(resolver.count > before);
});

e2e('podman run never waits on pasta\'s stdio: quiet, --debug and --trace return at once; a running container\'s pasta holds only /dev/null', async (t, r) => {
  for (const network of ['pasta', 'pasta:--debug', 'pasta:--trace']) {
    const t0 = Date.now();
    const { r: res, calls } = await r.runCtr('true', { network }, 30000);
    t.false(res.timedOut, `${network}: podman run returned`);
    t.is(res.code, 0, res.stderr);
    t.log(`${network}: podman run took ${Date.now() - t0} ms`);
    t.true(Date.now() - t0 < 20000, `${network}: ${Date.now() - t0} ms`);
    if (network !== 'pasta') t.false(calls[0]?.argv.includes('--quiet'), 'no --quiet with -d/--debug/--trace');
  }
  const started = await r.podman(['run', '-d', '--network', 'pasta', IMAGE, 'sleep', '30'], 30000);
  t.is(started.code, 0, started.stderr);
  const daemons = (await waitFor(() => { const p = r.pastaProcesses(); return p.length ? p : null; }, 5000)) ?? [];
  t.is(daemons.length, 1, 'one pasta for the container');
  for (const fd of ['0', '1', '2']) t.is(fs.readlinkSync(`/proc/${daemons[0]}/fd/${fd}`), '/dev/null');
  const stop = await r.podman(['rm', '-f', '-t', '0', started.stdout.trim()], 30000);
  t.is(stop.code, 0, stop.stderr);
  t.deepEqual(await noPastaLeft(r, 5000), [], 'podman rm -f: pasta quits with the container');
});

e2e('container exit stops pasta: gone within 5 s of the container\'s end, which podman tells it only by removing the netns file', async (t, r) => {
  const started = await r.podman(['run', '-d', '--network', 'pasta', IMAGE, 'sleep', '2'], 30000);
  t.is(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  const procs = r.pastaProcesses();
  t.is(procs.length, 1, 'our pasta runs while the container does');
  const waited = await r.podman(['wait', id], 30000);
  t.is(waited.stdout.trim(), '0', waited.stderr);
  const exitedAt = Date.now();
  t.deepEqual(await noPastaLeft(r, 5000), []);
  t.log(`pasta gone ${Date.now() - exitedAt} ms after podman wait returned`);
  t.false(procs.some((p) => alive(p)));
  await r.podman(['rm', '-f', id]);
});

e2e('a pasta failure fails podman run with "pasta failed with exit code 1" and pasta\'s message; nothing left', async (t, r) => {
  const { r: res } = await r.runCtr('true', { network: 'pasta:-T 16230' }, 30000);
  t.false(res.timedOut);
  t.not(res.code, 0);
  t.regex(res.stderr, /pasta failed with exit code 1/);
  t.regex(res.stderr, /Invalid port specifier/);
  t.deepEqual(await noPastaLeft(r, 3000), []);
});

e2e('CONTAINERS_HELPER_BINARY_DIR naming a directory whose pasta is a bare link to bin/pasta works the same', async (t, r) => {
  await servers.helloServer('0.0.0.0', 16240, 'plain-link');
  const { r: res, calls } = await r.runCtr('nc 169.254.1.2 16240 </dev/null', { env: [`CONTAINERS_HELPER_BINARY_DIR=${r.plainHelpers}`] });
  t.is(res.code, 0, res.stderr);
  t.is(res.stdout.trim(), 'HELLO plain-link');
  t.is(calls.length, 0, 'the recording script was not used: podman ran the link');
  t.deepEqual(await noPastaLeft(r), []);
});

e2e('ten containers in a row and ten at once, each with its own pasta, all connected; none left after', async (t, r) => {
  await servers.helloServer('0.0.0.0', 16250, 'many');
  const check = (i: number) => r.runCtr(`echo ${i} $(nc 169.254.1.2 16250 </dev/null)`, {}, 120000);
  const netns = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const { r: res, calls } = await check(i);
    t.is(res.code, 0, res.stderr);
    t.is(res.stdout.trim(), `${i} HELLO many`);
    for (const c of calls) netns.add(c.netns);
  }
  t.is(netns.size, 10, 'ten containers, ten pastas on ten namespaces');
  const before = r.calls().length;
  const t0 = Date.now();
  const all = await Promise.all([...Array(10).keys()].map((i) => check(100 + i)));
  t.log(`ten at once: ${Date.now() - t0} ms`);
  all.forEach(({ r: res }, i) => {
    t.is(res.code, 0, res.stderr);
    t.is(res.stdout.trim(), `${100 + i} HELLO many`);
  });
  const later = r.calls().slice(before);
  t.is(new Set(later.map((c) => c.netns)).size, 10, 'each with its own pasta on its own namespace');
  await sleep(100);
  t.deepEqual(await noPastaLeft(r, 10000), []);
});

/**
 * UDP and ICMP echo end to end (SPEC.md §5, §6, §2.6, §2.9): pasta's
 * namespace talks to echo servers and a DNS stand-in on the made host
 * namespace's loopback (ports 11000–11999, addresses 127.0.11.x), pings the
 * gateway, and sends malformed frames that must be dropped and counted.
 * Cases needing their own host configuration (resolv.conf, a forbidding
 * ping_group_range) run pasta in a nested namespace made here.
 * Runs only inside the namespace made by test/run.sh.
 */
import anyTest, { TestFn } from 'ava';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PASTA, ROOT, inTestNs, NOT_IN_NS, run, nsHolder, NsHolder, waitFor, workerStats } from '../helpers/env';
import { dnsAnswer, STANDIN_ANSWER } from '../helpers/dns';
import { eth, ipv4, ipv6, udp4, udp6, concat, be16, toHex, OUR_MAC, GUEST_MAC } from '../helpers/frames';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('end-to-end UDP tests', (t) => t.pass(NOT_IN_NS));

const TOOL = path.join(ROOT, 'dist', 'test', 'helpers', 'udpTool.js');
const NODE = process.execPath;
const tool = (...a: (string | number)[]) => [NODE, TOOL, ...a.map(String)].map((x) => `'${x}'`).join(' ');

/** JSON lines printed by udpTool, in order. */
function jsonLines(s: string): any[] {
  return s.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

/** The UDP worker's counters from pasta's --debug exit dump. */
const udpStats = (stderr: string) => workerStats(stderr, 'udp');

interface Echo { sock: dgram.Socket; ports: Set<number>; count: number }

/** Echo server in this (made host) namespace. */
async function echoServer(addr: string, port: number): Promise<Echo> {
  const sock = dgram.createSocket({ type: addr.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 << 20 });
  const e: Echo = { sock, ports: new Set(), count: 0 };
  sock.on('message', (m, r) => {
    e.count++;
    e.ports.add(r.port);
    sock.send(m, r.port, r.address);
  });
  await new Promise<void>((res) => sock.bind(port, addr, res));
  return e;
}

async function resolverStandin(addr: string, port = 53): Promise<Echo> {
  const sock = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
  const e: Echo = { sock, ports: new Set(), count: 0 };
  sock.on('message', (m, r) => {
    e.count++;
    const a = dnsAnswer(m);
    if (a) sock.send(a, r.port, r.address);
  });
  await new Promise<void>((res) => sock.bind(port, addr, res));
  return e;
}

const SIZES = '1,2,100,1400,1472,1473,9000,32768,65000';

e2e('namespace → host through the tap, IPv4 and IPv6: 1 to 65 000 bytes, boundaries kept, source port kept', async (t) => {
  const e4 = await echoServer('127.0.0.1', 11100);
  const e6 = await echoServer('::1', 11100);
  try {
    const r = await run(PASTA, ['--config-net', '--', 'sh', '-c',
      `${tool('client', '192.0.2.1', 11100, '--sizes', SIZES, '--bind', 11101)}; ` +
      `${tool('client', '2001:db8::1', 11100, '--sizes', SIZES, '--bind', 11102)}`], { timeoutMs: 60000 });
    t.is(r.code, 0, r.stderr);
    const [a, b] = jsonLines(r.stdout);
    t.deepEqual({ ok: a.ok, bad: a.bad, lost: a.lost }, { ok: 9, bad: [], lost: [] }, 'IPv4');
    t.deepEqual({ ok: b.ok, bad: b.bad, lost: b.lost }, { ok: 9, bad: [], lost: [] }, 'IPv6');
    t.deepEqual([...e4.ports], [11101], 'SPEC §2: guest source port P leaves the host from port P');
    t.deepEqual([...e6.ports], [11102]);
  } finally {
    e4.sock.close();
    e6.sock.close();
  }
});

e2e('many concurrent flows, both families', async (t) => {
  const e4 = await echoServer('127.0.0.1', 11110);
  const e6 = await echoServer('::1', 11110);
  try {
    const r = await run(PASTA, ['--config-net', '--', 'sh', '-c',
      `${tool('client', '192.0.2.1', 11110, '--flows', 64, '--sizes', '1,700,3000', '--rounds', 2)} & ` +
      `${tool('client', '2001:db8::1', 11110, '--flows', 64, '--sizes', '1,700,3000', '--rounds', 2)}; wait`],
    { timeoutMs: 60000 });
    t.is(r.code, 0, r.stderr);
    const res = jsonLines(r.stdout);
    t.is(res.length, 2);
    for (const x of res) t.deepEqual({ ok: x.ok, bad: x.bad, lost: x.lost }, { ok: 64 * 6, bad: [], lost: [] });
    t.is(e4.ports.size, 64);
    t.is(e6.ports.size, 64);
  } finally {
    e4.sock.close();
    e6.sock.close();
  }
});

e2e('a flow times out (shortened for the test) and a new one reuses the port', async (t) => {
  const e4 = await echoServer('127.0.0.1', 11120);
  try {
    const r = await run(PASTA, ['--config-net', '--debug', '--', 'sh', '-c',
      `${tool('client', '192.0.2.1', 11120, '--bind', 11121)} && sleep 3 && ${tool('client', '192.0.2.1', 11120, '--bind', 11121)}`],
    { timeoutMs: 60000, env: { ...process.env, PASST_TS_UDP_TIMEOUT_MS: '1000' } });
    t.is(r.code, 0, r.stderr);
    const [a, b] = jsonLines(r.stdout);
    t.is(a.ok, 3);
    t.is(b.ok, 3);
    const lines = r.stderr.split('\n').filter((l) => /Flow \d+ \(udp\).*:11121 /.test(l));
    t.is(lines.filter((l) => /: new:/.test(l)).length, 2, lines.join('\n'));
    t.truthy(lines.findIndex((l) => /: closed:/.test(l)) > lines.findIndex((l) => /: new:/.test(l)));
    const st = udpStats(r.stderr);
    t.true(st.expired >= 1);
    t.deepEqual([...e4.ports], [11121]);
  } finally {
    e4.sock.close();
  }
});

e2e('DNS forwarding with --dns-host: queries to the forward address reach the stand-in, replies come from it', async (t) => {
  const r4 = await resolverStandin('127.0.11.53');
  const r6 = await resolverStandin('::1');
  try {
    const r = await run(PASTA, ['--config-net', '--dns-forward', '198.51.100.53', '--dns-forward', '2001:db8:1::53',
      '--dns-host', '127.0.11.53', '--dns-host', '::1', '--', 'sh', '-c',
      `${tool('dns', '198.51.100.53')}; ${tool('dns', '2001:db8:1::53')}`], { timeoutMs: 30000 });
    t.is(r.code, 0, r.stderr);
    const [a, b] = jsonLines(r.stdout);
    t.deepEqual(a, { from: '198.51.100.53:53', id: 0x4242, answer: STANDIN_ANSWER });
    t.deepEqual(b, { from: '2001:db8:1::53:53', id: 0x4242, answer: STANDIN_ANSWER });
    t.is(r4.count, 1);
    t.is(r6.count, 1);
  } finally {
    r4.sock.close();
    r6.sock.close();
  }
});

/**
 * A nested host namespace (network + mount) with a veth uplink like the
 * made one's, 192.0.2.53 and 2001:db8::53 on lo (the run.sh resolv.conf
 * nameservers), and an optional resolv.conf of its own.
 */
async function nestedHost(opts: { resolv?: string; pingRange?: string } = {}): Promise<{ h: NsHolder; exec: string[] }> {
  const h = await nsHolder(['-m']);
  try {
    return await setUpNested(h, opts);
  } catch (e) {
    await h.kill();
    throw e;
  }
}

async function setUpNested(h: NsHolder, opts: { resolv?: string; pingRange?: string }): Promise<{ h: NsHolder; exec: string[] }> {
  const exec = ['nsenter', '-t', String(h.pid), '-n', '-m'];
  let script = `set -e
sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
sh ${path.join(ROOT, 'test', 'scripts', 'host-uplink.sh')}
ip addr add 192.0.2.53/32 dev lo
ip -6 addr add 2001:db8::53/128 dev lo
`;
  if (opts.pingRange) script += `sysctl -q -w net.ipv4.ping_group_range="${opts.pingRange}"\n`;
  if (opts.resolv) {
    const f = `/tmp/passt-ts-resolv.${process.pid}.${h.pid}`;
    fs.writeFileSync(f, opts.resolv);
    script += `mount --bind ${f} /etc/resolv.conf\n`;
  }
  const r = spawnSync(exec[0], [...exec.slice(1), 'sh', '-c', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nested namespace set-up: ${r.stderr}`);
  // the link-local address must be there before pasta reads the host's addresses
  await waitFor(() => /fe80/.test(spawnSync(exec[0], [...exec.slice(1), 'ip', '-6', 'addr', 'show', 'dev', 'eth0'],
    { encoding: 'utf8' }).stdout), 5000);
  return { h, exec };
}

/** Starts udpTool in the nested namespace and waits for its "ready" line. */
async function inNested(exec: string[], args: (string | number)[]): Promise<ChildProcess> {
  const c = spawn(exec[0], [...exec.slice(1), NODE, TOOL, ...args.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  c.stdout?.on('data', (d) => { out += d; });
  await waitFor(() => out.includes('"ready"'), 10000);
  return c;
}

e2e('DNS forwarding to the host resolver (resolv.conf), without --dns-host: loopback nameserver → gateway', async (t) => {
  const { h, exec } = await nestedHost({ resolv: 'nameserver 127.0.0.53\nnameserver ::1\n' });
  const s4 = await inNested(exec, ['resolver', '127.0.0.53', 53, '--seconds', 30]);
  const s6 = await inNested(exec, ['resolver', '::1', 53, '--seconds', 30]);
  try {
    // SPEC §2.9: the loopback nameserver is replaced by map-host-loopback (the
    // gateway), which is also the DNS-forward match unless --dns-forward is given
    const r = await run(exec[0], [...exec.slice(1), PASTA, '--config-net', '--', 'sh', '-c',
      `${tool('dns', '192.0.2.1')}; ${tool('dns', '2001:db8::1')}`], { timeoutMs: 30000 });
    t.is(r.code, 0, r.stderr);
    const res = jsonLines(r.stdout);
    t.deepEqual(res[0], { from: '192.0.2.1:53', id: 0x4242, answer: STANDIN_ANSWER });
    t.deepEqual(res[1], { from: '2001:db8::1:53', id: 0x4242, answer: STANDIN_ANSWER });
    // with --dns-forward, that address reaches the first nameserver instead
    const f = await run(exec[0], [...exec.slice(1), PASTA, '--config-net', '--dns-forward', '198.51.100.53', '--', 'sh',
      '-c', tool('dns', '198.51.100.53')], { timeoutMs: 30000 });
    t.is(f.code, 0, f.stderr);
    t.deepEqual(jsonLines(f.stdout)[0], { from: '198.51.100.53:53', id: 0x4242, answer: STANDIN_ANSWER });
  } finally {
    s4.kill();
    s6.kill();
    await h.kill();
  }
});

e2e('DNS forwarding without --dns-host to a non-loopback first nameserver', async (t) => {
  const { h, exec } = await nestedHost();
  const s4 = await inNested(exec, ['resolver', '192.0.2.53', 53, '--seconds', 30]);
  const s6 = await inNested(exec, ['resolver', '2001:db8::53', 53, '--seconds', 30]);
  try {
    const r = await run(exec[0], [...exec.slice(1), PASTA, '--config-net', '--dns-forward', '198.51.100.53',
      '--dns-forward', '2001:db8:1::53', '--', 'sh', '-c',
      `${tool('dns', '198.51.100.53')}; ${tool('dns', '2001:db8:1::53')}`], { timeoutMs: 30000 });
    t.is(r.code, 0, r.stderr);
    const [a, b] = jsonLines(r.stdout);
    t.deepEqual(a, { from: '198.51.100.53:53', id: 0x4242, answer: STANDIN_ANSWER });
    t.deepEqual(b, { from: '2001:db8:1::53:53', id: 0x4242, answer: STANDIN_ANSWER });
  } finally {
    s4.kill();
    s6.kill();
    await h.kill();
  }
});

e2e('ping and ping -6 to the gateway and to a --map-host-loopback address reach the host', async (t) => {
  const r = await run(PASTA, ['--config-net', '--', 'sh', '-c',
    'busybox ping -c 2 -i 0.2 -W 2 192.0.2.1 && busybox ping -6 -c 2 -i 0.2 -W 2 2001:db8::1'], { timeoutMs: 30000 });
  t.is(r.code, 0, r.stderr);
  t.is((r.stdout.match(/2 packets received/g) ?? []).length, 2, r.stdout);
  const m = await run(PASTA, ['--config-net', '--map-host-loopback', '198.51.100.1', '--map-host-loopback', '2001:db8:2::1',
    '--', 'sh', '-c', 'busybox ping -c 1 -W 2 198.51.100.1 && busybox ping -6 -c 1 -W 2 2001:db8:2::1'], { timeoutMs: 30000 });
  t.is(m.code, 0, m.stderr);
  t.is((m.stdout.match(/1 packets received/g) ?? []).length, 2, m.stdout);
});

e2e('idle ping flows close after the (shortened) timeout; a new request opens a new one', async (t) => {
  const r = await run(PASTA, ['--config-net', '--debug', '--', 'sh', '-c',
    'busybox ping -c 1 -W 2 192.0.2.1 && sleep 2.5 && busybox ping -c 1 -W 2 192.0.2.1'],
  { timeoutMs: 30000, env: { ...process.env, PASST_TS_PING_TIMEOUT_MS: '500' } });
  t.is(r.code, 0, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => /Flow \d+ \(ping\)/.test(l));
  t.deepEqual(lines.map((l) => /: (new|closed):/.exec(l)?.[1]), ['new', 'closed', 'new', 'closed'], lines.join('\n'));
  t.is(udpStats(r.stderr).pingFlows, 2);
});

e2e('ping sockets forbidden by ping_group_range: one clear warning, pasta keeps running', async (t) => {
  const { h, exec } = await nestedHost({ pingRange: '1 0' });
  const logFile = `/tmp/passt-ts-udp-ping.${process.pid}.log`;
  const echo = await inNested(exec, ['echo', '127.0.0.1', 11140, '--seconds', 30]);
  try {
    // once the command runs, pasta logs to syslog: -l keeps the lines where the test can read them
    const r = await run(exec[0], [...exec.slice(1), PASTA, '--config-net', '-l', logFile, '--', 'sh', '-c',
      `busybox ping -c 3 -i 0.2 -W 1 192.0.2.1; busybox ping -6 -c 1 -W 1 2001:db8::1; ${tool('client', '192.0.2.1', 11140)}`],
    { timeoutMs: 30000 });
    t.is(r.code, 0, r.stderr);
    t.is(jsonLines(r.stdout)[0]?.ok, 3, 'UDP still works');
    const logText = fs.readFileSync(logFile, 'utf8');
    const warnings = logText.split('\n').filter((l) => /ping_group_range/.test(l));
    t.is(warnings.length, 1, logText);
    t.regex(warnings[0], /WARNING/);
    t.notRegex(logText + r.stderr, /worker|exited unexpectedly|fatal/i);
  } finally {
    echo.kill();
    fs.rmSync(logFile, { force: true });
    await h.kill();
  }
});

e2e('malformed UDP/ICMP from the namespace are dropped and counted', async (t) => {
  const gw4 = '192.0.2.1';
  const ns4 = '192.0.2.2';
  const gw6 = '2001:db8::1';
  const ns6 = '2001:db8::2';
  const f4 = (l4: Uint8Array, proto = 17) => eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4({ src: ns4, dst: gw4, proto }, l4));
  const good = udp4(ns4, gw4, 11130, 11131, new Uint8Array(20));
  const lie = good.slice(); lie[4] = 0; lie[5] = 200; // UDP length beyond the payload
  const tiny = good.slice(); tiny[4] = 0; tiny[5] = 3; // below the header size
  const zero6 = udp6(ns6, gw6, 11130, 11131, new Uint8Array(20)); zero6[6] = 0; zero6[7] = 0;
  const frames = [
    f4(lie),
    f4(tiny),
    f4(good.subarray(0, 6)), // truncated UDP header
    f4(new Uint8Array([8, 0, 0, 0]), 1), // truncated echo request
    eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6({ src: ns6, dst: gw6, nh: 17 }, zero6)), // IPv6 UDP checksum 0
    f4(concat(be16(0), be16(11131), be16(9), [0, 0], [1])), // source port 0
  ];
  const r = await run(PASTA, ['--config-net', '--debug', '--', 'sh', '-c',
    `sleep 0.3; ${tool('raw', 'eth0', ...frames.map((f) => toHex(f)))}`], { timeoutMs: 30000 });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(jsonLines(r.stdout)[0], { sent: frames.length });
  const st = udpStats(r.stderr);
  t.is(st.badLength, 2, JSON.stringify(st));
  t.is(st.truncated, 2);
  t.is(st.zeroChecksum, 1);
  t.is(st.zeroPort, 1);
  t.is(st.flows, 0, 'no flow made from malformed frames');
  t.true(st.dropped >= 6);
});

/** pasta running `udpTool echo` in its namespace; resolves once the echo is bound. */
async function pastaWithEcho(args: string[], port: number): Promise<{ child: ChildProcess; out: () => string; err: () => string;
  done: Promise<number | null> }> {
  const child = spawn(PASTA, ['--config-net', ...args, '--', NODE, TOOL, 'echo', '::', String(port), '--seconds', '40'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => { out += d; });
  child.stderr?.on('data', (d) => { err += d; });
  const done = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  await waitFor(() => out.includes('"ready"'), 15000);
  return { child, out: () => out, err: () => err, done };
}

/** udpTool client run here, in the made host namespace. */
async function hostClient(addr: string, port: number, extra: (string | number)[] = []): Promise<any> {
  const r = await run(NODE, [TOOL, 'client', addr, String(port), ...extra.map(String)], { timeoutMs: 60000 });
  return jsonLines(r.stdout)[0] ?? { error: r.stderr };
}

const clean = (x: any) => ({ ok: x.ok, bad: x.bad, lost: x.lost });

e2e('-u: host → namespace through the tap (non-loopback source) and spliced (loopback source), both families', async (t) => {
  const p = await pastaWithEcho(['--debug', '-u', '11200'], 11200);
  try {
    // the host's own address as source: through the tap, appearing as the gateway
    t.deepEqual(clean(await hostClient('192.0.2.2', 11200, ['--sizes', SIZES])), { ok: 9, bad: [], lost: [] }, 'tap IPv4');
    t.deepEqual(clean(await hostClient('2001:db8::2', 11200, ['--sizes', SIZES])), { ok: 9, bad: [], lost: [] }, 'tap IPv6');
    // loopback: spliced, no Layer 2
    t.deepEqual(clean(await hostClient('127.0.0.1', 11200, ['--sizes', SIZES])), { ok: 9, bad: [], lost: [] }, 'spliced IPv4');
    t.deepEqual(clean(await hostClient('::1', 11200, ['--sizes', SIZES])), { ok: 9, bad: [], lost: [] }, 'spliced IPv6');
    t.deepEqual(clean(await hostClient('127.0.0.1', 11200, ['--flows', 32, '--sizes', '1,1000'])),
      { ok: 64, bad: [], lost: [] }, 'many spliced flows');
  } finally {
    p.child.kill('SIGTERM');
    await p.done;
  }
  const st = udpStats(p.err());
  t.true(st.toTap >= 18, JSON.stringify(st));
  t.true(st.spliced >= 2 * 18 + 2 * 64, JSON.stringify(st));
  t.is(st.dropped, 0);
});

e2e('-u with a port mapping: host port 11210 reaches namespace port 11211; replies leave from 11210', async (t) => {
  const p = await pastaWithEcho(['-u', '11210:11211'], 11211);
  try {
    t.deepEqual(clean(await hostClient('192.0.2.2', 11210, ['--sizes', '1,1400'])), { ok: 2, bad: [], lost: [] });
    t.deepEqual(clean(await hostClient('::1', 11210, ['--sizes', '1,1400'])), { ok: 2, bad: [], lost: [] });
  } finally {
    p.child.kill('SIGTERM');
    await p.done;
  }
});

e2e('-U: namespace loopback → host loopback, spliced, source port kept, both families', async (t) => {
  const e4 = await echoServer('127.0.0.1', 11220);
  const e6 = await echoServer('::1', 11220);
  try {
    const r = await run(PASTA, ['--config-net', '-U', '11220', '--', 'sh', '-c',
      `${tool('client', '127.0.0.1', 11220, '--sizes', SIZES, '--bind', 11221)}; ` +
      `${tool('client', '::1', 11220, '--sizes', SIZES, '--bind', 11222)}`], { timeoutMs: 60000 });
    t.is(r.code, 0, r.stderr);
    const [a, b] = jsonLines(r.stdout);
    t.deepEqual(clean(a), { ok: 9, bad: [], lost: [] });
    t.deepEqual(clean(b), { ok: 9, bad: [], lost: [] });
    t.deepEqual([...e4.ports], [11221]);
    t.deepEqual([...e6.ports], [11222]);
  } finally {
    e4.sock.close();
    e6.sock.close();
  }
});

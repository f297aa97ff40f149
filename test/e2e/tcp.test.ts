/**
 * TCP translation over the tap, end to end (issue 4): byte-exact transfers
 * in both directions over IPv4 and IPv6, half-close both ways, refused
 * connections, resets and killed processes mid-transfer (no stuck flows),
 * 200 concurrent connections, and malformed segments from the namespace.
 *
 * The test process plays the host: its servers listen on 127.0.0.1 / ::1,
 * which the namespace reaches through the gateway addresses (SPEC §2.6
 * map-host-loopback). Ports 10000–10999 only. Runs only inside the
 * namespace made by test/run.sh.
 */
import anyTest, { ExecutionContext, TestFn } from 'ava';
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { PASTA, ROOT, inTestNs, NOT_IN_NS, run, tmpPath, RunResult, waitFor, sha, workerStats } from '../helpers/env';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('end-to-end TCP tests', (t) => t.pass(NOT_IN_NS));

const GW4 = '192.0.2.1';
const GW6 = '2001:db8::1';
const NOFWD = ['-t', 'none', '-u', 'none', '-T', 'none', '-U', 'none'];


let small: string;
let big: string;
let bigHash: string;
let smallHash: string;
function files(): void {
  if (small) return;
  small = tmpPath('small.bin');
  big = tmpPath('big.bin');
  const s = randomBytes(1500 * 3 + 17);
  const b = randomBytes(32 * 1024 * 1024 + 12345);
  fs.writeFileSync(small, s);
  fs.writeFileSync(big, b);
  smallHash = sha(s);
  bigHash = sha(b);
}

interface Sink { done: Promise<{ bytes: number; hash: string }>; close(): void }

/** A host server that hashes what its first connection sends until EOF. */
async function sink(port: number, host: string): Promise<Sink> {
  let resolve!: (v: { bytes: number; hash: string }) => void;
  const done = new Promise<{ bytes: number; hash: string }>((r) => { resolve = r; });
  const srv = net.createServer((s) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (d) => { h.update(d); n += d.length; });
    s.on('end', () => resolve({ bytes: n, hash: h.digest('hex') }));
    s.on('error', () => resolve({ bytes: n, hash: 'error' }));
  });
  await new Promise<void>((r) => srv.listen(port, host, () => r()));
  return { done, close: () => srv.close() };
}

/** A host server that sends `file` to each connection, then closes. */
async function source(port: number, host: string, file: string): Promise<net.Server> {
  const srv = net.createServer((s) => {
    s.on('error', () => {});
    fs.createReadStream(file).pipe(s);
  });
  await new Promise<void>((r) => srv.listen(port, host, () => r()));
  return srv;
}

function pasta(script: string, extra: string[] = [], timeoutMs = 60000): Promise<RunResult> {
  return run(PASTA, ['--config-net', ...NOFWD, ...extra, '--', 'sh', '-c', script], { timeoutMs });
}

/** The TCP worker's counters printed at exit with -d. */
const tcpStats = (stderr: string) => workerStats(stderr, 'tcp0');

for (const [fam, gw, lo] of [['IPv4', GW4, '127.0.0.1'], ['IPv6', GW6, '::1']] as const) {
  const g = fam === 'IPv6' ? `[${gw}]` : gw;
  e2e(`${fam}: namespace → host byte-exact, small and 32 MiB`, async (t) => {
    files();
    const port = fam === 'IPv4' ? 10010 : 10011;
    const a = await sink(port, lo);
    const b = await sink(port + 100, lo);
    const r = await pasta(`socat -u OPEN:${small} TCP:${g}:${port} && socat -u OPEN:${big} TCP:${g}:${port + 100}`);
    a.close();
    b.close();
    t.is(r.code, 0, r.stderr);
    t.deepEqual(await a.done, { bytes: fs.statSync(small).size, hash: smallHash });
    t.deepEqual(await b.done, { bytes: fs.statSync(big).size, hash: bigHash });
  });

  e2e(`${fam}: host → namespace byte-exact, small and 32 MiB`, async (t) => {
    files();
    const port = fam === 'IPv4' ? 10020 : 10021;
    const s = await source(port, lo, small);
    const b = await source(port + 100, lo, big);
    const outS = tmpPath('out-small');
    const outB = tmpPath('out-big');
    const r = await pasta(`socat -u TCP:${g}:${port} OPEN:${outS},creat,trunc && ` +
      `socat -u TCP:${g}:${port + 100} OPEN:${outB},creat,trunc`);
    s.close();
    b.close();
    t.is(r.code, 0, r.stderr);
    t.is(sha(fs.readFileSync(outS)), smallHash);
    t.is(sha(fs.readFileSync(outB)), bigHash);
  });
}

e2e('nothing lost at exit: what the command wrote just before it exited reaches the host', async (t) => {
  files();
  // a reader that starts late, so that all of it is still queued when the command exits
  let resolve!: (v: { bytes: number; hash: string }) => void;
  const done = new Promise<{ bytes: number; hash: string }>((r) => { resolve = r; });
  const srv = net.createServer((s) => {
    const h = createHash('sha256');
    let n = 0;
    s.pause();
    setTimeout(() => s.resume(), 500);
    s.on('data', (d) => {
      h.update(d);
      n += d.length;
    });
    s.on('end', () => resolve({ bytes: n, hash: h.digest('hex') }));
    s.on('error', () => resolve({ bytes: n, hash: 'error' }));
  });
  await new Promise<void>((r) => srv.listen(10035, '127.0.0.1', () => r()));
  const part = fs.readFileSync(big).subarray(0, 12 << 20);
  const r = await pasta(`head -c ${part.length} ${big} | socat -u - TCP:${GW4}:10035`);
  t.is(r.code, 0, r.stderr);
  const got = await done;
  srv.close();
  t.deepEqual(got, { bytes: part.length, hash: sha(part) });
});

e2e('lost frames both ways (test hook): retransmissions recover, byte-exact', async (t) => {
  files();
  const part = fs.readFileSync(big).subarray(0, 8 << 20);
  const inF = tmpPath('part');
  fs.writeFileSync(inF, part);
  // the host answers with the hash of what it got, so the namespace waits for all of it
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash('sha256');
    s.on('data', (d) => h.update(d));
    s.on('end', () => s.end(`${h.digest('hex')}\n`));
  });
  await new Promise<void>((r) => srv.listen(10036, '127.0.0.1', () => r()));
  const b = await source(10037, '::1', inF);
  const out = tmpPath('out-part');
  const r = await run(PASTA, ['--config-net', ...NOFWD, '-d', '--', 'sh', '-c',
    `socat -t 30 - TCP:${GW4}:10036 < ${inF} && socat -u TCP:[${GW6}]:10037 OPEN:${out},creat,trunc`],
  { timeoutMs: 60000, env: { ...process.env, PASST_TS_TCP_DROP: 'to=50,from=50' } });
  srv.close();
  b.close();
  t.is(r.code, 0, r.stderr.slice(-2000));
  t.is(r.stdout.trim(), sha(part));
  t.is(sha(fs.readFileSync(out)), sha(part));
  const st = tcpStats(r.stderr);
  t.true(st.retransFast > 0, 'fast retransmit towards the namespace');
  t.true(st.dupAcksSent > 0, 'duplicate ACKs for holes from the namespace');
});

e2e('half-close, namespace first: the host still answers after the namespace shut its side', async (t) => {
  files();
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash('sha256');
    s.on('data', (d) => h.update(d));
    s.on('end', () => {
      // the namespace's FIN arrived: answer on the still open direction
      setTimeout(() => s.end(`${h.digest('hex')}\n`), 200);
    });
  });
  await new Promise<void>((r) => srv.listen(10030, '127.0.0.1', () => r()));
  const r = await pasta(`socat -t 10 - TCP:${GW4}:10030 < ${small}`);
  srv.close();
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), smallHash);
});

e2e('half-close, host first: the namespace still sends after the host shut its side', async (t) => {
  let got = '';
  let ended!: () => void;
  const end = new Promise<void>((r) => { ended = r; });
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.end('hello from host\n');
    s.on('data', (d) => { got += d.toString(); });
    s.on('end', () => ended());
  });
  await new Promise<void>((r) => srv.listen(10031, '::1', () => r()));
  const r = await pasta(`(sleep 0.5; echo late from namespace) | socat -t 5 - TCP:[${GW6}]:10031`);
  await end;
  srv.close();
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hello from host\n');
  t.is(got, 'late from namespace\n');
});

e2e('socat -u both ways through one pasta, files byte-exact', async (t) => {
  files();
  const a = await sink(10032, '127.0.0.1');
  const b = await source(10033, '127.0.0.1', small);
  const out = tmpPath('out');
  const r = await pasta(`socat -u OPEN:${small} TCP:${GW4}:10032 & socat -u TCP:${GW4}:10033 OPEN:${out},creat,trunc; wait`);
  a.close();
  b.close();
  t.is(r.code, 0, r.stderr);
  t.is((await a.done).hash, smallHash);
  t.is(sha(fs.readFileSync(out)), smallHash);
});

e2e('connection refused fails at once (RST acknowledging the SYN), IPv4 and IPv6', async (t) => {
  const script = (g: string) =>
    `a=$(date +%s%N); socat -u - TCP:${g}:10040 </dev/null 2>/tmp/err.$$; rc=$?; b=$(date +%s%N); ` +
    'echo "$rc $(( (b - a) / 1000000 ))"; grep -c -i refused /tmp/err.$$';
  for (const g of [GW4, `[${GW6}]`]) {
    const r = await pasta(script(g));
    t.is(r.code, 0, r.stderr);
    const [line, refused] = r.stdout.trim().split('\n');
    const [rc, ms] = line.split(' ').map(Number);
    t.not(rc, 0);
    t.is(refused, '1', 'ECONNREFUSED');
    t.true(ms < 1000, `connect() failed after ${ms} ms`);
  }
});

e2e('the host peer resets mid-transfer: the namespace sees ECONNRESET, the flow goes away, pasta stays up', async (t) => {
  const srv = net.createServer((s) => {
    let n = 0;
    s.on('data', (d) => {
      n += d.length;
      if (n > 4 << 20) s.resetAndDestroy();
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(10050, '127.0.0.1', () => r()));
  const ok = await sink(10051, '127.0.0.1');
  const r = await pasta(`socat -u OPEN:/dev/zero TCP:${GW4}:10050 2>/dev/null; echo "rc=$?"; ` +
    `echo still-working | socat -u - TCP:${GW4}:10051; sleep 0.3`, ['-d']);
  srv.close();
  ok.close();
  t.is(r.code, 0, r.stderr.slice(-2000));
  t.regex(r.stdout, /rc=[1-9]/);
  t.is((await ok.done).bytes, 'still-working\n'.length);
  const st = tcpStats(r.stderr);
  t.is(st.active, 0, 'flow table empty');
  t.true(st.resetsSent >= 1);
});

e2e('the namespace process is killed mid-transfer (both directions): no stuck flows', async (t) => {
  const conns: net.Socket[] = [];
  let closed = 0;
  // a server that sends endlessly, and one that reads endlessly
  const talker = net.createServer((s) => {
    conns.push(s);
    s.on('error', () => {});
    s.on('close', () => closed++);
    const chunk = Buffer.alloc(1 << 16);
    const pump = () => { while (s.write(chunk)); };
    s.on('drain', pump);
    pump();
  });
  const listener = net.createServer((s) => {
    conns.push(s);
    s.on('error', () => {});
    s.on('close', () => closed++);
    s.resume();
  });
  await new Promise<void>((r) => talker.listen(10060, '127.0.0.1', () => r()));
  await new Promise<void>((r) => listener.listen(10061, '::1', () => r()));
  const r = await pasta(`socat -u TCP:${GW4}:10060 /dev/null & a=$!; ` +
    `socat -u /dev/zero TCP:[${GW6}]:10061 & b=$!; sleep 1; kill -9 $a $b; sleep 1; echo done`, ['-d']);
  t.is(r.code, 0, r.stderr.slice(-2000));
  t.is(r.stdout.trim(), 'done');
  t.is(tcpStats(r.stderr).active, 0, 'flow table empty');
  await waitFor(() => closed >= 2, 3000);
  t.is(closed, 2, 'host sides closed');
  talker.close();
  listener.close();
});

e2e('200 concurrent connections, all byte-exact (echo)', async (t) => {
  files();
  const srv = net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  srv.maxConnections = 1000;
  await new Promise<void>((r) => srv.listen(10070, '127.0.0.1', 511, () => r()));
  const dir = fs.mkdtempSync('/tmp/passt-ts-conc-');
  const data = randomBytes(200 * 1024);
  fs.writeFileSync(path.join(dir, 'in'), data);
  const script = `cd ${dir}; for i in $(seq 200); do ` +
    `socat -t 20 - TCP:${GW4}:10070 < in > out.$i 2>err.$i & done; wait; ` +
    'n=0; for i in $(seq 200); do cmp -s in out.$i && n=$((n+1)); done; echo $n';
  const r = await pasta(script, ['-d'], 120000);
  srv.close();
  t.is(r.code, 0, r.stderr.slice(-2000));
  t.is(r.stdout.trim(), '200');
  const st = tcpStats(r.stderr);
  t.is(st.flows, 200);
  t.is(st.active, 0);
  fs.rmSync(dir, { recursive: true });
});

e2e('malformed and unexpected segments from the namespace: dropped or answered, no crash', async (t) => {
  const srv = await sink(10080, '127.0.0.1');
  const open = net.createServer((s) => { s.on('error', () => {}); s.resume(); });
  await new Promise<void>((r) => open.listen(10082, '127.0.0.1', () => r()));
  const raw = path.join(ROOT, 'dist', 'test', 'helpers', 'rawTcp.js');
  const r = await pasta('l=$(ip -o link show eth0); idx=${l%%:*}; ' +
    'mac=$(echo "$l" | sed "s/.*link\\/ether \\([0-9a-f:]*\\).*/\\1/"); ' +
    `node ${raw} ${GW4} 10082 10081 $mac $idx && echo ok | socat -u - TCP:${GW4}:10080`, ['-d'], 60000);
  srv.close();
  open.close();
  t.is(r.code, 0, r.stderr.slice(-3000));
  const res = JSON.parse(r.stdout.trim().split('\n')[0]);
  // SYN to a closed port: RST+ACK acknowledging the SYN
  t.deepEqual(res.closedPort, { rst: true, ackOk: true });
  // SYN with payload: SYN+ACK acknowledging the SYN only
  t.deepEqual(res.synPayload, { synAck: true, ackOk: true, mssOpt: true });
  // options running past their area: parsing stops, the SYN is answered
  t.deepEqual(res.badOptions, { synAck: true });
  // nothing comes back for malformed headers or segments of unknown flows
  for (const k of ['badDoff', 'doffPastEnd', 'optsPastEnd', 'synFin', 'synRst', 'finOnly', 'ackUnknown', 'rstUnknown'])
    t.is(res[k], 'silent', k);
  const { gapDupAcks, ...est } = res.established;
  t.deepEqual(est, { synAck: true, inOrderAcked: true, oldAcked: true, badAckIgnored: true, stillWorks: true });
  t.true(gapDupAcks >= 3, `a gap brings at least three duplicate ACKs (${gapDupAcks})`);
  t.is(res.afterwards, 'reply', 'a normal SYN is still answered');
  t.is((await srv.done).bytes, 3, 'a normal connection works afterwards');
  const st = tcpStats(r.stderr);
  t.true(st.dropNoFlow >= 4, JSON.stringify(st));
  t.true(st.dropMalformed >= 2, JSON.stringify(st));
});

/** Host side addresses of the made namespace: the namespace has the same ones (pasta's default). */
const ADDR4 = '192.0.2.2';
const ADDR6 = '2001:db8::2';

/**
 * pasta with -t forwards, running `script` in the namespace in the
 * background; resolves once the script's listeners are up (and IPv6 DAD is
 * over), with the exit to await.
 */
async function pastaListening(fwd: string[], script: string, extra: string[] = []) {
  const ready = tmpPath('ready');
  const full = `${script} sleep 0.2; ` +
    'for i in $(seq 50); do ip -6 addr show dev eth0 | grep -q tentative || break; sleep 0.1; done; ' +
    `touch ${ready}; wait`;
  const child = spawn(PASTA, ['--config-net', ...fwd, '-u', 'none', '-T', 'none', '-U', 'none', ...extra,
    '--', 'sh', '-c', full], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const exit = new Promise<{ code: number | null; stdout: string; stderr: string }>((r) =>
    child.on('close', (code) => r({ code, stdout, stderr })));
  const ok = await waitFor(() => fs.existsSync(ready), 15000);
  if (!ok) child.kill('SIGKILL');
  return { ok, exit, child, stderr: () => stderr };
}

/** Connects to addr:port, sends `data` (then FIN), returns everything received until EOF. */
function exchange(addr: string, port: number, data: Buffer | null): Promise<{ got: Buffer; err: string | null; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: addr, port, allowHalfOpen: true }, () => {
      if (data) s.end(data); else s.end();
    });
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => resolve({ got: Buffer.concat(chunks), err: null, ms: Date.now() - t0 }));
    s.on('error', (e: NodeJS.ErrnoException) => resolve({ got: Buffer.concat(chunks), err: e.code ?? e.message, ms: Date.now() - t0 }));
  });
}

for (const [fam, addr] of [['IPv4', ADDR4], ['IPv6', ADDR6]] as const) {
  e2e(`${fam}: inbound (-t) byte-exact both ways, small and 32 MiB`, async (t) => {
    files();
    const base = fam === 'IPv4' ? 10200 : 10300;
    const outS = tmpPath('in-small');
    const outB = tmpPath('in-big');
    // guest: two receivers (host → namespace), two senders (namespace → host)
    const p = await pastaListening(['-t', `${base}-${base + 3}`],
      `socat -u TCP6-LISTEN:${base},ipv6only=0 OPEN:${outS},creat,trunc & ` +
      `socat -u TCP6-LISTEN:${base + 1},ipv6only=0 OPEN:${outB},creat,trunc & ` +
      `socat -u OPEN:${small} TCP6-LISTEN:${base + 2},ipv6only=0 & ` +
      `socat -u OPEN:${big} TCP6-LISTEN:${base + 3},ipv6only=0 & `);
    t.truthy(p.ok, p.stderr());
    const a = await exchange(addr, base, fs.readFileSync(small));
    const b = await exchange(addr, base + 1, fs.readFileSync(big));
    const c = await exchange(addr, base + 2, null);
    const d = await exchange(addr, base + 3, null);
    const r = await p.exit;
    t.is(r.code, 0, r.stderr);
    t.deepEqual([a.err, b.err, c.err, d.err], [null, null, null, null]);
    t.is(sha(fs.readFileSync(outS)), smallHash);
    t.is(sha(fs.readFileSync(outB)), bigHash);
    t.is(sha(c.got), smallHash);
    t.is(sha(d.got), bigHash);
  });
}

e2e('inbound: port mapping (-t HOST:GUEST), the source seen in the namespace (SPEC §2.7)', async (t) => {
  // a connection from the host's own address shows up as coming from the gateway;
  // from 127.0.0.1 (over the tap while there is no splice path, or with --no-splice)
  // it also maps to the gateway (map-host-loopback)
  const p = await pastaListening(['-t', '10400:10401'],
    `socat TCP-LISTEN:10401,fork,reuseaddr SYSTEM:'echo "$SOCAT_PEERADDR $SOCAT_SOCKPORT"' & `, ['--no-splice']);
  t.truthy(p.ok, p.stderr());
  const a = await exchange(ADDR4, 10400, null);
  const b = await exchange('127.0.0.1', 10400, null);
  p.child.kill('SIGTERM');
  await p.exit;
  t.is(a.got.toString().trim(), `${GW4} 10401`);
  t.is(b.got.toString().trim(), `${GW4} 10401`);
});

e2e('inbound: nobody listens in the namespace → the host client is reset at once; the flow goes away', async (t) => {
  const p = await pastaListening(['-t', '10410'], 'sleep 1.5 & ', ['-d']);
  t.truthy(p.ok, p.stderr());
  const a = await exchange(ADDR4, 10410, Buffer.from('hello'));
  const r = await p.exit;
  t.is(r.code, 0);
  t.is(a.err, 'ECONNRESET');
  t.true(a.ms < 1000, `${a.ms} ms`);
  t.is(tcpStats(r.stderr).active, 0);
});

e2e('inbound: half-close both ways over the tap', async (t) => {
  // guest: replies after the host's FIN, with the hash of what it got
  const p = await pastaListening(['-t', '10420'],
    "socat -t 5 TCP6-LISTEN:10420,ipv6only=0 SYSTEM:'sha256sum | cut -c1-64' & ");
  t.truthy(p.ok, p.stderr());
  files();
  const a = await exchange(ADDR6, 10420, fs.readFileSync(small));
  const kill = setTimeout(() => p.child.kill('SIGTERM'), 5000);
  await p.exit;
  clearTimeout(kill);
  t.is(a.err, null);
  t.is(a.got.toString().trim(), smallHash);
});

/** 32 MiB both ways (namespace → host over IPv4, host → namespace over IPv6) with a pipeline variant's env. */
async function bothWays(t: ExecutionContext, env: NodeJS.ProcessEnv, port: number): Promise<void> {
  files();
  const a = await sink(port, '127.0.0.1');
  const src = await source(port + 1, '::1', big);
  const out = tmpPath('variant-out');
  const r = await run(PASTA, ['--config-net', ...NOFWD, '--', 'sh', '-c',
    `socat -u OPEN:${big} TCP:${GW4}:${port} & socat -u TCP:[${GW6}]:${port + 1} OPEN:${out},creat,trunc; wait`],
  { timeoutMs: 60000, env: { ...process.env, ...env } });
  a.close();
  src.close();
  t.is(r.code, 0, r.stderr);
  t.deepEqual(await a.done, { bytes: fs.statSync(big).size, hash: bigHash });
  t.is(sha(fs.readFileSync(out)), bigHash);
}

e2e('a tap without virtio-net header and offloads (PASST_TS_OFFLOAD=0): 32 MiB byte-exact both ways, IPv4 and IPv6', (t) =>
  bothWays(t, { PASST_TS_OFFLOAD: '0' }, 10090));

e2e('tap-RX run inside the TCP worker (PASST_TS_INLINE_RX=1): 32 MiB byte-exact both ways, IPv4 and IPv6', (t) =>
  bothWays(t, { PASST_TS_INLINE_RX: '1' }, 10092));

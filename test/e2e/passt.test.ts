/**
 * passt's lifecycle and stream framing end to end, without qemu (issue:
 * passt mode): a test client speaks the `-netdev stream` protocol to the
 * real program and checks what the link services answer. Split and
 * coalesced frames, bad lengths, a client leaving mid-frame, one client at
 * a time, --one-off, --fd on a socket pair (qemu's -netdev passt, with a
 * pre-created PID file), the daemon contract (CLIENTS.md §0), socket path
 * probing, libvirt's exact argv (CLIENTS.md §3), and passt run by a normal
 * user (libvirt runs it as the qemu user).
 * Runs only inside the namespace made by test/run.sh.
 */
import anyTest, { TestFn } from 'ava';
import { spawn, ChildProcess, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PASST, inTestNs, NOT_IN_NS, run, waitFor, alive, tmpPath, sleep } from '../helpers/env';
import { ARP_REQUEST, DHCP_DISCOVER, NDP_NS } from '../helpers/fixtures';
import { decodeUdp4, dhcpOptions, ip4Str } from '../helpers/decode';
import { socketPair } from '../helpers/socketpair';
import { native } from '../../src/shared/native';
import { asUser, readableInstall } from '../helpers/unpriv';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('end-to-end passt tests', (t) => t.pass(NOT_IN_NS));

function framed(frames: Uint8Array[]): Buffer {
  return Buffer.concat(frames.flatMap((f) => {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(f.length);
    return [h, Buffer.from(f)];
  }));
}

/** What a failed test may leave behind, cleaned up after the file. */
const openClients = new Set<Client>();
const openProcs = new Set<ChildProcess>();
/** Daemons (not our children) started by a test. */
const daemons = new Set<number>();
test.after.always(() => {
  for (const c of openClients) c.sock.destroy();
  for (const p of openProcs) p.kill('SIGKILL');
  for (const pid of daemons) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

/** A qemu-like client: length-prefixed frames both ways. */
class Client {
  readonly frames: Buffer[] = [];
  private buf = Buffer.alloc(0);
  readonly closed: Promise<void>;
  isClosed = false;

  constructor(readonly sock: net.Socket) {
    openClients.add(this);
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4) {
        const l = this.buf.readUInt32BE(0);
        if (this.buf.length < 4 + l) break;
        this.frames.push(this.buf.subarray(4, 4 + l));
        this.buf = this.buf.subarray(4 + l);
      }
    });
    sock.on('error', () => {});
    this.closed = new Promise((r) => sock.on('close', () => { this.isClosed = true; openClients.delete(this); r(); }));
  }

  static connect(p: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(p, () => resolve(new Client(s)));
      s.once('error', reject);
    });
  }

  write(b: Uint8Array): Promise<void> {
    return new Promise((r) => this.sock.write(b, () => r()));
  }

  /** Waits until n frames (of ethertype type, if given) arrived. */
  async waitFrames(n: number, ms = 5000, type?: number): Promise<Buffer[]> {
    const pick = () => this.frames.filter((f) => type === undefined || f.readUInt16BE(12) === type);
    await waitFor(() => pick().length >= n, ms, 10);
    return pick();
  }

  async arpWorks(count = 1): Promise<boolean> {
    const before = this.frames.filter(isArpReply).length;
    await this.write(framed(Array.from({ length: count }, () => ARP_REQUEST)));
    return (await waitFor(() => this.frames.filter(isArpReply).length >= before + count, 5000, 10)) === true;
  }

  close(): Promise<void> {
    this.sock.destroy();
    return this.closed;
  }
}

function isArpReply(f: Buffer): boolean {
  return f.length === 42 && f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 2;
}

interface Proc {
  child: ChildProcess;
  log: () => string;
  exit: Promise<number | null>;
  waitLog(re: RegExp, ms?: number): Promise<boolean>;
  stop(): Promise<number | null>;
}

function startPasst(args: string[], extraStdio: (number | 'ignore')[] = [], env = process.env, argv0: string[] = [PASST]): Proc {
  const child = spawn(argv0[0], [...argv0.slice(1), ...args], { stdio: ['ignore', 'pipe', 'pipe', ...extraStdio], env });
  openProcs.add(child);
  child.on('exit', () => openProcs.delete(child));
  let log = '';
  child.stdout?.on('data', (d) => { log += d; });
  child.stderr?.on('data', (d) => { log += d; });
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return {
    child,
    log: () => log,
    exit,
    waitLog: async (re, ms = 10000) => (await waitFor(() => re.test(log), ms, 20)) === true,
    stop: async () => {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      const c = await exit;
      clearTimeout(t);
      return c;
    },
  };
}

/** passt in the foreground on a fresh socket path; resolves once it listens. */
async function listening(extra: string[] = [], env = process.env): Promise<{ p: Proc; sock: string }> {
  const sock = tmpPath('passt.socket');
  const p = startPasst(['-f', '-s', sock, ...extra], [], env);
  await p.waitLog(/UNIX domain socket bound at/);
  return { p, sock };
}

e2e('ARP answered through the socket; frames split byte by byte and coalesced', async (t) => {
  const { p, sock } = await listening();
  const c = await Client.connect(sock);
  // one request, one byte per write
  for (const b of framed([ARP_REQUEST])) {
    await c.write(Buffer.from([b]));
    await sleep(1);
  }
  const r1 = await c.waitFrames(1);
  t.is(r1.length, 1);
  t.true(isArpReply(r1[0]), 'a 42-byte ARP reply, not padded');
  t.is(r1[0].subarray(6, 12).toString('hex'), '9a559a559a55', 'from our MAC');
  // 200 requests in one write; then a request whose prefix ends one write and whose body starts the next
  await c.write(framed(Array.from({ length: 200 }, () => ARP_REQUEST)));
  const two = framed([ARP_REQUEST, ARP_REQUEST]);
  await c.write(two.subarray(0, 50));
  await sleep(20);
  await c.write(two.subarray(50));
  t.is((await c.waitFrames(203)).filter(isArpReply).length, 203);
  await c.close();
  t.is(await p.stop(), 0, 'SIGTERM → exit 0');
});

e2e('a bad frame length drops the client with one clear log line; the next client is served', async (t) => {
  const { p, sock } = await listening();
  for (const bad of [0, 13, 65536]) {
    const c = await Client.connect(sock);
    t.true(await c.arpWorks(), `before length ${bad}: ${p.log()}`);
    const h = Buffer.alloc(4);
    h.writeUInt32BE(bad);
    await c.write(Buffer.concat([h, Buffer.alloc(64)]));
    await Promise.race([c.closed, sleep(5000)]);
    t.true(c.isClosed, `length ${bad}: connection closed by passt`);
    t.true(await p.waitLog(new RegExp(`bad frame length ${bad}\\b`)), p.log());
  }
  t.is(p.log().split('\n').filter((l) => /bad frame length 13\b/.test(l)).length, 1, 'one line per bad client');
  const ok = await Client.connect(sock);
  t.true(await ok.arpWorks(), 'served after the bad clients');
  await ok.close();
  t.is(await p.stop(), 0);
});

e2e('tap-RX in a worker of its own (PASST_TS_INLINE_RX=0): frames answered, a bad client dropped, the next served', async (t) => {
  const { p, sock } = await listening(['-d'], { ...process.env, PASST_TS_INLINE_RX: '0' });
  const c = await Client.connect(sock);
  await c.write(framed(Array.from({ length: 50 }, () => ARP_REQUEST)));
  t.is((await c.waitFrames(50)).filter(isArpReply).length, 50);
  const h = Buffer.alloc(4);
  h.writeUInt32BE(13);
  await c.write(Buffer.concat([h, Buffer.alloc(64)]));
  await Promise.race([c.closed, sleep(5000)]);
  t.true(c.isClosed, 'closed by passt');
  const c2 = await Client.connect(sock);
  t.true(await c2.arpWorks(), p.log());
  await c2.close();
  t.is(await p.stop(), 0);
  t.regex(p.log(), /tap-RX runs in a worker of its own/);
  t.regex(p.log(), /tap-rx: \{"frames":51,/, 'every frame counted once');
});

e2e('unprivileged: a normal user runs passt (socket in its own directory, -t port bound, frames answered)', async (t) => {
  const dir = fs.mkdtempSync('/tmp/passt-ts-unpriv-sock-');
  fs.chmodSync(dir, 0o777);
  const sock = path.join(dir, 'passt.socket');
  const p = startPasst(['-f', '-s', sock, '-t', '10460'], [], process.env,
    [...asUser(), path.join(readableInstall(), 'bin', 'passt')]);
  t.true(await p.waitLog(/UNIX domain socket bound at/), p.log());
  t.not(fs.statSync(sock).uid, 0, 'the socket belongs to the user');
  t.regex(spawnSync('ss', ['-Hltn'], { encoding: 'utf8' }).stdout, /:10460\b/);
  const c = await Client.connect(sock);
  t.true(await c.arpWorks(5), p.log());
  await c.close();
  t.is(await p.stop(), 0);
  fs.rmSync(dir, { recursive: true, force: true });
});

e2e('one client at a time: a second is accepted and closed at once, the first keeps working', async (t) => {
  const { p, sock } = await listening();
  const c1 = await Client.connect(sock);
  t.true(await c1.arpWorks());
  const c2 = await Client.connect(sock);
  await Promise.race([c2.closed, sleep(3000)]);
  t.true(c2.isClosed, 'second client closed');
  t.true(await p.waitLog(/Discarding connection from PID \d+/));
  t.true(await c1.arpWorks(), 'first client unaffected');
  await c1.close();
  // after the first leaves, a new one is accepted
  t.true(await p.waitLog(/Client connection closed/));
  const c3 = await Client.connect(sock);
  t.true(await c3.arpWorks());
  await c3.close();
  t.is(await p.stop(), 0);
});

e2e('client gone in the middle of a frame: logged, and passt waits for the next', async (t) => {
  const { p, sock } = await listening();
  const c = await Client.connect(sock);
  const f = framed([ARP_REQUEST]);
  await c.write(f.subarray(0, 20));
  await sleep(50);
  await c.close();
  t.true(await p.waitLog(/in the middle of a frame/), p.log());
  const c2 = await Client.connect(sock);
  t.true(await c2.arpWorks());
  await c2.close();
  t.true(alive(p.child.pid as number));
  t.is(await p.stop(), 0);
});

e2e('--one-off: exits 0 when its client leaves', async (t) => {
  const { p, sock } = await listening(['--one-off']);
  const c = await Client.connect(sock);
  t.true(await c.arpWorks());
  await c.close();
  const code = await Promise.race([p.exit, sleep(5000).then(() => 'timeout' as const)]);
  t.is(code, 0, p.log());
});

e2e('the socket file goes away with passt (one-off end, SIGTERM); a file put in its place is left alone', async (t) => {
  const one = await listening(['--one-off']);
  const c = await Client.connect(one.sock);
  await c.close();
  t.is(await one.p.exit, 0);
  t.false(fs.existsSync(one.sock), 'removed after the one-off client left');
  const two = await listening();
  t.is(await two.p.stop(), 0);
  t.false(fs.existsSync(two.sock), 'removed after SIGTERM');
  const three = await listening();
  fs.unlinkSync(three.sock);
  fs.writeFileSync(three.sock, 'not ours');
  await three.p.stop();
  t.is(fs.readFileSync(three.sock, 'utf8'), 'not ours', 'another file at the path is not removed');
});

e2e('replies reach a client that only reads slowly, whole and in sync (full socket, partial writes in passt)', async (t) => {
  const { p, sock } = await listening();
  const c = await Client.connect(sock);
  c.sock.pause();
  // far more replies than a UNIX socket buffer holds
  const n = 2000;
  await c.write(framed(Array.from({ length: n }, () => DHCP_DISCOVER)));
  await sleep(300);
  c.sock.resume();
  const got = await c.waitFrames(n, 15000);
  t.is(got.length, n, 'every reply arrived whole and in sync');
  t.true(got.every((f) => f.readUInt16BE(12) === 0x0800));
  await c.close();
  t.is(await p.stop(), 0);
});

e2e('--fd: qemu -netdev passt style (socket pair as fd 3, pre-created PID file, no -f)', async (t) => {
  const [mine, theirs] = socketPair();
  const pidFile = tmpPath('passt.pid');
  fs.writeFileSync(pidFile, 'stale content that is longer than a pid\n');
  const fg = startPasst(['--quiet', '--pid', pidFile, '--fd', '3'], [theirs]);
  native.close(theirs);
  const code = await Promise.race([fg.exit, sleep(15000).then(() => 'timeout' as const)]);
  t.is(code, 0, fg.log());
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  daemons.add(pid);
  t.regex(fs.readFileSync(pidFile, 'utf8'), /^\d+\n$/, 'truncated, PID and newline');
  t.true(alive(pid), 'the daemon runs');
  const c = new Client(new net.Socket({ fd: mine, readable: true, writable: true }));
  t.true(await c.arpWorks(5));
  await c.close();
  t.truthy(await waitFor(() => !alive(pid), 5000), 'the daemon exits when the socket closes (one-off implied)');
});

e2e('--fd with -f serves the descriptor in the foreground and exits 0 when it closes', async (t) => {
  const [mine, theirs] = socketPair();
  const p = startPasst(['-f', '--fd', '3'], [theirs]);
  native.close(theirs);
  const c = new Client(new net.Socket({ fd: mine, readable: true, writable: true }));
  t.true(await c.arpWorks());
  await c.close();
  t.is(await Promise.race([p.exit, sleep(5000).then(() => 'timeout' as const)]), 0, p.log());
});

e2e('--fd with a descriptor that is not open fails at once', async (t) => {
  const r = await run(PASST, ['-f', '--fd', '77']);
  t.is(r.code, 1);
  t.regex(r.stderr, /--fd 77/);
});

e2e('daemon: exits 0 once the socket listens, keeps none of our stdio, PID file, SIGTERM ends it', async (t) => {
  const sock = tmpPath('passt.socket');
  const pidFile = tmpPath('passt.pid');
  // run() resolves on 'close': only once every holder of the stdout/stderr pipes closed them
  const r = await run(PASST, ['-s', sock, '-P', pidFile], { timeoutMs: 15000 });
  t.is(r.code, 0, r.stderr);
  t.false(r.timedOut, 'the caller was not kept waiting by the daemon holding its pipes');
  t.true(fs.statSync(sock).isSocket(), 'the socket exists when the caller goes on');
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  daemons.add(pid);
  t.true(alive(pid));
  const c = await Client.connect(sock);
  t.true(await c.arpWorks());
  await c.close();
  await sleep(100);
  t.true(alive(pid), 'without --one-off the daemon stays for the next client');
  process.kill(pid, 'SIGTERM');
  t.truthy(await waitFor(() => !alive(pid), 5000));
});

e2e('a client connecting while passt still starts is served; a failed start removes the socket file (daemon and -f)', async (t) => {
  // a client that connects while passt is still starting waits in the backlog and is served
  const sock = tmpPath('passt.socket');
  const p = startPasst(['-s', sock, '--one-off']);
  t.truthy(await waitFor(() => fs.existsSync(sock), 10000, 5), 'socket made');
  const c = await Client.connect(sock);
  t.is(await p.exit, 0, p.log());
  t.true(await c.arpWorks(), 'the early client is served by the daemon');
  await c.close();
  // a forwarded port already in use makes the start fail, after the socket was made
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(10470, '::', () => r()));
  try {
    for (const fg of [[], ['-f']]) {
      const s2 = tmpPath('passt.socket');
      const r = await run(PASST, [...fg, '-s', s2, '-t', '10470'], { timeoutMs: 15000 });
      t.not(r.code, 0, `${fg.join(' ')}: ${r.stderr}`);
      t.regex(r.stderr, /10470/);
      t.false(fs.existsSync(s2), `no socket file left (${fg.join(' ') || 'daemon'})`);
    }
  } finally {
    busy.close();
  }
});

e2e('an explicit socket path in use is fatal; the message names it', async (t) => {
  const { p, sock } = await listening();
  const r = await run(PASST, ['-f', '-s', sock], { timeoutMs: 10000 });
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`Socket path ${sock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} already in use`));
  t.is(await p.stop(), 0);
});

e2e('default socket path: the first free /tmp/passt_N.socket, stale ones reused, busy ones skipped', async (t) => {
  // a private /tmp so that other passt instances on the machine do not matter
  const script = `
    mount -t tmpfs tmpfs /tmp || exit 99
    python3 -c '
import socket, time
b = socket.socket(socket.AF_UNIX); b.bind("/tmp/passt_1.socket"); b.listen(1)   # busy
s = socket.socket(socket.AF_UNIX); s.bind("/tmp/passt_2.socket"); s.close()     # left behind: stale
time.sleep(60)' &
    holder=$!
    i=0; while [ ! -S /tmp/passt_1.socket ] || [ ! -S /tmp/passt_2.socket ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
    sleep 0.2
    ${PASST} -f -1 2>&1 & p=$!
    i=0; while ! ls /tmp/passt_2.socket >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
    sleep 1
    kill $p; wait $p; kill $holder`;
  const r = await run('unshare', ['--mount', 'sh', '-c', script], { timeoutMs: 20000 });
  t.regex(r.stdout, /UNIX domain socket bound at \/tmp\/passt_2\.socket/, r.stdout + r.stderr);
});

e2e("libvirt's argv: --one-off --socket --pid --mtu --interface --log-file --address/--netmask, port specs", async (t) => {
  const dir = path.dirname(tmpPath('x'));
  const sock = path.join(dir, '-1-QEMUGuest1-net0.socket');
  const pidFile = path.join(dir, '-1-QEMUGuest1-net0-passt.pid');
  const logFile = path.join(dir, 'passt.log');
  fs.writeFileSync(logFile, ''); // libvirt pre-creates it
  const r = await run(PASST, ['--one-off', '--socket', sock, '--pid', pidFile, '--mtu', '1500', '--interface', 'eth0',
    '--log-file', logFile, '--address', '192.0.2.10', '--netmask', '24', '--address', '2001:db8::10',
    '--tcp-ports', '13020:22', '--udp-ports', '192.0.2.2/13021-13025:13031-13035,~13023',
    '--tcp-ports', '2001:db8::2%eth0/13026,13027:13028'], { timeoutMs: 15000 });
  t.is(r.code, 0, r.stderr);
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  daemons.add(pid);
  t.true(alive(pid));
  t.true(fs.statSync(sock).isSocket());
  t.regex(fs.readFileSync(logFile, 'utf8').split('\n')[0], /^passt .* \(\d+\)$/, 'log file header line');
  const tcp = spawnSync('ss', ['-Hltn'], { encoding: 'utf8' }).stdout;
  const udp = spawnSync('ss', ['-Hlun'], { encoding: 'utf8' }).stdout;
  for (const port of [13020, 13026, 13027]) t.regex(tcp, new RegExp(`:${port}\\b`), `TCP ${port} bound before readiness`);
  t.regex(tcp, /\[2001:db8::2\]%eth0:13026\b/, 'ADDR%DEV/ prefix honoured');
  for (const port of [13021, 13022, 13024, 13025]) t.regex(udp, new RegExp(`192\\.0\\.2\\.2:${port}\\b`), `UDP ${port} bound`);
  t.notRegex(udp, /:13023\b/, '~13023 excluded');
  const c = await Client.connect(sock);
  await c.write(framed([DHCP_DISCOVER]));
  const offer = (await c.waitFrames(1, 5000, 0x0800))[0];
  t.truthy(offer, 'DHCP offer');
  const d = decodeUdp4(offer);
  t.is(ip4Str(d.payload, 16), '192.0.2.10', '--address handed out');
  const opts = new Map(dhcpOptions(d.payload.subarray(240)).list);
  t.deepEqual(opts.get(1), [255, 255, 255, 0], '--netmask 24');
  t.deepEqual(opts.get(26), [0x05, 0xdc], '--mtu 1500');
  await c.close();
  t.truthy(await waitFor(() => !alive(pid), 5000), '--one-off: exits when qemu disconnects');
  const ss = spawnSync('ss', ['-Hltn'], { encoding: 'utf8' }).stdout;
  t.notRegex(ss, /:1302[0-8]\b/, 'its listeners went with it');
});

e2e("qrap's probe: ARP and NS probes framed, a framed reply within 500 ms", async (t) => {
  const { p, sock } = await listening();
  const c = await Client.connect(sock);
  const t0 = Date.now();
  await c.write(framed([ARP_REQUEST, NDP_NS]));
  const got = await c.waitFrames(1, 500);
  t.true(got.length >= 1, 'a reply within 500 ms');
  t.true(Date.now() - t0 < 500);
  t.true(isArpReply(got[0]), 'and it is a valid framed packet');
  await c.close();
  t.is(await p.stop(), 0);
});

e2e('between clients the forwarded ports stay bound; with --one-off they go when the client leaves', async (t) => {
  const listeningOn = (port: number) => new RegExp(`:${port}\\b`).test(spawnSync('ss', ['-Hltn'], { encoding: 'utf8' }).stdout);
  const { p, sock } = await listening(['-t', '13040']);
  t.true(listeningOn(13040), 'bound before readiness');
  const c1 = await Client.connect(sock);
  t.true(await c1.arpWorks());
  await c1.close();
  t.true(await p.waitLog(/Client connection closed/));
  t.true(listeningOn(13040), 'still bound without a client');
  const c2 = await Client.connect(sock);
  t.true(await c2.arpWorks());
  await c2.close();
  t.is(await p.stop(), 0);
  t.false(listeningOn(13040));
  const o = await listening(['-1', '-t', '13041']);
  t.true(listeningOn(13041));
  const c3 = await Client.connect(o.sock);
  await c3.close();
  t.is(await Promise.race([o.p.exit, sleep(5000).then(() => 'timeout' as const)]), 0);
  t.false(listeningOn(13041));
});

/**
 * slirp4netns-ts end to end, driven the way its real clients drive
 * slirp4netns (issue 11; CLIENTS.md §1.8, §5.1, §5.4):
 * - rootlesskit 1.1 (the real binary, as a normal user with subordinate
 *   IDs): `--net=slirp4netns --slirp4netns-binary=slirp4netns-ts
 *   --port-driver=slirp4netns -p ...` — rootlesskit creates tap0 itself,
 *   passes the child's PID, waits on --ready-fd, configures the child's
 *   address, and publishes ports through the API socket;
 * - Podman's `--network slirp4netns` argv (c/common slirp4netns.go), run by
 *   a script that does what Podman does: a user namespace owning a netns
 *   bound to a file, slirp4netns-ts started in it with ready and exit pipes
 *   on fds 3 and 4, the API socket used with Podman's request bytes;
 * - the real Podman 4.3.1, rootless, with slirp4netns-ts as its
 *   network_cmd_path (`--network slirp4netns`, and `-p` with
 *   port_handler=slirp4netns).
 * Everything happens inside the namespace made by test/run.sh; the host
 * side servers are the test process's own.
 */
import anyTest, { TestFn } from 'ava';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { inTestNs, NOT_IN_NS, waitFor, alive, processesWith, sleep, tmpPath, ROOT } from '../helpers/env';
import { controlRequest } from '../../src/main/control/client';
import { LineProc } from '../helpers/pastaNs';
import { sendRandom, receiveAll } from '../helpers/tcpTool';
import { STANDIN_ANSWER } from '../helpers/dns';
import { asUser, ensureSubIds, ensureUser, readableInstall } from '../helpers/unpriv';
import { native } from '../../src/shared/native';

const test = anyTest as TestFn;
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('end-to-end slirp4netns-ts tests', (t) => t.pass(NOT_IN_NS));
const MIB8 = 8 << 20;
const UDP_TOOL = path.join(__dirname, '..', 'helpers', 'udpTool.js');

/** The program as an unprivileged user can run it. */
function slirpBin(): string {
  return path.join(readableInstall(), 'bin', 'slirp4netns-ts');
}

/** A directory the test user owns. */
function userDir(prefix: string): string {
  const { uid, gid } = ensureUser();
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chownSync(d, uid, gid);
  fs.chmodSync(d, 0o755);
  return d;
}

/** A host-side TCP server answering every connection with `text`. */
async function greeter(host: string, text: string): Promise<{ port: number; close: () => void }> {
  const srv = net.createServer((c) => {
    c.on('error', () => {});
    c.end(text);
  });
  await new Promise<void>((r) => srv.listen({ host, port: 0 }, r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => srv.close() };
}

/** Sends 8 MiB to host:port and checks the echo, byte for byte. */
async function echo8(t: import('ava').ExecutionContext, host: string, port: number, what: string, local?: string): Promise<void> {
  const s = net.connect({ host, port, allowHalfOpen: true, ...(local ? { localAddress: local } : {}) });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  const [sent, got] = await Promise.all([sendRandom(s, MIB8), receiveAll(s)]);
  s.destroy();
  t.is(got.bytes, MIB8, `${what}: bytes echoed`);
  t.is(got.sha, sent.sha, `${what}: same bytes`);
}

/**
 * True once an echo server answers through host:port. A bare connect is not
 * enough: pasta accepts on the host side before it connects inside, where
 * the server may not listen yet.
 */
async function echoes(host: string, port: number, timeoutMs: number): Promise<boolean> {
  const once = () => new Promise<boolean>((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 2000);
    s.once('connect', () => s.write('ping'));
    s.once('data', () => done(true));
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
  return (await waitFor(once, timeoutMs, 200)) === true;
}

/** A free TCP port on the host side. */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen({ host: '127.0.0.1', port: 0 }, r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** One API request the way Podman sends it: JSON + "\n", shutdown(SHUT_WR), one read of ≤ 2048 bytes. */
function apiCall(sock: string, req: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sock);
    let got = '';
    c.on('data', (d) => { got += d.toString(); });
    c.on('error', reject);
    c.on('close', () => resolve(got.slice(0, 2048)));
    c.end(req);
  });
}

/** A pipe from the native addon: [read end, write end], close-on-exec (spawn dup2s them). */
function pipe(): [number, number] {
  const fds = new Int32Array(2);
  const r = native.pipe2(fds, 0o2000000 /* O_CLOEXEC */);
  if (r < 0) throw new Error(`pipe2: ${native.strerror(-r)}`);
  return [fds[0], fds[1]];
}

/** Resolves with what arrives on fd until EOF (or timeoutMs), then closes it. */
function readFd(fd: number, timeoutMs: number): Promise<{ data: string; eof: boolean }> {
  return new Promise((resolve) => {
    const s = new net.Socket({ fd, readable: true, writable: false });
    let data = '';
    const done = (eof: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ data, eof });
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.on('data', (d) => { data += d.toString(); });
    s.on('end', () => done(true));
    s.on('error', () => done(true));
  });
}

e2e('rootlesskit --net=slirp4netns --port-driver=slirp4netns: outbound, host loopback, published ports', async (t) => {
  if (!have('rootlesskit') || !have('newuidmap')) {
    t.pass('rootlesskit or uidmap missing: .ci/setup.sh installs them from apt');
    return;
  }
  ensureSubIds();
  const state = userDir('passt-ts-rk-');
  const outside = await greeter('192.0.2.2', 'host-hello');
  const loopback = await greeter('127.0.0.1', 'lo-hello');
  const [loPort, anyPort] = [await freePort(), await freePort()];
  const script = `
echo "ADDR $(ip -o -4 addr show dev tap0 | awk '{print $4}')"
echo "ROUTE $(ip route show default)"
echo "HOST $(socat -T 5 - TCP:192.0.2.2:${outside.port})"
echo "HOSTLO $(socat -T 5 - TCP:10.0.2.2:${loopback.port})"
socat TCP-LISTEN:80,reuseaddr,fork EXEC:cat &
echo READY
read line
kill $!`;
  const child = spawn(asUser()[0], [...asUser().slice(1), 'env', 'HOME=/tmp', `XDG_RUNTIME_DIR=${state}`,
    'rootlesskit', `--state-dir=${state}/rk`, '--net=slirp4netns', `--slirp4netns-binary=${slirpBin()}`,
    '--port-driver=slirp4netns', '-p', `127.0.0.1:${loPort}:80/tcp`, '-p', `0.0.0.0:${anyPort}:80/tcp`,
    '--', 'sh', '-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  const p = new LineProc(child);
  try {
    t.truthy(await p.line(/^READY$/, 30000), `rootlesskit's child did not start: ${p.stderr}`);
    t.is(await p.line(/^ADDR /), 'ADDR 10.0.2.100/24');
    t.regex((await p.line(/^ROUTE /)) ?? '', /^ROUTE default via 10\.0\.2\.2 dev tap0/);
    t.is(await p.line(/^HOST /), 'HOST host-hello', 'a host-namespace server by its address');
    t.is(await p.line(/^HOSTLO /), 'HOSTLO lo-hello', "10.0.2.2 reaches the host's 127.0.0.1");
    // rootlesskit publishes the -p ports through the API once the child runs
    t.true(await echoes('127.0.0.1', loPort, 15000), `published port ${loPort} never echoed: ${p.stderr}`);
    await echo8(t, '127.0.0.1', loPort, 'published on 127.0.0.1 (loopback client: spliced)');
    await echo8(t, '192.0.2.2', anyPort, 'published on 0.0.0.0 (non-loopback client: through the tap)', '192.0.2.2');
  } finally {
    child.stdin?.end('\n');
    const code = await Promise.race([p.exited, sleep(15000).then(() => 'timeout')]);
    t.not(code, 'timeout', 'rootlesskit ends with its child');
    p.kill();
    outside.close();
    loopback.close();
  }
  // rootlesskit kills slirp4netns when its child exits: nothing of ours is left
  t.truthy(await waitFor(() => processesWith(slirpBin()).length === 0, 5000), 'no slirp4netns-ts process left');
});

/**
 * Podman's namespace set-up, as a shell script run as the test user: a user
 * and mount namespace, a resolv.conf of its own, a netns bound to a file,
 * slirp4netns-ts with Podman's argv (fds 3 and 4 from the test), then one
 * command per stdin line inside the netns, each answered with "__DONE rc" on
 * a line of its own.
 */
function podmanLike(dir: string, argv: string[]): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return `set -e
cd ${dir}
mount --bind ${dir}/resolv.conf /etc/resolv.conf
touch netns
unshare --net=${dir}/netns true
${argv.map(q).join(' ')} >${dir}/slirp.log 2>&1 &
echo "PID $!"
exec 3<&- 4>&-
set +e
while read -r line; do nsenter --net=${dir}/netns sh -c "$line" </dev/null; printf '\\n__DONE %d\\n' $?; done
`;
}

/** The stdin-driven shell of podmanLike(): run(cmd) gives the lines it printed and its status. */
class NsShell {
  private seen: number;
  /** Lines printed so far are not a command's. */
  constructor(readonly p: LineProc) {
    this.seen = p.lines.length;
  }

  async run(cmd: string, timeoutMs = 15000): Promise<{ out: string[]; rc: number }> {
    this.p.child.stdin?.write(cmd + '\n');
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.p.lines.findIndex((l, k) => k >= this.seen && l.startsWith('__DONE '));
      if (i >= 0) {
        const out = this.p.lines.slice(this.seen, i);
        if (out[out.length - 1] === '') out.pop(); // the newline before __DONE
        this.seen = i + 1;
        return { out, rc: Number(this.p.lines[i].slice(7)) };
      }
      if (Date.now() > end || this.p.child.exitCode !== null) throw new Error(`no answer to ${cmd}: ${this.p.stderr}`);
      await sleep(50);
    }
  }
}

e2e("Podman's --network slirp4netns argv: ready-fd, addressing, DNS, API hostfwd add/list/remove, exit-fd", async (t) => {
  ensureUser();
  const dir = userDir('passt-ts-s4n-');
  const api = path.join(dir, 'ctr.net');
  // the namespace's own resolv.conf points at a stand-in resolver on a loopback address of the host side
  fs.writeFileSync(path.join(dir, 'resolv.conf'), 'nameserver 127.0.0.153\n');
  const resolver = spawn(process.execPath, [UDP_TOOL, 'resolver', '127.0.0.153', '53', '--seconds', '60'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const resolverOut = new LineProc(resolver);
  t.truthy(await resolverOut.line(/"ready"/), 'stand-in resolver');
  const outside = await greeter('192.0.2.2', 'host-hello');
  const outside6 = await greeter('2001:db8::2', 'host6-hello');
  const loopback = await greeter('127.0.0.1', 'lo-hello');

  // c/common libnetwork/slirp4netns: the default argv, --api-socket before --netns-type (port_handler=slirp4netns)
  const argv = [slirpBin(), '--disable-host-loopback', '--mtu=65520', '--enable-sandbox', '--enable-seccomp', '--enable-ipv6',
    '-c', '-r', '3', '-e', '4', '--api-socket', api, '--netns-type=path', path.join(dir, 'netns'), 'tap0'];
  const [readyR, readyW] = pipe();
  const [exitR, exitW] = pipe();
  const child: ChildProcess = spawn(asUser()[0], [...asUser().slice(1), 'unshare', '--user', '--map-root-user', '--mount', '--',
    'sh', '-c', podmanLike(dir, argv)], { stdio: ['pipe', 'pipe', 'pipe', readyW, exitR] });
  native.close(readyW);
  native.close(exitR);
  const p = new LineProc(child);
  let exitOpen = true;
  let pid = 0;
  const log = () => fs.existsSync(path.join(dir, 'slirp.log')) ? fs.readFileSync(path.join(dir, 'slirp.log'), 'utf8') : '';
  try {
    const ready = await readFd(readyR, 30000);
    t.deepEqual(ready, { data: '1', eof: true }, `"1" on the ready fd, then closed: ${log()} ${p.stderr}`);
    pid = Number((await p.line(/^PID \d+$/))?.slice(4));
    t.true(alive(pid), 'the process Podman started is the one that keeps running (no daemon)');
    t.regex(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), /^NoNewPrivs:\s+1\nSeccomp:\s+2$/m, 'isolated, with the seccomp filter (--enable-seccomp)');
    const sh = new NsShell(p);
    t.true(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('slirp4netns-ts'));
    t.true(fs.existsSync(api), 'the API socket exists once ready');
    t.regex(log(), /^WARNING: Support for IPv6 is experimental\n(.*\n)*Starting slirp\n\* MTU:             65520\n/);

    // --configure: addresses, routes, MTU, lo
    const addrs = JSON.parse((await sh.run('ip -j addr show')).out.join(''));
    const tap = addrs.find((l: any) => l.ifname === 'tap0');
    t.is(tap.mtu, 65520);
    t.true(tap.flags.includes('UP'));
    t.true(addrs.find((l: any) => l.ifname === 'lo').flags.includes('UP'), 'lo is up');
    const local = tap.addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
    t.true(local.includes('10.0.2.100/24'), local.join(' '));
    t.true(local.includes('fd00::100/64'), local.join(' '));
    t.deepEqual((await sh.run('ip route show default')).out, ['default via 10.0.2.2 dev tap0 ']);
    t.regex((await sh.run('ip -6 route show default')).out.join(''), /^default via fd00::2 dev tap0/);

    // outbound; --disable-host-loopback keeps the host's 127.0.0.1 out of reach
    t.deepEqual((await sh.run(`socat -T 5 - TCP:192.0.2.2:${outside.port}`)).out, ['host-hello']);
    t.deepEqual((await sh.run(`socat -T 5 - TCP6:[2001:db8::2]:${outside6.port}`)).out, ['host6-hello'], 'IPv6 (-6) outbound');
    const lo = await sh.run(`timeout 4 socat -T 2 - TCP:10.0.2.2:${loopback.port},connect-timeout=2`);
    t.false(lo.out.includes('lo-hello'), '10.0.2.2 does not reach the host loopback');
    // DNS: 10.0.2.3 is forwarded to the resolver of (this mount namespace's) resolv.conf
    const ns = await sh.run('busybox nslookup example.test 10.0.2.3');
    t.true(ns.out.join('\n').includes(STANDIN_ANSWER), ns.out.join('\n'));

    // the API, with Podman's request bytes (libpod: json.Marshal + "\n", guest_addr empty)
    t.is(await sh.run(`socat TCP-LISTEN:80,reuseaddr,fork EXEC:cat >/dev/null 2>&1 & echo $! > ${dir}/echo.pid`).then((r) => r.rc), 0);
    const hostPort = await freePort();
    t.is(await apiCall(api, `{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0","host_port":${hostPort},"guest_addr":"","guest_port":80}}\n`),
      '{"return":{"id":1}}');
    t.is(await apiCall(api, '{"execute":"list_hostfwd"}'),
      `{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":${hostPort},"guest_addr":"10.0.2.100","guest_port":80}]}`);
    t.true(await echoes('127.0.0.1', hostPort, 10000), 'the forward reaches the echo server');
    await echo8(t, '127.0.0.1', hostPort, 'hostfwd, loopback client');
    await echo8(t, '192.0.2.2', hostPort, 'hostfwd, non-loopback client', '192.0.2.2');
    t.is(await apiCall(api, `{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0","host_port":${hostPort},"guest_addr":"","guest_port":80}}\n`),
      '{"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}}', 'the same port twice');
    t.is(await apiCall(api, 'badjson'), '{"error":{"desc":"bad request: cannot parse JSON"}}');
    t.is(await apiCall(api, Buffer.alloc(5000, 0x20)), '{"error":{"desc":"bad request: too large message"}}');
    // a UDP forward: a datagram to the host port comes back from the namespace's responder
    t.is(await sh.run(`socat UDP-RECVFROM:5353,fork SYSTEM:'echo pong' >/dev/null 2>&1 & echo $! > ${dir}/udp.pid`).then((r) => r.rc), 0);
    const udpPort = await freePort();
    t.is(await apiCall(api, `{"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"127.0.0.1","host_port":${udpPort},"guest_addr":"","guest_port":5353}}\n`),
      '{"return":{"id":2}}');
    const pong = await new Promise<string>((resolve) => {
      const u = dgram.createSocket('udp4');
      const finish = (text: string) => {
        clearInterval(resend);
        clearTimeout(giveUp);
        u.close();
        resolve(text);
      };
      const resend = setInterval(() => u.send('ping', udpPort, '127.0.0.1'), 300);
      const giveUp = setTimeout(() => finish('timeout'), 8000);
      u.once('message', (m) => finish(m.toString()));
    });
    t.is(pong, 'pong\n', 'UDP through an API forward');
    t.is(await apiCall(api, '{"execute":"remove_hostfwd","arguments":{"id":2}}'), '{"return":{}}');
    t.is(await apiCall(api, '{"execute":"remove_hostfwd","arguments":{"id":1}}\n'), '{"return":{}}');
    t.is(await apiCall(api, '{"execute":"remove_hostfwd","arguments":{"id":1}}\n'),
      '{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}');
    t.is(await apiCall(api, '{"execute":"list_hostfwd"}'), '{"entries":[]}');
    const refused = await new Promise<string>((r) => {
      const s = net.connect({ host: '127.0.0.1', port: hostPort });
      s.once('connect', () => { s.destroy(); r('connected'); });
      s.once('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'));
    });
    t.is(refused, 'ECONNREFUSED', 'a removed forward no longer listens');

    // conmon's end of the exit pipe goes away: slirp4netns-ts exits, 0, and takes its socket along
    native.close(exitW);
    exitOpen = false;
    t.truthy(await waitFor(() => !alive(pid), 5000), 'exits once the exit fd is closed');
    t.false(fs.existsSync(api));
    t.regex(log(), /exitfd event/);
  } catch (e) {
    t.log(`slirp4netns-ts output:\n${log()}`);
    throw e;
  } finally {
    if (exitOpen) native.close(exitW);
    child.stdin?.end();
    await Promise.race([p.exited, sleep(5000)]);
    p.kill();
    if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
    for (const f of ['echo.pid', 'udp.pid']) {
      try {
        process.kill(Number(fs.readFileSync(path.join(dir, f), 'utf8')), 'SIGKILL');
      } catch { /* not started, or gone */ }
    }
    resolver.kill();
    outside.close();
    outside6.close();
    loopback.close();
  }
});

e2e('a failing start: no ready byte, exit status 1, the reason on stderr (what Podman shows from its log)', async (t) => {
  const notNs = tmpPath('not-a-netns');
  fs.writeFileSync(notNs, '');
  const [readyR, readyW] = pipe();
  const child = spawn(slirpBin(), ['-c', '-r', '3', '--netns-type=path', notNs, 'tap0'],
    { stdio: ['ignore', 'pipe', 'pipe', readyW] });
  native.close(readyW);
  const p = new LineProc(child);
  const ready = await readFd(readyR, 20000);
  t.deepEqual(ready, { data: '', eof: true });
  t.is(await p.exited, 1);
  t.regex(p.stderr, /not a network namespace/);
});

e2e('the PID form outlives the PID, like slirp4netns; an exit fd with data ends it', async (t) => {
  const holder = spawn('unshare', ['-r', '-n', 'sleep', '600'], { stdio: 'ignore' });
  const own = fs.readlinkSync('/proc/self/ns/net');
  await waitFor(() => {
    try { return fs.readlinkSync(`/proc/${holder.pid}/ns/net`) !== own; } catch { return false; }
  }, 5000, 10);
  const [readyR, readyW] = pipe();
  const [exitR, exitW] = pipe();
  const child = spawn(slirpBin(), ['-r', '3', '-e', '4', String(holder.pid), 'tap7'], { stdio: ['ignore', 'pipe', 'pipe', readyW, exitR] });
  native.close(readyW);
  native.close(exitR);
  const p = new LineProc(child);
  try {
    t.deepEqual(await readFd(readyR, 20000), { data: '1', eof: true }, p.stderr);
    holder.kill('SIGKILL');
    await sleep(2500);
    t.is(child.exitCode, null, 'still running after the namespace holder died (no quit on namespace removal)');
    fs.writeSync(exitW, 'x');
    t.is(await Promise.race([p.exited, sleep(5000).then(() => 'timeout')]), 0);
  } finally {
    native.close(exitW);
    holder.kill('SIGKILL');
    p.kill();
  }
});

/**
 * The real Podman 4.3.1, rootless, with slirp4netns-ts as its
 * `network_cmd_path`: storage (vfs), runtime dir and containers.conf of
 * its own, an image imported from busybox-static. Each podman call runs in
 * a mount namespace of its own where /etc/resolv.conf names a stand-in
 * resolver and, on a cgroup v1+v2 "hybrid" host (which crun refuses),
 * /sys/fs/cgroup is an empty tmpfs (containers run with --cgroups=disabled).
 */
class RootlessPodman {
  // short: Podman's API socket is $XDG_RUNTIME_DIR/libpod/tmp/<64-hex id>.net, and UNIX socket paths stop at 107 bytes
  readonly dir = userDir('s4n');
  private readonly hybrid = /cgroup2 on \/sys\/fs\/cgroup\/unified /.test(spawnSync('mount', { encoding: 'utf8' }).stdout);

  constructor() {
    const { uid, gid } = ensureUser();
    for (const d of ['home', 'r']) {
      fs.mkdirSync(path.join(this.dir, d), { mode: 0o700 });
      fs.chownSync(path.join(this.dir, d), uid, gid);
    }
    fs.writeFileSync(path.join(this.dir, 'containers.conf'),
      `[engine]\nnetwork_cmd_path = "${slirpBin()}"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n`);
    fs.writeFileSync(path.join(this.dir, 'storage.conf'), `[storage]\ndriver = "vfs"\n` +
      `graphroot = "${this.dir}/home/storage"\nrunroot = "${this.dir}/r/storage"\n`);
    fs.writeFileSync(path.join(this.dir, 'resolv.conf'), 'nameserver 127.0.0.153\n');
    const root = path.join(this.dir, 'rootfs');
    fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(root, 'bin', 'busybox'));
    fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
    for (const c of ['sh', 'nc', 'cat', 'ip', 'nslookup', 'sleep']) fs.symlinkSync('busybox', path.join(root, 'bin', c));
    spawnSync('tar', ['-C', root, '-cf', path.join(this.dir, 'rootfs.tar'), '.']);
    spawnSync('chown', ['-R', `${uid}:${gid}`, this.dir]);
  }

  /** Runs podman ARGS as the test user; resolves with its output. */
  podman(args: string[], timeoutMs = 60000): Promise<{ code: number | null; out: string }> {
    const env = [`HOME=${this.dir}/home`, `XDG_RUNTIME_DIR=${this.dir}/r`, `CONTAINERS_CONF=${this.dir}/containers.conf`,
      `CONTAINERS_STORAGE_CONF=${this.dir}/storage.conf`];
    const script = `mount --bind ${this.dir}/resolv.conf /etc/resolv.conf && ` +
      `${this.hybrid ? 'mount -t tmpfs none /sys/fs/cgroup && ' : ''}exec "$@"`;
    const child = spawn('unshare', ['-m', 'sh', '-c', script, 'sh', ...asUser(), 'env', ...env, 'podman', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d) => { out += d; });
    child.stderr?.on('data', (d) => { out += d; });
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, out });
      });
    });
  }

  /** Ends Podman's pause process (it outlives every podman command). */
  stopPause(): void {
    try {
      process.kill(Number(fs.readFileSync(path.join(this.dir, 'r', 'libpod', 'tmp', 'pause.pid'), 'utf8')), 'SIGKILL');
    } catch { /* none */ }
  }
}

e2e('the real podman run --network slirp4netns (network_cmd_path = slirp4netns-ts), -p through the API socket', async (t) => {
  if (!have('podman') || !have('newuidmap')) {
    t.pass('podman or uidmap missing: .ci/setup.sh installs them from apt');
    return;
  }
  ensureSubIds();
  const pm = new RootlessPodman();
  const resolver = spawn(process.execPath, [UDP_TOOL, 'resolver', '127.0.0.153', '53', '--seconds', '120'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const outside = await greeter('192.0.2.2', 'host-hello\n');
  try {
    t.truthy(await new LineProc(resolver).line(/"ready"/), 'stand-in resolver');
    const imp = await pm.podman(['import', path.join(pm.dir, 'rootfs.tar'), 'localhost/s4n-bb']);
    t.is(imp.code, 0, imp.out);
    // Podman's defaults: --disable-host-loopback --mtu=65520 --enable-sandbox --enable-seccomp -c -r -e --netns-type=path
    const r = await pm.podman(['run', '--rm', '--cgroups=disabled', '--network', 'slirp4netns', 'localhost/s4n-bb', 'sh', '-c',
      `ip -o -4 addr show tap0; ip route; cat /etc/resolv.conf; nc -w 5 192.0.2.2 ${outside.port} </dev/null; nslookup example.test`]);
    t.is(r.code, 0, r.out);
    t.regex(r.out, /tap0 +inet 10\.0\.2\.100\/24/);
    t.regex(r.out, /default via 10\.0\.2\.2 dev tap0/);
    t.regex(r.out, /nameserver 10\.0\.2\.3/);
    t.regex(r.out, /host-hello/);
    t.true(r.out.includes(STANDIN_ANSWER), 'DNS through 10.0.2.3 to the resolver of resolv.conf');
    t.truthy(await waitFor(() => processesWith(slirpBin()).length === 0, 5000), 'slirp4netns-ts ends with the container');

    // -p with port_handler=slirp4netns: Podman calls add_hostfwd on the API socket
    const hostPort = await freePort();
    const d = await pm.podman(['run', '-d', '--name', 's4n-echo', '--cgroups=disabled', '--network', 'slirp4netns:port_handler=slirp4netns',
      '-p', `${hostPort}:8080`, 'localhost/s4n-bb', 'nc', '-ll', '-p', '8080', '-e', 'cat']);
    t.is(d.code, 0, d.out);
    t.true(await echoes('127.0.0.1', hostPort, 15000), 'the published port echoes');
    await echo8(t, '127.0.0.1', hostPort, 'podman -p, loopback client');
    await echo8(t, '192.0.2.2', hostPort, 'podman -p, non-loopback client', '192.0.2.2');
    const rm = await pm.podman(['rm', '-f', '-t', '0', 's4n-echo']);
    t.is(rm.code, 0, rm.out);
    t.truthy(await waitFor(() => processesWith(slirpBin()).length === 0, 5000), 'no slirp4netns-ts left after podman rm');
  } finally {
    await pm.podman(['rm', '-f', '-t', '0', 's4n-echo'], 20000);
    pm.stopPause();
    resolver.kill();
    outside.close();
  }
});

e2e('--control (and SLIRP4NETNS_TS_CONTROL): stats follow a transfer, ports list the API forwards, quit', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passt-ts-s4n-ctl-'));
  // sticky and world-writable like /tmp: slirp4netns-ts runs as nobody
  // after set-up, and removes its sockets at exit
  fs.chmodSync(dir, 0o1777);
  const nsFile = path.join(dir, 'netns');
  fs.writeFileSync(nsFile, '');
  t.is(spawnSync('unshare', [`--net=${nsFile}`, 'true']).status, 0, 'a netns bound to a file');
  const api = path.join(dir, 'api.sock');
  const ctl = path.join(dir, 'ctl.sock');
  const argv = ['-c', '--api-socket', api, '--netns-type=path', nsFile, 'tap0'];
  // the environment form: Podman and rootlesskit build the command line themselves
  const child = spawn(path.join(ROOT, 'bin', 'slirp4netns-ts'), argv,
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SLIRP4NETNS_TS_CONTROL: ctl } });
  const p = new LineProc(child);
  const echo = spawn('nsenter', [`--net=${nsFile}`, 'socat', 'TCP-LISTEN:80,reuseaddr,fork', 'EXEC:cat'], { stdio: 'ignore' });
  try {
    t.truthy(await waitFor(() => fs.existsSync(ctl) && fs.existsSync(api), 30000), `sockets: ${p.stderr}`);
    t.is(fs.statSync(ctl).mode & 0o777, 0o600);
    const before = await controlRequest(ctl, { cmd: 'stats' }) as Record<string, any>;
    t.true(before.ok);
    t.is(before.mode, 'pasta');

    const hostPort = await freePort();
    t.is(await apiCall(api, `{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0","host_port":${hostPort},"guest_port":80}}`),
      '{"return":{"id":1}}');
    const ports = await controlRequest(ctl, { cmd: 'ports' }) as Record<string, any>;
    t.deepEqual(ports.ports, [{ option: '-t', bind: '0.0.0.0', port: hostPort, target: 80, auto: false }], 'the API forward is in the table');

    t.true(await echoes('192.0.2.2', hostPort, 15000), 'the forward echoes');
    await echo8(t, '192.0.2.2', hostPort, 'API forward, non-loopback client (tap)', '192.0.2.2');
    const after = await controlRequest(ctl, { cmd: 'stats' }) as Record<string, any>;
    t.true(after.traffic.tcp.tap.bytesToGuest - before.traffic.tcp.tap.bytesToGuest >= MIB8, 'stats count the transfer');

    // the control socket and the API share the forwarding table: either may end the forward
    const rm = await controlRequest(ctl, { cmd: 'remove-port', option: '-t', spec: `0.0.0.0/${hostPort}` });
    t.true(rm.ok, JSON.stringify(rm));
    t.deepEqual((await controlRequest(ctl, { cmd: 'ports' }) as Record<string, any>).ports, []);
    t.is(await apiCall(api, '{"execute":"remove_hostfwd","arguments":{"id":1}}'), '{"return":{}}', 'removing it again through the API is harmless');

    const q = await controlRequest(ctl, { cmd: 'quit' });
    t.true(q.ok);
    const code = await Promise.race([p.exited, sleep(10000).then(() => 'timeout')]);
    t.is(code, 0, 'quit ends slirp4netns-ts with status 0');
    t.false(fs.existsSync(ctl), 'the control socket is removed');
  } finally {
    echo.kill();
    p.kill();
    spawnSync('umount', [nsFile]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

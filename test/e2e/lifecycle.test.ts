/**
 * pasta's namespace lifecycle end to end (issue: foundation): spawn and
 * attach forms, --config-net results, quit detection, the daemon readiness
 * contract of Podman/Buildah/rootlesskit, the unprivileged path, bad input.
 * Runs only inside the namespace made by test/run.sh.
 */
import anyTest, { TestFn } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  PASTA, inTestNs, NOT_IN_NS, run, waitFor, alive, nsHolder, ipJson, tmpPath, processesWith, sleep,
} from '../helpers/env';
import { asUser, readableInstall } from '../helpers/unpriv';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('end-to-end lifecycle tests', (t) => t.pass(NOT_IN_NS));

function addrsOf(j: any[], ifname: string): string[] {
  const l = j.find((x) => x.ifname === ifname);
  return (l?.addr_info ?? []).map((a: any) => `${a.local}/${a.prefixlen}`);
}

e2e('--config-net copies addresses, routes and MTU 65520 (IPv4 and IPv6)', async (t) => {
  const r = await run(PASTA, ['--config-net', '--', 'sh', '-c',
    'sleep 0.2; ip -j addr; echo ===; ip -j route; echo ===; ip -j -6 route'], { timeoutMs: 20000 });
  t.is(r.code, 0, r.stderr);
  const [a, r4, r6] = r.stdout.split('===').map((s) => JSON.parse(s));
  const eth0 = a.find((x: any) => x.ifname === 'eth0');
  t.truthy(eth0, 'tap named after the host template interface');
  t.is(eth0.mtu, 65520);
  t.true(eth0.flags.includes('UP'));
  t.true(addrsOf(a, 'eth0').includes('192.0.2.2/24'));
  t.true(addrsOf(a, 'eth0').includes('2001:db8::2/64'));
  t.true(addrsOf(a, 'lo').includes('127.0.0.1/8'), 'lo is up');
  t.truthy(r4.find((x: any) => x.dst === 'default' && x.gateway === '192.0.2.1' && x.dev === 'eth0'));
  t.truthy(r6.find((x: any) => x.dst === 'default' && x.gateway === '2001:db8::1' && x.dev === 'eth0'));
  const ll = eth0.addr_info.find((x: any) => x.scope === 'link');
  t.truthy(ll, 'IPv6 link-local present');
});

e2e('--config-net -m 1500 sets the MTU', async (t) => {
  const r = await run(PASTA, ['--config-net', '-m', '1500', '--', 'ip', '-j', 'link', 'show', 'eth0'], { timeoutMs: 20000 });
  t.is(r.code, 0, r.stderr);
  t.is(JSON.parse(r.stdout)[0].mtu, 1500);
});

e2e('spawned command: environment and exit status (signals as a shell reports them)', async (t) => {
  const env = await run(PASTA, ['--', 'sh', '-c', 'echo "$(id -u) $$ $(hostname) $(cat /proc/sys/net/ipv4/ping_group_range)"'], { timeoutMs: 20000 });
  t.is(env.code, 0, env.stderr);
  t.regex(env.stdout.trim(), /^0 1 pasta-passt-ts-test 0\s+0$/);
  // the caller's environment, without pasta's own hand-over variables (re-exec stages, fds)
  const vars = await run(PASTA, ['--', 'env'], { timeoutMs: 20000, env: { ...process.env, PASST_TS_TEST_MARK: 'kept' } });
  t.is(vars.code, 0, vars.stderr);
  t.regex(vars.stdout, /^PASST_TS_TEST_MARK=kept$/m);
  t.deepEqual(vars.stdout.split('\n').filter((l) => /^PASST_TS_(STAGE|READY_FD|NSFD|DIRFD|NSPATH|RUNAS)=/.test(l)), []);
  t.is((await run(PASTA, ['--', 'true'])).code, 0);
  t.is((await run(PASTA, ['--', 'sh', '-c', 'exit 7'])).code, 7);
  // the command is PID 1 of its PID namespace, so the signal comes from outside
  const marker = `100.${process.pid}`;
  const sig = run(PASTA, ['--', 'sleep', marker]);
  const pid = await waitFor(() => processesWith(marker).find((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('sleep')), 10000);
  t.truthy(pid);
  process.kill(pid as number, 'SIGKILL');
  t.is((await sig).code, 137);
  const nf = await run(PASTA, ['--', '/nonexistent/command']);
  t.is(nf.code, 127);
  t.regex(nf.stderr, /nonexistent/);
});

e2e('-I and --ns-mac-addr name the tap and set its MAC', async (t) => {
  const r = await run(PASTA, ['-I', 'myname', '--ns-mac-addr', '02:11:22:33:44:55', '--ns-mac-addr', '02:aa:bb:cc:dd:ee',
    '--', 'ip', '-j', 'link', 'show', 'myname'], { timeoutMs: 20000 });
  t.is(r.code, 0, r.stderr);
  t.is(JSON.parse(r.stdout)[0].address, '02:aa:bb:cc:dd:ee', 'last --ns-mac-addr wins');
});

/** Starts pasta in the foreground attached to target; resolves when it printed its readiness (PID file). */
async function attachForeground(args: string[]) {
  const pidFile = tmpPath('pasta.pid');
  const child = spawn(PASTA, ['-f', '-P', pidFile, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exit = new Promise<{ code: number | null; at: number }>((r) => child.on('exit', (code) => r({ code, at: Date.now() })));
  const ok = await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').endsWith('\n'), 10000);
  return { child, exit, ok, pidFile, stderr: () => stderr };
}

e2e('attached by PID: quits within the timer interval once the PID is gone', async (t) => {
  const h = await nsHolder();
  const p = await attachForeground(['--config-net', String(h.pid)]);
  t.truthy(p.ok, p.stderr());
  t.true(addrsOf(ipJson(h.pid, ['addr']), 'eth0').includes('192.0.2.2/24'));
  await sleep(300);
  t.true(alive(p.child.pid as number));
  const killedAt = Date.now();
  await h.kill();
  const { code, at } = await p.exit;
  t.is(code, 0);
  t.true(at - killedAt < 2500, `quit after ${at - killedAt} ms`);
});

e2e('attached by /proc/PID/ns/net path (Buildah): quits once the PID is gone', async (t) => {
  const h = await nsHolder();
  const p = await attachForeground(['--config-net', '--netns', `/proc/${h.pid}/ns/net`]);
  t.truthy(p.ok, p.stderr());
  const killedAt = Date.now();
  await h.kill();
  const { code, at } = await p.exit;
  t.is(code, 0);
  t.true(at - killedAt < 2500, `quit after ${at - killedAt} ms`);
});

e2e('attached by a bind-mounted netns file (inotify): quits when it is unmounted and removed, not for siblings', async (t) => {
  const dir = fs.mkdtempSync('/tmp/passt-ts-netns-');
  const make = (n: string) => {
    const f = path.join(dir, n);
    fs.writeFileSync(f, '');
    const r = spawnSync('unshare', [`--net=${f}`, 'true']);
    if (r.status !== 0) throw new Error('unshare --net=FILE failed');
    return f;
  };
  const mine = make('netns-mine');
  const sibling = make('netns-sibling');
  const p = await attachForeground(['--config-net', '--netns', mine]);
  t.truthy(p.ok, p.stderr());
  t.true(addrsOf(ipJson(mine, ['addr']), 'eth0').includes('192.0.2.2/24'));
  // another container's netns going away must not matter
  spawnSync('umount', [sibling]);
  fs.rmSync(sibling);
  await sleep(700);
  t.true(alive(p.child.pid as number), 'still running after a sibling went away');
  const t0 = Date.now();
  spawnSync('umount', ['-l', mine]);
  fs.rmSync(mine);
  const { code, at } = await p.exit;
  t.is(code, 0);
  t.true(at - t0 < 1000, `quit after ${at - t0} ms`);
  fs.rmSync(dir, { recursive: true });
});

e2e('attached by name under /run/netns (ip netns): quits on ip netns del', async (t) => {
  const name = `passt-ts-${process.pid}`;
  t.is(spawnSync('ip', ['netns', 'add', name]).status, 0);
  const p = await attachForeground(['--config-net', '--netns', name]);
  t.truthy(p.ok, p.stderr());
  t.true(addrsOf(ipJson(`/run/netns/${name}`, ['addr']), 'eth0').includes('192.0.2.2/24'));
  const t0 = Date.now();
  spawnSync('ip', ['netns', 'del', name]);
  const { code, at } = await p.exit;
  t.is(code, 0);
  t.true(at - t0 < 1000, `quit after ${at - t0} ms`);
});

e2e('--no-netns-quit keeps pasta alive after the namespace file is gone; SIGTERM ends it with 0', async (t) => {
  const name = `passt-ts-nq-${process.pid}`;
  spawnSync('ip', ['netns', 'add', name]);
  const p = await attachForeground(['--no-netns-quit', '--netns', name]);
  t.truthy(p.ok, p.stderr());
  spawnSync('ip', ['netns', 'del', name]);
  await sleep(2500);
  t.true(alive(p.child.pid as number));
  p.child.kill('SIGTERM');
  t.is((await p.exit).code, 0);
});

e2e('readiness contract: foreground exits 0 with its pipes closed, namespace configured, PID file names the live daemon', async (t) => {
  const h = await nsHolder();
  const pidFile = tmpPath('pasta.pid');
  fs.writeFileSync(pidFile, 'stale contents that must be truncated\n');
  // run() resolves on 'close': exit AND EOF on stdout/stderr, like Go's CombinedOutput()
  const r = await run(PASTA, ['--config-net', '--dns-forward', '169.254.1.1', '-t', 'none', '-u', 'none', '-T', 'none',
    '-U', 'none', '--no-map-gw', '--quiet', '--pid', pidFile, String(h.pid)], { timeoutMs: 10000 });
  t.false(r.timedOut, 'the caller got EOF: the daemon holds none of its stdio');
  t.is(r.code, 0, r.stderr);
  // at this very moment the namespace is ready
  const a = ipJson(h.pid, ['addr']);
  t.true(addrsOf(a, 'eth0').includes('192.0.2.2/24'));
  t.true(addrsOf(a, 'lo').includes('127.0.0.1/8'));
  const text = fs.readFileSync(pidFile, 'utf8');
  t.regex(text, /^\d+\n$/);
  const daemon = Number(text);
  t.true(alive(daemon));
  const stat = fs.readFileSync(`/proc/${daemon}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  t.is(Number(stat[3]), daemon, 'the daemon leads its own session (setsid)');
  for (const fd of ['0', '1', '2']) t.is(fs.readlinkSync(`/proc/${daemon}/fd/${fd}`), '/dev/null');
  await h.kill();
  t.truthy(await waitFor(() => !alive(daemon), 3000), 'daemon quits when the namespace goes away');
});

e2e('rootlesskit argv (--opt=value forms, --stderr, static addressing) works', async (t) => {
  const h = await nsHolder();
  t.is((await run(PASTA, ['--host-lo-to-ns-lo', '--version'])).code, 0);
  const pidFile = tmpPath('p.pid');
  const r = await run(PASTA, ['--stderr', '--ns-ifname=tap0', '--mtu=65520', '--config-net', '--address=10.0.2.100',
    '--netmask=24', '--gateway=10.0.2.2', '--dns-forward=10.0.2.3', '--ipv4-only', '--tcp-ports=none', '--udp-ports=none',
    '--host-lo-to-ns-lo', `--pid=${pidFile}`, String(h.pid)], { timeoutMs: 10000 });
  t.is(r.code, 0, r.stderr);
  const a = ipJson(h.pid, ['addr']);
  t.deepEqual(addrsOf(a, 'tap0').filter((x) => x.includes('.')), ['10.0.2.100/24']);
  const routes = ipJson(h.pid, ['route']);
  t.truthy(routes.find((x: any) => x.dst === 'default' && x.gateway === '10.0.2.2'));
  const daemon = Number(fs.readFileSync(pidFile, 'utf8'));
  await h.kill();
  t.truthy(await waitFor(() => !alive(daemon), 3000));
});

e2e('unprivileged: a normal user spawns a configured namespace', async (t) => {
  const dir = readableInstall();
  const st = fs.statSync('/dev/net/tun');
  if ((st.mode & 0o006) !== 0o006) t.fail('/dev/net/tun must be world read/writable (chmod 666, as .ci/run does)');
  const r = await run(asUser()[0], [...asUser().slice(1), path.join(dir, 'bin/pasta'), '--config-net', '--', 'sh', '-c',
    'id -u; ip -j addr show eth0'], { timeoutMs: 20000, env: { ...process.env, HOME: '/tmp' } });
  t.is(r.code, 0, r.stderr);
  const [uid, json] = [r.stdout.split('\n')[0], r.stdout.split('\n').slice(1).join('\n')];
  t.is(uid, '0', 'root inside its own user namespace');
  const a = JSON.parse(json);
  t.true(addrsOf(a, 'eth0').includes('192.0.2.2/24'));
  t.true(addrsOf(a, 'eth0').includes('2001:db8::2/64'));
});

e2e('unprivileged: a normal user attaches to a namespace it owns by PID (its user namespace is joined)', async (t) => {
  const dir = readableInstall();
  const holder = spawn(asUser()[0], [...asUser().slice(1), 'unshare', '-Urn', 'sleep', '600'], { stdio: 'ignore' });
  let inner = 0;
  await waitFor(() => {
    const kids = spawnSync('pgrep', ['-P', String(holder.pid)], { encoding: 'utf8' }).stdout.trim();
    inner = kids ? Number(kids.split('\n')[0]) : holder.pid as number;
    try { return fs.readlinkSync(`/proc/${inner}/ns/user`) !== fs.readlinkSync('/proc/self/ns/user'); } catch { return false; }
  }, 5000);
  const pidFile = `/tmp/passt-ts-unpriv-${process.pid}.pid`;
  const r = await run(asUser()[0], [...asUser().slice(1), path.join(dir, 'bin/pasta'), '--config-net', '-P', pidFile,
    String(inner)], { timeoutMs: 10000, env: { ...process.env, HOME: '/tmp' } });
  t.is(r.code, 0, r.stderr);
  t.true(addrsOf(ipJson(inner, ['addr']), 'eth0').includes('192.0.2.2/24'));
  const daemon = Number(fs.readFileSync(pidFile, 'utf8'));
  holder.kill('SIGKILL');
  spawnSync('kill', ['-9', String(inner)]);
  t.truthy(await waitFor(() => !alive(daemon), 3000));
  fs.rmSync(pidFile, { force: true });
});

e2e('bad input: clear error, exit 1, no leftover process or PID file', async (t) => {
  const marker = `/tmp/passt-ts-bad-${process.pid}`;
  const cases: [string[], RegExp][] = [
    [['--bogus'], /unrecognized option '--bogus'/],
    [['-a', '300.1.1.1', '--', 'true'], /Invalid address: 300\.1\.1\.1/],
    [['-a', '127.0.0.1', '--', 'true'], /Invalid address/],
    [['-M', '9a:55:9a:55:9a:5', '--', 'true'], /Invalid MAC address/],
    [['-m', '65536'], /Invalid MTU/],
    [['--netns', '/nonexistent/netns'], /Couldn't open network namespace \/nonexistent\/netns: No such file or directory/],
    [['999999999'], /Couldn't open network namespace \/proc\/999999999\/ns\/net: No such file or directory/],
    [['-t', '80', '-t', 'none', '--', 'true'], /conflicts with previous mode/],
  ];
  for (const [args, re] of cases) {
    const pidFile = `${marker}.pid`;
    const r = await run(PASTA, ['-P', pidFile, ...args], { timeoutMs: 10000 });
    t.is(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, re);
    t.false(r.stderr.split('\n').filter(Boolean).length > 1 && !/Usage/.test(r.stderr) && /at .*\.js/.test(r.stderr),
      'no stack trace');
    t.false(fs.existsSync(pidFile), 'no PID file');
    t.deepEqual(processesWith(pidFile), [], 'no leftover process');
  }
  t.is((await run(PASTA, ['--help'])).code, 0);
});

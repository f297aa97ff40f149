/**
 * passt --vhost-user outlives its qemu (issue 14): one passt, three guests
 * in turn on the same socket — the first killed (SIGKILL) in the middle of
 * a download, so passt sees the connection vanish with the queues running;
 * the second boots against the same passt and moves 8 MiB both ways
 * byte-exact, pings, then powers off cleanly; the third boots again after
 * that clean exit and gets its lease and a ping. passt stays up throughout
 * and logs each connection. With --one-off it exits 0 after its one qemu,
 * socket file removed.
 * Skipped, with the reason, only where qemu with TCG is not installed.
 */
import anyTest, { TestFn } from 'ava';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { PASST, inTestNs, NOT_IN_NS, sha } from '../helpers/env';
import { runGuest, guestUnavailable, describeRun } from '../guest/runner';

const test = anyTest as TestFn;
const why = inTestNs() ? guestUnavailable() : NOT_IN_NS;
const noQemu = why !== null && !why.startsWith('no guest image');
const guest = why === null ? test.serial : noQemu || !inTestNs() ? test.skip : test.serial;
if (why !== null) test(`vhost-user restart tests skipped: ${why}`, (t) => (noQemu || !inTestNs() ? t.pass() : t.fail(why)));

// this test's ports: 13100-13199
const PT = { down: 13101, up: 13102, big: 13103 };
const SIZE = 8 << 20;

const WAIT_SLAAC = `i=0; while ! ip -6 -o addr show dev eth0 scope global | grep -v tentative | grep -q inet6 && [ $i -lt 100 ]; do usleep 100000; i=$((i+1)); done`;

function field(out: string, name: string): string {
  return new RegExp(`^${name}: (.*)$`, 'm').exec(out)?.[1]?.trim() ?? '';
}

guest('qemu killed mid-transfer, then restarted twice against the same passt --vhost-user', async (t) => {
  t.timeout(400000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passt-ts-vu-restart-'));
  const sock = path.join(dir, 'passt.socket');
  let log = '';
  const passt = spawn(PASST, ['-f', '--vhost-user', '-s', sock, '-D', 'none', '-S', 'none'], { stdio: ['ignore', 'pipe', 'pipe'] });
  passt.stdout.on('data', (d: Buffer) => { log += d.toString(); });
  passt.stderr.on('data', (d: Buffer) => { log += d.toString(); });
  const data = randomBytes(SIZE);
  const big = randomBytes(64 << 20);
  const servers: net.Server[] = [];
  const listen = (port: number, onConn: (c: net.Socket) => void) => new Promise<void>((r) => {
    const s = net.createServer((c) => { c.on('error', () => {}); onConn(c); });
    servers.push(s);
    s.listen(port, '127.0.0.1', () => r());
  });
  let upSum: (v: string) => void = () => {};
  const upDone = new Promise<string>((r) => { upSum = r; });
  await listen(PT.down, (c) => c.end(data));
  await listen(PT.big, (c) => c.end(big));
  await listen(PT.up, (c) => {
    const h = createHash('sha256');
    c.on('data', (d) => h.update(d));
    c.on('end', () => upSum(h.digest('hex')));
  });
  try {
    for (let i = 0; i < 150 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
    const ext = { sock, pid: passt.pid! };

    // 1: killed while a 64 MiB download runs
    const r1 = await runGuest({
      passt: [], external: ext, vhostUser: true, killOn: /^KILL-ME$/, timeoutMs: 120000,
      script: `cat /run/lease
        (socat -u TCP:192.0.2.1:${PT.big} - > /dev/null &)
        sleep 1; echo KILL-ME; sleep 60`,
    });
    t.regex(r1.console, /lease: eth0 192\.0\.2\.2\/24/, describeRun(r1));
    t.regex(r1.console, /KILL-ME/);
    t.true(r1.passtAlive, log);

    // 2: the same passt serves the next qemu: lease, 8 MiB both ways, ping
    const r2 = await runGuest({
      passt: [], external: ext, vhostUser: true, files: { 'data.bin': data }, timeoutMs: 200000,
      script: `cat /run/lease
        ${WAIT_SLAAC}
        timeout 60 socat -u OPEN:files/data.bin TCP:192.0.2.1:${PT.up}; echo "up-rc: $?"
        echo "down: $(timeout 60 socat -u TCP:192.0.2.1:${PT.down} - | sha256sum | cut -d' ' -f1)"
        echo "ping4: $(ping -c 2 -W 2 192.0.2.1 | grep received)"
        echo "ping6: $(ping -c 2 -W 2 2001:db8::1 | grep received)"`,
    });
    t.is(r2.rc, 0, describeRun(r2) + log);
    t.regex(r2.output, /lease: eth0 192\.0\.2\.2\/24 router=192\.0\.2\.1 mtu=65520/);
    t.is(field(r2.output, 'up-rc'), '0');
    t.is(await Promise.race([upDone, new Promise<string>((r) => setTimeout(() => r('none'), 5000))]), sha(data));
    t.is(field(r2.output, 'down'), sha(data));
    t.regex(field(r2.output, 'ping4'), / 0% packet loss/);
    t.regex(field(r2.output, 'ping6'), / 0% packet loss/);
    t.true(r2.passtAlive);

    // 3: and the one after a clean power-off
    const r3 = await runGuest({
      passt: [], external: ext, vhostUser: true, timeoutMs: 120000,
      script: `cat /run/lease
        echo "ping4: $(ping -c 2 -W 2 192.0.2.1 | grep received)"`,
    });
    t.is(r3.rc, 0, describeRun(r3) + log);
    t.regex(r3.output, /lease: eth0 192\.0\.2\.2\/24/);
    t.regex(field(r3.output, 'ping4'), / 0% packet loss/);
    t.true(r3.passtAlive);
    t.is(log.match(/Accepted vhost-user connection/g)?.length, 3, log);
    // each connection brought the link up (qemu may stop and start the queues once more as the driver starts)
    const sessions = log.split(/Accepted vhost-user connection/).slice(1);
    t.true(sessions.every((x) => /guest link up/.test(x)), log);
    t.is(log.match(/Client connection closed: EOF on vhost-user connection/g)?.length, 3, log);
    t.notRegex(log, /protocol error|Error/, log);
  } finally {
    passt.kill('SIGTERM');
    for (const s of servers) s.close();
    await new Promise((r) => passt.once('exit', r).once('error', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

guest('--one-off --vhost-user: passt exits 0 when its one qemu goes away', async (t) => {
  t.timeout(200000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passt-ts-vu-oneoff-'));
  // root's passt runs as nobody once isolated: it removes its socket file
  // at exit only from a directory where nobody may (sticky, as /tmp)
  fs.chmodSync(dir, 0o1777);
  const sock = path.join(dir, 'passt.socket');
  let log = '';
  const passt = spawn(PASST, ['-f', '--one-off', '--vhost-user', '-s', sock, '-D', 'none', '-S', 'none'], { stdio: ['ignore', 'pipe', 'pipe'] });
  passt.stdout.on('data', (d: Buffer) => { log += d.toString(); });
  passt.stderr.on('data', (d: Buffer) => { log += d.toString(); });
  const exited = new Promise<number | null>((r) => passt.once('exit', (code) => r(code)));
  try {
    for (let i = 0; i < 150 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
    const r = await runGuest({
      passt: [], external: { sock, pid: passt.pid! }, vhostUser: true, timeoutMs: 120000,
      script: `cat /run/lease
        echo "ping4: $(ping -c 1 -W 2 192.0.2.1 | grep received)"`,
    });
    t.is(r.rc, 0, describeRun(r) + log);
    t.regex(field(r.output, 'ping4'), / 0% packet loss/);
    const code = await Promise.race([exited, new Promise<string>((res) => setTimeout(() => res('still running'), 10000))]);
    t.is(code, 0, log);
    t.false(fs.existsSync(sock), 'socket file removed');
  } finally {
    passt.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

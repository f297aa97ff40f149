/**
 * The real libvirt (Debian's 9.0, `qemu:///session` as the unprivileged
 * test user) runs this tree's passt for `<interface type='user'><backend
 * type='passt'/>` (issue 11; CLIENTS.md §0, §3).
 *
 * One domain, booted once (TCG, the project's tiny guest: test/guest/),
 * inside the namespace made by test/run.sh. libvirtd runs in a mount
 * namespace of its own where /usr/bin/passt is this tree's passt (and,
 * on Debian, where the Debian patch that refuses the passt back end is
 * lifted: test/helpers/libvirt.ts says how and why). Checked: the argv
 * libvirt 9.0 builds (`--one-off --socket … --mac-addr … --log-file …
 * --address … --netmask … --tcp-ports … --udp-ports …`) is accepted and
 * honoured (log file, addresses through DHCP, forwarded ports bound as
 * given, exclusions included); 8 MiB each way between guest and host and
 * through a forwarded port, byte-exact; `virsh destroy` leaves no passt
 * process, no socket and no PID file behind.
 * Ports: 17500-17599.
 */
import anyTest, { TestFn } from 'ava';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { inTestNs, NOT_IN_NS, processesWith, run, sha, waitFor, alive } from '../helpers/env';
import { LibvirtSession, libvirtUnavailable, passtGuardLifted, PasstGuard } from '../helpers/libvirt';
import { readableInstall } from '../helpers/unpriv';
import { receiveAll, sendAll } from '../helpers/tcpTool';
import { ConsoleLines, guestUnavailable, writeGuestInitrd, GUEST_IMAGE } from '../guest/runner';
import { nodeFlags, tuningFor } from '../../src/main/conf';

const test = anyTest as TestFn;

const DOMAIN = 'passt-ts-lv';
const MAC = '52:54:00:7e:57:01';
const GUEST_ADDR = '192.0.2.50';
const GUEST_ADDR6 = '2001:db8::50';
const SIZE = 8 << 20;
const PT = {
  up: 17501, down: 17502,
  /** host port → guest port (<range start to>), host speaks first */
  fwdHost: 17510, fwdGuest: 17610,
  /** 127.0.0.1 only (<portForward address>), guest speaks first */
  fwdLo: 17511,
  /** 17520-17523 with 17522 excluded: bound on the host, never used */
  rangeFrom: 17520, rangeTo: 17523, excluded: 17522,
  udp: 17530,
};

let dir: string | null = null;
let guard: PasstGuard | null = null;
let why: string | null = inTestNs() ? guestUnavailable() ?? libvirtUnavailable() : NOT_IN_NS;
if (why === null) {
  // short: libvirt's socket paths live under it (sun_path is 108 bytes)
  dir = fs.mkdtempSync('/tmp/lv-');
  guard = passtGuardLifted(dir);
  why = guard.why;
}
const lv = why === null ? test.serial : test.skip;
if (why !== null) test(`libvirt tests skipped: ${why}`, (t) => t.pass());

/** Everything one boot produced, shared by the checks below. */
interface Run {
  createRc: number | null;
  createErr: string;
  console: ConsoleLines;
  output: string;
  sum: string;
  upSum: string | null;
  fwdLoSum: string | null;
  hostErrors: string[];
  /** The passt processes (daemon) found while the domain ran, with their command lines. */
  passt: { pid: number; cmdline: string[]; uid: number }[];
  listeners: { tcp: string; udp: string };
  stateFiles: string[];
  pidFileContent: string | null;
  passtLog: string;
  domainLog: string;
  destroyRc: number | null;
  destroyErr: string;
  /** After destroy: passt processes still alive, and what is left in libvirt's passt state dir. */
  leftPids: number[];
  leftFiles: string[];
  bootS: number | null;
  /** How long the emulator wrapper held qemu for passt's socket (ms), or null. */
  qemuWaitedMs: number | null;
}

let session: LibvirtSession | null = null;
let runPromise: Promise<Run> | null = null;

function field(out: string, name: string): string {
  return new RegExp(`^${name}: (.*)$`, 'm').exec(out)?.[1]?.trim() ?? '';
}

function describe(r: Run): string {
  const tail = (s: string, n: number) => s.split('\n').slice(-n).join('\n');
  return `create rc=${r.createRc} ${r.createErr}\n--- console (tail) ---\n${tail(r.console.lines.join('\n'), 40)}\n` +
    `--- passt log (tail) ---\n${tail(r.passtLog, 15)}\n--- domain log (tail) ---\n${tail(r.domainLog, 15)}`;
}

function readCmdline(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

function uidOf(pid: number): number {
  try {
    return Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? -1);
  } catch {
    return -1;
  }
}

/** Appends what was added to `file` since the last call (the serial console, a file libvirt's qemu writes). */
function follow(file: string, con: ConsoleLines): () => void {
  let off = 0;
  const tick = () => {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch {
      return;
    }
    try {
      const buf = Buffer.alloc(1 << 16);
      let n: number;
      while ((n = fs.readSync(fd, buf, 0, buf.length, off)) > 0) {
        off += n;
        con.push(buf.subarray(0, n));
      }
    } finally {
      fs.closeSync(fd);
    }
  };
  const t = setInterval(tick, 100);
  return () => { clearInterval(t); tick(); con.end(); };
}

/**
 * libvirt 9.0 runs passt with virCommandSetPidFile() and does not wait for
 * it: qemu is started at once (its log says "Starting external device:
 * passt" and, some 10 ms later, "starting up"), and qemu 7.2's
 * `-netdev stream` (no reconnect) connects once, at its start. The C
 * passt binds its socket within milliseconds of exec and usually wins
 * that race; a Node.js program needs 200 ms or more just to start, and
 * loses it although passt-ts makes its socket before anything else (the
 * guest then has no network). Later libvirt passes `--pid`
 * and waits for passt to exit (CLIENTS.md §3). This emulator wrapper
 * holds qemu until passt's socket exists (at most 20 s) and writes how
 * long it waited; everything else is libvirt's.
 */
function emulatorWaitingFor(d: string, sock: string): string {
  const f = path.join(d, 'bin', 'qemu-after-passt');
  const waited = path.join(d, 'qemu-waited-ms');
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, `#!/bin/sh
case "$*" in
  *'${sock}'*)
    t0=$(date +%s%N); i=0
    while [ ! -S '${sock}' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
    echo $(( ($(date +%s%N) - t0) / 1000000 )) > '${waited}' ;;
esac
exec /usr/bin/qemu-system-x86_64 "$@"
`, { mode: 0o755 });
  return f;
}

function domainXml(d: string, consoleFile: string, initrd: string, logFile: string, emulator: string): string {
  return `<domain type='qemu'>
  <name>${DOMAIN}</name>
  <memory unit='MiB'>384</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${path.join(d, 'img', 'vmlinuz')}</kernel>
    <initrd>${initrd}</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>${emulator}</emulator>
    <interface type='user'>
      <backend type='passt' logFile='${logFile}'/>
      <mac address='${MAC}'/>
      <model type='virtio'/>
      <rom enabled='no'/>
      <ip family='ipv4' address='${GUEST_ADDR}' prefix='24'/>
      <ip family='ipv6' address='${GUEST_ADDR6}'/>
      <portForward proto='tcp'>
        <range start='${PT.fwdHost}' to='${PT.fwdGuest}'/>
      </portForward>
      <portForward proto='tcp' address='127.0.0.1'>
        <range start='${PT.fwdLo}'/>
      </portForward>
      <portForward proto='tcp'>
        <range start='${PT.rangeFrom}' end='${PT.rangeTo}'/>
        <range start='${PT.excluded}' exclude='yes'/>
      </portForward>
      <portForward proto='udp'>
        <range start='${PT.udp}'/>
      </portForward>
    </interface>
    <serial type='file'>
      <source path='${consoleFile}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

const GUEST_SCRIPT = `
cat /run/lease
echo "mac: $(cat /sys/class/net/eth0/address)"
echo "addr4: $(ip -4 -o addr show dev eth0 | awk '{print $4}')"
echo "route4: $(ip -4 route show default)"
T='timeout 60'
$T socat -u OPEN:files/data.bin TCP:192.0.2.1:${PT.up}; echo "up-rc: $?"
echo "down: $($T socat -u TCP:192.0.2.1:${PT.down} - | sha256sum | cut -d' ' -f1)"
$T socat -u TCP-LISTEN:${PT.fwdGuest},reuseaddr - > /tmp/in.bin & p1=$!
$T socat -u OPEN:files/data.bin TCP-LISTEN:${PT.fwdLo},reuseaddr & p2=$!
i=0; while ! { netstat -lnt | grep -q ":${PT.fwdLo} " && netstat -lnt | grep -q ":${PT.fwdGuest} "; } && [ $i -lt 100 ]; do usleep 50000; i=$((i+1)); done
echo GUEST-LISTENING
wait $p1; echo "in-host-first: $(sha256sum < /tmp/in.bin | cut -d' ' -f1)"
wait $p2; echo "in-guest-first-rc: $?"
echo GUEST-DONE
sleep 600`;

/** sha256 of everything read from host:port, or null. */
async function readFrom(host: string, port: number, ms: number): Promise<string | null> {
  const c = net.createConnection(port, host);
  const t = setTimeout(() => c.destroy(new Error('timeout')), ms);
  try {
    return (await receiveAll(c)).sha;
  } catch {
    return null;
  } finally {
    clearTimeout(t);
  }
}

async function bootAndDestroy(): Promise<Run> {
  const d = dir as string;
  const install = readableInstall();
  session = new LibvirtSession({
    dir: d, guard: guard as PasstGuard,
    passt: [process.execPath, path.join(install, 'bin', 'passt')],
    // no virtlogd: qemu's stdio goes to the domain log file directly
    qemuConf: 'stdio_handler = "file"\n',
  });
  const data = randomBytes(SIZE);
  const sum = sha(data);
  const img = path.join(d, 'img');
  fs.mkdirSync(img, { recursive: true });
  fs.copyFileSync(path.join(GUEST_IMAGE, 'vmlinuz'), path.join(img, 'vmlinuz'));
  const initrd = writeGuestInitrd(path.join(img, 'initrd.img'), GUEST_SCRIPT, { 'data.bin': data });
  const consoleFile = path.join(d, 'console.log');
  const logFile = path.join(d, 'passt.log');
  const xml = path.join(d, 'domain.xml');
  const emulator = emulatorWaitingFor(d, path.join(session.passtStateDir, `1-${DOMAIN}-net0.socket`));
  fs.writeFileSync(xml, domainXml(d, consoleFile, initrd, logFile, emulator));
  for (const f of fs.readdirSync(img)) fs.chmodSync(path.join(img, f), 0o644);
  fs.chmodSync(xml, 0o644);

  // host side: an upload sink and a download source on the host's loopback
  let upSum: Promise<string | null> = Promise.resolve(null);
  const up = net.createServer((c) => { upSum = receiveAll(c).then((x) => x.sha, () => null); });
  const down = net.createServer((c) => { c.on('error', () => {}); c.end(data); });
  await new Promise<void>((r) => up.listen(PT.up, '127.0.0.1', () => r()));
  await new Promise<void>((r) => down.listen(PT.down, '127.0.0.1', () => r()));

  const con = new ConsoleLines();
  const r: Run = {
    createRc: null, createErr: '', console: con, output: '', sum, upSum: null, fwdLoSum: null, hostErrors: [],
    passt: [], listeners: { tcp: '', udp: '' }, stateFiles: [], pidFileContent: null, passtLog: '', domainLog: '',
    destroyRc: null, destroyErr: '', leftPids: [], leftFiles: [], bootS: null, qemuWaitedMs: null,
  };
  try {
    await session.start();
    const t0 = Date.now();
    const created = await session.virsh(['create', xml], 90000);
    r.createRc = created.code;
    r.createErr = created.stderr.trim();
    if (created.code !== 0) return r;
    try { r.qemuWaitedMs = Number(fs.readFileSync(path.join(d, 'qemu-waited-ms'), 'utf8')); } catch { /* not yet */ }
    const stopFollowing = follow(consoleFile, con);
    try {
      // while the domain runs: what libvirt started, and what it bound
      await waitFor(() => {
        try {
          return fs.readdirSync(session!.passtStateDir).some((f) => f.endsWith('.socket'));
        } catch {
          return false;
        }
      }, 5000);
      r.stateFiles = fs.readdirSync(session.passtStateDir).sort();
      const pidFile = r.stateFiles.find((f) => f.endsWith('-passt.pid'));
      r.pidFileContent = pidFile ? fs.readFileSync(path.join(session.passtStateDir, pidFile), 'utf8') : null;
      r.passt = processesWith(session.passtStateDir)
        .map((pid) => ({ pid, cmdline: readCmdline(pid), uid: uidOf(pid) }))
        .filter((p) => !p.cmdline.some((a) => a.includes('qemu-system')));
      r.listeners.tcp = (await run('ss', ['-Hltn'])).stdout;
      r.listeners.udp = (await run('ss', ['-Hlun'])).stdout;

      if (await con.waitLine(/GUEST-LISTENING/, 120000)) {
        r.bootS = (Date.now() - t0) / 1000;
        if (!(await sendAll('127.0.0.1', PT.fwdHost, data, 60000))) r.hostErrors.push(`sending to forwarded port ${PT.fwdHost} failed`);
        r.fwdLoSum = await readFrom('127.0.0.1', PT.fwdLo, 60000);
        await con.waitLine(/GUEST-DONE/, 60000);
      }
    } finally {
      r.upSum = await Promise.race([upSum, new Promise<null>((res) => setTimeout(() => res(null), 2000))]);
      const destroyed = await session.virsh(['destroy', DOMAIN], 60000);
      r.destroyRc = destroyed.code;
      r.destroyErr = destroyed.stderr.trim();
      stopFollowing();
      r.output = con.result().output;
    }
    // passt's end: the process, and libvirt's state files
    await waitFor(() => r.passt.every((p) => !alive(p.pid)), 10000);
    r.leftPids = r.passt.filter((p) => alive(p.pid)).map((p) => p.pid);
    try {
      r.leftFiles = fs.readdirSync(session.passtStateDir);
    } catch {
      r.leftFiles = [];
    }
  } finally {
    up.close();
    down.close();
    try { r.passtLog = fs.readFileSync(logFile, 'utf8'); } catch { /* none */ }
    try { r.domainLog = fs.readFileSync(session.domainLog(DOMAIN), 'utf8'); } catch { /* none */ }
  }
  return r;
}

function boot(): Promise<Run> {
  if (!runPromise) runPromise = bootAndDestroy();
  return runPromise;
}

test.after.always(async () => {
  if (session) {
    // a domain left by a failed run ends with the daemon (qemu and passt are its children)
    await session.virsh(['destroy', DOMAIN], 20000).catch(() => null);
    await session.stop();
    for (const pid of processesWith(session.passtStateDir)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

lv('the domain with <backend type="passt"/> boots: virsh create succeeds, the guest runs its script', async (t) => {
  t.timeout(200000);
  const r = await boot();
  if (guard?.copy) t.log(`Debian's libvirt refused the passt back end unmodified ("${guard.original}"); its guard was lifted for libvirtd`);
  t.is(r.createRc, 0, describe(r));
  t.regex(r.console.lines.join('\n'), /@@GUEST-BEGIN/, describe(r));
  t.log(`boot to the guest's listeners: ${r.bootS} s; qemu held ${r.qemuWaitedMs} ms for passt-ts's socket`);
});

lv('libvirt ran OUR passt, as the session user, with libvirt 9.0\'s own argv', async (t) => {
  t.timeout(200000);
  const r = await boot();
  const install = readableInstall();
  t.true(r.passt.length >= 1, `no passt process under ${session?.passtStateDir}\n${describe(r)}`);
  // the daemon runs with Node's flags of the memory tuning (conf.ts nodeFlags()) before the script
  const flags = nodeFlags(tuningFor('passt', {}).memory, []);
  for (const p of r.passt) {
    t.is(p.cmdline[0], process.execPath, p.cmdline.join(' '));
    t.deepEqual(p.cmdline.slice(1, 1 + flags.length), flags, p.cmdline.join(' '));
    t.is(p.cmdline[1 + flags.length], path.join(install, 'bin', 'passt'));
    t.is(p.uid, session!.uid);
  }
  // the command line libvirt logged for passt in the domain log
  const sock = path.join(session!.passtStateDir, `1-${DOMAIN}-net0.socket`);
  const want = `passt --one-off --socket ${sock} --mac-addr ${MAC} --log-file ${dir}/passt.log ` +
    `--address ${GUEST_ADDR} --netmask 24 --address ${GUEST_ADDR6} ` +
    `--tcp-ports ${PT.fwdHost}:${PT.fwdGuest} --tcp-ports 127.0.0.1/${PT.fwdLo} ` +
    `--tcp-ports ${PT.rangeFrom}-${PT.rangeTo},~${PT.excluded} --udp-ports ${PT.udp}`;
  // as libvirt logged it before running it (shell-quoted where needed)
  const logged = r.domainLog.split('\n').find((l) => l.startsWith('passt ')) ?? '(none)';
  t.is(logged.replace(/'/g, ''), want, `the passt command in the domain log:\n${r.domainLog.slice(0, 600)}`);
  t.deepEqual(r.passt[0]?.cmdline.slice(2 + flags.length), want.split(' ').slice(1));
});

lv('--log-file: passt-ts logs to the file libvirt names (and only there)', async (t) => {
  t.timeout(200000);
  const r = await boot();
  const first = r.passtLog.split('\n')[0];
  t.regex(first, /^passt .*\(passt-ts\).*\(\d+\)$/, r.passtLog);
  // the daemon is PID 1 of a PID namespace of its own: qemu's PID is not
  // known there (as in the original, which logs PID 0)
  t.regex(r.passtLog, /Accepted connection (from PID \d+|on fd \d+ \(the client's PID is outside our PID namespace\))/);
  t.regex(r.passtLog, /Client connection closed/, 'qemu going away is logged');
});

lv('DHCP: the guest gets the <ip> address, prefix and the host gateway from passt-ts', async (t) => {
  t.timeout(200000);
  const r = await boot();
  t.regex(r.output, new RegExp(`lease: eth0 ${GUEST_ADDR.replace(/\./g, '\\.')}/24 router=192\\.0\\.2\\.1 mtu=65520`), describe(r));
  t.is(field(r.output, 'addr4'), `${GUEST_ADDR}/24`);
  t.regex(field(r.output, 'route4'), /^default via 192\.0\.2\.1 dev eth0/);
  t.is(field(r.output, 'mac'), MAC, 'the <mac> of the domain');
});

lv('TCP guest → host loopback via the gateway: 8 MiB byte-exact', async (t) => {
  t.timeout(200000);
  const r = await boot();
  t.is(field(r.output, 'up-rc'), '0', describe(r));
  t.is(r.upSum, r.sum);
});

lv('TCP host loopback → guest via the gateway: 8 MiB byte-exact', async (t) => {
  t.timeout(200000);
  const r = await boot();
  t.is(field(r.output, 'down'), r.sum, describe(r));
});

lv('<portForward> with <range start to>: host port → guest port, host speaks first, 8 MiB byte-exact', async (t) => {
  t.timeout(200000);
  const r = await boot();
  t.deepEqual(r.hostErrors, [], describe(r));
  t.is(field(r.output, 'in-host-first'), r.sum, describe(r));
});

lv('<portForward address="127.0.0.1">: guest speaks first, 8 MiB byte-exact to the host', async (t) => {
  t.timeout(200000);
  const r = await boot();
  t.is(r.fwdLoSum, r.sum, describe(r));
  t.is(field(r.output, 'in-guest-first-rc'), '0');
});

lv('<portForward> listeners are bound as libvirt asked: ranges, exclusion, address, UDP', async (t) => {
  t.timeout(200000);
  const r = await boot();
  const tcp = r.listeners.tcp;
  const bound = (port: number, text: string) => new RegExp(`[:\\]]${port}\\s`).test(text);
  t.true(bound(PT.fwdHost, tcp), tcp);
  t.regex(tcp, new RegExp(`127\\.0\\.0\\.1:${PT.fwdLo}\\s`), 'bound to the given address');
  t.false(new RegExp(`0\\.0\\.0\\.0:${PT.fwdLo}\\s`).test(tcp), 'and only there');
  for (let p = PT.rangeFrom; p <= PT.rangeTo; p++) {
    if (p === PT.excluded) t.false(bound(p, tcp), `excluded ${p} is not bound`);
    else t.true(bound(p, tcp), `range port ${p}`);
  }
  t.true(bound(PT.udp, r.listeners.udp), r.listeners.udp);
});

lv('virsh destroy: no passt-ts process left, no socket and no PID file in libvirt\'s passt directory', async (t) => {
  t.timeout(200000);
  const r = await boot();
  t.is(r.destroyRc, 0, r.destroyErr);
  t.true(r.stateFiles.some((f) => f.endsWith('.socket')), `while running: ${r.stateFiles.join(' ')}`);
  t.true(r.stateFiles.some((f) => f.endsWith('-passt.pid')), `while running: ${r.stateFiles.join(' ')}`);
  t.regex(r.pidFileContent ?? '', /^\d+\n?$/);
  t.deepEqual(r.leftPids, [], 'passt exited');
  t.deepEqual(r.leftFiles, [], 'nothing stale in the passt state directory');
  t.deepEqual(processesWith(session!.passtStateDir), []);
});

/**
 * pasta under hostile load, end to end in the made test namespace (the
 * host side is the test process; 192.0.2.2 is its non-loopback address, so
 * connections to forwarded ports go over the tap and take flows).
 * - A forwarded port whose connection cannot be taken must not make pasta
 *   spin: flow table full (PASST_TS_FLOW_MAX) and no descriptor left
 *   (`prlimit --nofile` on the running pasta); counted, and the port works
 *   again afterwards.
 * Ports 18010–18099.
 */
import anyTest, { TestFn } from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { inTestNs, NOT_IN_NS, run, sleep, waitFor } from '../helpers/env';
import { startPasta, PastaNs } from '../helpers/pastaNs';
import { controlRequest } from '../../src/main/control/client';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('end-to-end load tests', (t) => t.pass(NOT_IN_NS));

const HOST4 = '192.0.2.2';
const QUIET = ['-u', 'none', '-T', 'none', '-U', 'none'];
const TICK_MS = 1000 / 100; // USER_HZ

/** CPU time (ms) a process and all its threads used so far. */
function cpuMs(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

/** CPU share (0..cores) of pid over ms milliseconds. */
async function cpuShare(pid: number, ms: number): Promise<number> {
  const c0 = cpuMs(pid);
  const t0 = performance.now();
  await sleep(ms);
  return (cpuMs(pid) - c0) / (performance.now() - t0);
}

function socketPath(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passt-ts-load-'));
  return path.join(dir, 'control.sock');
}

async function tcpCounters(sock: string): Promise<Record<string, number>> {
  const a = await controlRequest(sock, { cmd: 'stats' });
  if (!a.ok) throw new Error(String(a.error));
  return (a.workers as Record<string, Record<string, number>>).tcp0;
}

/** A connection that has echoed `msg` back (or the error it got). */
function echoOnce(host: string, port: number, msg: string, timeoutMs = 5000): Promise<{ sock: net.Socket | null; err: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let got = '';
    const done = (err: string): void => {
      clearTimeout(t);
      s.removeAllListeners('data');
      if (err) s.destroy();
      resolve({ sock: err ? null : s, err });
    };
    const t = setTimeout(() => done('timeout'), timeoutMs);
    s.on('connect', () => s.write(msg));
    s.on('data', (d) => { got += d.toString(); if (got === msg) done(''); });
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    s.on('close', () => done(got === msg ? '' : 'closed'));
  });
}

async function withPasta(args: string[], env: NodeJS.ProcessEnv, fn: (ns: PastaNs, sock: string) => Promise<void>): Promise<void> {
  const sock = socketPath();
  const ns = await startPasta(['--control', sock, ...QUIET, ...args], env);
  try {
    await fn(ns, sock);
  } finally {
    await ns.stop();
  }
}

e2e('flow table full: the forwarded port is not polled in a loop, the connection waits, then is served', async (t) => {
  await withPasta(['-t', '18010'], { PASST_TS_FLOW_MAX: '2' }, async (ns, sock) => {
    await ns.tool(['echo', '0.0.0.0', '18010']);
    const pid = ns.child.pid as number;
    const a = await echoOnce(HOST4, 18010, 'one');
    const b = await echoOnce(HOST4, 18010, 'two');
    t.is(a.err, '');
    t.is(b.err, '');
    // the third connection completes in the kernel's backlog, and waits there
    const third = echoOnce(HOST4, 18010, 'three', 15000);
    await sleep(300);
    const share = await cpuShare(pid, 1500);
    t.true(share < 0.3, `pasta used ${(share * 100).toFixed(0)} % of a core with a connection waiting`);
    const c = await tcpCounters(sock);
    t.is(c.active, 2);
    t.true(c.acceptPaused >= 1, `acceptPaused ${c.acceptPaused}`);
    t.is(c.accepted, 2);
    // a flow ends: the waiting connection gets its turn
    a.sock?.end();
    const r = await third;
    t.is(r.err, '', 'served once a flow was free');
    t.is((await tcpCounters(sock)).accepted, 3);
    b.sock?.destroy();
    r.sock?.destroy();
  });
});

e2e('no descriptor left (RLIMIT_NOFILE of the running pasta): connections are reset at once, no spinning, then served again', async (t) => {
  await withPasta(['-t', '18011'], {}, async (ns, sock) => {
    await ns.tool(['echo', '0.0.0.0', '18011']);
    const pid = ns.child.pid as number;
    t.is((await echoOnce(HOST4, 18011, 'before')).err, '');
    await sleep(200);
    const fds = fs.readdirSync(`/proc/${pid}/fd`).map(Number);
    const limit = Math.max(...fds) + 1;
    const holes = limit - fds.length;
    const soft = /Max open files\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1] ?? '65536';
    // the soft limit only: raising it again needs nothing
    const lowered = await run('prlimit', [`--pid=${pid}`, `--nofile=${limit}:`]);
    t.is(lowered.code, 0, lowered.stderr);
    try {
      // past the holes below the limit, every connection is refused with a reset
      const tries = holes + 6;
      const res = await Promise.all(Array.from({ length: tries }, (_, i) => echoOnce(HOST4, 18011, `x${i}`, 8000)));
      const reset = res.filter((r) => r.err === 'ECONNRESET' || r.err === 'closed').length;
      for (const r of res) r.sock?.destroy();
      t.true(reset >= 6, `${reset} of ${tries} refused (${res.map((r) => r.err || 'ok').join(' ')})`);
      t.false(res.some((r) => r.err === 'timeout'), 'none left hanging');
      // a connection still arriving keeps nothing spinning either
      const share = await cpuShare(pid, 1000);
      t.true(share < 0.3, `pasta used ${(share * 100).toFixed(0)} % of a core`);
      const c = await tcpCounters(sock).catch(() => null);
      if (c) t.true(c.acceptDropped >= 6, `acceptDropped ${c.acceptDropped}`);
    } finally {
      const back = await run('prlimit', [`--pid=${pid}`, `--nofile=${soft}:`]);
      t.is(back.code, 0, back.stderr);
    }
    // descriptors back: served again (the spare is reopened on the way)
    let lastErr = '';
    const after = await waitFor(async () => {
      const r = await echoOnce(HOST4, 18011, 'after');
      r.sock?.destroy();
      lastErr = r.err;
      return r.err === '';
    }, 5000, 200);
    t.truthy(after, `served again once descriptors are available (${lastErr})`);
    const c = await tcpCounters(sock);
    t.true(c.acceptDropped >= 6, `acceptDropped ${c.acceptDropped}`);
    t.true(c.acceptErrors >= c.acceptDropped);
  });
});

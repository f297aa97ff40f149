/**
 * Listeners of forwarded ports (src/workers/tcp/listeners.ts) that cannot
 * take a connection: with the flow table full, or with no descriptor left
 * (a child under `prlimit --nofile`), the listener must stop being
 * reported by epoll (else the TCP worker polls it in a tight loop), the
 * connection waits in the backlog or is reset, and listening resumes.
 * Real epoll set and sockets on 127.0.0.1. Ports 18000–18009.
 */
import anyTest, { TestFn } from 'ava';
import * as path from 'node:path';
import { inTestNs, NOT_IN_NS, run, sleep } from '../helpers/env';
import { listenRig } from './_listenRig';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('listener tests', (t) => t.pass(NOT_IN_NS));

e2e('full flow table: the listener is disarmed, the connection waits in the backlog, then is taken', async (t) => {
  const r = listenRig(18000);
  try {
    r.room = false;
    r.client();
    await sleep(50);
    t.deepEqual(r.ready(), [0], 'a connection is pending');
    t.is(r.poll(1000), 1);
    t.is(r.accepted.length, 0, 'nothing accepted without a flow');
    t.true(r.set.paused);
    t.is(r.counts.acceptPaused, 1);
    // the busy loop: level-triggered epoll would report the listener again at once
    for (let i = 0; i < 100; i++) t.is(r.poll(1000 + i), 0);
    r.set.resume(2000);
    t.deepEqual(r.ready(), [], 'still full: still disarmed');
    t.is(r.set.timeoutMs(2000), Infinity, 'no timer: a freed flow resumes it');
    r.room = true;
    r.set.resume(2001);
    t.false(r.set.paused);
    t.is(r.poll(2001), 1);
    t.is(r.accepted.length, 1, 'the waiting connection is taken once a flow is free');
    t.deepEqual(r.ready(), []);
    t.is(r.counts.acceptPaused, 1);
    t.is(r.counts.acceptErrors, 0);
  } finally {
    r.close();
  }
});

e2e('table fills up in the middle of a burst: what fits is taken, the rest waits', async (t) => {
  const r = listenRig(18001);
  try {
    let left = 3;
    r.room = true;
    const set = r.set as unknown as { canAccept: () => boolean };
    set.canAccept = () => left > 0;
    const origPush = r.accepted.push.bind(r.accepted);
    r.accepted.push = (fd: number) => { left--; return origPush(fd); };
    for (let i = 0; i < 8; i++) r.client();
    await sleep(50);
    r.poll(1);
    t.is(r.accepted.length, 3);
    t.true(r.set.paused);
    t.deepEqual(r.ready(), []);
    left = 10;
    r.set.resume(2);
    r.poll(2);
    t.is(r.accepted.length, 8);
    t.false(r.set.paused);
    t.deepEqual(r.ready(), []);
  } finally {
    r.close();
  }
});

e2e('no descriptor left (RLIMIT_NOFILE): connections are reset with the spare descriptor, else a back-off', async (t) => {
  const child = path.join(__dirname, '_acceptChild.js');
  const res = await run('prlimit', ['--nofile=96:96', process.execPath, child, '18002'], { timeoutMs: 20000 });
  t.is(res.code, 0, res.stderr);
  const o = JSON.parse(res.stdout.trim());
  t.is(o.fillErr, 'EMFILE');
  t.is(o.readyBefore, 1);
  t.is(o.accepted1, 0);
  t.is(o.dropped, 3, 'all three waiting connections reset');
  t.deepEqual(o.clientErrors, ['ECONNRESET', 'ECONNRESET', 'ECONNRESET'], 'the clients learn at once');
  t.is(o.readyAfterDrop, 0, 'backlog empty: nothing to poll');
  t.true(o.stolen);
  t.is(o.readyBeforeBackoff, 1);
  t.true(o.pausedAfterEmfile, 'no spare: back off');
  t.is(o.timeout, 100);
  t.is(o.readyInBackoff, 0, 'not polled while backing off');
  t.is(o.readyHalfway, 0);
  t.is(o.readyAfterBackoff, 1, 'armed again after the back-off');
  t.true(o.pausedAgain);
  t.is(o.readyAgain, 0);
  t.is(o.events3, 1);
  t.is(o.accepted3, 1, 'with descriptors back, the waiting connection is taken');
  t.is(o.readyEnd, 0);
  t.is(o.counts.acceptDropped, 3);
  t.is(o.counts.acceptPaused, 2);
  // EMFILE before each of the three resets and once more on the empty
  // backlog (the descriptor is taken before the queue is looked at), then
  // twice without a spare
  t.is(o.counts.acceptErrors, 6);
});

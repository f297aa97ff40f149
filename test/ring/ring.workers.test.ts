/**
 * Across real worker_threads: a producer and a consumer worker move ~100k
 * records of random lengths 0..65535 through a small ring, both sleeping in
 * native.epollWait on their Wakers whenever they must wait. Slow phases
 * alternate between the sides so that both the "ring full" and the "ring
 * empty" sleeps happen many times. An epoll_wait that times out while the
 * peer is alive is a lost wake-up, and fails the test.
 */
import test from 'ava';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { Waker } from '../../src/shared/ring/waker';
import type { RingJob, RingResult, SleeperJob } from './_ringWorker';
import { prng } from './_util';

const script = path.join(__dirname, '_ringWorker.js');

function start(job: RingJob | SleeperJob): Promise<RingResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(script, { workerData: job });
    let result: RingResult | null = null;
    w.once('message', (m: RingResult) => { result = m; });
    w.once('error', reject);
    w.once('exit', (code) => (result ? resolve(result) : reject(new Error(`worker exited with ${code}`))));
  });
}

test('100k records of 0..65535 bytes through a 200 kB ring between two sleeping workers', async (t) => {
  const ringSab = FrameRing.allocate(200_000);
  const producer = Waker.create();
  const consumer = Waker.create();
  const base = {
    ring: ringSab, producer, consumer, seed: 0x1234567, count: 100_000, phaseBits: 12,
    epollTimeoutMs: 5000, deadline: Date.now() + 150_000, barrier: new SharedArrayBuffer(4),
  };
  const t0 = process.hrtime.bigint();
  const [p, c] = await Promise.all([start({ ...base, role: 'producer' }), start({ ...base, role: 'consumer' })]);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  Waker.destroy(producer);
  Waker.destroy(consumer);
  t.is(p.error, null);
  t.is(c.error, null);
  t.is(c.records, 100_000);
  t.is(c.bytes, p.bytes, 'every byte checked');
  t.is(p.timeouts, 0, 'producer: no lost wake-up');
  t.is(c.timeouts, 0, 'consumer: no lost wake-up');
  t.true(p.sleeps > 10, `producer slept on a full ring ${p.sleeps} times`);
  t.true(c.sleeps > 10, `consumer slept on an empty ring ${c.sleeps} times`);
  t.true(p.wakesReceived > 0 && c.wakesReceived > 0);
  const ring = new FrameRing(ringSab);
  t.true(ring.isEmpty());
  t.is(ring.records, 100_000);
  t.log(`${(p.bytes / 1e9).toFixed(2)} GB in ${ms.toFixed(0)} ms; producer slept ${p.sleeps}x (woken ${p.wakesReceived}), ` +
    `consumer slept ${c.sleeps}x (woken ${c.wakesReceived}); ${p.skips} SKIP records; ${ring.spaceWakes} space wakes`);
});

/** The sleeper's epoll timeout: a lost wake-up shows as one of these run out. */
const SLEEP_TIMEOUT_MS = 5000;

test('Waker: no lost wake-up over 30k isolated signals with random timing', async (t) => {
  const waker = Waker.create();
  const counter = new SharedArrayBuffer(8);
  const cell = new Int32Array(counter);
  const count = 30_000;
  const done = start({ role: 'sleeper', waker, counter, count, epollTimeoutMs: SLEEP_TIMEOUT_MS, deadline: Date.now() + 240_000 });
  const w = new Waker(waker);
  const rnd = prng(99);
  let writes = 0, lost = 0, i = 1;
  // One signal at a time: post i, wake, then wait for the sleeper's
  // acknowledgement. A lost wake-up leaves the sleeper in epoll_wait and is
  // seen by the sleeper as an epoll_wait that ran out its timeout (nothing
  // else can make it wait that long: the next signal comes right after
  // each acknowledgement), and here as an acknowledgement later than that
  // timeout; a slow machine only delays acknowledgements. Random pauses before posting
  // land the signal anywhere in the sleeper's prepareSleep / re-check /
  // epoll_wait sequence.
  for (; i <= count && lost === 0; i++) {
    const r = rnd();
    const pause = (r & 3) === 0 ? (r >>> 2) % 64 : (r >>> 2) % 3000;
    for (let k = 0; k < pause; k++) Atomics.load(cell, 1);
    Atomics.store(cell, 0, i);
    if (w.wake()) writes++;
    const limit = Date.now() + 3 * SLEEP_TIMEOUT_MS;
    for (let spin = 0; Atomics.load(cell, 1) !== i; spin++)
      if ((spin & 1023) === 0 && Date.now() > limit) {
        lost++;
        break;
      }
  }
  if (lost) {
    Atomics.store(cell, 0, -1);
    w.wake();
  }
  const r = await done;
  Waker.destroy(waker);
  t.is(lost, 0, `signal ${i - 1} was not acknowledged within ${3 * SLEEP_TIMEOUT_MS} ms`);
  t.is(r.error, null);
  t.is(r.timeouts, 0, 'the sleeper never ran out its epoll timeout waiting for a signal already posted');
  t.is(r.records, count);
  t.true(r.sleeps > 1000, `slept ${r.sleeps} times`);
  t.is(w.wakes, writes);
  t.log(`${r.sleeps} sleeps, ${writes} eventfd writes for ${count} signals`);
});

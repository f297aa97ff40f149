/**
 * Worker body for the cross-thread ring tests (and the two-worker benchmark
 * reuses its loop shape). Each role blocks only in native.epollWait on its
 * own Waker, following the sleep protocol of frameRing.ts; an epoll_wait
 * that times out is counted, because with a live peer it means a lost
 * wake-up.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { REC_KIND } from '../../src/shared/ring/layout';
import { Waker, type WakerHandle } from '../../src/shared/ring/waker';
import { native } from '../../src/shared/native';
import { EPOLL_CTL_ADD, EPOLLIN } from '../../src/shared/linux';
import { prng, mix, fillPattern, checkPattern } from './_util';

export interface RingJob {
  role: 'producer' | 'consumer';
  ring: SharedArrayBuffer;
  producer: WakerHandle;
  consumer: WakerHandle;
  seed: number;
  count: number;
  /** Records in a slow phase alternate between sides every 2^phaseBits records. */
  phaseBits: number;
  epollTimeoutMs: number;
  deadline: number;
  /**
   * Int32 [0]: both sides count themselves in here and start together, so
   * that a worker still booting on a loaded machine is not taken for a
   * lost wake-up by a peer that already sleeps.
   */
  barrier: SharedArrayBuffer;
}

export interface RingResult {
  role: string;
  records: number;
  bytes: number;
  skips: number;
  /** Times this side went to sleep in epoll_wait. */
  sleeps: number;
  /** epoll_wait calls that timed out (lost wake-ups). */
  timeouts: number;
  /** eventfd writes this side's waker received. */
  wakesReceived: number;
  error: string | null;
}

/** Slow phase of a side: it naps 1 ms every 64 records (so the other side waits). */
function slowNap(dummy: Int32Array): void {
  Atomics.wait(dummy, 0, 0, 1);
}

/** Waits until both sides reached this point (RingJob.barrier). */
function meetPeer(job: RingJob): void {
  const b = new Int32Array(job.barrier);
  Atomics.add(b, 0, 1);
  Atomics.notify(b, 0);
  for (let v = Atomics.load(b, 0); v < 2; v = Atomics.load(b, 0)) Atomics.wait(b, 0, v, 1000);
}

function epollOn(fd: number): number {
  const ep = native.epollCreate();
  if (ep < 0 || native.epollCtl(ep, EPOLL_CTL_ADD, fd, EPOLLIN, 1) < 0) throw new Error('epoll setup');
  return ep;
}

function producer(job: RingJob): RingResult {
  const ring = new FrameRing(job.ring);
  const me = new Waker(job.producer);
  const peer = new Waker(job.consumer);
  const ep = epollOn(me.fd);
  const ev = new Int32Array(16);
  const dummy = new Int32Array(new SharedArrayBuffer(4));
  meetPeer(job);
  const rnd = prng(job.seed);
  const res: RingResult = { role: 'producer', records: 0, bytes: 0, skips: 0, sleeps: 0, timeouts: 0, wakesReceived: 0, error: null };
  let sincePublish = 0, batch = 1;
  for (let seq = 0; seq < job.count;) {
    const skip = (rnd() & 15) === 0;
    const len = rnd() & 0xffff;
    let d = ring.beginWrite(len);
    while (d < 0) {
      ring.waitForSpace();
      me.prepareSleep();
      d = ring.beginWrite(len);
      if (d >= 0) {
        me.cancelSleep();
        break;
      }
      if (ring.publish()) peer.wake();
      res.sleeps++;
      if (native.epollWait(ep, ev, 8, job.epollTimeoutMs) === 0) res.timeouts++;
      me.wokeUp();
      if (Date.now() > job.deadline) throw new Error(`producer: deadline at record ${seq}`);
    }
    if (skip) {
      ring.endWrite(len, REC_KIND.SKIP, -1, -1);
      res.skips++;
    } else {
      fillPattern(ring.u8, ring.i32, d, len, mix(job.seed, seq));
      ring.endWrite(len, seq % 7, seq, len);
      res.records++;
      res.bytes += len;
      seq++;
      if (((seq >> job.phaseBits) & 1) === 1 && (seq & 63) === 0) {
        if (ring.publish()) peer.wake();
        slowNap(dummy);
      }
    }
    if (++sincePublish >= batch) {
      if (ring.publish()) peer.wake();
      sincePublish = 0;
      batch = 1 + (rnd() & 31);
    }
  }
  if (ring.publish()) peer.wake();
  res.wakesReceived = me.wakes;
  native.close(ep);
  return res;
}

function consumer(job: RingJob): RingResult {
  const ring = new FrameRing(job.ring);
  const me = new Waker(job.consumer);
  const peer = new Waker(job.producer);
  const ep = epollOn(me.fd);
  const ev = new Int32Array(16);
  const dummy = new Int32Array(new SharedArrayBuffer(4));
  meetPeer(job);
  const rnd = prng(job.seed ^ 0x5555);
  const res: RingResult = { role: 'consumer', records: 0, bytes: 0, skips: 0, sleeps: 0, timeouts: 0, wakesReceived: 0, error: null };
  let sinceRelease = 0, batch = 1;
  while (res.records < job.count) {
    const d = ring.peek();
    if (d < 0) {
      me.prepareSleep();
      if (ring.peek() >= 0) {
        me.cancelSleep();
        continue;
      }
      if (ring.release()) peer.wake();
      res.sleeps++;
      if (native.epollWait(ep, ev, 8, job.epollTimeoutMs) === 0) res.timeouts++;
      me.wokeUp();
      if (Date.now() > job.deadline) throw new Error(`consumer: deadline at record ${res.records}`);
      continue;
    }
    const seq = res.records;
    const len = ring.recLen;
    if (ring.recMeta1 !== seq || ring.recMeta2 !== len || ring.recKind !== seq % 7)
      throw new Error(`record ${seq}: header [${len}, ${ring.recKind}, ${ring.recMeta1}, ${ring.recMeta2}]`);
    const bad = checkPattern(ring.u8, ring.i32, d, len, mix(job.seed, seq));
    if (bad >= 0) throw new Error(`record ${seq} (${len} bytes): byte ${bad} differs`);
    ring.consume();
    res.records++;
    res.bytes += len;
    if (++sinceRelease >= batch) {
      if (ring.release()) peer.wake();
      sinceRelease = 0;
      batch = 1 + (rnd() & 31);
    }
    if (((res.records >> job.phaseBits) & 1) === 0 && (res.records & 63) === 0) {
      if (ring.release()) peer.wake();
      slowNap(dummy);
    }
  }
  if (ring.release()) peer.wake();
  res.wakesReceived = me.wakes;
  native.close(ep);
  return res;
}

/**
 * Owner side of the Waker stress test: acknowledges every value the other
 * thread posts, sleeping in epoll_wait in between. Stops at `count` or when
 * the poster writes -1.
 */
export interface SleeperJob {
  role: 'sleeper';
  waker: WakerHandle;
  /** Int32 [0] = last value posted by the other thread, [1] = last value seen here. */
  counter: SharedArrayBuffer;
  count: number;
  epollTimeoutMs: number;
  deadline: number;
}

function sleeper(job: SleeperJob): RingResult {
  const me = new Waker(job.waker);
  const cell = new Int32Array(job.counter);
  const ep = epollOn(me.fd);
  const ev = new Int32Array(16);
  const res: RingResult = { role: 'sleeper', records: 0, bytes: 0, skips: 0, sleeps: 0, timeouts: 0, wakesReceived: 0, error: null };
  let seen = 0;
  while (seen < job.count) {
    const v = Atomics.load(cell, 0);
    if (v < 0) break;
    if (v !== seen) {
      Atomics.store(cell, 1, seen = v);
      continue;
    }
    me.prepareSleep();
    if (Atomics.load(cell, 0) !== seen) {
      me.cancelSleep();
      continue;
    }
    res.sleeps++;
    if (native.epollWait(ep, ev, 8, job.epollTimeoutMs) === 0) res.timeouts++;
    me.wokeUp();
    if (Date.now() > job.deadline) throw new Error(`sleeper: deadline at ${seen}`);
  }
  res.records = seen;
  res.wakesReceived = me.wakes;
  native.close(ep);
  return res;
}

if (parentPort) {
  const job = workerData as RingJob | SleeperJob;
  let res: RingResult;
  try {
    if (job.role === 'sleeper') res = sleeper(job);
    else res = job.role === 'producer' ? producer(job) : consumer(job);
  } catch (e) {
    res = { role: job.role, records: -1, bytes: 0, skips: 0, sleeps: 0, timeouts: 0, wakesReceived: 0, error: String(e) };
  }
  parentPort.postMessage(res);
}

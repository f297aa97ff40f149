/**
 * One side of the two-worker FrameRing throughput run (perf/ring.bench.ts).
 * Same loop shape as a pipeline stage: batches of 32, publish/release once
 * per batch, sleep in native.epollWait on the Waker with the frameRing.ts
 * protocol when the ring is full or empty.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { FrameRing } from '../src/shared/ring/frameRing';
import { Waker, type WakerHandle } from '../src/shared/ring/waker';
import { native } from '../src/shared/native';
import { EPOLL_CTL_ADD, EPOLLIN } from '../src/shared/linux';

export interface BenchJob {
  role: 'producer' | 'consumer';
  ring: SharedArrayBuffer;
  producer: WakerHandle;
  consumer: WakerHandle;
  /** Int32 [0]: 0 until main says go. */
  go: SharedArrayBuffer;
  size: number;
  count: number;
  /** Copy the payload in (producer) and out (consumer) with Uint8Array.set. */
  copy: boolean;
  batch: number;
}

export interface BenchResult {
  start: string;
  end: string;
  sleeps: number;
  check: number;
}

function run(job: BenchJob): BenchResult {
  const ring = new FrameRing(job.ring);
  const me = new Waker(job.role === 'producer' ? job.producer : job.consumer);
  const peer = new Waker(job.role === 'producer' ? job.consumer : job.producer);
  const ep = native.epollCreate();
  native.epollCtl(ep, EPOLL_CTL_ADD, me.fd, EPOLLIN, 1);
  const ev = new Int32Array(16);
  const buf = new Uint8Array(job.size).fill(0x5a);
  const u8 = ring.u8;
  const { size, count, copy, batch } = job;
  let sleeps = 0, check = 0;
  Atomics.wait(new Int32Array(job.go), 0, 0);
  const start = process.hrtime.bigint();
  if (job.role === 'producer') {
    for (let i = 0, n = 0; i < count; i++) {
      let d = ring.beginWrite(size);
      while (d < 0) {
        ring.waitForSpace();
        me.prepareSleep();
        if ((d = ring.beginWrite(size)) >= 0) {
          me.cancelSleep();
          break;
        }
        if (ring.publish()) peer.wake();
        sleeps++;
        native.epollWait(ep, ev, 8, 1000);
        me.wokeUp();
      }
      if (copy) u8.set(buf, d);
      ring.endWrite(size, 0, i);
      if (++n === batch) {
        n = 0;
        if (ring.publish()) peer.wake();
      }
    }
    if (ring.publish()) peer.wake();
  } else {
    for (let i = 0, n = 0; i < count;) {
      const d = ring.peek();
      if (d < 0) {
        me.prepareSleep();
        if (ring.peek() >= 0) {
          me.cancelSleep();
          continue;
        }
        if (ring.release()) peer.wake();
        sleeps++;
        native.epollWait(ep, ev, 8, 1000);
        me.wokeUp();
        continue;
      }
      if (copy) buf.set(u8.subarray(d, d + ring.recLen));
      check += ring.recMeta1 === i ? 1 : 0;
      ring.consume();
      i++;
      if (++n === batch) {
        n = 0;
        if (ring.release()) peer.wake();
      }
    }
    if (ring.release()) peer.wake();
  }
  const end = process.hrtime.bigint();
  native.close(ep);
  return { start: String(start), end: String(end), sleeps, check };
}

if (parentPort) parentPort.postMessage(run(workerData as BenchJob));

/**
 * The guest link (src/workers/link/): the single-writer gate's
 * non-blocking hand-over, and a direct writer sending an L4 worker's
 * unpublished frames through the stream back end with the pcap tee.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { TxGate } from '../../src/workers/link/txGate';
import { DirectWriter } from '../../src/workers/link/directWriter';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { Waker } from '../../src/shared/ring/waker';
import { openPcap } from '../../src/shared/pcapWriter';
import { PCAP_GLOBAL_HEADER_LEN, PCAP_RECORD_HEADER_LEN } from '../../src/shared/pcap';
import { native } from '../../src/shared/native';
import { EPOLL_CTL_ADD, EPOLLIN } from '../../src/shared/linux';
import { socketPair, readAvailable } from '../helpers/socketpair';
import type { GateJob } from './_gateWorker';
import { tmpPath } from '../helpers/env';

test('gate: allocated with the guest descriptor and nothing half sent; one holder at a time', (t) => {
  const sab = TxGate.allocate(7);
  const a = new TxGate(sab);
  const b = new TxGate(sab);
  t.is(a.fd, 7);
  t.is(a.partial, -1);
  t.true(a.tryLock());
  t.false(b.tryLock());
  t.false(b.tryAcquire());
  t.false(b.isFree());
  t.true(a.release(), 'tap-TX asked for the gate while it was held: the holder must ring it');
  t.true(b.isFree());
  t.false(a.tryLock(), 'tap-TX asked first: L4 workers stay off the gate until it had it');
  t.true(b.tryAcquire());
  t.false(a.tryLock());
  t.false(b.release(), 'nobody asked: no ring');
  t.true(a.tryLock(), 'after tap-TX had it, L4 workers may take it again');
  t.false(a.release());
});

test('gate: tap-TX getting it at the second try leaves nobody a reason to ring', (t) => {
  const g = new TxGate(TxGate.allocate(-1));
  t.true(g.tryAcquire());
  t.false(g.release());
  t.true(g.tryLock());
  t.false(g.release());
});

/** A ring with frames of the given lengths ended but not published (each byte = its frame's index). */
function ringWith(lens: number[]): FrameRing {
  const ring = new FrameRing(FrameRing.allocate(1 << 16));
  lens.forEach((len, i) => {
    const d = ring.beginWrite(len);
    ring.u8.fill(i + 1, d, d + len);
    ring.endWrite(len, 0);
  });
  return ring;
}

test('direct writer: unpublished frames leave framed and are rolled back; each is in the pcap file', (t) => {
  const [ours, peer] = socketPair();
  const pcapPath = tmpPath('link-direct.pcap');
  const pcapFd = openPcap(pcapPath);
  const gate = TxGate.allocate(ours);
  const tapTx = Waker.create();
  const ring = ringWith([60, 100]);
  const w = new DirectWriter({ gate, input: 1, backend: 'stream', pcapFd }, ring, 0, new Waker(tapTx));
  t.true(w.tryWrite());
  t.true(ring.isEmpty());
  t.false(ring.publish(), 'nothing left to publish: the records were rolled back');
  const got = readAvailable(peer);
  t.is(got.length, 4 + 60 + 4 + 100);
  t.is(got.readUInt32BE(0), 60);
  t.true(got.subarray(4, 64).every((x) => x === 1));
  t.is(got.readUInt32BE(64), 100);
  t.true(got.subarray(68).every((x) => x === 2));
  const cap = fs.readFileSync(pcapPath);
  t.is(cap.length, PCAP_GLOBAL_HEADER_LEN + 2 * PCAP_RECORD_HEADER_LEN + 160);
  native.close(pcapFd);
  native.close(ours);
  native.close(peer);
  Waker.destroy(tapTx);
});

test('direct writer: never waits for the gate, and stays off it while tap-TX asked for it', (t) => {
  const [ours, peer] = socketPair();
  const sab = TxGate.allocate(ours);
  const tapTxGate = new TxGate(sab);
  const tapTxHandle = Waker.create();
  const tapTx = new Waker(tapTxHandle);
  const writer = (len: number) => new DirectWriter({ gate: sab, input: 1, backend: 'tap', pcapFd: -1 }, ringWith([len]), 0,
    new Waker(tapTxHandle));
  const w = writer(60);
  t.true(tapTxGate.tryAcquire());
  t.false(w.tryWrite(), 'the gate is held: the caller publishes instead');
  tapTxGate.release();
  tapTx.prepareSleep();
  t.true(w.tryWrite());
  t.true(tapTx.sleeping, 'nobody asked for the gate: tap-TX is not rung');
  t.is(readAvailable(peer).length, 60);
  // an L4 worker holds the gate while tap-TX asks for it
  const other = new TxGate(sab);
  t.true(other.tryLock());
  t.false(tapTxGate.tryAcquire());
  t.true(other.release(), 'the holder is told to ring tap-TX');
  const w2 = writer(30);
  t.false(w2.tryWrite(), 'tap-TX asked: L4 workers publish instead, tap-TX goes first');
  t.is(readAvailable(peer).length, 0);
  t.true(tapTxGate.tryAcquire());
  t.false(tapTxGate.release(), 'tap-TX had it: the request is gone');
  t.true(w2.tryWrite());
  t.is(readAvailable(peer).length, 30);
  native.close(ours);
  native.close(peer);
  Waker.destroy(tapTxHandle);
});

test('gate across threads: tap-TX asking while an L4 worker writes is always rung (no lost wake-up)', async (t) => {
  t.timeout(30000);
  const sab = TxGate.allocate(-1);
  const gate = new TxGate(sab);
  const handle = Waker.create();
  const me = new Waker(handle);
  const stop = new SharedArrayBuffer(4);
  const epfd = native.epollCreate();
  t.true(native.epollCtl(epfd, EPOLL_CTL_ADD, handle.fd, EPOLLIN, 1) === 0);
  const job: GateJob = { gate: sab, tapTx: handle, stop };
  const w = new Worker(path.join(__dirname, '_gateWorker.js'), { workerData: job });
  const done = new Promise<{ holds: number; rings: number }>((r) => w.once('message', r));
  const events = new Int32Array(2);
  let acquired = 0;
  let slept = 0;
  let lost = 0;
  const end = Date.now() + 1500;
  while (Date.now() < end) {
    // tap-TX's loop (tapTx.ts): try, and if an L4 worker holds the gate, sleep until rung
    if (gate.tryAcquire()) {
      acquired++;
      gate.release();
      continue;
    }
    me.prepareSleep();
    if (gate.isFree()) {
      me.cancelSleep();
      continue;
    }
    slept++;
    // with the holder letting go within microseconds, waiting a second means nobody rang
    if (native.epollWait(epfd, events, 1, 1000) === 0) lost++;
    me.wokeUp();
  }
  Atomics.store(new Int32Array(stop), 0, 1);
  const l4 = await done;
  await w.terminate();
  native.close(epfd);
  Waker.destroy(handle);
  t.is(lost, 0, `${lost} lost wake-ups in ${slept} sleeps`);
  t.true(acquired > 0 && l4.holds > 0, `tap-TX held the gate ${acquired} times, the L4 worker ${l4.holds} times`);
  t.log(`tap-TX: ${acquired} holds, ${slept} sleeps; L4 worker: ${l4.holds} holds, ${l4.rings} rings`);
});

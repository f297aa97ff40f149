/**
 * Worker body for the gate's cross-thread test (link.test.ts): plays an L4
 * worker's direct writes. It takes the gate whenever it may (never while
 * tap-TX asked for it), holds it for a moment (a sendmsg), lets go and
 * rings tap-TX's waker when release() says tap-TX asked meanwhile.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { TxGate } from '../../src/workers/link/txGate';
import { Waker, type WakerHandle } from '../../src/shared/ring/waker';

export interface GateJob {
  gate: SharedArrayBuffer;
  tapTx: WakerHandle;
  /** Shared Int32Array: [0] = 1 tells the worker to stop. */
  stop: SharedArrayBuffer;
}

const job = workerData as GateJob;
const gate = new TxGate(job.gate);
const tapTx = new Waker(job.tapTx);
const stop = new Int32Array(job.stop);
let holds = 0;
let rings = 0;
let spin = 0;
while (Atomics.load(stop, 0) === 0) {
  if (!gate.tryLock()) continue;
  holds++;
  for (let i = 0; i < 200; i++) spin += i; // a short critical section
  if (gate.release()) {
    rings++;
    tapTx.wake();
  }
}
parentPort?.postMessage({ holds, rings, spin: spin > 0 });

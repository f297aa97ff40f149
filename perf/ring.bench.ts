/**
 * FrameRing benchmarks: `node dist/perf/ring.bench.js [--quick]`.
 *
 * 1. Single thread (tinybench): cost of one record through the ring —
 *    beginWrite/endWrite, publish and release once per batch of 32 (and per
 *    record, for comparison), peek/consume — without and with copying the
 *    payload in and out. Each task moves 1024 records; ns/record is
 *    reported.
 * 2. Two workers: records/s and GB/s through one ring from a producer worker
 *    to a consumer worker, both sleeping in epoll_wait on their Wakers when
 *    the ring is full or empty. "no copy" is the transport cost alone (in the
 *    pipeline the kernel fills and drains the ring: readFrames/writeFrames);
 *    "copy" adds a Uint8Array.set on each side.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Bench } from 'tinybench';
import { FrameRing } from '../src/shared/ring/frameRing';
import { Waker } from '../src/shared/ring/waker';
import type { BenchJob, BenchResult } from './_ringBenchWorker';

const quick = process.argv.includes('--quick');
const SIZES = [64, 1500, 65536];
const PER_TASK = 1024;

async function singleThread(): Promise<void> {
  const bench = new Bench({ time: quick ? 200 : 1000, warmup: true });
  for (const size of SIZES) {
    const sab = FrameRing.allocate(8 << 20);
    const p = new FrameRing(sab);
    const c = new FrameRing(sab);
    const src = new Uint8Array(size).fill(1);
    const dst = new Uint8Array(size);
    const u8 = p.u8;
    const batched = (copy: boolean) => (): void => {
      for (let i = 0; i < PER_TASK; i += 32) {
        for (let k = 0; k < 32; k++) {
          const d = p.beginWrite(size);
          if (copy) u8.set(src, d);
          p.endWrite(size, 0, k);
        }
        p.publish();
        let d: number;
        while ((d = c.peek()) >= 0) {
          if (copy) dst.set(u8.subarray(d, d + c.recLen));
          c.consume();
        }
        c.release();
      }
    };
    bench.add(`${size} B, batch 32, no copy`, batched(false));
    bench.add(`${size} B, batch 32, copy in+out`, batched(true));
    if (size === 64) {
      bench.add(`${size} B, publish+release per record`, () => {
        for (let i = 0; i < PER_TASK; i++) {
          p.beginWrite(size);
          p.endWrite(size, 0, i);
          p.publish();
          c.peek();
          c.consume();
          c.release();
        }
      });
    }
  }
  await bench.run();
  console.log('Single thread, one record through the ring (push + pop):');
  const rows = bench.tasks.map((t) => {
    const r = t.result as unknown as { latency?: { mean: number }; period?: number };
    const ms = r.latency?.mean ?? r.period ?? NaN;
    return { task: t.name, 'ns/record': +((ms * 1e6) / PER_TASK).toFixed(1) };
  });
  console.table(rows);
}

function worker(job: BenchJob): Promise<BenchResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(path.join(__dirname, '_ringBenchWorker.js'), { workerData: job });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

async function twoWorkers(): Promise<void> {
  const rows: Record<string, string | number>[] = [];
  for (const size of SIZES) {
    for (const copy of [false, true]) {
      const count = quick
        ? Math.max(2000, Math.floor(2e8 / (size + 16)))
        : Math.min(5_000_000, Math.floor(3e9 / size));
      const ringSab = FrameRing.allocate(4 << 20);
      const producer = Waker.create();
      const consumer = Waker.create();
      const go = new SharedArrayBuffer(4);
      const base = { ring: ringSab, producer, consumer, go, size, count, copy, batch: 32 };
      const both = Promise.all([worker({ ...base, role: 'producer' }), worker({ ...base, role: 'consumer' })]);
      await new Promise((r) => setTimeout(r, 100)); // both workers parked on `go`
      Atomics.store(new Int32Array(go), 0, 1);
      Atomics.notify(new Int32Array(go), 0);
      const [p, c] = await both;
      Waker.destroy(producer);
      Waker.destroy(consumer);
      if (c.check !== count) throw new Error(`consumer saw ${c.check} of ${count} records in order`);
      const ns = Number(BigInt(c.end) - BigInt(p.start));
      rows.push({
        record: `${size} B`,
        payload: copy ? 'copy in+out' : 'no copy',
        records: count,
        'Mrecords/s': +((count / ns) * 1e3).toFixed(2),
        'GB/s': +((count * size) / ns).toFixed(2),
        'ns/record': +(ns / count).toFixed(1),
        'sleeps P/C': `${p.sleeps}/${c.sleeps}`,
      });
    }
  }
  console.log('Two workers, one ring (4 MiB), batches of 32:');
  console.table(rows);
}

async function main(): Promise<void> {
  await singleThread();
  await twoWorkers();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

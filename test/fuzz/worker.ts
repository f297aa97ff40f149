/**
 * One fuzz target in a worker thread (started by fuzz.ts): the engine
 * (engine.ts) over the target's stored corpus and seeds. Each input is
 * copied into the shared heartbeat buffer before it runs, so that the
 * parent can tell a hang and show the input that hung.
 * Heartbeat layout: Int32 [0] executions (wrapping), [1] input length;
 * bytes from HB_DATA: the input.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Coverage, Crash, Engine, EngineStats } from './engine';
import { targetByName } from './targets';
import { log } from '../../src/shared/log';

export const HB_DATA = 64;
export const HB_BYTES = HB_DATA + 65536;

export interface FuzzJob {
  target: string;
  execs: number;
  seconds: number;
  seed: number;
  corpusDir: string;
  /** Write inputs that add coverage into the corpus directory. */
  save: boolean;
  hb: SharedArrayBuffer;
  /** The product's compiled scripts: coverage counts only there. */
  srcUrl: string;
}

export type FuzzMsg =
  | { type: 'progress'; stats: Omit<EngineStats, 'crashes'> & { crashes: number }; heapMiB: number }
  | { type: 'crash'; key: string; hex: string; stack: string }
  | { type: 'done'; stats: Omit<EngineStats, 'crashes'> & { crashes: number }; heapMiB: number; heapEndMiB: number };

export function corpusFiles(dir: string): Uint8Array[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).sort().map((f) => new Uint8Array(fs.readFileSync(path.join(dir, f))));
}

export function corpusName(input: Uint8Array): string {
  return crypto.createHash('sha1').update(input).digest('hex').slice(0, 16);
}

if (parentPort && workerData?.target) {
  const job = workerData as FuzzJob;
  // the product's own warnings (rate-limited per instance, and targets make fresh ones) are noise here
  log.configure({ level: 'error', sink: { write: () => {} } });
  const port = parentPort;
  const target = targetByName(job.target);
  const hbI = new Int32Array(job.hb, 0, 2);
  const hbU = new Uint8Array(job.hb, HB_DATA);
  const dir = path.join(job.corpusDir, job.target);
  const cov = new Coverage((url) => url.startsWith(job.srcUrl));
  const engine = new Engine(target, cov, job.seed);
  let heapPeak = 0;
  const heap = (): number => {
    const h = process.memoryUsage().heapUsed / 2 ** 20;
    if (h > heapPeak) heapPeak = h;
    return h;
  };
  const brief = (s: EngineStats) => ({ ...s, crashes: s.crashes.length });
  const stats = engine.run({
    execs: job.execs,
    seconds: job.seconds,
    seed: job.seed,
    corpus: corpusFiles(dir),
    onExec: (input) => {
      const n = Math.min(input.length, hbU.length);
      hbU.set(n === input.length ? input : input.subarray(0, n));
      hbI[1] = n;
      Atomics.add(hbI, 0, 1);
    },
    onCrash: (c: Crash) => port.postMessage({ type: 'crash', key: c.key, hex: Buffer.from(c.input).toString('hex'), stack: c.stack } satisfies FuzzMsg),
    onProgress: (s) => port.postMessage({ type: 'progress', stats: brief(s), heapMiB: heap() } satisfies FuzzMsg),
  });
  if (job.save) {
    // the stored corpus becomes the minimized one (regression inputs stay: each
    // brings the coverage of its fix)
    const kept = engine.minimize({ execs: Infinity, seconds: Infinity, seed: job.seed, corpus: [] });
    fs.mkdirSync(dir, { recursive: true });
    const names = new Set(kept.map(corpusName));
    const regress = new Set<string>();
    for (const f of fs.readdirSync(dir)) {
      if (f.startsWith('regress-')) regress.add(corpusName(new Uint8Array(fs.readFileSync(path.join(dir, f)))));
      else if (!names.has(f)) fs.unlinkSync(path.join(dir, f));
    }
    for (const k of kept) if (!regress.has(corpusName(k))) fs.writeFileSync(path.join(dir, corpusName(k)), k);
  }
  cov.close();
  heap();
  port.postMessage({ type: 'done', stats: brief(stats), heapMiB: heapPeak, heapEndMiB: heap() } satisfies FuzzMsg);
}

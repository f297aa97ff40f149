/**
 * The coverage-guided fuzzer's driver (engine.ts, targets.ts): runs each
 * target in a worker thread, watches it for hangs, and prints per target
 * executions, executions/s, coverage (V8 blocks, covered source bytes), corpus size,
 * crashes and hangs. Exit status 1 if anything crashed or hung.
 *
 *   node dist/test/fuzz/fuzz.js [--targets a,b,...] [--execs N] [--seconds S]
 *       [--jobs J] [--seed N] [--save] [--hang-ms MS] [--quiet] [--list]
 *
 * --execs/--seconds bound each target (whichever comes first; defaults
 * 10 000 000 and 3600). --save replaces test/fuzz/corpus/TARGET/ with the
 * run's corpus, minimized (inputs that each bring a feature; files named
 * regress-* are always kept). Crashes and hangs are written to
 * test/fuzz/crashes/ (the input and its stack).
 */
import { Worker } from 'node:worker_threads';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { TARGETS } from './targets';
import { corpusName, FuzzJob, FuzzMsg, HB_BYTES, HB_DATA } from './worker';

const ROOT = path.resolve(__dirname, '..', '..', '..');
export const CORPUS_DIR = path.join(ROOT, 'test', 'fuzz', 'corpus');
const CRASH_DIR = path.join(ROOT, 'test', 'fuzz', 'crashes');

interface Options {
  targets: string[];
  execs: number;
  seconds: number;
  jobs: number;
  seed: number;
  save: boolean;
  hangMs: number;
  quiet: boolean;
}

export interface TargetResult {
  target: string;
  execs: number;
  seconds: number;
  execsPerSec: number;
  blocks: number;
  coveredBytes: number;
  corpus: number;
  added: number;
  crashes: string[];
  hangs: number;
  slowestMs: number;
  heapPeakMiB: number;
  heapEndMiB: number;
}

function parse(argv: string[]): Options | null {
  const o: Options = { targets: TARGETS.map((t) => t.name), execs: 10_000_000, seconds: 3600, jobs: 1,
    seed: (Date.now() & 0x7fffffff) >>> 0, save: false, hangMs: 10000, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--targets') { const v = val(); if (v !== 'all') o.targets = v.split(','); }
    else if (a === '--execs') o.execs = Number(val());
    else if (a === '--seconds') o.seconds = Number(val());
    else if (a === '--jobs') o.jobs = Math.max(1, Number(val()));
    else if (a === '--seed') o.seed = Number(val());
    else if (a === '--hang-ms') o.hangMs = Number(val());
    else if (a === '--save') o.save = true;
    else if (a === '--quiet') o.quiet = true;
    else if (a === '--list') { console.log(TARGETS.map((t) => t.name).join('\n')); return null; }
    else throw new Error(`unknown argument ${a}`);
  }
  for (const t of o.targets) if (!TARGETS.some((x) => x.name === t)) throw new Error(`no fuzz target ${t}`);
  return o;
}

function saveFinding(kind: 'crash' | 'hang', target: string, input: Uint8Array, text: string): string {
  fs.mkdirSync(CRASH_DIR, { recursive: true });
  const base = path.join(CRASH_DIR, `${target}-${kind}-${corpusName(input)}`);
  fs.writeFileSync(base, input);
  fs.writeFileSync(`${base}.txt`, `${text}\n`);
  return base;
}

function runTarget(o: Options, target: string, index: number): Promise<TargetResult> {
  const hb = new SharedArrayBuffer(HB_BYTES);
  const hbI = new Int32Array(hb, 0, 2);
  const job: FuzzJob = {
    target, execs: o.execs, seconds: o.seconds, seed: (o.seed + index * 0x9e3779b1) >>> 0, corpusDir: CORPUS_DIR,
    save: o.save, hb, srcUrl: pathToFileURL(path.join(ROOT, 'dist', 'src')).href + '/',
  };
  const w = new Worker(path.join(__dirname, 'worker.js'), { workerData: job });
  const res: TargetResult = { target, execs: 0, seconds: 0, execsPerSec: 0, blocks: 0, coveredBytes: 0, corpus: 0, added: 0,
    crashes: [], hangs: 0, slowestMs: 0, heapPeakMiB: 0, heapEndMiB: 0 };
  const t0 = performance.now();
  return new Promise((resolve) => {
    let last = Atomics.load(hbI, 0);
    let lastChange = performance.now();
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearInterval(watch);
      if (!res.seconds) res.seconds = (performance.now() - t0) / 1000;
      res.execsPerSec = res.execs / Math.max(res.seconds, 1e-9);
      resolve(res);
    };
    const watch = setInterval(() => {
      const now = performance.now();
      const c = Atomics.load(hbI, 0);
      if (c !== last) { last = c; lastChange = now; return; }
      if (now - lastChange < o.hangMs) return;
      const n = hbI[1];
      const input = new Uint8Array(hb, HB_DATA, n).slice();
      res.hangs++;
      const where = saveFinding('hang', target, input, `no execution finished for ${o.hangMs} ms`);
      console.error(`${target}: HANG (input ${Buffer.from(input).toString('hex').slice(0, 200)}) saved as ${where}`);
      void w.terminate().then(finish);
    }, 250);
    w.on('message', (m: FuzzMsg) => {
      if (m.type === 'crash') {
        const input = Uint8Array.from(Buffer.from(m.hex, 'hex'));
        const where = saveFinding('crash', target, input, `${m.key}\n${m.stack}`);
        res.crashes.push(m.key);
        console.error(`${target}: CRASH ${m.key}\n  input ${m.hex.slice(0, 400)}\n  saved as ${where}\n${m.stack}`);
        return;
      }
      Object.assign(res, {
        execs: m.stats.execs, seconds: m.stats.seconds, blocks: m.stats.blocks, coveredBytes: m.stats.coveredBytes,
        corpus: m.stats.corpus, added: m.stats.added, slowestMs: m.stats.slowestMs,
        heapPeakMiB: Math.max(res.heapPeakMiB, m.heapMiB),
      });
      if (m.type === 'done') res.heapEndMiB = m.heapEndMiB;
      else if (!o.quiet) {
        process.stderr.write(`${target}: ${m.stats.execs} execs, ${(m.stats.execs / m.stats.seconds).toFixed(0)}/s, ` +
          `${m.stats.blocks} blocks, ${m.stats.coveredBytes} bytes, corpus ${m.stats.corpus}\n`);
      }
    });
    w.on('error', (e) => {
      res.crashes.push(`worker error: ${e.message}`);
      console.error(`${target}: worker error ${e.stack}`);
    });
    w.on('exit', finish);
  });
}

export function formatResult(r: TargetResult): string {
  return `${r.target.padEnd(15)} ${String(r.execs).padStart(10)} execs ${r.execsPerSec.toFixed(0).padStart(7)}/s ` +
    `${String(r.blocks).padStart(5)} blocks ${String(r.coveredBytes).padStart(6)} bytes ` +
    `corpus ${String(r.corpus).padStart(4)} (+${r.added}) crashes ${r.crashes.length} hangs ${r.hangs} ` +
    `slowest ${r.slowestMs.toFixed(1)} ms heap ${r.heapPeakMiB.toFixed(0)}/${r.heapEndMiB.toFixed(0)} MiB`;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  if (!o) return;
  console.log(`fuzzing ${o.targets.length} targets, seed ${o.seed}, up to ${o.execs} execs or ${o.seconds} s each, ${o.jobs} at a time`);
  const queue = o.targets.map((t, i) => [t, i] as const);
  const results: TargetResult[] = [];
  await Promise.all(Array.from({ length: Math.min(o.jobs, queue.length) }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const r = await runTarget(o, next[0], next[1]);
      console.log(formatResult(r));
      results.push(r);
    }
  }));
  const bad = results.filter((r) => r.crashes.length || r.hangs);
  const total = results.reduce((s, r) => s + r.execs, 0);
  console.log(`total ${total} execs; ${bad.length ? `FAILED: ${bad.map((r) => r.target).join(', ')}` : 'no crash, no hang'}`);
  console.log(`RESULT ${JSON.stringify(results)}`);
  process.exitCode = bad.length ? 1 : 0;
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exitCode = 2;
  });
}

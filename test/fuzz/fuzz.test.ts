/**
 * The coverage-guided fuzzer in CI: (1) the engine's feedback works — on a
 * target whose crash needs four magic bytes in sequence (2^32 random
 * tries; a few thousand with coverage feedback) it finds the crash, and
 * without feedback it does not; (2) every target, over its stored corpus
 * (the regression inputs of past crashes included) and then a short
 * coverage-guided run (test/fuzz/fuzz.ts), finds no crash and no hang.
 * The long run is test/fuzz/long-run.sh.
 */
import test from 'ava';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Coverage, Engine, FuzzTarget } from './engine';
import { TARGETS } from './targets';
import { run } from '../helpers/env';

/** Crashes only on "FUZZ" at offset 3: each byte taken is a new branch. */
function magic(data: Uint8Array): void {
  if (data.length < 7) return;
  if (data[3] !== 0x46) return;
  if (data[4] !== 0x55) return;
  if (data[5] !== 0x5a) return;
  if (data[6] !== 0x5a) return;
  throw new Error('found the magic');
}

const MAGIC: FuzzTarget = { name: 'magic', fuzz: magic, seeds: () => [Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)], maxLen: 64 };

test.serial('coverage feedback finds four magic bytes that blind mutation does not', (t) => {
  const self = pathToFileURL(__filename).href;
  const guided = new Coverage((url) => url === self);
  const e = new Engine(MAGIC, guided, 12345);
  const s = e.run({ execs: 400_000, seconds: 30, seed: 12345, corpus: [], maxCrashes: 1 });
  guided.close();
  t.is(s.crashes.length, 1, `found after ${s.execs} executions`);
  t.regex(s.crashes[0].key, /found the magic/);
  t.true(s.corpus >= 4, `each byte found kept an input (corpus ${s.corpus})`);
  // the same engine with no script counted: no feedback, no corpus growth
  const blind = new Coverage(() => false);
  const b = new Engine(MAGIC, blind, 12345).run({ execs: s.execs * 2, seconds: 30, seed: 12345, corpus: [], maxCrashes: 1 });
  blind.close();
  t.is(b.crashes.length, 0, 'blind mutation does not get there');
  t.is(b.corpus, 1);
});

test.serial('every target: stored corpus and a short guided run, no crash, no hang', async (t) => {
  // about 40 s in all, one target at a time (one core: the suite runs other,
  // timing-sensitive test files next to this one)
  const seconds = Math.max(1, Math.floor(40 / TARGETS.length));
  const r = await run(process.execPath, [path.join(__dirname, 'fuzz.js'), '--seconds', String(seconds), '--jobs', '1',
    '--seed', '1', '--quiet', '--hang-ms', '10000'], { timeoutMs: 150_000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  t.truthy(line, `${r.stdout}\n${r.stderr}`);
  const results = JSON.parse((line as string).slice(7)) as
    { target: string; execs: number; crashes: string[]; hangs: number; coveredBytes: number }[];
  t.deepEqual(results.map((x) => x.target).sort(), TARGETS.map((x) => x.name).sort());
  for (const x of results) {
    t.deepEqual(x.crashes, [], `${x.target} crashed: ${r.stderr.slice(0, 4000)}`);
    t.is(x.hangs, 0, `${x.target} hung`);
    t.true(x.execs > 300, `${x.target}: ${x.execs} executions`);
    t.true(x.coveredBytes > 500, `${x.target}: ${x.coveredBytes} source bytes covered`);
  }
  t.is(r.code, 0, r.stdout);
  t.log(r.stdout.split('\n').filter((l) => !l.startsWith('RESULT ')).join('\n'));
});

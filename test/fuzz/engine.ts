/**
 * A coverage-guided fuzzing engine on V8's own block coverage, for a
 * machine where no Jazzer.js loads (its 4.x prebuild needs glibc 2.38,
 * 2.x downloads from GitHub at install).
 *
 * Theory of operation
 * - Feedback: node:inspector's Profiler.startPreciseCoverage({callCount,
 *   detailed}) keeps a counter per block of every function; each
 *   takePreciseCoverage returns them and starts them again from zero. Only
 *   the product's compiled scripts (dist/src/) count. V8 folds a block
 *   whose count equals its parent's into the parent and lists only blocks
 *   that differ, so the reported ranges are flattened into disjoint
 *   segments, each with the count of the innermost range over it, and the
 *   covered ones (count > 0) are checked against a map of every source
 *   offset covered so far: an input that covers an offset never covered
 *   before is new coverage. Being a union, this works for a whole batch
 *   of inputs as for one (hit counts summed over a batch would not mean
 *   anything, so they are not used).
 * - Loop: pick a corpus entry (newest entries a little more often),
 *   apply 1-8 stacked mutations (bit flips, interesting 8/16/32-bit
 *   values, small arithmetic on bytes and big-endian words — length
 *   fields —, inserts, deletes, copies within the input, dictionary
 *   tokens, splicing with another entry), run the target. Taking coverage
 *   is the costly part (~1 ms), so mutants run in batches and coverage is
 *   taken once per batch; a batch with new features is run again one
 *   input at a time to find which inputs bring them, and those join the
 *   corpus. Batches grow while nothing new turns up (up to 256) and shrink
 *   when something does.
 * - Crashes: anything the target throws; kept (hex and the stack) with a
 *   key of message + first frame so one bug is reported once. Hangs are
 *   the caller's (fuzz.ts runs each target in a worker and watches a
 *   heartbeat that `onExec` may publish).
 * - Reported coverage: `blocks`, the distinct V8 block ranges seen with a
 *   count above zero (the functions' own ranges included), and
 *   `coveredBytes`, the source bytes of the product covered.
 */
import { Session } from 'node:inspector';

export interface FuzzTarget {
  name: string;
  /** One execution; throws on an invariant violation (a crash). */
  fuzz(data: Uint8Array): void;
  /** Starting inputs, besides the stored corpus. */
  seeds(): Uint8Array[];
  /** Tokens the mutator may insert or overwrite with (keywords, magic values). */
  dict?: (string | number[])[];
  /** Largest input worth making. */
  maxLen?: number;
}

export interface Crash {
  key: string;
  input: Uint8Array;
  stack: string;
}

export interface EngineStats {
  execs: number;
  seconds: number;
  blocks: number;
  /** Source bytes of the product covered. */
  coveredBytes: number;
  corpus: number;
  /** Corpus entries added by this run. */
  added: number;
  crashes: Crash[];
  /** The slowest single execution (ms, measured on replays) and its input. */
  slowestMs: number;
}

type CovRange = { startOffset: number; endOffset: number; count: number };
type CovFunction = { functionName: string; ranges: CovRange[]; isBlockCoverage: boolean };
type CovScript = { scriptId: string; url: string; functions: CovFunction[] };

/** xoshiro128**, seeded through splitmix32: runs are reproducible from the seed. */
export class Rng {
  private readonly s = new Uint32Array(4);
  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (!(this.s[0] | this.s[1] | this.s[2] | this.s[3])) this.s[0] = 1;
  }
  next(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }
  /** 0 .. n-1 */
  below(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.next() / 4294967296) * n);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

const INTERESTING8 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x40, 0x10, 0x20, 0x3f, 6, 17, 58, 59, 43, 44, 60, 0x45, 0x60];
const INTERESTING16 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x0800, 0x0806, 0x86dd, 0x8100,
  14, 20, 40, 60, 64, 576, 1280, 1500, 1514, 65535 - 20, 67, 68, 546, 547, 53];
const INTERESTING32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x63825363, 0x10000, 0xffff];

/** The coverage feedback: what of the product's scripts ran since the last take. */
export class Coverage {
  private readonly session = new Session();
  private readonly scriptIds = new Map<string, number>();
  /** Per script, the source offsets ever covered (1). */
  private readonly maps: Uint8Array[] = [];
  /** Block ranges ever seen covered. */
  readonly blocks = new Set<string>();

  constructor(private readonly include: (url: string) => boolean) {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  /** Synchronous post: the in-thread session answers before post() returns. */
  private post(method: string, params?: object): any {
    let result: any;
    let error: Error | null = null;
    let done = false;
    this.session.post(method, params ?? {}, (err, res) => {
      error = err;
      result = res;
      done = true;
    });
    if (!done) throw new Error(`inspector ${method}: no synchronous answer`);
    if (error) throw error;
    return result;
  }

  private map(sid: number, end: number): Uint8Array {
    let m = this.maps[sid];
    if (!m || m.length < end) {
      const n = new Uint8Array(Math.max(end, (m?.length ?? 0) * 2));
      if (m) n.set(m);
      this.maps[sid] = m = n;
    }
    return m;
  }

  /**
   * Takes (and resets) the counters; returns the covered segments
   * ("script:start:end") that hold source offsets never covered before
   * (every covered segment with `all`), recording them if `record`.
   */
  take(record: boolean, all = false): string[] {
    const res = this.post('Profiler.takePreciseCoverage') as { result: CovScript[] };
    const fresh: string[] = [];
    for (const script of res.result) {
      if (!this.include(script.url)) continue;
      let sid = this.scriptIds.get(script.url);
      if (sid === undefined) {
        sid = this.scriptIds.size;
        this.scriptIds.set(script.url, sid);
      }
      for (const fn of script.functions) {
        const r = fn.ranges;
        if (!r.length || r[0].count === 0) continue;
        this.segments(sid, r, fresh, record, all);
      }
    }
    return fresh;
  }

  /** Flattens one function's nested ranges into covered segments (see the header). */
  private segments(sid: number, ranges: CovRange[], fresh: string[], record: boolean, all: boolean): void {
    const ends: number[] = [];
    const counts: number[] = [];
    let pos = ranges[0].startOffset;
    let segStart = -1;
    const covered = (s: number, e: number, c: number): void => {
      if (e <= s) return;
      if (c > 0) {
        if (segStart < 0) segStart = s;
      } else flush(s);
    };
    const flush = (end: number): void => {
      if (segStart < 0) return;
      const m = this.map(sid, end);
      if (all || m.subarray(segStart, end).indexOf(0) >= 0) {
        fresh.push(`${sid}:${segStart}:${end}`);
        if (record) m.fill(1, segStart, end);
      }
      segStart = -1;
    };
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i];
      if (r.count > 0) this.blocks.add(`${sid}:${r.startOffset}:${r.endOffset}`);
      while (ends.length && ends[ends.length - 1] <= r.startOffset) {
        const e = ends.pop() as number;
        covered(pos, e, counts.pop() as number);
        pos = Math.max(pos, e);
      }
      if (ends.length && pos < r.startOffset) covered(pos, r.startOffset, counts[counts.length - 1]);
      pos = Math.max(pos, r.startOffset);
      ends.push(r.endOffset);
      counts.push(r.count);
    }
    while (ends.length) {
      const e = ends.pop() as number;
      covered(pos, e, counts.pop() as number);
      pos = Math.max(pos, e);
    }
    flush(pos);
  }

  /** Records segments (of an input that joins the corpus). */
  add(segments: string[]): void {
    for (const f of segments) {
      const [sid, s, e] = f.split(':').map(Number);
      this.map(sid, e).fill(1, s, e);
    }
  }

  /** Source bytes of the product ever covered. */
  coveredBytes(): number {
    let n = 0;
    for (const m of this.maps) if (m) for (let i = 0; i < m.length; i++) n += m[i];
    return n;
  }

  close(): void {
    try {
      this.post('Profiler.stopPreciseCoverage');
      this.post('Profiler.disable');
    } catch { /* closing anyway */ }
    this.session.disconnect();
  }
}

export interface RunOptions {
  /** Stop after this many executions or this many seconds, whichever comes first. */
  execs: number;
  seconds: number;
  seed: number;
  /** Corpus inputs to start from (stored corpus), run first. */
  corpus: Uint8Array[];
  /** Called for each input before it runs (heartbeat, hang evidence). */
  onExec?: (input: Uint8Array) => void;
  /** Called for each input that joins the corpus. */
  onNew?: (input: Uint8Array) => void;
  /** Called for each new crash. */
  onCrash?: (c: Crash) => void;
  /** Stop at this many distinct crashes. */
  maxCrashes?: number;
  /** Called about once a second. */
  onProgress?: (s: EngineStats) => void;
}

export class Engine {
  readonly corpus: Uint8Array[] = [];
  private readonly dict: Uint8Array[];
  private readonly maxLen: number;
  private readonly rng: Rng;
  private readonly crashes = new Map<string, Crash>();
  private execs = 0;
  private added = 0;
  private slowestMs = 0;
  private t0 = 0;

  constructor(private readonly target: FuzzTarget, private readonly cov: Coverage, seed: number) {
    this.rng = new Rng(seed);
    this.maxLen = target.maxLen ?? 2048;
    this.dict = (target.dict ?? []).map((d) => (typeof d === 'string' ? Buffer.from(d, 'latin1') : Uint8Array.from(d)));
  }

  /** Runs one input; the crash, if it threw. */
  private exec(input: Uint8Array, o: RunOptions): Crash | null {
    this.execs++;
    o.onExec?.(input);
    try {
      this.target.fuzz(input);
      return null;
    } catch (e) {
      const err = e as Error;
      const stack = String(err?.stack ?? err);
      const frame = stack.split('\n').find((l) => l.trim().startsWith('at ')) ?? '';
      const key = `${String(err?.message ?? err).slice(0, 120)} ${frame.trim()}`;
      if (this.crashes.has(key)) return null;
      const c = { key, input: input.slice(), stack };
      this.crashes.set(key, c);
      o.onCrash?.(c);
      return c;
    }
  }

  stats(): EngineStats {
    return {
      execs: this.execs, seconds: (performance.now() - this.t0) / 1000, blocks: this.cov.blocks.size,
      coveredBytes: this.cov.coveredBytes(), corpus: this.corpus.length, added: this.added, crashes: [...this.crashes.values()],
      slowestMs: this.slowestMs,
    };
  }

  /** Runs an input alone (the counters are clean before: every run ends with a take); its new features. */
  private single(input: Uint8Array, o: RunOptions): string[] {
    const t = performance.now();
    this.exec(input, o);
    const ms = performance.now() - t;
    if (ms > this.slowestMs) this.slowestMs = ms;
    return this.cov.take(false);
  }

  private keep(input: Uint8Array, features: string[], o: RunOptions, fromRun: boolean): void {
    this.cov.add(features);
    this.corpus.push(input);
    if (fromRun) {
      this.added++;
      o.onNew?.(input);
    }
  }

  run(o: RunOptions): EngineStats {
    this.t0 = performance.now();
    const deadline = this.t0 + o.seconds * 1000;
    const maxCrashes = o.maxCrashes ?? 20;
    // the stored corpus and the seeds first: each input that covers something new is kept
    const starts = [...o.corpus, ...this.target.seeds()];
    this.cov.take(false);
    for (const input of starts) {
      const fresh = this.single(input, o);
      if (fresh.length || this.corpus.length === 0) this.keep(input, fresh, o, false);
    }
    if (this.corpus.length === 0) this.corpus.push(new Uint8Array(0));
    let batchSize = 1;
    let nextProgress = performance.now() + 1000;
    const batch: Uint8Array[] = [];
    while (this.execs < o.execs && this.crashes.size < maxCrashes) {
      const now = performance.now();
      if (now >= deadline) break;
      if (now >= nextProgress) {
        nextProgress = now + 1000;
        o.onProgress?.(this.stats());
      }
      batch.length = 0;
      const n = Math.min(batchSize, o.execs - this.execs);
      for (let i = 0; i < n; i++) {
        const m = this.mutate(this.pick());
        batch.push(m);
        this.exec(m, o);
      }
      const fresh = this.cov.take(false);
      if (!fresh.length) {
        if (batchSize < 256) batchSize *= 2;
        continue;
      }
      if (batch.length === 1) {
        this.keep(batch[0], fresh, o, true);
        continue;
      }
      // who brought it: each input of the batch again, alone
      let found = false;
      for (const m of batch) {
        const f = this.single(m, o);
        if (f.length) {
          this.keep(m, f, o, true);
          found = true;
        }
      }
      // nothing new alone (code that runs only after others warmed it up): recorded, not chased
      if (!found) this.cov.add(fresh);
      batchSize = Math.max(1, batchSize >> 3);
    }
    return this.stats();
  }

  /**
   * The corpus cut down to inputs that each bring a feature none kept
   * before them (greedy, most features and then shortest first): what is
   * worth storing.
   */
  minimize(o: RunOptions): Uint8Array[] {
    this.cov.take(false);
    const each = this.corpus.map((input) => {
      this.exec(input, o);
      return { input, features: this.cov.take(false, true) };
    });
    each.sort((a, b) => b.features.length - a.features.length || a.input.length - b.input.length);
    const have = new Set<string>();
    const kept: Uint8Array[] = [];
    for (const e of each) {
      if (e.features.some((f) => !have.has(f))) {
        for (const f of e.features) have.add(f);
        kept.push(e.input);
      }
    }
    return kept;
  }

  private pick(): Uint8Array {
    const c = this.corpus;
    // a third of the time one of the 16 newest: fresh finds get explored first
    if (this.rng.below(3) === 0) return c[c.length - 1 - this.rng.below(Math.min(16, c.length))];
    return c[this.rng.below(c.length)];
  }

  /** 1-8 stacked mutations of src (src is not changed). */
  mutate(src: Uint8Array): Uint8Array {
    const r = this.rng;
    let b = Array.from(src);
    const rounds = 1 << r.below(4);
    for (let k = 0; k < rounds; k++) b = this.mutateOnce(b);
    if (b.length > this.maxLen) b.length = this.maxLen;
    return Uint8Array.from(b);
  }

  private mutateOnce(b: number[]): number[] {
    const r = this.rng;
    const n = b.length;
    const at = (): number => r.below(n);
    switch (r.below(n ? 15 : 2)) {
      case 0: { // insert random bytes
        const i = r.below(n + 1);
        const k = 1 + r.below(r.below(4) === 0 ? 64 : 4);
        b.splice(i, 0, ...Array.from({ length: k }, () => r.below(256)));
        return b;
      }
      case 1: { // insert a dictionary token or an interesting byte
        const i = r.below(n + 1);
        if (this.dict.length && r.below(2)) b.splice(i, 0, ...this.dict[r.below(this.dict.length)]);
        else b.splice(i, 0, INTERESTING8[r.below(INTERESTING8.length)]);
        return b;
      }
      case 2: b[at()] ^= 1 << r.below(8); return b;
      case 3: b[at()] = r.below(256); return b;
      case 4: b[at()] = INTERESTING8[r.below(INTERESTING8.length)]; return b;
      case 5: { // byte arithmetic
        const i = at();
        b[i] = (b[i] + (r.below(2) ? 1 : -1) * (1 + r.below(16))) & 0xff;
        return b;
      }
      case 6: { // big-endian (mostly) 16-bit value or arithmetic: lengths, ports, types
        if (n < 2) return b;
        const i = r.below(n - 1);
        let v: number;
        if (r.below(2)) v = INTERESTING16[r.below(INTERESTING16.length)];
        else if (r.below(2)) v = ((b[i] << 8) | b[i + 1]) + (r.below(2) ? 1 : -1) * (1 + r.below(32));
        else v = n - i + r.below(9) - 4; // "length from here"
        v &= 0xffff;
        if (r.below(4) === 0) { b[i] = v & 0xff; b[i + 1] = v >>> 8; } else { b[i] = v >>> 8; b[i + 1] = v & 0xff; }
        return b;
      }
      case 7: { // 32-bit value
        if (n < 4) return b;
        const i = r.below(n - 3);
        const v = r.below(2) ? INTERESTING32[r.below(INTERESTING32.length)] : r.next();
        b[i] = v >>> 24; b[i + 1] = (v >>> 16) & 0xff; b[i + 2] = (v >>> 8) & 0xff; b[i + 3] = v & 0xff;
        return b;
      }
      case 8: { // delete a range
        const i = at();
        b.splice(i, 1 + r.below(Math.min(n - i, r.below(4) === 0 ? 64 : 8)));
        return b;
      }
      case 9: { // copy a chunk over another place
        const from = at();
        const to = at();
        const k = 1 + r.below(Math.min(32, n - Math.max(from, to)));
        const chunk = b.slice(from, from + k);
        for (let i = 0; i < chunk.length; i++) b[to + i] = chunk[i];
        return b;
      }
      case 10: { // duplicate a chunk in place
        const from = at();
        const k = 1 + r.below(Math.min(32, n - from));
        b.splice(r.below(n + 1), 0, ...b.slice(from, from + k));
        return b;
      }
      case 11: { // overwrite with a dictionary token
        if (!this.dict.length) { b[at()] = r.below(256); return b; }
        const d = this.dict[r.below(this.dict.length)];
        const i = at();
        for (let j = 0; j < d.length && i + j < n; j++) b[i + j] = d[j];
        return b;
      }
      case 12: { // splice: a prefix of this, the rest of another entry
        const o = this.corpus[r.below(this.corpus.length)];
        if (!o.length) return b;
        const cut = r.below(n + 1);
        const from = r.below(o.length);
        return b.slice(0, cut).concat(Array.from(o.subarray(from)));
      }
      case 13: { // splice: insert a chunk of another entry
        const o = this.corpus[r.below(this.corpus.length)];
        if (!o.length) return b;
        const from = r.below(o.length);
        const k = 1 + r.below(Math.min(64, o.length - from));
        b.splice(r.below(n + 1), 0, ...o.subarray(from, from + k));
        return b;
      }
      default: // truncate
        b.length = r.below(n + 1);
        return b;
    }
  }
}

/**
 * Long seeded-PRNG sequences with poison and canaries (ringbuf.js style).
 *
 * The data area starts filled with POISON. Whenever the consumer releases
 * space, the test re-poisons exactly the released bytes (from the HEAD delta,
 * which is unambiguous modulo 2 * capacity). So:
 * - every region beginWrite() hands out must be all POISON, or the ring gave
 *   away bytes the consumer had not released;
 * - the alignment padding after each record's data is never written by the
 *   producer, so it must still be POISON when the record is read (a canary
 *   against a neighbour written over it);
 * - each record's content is a pattern derived from its sequence number.
 * Each step is also compared with the reference model.
 */
import test from 'ava';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { RING_DATA, RING_HDR, REC_KIND, align8 } from '../../src/shared/ring/layout';
import { RingModel } from './_model';
import { prng, mix, fillPattern, checkPattern } from './_util';

const POISON = 0xa5;

function allPoison(u8: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to; i++) if (u8[i] !== POISON) return i;
  return -1;
}

function run(seed: number, cap: number, steps: number): { records: number; wraps: number; fulls: number } {
  const sab = FrameRing.allocate(cap);
  const p = new FrameRing(sab, { debug: true });
  const c = new FrameRing(sab, { debug: true });
  const m = new RingModel(cap);
  const u8 = p.u8;
  u8.fill(POISON, RING_DATA);
  const rnd = prng(seed);
  const fail = (msg: string): never => {
    throw new Error(`seed ${seed} cap ${cap}: ${msg}`);
  };
  let seq = 0, popped = 0, wraps = 0, fulls = 0, grants = 0;
  const randLen = (): number => {
    const r = rnd() % 100;
    const max = r < 70 ? 128 : r < 95 ? 2048 : cap - 16;
    return rnd() % (Math.min(max, cap - 16) + 1);
  };
  for (let step = 0; step < steps; step++) {
    // Producer: a batch of records, stopping at the first refusal.
    const batch = 1 + (rnd() % 16);
    for (let i = 0; i < batch; i++) {
      const len = randLen();
      const before = p.writeOffset;
      const d = p.beginWrite(len);
      const md = m.beginWrite(len);
      if (d !== (md < 0 ? -1 : RING_DATA + md)) fail(`beginWrite(${len}) = ${d}, model ${md}`);
      if (d < 0) {
        fulls++;
        p.waitForSpace();
        m.waiting = true;
        break;
      }
      if (d - 16 < RING_DATA + before) wraps++;
      const bad = allPoison(u8, d - 16, d + align8(len));
      if (bad >= 0) fail(`record ${seq} granted unreleased byte at offset ${bad - RING_DATA}`);
      if ((grants++ & 63) === 0) {
        const bad2 = allPoison(u8, d - 16, d - 16 + p.contiguousFree());
        if (bad2 >= 0) fail(`free region holds unreleased byte at offset ${bad2 - RING_DATA}`);
      }
      const skip = rnd() % 10 === 0;
      const kind = skip ? REC_KIND.SKIP : rnd() % 4;
      fillPattern(u8, p.i32, d, len, mix(seed, seq));
      p.endWrite(len, kind, seq, len);
      m.endWrite(len, kind, seq, len);
      seq++;
    }
    if (rnd() % 10 < 7 && p.publish() !== m.publish()) fail('publish');
    // Consumer: up to 20 records.
    const n = rnd() % 21;
    for (let i = 0; i < n; i++) {
      const d = c.peek();
      const s = m.peek();
      if (d !== (s ? RING_DATA + m.offset(s.pos) + 16 : -1)) fail(`peek = ${d}, model ${s?.pos}`);
      if (!s) break;
      const len = c.recLen;
      if (len !== s.len || c.recKind !== s.kind || c.recMeta1 !== s.meta1 || c.recMeta2 !== len)
        fail(`header of record ${s.meta1}`);
      const at = checkPattern(u8, c.i32, d, len, mix(seed, c.recMeta1));
      if (at >= 0) fail(`record ${c.recMeta1} (len ${len}) differs at byte ${at}`);
      const canary = allPoison(u8, d + len, d + align8(len));
      if (canary >= 0) fail(`canary after record ${c.recMeta1} overwritten`);
      c.consume();
      m.consume();
      popped++;
    }
    if (rnd() % 10 < 8) {
      const h0 = Atomics.load(c.i32, RING_HDR.HEAD);
      if (c.release() !== m.release()) fail('release / waiting flag');
      const h1 = Atomics.load(c.i32, RING_HDR.HEAD);
      // Poison exactly the released bytes, circularly.
      let delta = (h1 - h0 + 2 * cap) % (2 * cap);
      let off = h0 >= cap ? h0 - cap : h0;
      while (delta > 0) {
        const k = Math.min(delta, cap - off);
        u8.fill(POISON, RING_DATA + off, RING_DATA + off + k);
        delta -= k;
        off = 0;
      }
    }
    if (Atomics.load(c.i32, RING_HDR.HEAD) !== m.wire(m.R)) fail('HEAD');
    if (Atomics.load(c.i32, RING_HDR.TAIL) !== m.wire(m.pub)) fail('TAIL');
  }
  return { records: popped, wraps, fulls };
}

for (const cap of [264, 4096, 65552, 200_000]) {
  test(`seeded sequences with poison and canaries, capacity ${cap}`, (t) => {
    let records = 0, wraps = 0, fulls = 0;
    for (const seed of [1, 2, 3, 0xdeadbeef]) {
      const r = run(seed, cap, 6_000);
      records += r.records;
      wraps += r.wraps;
      fulls += r.fulls;
    }
    t.true(records > 20_000, `records ${records}`);
    t.true(wraps > 10, `wraps ${wraps}`);
    t.true(fulls > 10, `full-ring refusals ${fulls}`);
    t.log(`${records} records, ${wraps} wraps, ${fulls} refusals`);
  });
}

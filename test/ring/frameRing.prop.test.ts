/**
 * Property test: random sequences of producer and consumer operations on a
 * FrameRing of random capacity give the same answers as the reference model
 * (_model.ts) — offsets, success or failure of every beginWrite, the records
 * seen, HEAD/TAIL values and the waiting flag — and every record comes out
 * with its content intact.
 */
import type { Arbitrary } from 'fast-check';
import { testProp, fc } from '../_lib/fcAva';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { RING_DATA, RING_HDR, REC_KIND, align8 } from '../../src/shared/ring/layout';
import { RingModel } from './_model';
import { fillPattern, checkPattern, mix } from './_util';

type Op =
  | { t: 'write'; size: number; big: boolean; skip: boolean }
  | { t: 'pack'; sizes: number[] }
  | { t: 'publish' }
  | { t: 'pop'; n: number }
  | { t: 'release' }
  | { t: 'wait' }
  /** A record that leaves exactly 8 * k bytes before the end of the data area. */
  | { t: 'tail'; k: number };

const opArb: Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('write' as const), size: fc.nat(), big: fc.boolean(), skip: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('pack' as const), sizes: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }) }) },
  { weight: 3, arbitrary: fc.constant({ t: 'publish' as const }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('pop' as const), n: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 3, arbitrary: fc.constant({ t: 'release' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'wait' as const }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('tail' as const), k: fc.integer({ min: 0, max: 3 }) }) },
);

function eq(a: unknown, b: unknown, what: string): void {
  if (a !== b) throw new Error(`${what}: ring ${String(a)} != model ${String(b)}`);
}

testProp(
  'FrameRing agrees with the model on random operation sequences',
  [fc.integer({ min: 8, max: 300 }), fc.array(opArb, { minLength: 1, maxLength: 400, size: 'max' })],
  (t, cap8, ops) => {
    const cap = cap8 * 8;
    const sab = FrameRing.allocate(cap);
    const p = new FrameRing(sab, { debug: true });
    const c = new FrameRing(sab, { debug: true });
    const m = new RingModel(cap);
    const maxData = cap - 16;
    let seq = 0;
    const lenOf = (size: number, big: boolean): number => (big ? size % (maxData + 1) : size % Math.min(65, maxData + 1));
    const write = (len: number, skip: boolean): void => {
      const kind = skip ? REC_KIND.SKIP : seq % 5;
      fillPattern(p.u8, p.i32, p.writeDataOffset, len, mix(1, seq));
      p.endWrite(len, kind, seq, ~seq);
      m.endWrite(len, kind, seq, ~seq);
      seq++;
    };
    for (const op of ops) {
      switch (op.t) {
        case 'write': {
          const len = lenOf(op.size, op.big);
          const d = p.beginWrite(len);
          const md = m.beginWrite(len);
          eq(d, md < 0 ? -1 : RING_DATA + md, `beginWrite(${len})`);
          if (d >= 0) write(len, op.skip);
          break;
        }
        case 'pack': {
          const lens = op.sizes.map((s) => s % Math.min(200, maxData + 1));
          const minFree = Math.max(...lens);
          const d = p.beginWrite(minFree);
          const md = m.beginWrite(minFree);
          eq(d, md < 0 ? -1 : RING_DATA + md, `beginWrite(${minFree}) for a pack`);
          if (d < 0) break;
          // Lay the batch out as native.readFrames(…, hdrRoom 16, …, minFree) would.
          let cursor = d - 16;
          const end = cursor + p.contiguousFree();
          const packed: number[] = [];
          for (const len of lens) {
            if (end - cursor < 16 + minFree) break;
            packed.push(cursor + 16);
            cursor = align8(cursor + 16 + len);
          }
          for (let i = 0; i < packed.length; i++) {
            eq(p.writeDataOffset, packed[i], 'packed record offset');
            write(lens[i], false);
          }
          break;
        }
        case 'tail': {
          const len = cap - p.writeOffset - 16 - 8 * op.k;
          if (len < 0) break;
          const d = p.beginWrite(len);
          const md = m.beginWrite(len);
          eq(d, md < 0 ? -1 : RING_DATA + md, `beginWrite(${len}) to the end`);
          if (d >= 0) write(len, false);
          break;
        }
        case 'publish':
          eq(p.publish(), m.publish(), 'publish');
          break;
        case 'pop':
          for (let i = 0; i < op.n; i++) {
            const d = c.peek();
            const s = m.peek();
            eq(d, s ? RING_DATA + m.offset(s.pos) + 16 : -1, 'peek');
            if (!s) break;
            eq(c.recLen, s.len, 'recLen');
            eq(c.recKind, s.kind, 'recKind');
            eq(c.recMeta1, s.meta1, 'recMeta1');
            eq(c.recMeta2, s.meta2, 'recMeta2');
            eq(checkPattern(c.u8, c.i32, d, s.len, mix(1, s.meta1)), -1, `content of record ${s.meta1}`);
            c.consume();
            m.consume();
          }
          break;
        case 'release':
          eq(c.release(), m.release(), 'release');
          break;
        case 'wait':
          p.waitForSpace();
          m.waiting = true;
          break;
      }
      eq(p.writeOffset, m.offset(m.P), 'producer cursor');
      eq(Atomics.load(p.i32, RING_HDR.TAIL), m.wire(m.pub), 'TAIL');
      eq(Atomics.load(p.i32, RING_HDR.HEAD), m.wire(m.R), 'HEAD');
      eq(p.contiguousFree(), m.contiguousFree(), 'contiguousFree');
      eq(c.usedBytes(), m.pub - m.R, 'usedBytes');
      eq(c.isEmpty(), m.pub === m.R, 'isEmpty');
    }
    t.pass();
  },
  { numRuns: 500 },
);

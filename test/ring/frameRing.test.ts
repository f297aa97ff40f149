/**
 * Single-thread unit tests of FrameRing: layout, wrap (marked and implicit),
 * SKIP, exact fill, full ring, zero-length records, packed writes laid out
 * like native.readFrames, visibility only after publish, the waiting flag.
 */
import test from 'ava';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { RING_DATA, RING_HDR, REC, REC_KIND, recordSize, align8 } from '../../src/shared/ring/layout';
import { native, E } from '../../src/shared/native';
import { AF_INET, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_CLOEXEC } from '../../src/shared/linux';
import { fillPattern, checkPattern, mix, prng } from './_util';

function ring(capacity: number): FrameRing {
  return new FrameRing(FrameRing.allocate(capacity), { debug: true });
}

/** Producer and consumer views of one buffer, as two threads would have. */
function pair(capacity: number): { p: FrameRing; c: FrameRing } {
  const sab = FrameRing.allocate(capacity);
  return { p: new FrameRing(sab, { debug: true }), c: new FrameRing(sab, { debug: true }) };
}

function push(p: FrameRing, len: number, kind: number, n: number): number {
  const d = p.beginWrite(len);
  if (d < 0) return d;
  fillPattern(p.u8, p.i32, d, len, mix(7, n));
  p.endWrite(len, kind, n, ~n);
  return d;
}

/** Pops one record and checks it against push(…, n); returns its data offset. */
function pop(t: import('ava').ExecutionContext, c: FrameRing, len: number, kind: number, n: number): number {
  const d = c.peek();
  t.true(d >= 0, `record ${n} visible`);
  t.is(c.recLen, len);
  t.is(c.recKind, kind);
  t.is(c.recMeta1, n);
  t.is(c.recMeta2, ~n);
  t.is(checkPattern(c.u8, c.i32, d, len, mix(7, n)), -1, `record ${n} content`);
  c.consume();
  return d;
}

test('layout: header lines, data area and record packing', (t) => {
  t.is(RING_DATA % 64, 0);
  const fields = Object.values(RING_HDR).filter((v) => v % 16 === 0);
  t.is(new Set(fields.map((v) => v >> 4)).size, fields.length, 'one field per 64-byte line');
  t.is(align8(0), 0);
  t.is(align8(1), 8);
  t.is(recordSize(0), 16);
  t.is(recordSize(1), 24);
  t.is(recordSize(8), 24);
  t.is(recordSize(9), 32);
});

test('allocate validates the capacity and the constructor the buffer', (t) => {
  t.throws(() => FrameRing.allocate(100), { instanceOf: RangeError });
  t.throws(() => FrameRing.allocate(56), { instanceOf: RangeError });
  t.throws(() => FrameRing.allocate(2 ** 31), { instanceOf: RangeError });
  t.throws(() => new FrameRing(new SharedArrayBuffer(1024)), { instanceOf: TypeError });
  const r = ring(1000);
  t.is(r.capacity, 1000);
  t.is(r.u8.byteLength, RING_DATA + 1000);
  t.true(r.isEmpty());
});

test('records come out in order with their header fields and data', (t) => {
  const { p, c } = pair(4096);
  t.is(push(p, 100, 3, 0), RING_DATA + 16);
  t.is(push(p, 5, 0, 1), RING_DATA + recordSize(100) + 16);
  t.true(p.publish());
  t.false(p.publish(), 'nothing new to publish');
  t.is(p.records, 2);
  pop(t, c, 100, 3, 0);
  t.is(c.peek(), RING_DATA + recordSize(100) + 16);
  t.is(c.peek(), RING_DATA + recordSize(100) + 16, 'peek is idempotent');
  pop(t, c, 5, 0, 1);
  t.is(c.peek(), -1);
  t.false(c.isEmpty(), 'not released yet');
  t.false(c.release(), 'producer was not waiting');
  t.true(c.isEmpty());
  t.false(c.release(), 'nothing new to release');
});

test('nothing is visible before publish: a reader never sees a half-written batch', (t) => {
  const { p, c } = pair(1024);
  const d = p.beginWrite(64);
  p.u8.fill(0xee, d, d + 64);
  t.is(c.peek(), -1, 'data written, header not');
  p.endWrite(64, 1);
  t.is(c.peek(), -1, 'header written, not published');
  push(p, 10, 2, 5);
  t.is(c.peek(), -1);
  t.is(c.usedBytes(), 0);
  p.publish();
  t.is(c.peek(), d);
  t.is(c.recLen, 64);
  c.consume();
  pop(t, c, 10, 2, 5);
  // Records ended after a publish stay invisible until the next one.
  push(p, 20, 2, 6);
  t.is(c.peek(), -1);
  p.publish();
  pop(t, c, 20, 2, 6);
});

test('zero-length records take 16 bytes and carry their meta', (t) => {
  const { p, c } = pair(64);
  for (let i = 0; i < 4; i++) t.true(push(p, 0, i, i) >= 0);
  t.is(push(p, 0, 9, 9), -1, '64-byte ring holds four empty records');
  p.publish();
  t.is(c.usedBytes(), 64);
  for (let i = 0; i < 4; i++) pop(t, c, 0, i, i);
  t.is(c.peek(), -1);
  c.release();
  t.true(p.isEmpty());
});

test('exact fill: a full ring is unambiguous and refuses even an empty record', (t) => {
  const { p, c } = pair(256);
  // 4 records of 48 data bytes = 4 * 64 = 256 bytes.
  for (let i = 0; i < 4; i++) t.is(push(p, 48, 0, i), RING_DATA + i * 64 + 16);
  t.is(p.contiguousFree(), 0);
  t.is(p.beginWrite(0), -1);
  p.publish();
  t.is(c.usedBytes(), 256, 'full, not empty');
  t.false(c.isEmpty());
  pop(t, c, 48, 0, 0);
  t.is(p.beginWrite(0), -1, 'consumed but not released');
  c.release();
  t.is(p.beginWrite(48), RING_DATA + 16, 'wraps to 0 once the first record is released');
  p.endWrite(48, 0, 4, ~4);
  fillPattern(p.u8, p.i32, RING_DATA + 16, 48, mix(7, 4));
  p.publish();
  for (let i = 1; i <= 4; i++) pop(t, c, 48, 0, i);
  t.is(c.peek(), -1);
});

test('full ring is back-pressure: -1 and a drop count, never an exception', (t) => {
  const { p } = pair(128);
  t.true(push(p, 100, 0, 0) >= 0);
  t.is(p.beginWrite(100), -1);
  t.false(p.tryPush(new Uint8Array(100), 0, 100, 0));
  p.countDrop();
  p.countDrop(2);
  t.is(p.drops, 3);
  t.throws(() => p.beginWrite(128 - 15), { instanceOf: RangeError }, 'larger than any ring slot');
  t.notThrows(() => p.beginWrite(128 - 16));
});

test('wrap: a WRAP marker ends the lap and the record continues at offset 0', (t) => {
  const { p, c } = pair(256);
  t.true(push(p, 184, 0, 0) >= 0); // 200 bytes; 56 remain at the end
  p.publish();
  pop(t, c, 184, 0, 0);
  c.release();
  t.is(p.beginWrite(40), RING_DATA + 200 + 16, '56 bytes suffice for 16 + 40');
  t.is(p.beginWrite(48), RING_DATA + 16, 'needs 64: wraps');
  const marker = (RING_DATA + 200) >> 2;
  t.is(p.i32[marker + REC.KIND], REC_KIND.WRAP);
  fillPattern(p.u8, p.i32, RING_DATA + 16, 48, mix(7, 1));
  p.endWrite(48, 1, 1, ~1);
  t.is(p.writeOffset, 64);
  t.is(c.peek(), -1, 'wrap not published yet');
  p.publish();
  t.is(pop(t, c, 48, 1, 1), RING_DATA + 16);
  c.release();
  t.true(c.isEmpty());
});

test('implicit wrap when fewer than 16 bytes remain at the end', (t) => {
  const { p, c } = pair(256);
  t.true(push(p, 232, 0, 0) >= 0); // 248 bytes; 8 remain
  t.is(p.writeOffset, 248);
  p.publish();
  pop(t, c, 232, 0, 0);
  c.release();
  const before = p.u8.slice(RING_DATA + 248, RING_DATA + 256);
  t.is(p.beginWrite(0), RING_DATA + 16);
  t.deepEqual(p.u8.slice(RING_DATA + 248, RING_DATA + 256), before, 'no marker written in the 8-byte tail');
  p.endWrite(0, 2, 1, ~1);
  p.publish();
  t.is(pop(t, c, 0, 2, 1), RING_DATA + 16);
  t.is(c.readOffset, 16);
});

test('wrap waits until the end of the ring is released, then for the start', (t) => {
  const { p, c } = pair(256);
  push(p, 80, 0, 0); // [0, 96)
  push(p, 80, 0, 1); // [96, 192)
  push(p, 48, 0, 2); // [192, 256): the cursor laps to 0
  p.publish();
  pop(t, c, 80, 0, 0);
  c.release(); // head at 96
  t.is(push(p, 72, 0, 3), RING_DATA + 16, 'second lap starts at 0'); // [0, 88)
  p.publish();
  t.is(p.beginWrite(200), -1, 'needs a wrap, but the end still holds records 1 and 2');
  t.is(p.writeOffset, 88, 'no WRAP written over unread records');
  pop(t, c, 80, 0, 1);
  pop(t, c, 48, 0, 2);
  c.release(); // head at 0 of the second lap: the end is free, the start is not
  t.is(p.beginWrite(200), -1, 'the end is free, so it wraps; the start holds record 3');
  t.is(p.writeOffset, 0, 'WRAP written at 88');
  t.is(p.i32[((RING_DATA + 88) >> 2) + REC.KIND], REC_KIND.WRAP);
  pop(t, c, 72, 0, 3);
  c.release();
  t.is(p.beginWrite(200), -1, 'the WRAP gap is not released until the consumer passes it');
  p.publish();
  t.is(c.peek(), -1);
  c.release();
  t.is(p.beginWrite(200), RING_DATA + 16);
  t.is(p.contiguousFree(), 256);
});

test('a big record in an empty ring whose cursor is mid-way: wrap, publish, release, retry', (t) => {
  const { p, c } = pair(256);
  t.true(push(p, 112, 0, 0) >= 0); // [0, 128)
  p.publish();
  pop(t, c, 112, 0, 0);
  c.release();
  // Empty, cursor at 128: a 200-byte record fits neither the end nor the start yet.
  t.is(p.beginWrite(200), -1);
  t.is(p.writeOffset, 0, 'WRAP written locally');
  p.waitForSpace();
  t.true(p.publish(), 'the WRAP marker is published');
  t.is(c.peek(), -1, 'consumer passes the WRAP');
  t.true(c.release(), 'and releases it, telling the producer to wake');
  t.false(c.release());
  t.is(p.beginWrite(200), RING_DATA + 16);
  t.is(p.contiguousFree(), 256);
});

test('SKIP records are passed over and their space reclaimed', (t) => {
  const { p, c } = pair(512);
  push(p, 30, 0, 0);
  push(p, 50, REC_KIND.SKIP, 1);
  push(p, 0, REC_KIND.SKIP, 2);
  push(p, 7, 4, 3);
  push(p, 60, REC_KIND.SKIP, 4);
  p.publish();
  t.is(p.records, 2, 'SKIP records are not counted');
  pop(t, c, 30, 0, 0);
  pop(t, c, 7, 4, 3);
  t.is(c.peek(), -1);
  c.release();
  t.true(c.isEmpty(), 'trailing SKIP released too');
});

test('packed multi-record writes laid out like readFrames', (t) => {
  const { p, c } = pair(4096);
  const rnd = prng(3);
  let n = 0;
  for (let round = 0; round < 50; round++) {
    const first = p.beginWrite(600);
    if (first < 0) break;
    // Pack as native.readFrames does: frame at cursor + 16, cursor to align8.
    let cursor = first - 16;
    const end = cursor + p.contiguousFree();
    const lens: number[] = [];
    const offs: number[] = [];
    while (end - cursor >= 16 + 600) {
      const len = rnd() % 601;
      fillPattern(p.u8, p.i32, cursor + 16, len, mix(7, n + lens.length));
      lens.push(len);
      offs.push(cursor + 16);
      cursor = align8(cursor + 16 + len);
    }
    for (let i = 0; i < lens.length; i++) {
      t.is(p.writeDataOffset, offs[i], 'endWrite walks the same offsets');
      p.endWrite(lens[i], n % 3, n, ~n);
      n++;
    }
    t.is(RING_DATA + p.writeOffset, cursor === RING_DATA + 4096 ? RING_DATA : cursor, 'cursors agree');
    p.publish();
    for (let k = n - lens.length; k < n; k++) pop(t, c, lens[k - (n - lens.length)], k % 3, k);
    c.release();
  }
  t.true(n > 100);
});

test('readFrames from a datagram socket packs straight into the ring', (t) => {
  // A UDP socket connected to itself: each read() returns one datagram.
  const fd = native.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  t.true(fd >= 0);
  const sa = new Uint8Array(16);
  sa[0] = AF_INET; // sin_family, little-endian u16
  sa.set([127, 0, 0, 1], 4);
  t.is(native.bind(fd, sa), 0);
  t.true(native.getsockname(fd, sa) >= 0);
  t.is(native.connect(fd, sa), 0);
  const { p, c } = pair(16384);
  const src = new Uint8Array(2000);
  const lens = new Int32Array(33);
  const rnd = prng(11);
  let sent = 0, got = 0;
  for (let round = 0; round < 40; round++) {
    const k = 1 + (rnd() % 12);
    for (let i = 0; i < k; i++, sent++) {
      const len = 1 + (rnd() % 1500); // read() of 0 bytes means EOF to readFrames
      for (let j = 0; j < len; j++) src[j] = (sent * 31 + j) & 0xff;
      t.is(native.write(fd, src, 0, len), len);
    }
    let d = p.beginWrite(1500);
    if (d < 0) { // never here: the consumer drains each round
      t.fail('ring full');
      break;
    }
    const room = p.contiguousFree();
    const n = native.readFrames(fd, p.u8, d - 16, room, 16, lens, 32, 1500);
    t.is(lens[n], 0, 'stopped on EAGAIN or the space limit');
    let cursor = d - 16;
    for (let i = 0; i < n; i++) {
      t.is(p.writeOffset + RING_DATA, cursor);
      p.endWrite(lens[i], 0, got + i);
      cursor = align8(cursor + 16 + lens[i]);
    }
    p.publish();
    while ((d = c.peek()) >= 0) {
      const seq = c.recMeta1;
      t.is(seq, got);
      for (let j = 0; j < c.recLen; j++) if (c.u8[d + j] !== ((seq * 31 + j) & 0xff)) { t.fail(`byte ${j} of ${seq}`); break; }
      c.consume();
      got++;
    }
    c.release();
    // Whatever did not fit this round is read in the next one.
  }
  let d: number;
  while ((d = p.beginWrite(1500)) >= 0) {
    const n = native.readFrames(fd, p.u8, d - 16, p.contiguousFree(), 16, lens, 32, 1500);
    if (n === 0) break;
    for (let i = 0; i < n; i++) p.endWrite(lens[i], 0, got + i);
    p.publish();
    while (c.peek() >= 0) { t.is(c.recMeta1, got++); c.consume(); }
    c.release();
  }
  t.is(got, sent);
  t.is(native.read(fd, src, 0, 10), -E.EAGAIN);
  native.close(fd);
});

test('waitForSpace: release() reports it once and clears it', (t) => {
  const { p, c } = pair(128);
  push(p, 100, 0, 0);
  p.publish();
  t.is(p.beginWrite(10), -1);
  p.waitForSpace();
  t.is(p.beginWrite(10), -1, 're-check after setting the flag');
  t.false(c.release(), 'nothing consumed: no wake');
  pop(t, c, 100, 0, 0);
  t.true(c.release());
  t.is(c.spaceWakes, 1);
  t.true(p.beginWrite(10) >= 0);
  push(p, 10, 0, 1);
  p.publish();
  pop(t, c, 10, 0, 1);
  t.false(c.release(), 'flag was cleared');
});

test('debug mode catches contract violations', (t) => {
  const { p, c } = pair(128);
  t.true(p.beginWrite(10) >= 0);
  t.throws(() => p.endWrite(113, 0), { message: /overruns/ });
  t.throws(() => p.endWrite(1, REC_KIND.WRAP), { message: /bad kind/ });
  t.throws(() => p.endWrite(-1, 0), { message: /bad length/ });
  t.throws(() => c.consume(), { message: /no record peeked/ });
  t.throws(() => p.beginWrite(-1), { instanceOf: RangeError });
});

test('a second view of a live ring resumes at the published positions', (t) => {
  const { p, c } = pair(256);
  push(p, 40, 0, 0);
  push(p, 40, 0, 1);
  p.publish();
  pop(t, c, 40, 0, 0);
  c.release();
  const c2 = new FrameRing(p.sab, { debug: true });
  pop(t, c2, 40, 0, 1);
  const p2 = new FrameRing(p.sab, { debug: true });
  push(p2, 8, 0, 2);
  p2.publish();
  pop(t, c2, 8, 0, 2);
});

test('rollback forgets unpublished records, reuses their space and keeps the record count', (t) => {
  const sab = FrameRing.allocate(1024);
  const p = new FrameRing(sab);
  const c = new FrameRing(sab);
  let d = p.beginWrite(100);
  p.u8.fill(1, d, d + 100);
  p.endWrite(100, 7);
  p.publish();
  d = p.beginWrite(200);
  const firstUnpublished = d;
  p.endWrite(200, -2);
  p.endWrite(50, 3);
  p.rollback();
  t.is(p.beginWrite(200), firstUnpublished, 'the space is handed out again');
  p.endWrite(20, 9);
  p.publish();
  const seen: number[] = [];
  while (c.peek() >= 0) {
    seen.push(c.recKind);
    c.consume();
  }
  t.deepEqual(seen, [7, 9], 'rolled-back records never become visible');
  t.is(p.records, 2);
});

test('unpublished lists ended user records in order across a wrap, skipping SKIP; consumerCaughtUp follows HEAD', (t) => {
  const sab = FrameRing.allocate(256);
  const p = new FrameRing(sab);
  const c = new FrameRing(sab);
  // fill most of the ring, publish and consume it so the next records wrap
  p.beginWrite(150);
  p.endWrite(150, 1);
  p.publish();
  t.false(p.consumerCaughtUp());
  t.true(c.peek() >= 0);
  c.consume();
  c.release();
  t.true(p.consumerCaughtUp());
  const offs = new Int32Array(8);
  const lens = new Int32Array(8);
  const hdrs = new Int32Array(8);
  let d = p.beginWrite(40);
  p.endWrite(40, -2);
  d = p.beginWrite(40); // wraps to the start
  const wrapped = d;
  p.endWrite(40, 5);
  p.beginWrite(8);
  p.endWrite(8, 6);
  t.is(p.unpublished(offs, lens, hdrs, 8), 2);
  t.deepEqual([offs[0], lens[0], lens[1]], [wrapped, 40, 8]);
  t.is(p.unpublished(offs, lens, hdrs, 1), -1, 'more than max');
  p.i32[hdrs[0] + 1] = -2; // rewrite the first as SKIP before publishing
  p.publish();
  const seen: number[] = [];
  while (c.peek() >= 0) {
    seen.push(c.recKind);
    c.consume();
  }
  t.deepEqual(seen, [6]);
});

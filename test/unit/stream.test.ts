/**
 * passt's stream back end on a real socket pair, without qemu (issue:
 * passt mode): frames split anywhere across reads, many frames in one
 * read, batch and ring-space limits, bad lengths, the client leaving
 * mid-frame; and on the send side many frames per sendmsg with their
 * length prefixes, partial writes resumed at the exact byte, EAGAIN, and a
 * peer that is gone.
 */
import test from 'ava';
import fc from 'fast-check';
import { StreamReader } from '../../src/workers/link/streamReader';
import { StreamBackend } from '../../src/workers/link/streamBackend';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { native, E } from '../../src/shared/native';
import { socketPair, writeAll, readAvailable } from '../helpers/socketpair';

const MAX_READ = 65536;

function frame(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (seed * 31 + i * 7) & 0xff;
  return b;
}

function prefixed(frames: Buffer[]): Buffer {
  return Buffer.concat(frames.flatMap((f) => {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(f.length);
    return [h, f];
  }));
}

function be32(n: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(n >>> 0);
  return h;
}

/** A reader side: StreamReader into a real FrameRing, collecting frames. */
class Rx {
  readonly reader = new StreamReader(MAX_READ);
  readonly ring = new FrameRing(FrameRing.allocate(1 << 20));
  readonly lens = new Int32Array(129);
  /** Frames received, in order. */
  readonly got: Buffer[] = [];
  constructor(readonly fd: number) {}

  /** One read call; returns [frames, status]. */
  read(max = 128, space?: number): [number, number] {
    const d = this.ring.beginWrite(MAX_READ);
    if (d < 0) throw new Error('ring full in test');
    const room = space ?? this.ring.contiguousFree();
    const n = this.reader.read(this.fd, this.ring, d - 16, room, this.lens, max, MAX_READ);
    let pos = d - 16;
    for (let i = 0; i < n; i++) {
      const len = this.lens[i];
      this.got.push(Buffer.from(this.ring.u8.subarray(pos + 16, pos + 16 + len)));
      this.ring.endWrite(len, 0);
      pos = (pos + 16 + len + 7) & ~7;
    }
    // hand the space straight back: the test is its own consumer
    this.ring.publish();
    while (this.ring.peek() >= 0) this.ring.consume();
    this.ring.release();
    return [n, this.lens[n]];
  }
}

test('a frame split anywhere across reads comes out whole, once', (t) => {
  const [a, b] = socketPair();
  const rx = new Rx(b);
  const f = frame(1500, 1);
  const bytes = prefixed([f]);
  // prefix one byte at a time, then the frame in uneven pieces
  const cuts = [1, 2, 3, 4, 10, 700, 1499, bytes.length];
  let prev = 0;
  for (const c of cuts) {
    writeAll(a, bytes.subarray(prev, c));
    prev = c;
    const [n, st] = rx.read();
    if (c < bytes.length) {
      t.is(n, 0, `nothing before byte ${bytes.length} (at ${c})`);
      t.is(st, 0);
      t.false(rx.reader.pending, 'waits for EPOLLIN with a partial frame');
    } else {
      t.is(n, 1);
    }
  }
  t.deepEqual(rx.got, [f]);
  native.close(a);
  native.close(b);
});

test('many frames in one read: all delivered in order; the batch limit leaves the rest pending', (t) => {
  const [a, b] = socketPair();
  const rx = new Rx(b);
  const frames = Array.from({ length: 100 }, (_, i) => frame(14 + ((i * 37) % 200), i));
  writeAll(a, prefixed(frames));
  const [n1] = rx.read(30);
  t.is(n1, 30);
  t.true(rx.reader.pending, 'buffered whole frames count as readable');
  const [n2, st2] = rx.read(128);
  t.is(n2, 70);
  t.is(st2, 0);
  t.false(rx.reader.pending);
  t.deepEqual(rx.got, frames);
  native.close(a);
  native.close(b);
});

test('a frame that does not fit the ring space stays buffered for the next call', (t) => {
  const [a, b] = socketPair();
  const rx = new Rx(b);
  const frames = [frame(1000, 1), frame(3000, 2), frame(500, 3)];
  writeAll(a, prefixed(frames));
  const [n1, st1] = rx.read(128, 16 + 1000 + 16 + 2999);
  t.is(n1, 1);
  t.is(st1, 0);
  t.true(rx.reader.pending);
  const [n2] = rx.read();
  t.is(n2, 2);
  t.deepEqual(rx.got, frames);
  native.close(a);
  native.close(b);
});

for (const bad of [0, 1, 13, 65536, 0x7fffffff, 0xffffffff]) {
  test(`length ${bad} is a protocol error after the good frames before it`, (t) => {
    const [a, b] = socketPair();
    const rx = new Rx(b);
    const good = frame(60, 9);
    writeAll(a, Buffer.concat([prefixed([good]), be32(bad), frame(100, 1)]));
    const [n, st] = rx.read();
    t.is(n, 1);
    t.is(st, -E.EPROTO);
    t.deepEqual(rx.got, [good]);
    t.regex(rx.reader.error ?? '', new RegExp(`bad frame length ${bad >>> 0}\\b`));
    // no further frame comes out of a desynchronised stream
    t.is(rx.read()[0], 0);
    native.close(a);
    native.close(b);
  });
}

test('lengths 14 (an Ethernet header) and 65535 are accepted', (t) => {
  const [a, b] = socketPair();
  const rx = new Rx(b);
  const frames = [frame(14, 1), frame(65535, 2), frame(14, 3)];
  const bytes = prefixed(frames);
  let off = 0;
  // a 64 KiB frame needs several socket reads
  while (off < bytes.length) {
    const r = native.write(a, bytes, off, bytes.length - off);
    if (r > 0) off += r;
    rx.read();
  }
  while (rx.got.length < 3 && rx.read()[0] > 0);
  t.deepEqual(rx.got.map((f) => f.length), [14, 65535, 14]);
  t.deepEqual(rx.got, frames);
  native.close(a);
  native.close(b);
});

test('large frames go straight into their records (one recvmsg each, only the look-ahead copied)', (t) => {
  const [a, b] = socketPair();
  const rx = new Rx(b);
  const frames = Array.from({ length: 12 }, (_, i) => frame(20000 + i * 3000, i));
  // one frame per write, as qemu sends them; the first one is read in bulk (nothing known yet)
  for (const f of frames) {
    writeAll(a, prefixed([f]));
    while (rx.read()[0] > 0 || rx.reader.pending && rx.read()[0] > 0);
  }
  t.deepEqual(rx.got, frames);
  t.is(rx.reader.directFrames, frames.length - 1);
  // after the first, each frame that arrives alone is read whole, length included, by one read()
  t.is(rx.reader.oneReadFrames, frames.length - 1);
  // and a burst of them in one go, more than the socket holds at once
  const burst = Array.from({ length: 30 }, (_, i) => frame(65535 - i, 100 + i));
  const bytes = prefixed(burst);
  let off = 0;
  while (off < bytes.length || rx.got.length < frames.length + burst.length) {
    if (off < bytes.length) {
      const r = native.write(a, bytes, off, bytes.length - off);
      if (r > 0) off += r;
    }
    rx.read();
  }
  t.deepEqual(rx.got.slice(frames.length), burst);
  t.true(rx.reader.directFrames >= frames.length - 1 + burst.length - 4, `direct: ${rx.reader.directFrames}`);
  native.close(a);
  native.close(b);
});

test('a large frame arriving in pieces is completed in its record, also when the record moved', (t) => {
  const [a, b] = socketPair();
  const reader = new StreamReader(MAX_READ);
  const ring = new FrameRing(FrameRing.allocate(1 << 20));
  const lens = new Int32Array(129);
  const f = frame(60000, 7);
  const bytes = prefixed([f]);
  const d = ring.beginWrite(MAX_READ) - 16;
  // the first piece: bulk read, then parked in the record at d
  writeAll(a, bytes.subarray(0, 20000));
  t.is(reader.read(b, ring, d, 200000, lens, 128, MAX_READ), 0);
  while (reader.read(b, ring, d, 200000, lens, 128, MAX_READ) === 0 && lens[0] === 0 && reader.pending);
  t.true(reader.midFrame);
  // more arrives; meanwhile the record moved 4096 bytes further (as after a wrap)
  writeAll(a, bytes.subarray(20000, 45000));
  t.is(reader.read(b, ring, d, 200000, lens, 128, MAX_READ), 0);
  writeAll(a, bytes.subarray(45000));
  const moved = d + 4096;
  let n = 0;
  for (let i = 0; i < 5 && n === 0; i++) n = reader.read(b, ring, moved, 200000, lens, 128, MAX_READ);
  t.is(n, 1);
  t.is(lens[0], f.length);
  t.true(Buffer.from(ring.u8.subarray(moved + 16, moved + 16 + f.length)).equals(f));
  t.false(reader.midFrame);
  native.close(a);
  native.close(b);
});

test('client gone mid-frame: EOF with the partial frame noted, nothing delivered', (t) => {
  const [a, b] = socketPair();
  const rx = new Rx(b);
  writeAll(a, Buffer.concat([be32(200), frame(50, 1)]));
  native.close(a);
  // a short read may end a call: EOF shows on the next one (the socket stays readable)
  let [n, st] = rx.read();
  if (st === 0) [n, st] = rx.read();
  t.is(n, 0);
  t.is(st, -E.ENODATA);
  t.true(rx.reader.midFrame);
  rx.reader.reset();
  t.false(rx.reader.midFrame);
  native.close(b);
});

test('client gone at a frame boundary: frames first, then EOF', (t) => {
  const [a, b] = socketPair();
  const rx = new Rx(b);
  writeAll(a, prefixed([frame(60, 1), frame(70, 2)]));
  native.close(a);
  const [n, st1] = rx.read();
  t.is(n, 2);
  const st = st1 === 0 ? rx.read()[1] : st1;
  t.is(st, -E.ENODATA);
  t.false(rx.reader.midFrame);
  native.close(b);
});

test('property: any frames, any split points, the same frames come out', (t) => {
  fc.assert(fc.property(
    fc.array(fc.oneof(fc.integer({ min: 14, max: 9000 }), fc.integer({ min: 14000, max: 65535 })), { minLength: 1, maxLength: 40 }),
    fc.array(fc.integer({ min: 1, max: 70000 }), { minLength: 1, maxLength: 60 }),
    (lens, pieces) => {
      const [a, b] = socketPair();
      try {
        const rx = new Rx(b);
        const frames = lens.map((l, i) => frame(l, i));
        const bytes = prefixed(frames);
        let off = 0;
        let k = 0;
        while (off < bytes.length) {
          const len = Math.min(pieces[k++ % pieces.length], bytes.length - off);
          writeAll(a, bytes.subarray(off, off + len));
          off += len;
          while (rx.read(1 + (k % 7))[0] > 0 || rx.reader.pending && rx.read()[0] > 0);
        }
        while (rx.read()[0] > 0);
        return rx.got.length === frames.length && rx.got.every((g, i) => g.equals(frames[i]));
      } finally {
        native.close(a);
        native.close(b);
      }
    }), { numRuns: 60 });
  t.pass();
});

/** Lays frames out as tap-TX sees them: each with at least 4 free bytes before it. */
function txLayout(frames: Buffer[]): { u8: Uint8Array; offs: Int32Array; lens: Int32Array } {
  const total = frames.reduce((s, f) => s + 16 + ((f.length + 7) & ~7), 0);
  const u8 = new Uint8Array(total + 16);
  const offs = new Int32Array(frames.length);
  const lens = new Int32Array(frames.length);
  let pos = 0;
  frames.forEach((f, i) => {
    offs[i] = pos + 16;
    lens[i] = f.length;
    u8.fill(0xee, pos, pos + 16);
    u8.set(f, pos + 16);
    pos += 16 + ((f.length + 7) & ~7);
  });
  return { u8, offs, lens };
}

/** Splits a received byte stream into frames by their prefixes. */
function decode(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let o = 0;
  while (o + 4 <= stream.length) {
    const l = stream.readUInt32BE(o);
    if (o + 4 + l > stream.length) break;
    out.push(stream.subarray(o + 4, o + 4 + l));
    o += 4 + l;
  }
  return out;
}

test('writer: many frames in one sendmsg, each after its big-endian length', (t) => {
  const [a, b] = socketPair();
  const frames = Array.from({ length: 50 }, (_, i) => frame(42 + i * 10, i));
  const { u8, offs, lens } = txLayout(frames);
  const w = new StreamBackend();
  t.is(w.send(a, u8, offs, lens, 0, frames.length), 50);
  const got = readAvailable(b);
  t.is(got.length, frames.reduce((s, f) => s + 4 + f.length, 0));
  t.deepEqual(decode(got), frames);
  native.close(a);
  native.close(b);
});

test('writer: partial writes resume at the exact byte (full socket, small buffers)', (t) => {
  const [a, b] = socketPair({ bufBytes: 4096 });
  const frames = Array.from({ length: 40 }, (_, i) => frame(1000 + ((i * 7919) % 30000), i));
  const { u8, offs, lens } = txLayout(frames);
  const w = new StreamBackend();
  let sent = 0;
  let zeroes = 0;
  let partialsSeen = 0;
  const parts: Buffer[] = [];
  while (sent < frames.length) {
    const n = w.send(a, u8, offs, lens, sent, frames.length - sent);
    t.true(n >= 0, `send error ${n}`);
    if (n === 0) zeroes++;
    sent += n;
    const chunk = readAvailable(b, 3000 + (sent % 5000));
    // a read that ends inside a frame shows the writer stopped mid-frame
    if (chunk.length && decode(Buffer.concat([...parts, chunk])).length < sent) partialsSeen++;
    parts.push(chunk);
  }
  for (let i = 0; i < 100; i++) parts.push(readAvailable(b));
  t.true(zeroes > 0, 'the socket filled up at least once');
  t.true(partialsSeen > 0);
  const stream = Buffer.concat(parts);
  t.is(stream.length, frames.reduce((s, f) => s + 4 + f.length, 0), 'no byte lost or repeated');
  t.deepEqual(decode(stream), frames);
  native.close(a);
  native.close(b);
});

test('writer: a peer that is gone gives -EPIPE (no SIGPIPE)', (t) => {
  const [a, b] = socketPair();
  native.close(b);
  const { u8, offs, lens } = txLayout([frame(60, 1)]);
  const w = new StreamBackend();
  const r = w.send(a, u8, offs, lens, 0, 1);
  t.true(r === -E.EPIPE || r === -E.ECONNRESET, `got ${r}`);
  native.close(a);
});

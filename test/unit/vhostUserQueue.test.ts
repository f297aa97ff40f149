/**
 * vhost-user virtqueues against a driver in plain memory (issue 14): the
 * transmit and receive paths of virtio-net with and without mergeable
 * buffers, and the malicious-descriptor suite — chains out of the memory
 * table, loops, lengths past a region, runaway indices, indirect and
 * misordered descriptors, a guest that never posts or returns buffers.
 * Each bad case must be dropped and counted, never throw, never touch a
 * byte outside the region (canaries on both sides), and leave the queue
 * usable for the next good chain where the guest's fault allows.
 */
import test from 'ava';
import fc from 'fast-check';
import { FakeGuest, GPA_BASE, pattern } from '../helpers/vhostGuest';
import { VirtioNetRx, VirtioNetTx, VNET_HDR_LEN, RX_DROPPED, NET_DROP } from '../../src/workers/link/vhostUser/net';
import { Element, POP_BAD, POP_OK, POP_EMPTY, VQ_DROP, VRING_DESC_F, SplitQueue } from '../../src/workers/link/vhostUser/virtqueue';
import { GuestMemory } from '../../src/workers/link/vhostUser/memory';
import { native } from '../../src/shared/native';

const MAX = 65535;

function txFrame(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(VNET_HDR_LEN + len);
  b.set(pattern(len, seed), VNET_HDR_LEN);
  return b;
}

test('TX: frames in order, header skipped, split chains joined, chains given back with length 0', (t) => {
  const g = new FakeGuest();
  const r = g.ring(8);
  const q = g.queue(r);
  const tx = new VirtioNetTx(q);
  const f1 = txFrame(60, 1), f2 = txFrame(1514, 2);
  const c1 = g.postChain(r, [{ len: f1.length, write: false, data: f1 }]);
  // header and frame in two descriptors, the frame itself split too
  const c2 = g.postChain(r, [
    { len: VNET_HDR_LEN, write: false, data: f2.subarray(0, VNET_HDR_LEN) },
    { len: 700, write: false, data: f2.subarray(VNET_HDR_LEN, VNET_HDR_LEN + 700) },
    { len: f2.length - VNET_HDR_LEN - 700, write: false, data: f2.subarray(VNET_HDR_LEN + 700) },
  ]);
  const dst = new Uint8Array(MAX);
  t.is(tx.takeFrame(dst, 0, MAX), 60);
  t.deepEqual(dst.subarray(0, 60), f1.subarray(VNET_HDR_LEN));
  t.is(tx.takeFrame(dst, 100, MAX), 1514);
  t.deepEqual(dst.subarray(100, 1614), f2.subarray(VNET_HDR_LEN));
  t.is(tx.takeFrame(dst, 0, MAX), 0);
  t.true(q.flush());
  t.deepEqual(g.takeUsed(r), [[c1.head, 0], [c2.head, 0]]);
  t.is(q.lastAvail, 2);
  t.true(g.canariesIntact());
});

test('RX mergeable: a 9000-byte frame over 4096-byte buffers takes three, num_buffers says so', (t) => {
  const g = new FakeGuest();
  const r = g.ring(16);
  const q = g.queue(r);
  const rx = new VirtioNetRx(q, true);
  const bufs = [0, 1, 2, 3].map(() => g.postChain(r, [{ len: 4096, write: true }]));
  const frame = pattern(9000, 7);
  t.is(rx.putFrame(frame, 0, frame.length), 1);
  t.true(q.flush());
  const used = g.takeUsed(r);
  t.deepEqual(used, [[bufs[0].head, 4096], [bufs[1].head, 4096], [bufs[2].head, 9012 - 8192]]);
  const hdr = g.bytes(bufs[0].addrs[0], VNET_HDR_LEN);
  t.is(hdr[0], 2, 'DATA_VALID');
  t.is(hdr[10] | (hdr[11] << 8), 3, 'num_buffers');
  const got = new Uint8Array(9000);
  got.set(g.bytes(bufs[0].addrs[0] + VNET_HDR_LEN, 4096 - VNET_HDR_LEN), 0);
  got.set(g.bytes(bufs[1].addrs[0], 4096), 4096 - VNET_HDR_LEN);
  got.set(g.bytes(bufs[2].addrs[0], 9012 - 8192), 8192 - VNET_HDR_LEN);
  t.deepEqual(got, frame);
  // the fourth buffer is still the guest's to give
  t.is(q.available(), 1);
  t.true(g.canariesIntact());
});

test('RX without MRG_RXBUF: one chain per frame (split buffers filled in order); a too small chain drops the frame, not the chain', (t) => {
  const g = new FakeGuest();
  const r = g.ring(8);
  const q = g.queue(r);
  const rx = new VirtioNetRx(q, false);
  const c = g.postChain(r, [{ len: 12, write: true }, { len: 2000, write: true }]);
  const frame = pattern(1500, 3);
  t.is(rx.putFrame(frame, 0, 1500), 1);
  q.flush();
  t.deepEqual(g.takeUsed(r), [[c.head, 1512]]);
  t.deepEqual(g.bytes(c.addrs[1], 1500), frame);
  t.is(g.bytes(c.addrs[0], 12)[10], 1, 'num_buffers is 1 without MRG_RXBUF (virtio 1.x §5.1.6.3.1)');
  const small = g.postChain(r, [{ len: 100, write: true }]);
  t.is(rx.putFrame(frame, 0, 1500), RX_DROPPED);
  t.is(rx.drops.get(NET_DROP.RX_TOO_BIG), 1);
  t.is(rx.putFrame(frame, 0, 80), 1);
  q.flush();
  t.deepEqual(g.takeUsed(r), [[small.head, 92]]);
});

test('RX: a guest that posts no buffers (or too few) gets nothing, loses nothing, and gets the frame once it posts', (t) => {
  const g = new FakeGuest();
  const r = g.ring(8);
  const q = g.queue(r);
  const rx = new VirtioNetRx(q, true);
  const frame = pattern(3000, 9);
  for (let i = 0; i < 1000; i++) t.is(rx.putFrame(frame, 0, 3000), 0);
  t.false(q.flush());
  const a = g.postChain(r, [{ len: 2048, write: true }]);
  t.is(rx.putFrame(frame, 0, 3000), 0, 'one buffer is not enough');
  t.is(q.lastAvail, 0, 'the buffer was put back');
  const b = g.postChain(r, [{ len: 2048, write: true }]);
  t.is(rx.putFrame(frame, 0, 3000), 1);
  q.flush();
  t.deepEqual(g.takeUsed(r), [[a.head, 2048], [b.head, 3012 - 2048]]);
  t.is(rx.drops.size, 0);
  // a guest that never takes back used buffers: we go on until the ring is empty, then wait
  for (let i = 0; i < 7; i++) g.postChain(r, [{ len: 4096, write: true }]);
  let n = 0;
  while (rx.putFrame(frame, 0, 3000) === 1) n++;
  t.is(n, 7);
  t.is(rx.putFrame(frame, 0, 3000), 0);
  t.true(g.canariesIntact());
});

/** A bad chain (set up by bad()) is dropped with reason `why`; the good chain after it still goes. */
function badChain(t: import('ava').ExecutionContext, why: string, bad: (g: FakeGuest, r: ReturnType<FakeGuest['ring']>) => number,
  opts: { givenBack: boolean } = { givenBack: true }): void {
  for (const dir of ['tx', 'rx'] as const) {
    const g = new FakeGuest();
    const r = g.ring(8);
    const q = g.queue(r);
    const head = bad(g, r);
    r.nextDesc = 4;
    const dst = new Uint8Array(MAX);
    if (dir === 'tx') {
      const tx = new VirtioNetTx(q);
      const f = txFrame(100, 5);
      const good = g.postChain(r, [{ len: f.length, write: false, data: f }]);
      t.is(tx.takeFrame(dst, 0, MAX), -1, `${why} (tx)`);
      t.is(tx.takeFrame(dst, 0, MAX), 100);
      t.deepEqual(dst.subarray(0, 100), f.subarray(VNET_HDR_LEN));
      q.flush();
      const used = g.takeUsed(r);
      t.deepEqual(used, opts.givenBack ? [[head, 0], [good.head, 0]] : [[good.head, 0]]);
    } else {
      const rx = new VirtioNetRx(q, true);
      const good = g.postChain(r, [{ len: 2048, write: true }]);
      const frame = pattern(500, 4);
      t.is(rx.putFrame(frame, 0, 500), 1, `${why} (rx)`);
      q.flush();
      const used = g.takeUsed(r);
      t.deepEqual(used, opts.givenBack ? [[head, 0], [good.head, 512]] : [[good.head, 512]]);
      t.deepEqual(g.bytes(good.addrs[0] + VNET_HDR_LEN, 500), frame);
    }
    t.is(q.drops.get(why as never), 1, `${why} counted (${dir})`);
    t.true(g.canariesIntact(), `canaries (${dir})`);
  }
}

test('malicious: a buffer outside the memory table', (t) => {
  badChain(t, VQ_DROP.OUT_OF_REGION, (g, r) => {
    g.setDesc(r, 0, GPA_BASE + g.size + 4096, 512, 0, 0);
    g.postHead(r, 0);
    return 0;
  });
});

test('malicious: a buffer below the memory table, and one at 2^64 - 1', (t) => {
  badChain(t, VQ_DROP.OUT_OF_REGION, (g, r) => {
    g.setDesc(r, 0, GPA_BASE - 16, 512, 0, 0);
    g.postHead(r, 0);
    return 0;
  });
  badChain(t, VQ_DROP.OUT_OF_REGION, (g, r) => {
    g.setDesc(r, 0, 0xffffffffffffffffn, 512, 0, 0);
    g.postHead(r, 0);
    return 0;
  });
});

test('malicious: a length running past the end of the region (and one of 4 GiB - 1)', (t) => {
  badChain(t, VQ_DROP.OUT_OF_REGION, (g, r) => {
    g.setDesc(r, 0, GPA_BASE + g.size - 100, 200, VRING_DESC_F.WRITE, 0);
    g.postHead(r, 0);
    return 0;
  });
  badChain(t, VQ_DROP.OUT_OF_REGION, (g, r) => {
    g.setDesc(r, 0, GPA_BASE, 0xffffffff, 0, 0);
    g.postHead(r, 0);
    return 0;
  });
});

test('malicious: a chain that loops (onto itself, and a cycle of three)', (t) => {
  badChain(t, VQ_DROP.LOOP, (g, r) => {
    const a = g.alloc(64);
    g.setDesc(r, 0, a, 64, VRING_DESC_F.NEXT, 0);
    g.postHead(r, 0);
    return 0;
  });
  badChain(t, VQ_DROP.LOOP, (g, r) => {
    const a = g.alloc(64);
    g.setDesc(r, 1, a, 64, VRING_DESC_F.NEXT, 2);
    g.setDesc(r, 2, a, 64, VRING_DESC_F.NEXT, 3);
    g.setDesc(r, 3, a, 64, VRING_DESC_F.NEXT, 1);
    g.postHead(r, 1);
    return 1;
  });
});

test('malicious: a next index past the table', (t) => {
  badChain(t, VQ_DROP.BAD_NEXT, (g, r) => {
    g.setDesc(r, 0, g.alloc(64), 64, VRING_DESC_F.NEXT, 8);
    g.postHead(r, 0);
    return 0;
  });
});

test('malicious: a head past the table is skipped, counted, and not given back', (t) => {
  badChain(t, VQ_DROP.BAD_HEAD, (g, r) => {
    g.postHead(r, 999);
    return 999;
  }, { givenBack: false });
});

test('malicious: an indirect descriptor (not negotiated)', (t) => {
  badChain(t, VQ_DROP.INDIRECT, (g, r) => {
    g.setDesc(r, 0, g.alloc(64), 64, VRING_DESC_F.INDIRECT, 0);
    g.postHead(r, 0);
    return 0;
  });
});

test('malicious: a readable buffer after a writable one', (t) => {
  badChain(t, VQ_DROP.ORDER, (g, r) => {
    g.setDesc(r, 0, g.alloc(64), 64, VRING_DESC_F.WRITE | VRING_DESC_F.NEXT, 1);
    g.setDesc(r, 1, g.alloc(64), 64, 0, 0);
    g.postHead(r, 0);
    return 0;
  });
});

test('malicious: wrong directions and sizes are virtio-net drops (counted, chain given back)', (t) => {
  const g = new FakeGuest();
  const r = g.ring(8);
  const q = g.queue(r);
  const tx = new VirtioNetTx(q);
  const dst = new Uint8Array(MAX);
  const w = g.postChain(r, [{ len: 100, write: true }]);
  const s = g.postChain(r, [{ len: VNET_HDR_LEN + 3, write: false }]);
  const big = g.postChain(r, [{ len: VNET_HDR_LEN + 70000, write: false }]);
  t.is(tx.takeFrame(dst, 0, MAX), -1);
  t.is(tx.takeFrame(dst, 0, MAX), -1);
  t.is(tx.takeFrame(dst, 0, MAX), -1);
  t.is(tx.takeFrame(dst, 0, MAX), 0);
  q.flush();
  t.deepEqual(g.takeUsed(r), [[w.head, 0], [s.head, 0], [big.head, 0]]);
  t.is(tx.drops.get(NET_DROP.TX_WRITABLE), 1);
  t.is(tx.drops.get(NET_DROP.TX_SHORT), 1);
  t.is(tx.drops.get(NET_DROP.TX_LONG), 1);

  const r2 = g.ring(8);
  const q2 = g.queue(r2);
  const rx = new VirtioNetRx(q2, true);
  const ro = g.postChain(r2, [{ len: 4096, write: false }]);
  const ok = g.postChain(r2, [{ len: 4096, write: true }]);
  t.is(rx.putFrame(pattern(100, 1), 0, 100), 1);
  q2.flush();
  t.deepEqual(g.takeUsed(r2), [[ro.head, 0], [ok.head, 112]]);
  t.is(rx.drops.get(NET_DROP.RX_NOT_WRITABLE), 1);
  t.true(g.canariesIntact());
});

test('malicious: a bad chain behind buffers taken for a frame that then does not fit: all given back, frame dropped', (t) => {
  const g = new FakeGuest();
  const r = g.ring(8);
  const q = g.queue(r);
  const rx = new VirtioNetRx(q, true);
  const a = g.postChain(r, [{ len: 1000, write: true }]);
  g.setDesc(r, 5, GPA_BASE + g.size, 1000, VRING_DESC_F.WRITE, 0);
  g.postHead(r, 5);
  t.is(rx.putFrame(pattern(3000, 2), 0, 3000), RX_DROPPED);
  q.flush();
  t.deepEqual(g.takeUsed(r), [[5, 0], [a.head, 0]]);
  t.is(rx.drops.get(NET_DROP.RX_LOST), 1);
  t.is(q.drops.get(VQ_DROP.OUT_OF_REGION), 1);
  // the queue goes on
  const b = g.postChain(r, [{ len: 4096, write: true }]);
  t.is(rx.putFrame(pattern(3000, 2), 0, 3000), 1);
  q.flush();
  t.deepEqual(g.takeUsed(r), [[b.head, 3012]]);
});

test('malicious: an available index run more than the queue size ahead breaks the queue, counted once', (t) => {
  const g = new FakeGuest();
  const r = g.ring(8);
  const q = g.queue(r);
  g.postChain(r, [{ len: 100, write: true }]);
  g.setAvailIdx(r, 9);
  const el = new Element(8);
  t.is(q.pop(el), POP_EMPTY);
  t.is(q.pop(el), POP_EMPTY);
  t.true(q.broken);
  t.is(q.drops.get(VQ_DROP.AVAIL_IDX), 1);
  const rx = new VirtioNetRx(q, true);
  t.is(rx.putFrame(pattern(10, 1), 0, 10), 0);
  g.setAvailIdx(r, 1);
  t.is(q.pop(el), POP_EMPTY, 'stays broken until the front end sets the queue up again');
});

test('rings outside the memory table, misaligned, or of a bad size are refused', (t) => {
  const g = new FakeGuest();
  const r = g.ring(8);
  const pos = new Int32Array(4);
  const a = { desc: g.qva(r.desc), avail: g.qva(r.avail), used: g.qva(r.used) };
  t.is(typeof SplitQueue.create(g.mem, 8, a, pos, 0), 'object');
  t.regex(SplitQueue.create(g.mem, 6, a, pos, 0) as string, /queue size/);
  t.regex(SplitQueue.create(g.mem, 8, { ...a, used: g.qva(GPA_BASE + g.size - 8) }, pos, 0) as string, /outside/);
  t.regex(SplitQueue.create(g.mem, 8, { ...a, desc: 12 }, pos, 0) as string, /outside/);
  t.regex(SplitQueue.create(g.mem, 8, { ...a, desc: a.desc + 8 }, pos, 0) as string, /misaligned/);
});

test('buffers spanning two adjacent regions are split, and read and written whole', (t) => {
  const all = new Uint8Array(8192);
  const mem = new GuestMemory([
    { gpa: 0x1000, size: 4096, qva: 0x10000, mmapOffset: 0, u8: all.subarray(0, 4096) },
    { gpa: 0x2000, size: 4096, qva: 0x20000, mmapOffset: 0, u8: all.subarray(4096) },
  ]);
  const dv = new DataView(all.buffer);
  // rings in the first region at 0x1000.., a buffer 0x1f00..0x2100
  const q = SplitQueue.create(mem, 4, { desc: 0x10000, avail: 0x10040, used: 0x10080 }, new Int32Array([0, -1, 0, 0]), 0);
  if (typeof q === 'string') return t.fail(q);
  dv.setBigUint64(0, 0x1f00n, true);
  dv.setUint32(8, 0x200, true);
  dv.setUint16(12, VRING_DESC_F.WRITE, true);
  dv.setUint16(0x40 + 4, 0, true);
  dv.setUint16(0x40 + 2, 1, true);
  const el = new Element(4);
  t.is(q.pop(el), POP_OK);
  t.is(el.nIn, 2);
  const src = pattern(0x200, 11);
  t.is(q.copyIn(el, 0, src, 0, 0x200), 0x200);
  t.deepEqual(all.subarray(0xf00, 0x1100), src);
});

test('property: any descriptor table and available ring never throws, never touches bytes outside the region', (t) => {
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 16 * 16, maxLength: 16 * 16 }),
    fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 40 }),
    fc.integer({ min: 0, max: 0xffff }),
    fc.boolean(),
    (table, heads, availIdx, mergeable) => {
      const g = new FakeGuest(1 << 16);
      const r = g.ring(16);
      const q = g.queue(r);
      // random descriptors, some of them pointing at plausible places
      g.ram.set(table, g.off(r.desc));
      for (let i = 0; i < 16; i += 3) g.setDesc(r, i, GPA_BASE + (table[i] << 8), table[i + 1] << 4, table[i + 2] & 7, table[i + 3] & 31);
      heads.forEach((h, k) => g.dv.setUint16(g.off(r.avail) + 4 + 2 * (k % 16), h & 31, true));
      g.setAvailIdx(r, heads.length > 20 ? availIdx : heads.length);
      const rx = new VirtioNetRx(q, mergeable);
      const tx = new VirtioNetTx(q);
      const dst = new Uint8Array(MAX);
      const frame = pattern(2000, 1);
      for (let i = 0; i < 50; i++) {
        const a = i % 2 ? rx.putFrame(frame, 0, 1 + (i * 97) % 2000) : tx.takeFrame(dst, 0, MAX);
        if (a === 0) break;
      }
      q.flush();
      return g.canariesIntact();
    }), { numRuns: 300 });
  t.pass();
});

test('pop() results are the documented ones', (t) => {
  t.is(POP_OK, 1);
  t.is(POP_EMPTY, 0);
  t.true(POP_BAD < 0);
});

test('native.vuCopy: segments and buffer ranges are checked again natively, nothing outside them is touched', (t) => {
  const region = (n: number) => new Uint8Array(new ArrayBuffer(n + 32), 16, n);
  const regions = [region(64), region(128)];
  const shared = new Uint8Array(new SharedArrayBuffer(256));
  const reg = new Int32Array([0, 1, 1]);
  const off = new Float64Array([60, 0, 100]);
  const len = new Int32Array([4, 8, 28]);
  shared.set(pattern(40, 3), 8);
  // 40 bytes out over three segments, skipping 2 of the first
  t.is(native.vuCopy(true, shared, 8, 40, 2, regions, reg, off, len, 0, 3), 38);
  t.deepEqual(regions[0].subarray(62, 64), shared.subarray(8, 10));
  t.deepEqual(regions[1].subarray(0, 8), shared.subarray(10, 18));
  t.deepEqual(regions[1].subarray(100, 128), shared.subarray(18, 46));
  // and back, at most len bytes
  const back = new Uint8Array(new SharedArrayBuffer(64));
  t.is(native.vuCopy(false, back, 0, 10, 1, regions, reg, off, len, 0, 3), 10);
  t.deepEqual(back.subarray(0, 10), concatU8(regions[0].subarray(61, 64), regions[1].subarray(0, 7)));
  // a segment past its region, a negative or NaN offset, a region index out of the list,
  // a buffer range past the buffer, segment ranges past the arrays: -EINVAL, nothing copied
  const bad: [Int32Array, Float64Array, Int32Array][] = [
    [new Int32Array([0]), new Float64Array([60]), new Int32Array([5])],
    [new Int32Array([1]), new Float64Array([129]), new Int32Array([0])],
    [new Int32Array([0]), new Float64Array([-1]), new Int32Array([4])],
    [new Int32Array([0]), new Float64Array([NaN]), new Int32Array([4])],
    [new Int32Array([0]), new Float64Array([2 ** 60]), new Int32Array([4])],
    [new Int32Array([2]), new Float64Array([0]), new Int32Array([4])],
    [new Int32Array([-1]), new Float64Array([0]), new Int32Array([4])],
    [new Int32Array([0]), new Float64Array([0]), new Int32Array([-4])],
  ];
  const before = regions.map((r) => new Uint8Array(r.buffer).slice());
  for (const [r, o, l] of bad) {
    t.is(native.vuCopy(true, shared, 0, 16, 0, regions, r, o, l, 0, 1), -22);
    t.is(native.vuCopy(false, shared, 0, 16, 0, regions, r, o, l, 0, 1), -22);
  }
  t.is(native.vuCopy(true, shared, 250, 16, 0, regions, reg, off, len, 0, 3), -22, 'buffer range');
  t.is(native.vuCopy(true, shared, -1, 4, 0, regions, reg, off, len, 0, 3), -22);
  t.is(native.vuCopy(true, shared, 0, 4, 0, regions, reg, off, len, 2, 2), -22, 'segments past the arrays');
  t.is(native.vuCopy(true, shared, 0, 4, 0, [regions[0], {} as Uint8Array], reg, off, len, 1, 1), -22, 'not a typed array');
  regions.forEach((r, i) => t.deepEqual(new Uint8Array(r.buffer), before[i]));
});

test('TX into a ring in shared memory, RX out of one: the same bytes (native copies)', (t) => {
  const g = new FakeGuest();
  const r = g.ring(8);
  const q = g.queue(r);
  const tx = new VirtioNetTx(q);
  const f = txFrame(5000, 9);
  g.postChain(r, [{ len: 100, write: false, data: f.subarray(0, 100) }, { len: f.length - 100, write: false, data: f.subarray(100) }]);
  const ring = new Uint8Array(new SharedArrayBuffer(8192));
  t.is(tx.takeFrame(ring, 16, 6000), 5000);
  t.deepEqual(ring.subarray(16, 5016), f.subarray(VNET_HDR_LEN));
  const r2 = g.ring(8);
  const q2 = g.queue(r2);
  const rx = new VirtioNetRx(q2, true);
  const bufs = [0, 1].map(() => g.postChain(r2, [{ len: 3000, write: true }]));
  t.is(rx.putFrame(ring, 16, 5000), 1);
  t.true(q2.flush());
  t.deepEqual(g.takeUsed(r2), [[bufs[0].head, 3000], [bufs[1].head, 5012 - 3000]]);
  t.deepEqual(concatU8(g.bytes(bufs[0].addrs[0] + VNET_HDR_LEN, 3000 - VNET_HDR_LEN), g.bytes(bufs[1].addrs[0], 2012)),
    f.subarray(VNET_HDR_LEN));
  t.true(g.canariesIntact());
});

function concatU8(...a: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(a.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of a) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

/** A connected AF_UNIX stream pair (the peeked "socket" of the in-place tests). */
function streamPair(): [number, number] {
  const fds = new Int32Array(2);
  if (native.socketpair(1 /* AF_UNIX */, 1 | 0o4000 /* SOCK_STREAM | SOCK_NONBLOCK */, 0, fds) < 0) throw new Error('socketpair');
  return [fds[0], fds[1]];
}
const MSG_PEEK = 2, MSG_DONTWAIT = 0x40;

/** One in-place batch as the TCP worker makes it: frames of `seg` payload after `hdrLen` header bytes. */
function placeBatch(rx: VirtioNetRx, fd: number, hdrLen: number, seg: number, budget: number, maxFrames = 16) {
  const reg = new Int32Array(1024), off = new Float64Array(1024), len = new Int32Array(1024), sizes = new Int32Array(64);
  rx.beginPlace();
  let nIov = 0, frames = 0, asked = 0;
  while (frames < maxFrames && asked < budget) {
    const l = Math.min(seg, budget - asked);
    if (!rx.reserve(VNET_HDR_LEN + hdrLen + l)) break;
    const k = rx.placeSegs(frames, VNET_HDR_LEN + hdrLen, l, reg, off, len, nIov, 1024);
    if (k < 0) break;
    nIov = k;
    sizes[frames++] = l;
    asked += l;
  }
  if (frames === 0) {
    rx.endPlace(0, sizes);
    return { frames: 0, r: 0 };
  }
  const r = native.vuRecv(fd, rx.q.mem.u8s, reg, off, len, nIov, MSG_PEEK | MSG_DONTWAIT);
  let left = r > 0 ? r : 0, n = 0;
  const h = new Uint8Array(hdrLen).fill(0xee);
  for (; left > 0 && n < frames; n++) {
    const l = Math.min(left, sizes[n]);
    rx.placeBytes(n, VNET_HDR_LEN, h, 0, hdrLen);
    sizes[n] = hdrLen + l;
    left -= l;
  }
  rx.endPlace(n, sizes);
  return { frames: n, r };
}

test('RX in place: recvmsg straight into mergeable buffers, frames of seg bytes, num_buffers, unused chains put back', (t) => {
  const g = new FakeGuest();
  const r = g.ring(64);
  const q = g.queue(r);
  const rx = new VirtioNetRx(q, true);
  const bufs = Array.from({ length: 40 }, () => g.postChain(r, [{ len: 4096, write: true }]));
  const [a, b] = streamPair();
  const data = pattern(20000, 11);
  t.is(native.write(b, data, 0, data.length), data.length);
  // frames of 9000 payload bytes after 54 header bytes: 9066 bytes in three buffers each; asked for 4 frames
  const got = placeBatch(rx, a, 54, 9000, 36000);
  t.is(got.r, 20000);
  t.is(got.frames, 3);
  t.true(q.flush());
  const used = g.takeUsed(r);
  // 9066 = 4096 + 4096 + 874, twice; then 2000 + 66 in one buffer
  t.deepEqual(used, [
    [bufs[0].head, 4096], [bufs[1].head, 4096], [bufs[2].head, 874],
    [bufs[3].head, 4096], [bufs[4].head, 4096], [bufs[5].head, 874],
    [bufs[6].head, 2066],
  ]);
  // the fourth frame's chains and the third's spare ones went back: the next pop is buffer 7
  t.is(q.lastAvail, 7);
  const frame = (first: number, nb: number, bytes: number) => {
    const out = new Uint8Array(bytes);
    let o = 0;
    for (let i = 0; i < nb; i++) {
      const l = Math.min(4096, bytes - o);
      out.set(g.bytes(bufs[first + i].addrs[0], l), o);
      o += l;
    }
    return out;
  };
  const f0 = frame(0, 3, 9066), f1 = frame(3, 3, 9066), f2 = frame(6, 1, 2066);
  for (const [f, nb] of [[f0, 3], [f1, 3], [f2, 1]] as [Uint8Array, number][]) {
    t.is(f[0], 2, 'DATA_VALID');
    t.is(f[10] | (f[11] << 8), nb, 'num_buffers');
    t.true(f.subarray(12, 66).every((x) => x === 0xee), 'headers');
  }
  t.deepEqual(concatU8(f0.subarray(66), f1.subarray(66), f2.subarray(66)), data, 'payload, in order');
  // peeked: the bytes are still in the socket
  const again = new Uint8Array(20000);
  t.is(native.read(a, again, 0, 20000), 20000);
  t.deepEqual(again, data);
  native.close(a);
  native.close(b);
  t.true(g.canariesIntact());
});

test('RX in place: no buffers reserves nothing; too few gives back what it took; nothing peeked puts all back', (t) => {
  const g = new FakeGuest();
  const r = g.ring(16);
  const q = g.queue(r);
  const rx = new VirtioNetRx(q, true);
  const [a, b] = streamPair();
  t.deepEqual(placeBatch(rx, a, 54, 9000, 9000), { frames: 0, r: 0 });
  // two buffers: not enough for one 9066-byte frame
  g.postChain(r, [{ len: 4096, write: true }]);
  g.postChain(r, [{ len: 4096, write: true }]);
  t.deepEqual(placeBatch(rx, a, 54, 9000, 9000), { frames: 0, r: 0 });
  t.is(q.available(), 2);
  // enough for a frame, but the socket is empty: -EAGAIN, chains put back
  g.postChain(r, [{ len: 4096, write: true }]);
  const got = placeBatch(rx, a, 54, 9000, 9000);
  t.is(got.frames, 0);
  t.is(got.r, -11);
  t.false(q.flush());
  t.is(q.available(), 3);
  // non-mergeable: one chain per frame, too small for it: not reserved (the copying way drops it)
  const rx1 = new VirtioNetRx(q, false);
  t.is(native.write(b, pattern(100, 1), 0, 100), 100);
  t.deepEqual(placeBatch(rx1, a, 54, 9000, 9000), { frames: 0, r: 0 });
  t.is(q.available(), 3);
  // but a small frame fits the first chain
  const small = placeBatch(rx1, a, 54, 1000, 100);
  t.deepEqual(small, { frames: 1, r: 100 });
  t.true(q.flush());
  t.is(g.takeUsed(r)[0][1], 12 + 54 + 100);
  native.close(a);
  native.close(b);
  t.true(g.canariesIntact());
});

test('RX in place, malicious: a bad chain ends the reservations, chains behind it go back empty, nothing read out of the regions', (t) => {
  const g = new FakeGuest();
  const r = g.ring(16);
  const q = g.queue(r);
  const rx = new VirtioNetRx(q, true);
  const good = [0, 1, 2].map(() => g.postChain(r, [{ len: 4096, write: true }]));
  // a chain out of the memory table, a read-only one, then a good one
  const bad = g.postChain(r, [{ len: 4096, write: true, gpa: GPA_BASE + g.size + 4096 }]);
  const ro = g.postChain(r, [{ len: 4096, write: false }]);
  const after = g.postChain(r, [{ len: 4096, write: true }]);
  const [a, b] = streamPair();
  const data = pattern(16000, 5);
  t.is(native.write(b, data, 0, data.length), data.length);
  // frames of 3000 payload (3066 bytes: one buffer each): three fit, the fourth meets the bad chain
  const got = placeBatch(rx, a, 54, 3000, 16000);
  t.is(got.frames, 3);
  t.is(got.r, 9000);
  t.true(q.flush());
  t.deepEqual(g.takeUsed(r), [[bad.head, 0], ...good.map((c) => [c.head, 3066])]);
  t.is(q.dropped, 1, 'out of region, counted by the queue');
  t.true(q.drops.get(VQ_DROP.OUT_OF_REGION) === 1);
  // next batch: the read-only chain is dropped and counted, nothing is put back behind it
  const got2 = placeBatch(rx, a, 54, 3000, 16000);
  t.is(got2.frames, 0);
  t.true(q.flush());
  t.deepEqual(g.takeUsed(r), [[ro.head, 0]]);
  t.is(rx.drops.get(NET_DROP.RX_NOT_WRITABLE), 1);
  // and the queue goes on with the good chain after them
  const got3 = placeBatch(rx, a, 54, 3000, 3000);
  t.is(got3.frames, 1);
  t.true(q.flush());
  t.deepEqual(g.takeUsed(r), [[after.head, 3066]]);
  native.close(a);
  native.close(b);
  t.true(g.canariesIntact());
});

test('RX in place: chains taken for frames behind a bad chain cannot be put back: given back empty', (t) => {
  const g = new FakeGuest();
  const r = g.ring(16);
  const q = g.queue(r);
  const rx = new VirtioNetRx(q, true);
  const good = [0, 1, 2].map(() => g.postChain(r, [{ len: 4096, write: true }]));
  const bad = g.postChain(r, [{ len: 4096, write: true, gpa: GPA_BASE + g.size }]);
  const [a, b] = streamPair();
  // only 1000 bytes to peek: the first frame gets them, the two others reserved for nothing
  t.is(native.write(b, pattern(1000, 2), 0, 1000), 1000);
  const got = placeBatch(rx, a, 54, 3000, 16000);
  t.deepEqual(got, { frames: 1, r: 1000 });
  t.true(q.flush());
  t.deepEqual(g.takeUsed(r), [[bad.head, 0], [good[0].head, 1066], [good[1].head, 0], [good[2].head, 0]]);
  t.is(q.available(), 0);
  native.close(a);
  native.close(b);
  t.true(g.canariesIntact());
});

test('native.vuRecv: segments checked before anything is received', (t) => {
  const regions = [new Uint8Array(64)];
  const [a, b] = streamPair();
  t.is(native.write(b, pattern(32, 1), 0, 32), 32);
  const cases: [number[], number[], number[]][] = [
    [[0], [60], [5]], [[1], [0], [4]], [[-1], [0], [4]], [[0], [-1], [4]], [[0], [NaN], [4]], [[0], [0], [-1]],
  ];
  for (const [rg, of, ln] of cases) {
    t.is(native.vuRecv(a, regions, new Int32Array(rg), new Float64Array(of), new Int32Array(ln), 1, 0), -22);
  }
  t.is(native.vuRecv(a, regions, new Int32Array(1), new Float64Array(1), new Int32Array([4]), 2, 0), -22, 'count past the arrays');
  t.is(native.vuRecv(a, regions, new Int32Array(1), new Float64Array(1), new Int32Array([4]), 0, 0), -22, 'no segment');
  t.true(regions[0].every((x) => x === 0));
  // nothing was taken from the socket
  t.is(native.vuRecv(a, regions, new Int32Array([0, 0]), new Float64Array([32, 0]), new Int32Array([32, 32]), 2, 0), 32);
  t.deepEqual(regions[0].subarray(32), pattern(32, 1));
  native.close(a);
  native.close(b);
});

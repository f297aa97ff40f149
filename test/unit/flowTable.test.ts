import test from 'ava';
import { FlowTable, INISIDE, TGTSIDE, PIF } from '../../src/shared/flow/table';

const TCP = 6;
const addr = (last: number) => {
  const a = new Uint8Array(16);
  a[10] = a[11] = 0xff;
  a.set([192, 0, 2, last], 12);
  return a;
};
const ours = addr(1);

test('indices: lowest first, a freed one is reused first, a full table refuses', (t) => {
  const ft = new FlowTable(4);
  t.deepEqual([ft.alloc(), ft.alloc(), ft.alloc()], [0, 1, 2]);
  ft.release(1);
  ft.release(0);
  t.is(ft.count, 1);
  t.deepEqual([ft.alloc(), ft.alloc(), ft.alloc(), ft.alloc()], [0, 1, 3, -1]);
  t.is(ft.count, 4);
  ft.release(3);
  t.is(ft.alloc(), 3);
  ft.release(2);
  ft.release(2); // twice: no double entry on the free stack
  t.deepEqual([ft.alloc(), ft.alloc()], [2, -1]);
});

test('hash: flow 0 side 0 is found (buckets hold reference + 1), both sides, duplicates refused', (t) => {
  const ft = new FlowTable(8);
  const f = ft.alloc();
  t.is(f, 0);
  t.true(ft.insert(f, INISIDE, TCP, PIF.TAP, ours, 0, 80, addr(2), 0, 40000));
  t.true(ft.insert(f, TGTSIDE, TCP, PIF.HOST, ours, 0, 40000, addr(3), 0, 80));
  t.is(ft.lookup(TCP, PIF.TAP, ours, 0, 80, addr(2), 0, 40000), 0);
  t.is(ft.lookup(TCP, PIF.HOST, ours, 0, 40000, addr(3), 0, 80), 1);
  t.is(ft.lookup(TCP, PIF.TAP, ours, 0, 81, addr(2), 0, 40000), -1);
  const g = ft.alloc();
  t.false(ft.insert(g, INISIDE, TCP, PIF.TAP, ours, 0, 80, addr(2), 0, 40000), 'same key as flow 0');
  t.is(ft.ourPort(f, INISIDE), 80);
  t.is(ft.epPort(f, INISIDE), 40000);
  ft.release(f);
  t.is(ft.lookup(TCP, PIF.TAP, ours, 0, 80, addr(2), 0, 40000), -1);
  t.is(ft.lookup(TCP, PIF.HOST, ours, 0, 40000, addr(3), 0, 80), -1);
});

test('hash: many flows in a small table (probe runs, deletion by backward shift) stay findable', (t) => {
  const cap = 64;
  const ft = new FlowTable(cap);
  const key = (i: number): [number, number] => [1000 + i, 20000 + ((i * 7919) % 30000)];
  const live = new Set<number>();
  for (let i = 0; i < cap; i++) {
    const f = ft.alloc();
    t.is(f, i);
    const [a, b] = key(i);
    t.true(ft.insert(f, INISIDE, TCP, PIF.TAP, ours, 0, a, addr(i & 0xff), 0, b));
    live.add(f);
  }
  // free every third, then check every key
  for (let i = 0; i < cap; i += 3) {
    ft.release(i);
    live.delete(i);
  }
  for (let i = 0; i < cap; i++) {
    const [a, b] = key(i);
    t.is(ft.lookup(TCP, PIF.TAP, ours, 0, a, addr(i & 0xff), 0, b), live.has(i) ? 2 * i : -1, `flow ${i}`);
  }
  t.is(ft.count, live.size);
});

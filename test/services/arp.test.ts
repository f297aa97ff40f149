import test from 'ava';
import { arpHandle, ARP_REPLY_LEN } from '../../src/shared/services/arp';
import { DROP, serviceContextFromConfig } from '../../src/shared/services/context';
import { ARP_REQUEST } from '../helpers/fixtures';
import { canariesIntact, concat, hex, makeConfig, START_MS } from '../helpers/frames';

const ctx = () => serviceContextFromConfig(makeConfig({}, { addr: '10.0.2.15', gateway: '10.0.2.2' }), START_MS);
function run(c: ReturnType<typeof ctx>, frame: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(60).fill(0xa5);
  const n = arpHandle(c, frame, 0, frame.length, out, 7);
  if (n === 0) { t0(out); return null; }
  if (!canariesIntact(out, 7, n)) throw new Error('wrote outside the reply');
  return out.subarray(7, 7 + n);
}
function t0(out: Uint8Array): void { if (!canariesIntact(out, 0, 0)) throw new Error('wrote without replying'); }

function request(spa: number[], tpa: number[], op = 1): Uint8Array {
  const f = ARP_REQUEST.slice();
  f[21] = op;
  f.set(spa, 28);
  f.set(tpa, 38);
  return f;
}

test('who-has 10.0.2.2 → 42-byte reply from our MAC, field by field', (t) => {
  const r = run(ctx(), ARP_REQUEST)!;
  t.is(r.length, ARP_REPLY_LEN);
  t.is(r.length, 42);
  t.deepEqual(r, hex(`
    52 54 00 12 34 56  9a 55 9a 55 9a 55  08 06
    00 01  08 00  06 04  00 02
    9a 55 9a 55 9a 55  0a 00 02 02
    52 54 00 12 34 56  0a 00 02 0f`));
});

test('any target address is answered, including addresses far away', (t) => {
  const r = run(ctx(), request([10, 0, 2, 15], [8, 8, 8, 8]))!;
  t.deepEqual([...r.subarray(28, 32)], [8, 8, 8, 8]);
});

test('a probe from 0.0.0.0 for another address is answered', (t) => {
  const r = run(ctx(), request([0, 0, 0, 0], [10, 0, 2, 2]))!;
  t.deepEqual([...r.subarray(38, 42)], [0, 0, 0, 0]);
});

test('not answered: announcements, the guest\'s own address, replies, other types', (t) => {
  const c = ctx();
  t.is(run(c, request([10, 0, 2, 15], [10, 0, 2, 15])), null);
  t.is(c.drops[DROP.ARP_ANNOUNCEMENT], 1);
  t.is(run(c, request([10, 0, 2, 99], [10, 0, 2, 99])), null, 'gratuitous ARP for another address');
  t.is(run(c, request([0, 0, 0, 0], [10, 0, 2, 15])), null, 'DAD probe for the guest address');
  t.is(c.drops[DROP.ARP_GUEST_ADDR], 1);
  t.is(run(c, request([10, 0, 2, 15], [10, 0, 2, 2], 2)), null);
  t.is(c.drops[DROP.ARP_NOT_REQUEST], 1);
  const ieee = ARP_REQUEST.slice();
  ieee[15] = 6;
  t.is(run(c, ieee), null);
  const ipx = ARP_REQUEST.slice();
  ipx[16] = 0x81; ipx[17] = 0x37;
  t.is(run(c, ipx), null);
  t.is(c.drops[DROP.ARP_UNSUPPORTED], 2);
});

test('truncated and non-ARP frames are dropped', (t) => {
  const c = ctx();
  t.is(run(c, ARP_REQUEST.subarray(0, 41)), null);
  t.is(run(c, ARP_REQUEST.subarray(0, 10)), null);
  const ip = ARP_REQUEST.slice();
  ip[13] = 0x00;
  t.is(run(c, ip), null);
  t.is(c.drops[DROP.MALFORMED], 3);
  const padded = concat(ARP_REQUEST, new Uint8Array(18));
  t.truthy(run(c, padded), 'Ethernet padding to 60 bytes is fine');
});

test('IPv4 disabled: dropped; output room too small: dropped', (t) => {
  const off = serviceContextFromConfig(makeConfig({}, { enabled: false }), START_MS);
  t.is(run(off, ARP_REQUEST), null);
  t.is(off.drops[DROP.ARP_DISABLED], 1);
  const c = ctx();
  t.is(arpHandle(c, ARP_REQUEST, 0, 42, new Uint8Array(41), 0), 0);
  t.is(arpHandle(c, ARP_REQUEST, 0, 42, new Uint8Array(100), 59), 0);
  t.is(c.drops[DROP.OUT_TOO_SMALL], 2);
});

test('our MAC follows -M', (t) => {
  const c = serviceContextFromConfig(makeConfig({ ourMac: '02:00:00:aa:bb:cc' }, { addr: '10.0.2.15' }), START_MS);
  const r = run(c, ARP_REQUEST)!;
  t.deepEqual(r.subarray(6, 12), hex('020000aabbcc'));
  t.deepEqual(r.subarray(22, 28), hex('020000aabbcc'));
});

test('the request is left untouched', (t) => {
  const f = ARP_REQUEST.slice();
  run(ctx(), f);
  t.deepEqual(f, ARP_REQUEST);
});

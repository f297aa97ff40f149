/**
 * Pure parts of the TCP worker: option clamping, MSS and send-buffer rules
 * (SPEC §4.6, §4.7), initial sequence numbers (RFC 6528, SPEC §4.8), and the
 * timer heap.
 */
import test from 'ava';
import { TcpConn, guestMss, guestWs, ourMss, sndbufEstimate, MSS_DEFAULT } from '../../src/workers/tcp/conn';
import { isnFrom, isnInput } from '../../src/workers/tcp/isn';
import { TimerHeap } from '../../src/workers/tcp/timerHeap';
import { siphash24 } from '../../src/shared/flow/siphash';
import { inanyParse } from '../../src/shared/flow/inany';

test('guest MSS: default 536, capped per family, multiple of 4', (t) => {
  t.is(guestMss(-1, true), MSS_DEFAULT);
  t.is(guestMss(1460, true), 1460);
  t.is(guestMss(1461, true), 1460);
  t.is(guestMss(65535, true), 65492);
  t.is(guestMss(65535, false), 65472);
  t.is(guestMss(65480, true), 65480);
  t.true(guestMss(0, true) > 0);
});

test('guest window scale: 0…14 kept, anything else 0', (t) => {
  t.is(guestWs(-1), 0);
  t.is(guestWs(0), 0);
  t.is(guestWs(7), 7);
  t.is(guestWs(14), 14);
  t.is(guestWs(15), 0);
  t.is(guestWs(255), 0);
});

test('our MSS (SPEC §4.7): 61440 at the default MTU, 1460/1440 at 1500, 4096 for remote peers with low wmem', (t) => {
  t.is(ourMss(65520, true, 0, false), 61440);
  t.is(ourMss(65520, false, 0, false), 61440);
  t.is(ourMss(1500, true, 0, false), 1460);
  t.is(ourMss(1500, false, 0, false), 1440);
  t.is(ourMss(65520, true, 0, true), 4096);
  t.is(ourMss(1500, true, 0, true), 1460);
  t.is(ourMss(0, true, 32768, false), 32768, '-m 0: the socket MSS');
  t.is(ourMss(9000, true, 0, false), 8192);
});

test('send buffer estimate: all up to 128 KiB, half from 4 MiB, linear between', (t) => {
  t.is(sndbufEstimate(-1), 14600);
  t.is(sndbufEstimate(65536), 65536);
  t.is(sndbufEstimate(128 * 1024), 128 * 1024);
  t.is(sndbufEstimate(8 << 20), 4 << 20);
  t.is(sndbufEstimate(4 << 20), 2 << 20);
  const mid = sndbufEstimate(2 << 20);
  t.true(mid > 1 << 20 && mid < 2 << 20);
  // continuous at both ends of the linear part
  t.true(Math.abs(sndbufEstimate(128 * 1024 + 1) - 128 * 1024) < 16);
  t.true(Math.abs(sndbufEstimate((4 << 20) - 1) - (2 << 20)) < 16);
});

function conn(our: string, ourPort: number, guest: string, guestPort: number): TcpConn {
  const c = new TcpConn();
  c.reset(0);
  c.ourAddr.set(inanyParse(our));
  c.guestAddr.set(inanyParse(guest));
  c.ourPort = ourPort;
  c.guestPort = guestPort;
  return c;
}

test('ISN (RFC 6528): keyed hash of the tap-side 4-tuple plus a 32 ns clock', (t) => {
  const key = new Uint8Array(16).map((_, i) => i);
  const a = conn('192.0.2.1', 80, '192.0.2.2', 40000);
  const b = conn('192.0.2.1', 80, '192.0.2.2', 40001);
  const [hi, lo] = siphash24(key, isnInput(a));
  t.is(isnFrom(key, a, 0n), (hi ^ lo) >>> 0);
  // the clock adds ns >> 5
  t.is(isnFrom(key, a, 32n * 1000n), ((hi ^ lo) + 1000) >>> 0);
  t.not(isnFrom(key, a, 0n), isnFrom(key, b, 0n));
  // another key, another sequence space
  t.not(isnFrom(new Uint8Array(16), a, 0n), isnFrom(key, a, 0n));
  // wraps modulo 2^32
  const big = isnFrom(key, a, (1n << 37n) + 32n);
  t.true(big >= 0 && big < 2 ** 32);
});

test('timer heap pops in deadline order, with duplicates and growth', (t) => {
  const h = new TimerHeap();
  const want: [number, number][] = [];
  let seed = 7;
  const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
  for (let i = 0; i < 1000; i++) {
    const d = rnd() % 500;
    h.push(d, i);
    want.push([d, i]);
  }
  want.sort((x, y) => x[0] - y[0]);
  const got: number[] = [];
  while (h.size) {
    got.push(h.peekTime());
    h.pop();
  }
  t.deepEqual(got, want.map((w) => w[0]));
  t.is(h.peekTime(), Infinity);
});

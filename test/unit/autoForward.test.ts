/**
 * pasta's `auto` forwarding decisions (SPEC.md §8.4) as a pure function:
 * which side each direction follows, UDP mirroring TCP listeners, and loop
 * avoidance (our own listeners on the scanned side are never forwarded
 * back). Plus the spliced path's pools, which need no namespace.
 */
import test from 'ava';
import { wantedPorts, SidePorts } from '../../src/main/autoForward';
import { PipePool, SocketPool, probeBuffers, MIN_PIPE_SIZE, MAX_PIPE_SIZE, PIPE_POOL_SIZE, SOCKET_POOL_SIZE } from '../../src/workers/tcp/splicePool';
import { native } from '../../src/shared/native';
import { AF_INET6, F_GETPIPE_SZ } from '../../src/shared/linux';
import { testProp, fc } from '../_lib/fcAva';

const S = (...p: number[]): Set<number> => new Set(p);
const none = (): SidePorts => ({ nsTcp: S(), nsUdp: S(), hostTcp: S(), hostUdp: S() });
const sorted = (s: Set<number>): number[] => [...s].sort((a, b) => a - b);

test('inbound follows the namespace, outbound the host', (t) => {
  const w = wantedPorts({ nsTcp: S(22, 80), nsUdp: S(53), hostTcp: S(631), hostUdp: S(5353) }, none());
  t.deepEqual(sorted(w.tcpIn), [22, 80]);
  t.deepEqual(sorted(w.tcpOut), [631]);
  t.deepEqual(sorted(w.udpIn), [22, 53, 80], 'UDP also follows listening TCP ports');
  t.deepEqual(sorted(w.udpOut), [631, 5353]);
});

test('our own listeners on the scanned side are not forwarded back', (t) => {
  // host listens on 8080; -T auto put our listener on the namespace's 8080
  const w = wantedPorts({ nsTcp: S(8080, 22), nsUdp: S(8080), hostTcp: S(8080), hostUdp: S() },
    { nsTcp: S(8080), nsUdp: S(8080), hostTcp: S(), hostUdp: S() });
  t.deepEqual(sorted(w.tcpIn), [22]);
  t.deepEqual(sorted(w.udpIn), [22]);
  t.deepEqual(sorted(w.tcpOut), [8080], 'the host\'s own listener is still forwarded');
});

test('UDP mirroring excludes our TCP and our UDP listeners', (t) => {
  const w = wantedPorts({ nsTcp: S(5201, 443), nsUdp: S(7), hostTcp: S(), hostUdp: S() },
    { nsTcp: S(443), nsUdp: S(7), hostTcp: S(), hostUdp: S() });
  t.deepEqual(sorted(w.udpIn), [5201]);
});

testProp('never forwards a port we listen on at the scanned side, nor invents ports',
  [fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 20 }),
    fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 20 }),
    fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 20 })],
  (t, nsTcp, nsUdp, hostTcp, hostUdp, oursNs, oursHost) => {
    const found = { nsTcp: S(...nsTcp), nsUdp: S(...nsUdp), hostTcp: S(...hostTcp), hostUdp: S(...hostUdp) };
    const ours = { nsTcp: S(...oursNs), nsUdp: S(...oursNs.map((p) => p + 1)), hostTcp: S(...oursHost), hostUdp: S(...oursHost.map((p) => p + 1)) };
    const w = wantedPorts(found, ours);
    for (const p of w.tcpIn) t.true(found.nsTcp.has(p) && !ours.nsTcp.has(p));
    for (const p of w.udpIn) t.true((found.nsUdp.has(p) || found.nsTcp.has(p)) && !ours.nsTcp.has(p) && !ours.nsUdp.has(p));
    for (const p of w.tcpOut) t.true(found.hostTcp.has(p) && !ours.hostTcp.has(p));
    for (const p of w.udpOut) t.true((found.hostUdp.has(p) || found.hostTcp.has(p)) && !ours.hostTcp.has(p) && !ours.hostUdp.has(p));
    // and nothing found that is not ours is left out (this also asserts when
    // nothing was found, so an empty case is a checked case)
    const missed = (want: Set<number>, from: Set<number>[], not: Set<number>[]) =>
      from.flatMap((f) => [...f]).filter((p) => !not.some((n) => n.has(p)) && !want.has(p));
    t.deepEqual(missed(w.tcpIn, [found.nsTcp], [ours.nsTcp]), []);
    t.deepEqual(missed(w.udpIn, [found.nsUdp, found.nsTcp], [ours.nsTcp, ours.nsUdp]), []);
    t.deepEqual(missed(w.tcpOut, [found.hostTcp], [ours.hostTcp]), []);
    t.deepEqual(missed(w.udpOut, [found.hostUdp, found.hostTcp], [ours.hostTcp, ours.hostUdp]), []);
  });

test('pipe pool: 32 pairs of one probed size between 64 KiB and 8 MiB; take and refill', (t) => {
  const pool = new PipePool();
  try {
    t.is(pool.size, PIPE_POOL_SIZE);
    t.true(pool.pipeSize >= MIN_PIPE_SIZE && pool.pipeSize <= MAX_PIPE_SIZE);
    t.is(pool.pipeSize & (pool.pipeSize - 1), 0, 'a power of two');
    const pair = pool.take();
    t.truthy(pair);
    if (pair) {
      for (const p of pair) {
        t.true(p.size > 0);
        t.is(native.fcntl(p.w, F_GETPIPE_SZ, 0), p.size);
        native.close(p.r);
        native.close(p.w);
      }
    }
    t.is(pool.size, PIPE_POOL_SIZE - 1);
    pool.refill();
    t.is(pool.size, PIPE_POOL_SIZE);
  } finally {
    pool.closeAll();
  }
});

test('host socket pool refills to 32 and opens one when empty', (t) => {
  const pool = new SocketPool(AF_INET6, -1);
  pool.refill();
  t.is(pool.size, SOCKET_POOL_SIZE);
  const fds: number[] = [];
  for (let i = 0; i < SOCKET_POOL_SIZE + 2; i++) fds.push(pool.take());
  t.true(fds.every((fd) => fd >= 0));
  t.is(new Set(fds).size, fds.length);
  for (const fd of fds) native.close(fd);
  pool.closeAll();
});

test('buffer probe answers for both buffers', (t) => {
  const p = probeBuffers();
  t.is(typeof p.lowWmem, 'boolean');
  t.is(typeof p.lowRmem, 'boolean');
});

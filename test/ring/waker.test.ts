/**
 * Waker in one thread: the eventfd is written only for an announced sleep,
 * once per sleep; epoll_wait sees it; wokeUp() drains it. Then the sleep
 * protocol of frameRing.ts replayed step by step on the two interleavings
 * that need its publish()/release() *after* the re-check.
 */
import test from 'ava';
import { Waker } from '../../src/shared/ring/waker';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { RING_DATA } from '../../src/shared/ring/layout';
import { native, E } from '../../src/shared/native';
import { EPOLL_CTL_ADD, EPOLLIN } from '../../src/shared/linux';

function setup(): { w: Waker; ep: number; ev: Int32Array; done: () => void } {
  const h = Waker.create();
  const w = new Waker(h);
  const ep = native.epollCreate();
  native.epollCtl(ep, EPOLL_CTL_ADD, w.fd, EPOLLIN, 77);
  return { w, ep, ev: new Int32Array(8), done: () => { native.close(ep); Waker.destroy(h); } };
}

test('wake() makes no syscall unless the owner announced sleep', (t) => {
  const { w, ep, ev, done } = setup();
  t.false(w.wake());
  t.is(native.eventfdRead(w.fd), -E.EAGAIN, 'eventfd untouched');
  t.is(native.epollWait(ep, ev, 4, 0), 0);
  t.is(w.wakes, 0);
  done();
});

test('one eventfd write per announced sleep, seen by epoll_wait, drained by wokeUp', (t) => {
  const { w, ep, ev, done } = setup();
  w.prepareSleep();
  t.true(w.sleeping);
  t.true(w.wake());
  t.false(w.sleeping, 'the waker took the flag');
  t.false(w.wake(), 'second waker: already rung');
  t.is(native.epollWait(ep, ev, 4, 1000), 1);
  t.is(ev[1], 77);
  w.wokeUp();
  t.is(native.eventfdRead(w.fd), -E.EAGAIN, 'drained');
  t.is(native.epollWait(ep, ev, 4, 0), 0);
  t.is(w.wakes, 1);
  t.is(w.sleeps, 1);
  done();
});

test('cancelSleep() withdraws the announcement; a late write only costs a spurious wake-up', (t) => {
  const { w, ep, ev, done } = setup();
  w.prepareSleep();
  w.cancelSleep();
  t.false(w.wake());
  // A waker that won the flag just before cancelSleep writes anyway:
  w.prepareSleep();
  t.true(w.wake());
  w.cancelSleep();
  // ...so the next sleep returns at once, and wokeUp() clears it.
  w.prepareSleep();
  t.is(native.epollWait(ep, ev, 4, 1000), 1);
  w.wokeUp();
  t.is(native.epollWait(ep, ev, 4, 0), 0);
  done();
});

test('protocol: the producer publishes after its re-check (the re-check may write a WRAP)', (t) => {
  const sab = FrameRing.allocate(256);
  const p = new FrameRing(sab);
  const c = new FrameRing(sab);
  const pw = setup();
  const cw = setup();
  const put = (len: number): void => {
    t.true(p.beginWrite(len) >= 0);
    p.endWrite(len, 0);
  };
  put(80); put(80); put(48); // lap 0: [0,96) [96,192) [192,256)
  p.publish();
  c.peek(); c.consume(); c.release(); // head 96
  put(64); // lap 1: [0, 80)
  p.publish();
  // The producer wants 16 + 184 bytes: the end (176 bytes) is too short and
  // not free yet, so beginWrite fails without wrapping.
  t.is(p.beginWrite(184), -1);
  t.is(p.writeOffset, 80);
  // Interleaving: the consumer drains everything and releases *before* the
  // producer sets WAITING, so release() does not ask for a wake-up...
  while (c.peek() >= 0) c.consume();
  t.false(c.release());
  cw.w.prepareSleep(); // ...and announces sleep: nothing left to read.
  t.is(c.peek(), -1);
  // The producer's sleep sequence. Its re-check now finds the end free,
  // writes a WRAP there, and still fails for lack of room at the start.
  p.waitForSpace();
  pw.w.prepareSleep();
  t.is(p.beginWrite(184), -1);
  t.is(p.writeOffset, 0, 're-check wrapped');
  // Without this publish both sides would sleep for ever: the consumer has
  // nothing to read, the producer waits for the WRAP's space.
  t.true(p.publish(), 'the WRAP is new');
  t.true(cw.w.wake(), 'consumer rung');
  t.is(native.epollWait(cw.ep, cw.ev, 4, 1000), 1);
  cw.w.wokeUp();
  t.is(c.peek(), -1, 'consumer passes the WRAP');
  t.true(c.release(), 'producer was waiting');
  t.true(pw.w.wake());
  t.is(native.epollWait(pw.ep, pw.ev, 4, 1000), 1);
  pw.w.wokeUp();
  t.is(p.beginWrite(184), RING_DATA + 16);
  pw.done();
  cw.done();
});

test('protocol: the consumer releases after its re-check (the re-check may pass a WRAP)', (t) => {
  const sab = FrameRing.allocate(256);
  const p = new FrameRing(sab);
  const c = new FrameRing(sab);
  const pw = setup();
  const cw = setup();
  t.true(p.beginWrite(112) >= 0);
  p.endWrite(112, 0); // [0, 128)
  p.publish();
  t.true(c.peek() >= 0);
  c.consume();
  t.false(c.release()); // empty; head at 128
  t.is(c.peek(), -1);
  // Producer needs 16 + 200: wraps (WRAP at 128), fails, and sleeps the
  // right way: WAITING, prepareSleep, re-check, publish, wake the consumer.
  t.is(p.beginWrite(200), -1);
  p.waitForSpace();
  pw.w.prepareSleep();
  t.is(p.beginWrite(200), -1);
  t.true(p.publish());
  t.false(cw.w.wake(), 'consumer not asleep yet: no write');
  // Consumer's sleep sequence: its re-check passes the WRAP and finds nothing.
  cw.w.prepareSleep();
  t.is(c.peek(), -1);
  // Without this release both would sleep for ever.
  t.true(c.release(), 'space the producer waits for');
  t.true(pw.w.wake());
  t.is(native.epollWait(pw.ep, pw.ev, 4, 1000), 1);
  pw.w.wokeUp();
  t.is(p.beginWrite(200), RING_DATA + 16);
  pw.done();
  cw.done();
});

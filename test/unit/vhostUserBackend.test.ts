/**
 * The vhost-user back end as tap-TX and tap-RX use it (issue 14), over a
 * guest whose memory is a memfd mapped by the addon, as qemu's is: frames
 * into the receive queue with one interrupt per batch (none when the guest
 * asked for none), "would block" with the kick drained when the guest has
 * no buffers, a frame that never fits dropped; frames out of the transmit
 * queue packed into a FrameRing as readFrames packs them; the guest's
 * faults counted in guestDrops, across a new link too.
 */
import test from 'ava';
import { native, E } from '../../src/shared/native';
import type { ControlMsg, VuLink } from '../../src/shared/messages';
import { VhostUserBackend, VhostUserReceiver } from '../../src/workers/link/vhostUserBackend';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { RING_REC_HDR } from '../../src/shared/ring/layout';
import { QUEUE_POS_WORDS, VRING_AVAIL_F_NO_INTERRUPT } from '../../src/workers/link/vhostUser/virtqueue';
import { VNET_HDR_LEN } from '../../src/workers/link/vhostUser/net';
import { DirectWriter } from '../../src/workers/link/directWriter';
import { TxGate } from '../../src/workers/link/txGate';
import { Waker } from '../../src/shared/ring/waker';
import { FakeGuest, GUARD, GPA_BASE, QVA_BASE, Ring, pattern } from '../helpers/vhostGuest';

const SIZE = 1 << 20;
const EFD_NONBLOCK = 0x800;

interface Setup {
  g: FakeGuest;
  rx: Ring;
  tx: Ring;
  msg: ControlMsg;
  kick: number[];
  call: number[];
  handle: number;
  done(): void;
}

function setUp(mergeable = true): Setup {
  const fd = native.memfdCreate('vu-backend-test', 1);
  native.ftruncate(fd, GUARD * 2 + SIZE);
  const handle = native.mapShared(fd, GUARD * 2 + SIZE);
  native.close(fd);
  const g = new FakeGuest(SIZE, new Uint8Array(native.mapView(handle)!));
  const rx = g.ring(64), tx = g.ring(64);
  const kick = [native.eventfdCreate(0, EFD_NONBLOCK), native.eventfdCreate(0, EFD_NONBLOCK)];
  const call = [native.eventfdCreate(0, EFD_NONBLOCK), native.eventfdCreate(0, EFD_NONBLOCK)];
  const pos = new Int32Array(new SharedArrayBuffer(4 * QUEUE_POS_WORDS * 2));
  pos[1] = pos[QUEUE_POS_WORDS + 1] = -1;
  const q = (r: Ring, i: number) => ({ num: r.num, addr: { desc: g.qva(r.desc), avail: g.qva(r.avail), used: g.qva(r.used) },
    kickFd: kick[i], callFd: call[i] });
  const vu: VuLink = {
    regions: [{ gpa: GPA_BASE, size: SIZE, qva: QVA_BASE, mmapOffset: GUARD, handle }],
    queues: [q(rx, 0), q(tx, 1)], pos: pos.buffer as SharedArrayBuffer, mergeable,
  };
  return {
    g, rx, tx, kick, call, handle, msg: { type: 'tap', fd: 99, seq: 1, vu },
    done: () => {
      for (const x of [...kick, ...call]) native.close(x);
      native.mapUnmap(handle);
    },
  };
}

/** Frames as tap-TX has them: records in a buffer, offsets and lengths. */
function frames(lens: number[]): { u8: Uint8Array; offs: Int32Array; lens: Int32Array; data: Uint8Array[] } {
  const u8 = new Uint8Array(lens.reduce((a, l) => a + l + 64, 0));
  const offs = new Int32Array(lens.length), ls = new Int32Array(lens.length);
  const data: Uint8Array[] = [];
  let o = 16;
  lens.forEach((l, i) => {
    const d = pattern(l, i + 1);
    u8.set(d, o);
    offs[i] = o;
    ls[i] = l;
    data.push(d);
    o += l + 32;
  });
  return { u8, offs, lens: ls, data };
}

test('send: frames into the receive queue, one interrupt per batch, none if the guest asked for none', (t) => {
  const s = setUp();
  const be = new VhostUserBackend();
  be.configure(s.msg);
  const bufs = [0, 1, 2, 3].map(() => s.g.postChain(s.rx, [{ len: 2048, write: true }]));
  const f = frames([100, 1500, 60]);
  t.is(be.send(99, f.u8, f.offs, f.lens, 0, 3), 3);
  t.is(native.eventfdRead(s.call[0]), 1, 'one interrupt for the batch');
  const used = s.g.takeUsed(s.rx);
  t.deepEqual(used, [[bufs[0].head, 112], [bufs[1].head, 1512], [bufs[2].head, 72]]);
  t.deepEqual(s.g.bytes(bufs[1].addrs[0] + VNET_HDR_LEN, 1500), f.data[1]);
  s.g.setAvailFlags(s.rx, VRING_AVAIL_F_NO_INTERRUPT);
  t.is(be.send(99, f.u8, f.offs, f.lens, 2, 1), 1);
  t.is(native.eventfdRead(s.call[0]), -E.EAGAIN, 'no interrupt asked for');
  t.is(be.guestDrops, 0);
  s.done();
});

test('send: no buffers is "would block" on the receive kick, drained; buffers and a kick later, the frame goes', (t) => {
  const s = setUp();
  const be = new VhostUserBackend();
  be.configure(s.msg);
  const f = frames([1000]);
  native.eventfdWrite(s.kick[0], 1); // an old kick
  t.is(be.send(99, f.u8, f.offs, f.lens, 0, 1), 0);
  t.is(be.waitFd(99), s.kick[0]);
  t.is(be.waitEvents, 1 /* EPOLLIN */);
  t.is(native.eventfdRead(s.kick[0]), -E.EAGAIN, 'the kick was drained before the last look');
  t.is(be.partialBytes, 0);
  const usedFlags = () => s.g.dv.getUint16(s.g.off(s.rx.used), true);
  t.is(usedFlags(), 0, 'kicks asked for while waiting');
  const b = s.g.postChain(s.rx, [{ len: 4096, write: true }]);
  t.is(be.send(99, f.u8, f.offs, f.lens, 0, 1), 1);
  t.deepEqual(s.g.takeUsed(s.rx), [[b.head, 1012]]);
  t.is(usedFlags(), 1, 'VRING_USED_F_NO_NOTIFY again while buffers last');
  s.done();
});

test('send: a frame that never fits is -EMSGSIZE (a drop), the frames before it go', (t) => {
  const s = setUp(false);
  const be = new VhostUserBackend();
  be.configure(s.msg);
  s.g.postChain(s.rx, [{ len: 200, write: true }]);
  s.g.postChain(s.rx, [{ len: 200, write: true }]);
  const f = frames([100, 1500, 50]);
  t.is(be.send(99, f.u8, f.offs, f.lens, 0, 3), 1);
  const r = be.send(99, f.u8, f.offs, f.lens, 1, 2);
  t.is(r, -E.EMSGSIZE);
  t.is(be.failure(r), 'drop');
  t.is(be.send(99, f.u8, f.offs, f.lens, 2, 1), 1);
  t.is(be.failure(-E.ENOTCONN), 'gone');
  s.done();
});

test('send without a link: -ENOTCONN, "gone"', (t) => {
  const be = new VhostUserBackend();
  const f = frames([100]);
  const r = be.send(-1, f.u8, f.offs, f.lens, 0, 1);
  t.is(r, -E.ENOTCONN);
  t.is(be.failure(r), 'gone');
});

test('receive: frames packed as readFrames packs them, chains given back with one interrupt; more() while chains are left', (t) => {
  const s = setUp();
  const rv = new VhostUserReceiver();
  rv.configure(s.msg);
  t.is(rv.watchFd(99), s.kick[1]);
  const sent = [60, 1514, 333].map((l, i) => {
    const d = new Uint8Array(VNET_HDR_LEN + l);
    d.set(pattern(l, i + 7), VNET_HDR_LEN);
    s.g.postChain(s.tx, [{ len: d.length, write: false, data: d }]);
    return d.subarray(VNET_HDR_LEN);
  });
  native.eventfdWrite(s.kick[1], 1);
  const ring = new FrameRing(FrameRing.allocate(1 << 20));
  const lens = new Int32Array(65);
  const d0 = ring.beginWrite(65536);
  const first = d0 - RING_REC_HDR;
  const space = ring.contiguousFree();
  const usedFlags = () => s.g.dv.getUint16(s.g.off(s.tx.used), true);
  t.is(usedFlags(), 0, 'kicks on while idle');
  t.is(rv.read(99, ring, first, space, lens, 2, 65536), 2);
  t.is(lens[2], 0);
  t.true(rv.more(2, 2, space, 0, 65536), 'a chain is left');
  t.is(usedFlags(), 1, 'no kicks while chains are left');
  t.is(native.eventfdRead(s.kick[1]), -E.EAGAIN, 'kick drained');
  t.is(native.eventfdRead(s.call[1]), 1);
  t.deepEqual(ring.u8.subarray(first + RING_REC_HDR, first + RING_REC_HDR + 60), sent[0]);
  const second = (first + RING_REC_HDR + 60 + 7) & ~7;
  t.deepEqual(ring.u8.subarray(second + RING_REC_HDR, second + RING_REC_HDR + 1514), sent[1]);
  t.is(rv.read(99, ring, first, space, lens, 64, 65536), 1);
  t.is(lens[0], 333);
  t.false(rv.more(1, 64, space, 0, 65536));
  t.is(usedFlags(), 0, 'kicks on again before sleeping');
  t.is(s.g.takeUsed(s.tx).length, 3);
  s.done();
});

test("the guest's faults are counted in guestDrops, across a new link too", (t) => {
  const s = setUp();
  const rv = new VhostUserReceiver();
  rv.configure(s.msg);
  s.g.setDesc(s.tx, 10, GPA_BASE + SIZE + 100, 64, 0, 0); // outside the memory table
  s.g.postHead(s.tx, 10);
  s.g.postChain(s.tx, [{ len: 5, write: false }]); // shorter than a header
  const ring = new FrameRing(FrameRing.allocate(1 << 20));
  const lens = new Int32Array(65);
  const d0 = ring.beginWrite(65536);
  t.is(rv.read(99, ring, d0 - RING_REC_HDR, ring.contiguousFree(), lens, 64, 65536), 0);
  t.is(rv.guestDrops, 2);
  rv.configure({ type: 'tap', fd: -1, seq: 2 });
  t.is(rv.guestDrops, 2, 'kept when the link goes');
  t.true(s.g.canariesIntact());
  s.done();
});

/** The 'guestLink' message of a set-up's link (the L4 workers' copy of its 'tap' message). */
function guestLink(s: Setup): ControlMsg {
  const m = s.msg as Extract<ControlMsg, { type: 'tap' }>;
  return { type: 'guestLink', fd: m.fd, seq: m.seq, vu: m.vu };
}

test('in place: the direct writer lends the receive queue only when a direct write could be made; placeDone() publishes with one interrupt', (t) => {
  const s = setUp();
  const gateSab = TxGate.allocate(99);
  const tapTxGate = new TxGate(gateSab);
  tapTxGate.gen = 1;
  const tapTxHandle = Waker.create();
  const ring = new FrameRing(FrameRing.allocate(1 << 16));
  const w = new DirectWriter({ gate: gateSab, input: 1, backend: 'vhost-user', pcapFd: -1 }, ring, 0, new Waker(tapTxHandle));
  t.is(w.placeLock(), null, 'no link configured yet');
  w.configure(guestLink(s));
  const bufs = [0, 1].map(() => s.g.postChain(s.rx, [{ len: 4096, write: true }]));
  const rx = w.placeLock();
  t.truthy(rx);
  t.false(tapTxGate.tryAcquire(), 'the gate is held while the queue is lent');
  rx!.beginPlace();
  t.true(rx!.reserve(100));
  rx!.placeBytes(0, VNET_HDR_LEN, pattern(88, 3), 0, 88);
  rx!.endPlace(1, new Int32Array([88]));
  w.placeDone();
  t.is(native.eventfdRead(s.call[0]), 1, 'one interrupt');
  t.deepEqual(s.g.takeUsed(s.rx), [[bufs[0].head, 100]]);
  t.deepEqual(s.g.bytes(bufs[0].addrs[0] + VNET_HDR_LEN, 88), pattern(88, 3));
  t.true(tapTxGate.tryAcquire(), 'and the gate is free again');
  t.is(w.placeLock(), null, 'held by tap-TX');
  tapTxGate.release();
  // another link applied by tap-TX than the one configured: nothing lent
  tapTxGate.gen = 2;
  t.is(w.placeLock(), null, 'another generation');
  tapTxGate.gen = 1;
  // tap-TX holds records of this ring: frames placed now would overtake them
  ring.beginWrite(60);
  ring.endWrite(60, 0);
  ring.publish();
  t.is(w.placeLock(), null, 'tap-TX not caught up');
  ring.peek();
  ring.consume();
  ring.release();
  t.truthy(w.placeLock(), 'caught up');
  w.placeDone();
  // nobody writes after main took the link away (fd -1)
  tapTxGate.fd = -1;
  t.is(w.placeLock(), null, 'no descriptor');
  tapTxGate.fd = 99;
  // with pcap, frames must pass through the link's send()
  const pcapFd = native.memfdCreate('pcap', 1);
  const wp = new DirectWriter({ gate: gateSab, input: 1, backend: 'vhost-user', pcapFd }, ring, 0, new Waker(tapTxHandle));
  wp.configure(guestLink(s));
  t.is(wp.placeLock(), null, 'pcap');
  t.true(tapTxGate.tryAcquire(), 'no refusal left the gate held');
  tapTxGate.release();
  native.close(pcapFd);
  Waker.destroy(tapTxHandle);
  s.done();
});

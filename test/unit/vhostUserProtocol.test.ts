/**
 * The vhost-user protocol on a real socket pair, with memfd guest memory
 * mapped by the addon (issue 14): qemu's set-up sequence, the features and
 * protocol features the C passt offers, REPLY_ACK, the memory table mapped
 * (and unmapped when replaced or on reset), queues that start and stop,
 * GET_VRING_BASE, messages cut anywhere across reads, and the protocol
 * errors that end a connection without leaking a descriptor.
 */
import test from 'ava';
import * as fs from 'node:fs';
import { native } from '../../src/shared/native';
import { socketPair } from '../helpers/socketpair';
import {
  MessageReader, VhostUserDevice, VHOST_USER, VHOST_USER_FLAG, VhostUserMsg, sendReply, ProtocolError,
  OFFERED_FEATURES, FEATURE, memoryFor, RX_QUEUE, TX_QUEUE,
} from '../../src/workers/link/vhostUser/protocol';
import { SplitQueue, QUEUE_POS_WORDS } from '../../src/workers/link/vhostUser/virtqueue';
import { VirtioNetRx, VirtioNetTx, VNET_HDR_LEN } from '../../src/workers/link/vhostUser/net';
import { pattern } from '../helpers/vhostGuest';

const R = VHOST_USER;
const MEM = 1 << 20;
const QVA = 0x7f0000000000;
const GPA = 0x40000000;

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

function msg(request: number, payload: Uint8Array, flags: number = VHOST_USER_FLAG.VERSION): Uint8Array {
  const b = new Uint8Array(12 + payload.length);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, request, true);
  dv.setUint32(4, flags, true);
  dv.setUint32(8, payload.length, true);
  b.set(payload, 12);
  return b;
}

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}

function state(index: number, num: number): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, index, true);
  dv.setUint32(4, num, true);
  return b;
}

/** qemu's end: sends messages, reads replies. */
class FrontEnd {
  readonly back: number;
  readonly front: number;
  readonly dev = new VhostUserDevice();
  readonly reader = new MessageReader();
  constructor() {
    [this.front, this.back] = socketPair();
  }

  send(request: number, payload: Uint8Array, fds: number[] = [], flags: number = VHOST_USER_FLAG.VERSION): void {
    const b = msg(request, payload, flags);
    const r = native.sendFds(this.front, b, 0, b.length, Int32Array.from(fds), fds.length, 0);
    if (r !== b.length) throw new Error(`sendFds: ${r}`);
  }

  /** The back end's turn: reads and handles everything queued, sending replies. */
  serve(): { errors: string[]; status: number } {
    const { msgs, status } = this.reader.read(this.back);
    const errors: string[] = [];
    for (const m of msgs) {
      try {
        const rep = this.dev.handle(m);
        if (rep) sendReply(this.back, rep);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        errors.push(e.message);
      }
    }
    return { errors, status };
  }

  /** Replies waiting for qemu. */
  replies(): VhostUserMsg[] {
    const rd = new MessageReader();
    return rd.read(this.front).msgs;
  }

  close(): void {
    this.dev.reset();
    native.close(this.front);
    native.close(this.back);
  }
}

function memfd(size: number): number {
  const fd = native.memfdCreate('vhost-test', 1 /* MFD_CLOEXEC */);
  if (fd < 0 || native.ftruncate(fd, size) < 0) throw new Error('memfd');
  return fd;
}

function memTable(regions: { gpa: number; size: number; qva: number; off: number }[]): Uint8Array {
  const b = new Uint8Array(8 + 32 * regions.length);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, regions.length, true);
  regions.forEach((r, i) => {
    const o = 8 + 32 * i;
    dv.setBigUint64(o, BigInt(r.gpa), true);
    dv.setBigUint64(o + 8, BigInt(r.size), true);
    dv.setBigUint64(o + 16, BigInt(r.qva), true);
    dv.setBigUint64(o + 24, BigInt(r.off), true);
  });
  return b;
}

function vringAddr(index: number, desc: number, used: number, avail: number): Uint8Array {
  const b = new Uint8Array(40);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, index, true);
  dv.setBigUint64(8, BigInt(desc), true);
  dv.setBigUint64(16, BigInt(used), true);
  dv.setBigUint64(24, BigInt(avail), true);
  return b;
}

/** Ring layout inside the memfd: queue i's rings at i * 0x4000. */
function ringAt(i: number): { desc: number; avail: number; used: number } {
  const base = i * 0x4000;
  return { desc: base, avail: base + 0x1000, used: base + 0x2000 };
}

/** qemu's start-up sequence; returns the memfd (still open on our side) and the eventfds. */
function setUp(fe: FrontEnd, opts: { protocolFeatures?: boolean; num?: number } = {}): { mfd: number; kick: number[]; call: number[] } {
  const num = opts.num ?? 256;
  const pf = opts.protocolFeatures ?? true;
  fe.send(R.GET_FEATURES, new Uint8Array(0));
  fe.send(R.SET_FEATURES, u64(pf ? OFFERED_FEATURES : OFFERED_FEATURES & ~(1n << 30n)));
  if (pf) {
    fe.send(R.GET_PROTOCOL_FEATURES, new Uint8Array(0));
    fe.send(R.SET_PROTOCOL_FEATURES, u64(1n << 3n));
  }
  fe.send(R.SET_OWNER, new Uint8Array(0));
  const mfd = memfd(MEM);
  fe.send(R.SET_MEM_TABLE, memTable([{ gpa: GPA, size: MEM - 0x1000, qva: QVA, off: 0x1000 }]), [mfd],
    VHOST_USER_FLAG.VERSION | (pf ? VHOST_USER_FLAG.NEED_REPLY : 0));
  const kick: number[] = [], call: number[] = [];
  for (const i of [RX_QUEUE, TX_QUEUE]) {
    const r = ringAt(i);
    fe.send(R.SET_VRING_NUM, state(i, num));
    fe.send(R.SET_VRING_BASE, state(i, 0));
    fe.send(R.SET_VRING_ADDR, vringAddr(i, QVA + r.desc, QVA + r.used, QVA + r.avail));
    kick.push(native.eventfdCreate(0, 0x800 /* EFD_NONBLOCK */));
    call.push(native.eventfdCreate(0, 0x800));
    fe.send(R.SET_VRING_KICK, u64(BigInt(i)), [kick[i]]);
    fe.send(R.SET_VRING_CALL, u64(BigInt(i)), [call[i]]);
    if (pf) fe.send(R.SET_VRING_ENABLE, state(i, 1));
  }
  const { errors } = fe.serve();
  if (errors.length) throw new Error(errors.join('; '));
  return { mfd, kick, call };
}

test('features, protocol features and REPLY_ACK are those of the C passt', (t) => {
  const fe = new FrontEnd();
  fe.send(R.GET_FEATURES, new Uint8Array(0));
  fe.send(R.GET_PROTOCOL_FEATURES, new Uint8Array(0));
  fe.send(R.GET_QUEUE_NUM, new Uint8Array(0));
  fe.serve();
  const [f, pf, qn] = fe.replies();
  const v = (m: VhostUserMsg): bigint => new DataView(m.payload.buffer, m.payload.byteOffset).getBigUint64(0, true);
  t.is(v(f), (1n << 32n) | (1n << 15n) | (1n << 30n));
  t.is(f.flags, VHOST_USER_FLAG.VERSION | VHOST_USER_FLAG.REPLY);
  t.is(f.request, R.GET_FEATURES);
  t.is(v(pf), 1n << 3n);
  t.is(v(qn), 2n);
  // no REPLY_ACK negotiated yet: NEED_REPLY on SET_OWNER gets nothing
  fe.send(R.SET_OWNER, new Uint8Array(0), [], VHOST_USER_FLAG.VERSION | VHOST_USER_FLAG.NEED_REPLY);
  fe.serve();
  t.is(fe.replies().length, 0);
  fe.send(R.SET_PROTOCOL_FEATURES, u64((1n << 3n) | (1n << 1n)));
  fe.send(R.SET_OWNER, new Uint8Array(0), [], VHOST_USER_FLAG.VERSION | VHOST_USER_FLAG.NEED_REPLY);
  fe.serve();
  t.is(fe.dev.protocolFeatures, 1n << 3n, 'only what was offered');
  const [ack] = fe.replies();
  t.is(ack.request, R.SET_OWNER);
  t.is(v(ack), 0n);
  // features not offered are not taken
  fe.send(R.SET_FEATURES, u64(OFFERED_FEATURES | (1n << 28n)));
  fe.serve();
  t.is(fe.dev.features, OFFERED_FEATURES);
  t.true(fe.dev.has(FEATURE.VIRTIO_NET_F_MRG_RXBUF));
  fe.close();
});

test('qemu set-up: memory mapped from the memfd, queues ready, frames both ways through the mapped memory', (t) => {
  const before = native.mapCount();
  const fe = new FrontEnd();
  const { mfd, kick, call } = setUp(fe);
  t.is(native.mapCount(), before + 1);
  t.true(fe.dev.ready);
  const acks = fe.replies();
  t.deepEqual(acks.map((m) => m.request), [R.GET_FEATURES, R.GET_PROTOCOL_FEATURES, R.SET_MEM_TABLE], 'replies, and the ack of SET_MEM_TABLE');
  // the guest's side: our own mapping of the memfd (as the guest sees its RAM)
  const gh = native.mapShared(mfd, MEM);
  const guest = new Uint8Array(native.mapView(gh)!);
  const gdv = new DataView(guest.buffer);
  const mem = memoryFor(fe.dev.regions)!;
  t.is(mem.regions[0].u8.length, MEM - 0x1000);
  // one receive buffer at guest-physical GPA + 0x10000, i.e. memfd offset 0x11000
  const rx = ringAt(RX_QUEUE);
  const fo = (qvaOff: number): number => 0x1000 + qvaOff; // memfd offset of a ring (qva = QVA + off)
  gdv.setBigUint64(fo(rx.desc), BigInt(GPA + 0x10000), true);
  gdv.setUint32(fo(rx.desc) + 8, 2048, true);
  gdv.setUint16(fo(rx.desc) + 12, 2, true);
  gdv.setUint16(fo(rx.avail) + 4, 0, true);
  gdv.setUint16(fo(rx.avail) + 2, 1, true);
  const qc = fe.dev.queueConfig(RX_QUEUE)!;
  t.is(qc.kickFd >= 0 && qc.callFd >= 0, true);
  const q = SplitQueue.create(mem, qc.num, qc.addr, fe.dev.pos, RX_QUEUE * QUEUE_POS_WORDS);
  if (typeof q === 'string') return t.fail(q);
  const net = new VirtioNetRx(q, fe.dev.has(FEATURE.VIRTIO_NET_F_MRG_RXBUF));
  const frame = pattern(1000, 3);
  t.is(net.putFrame(frame, 0, 1000), 1);
  t.true(q.flush());
  t.true(q.wantsInterrupt());
  native.eventfdWrite(qc.callFd, 1);
  t.is(native.eventfdRead(call[RX_QUEUE]), 1, 'the call eventfd is the one qemu gave');
  t.is(gdv.getUint16(fo(rx.used) + 2, true), 1);
  t.is(gdv.getUint32(fo(rx.used) + 8, true), 1012);
  t.deepEqual(guest.subarray(0x11000 + VNET_HDR_LEN, 0x11000 + VNET_HDR_LEN + 1000), frame);
  // transmit: the guest's frame at GPA + 0x20000
  const tx = ringAt(TX_QUEUE);
  const out = pattern(VNET_HDR_LEN + 600, 4);
  guest.set(out, 0x21000);
  gdv.setBigUint64(fo(tx.desc), BigInt(GPA + 0x20000), true);
  gdv.setUint32(fo(tx.desc) + 8, out.length, true);
  gdv.setUint16(fo(tx.avail) + 2, 1, true);
  const tq = SplitQueue.create(mem, 256, fe.dev.queueConfig(TX_QUEUE)!.addr, fe.dev.pos, TX_QUEUE * QUEUE_POS_WORDS) as SplitQueue;
  const dst = new Uint8Array(65536);
  t.is(new VirtioNetTx(tq).takeFrame(dst, 0, 65536), 600);
  t.deepEqual(dst.subarray(0, 600), out.subarray(VNET_HDR_LEN));
  tq.flush();
  // GET_VRING_BASE: stops the queue, answers the next available index
  fe.send(R.GET_VRING_BASE, state(TX_QUEUE, 0));
  fe.serve();
  const [base] = fe.replies();
  t.is(base.request, R.GET_VRING_BASE);
  t.is(new DataView(base.payload.buffer, base.payload.byteOffset).getUint32(4, true), 1);
  t.false(fe.dev.ready);
  t.is(fe.dev.queueConfig(TX_QUEUE), null);
  t.is(native.fcntl(qc.kickFd, 1, 0) >= 0, true, 'RX kick still open');
  native.mapUnmap(gh);
  for (const fd of [...kick, ...call, mfd]) native.close(fd);
  fe.close();
  t.is(native.mapCount(), before, 'reset unmapped the guest memory');
});

test('SET_MEM_TABLE replacing a table unmaps the old one; views left over read zeros, never fault', (t) => {
  const before = native.mapCount();
  const fe = new FrontEnd();
  const { mfd, kick, call } = setUp(fe);
  const old = memoryFor(fe.dev.regions)!;
  old.regions[0].u8[5] = 77;
  t.is(old.regions[0].u8[5], 77);
  const mfd2 = memfd(MEM);
  fe.send(R.SET_MEM_TABLE, memTable([{ gpa: GPA, size: MEM, qva: QVA, off: 0 }]), [mfd2]);
  t.deepEqual(fe.serve().errors, []);
  t.is(native.mapCount(), before + 1);
  t.is(old.regions[0].u8[5], 0, 'the old view now reads zeros');
  old.regions[0].u8[5] = 1; // and writes go nowhere harmful
  const now = memoryFor(fe.dev.regions)!;
  t.is(now.regions[0].u8.length, MEM);
  for (const fd of [...kick, ...call, mfd, mfd2]) native.close(fd);
  fe.close();
  t.is(native.mapCount(), before);
});

test('without PROTOCOL_FEATURES the rings are enabled as soon as they start', (t) => {
  const fe = new FrontEnd();
  const { mfd, kick, call } = setUp(fe, { protocolFeatures: false });
  t.true(fe.dev.ready);
  t.is(fe.replies().length, 1, 'only GET_FEATURES answered');
  for (const fd of [...kick, ...call, mfd]) native.close(fd);
  fe.close();
});

test('a message cut anywhere across reads is reassembled, its descriptors kept with it', (t) => {
  const fe = new FrontEnd();
  const ev = native.eventfdCreate(0, 0);
  const b = msg(R.SET_VRING_CALL, u64(1n));
  // header first with the descriptor, then the payload in two pieces
  t.is(native.sendFds(fe.front, b, 0, 5, Int32Array.of(ev), 1, 0), 5);
  t.is(fe.reader.read(fe.back).msgs.length, 0);
  t.is(native.sendFds(fe.front, b, 5, 10, new Int32Array(1), 0, 0), 10);
  t.is(fe.reader.read(fe.back).msgs.length, 0);
  t.is(native.sendFds(fe.front, b, 15, b.length - 15, new Int32Array(1), 0, 0), b.length - 15);
  const { msgs, status } = fe.reader.read(fe.back);
  t.is(status, 0);
  t.is(msgs.length, 1);
  t.is(msgs[0].fds.length, 1);
  fe.dev.handle(msgs[0]);
  t.true(fe.dev.queues[1].callFd >= 0);
  native.close(ev);
  native.close(fe.front);
  t.is(fe.reader.read(fe.back).status, -61, 'ENODATA once qemu is gone');
  fe.dev.reset();
  native.close(fe.back);
});

test('protocol errors end the connection and leak no descriptor', (t) => {
  const fe = new FrontEnd();
  const start = openFds();
  const ev = native.eventfdCreate(0, 0);
  const m1 = memfd(4096);
  const cases: [number, Uint8Array, number[]][] = [
    [99, new Uint8Array(0), []],
    [R.SET_VRING_KICK, u64(5n), [ev]],
    [R.SET_VRING_KICK, u64(0n), []],
    [R.SET_VRING_CALL, u64(0x100n), [ev]],
    [R.SET_VRING_NUM, state(0, 1000), []],
    [R.SET_VRING_NUM, new Uint8Array(3), []],
    [R.SET_MEM_TABLE, memTable([{ gpa: 0, size: 4096, qva: 0, off: 0 }, { gpa: 8192, size: 4096, qva: 8192, off: 0 }]), [m1]],
    [R.SET_MEM_TABLE, memTable([{ gpa: 0, size: 0, qva: 0, off: 0 }]), [m1]],
    [R.SET_MEM_TABLE, memTable([{ gpa: 2 ** 60, size: 4096, qva: 0, off: 0 }]), [m1]],
    [R.SET_VRING_ENABLE, state(7, 1), []],
  ];
  for (const [req, payload, fds] of cases) fe.send(req, payload, fds);
  const { errors } = fe.serve();
  t.is(errors.length, cases.length, errors.join('\n'));
  native.close(ev);
  native.close(m1);
  t.is(openFds(), start, 'every descriptor received was closed');
  t.is(fe.dev.regions.length, 0);
  // a payload larger than any message: the reader refuses it
  const big = new Uint8Array(12);
  new DataView(big.buffer).setUint32(8, 1 << 20, true);
  native.sendFds(fe.front, big, 0, 12, new Int32Array(1), 0, 0);
  t.is(fe.reader.read(fe.back).status, -71);
  fe.close();
});

test('a region larger than a typed array is seen in pieces, rings and buffers across the cut included', (t) => {
  const size = 5 * 2 ** 30; // sparse: no memory is used
  const fd = memfd(size);
  const h = native.mapShared(fd, size);
  native.close(fd);
  t.true(h >= 0);
  const regions = [{ gpa: 0x100000000, size, qva: 0x7e0000000000, mmapOffset: 0, handle: h }];
  const mem = memoryFor(regions, { map: () => -1, view: (x, o, l) => native.mapView(x, o, l) ?? null, unmap: () => {} })!;
  t.is(mem.regions.length, 5);
  // a buffer across the first cut is found as two segments
  const cut = 0x100000000 + 2 ** 30;
  t.is(mem.regionOf(cut - 1), 0);
  t.is(mem.regionOf(cut), 1);
  t.is(mem.regionFor(cut - 8, 16), -1);
  t.deepEqual(mem.qvaRange(0x7e0000000000 + 2 ** 30 - 8, 16), { region: 0, off: 2 ** 30 - 8 });
  mem.regions[4].u8[mem.regions[4].size - 1] = 9;
  t.is(new Uint8Array(native.mapView(h, size - 1, 1)!)[0], 9);
  t.is(native.mapView(h), undefined, 'more than an ArrayBuffer holds: no view, no throw');
  t.is(native.mapUnmap(h), 0);
});

/**
 * tap-RX under floods (tapReader.ts): a SYN flood cannot queue more than
 * SYN_BACKLOG connection set-ups in front of established traffic, the
 * bound recovers as the TCP worker takes SYNs (or the ring empties), and a
 * UDP worker that cannot keep up does not stop TCP frames.
 */
import test from 'ava';
import { TapReader, TapReaderHost, SYN_BACKLOG } from '../../src/workers/tapReader';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { Waker } from '../../src/shared/ring/waker';
import { Stats } from '../../src/shared/stats';
import { GuestState } from '../../src/shared/guestState';
import { native } from '../../src/shared/native';
import { AF_UNIX, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_SEQPACKET } from '../../src/shared/linux';
import { isBareSyn, TCP_FLAG } from '../../src/shared/wire/tcp';
import type { TapRxInit } from '../../src/shared/messages';
import { EPOLLIN } from '../../src/shared/linux';
import { EpollType, packRef } from '../../src/shared/epollRef';

const TAP_REF = packRef(EpollType.TAP);
import { be16, be32, eth, ipv4, udp4, makeConfig, GUEST_MAC, OUR_MAC } from '../helpers/frames';

interface Rig {
  reader: TapReader;
  peer: number;
  fd: number;
  tcp: FrameRing;
  udp: FrameRing;
  stats: Stats<'tapRx'>;
}

function makeRig(udpRingBytes = 1 << 20): Rig {
  const pair = new Int32Array(2);
  if (native.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0) throw new Error('socketpair');
  const ring = (bytes: number) => ({ ring: FrameRing.allocate(bytes), consumer: Waker.create() });
  const toTcp = ring(4 << 20);
  const toUdp = ring(udpRingBytes);
  const toTx = ring(1 << 20);
  const statsSab = Stats.allocate('tapRx');
  const init: TapRxInit = {
    role: 'tapRx', shard: 0, cfg: makeConfig({ mode: 'pasta', name: 'pasta' }, { addr: '10.0.2.15', gateway: '10.0.2.2' }),
    logLevel: 'error', logTarget: { kind: 'fd', fd: 2, timestamps: false }, waker: Waker.create(), stats: statsSab,
    guestState: GuestState.allocate(), tapfd: pair[1], backend: 'tap', vnetLen: 0,
    toTcp: [toTcp], toUdp, toTx, pcapFd: -1, guest: { mac: null, linkLocal: null },
  };
  const host: TapReaderHost = { add: () => {}, del: () => 0, stop: () => {}, post: () => {} };
  return {
    reader: new TapReader(init, host), peer: pair[0], fd: pair[1],
    tcp: new FrameRing(toTcp.ring), udp: new FrameRing(toUdp.ring), stats: new Stats('tapRx', statsSab),
  };
}

function closeRig(r: Rig): void {
  native.close(r.peer);
  native.close(r.fd);
}

/** A TCP segment from the guest, IPv4, no options. */
function tcpFrame(sport: number, flags: number): Uint8Array {
  const seg = Uint8Array.from([...be16(sport), ...be16(80), ...be32(1000), ...be32(flags & TCP_FLAG.ACK ? 1 : 0),
    0x50, flags, ...be16(64240), 0, 0, 0, 0]);
  return eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4({ src: '10.0.2.15', dst: '192.0.2.1', proto: 6 }, seg));
}

function udpFrame(sport: number, bytes = 4): Uint8Array {
  return eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4({ src: '10.0.2.15', dst: '192.0.2.1', proto: 17 },
    udp4('10.0.2.15', '192.0.2.1', sport, 9, new Uint8Array(bytes))));
}

/** Sends frames to the tap in chunks the socket buffer holds, letting the reader read after each. */
function feed(r: Rig, frames: Uint8Array[]): void {
  for (let i = 0; i < frames.length; i += 64) {
    for (const f of frames.slice(i, i + 64)) {
      if (native.write(r.peer, f, 0, f.length) !== f.length) throw new Error('tap write');
    }
    // what the host's epoll reports, then reads until EAGAIN
    r.reader.onEvent(TAP_REF, EPOLLIN);
    for (let k = 0; k < 8 && r.reader.work(k); k++) { /* more to read */ }
  }
}

/** Consumes every record; returns how many of each kind, and counts bare SYNs as the TCP worker does if asked. */
function drainTcp(ring: FrameRing, countSyns: boolean): { records: number; syns: number } {
  let records = 0;
  let syns = 0;
  while (ring.peek() >= 0) {
    const d = ring.peek();
    const l4 = d + (ring.recMeta1 & 0xffff);
    if (isBareSyn(ring.u8, l4, ring.recMeta2)) syns++;
    ring.consume();
    records++;
  }
  if (countSyns && syns) ring.countSynsDone(syns);
  ring.release();
  return { records, syns };
}

test('a SYN flood: SYN_BACKLOG bare SYNs wait in the TCP ring, the rest are shed and counted; other segments still pass', (t) => {
  const r = makeRig();
  try {
    const extra = 100;
    feed(r, Array.from({ length: SYN_BACKLOG + extra }, (_, i) => tcpFrame(1024 + i, TCP_FLAG.SYN)));
    t.is(r.stats.get('synShed'), extra);
    // segments of established connections (and SYN+ACK, RST) are not bounded
    feed(r, [tcpFrame(5000, TCP_FLAG.ACK), tcpFrame(5001, TCP_FLAG.ACK | TCP_FLAG.PSH),
      tcpFrame(5002, TCP_FLAG.SYN | TCP_FLAG.ACK), tcpFrame(5003, TCP_FLAG.RST)]);
    t.is(r.stats.get('synShed'), extra);
    const got = drainTcp(r.tcp, true);
    t.deepEqual(got, { records: SYN_BACKLOG + 4, syns: SYN_BACKLOG });
    // the worker took them: new SYNs are welcome again
    feed(r, Array.from({ length: 10 }, (_, i) => tcpFrame(6000 + i, TCP_FLAG.SYN)));
    t.is(r.stats.get('synShed'), extra);
    t.is(drainTcp(r.tcp, true).syns, 10);
  } finally {
    closeRig(r);
  }
});

test('the bound recovers when the TCP ring empties, even if SYNs were consumed without being counted', (t) => {
  const r = makeRig();
  try {
    feed(r, Array.from({ length: SYN_BACKLOG }, (_, i) => tcpFrame(1024 + i, TCP_FLAG.SYN)));
    feed(r, [tcpFrame(3000, TCP_FLAG.SYN)]);
    t.is(r.stats.get('synShed'), 1, 'the backlog is full');
    t.is(drainTcp(r.tcp, false).syns, SYN_BACKLOG); // not counted back
    feed(r, [tcpFrame(3001, TCP_FLAG.SYN)]);
    t.is(r.stats.get('synShed'), 1, 'an empty ring resets the count');
    t.is(drainTcp(r.tcp, false).syns, 1);
  } finally {
    closeRig(r);
  }
});

test('a full UDP ring does not stop TCP: frames go on to the TCP ring, UDP ones without room are dropped and counted', (t) => {
  const r = makeRig(256 << 10);
  try {
    // the UDP worker is stuck: nothing consumes its ring, which fills up
    feed(r, Array.from({ length: 300 }, (_, i) => udpFrame(2000 + i, 1400)));
    const fullBefore = r.stats.get('ringFull');
    t.true(fullBefore > 0, 'UDP frames without room are counted');
    // ...and TCP frames behind them must still be read and reach the TCP worker
    feed(r, [udpFrame(2100), udpFrame(2101), udpFrame(2102), tcpFrame(7000, TCP_FLAG.ACK), tcpFrame(7001, TCP_FLAG.ACK)]);
    const got = drainTcp(r.tcp, true);
    t.is(got.records, 2, 'both TCP segments are in the TCP ring');
    t.true(r.stats.get('ringFull') >= fullBefore + 3);
    t.is(r.stats.get('tcp'), 2);
  } finally {
    closeRig(r);
  }
});

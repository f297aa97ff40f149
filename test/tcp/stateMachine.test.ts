/**
 * The TCP worker's state machine driven by hand (STYLE.md guideline 14: L4
 * logic without namespaces): guest segments are built in a buffer and fed to
 * tapHandler, the host side is a real loopback socket, frames to the guest
 * are read back from the output ring, and time is `ctx.now`, moved by the
 * test — so timeouts of seconds or hours take no time: retransmission and
 * its limit, the handshake timeout, zero-window probes, the idle timeout,
 * fast retransmit, the flow limit.
 */
import test, { ExecutionContext } from 'ava';
import { native } from '../../src/shared/native';
import {
  AF_INET, SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC, SOL_SOCKET, SO_REUSEADDR,
} from '../../src/shared/linux';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { Waker } from '../../src/shared/ring/waker';
import { GuestState } from '../../src/shared/guestState';
import { Stats } from '../../src/shared/stats';
import { TcpView } from '../../src/shared/wire/tcp';
import { FRAME_KIND } from '../../src/shared/frameKinds';
import { refIndex } from '../../src/shared/epollRef';
import { sockaddr, sockaddrTo } from '../../src/shared/sockaddr';
import { inanyParse } from '../../src/shared/flow/inany';
import { TapOut } from '../../src/workers/l4/tapOut';
import { TcpCtx } from '../../src/workers/tcp/ctx';
import { TapBatch, tapHandler } from '../../src/workers/tcp/tap';
import { sockHandler, connFromSock } from '../../src/workers/tcp/sock';
import { runTimers } from '../../src/workers/tcp/timer';
import { TCP_EV } from '../../src/workers/tcp/conn';
import type { Config } from '../../src/shared/config';
import { be16, be32, concat, eth, ipv4, makeConfig, mac, OUR_MAC, rd16, rd32 } from '../helpers/frames';

const FIN = 1;
const SYN = 2;
const RST = 4;
const ACK = 0x10;
const GUEST = '192.0.2.2';
const GW = '192.0.2.1';
const GUEST_MAC = '02:00:00:00:00:02';

interface Seg { flags: number; seq: number; ack: number; win: number; len: number; sport: number; dport: number }

class Rig {
  readonly ctx: TcpCtx;
  readonly out: FrameRing;
  readonly inU8 = new Uint8Array(new SharedArrayBuffer(1 << 17));
  readonly batch = new TapBatch(this.inU8);
  readonly view = new TcpView(this.inU8);
  readonly epfd = native.epollCreate();
  private readonly events = new Int32Array(128);

  constructor(capacity = 64, cfgOver: Partial<Config> = {}) {
    const cfg = makeConfig({ mode: 'pasta', name: 'pasta', mtu: 65520, ...cfgOver },
      { addr: GUEST, prefixLen: 24, gateway: GW, mapHostLoopback: GW });
    const guest = new GuestState(GuestState.allocate());
    guest.mac.set(mac(GUEST_MAC));
    guest.addr4Seen.set([192, 0, 2, 2]);
    const sab = FrameRing.allocate(8 << 20);
    const tapOut = new TapOut({ ring: sab, consumer: Waker.create() }, 0, guest, OUR_MAC);
    this.out = new FrameRing(sab);
    this.ctx = new TcpCtx(cfg, tapOut, guest, new Stats('tcp', Stats.allocate('tcp')), this.epfd, capacity);
    this.ctx.probe();
  }

  /** Feeds one guest segment to 192.0.2.1:dport. */
  send(sport: number, dport: number, flags: number, seq: number, ack: number, payload = 0, win = 65535,
    opts: number[] = []): void {
    const t = concat(be16(sport), be16(dport), be32(seq >>> 0), be32(ack >>> 0),
      [((20 + opts.length) / 4) << 4, flags], be16(win), [0, 0, 0, 0], opts, new Uint8Array(payload).fill(0x61));
    const f = eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 6 }, t));
    this.inU8.set(f, 0);
    const b = this.batch;
    b.begin(FRAME_KIND.TCP4, true, 14);
    b.n = 1;
    b.off[0] = 34;
    b.len[0] = t.length;
    tapHandler(this.ctx, b, this.view);
    this.ctx.out.flush();
  }

  /** Dispatches socket events (waits up to ms for the first). */
  poll(ms = 200): void {
    const n = native.epollWait(this.epfd, this.events, 64, ms);
    for (let i = 0; i < n; i++) {
      const c = this.ctx.conn(refIndex(this.events[2 * i + 1] >>> 0));
      if (c) sockHandler(this.ctx, c, this.events[2 * i] >>> 0);
    }
    this.ctx.freeClosed();
    this.ctx.out.flush();
  }

  /** Moves time forward and runs the timers. */
  advance(ms: number): void {
    this.ctx.now += ms;
    runTimers(this.ctx, this.ctx.now);
    this.ctx.freeClosed();
    this.ctx.out.flush();
  }

  /** TCP checksums of the segments written towards the guest since the last call: [field, computed]. */
  checksums(): [number, number][] {
    const r = this.out;
    const u8 = r.u8;
    const out: [number, number][] = [];
    for (let d = r.peek(); d >= 0; d = r.peek()) {
      const t = d + 34;
      const l4Len = r.recLen - 34;
      const copy = u8.slice(t, t + l4Len);
      copy[16] = copy[17] = 0;
      // pseudo-header (source, destination, protocol, length), then the segment
      let acc = 6 + l4Len;
      for (let i = 0; i < 8; i += 2) acc += (u8[d + 26 + i] << 8) | u8[d + 27 + i];
      for (let i = 0; i < l4Len; i += 2) acc += (copy[i] << 8) | (i + 1 < l4Len ? copy[i + 1] : 0);
      while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
      out.push([rd16(u8, t + 16), ~acc & 0xffff]);
      r.consume();
    }
    r.release();
    return out;
  }

  /** Segments written towards the guest since the last call. */
  frames(): Seg[] {
    const r = this.out;
    const u8 = r.u8;
    const out: Seg[] = [];
    for (let d = r.peek(); d >= 0; d = r.peek()) {
      const t = d + 34;
      out.push({
        flags: u8[t + 13], seq: rd32(u8, t + 4), ack: rd32(u8, t + 8), win: rd16(u8, t + 14),
        len: r.recLen - 34 - ((u8[t + 12] >> 4) * 4), sport: rd16(u8, t), dport: rd16(u8, t + 2),
      });
      r.consume();
    }
    r.release();
    return out;
  }

  close(): void {
    for (const c of this.ctx.conns) if (c && c.sock >= 0) native.close(c.sock);
    native.close(this.epfd);
  }
}

function listener(): { fd: number; port: number } {
  const fd = native.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  native.setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  native.bind(fd, sockaddr(inanyParse('127.0.0.1'), 0));
  native.listen(fd, 16);
  const sa = new Uint8Array(28);
  native.getsockname(fd, sa);
  return { fd, port: sockaddrTo(sa, 0, new Uint8Array(16), 0) };
}

function acceptOne(l: { fd: number }): number {
  for (let i = 0; i < 200; i++) {
    const fd = native.accept4(l.fd, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return fd;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
  throw new Error('no connection');
}

/** A guest connection to a host listener, established; returns its numbers. */
function established(t: ExecutionContext, rig: Rig, sport = 40000) {
  const l = listener();
  const iss = 1000;
  rig.send(sport, l.port, SYN, iss, 0, 0, 65535, [2, 4, 0x05, 0xb4, 1, 3, 3, 7]);
  rig.poll();
  const synAck = rig.frames().find((f) => (f.flags & (SYN | ACK)) === (SYN | ACK));
  t.truthy(synAck, 'SYN+ACK');
  const ours = ((synAck as Seg).seq + 1) >>> 0;
  t.is((synAck as Seg).ack, iss + 1);
  rig.send(sport, l.port, ACK, iss + 1, ours, 0, 1024);
  const host = acceptOne(l);
  native.close(l.fd);
  const c = rig.ctx.conns.find((x) => x && !x.dead && x.guestPort === sport);
  t.truthy(c && c.events & TCP_EV.ESTABLISHED, 'established');
  return { host, port: l.port, ours, theirs: iss + 1 };
}

test('data both ways, ACKs, FIN both ways: the flow closes', (t) => {
  const rig = new Rig();
  const { host, port, ours, theirs } = established(t, rig);
  // guest → host
  rig.send(40000, port, ACK | 0x08, theirs, ours, 1000, 1024);
  const buf = new Uint8Array(4096);
  t.is(native.read(host, buf, 0, 4096), 1000);
  // host → guest
  t.is(native.write(host, buf, 0, 3000), 3000);
  rig.poll();
  const data = rig.frames().filter((f) => f.len > 0);
  t.is(data.reduce((a, f) => a + f.len, 0), 3000);
  t.is(data[0].seq, ours);
  t.is(data[data.length - 1].ack, theirs + 1000, 'data carries the ACK of the guest data');
  // guest acknowledges, then closes; host closes
  rig.send(40000, port, ACK | FIN, theirs + 1000, ours + 3000, 0, 1024);
  t.is(native.read(host, buf, 0, 4096), 0, 'host sees the FIN');
  const afterFin = rig.frames();
  t.true(afterFin.some((f) => f.ack === theirs + 1001), 'FIN acknowledged');
  native.close(host);
  rig.poll();
  const fin = rig.frames().find((f) => f.flags & FIN);
  t.truthy(fin, 'FIN to the guest');
  rig.send(40000, port, ACK, theirs + 1001, ours + 3001, 0, 1024);
  rig.ctx.freeClosed();
  t.is(rig.ctx.table.count, 0, 'flow freed');
  rig.close();
});

for (const [name, over, zero] of [
  ['stream', {}, false], ['vhost-user', { vhostUser: true }, true], ['vhost-user with pcap', { vhostUser: true, pcap: '/dev/null' }, false],
] as [string, Partial<Config>, boolean][]) {
  test(`data segments to the guest, ${name}: TCP checksum ${zero ? '0 (DATA_VALID)' : 'correct'}; flags always correct`, (t) => {
    const rig = new Rig(64, over);
    const { host } = established(t, rig);
    t.is(native.write(host, new Uint8Array(3000).fill(0x5a), 0, 3000), 3000);
    rig.poll();
    const sums = rig.checksums();
    t.true(sums.length >= 1);
    for (const [field, want] of sums) t.is(field, zero ? 0 : want);
    rig.ctx.now += 1000;
    native.close(host);
    rig.poll();
    const fin = rig.checksums();
    t.true(fin.length >= 1, 'FIN');
    for (const [field, want] of fin) t.is(field, want, 'a flag segment is summed');
    rig.close();
  });
}

test('unacknowledged data is sent again every 2 s; the 8th expiry resets', (t) => {
  const rig = new Rig();
  const { host, port, ours } = established(t, rig);
  const buf = new Uint8Array(500).fill(7);
  native.write(host, buf, 0, 500);
  rig.poll();
  t.is(rig.frames().filter((f) => f.len === 500).length, 1);
  rig.advance(1900);
  t.is(rig.frames().length, 0, 'nothing before 2 s');
  for (let i = 0; i < 7; i++) {
    rig.advance(2100);
    const f = rig.frames();
    t.is(f.filter((x) => x.len === 500 && x.seq === ours).length, 1, `retransmission ${i + 1}`);
  }
  rig.advance(2100);
  const last = rig.frames();
  t.true(last.some((f) => f.flags & RST), 'RST after 7 retransmissions');
  t.is(rig.ctx.table.count, 0);
  t.is(rig.ctx.stats.get('retransTimeout'), 7);
  native.close(host);
  rig.close();
  void port;
});

test('a zero window is probed (an ACK one byte behind), without giving up', (t) => {
  const rig = new Rig();
  const { host, port, ours, theirs } = established(t, rig);
  rig.send(40000, port, ACK, theirs, ours, 0, 0); // guest closes its window
  native.write(host, new Uint8Array(100), 0, 100);
  rig.poll();
  t.is(rig.frames().filter((f) => f.len).length, 0, 'nothing sent into a zero window');
  for (let i = 0; i < 10; i++) {
    rig.advance(2100);
    const probes = rig.frames().filter((f) => f.len === 0 && f.seq === ours - 1);
    t.is(probes.length, 1, `probe ${i + 1}`);
    rig.send(40000, port, ACK, theirs, ours, 0, 0); // still closed
  }
  t.is(rig.ctx.table.count, 1, 'still alive');
  rig.send(40000, port, ACK, theirs, ours, 0, 1024); // window opens
  t.is(rig.frames().filter((f) => f.len).reduce((a, f) => a + f.len, 0), 100);
  native.close(host);
  rig.close();
});

test('a duplicate ACK triggers one fast retransmit', (t) => {
  const rig = new Rig();
  const { host, port, ours, theirs } = established(t, rig);
  native.write(host, new Uint8Array(3000), 0, 3000);
  rig.poll();
  t.is(rig.frames().filter((f) => f.len).reduce((a, f) => a + f.len, 0), 3000);
  rig.send(40000, port, ACK, theirs, ours + 1000, 0, 1024);
  rig.send(40000, port, ACK, theirs, ours + 1000, 0, 1024); // duplicate
  const re = rig.frames().filter((f) => f.len);
  t.is(re[0].seq, ours + 1000, 'resent from the duplicated ACK');
  t.is(re.reduce((a, f) => a + f.len, 0), 2000);
  rig.send(40000, port, ACK, theirs, ours + 1000, 0, 1024); // more duplicates of the same hole
  t.is(rig.frames().filter((f) => f.len).length, 0, 'not again for the same ACK');
  t.is(rig.ctx.stats.get('retransFast'), 1);
  native.close(host);
  rig.close();
});

test('handshake: our SYN+ACK unanswered for 10 s → RST; a repeated SYN gets the SYN+ACK again', (t) => {
  const rig = new Rig();
  const l = listener();
  rig.send(40001, l.port, SYN, 5000, 0, 0, 65535, [2, 4, 0x05, 0xb4]);
  rig.poll();
  const sa = rig.frames().filter((f) => f.flags === (SYN | ACK));
  t.is(sa.length, 1);
  rig.send(40001, l.port, SYN, 5000, 0, 0, 65535, [2, 4, 0x05, 0xb4]);
  const again = rig.frames().filter((f) => f.flags === (SYN | ACK));
  t.is(again.length, 1);
  t.is(again[0].seq, sa[0].seq, 'same ISN');
  rig.advance(9000);
  t.false(rig.frames().some((f) => f.flags & RST));
  rig.advance(1100);
  const rst = rig.frames().find((f) => f.flags & RST);
  t.truthy(rst);
  t.is((rst as Seg).ack, 5001);
  t.is(rig.ctx.table.count, 0);
  native.close(l.fd);
  rig.close();
});

test('inbound: our SYN is repeated every second, RST after 10 s without an answer', (t) => {
  const rig = new Rig();
  const l = listener();
  const client = native.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  native.connect(client, sockaddr(inanyParse('127.0.0.1'), l.port));
  const peer = new Uint8Array(28);
  let fd = -1;
  for (let i = 0; i < 200 && fd < 0; i++) {
    fd = native.accept4(l.fd, SOCK_NONBLOCK | SOCK_CLOEXEC, peer);
    if (fd < 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
  const c = connFromSock(rig.ctx, fd, peer, 8080);
  rig.ctx.out.flush();
  t.truthy(c);
  const syn = rig.frames();
  t.is(syn.length, 1);
  t.is(syn[0].flags, SYN);
  t.is(syn[0].dport, 8080);
  let repeats = 0;
  for (let i = 0; i < 9; i++) {
    rig.advance(1000);
    repeats += rig.frames().filter((f) => f.flags === SYN && f.seq === syn[0].seq).length;
  }
  t.true(repeats >= 8, `${repeats} SYN repeats`);
  rig.advance(1100);
  t.true(rig.frames().some((f) => f.flags & RST));
  t.is(rig.ctx.table.count, 0);
  native.close(client);
  native.close(l.fd);
  rig.close();
});

test('idle for 7200 s → RST', (t) => {
  const rig = new Rig();
  const { host } = established(t, rig);
  rig.advance(7_100_000);
  t.false(rig.frames().some((f) => f.flags & RST));
  rig.advance(200_000);
  t.true(rig.frames().some((f) => f.flags & RST));
  t.is(rig.ctx.table.count, 0);
  native.close(host);
  rig.close();
});

test('a full flow table drops the SYN, no crash', (t) => {
  const rig = new Rig(2);
  const l = listener();
  for (let i = 0; i < 3; i++) rig.send(41000 + i, l.port, SYN, 1, 0, 0, 65535);
  rig.poll();
  t.is(rig.ctx.table.count, 2);
  t.is(rig.ctx.stats.get('dropTableFull'), 1);
  native.close(l.fd);
  rig.close();
});

/**
 * Harness for the UDP worker's logic without namespaces or network: a fake
 * syscall layer (FakeSys: sockets are records, datagrams are queued by the
 * test and captured on send), the worker's real rings, and helpers to put
 * guest frames in like tap-RX and take frames out like tap-TX.
 */
import type { UdpSys } from '../../src/workers/udp/core';
import { UdpCore } from '../../src/workers/udp/core';
import { SendBatch, tapHandler } from '../../src/workers/udp/tap';
import { RecvState, sockHandler } from '../../src/workers/udp/sock';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { Waker } from '../../src/shared/ring/waker';
import { GuestState } from '../../src/shared/guestState';
import { Stats } from '../../src/shared/stats';
import { TapOut } from '../../src/workers/l4/tapOut';
import { FRAME_KIND, packOffsets } from '../../src/shared/frameKinds';
import type { Config } from '../../src/shared/config';
import { E } from '../../src/shared/native';
import { EpollType, packRef } from '../../src/shared/epollRef';
import { ip4, ip6, mac, GUEST_MAC } from '../helpers/frames';

export const AF_INET = 2;
export const AF_INET6 = 10;

export interface Dgram {
  data: Uint8Array;
  /** sockaddr bytes (16 or 28) of the peer. */
  addr: Uint8Array | null;
}

export interface FakeSock {
  fds: number[];
  domain: number;
  type: number;
  proto: number;
  inNs: boolean;
  bound: Uint8Array | null;
  connected: Uint8Array | null;
  opts: [number, number, number | string][];
  /** Datagrams waiting to be received. */
  rx: Dgram[];
  /** Datagrams sent, with the explicit destination if any. */
  sent: Dgram[];
  /** sendmmsg calls and their counts. */
  sendCalls: number[];
  closed: boolean;
}

/** Independent sockaddr encoding for tests. */
export function sa(addr: string, port: number): Uint8Array {
  if (addr.includes(':')) {
    const b = new Uint8Array(28);
    b[0] = AF_INET6;
    b[2] = port >> 8; b[3] = port & 0xff;
    b.set(ip6(addr), 8);
    return b;
  }
  const b = new Uint8Array(16);
  b[0] = AF_INET;
  b[2] = port >> 8; b[3] = port & 0xff;
  b.set(ip4(addr), 4);
  return b;
}

/** "addr:port" / "[addr]:port" of sockaddr bytes. */
export function saStr(b: Uint8Array | null): string {
  if (!b) return 'none';
  const port = (b[2] << 8) | b[3];
  if (b[0] === AF_INET) return `${b[4]}.${b[5]}.${b[6]}.${b[7]}:${port}`;
  const g: string[] = [];
  for (let i = 0; i < 8; i++) g.push(((b[8 + 2 * i] << 8) | b[9 + 2 * i]).toString(16));
  return `[${g.join(':')}]:${port}`;
}

export class FakeSys implements UdpSys {
  next = 100;
  readonly socks = new Map<number, FakeSock>();
  readonly all: FakeSock[] = [];
  readonly epoll = new Map<number, { events: number; ref: number }>();
  /** Returns an errno (> 0) to make socket() fail. */
  failSocket: ((domain: number, proto: number, inNs: boolean) => number) | null = null;
  failBind: ((s: FakeSock, addr: Uint8Array) => number) | null = null;

  private make(domain: number, type: number, proto: number, inNs: boolean): number {
    if (this.failSocket) {
      const e = this.failSocket(domain, proto, inNs);
      if (e) return -e;
    }
    const fd = this.next++;
    const s: FakeSock = { fds: [fd], domain, type, proto, inNs, bound: null, connected: null, opts: [], rx: [], sent: [],
      sendCalls: [], closed: false };
    this.socks.set(fd, s);
    this.all.push(s);
    return fd;
  }

  /** A socket made by the test (e.g. a listener). */
  add(domain: number): number {
    return this.make(domain, 2, 0, false);
  }

  sock(fd: number): FakeSock {
    const s = this.socks.get(fd);
    if (!s) throw new Error(`no fake socket ${fd}`);
    return s;
  }

  /** Sockets still open. */
  open(): FakeSock[] {
    return this.all.filter((s) => !s.closed);
  }

  socket(domain: number, type: number, proto: number): number { return this.make(domain, type, proto, false); }
  nsSockets(_nsfd: number, domain: number, type: number, proto: number, _count: number, out: Int32Array): number {
    const fd = this.make(domain, type, proto, true);
    if (fd < 0) return fd;
    out[0] = fd;
    return 1;
  }
  bind(fd: number, a: Uint8Array): number {
    const s = this.sock(fd);
    if (this.failBind) {
      const e = this.failBind(s, a);
      if (e) return -e;
    }
    s.bound = a.slice();
    return 0;
  }
  connect(fd: number, a: Uint8Array): number {
    this.sock(fd).connected = a.slice();
    return 0;
  }
  setsockoptInt(fd: number, level: number, name: number, value: number): number {
    this.sock(fd).opts.push([level, name, value]);
    return 0;
  }
  setsockoptBytes(fd: number, level: number, name: number, value: Uint8Array): number {
    this.sock(fd).opts.push([level, name, Buffer.from(value).toString()]);
    return 0;
  }
  close(fd: number): number {
    const s = this.sock(fd);
    this.socks.delete(fd);
    s.fds = s.fds.filter((x) => x !== fd);
    if (!s.fds.length) s.closed = true;
    this.epoll.delete(fd);
    return 0;
  }
  fcntl(fd: number, _cmd: number, _arg: number): number {
    const s = this.sock(fd);
    const nfd = this.next++;
    s.fds.push(nfd);
    this.socks.set(nfd, s);
    return nfd;
  }
  recvmmsg(fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, count: number, addrs: Uint8Array | null,
    outLens: Int32Array, _flags: number): number {
    const s = this.sock(fd);
    if (!s.rx.length) return -E.EAGAIN;
    let n = 0;
    for (; n < count && s.rx.length; n++) {
      const d = s.rx.shift() as Dgram;
      const l = Math.min(d.data.length, lens[n]);
      u8.set(d.data.subarray(0, l), offs[n]);
      outLens[n] = d.data.length > lens[n] ? -1 : l;
      if (addrs) {
        addrs.fill(0, n * 28, n * 28 + 28);
        if (d.addr) addrs.set(d.addr, n * 28);
      }
    }
    return n;
  }
  sendmmsg(fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, count: number, addrs: Uint8Array | null,
    _flags: number): number {
    const s = this.sock(fd);
    s.sendCalls.push(count);
    for (let i = 0; i < count; i++) {
      const a = addrs ? addrs.slice(i * 28, i * 28 + (addrs[i * 28] === AF_INET ? 16 : 28)) : null;
      s.sent.push({ data: u8.slice(offs[i], offs[i] + lens[i]), addr: a });
    }
    return count;
  }
  drainErrQueue(_fd: number): number { return 0; }
  epollCtl(_epfd: number, op: number, fd: number, events: number, ref: number): number {
    if (op === 1 || op === 3) this.epoll.set(fd, { events, ref: ref >>> 0 });
    else if (op === 2) this.epoll.delete(fd);
    return 0;
  }
}

export interface Harness {
  core: UdpCore;
  sys: FakeSys;
  stats: Stats<'udp'>;
  guest: GuestState;
  /** Producer side of the input ring (plays tap-RX). */
  toWorker: FrameRing;
  /** Consumer side of the output ring (plays tap-TX). */
  fromWorker: FrameRing;
  batch: SendBatch;
  rx: RecvState;
}

export const GUEST4 = '192.0.2.2';
export const GW4 = '192.0.2.1';
export const GUEST6 = '2001:db8::2';
export const GW6 = '2001:db8::1';
export const GUEST_LL = 'fe80::1234';

export function harness(cfg: Config, opts: { capacity?: number; outRing?: number; udpTimeoutMs?: number;
  pingTimeoutMs?: number; batch?: number } = {}): Harness {
  const inSab = FrameRing.allocate(1 << 20);
  const outSab = FrameRing.allocate(opts.outRing ?? (4 << 20));
  const gsab = GuestState.allocate();
  const guest = new GuestState(gsab);
  guest.mac.set(mac(GUEST_MAC));
  guest.addr4Seen.set(ip4(GUEST4));
  guest.addr6Seen.set(ip6(GUEST6));
  guest.addr6LlSeen.set(ip6(GUEST_LL));
  guest.setFlags(true, true);
  const out = new TapOut({ ring: outSab, consumer: Waker.create() }, 0, guest, cfg.ourMac);
  const stats = new Stats('udp', Stats.allocate('udp'));
  const sys = new FakeSys();
  const core = new UdpCore({
    cfg, guest, input: new FrameRing(inSab), out, sys, epfd: -1, nsfd: 3, stats,
    capacity: opts.capacity ?? 256, udpTimeoutMs: opts.udpTimeoutMs, pingTimeoutMs: opts.pingTimeoutMs,
    batch: opts.batch,
  });
  return { core, sys, stats, guest, toWorker: new FrameRing(inSab), fromWorker: new FrameRing(outSab), batch: new SendBatch(),
    rx: new RecvState() };
}

/** Puts a guest Ethernet frame in the worker's input ring, as tap-RX would. */
export function push(h: Harness, frame: Uint8Array, l4Len?: number): void {
  const v4 = frame[12] === 0x08;
  const proto = v4 ? frame[14 + 9] : frame[14 + 6];
  const l4Off = 14 + (v4 ? 20 : 40);
  const len = l4Len ?? (v4 ? ((frame[16] << 8) | frame[17]) - 20 : (frame[18] << 8) | frame[19]);
  const kind = proto === 17 ? (v4 ? FRAME_KIND.UDP4 : FRAME_KIND.UDP6) : (v4 ? FRAME_KIND.ICMP4 : FRAME_KIND.ICMP6);
  if (!h.toWorker.tryPush(frame, 0, frame.length, kind, packOffsets(14, l4Off), len)) throw new Error('input ring full');
  h.toWorker.publish();
}

/** Runs the worker's tap handler over everything queued; then releases the ring. */
export function runTap(h: Harness, now = 1000): number {
  const n = tapHandler(h.core, h.batch, now, 100000);
  h.core.input.release();
  return n;
}

/** Delivers readiness of a socket side (UDP_REPLY), listener slot (UDP_LISTEN) or ping flow. */
export function event(h: Harness, type: number, index: number, events = 1, now = 1000): void {
  sockHandler(h.core, h.rx, packRef(type as (typeof EpollType)[keyof typeof EpollType], index), events, now);
}

/** Frames published towards tap-TX (copies), in order. */
export function frames(h: Harness): Uint8Array[] {
  h.core.out.flush();
  const out: Uint8Array[] = [];
  const r = h.fromWorker;
  for (;;) {
    const d = r.peek();
    if (d < 0) break;
    if (r.recKind !== FRAME_KIND.TO_GUEST) throw new Error(`kind ${r.recKind}`);
    out.push(r.u8.slice(d, d + r.recLen));
    r.consume();
  }
  r.release();
  return out;
}

/** The epoll reference the core registered for fd. */
export function refOf(h: Harness, fd: number): number {
  const e = h.sys.epoll.get(fd);
  if (!e) throw new Error(`fd ${fd} not in epoll`);
  return e.ref;
}

export function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

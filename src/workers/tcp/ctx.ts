/**
 * The TCP worker's shared state and the state transitions every part of it
 * uses (tap.ts, sock.ts, timer.ts): connection events and flags, the epoll
 * interest that follows them, timer arming, and freeing closed connections.
 *
 * Theory of operation
 * - One TcpCtx per TCP worker (shard). It owns the flow table, the
 *   connections (indexed like the table), the output ring towards tap-TX and
 *   the timer heap. Nothing here is shared with another thread except through
 *   the rings.
 * - epoll interest follows the state (SPEC §4.4), always edge-triggered:
 *   connecting → EPOLLOUT | EPOLLRDHUP; established → EPOLLIN | EPOLLRDHUP
 *   (plus EPOLLOUT while the window we advertise is zero, to re-open it as
 *   soon as the send buffer drains); after our FIN to the guest only hang-up
 *   and errors. Edge-triggered because bytes sent but not yet acknowledged
 *   by the guest stay in the receive queue: a level-triggered EPOLLIN would
 *   spin on them (sock.ts says who calls back when we stop early). It is
 *   changed (one epoll_ctl) only when the computed set differs.
 * - A closed connection is only marked here; `freeClosed()` closes its
 *   socket and releases the flow index at the end of the loop iteration, so
 *   that events and frames already in hand never see a reused index.
 * - Start-up probes (`probe()`): SO_PEEK_OFF support on TCP sockets, the
 *   TCP_INFO size (snd_wnd, bytes_acked, min_rtt), and whether the kernel
 *   limits our socket buffers (SPEC §4.12).
 */
import { randomFillSync } from 'node:crypto';
import { native } from '../../shared/native';
import {
  AF_INET, SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC, IPPROTO_TCP, SOL_SOCKET, SO_PEEK_OFF,
  TCP_INFO, EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLET,
} from '../../shared/linux';
import { EpollType, packRef } from '../../shared/epollRef';
import { FlowTable } from '../../shared/flow/table';
import { Nat } from '../../shared/flow/nat';
import { inanyEq, inanyCopy, endpointString } from '../../shared/flow/inany';
import type { Config } from '../../shared/config';
import type { GuestState } from '../../shared/guestState';
import { Stats } from '../../shared/stats';
import { log } from '../../shared/log';
import type { TapOut } from '../l4/tapOut';
import { TimerHeap } from './timerHeap';
import { FLOW_MAX } from '../../shared/config';
import { probeBuffers } from './splicePool';
import {
  TcpConn, TCP_EV, TCP_EV_EXCLUSIVE, TCP_FL, TCP_TIMEOUT, eventNames, flagNames,
} from './conn';

/** Flow table capacity (SPEC §7). */
export { FLOW_MAX };
/** Segments (iovecs) per socket call. */
export const IOV_MAX = 1024;

/** TCP_INFO field offsets (struct tcp_info, linux/tcp.h). */
export const TCPI = {
  SND_WSCALE: 6, // low nibble
  SND_MSS: 16,
  BYTES_ACKED: 120, // u64
  MIN_RTT: 148,
  SND_WND: 228,
  LEN_BYTES_ACKED: 128,
  LEN_MIN_RTT: 152,
  LEN_SND_WND: 232,
} as const;

/** Destinations with a minimum RTT at or below this are "low RTT" (µs). */
const LOW_RTT_US = 10;
const LOW_RTT_SLOTS = 8;

export class TcpCtx {
  readonly table: FlowTable;
  /** By flow index; made on first use (an index past the end: none yet). */
  readonly conns: (TcpConn | null | undefined)[];
  readonly nat: Nat;
  readonly secret = new Uint8Array(16);
  readonly timers = new TimerHeap();
  /** Connections marked closed, freed by freeClosed(). */
  private readonly closeList: TcpConn[] = [];
  /** Connections waiting for room in the output ring (RING_WAIT). */
  ringWaiters: number[] = [];
  /** The current loop iteration's clock (ms). */
  now = 0;
  /** Last time less than a full segment moved either way (request/response traffic). */
  smallAt = -1e9;

  // capabilities found by probe()
  peekOff = false;
  hasBytesAcked = false;
  hasSndWnd = false;
  hasMinRtt = false;
  lowWmem = false;
  lowRmem = false;

  /** TCP_INFO scratch. */
  readonly tinfo = new Uint8Array(256);
  readonly tinfoDv = new DataView(this.tinfo.buffer);
  /** Scratch iovecs for the socket calls. */
  readonly iovOffs = new Int32Array(IOV_MAX);
  readonly iovLens = new Int32Array(IOV_MAX);
  /** Scratch addresses of the batch being handled (flow key). */
  readonly keyOur = new Uint8Array(16);
  readonly keyGuest = new Uint8Array(16);
  /** Scratch and all-zero addresses. */
  readonly scratchAddr = new Uint8Array(16);
  readonly zeroAddr = new Uint8Array(16);
  /** Indices of hot counters. */
  readonly stActive: number;
  readonly stSegsToTap: number;
  readonly stBytesToTap: number;
  readonly stFlagsToTap: number;
  readonly stBytesFromTap: number;
  /** Scratch sockaddr. */
  readonly sa = new Uint8Array(28);
  /** Peek target for already-sent bytes on kernels without SO_PEEK_OFF. */
  discard: Uint8Array | null = null;

  /**
   * Data segments go without a TCP checksum (0): over vhost-user the guest
   * is told the data is valid (virtio-net DATA_VALID) and does not check,
   * as with the C passt's vhost-user; a pcap file gets real checksums.
   */
  readonly noDataCsum: boolean;
  private readonly lowRtt = new Uint8Array(16 * LOW_RTT_SLOTS);
  private lowRttNext = 0;
  private lowRttCount = 0;

  constructor(
    readonly cfg: Config,
    readonly out: TapOut,
    readonly guest: GuestState,
    readonly stats: Stats<'tcp'>,
    readonly epfd: number,
    capacity = FLOW_MAX,
  ) {
    this.table = new FlowTable(capacity);
    // grows with the flows (indices come lowest first): no 1 MiB array for an idle instance
    this.conns = [];
    this.nat = new Nat(cfg);
    this.noDataCsum = cfg.vhostUser === true && !cfg.pcap;
    this.stActive = stats.idx('active');
    this.stSegsToTap = stats.idx('segsToTap');
    this.stBytesToTap = stats.idx('bytesToTap');
    this.stFlagsToTap = stats.idx('flagsToTap');
    this.stBytesFromTap = stats.idx('bytesFromTap');
    randomFillSync(this.secret);
  }

  /** Start-up probes (SPEC §4.12). */
  probe(): void {
    const s = native.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (s < 0) return;
    this.peekOff = native.setsockoptInt(s, SOL_SOCKET, SO_PEEK_OFF, 0) === 0;
    const n = native.getsockoptBytes(s, IPPROTO_TCP, TCP_INFO, this.tinfo);
    this.hasBytesAcked = n >= TCPI.LEN_BYTES_ACKED;
    this.hasMinRtt = n >= TCPI.LEN_MIN_RTT;
    this.hasSndWnd = n >= TCPI.LEN_SND_WND;
    native.close(s);
    ({ lowWmem: this.lowWmem, lowRmem: this.lowRmem } = probeBuffers());
    if (!this.peekOff) this.discard = new Uint8Array(1 << 24);
    log.debug(`TCP: SO_PEEK_OFF ${this.peekOff ? 'supported' : 'not supported'}, TCP_INFO ${n} bytes, ` +
      `wmem ${this.lowWmem ? 'low' : 'ok'}, rmem ${this.lowRmem ? 'low' : 'ok'}`);
  }

  /** Reads TCP_INFO of a socket into `tinfo`; false on failure. */
  readInfo(fd: number): boolean {
    return native.getsockoptBytes(fd, IPPROTO_TCP, TCP_INFO, this.tinfo) > 0;
  }

  infoU32(off: number): number {
    return this.tinfoDv.getUint32(off, true);
  }

  /** tcpi_bytes_acked modulo 2^32. */
  infoBytesAcked(): number {
    return this.tinfoDv.getUint32(TCPI.BYTES_ACKED, true);
  }

  // ------------------------------------------------------------- low RTT

  isLowRtt(addr: Uint8Array): boolean {
    for (let i = 0; i < this.lowRttCount; i++) if (inanyEq(this.lowRtt, i * 16, addr, 0)) return true;
    return false;
  }

  /** Remembers addr as low-RTT when the socket's tcpi_min_rtt (just read) says so. */
  noteRtt(addr: Uint8Array): void {
    if (!this.hasMinRtt) return;
    const rtt = this.infoU32(TCPI.MIN_RTT);
    if (rtt === 0 || rtt > LOW_RTT_US || this.isLowRtt(addr)) return;
    inanyCopy(this.lowRtt, this.lowRttNext * 16, addr, 0);
    this.lowRttNext = (this.lowRttNext + 1) % LOW_RTT_SLOTS;
    if (this.lowRttCount < LOW_RTT_SLOTS) this.lowRttCount++;
  }

  // ------------------------------------------------------------- connections

  /** A fresh connection object for flow index idx. */
  newConn(idx: number): TcpConn {
    let c = this.conns[idx];
    if (!c) c = this.conns[idx] = new TcpConn();
    c.reset(idx);
    c.lastActivity = c.openedAt = this.now;
    return c;
  }

  /** The live connection at idx, or null. */
  conn(idx: number): TcpConn | null {
    const c = this.conns[idx];
    return c && !c.dead ? c : null;
  }

  /** Sets an event (exclusive events replace all others). */
  event(c: TcpConn, ev: number): void {
    const prev = c.events;
    if (ev & TCP_EV_EXCLUSIVE) c.events = ev;
    else c.events |= ev;
    if (c.events === prev) return;
    if (log.debugOn) log.debug(`${this.tag(c)}: ${eventNames(prev)} -> ${eventNames(c.events)}`);
    this.updateEpoll(c);
    this.armTimer(c);
  }

  /** Sets flag bits. */
  setFlag(c: TcpConn, fl: number): void {
    const prev = c.flags;
    c.flags |= fl;
    if (fl & TCP_FL.ACK_FROM_TAP_DUE) {
      c.rtoAt = this.now + (c.events & TCP_EV.ESTABLISHED ? TCP_TIMEOUT.ACK
        : c.events & TCP_EV.SOCK_ACCEPTED ? TCP_TIMEOUT.SYN_RETRY : TCP_TIMEOUT.SYN);
    }
    if (fl & TCP_FL.ACK_TO_TAP_DUE && !(prev & TCP_FL.ACK_TO_TAP_DUE)) c.ackDueAt = this.now + TCP_TIMEOUT.ACK_TO_TAP;
    if (log.traceOn && prev !== c.flags) log.trace(`${this.tag(c)}: flags ${flagNames(c.flags)}`);
    if (fl & (TCP_FL.ACK_FROM_TAP_DUE | TCP_FL.ACK_TO_TAP_DUE)) this.armTimer(c);
  }

  /** Schedules the ACK for small data: sent within ACK_DELAY unless a data segment carries it first. */
  delayAck(c: TcpConn): void {
    if (c.flags & TCP_FL.ACK_TO_TAP_DUE) return;
    c.flags |= TCP_FL.ACK_TO_TAP_DUE;
    c.ackDueAt = this.now + TCP_TIMEOUT.ACK_DELAY;
    this.armTimer(c);
  }

  /** Clears flag bits. */
  clearFlag(c: TcpConn, fl: number): void {
    const prev = c.flags;
    c.flags &= ~fl;
    if (prev === c.flags) return;
    if (log.traceOn) log.trace(`${this.tag(c)}: flags ${flagNames(c.flags)}`);
  }

  /** epoll events for the connection's state (SPEC §4.4). */
  epollFor(c: TcpConn): number {
    const ev = c.events;
    if (!ev) return 0;
    if (ev & TCP_EV.ESTABLISHED) {
      if (ev & TCP_EV.TAP_FIN_SENT) return EPOLLET;
      // the window we advertise is zero: watch for send-buffer space
      if (c.wndToTap === 0) return EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      return EPOLLIN | EPOLLRDHUP | EPOLLET;
    }
    if (ev === TCP_EV.TAP_SYN_RCVD) return EPOLLOUT | EPOLLET | EPOLLRDHUP;
    return EPOLLET | EPOLLRDHUP;
  }

  updateEpoll(c: TcpConn): void {
    if (c.sock < 0 || c.dead) return;
    const want = this.epollFor(c);
    if (want === c.epollEvents || want === 0) return;
    const op = c.epollEvents === 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    const r = native.epollCtl(this.epfd, op, c.sock, want, packRef(EpollType.TCP, c.idx));
    if (r < 0) {
      log.debug(`${this.tag(c)}: epoll_ctl: ${native.strerror(-r)}`);
      return;
    }
    c.epollEvents = want;
  }

  /**
   * Computes the connection's next deadline (SPEC §4.9) and makes sure the
   * heap holds an entry no later than it.
   */
  armTimer(c: TcpConn): void {
    if (c.dead) return;
    let d = c.lastActivity + TCP_TIMEOUT.ACT;
    if (c.flags & TCP_FL.ACK_TO_TAP_DUE && c.ackDueAt < d) d = c.ackDueAt;
    if (c.flags & TCP_FL.ACK_FROM_TAP_DUE && c.rtoAt < d) d = c.rtoAt;
    if ((c.events & (TCP_EV.SOCK_FIN_SENT | TCP_EV.TAP_FIN_ACKED)) === (TCP_EV.SOCK_FIN_SENT | TCP_EV.TAP_FIN_ACKED)) {
      if (c.finAt === Infinity) c.finAt = this.now + TCP_TIMEOUT.FIN;
      if (c.finAt < d) d = c.finAt;
    }
    c.deadline = d;
    if (d < c.heapedAt) {
      c.heapedAt = d;
      this.timers.push(d, c.idx);
    }
  }

  /** Marks the connection closed; its socket and index are freed by freeClosed(). */
  close(c: TcpConn): void {
    if (c.dead) return;
    if (log.debugOn) log.debug(`${this.tag(c)}: ${eventNames(c.events)} -> CLOSED`);
    c.events = TCP_EV.CLOSED;
    c.dead = true;
    this.closeList.push(c);
  }

  /** Frees connections closed during this iteration. */
  freeClosed(): void {
    const l = this.closeList;
    if (!l.length) return;
    for (let i = 0; i < l.length; i++) {
      const c = l[i];
      if (c.sock >= 0) native.close(c.sock);
      c.sock = -1;
      c.heapedAt = Infinity;
      this.table.release(c.idx);
      this.stats.v[this.stActive] = this.table.count;
    }
    l.length = 0;
  }

  hasClosed(): boolean {
    return this.closeList.length > 0;
  }

  /** "Flow N (TCP)" prefix of debug lines, with the tap-side endpoints. */
  tag(c: TcpConn): string {
    return `Flow ${c.idx} (TCP) ${endpointString(c.guestAddr, 0, c.guestPort)} <> ${endpointString(c.ourAddr, 0, c.ourPort)}`;
  }
}

/**
 * TCP worker (SPEC.md §4): owns the tap-side TCP connections of its shard,
 * their host sockets and its flow table, on its own epoll loop.
 *
 * Theory of operation
 * - Input: guest TCP frames that tap-RX leaves in the ring towards us
 *   (in passt, worker 0 runs the tap-RX stage itself, TapReader, right
 *   before handling the ring: read, handle, write to the socket and ACK in
 *   one thread)
 *   (kinds TCP4/TCP6, offsets in meta1, L4 length in meta2). Consecutive
 *   frames of one 4-tuple form a batch (l4/tapIn.ts, the shape the UDP
 *   worker takes too) handled at once (tap.ts), straight from the ring:
 *   payloads are written to sockets from there, and the space is released
 *   after each batch.
 * - Output: frames to the guest, built in the ring towards tap-TX (TapOut);
 *   socket data is peeked straight into it (sock.ts). TapOut hands them to
 *   the guest link (link/), written by this thread or by tap-TX as the
 *   configuration places it; the worker never sees how. A full ring is
 *   back-pressure: connections that could not send wait in a list and are
 *   served when tap-TX releases space (it rings our waker).
 * - Test hooks (cfg.tuning.tcpDrop) are chosen here at start-up
 *   (testDrop.ts): without them, nothing of them is on the data path.
 * - Events: socket readiness (sock.ts), accepted connections on forwarded
 *   ports (listeners.ts: each goes over the tap — connFromSock — or to the
 *   splice path, spliceApi.ts decides), and the timer pass (timer.ts) once
 *   per iteration; closed connections are freed at the end of each
 *   iteration.
 * - Latency: right after a small exchange (less than a full segment either
 *   way, over the tap or spliced: request/response traffic, not bulk) the
 *   worker polls its epoll set (timeout 0) for up to 100 µs
 *   (cfg.tuning.spinUs) before sleeping, so that a quick answer from a
 *   host peer, or the guest's next segment, costs no wake-up; after
 *   eight fruitless polling periods it stops for a second (sparse traffic
 *   would only burn CPU).
 * - Quitting: the worker keeps running while connections may still carry
 *   guest data (no FIN from the guest yet, and activity within the last
 *   500 ms or a closed window: when the command exits, its sockets' FINs
 *   follow their data),
 *   bounded by the drain deadline, so that what a command wrote just before
 *   it exited still reaches the host sockets; then sockets close: gracefully
 *   where the guest finished (the receive queue discarded first, so close()
 *   does not turn into a reset; the kernel delivers what is queued), with a
 *   reset where it did not (the host peer must not take a truncated stream
 *   for a complete one).
 */
import { WorkerLoop } from '../loop';
import type { ControlMsg, L4Init } from '../../shared/messages';
import { FrameRing } from '../../shared/ring/frameRing';
import { Waker } from '../../shared/ring/waker';
import { native } from '../../shared/native';
import { MSG_DONTWAIT } from '../../shared/linux';
import { EpollType, refType, refIndex } from '../../shared/epollRef';
import { Stats } from '../../shared/stats';
import { GuestState } from '../../shared/guestState';
import { FRAME_KIND, MAX_FRAME } from '../../shared/frameKinds';
import { nextGuestBatch } from '../l4/tapIn';
import { TcpView, isBareSyn } from '../../shared/wire/tcp';
import { log } from '../../shared/log';
import { TapOut } from '../l4/tapOut';
import { TcpCtx } from './ctx';
import { TCP_EV, TCP_FL, TcpConn } from './conn';
import { monotonicMs } from '../../shared/time';
import { TapBatch, BATCH_MAX, tapHandler } from './tap';
import { sockHandler, sockToTap, connFromSock } from './sock';
import { runTimers } from './timer';
import { abortSock } from './out';
import { ListenerSet } from './listeners';
import { acceptPath, SplicePath } from './spliceApi';
import { createSplicePath } from './splice';
import type { ListenerInfo } from '../../shared/messages';
import { listFlows } from './flowList';
import { TapReader } from '../tapReader';
import { BatchHandler, LossyTapOut, lossyFromGuest } from './testDrop';

/** Guest frames per work() call before other sources get a turn. */
const FRAME_BUDGET = 2048;
/** A connection with guest activity this recent may still be sending (quit drain). */
const DRAIN_QUIET_MS = 500;

export class TcpWorker extends WorkerLoop<L4Init> {
  private readonly ring: FrameRing;
  private readonly producer: Waker;
  private readonly u8: Uint8Array;
  readonly ctx: TcpCtx;
  private readonly batch: TapBatch;
  private readonly view: TcpView;
  private readonly stats: Stats<'tcp'>;
  private readonly stFrames: number;
  private readonly stBatches: number;
  private readonly listeners: ListenerSet;
  /** Last time something happened (ms), for spinning. */
  private activeAt = 0;
  private readonly spinEvents = new Int32Array(128);
  private spinning = false;
  private spinMisses = 0;
  private spinOffUntil = 0;
  private readonly splice: SplicePath | null;
  /** The tap-RX stage, when it runs in this thread (inlineRx). */
  private readonly reader: TapReader | null;
  /**
   * Poll instead of sleeping this long after activity (ms; cfg.tuning.spinUs,
   * 0 disables): a round trip through the host peer and back often fits, and
   * each thread wake-up saved is several microseconds of latency.
   */
  private readonly spinMs: number;
  /** The batch handler: tap.ts's, or the test hook's wrapper around it (testDrop.ts). */
  private readonly handle: BatchHandler;

  constructor() {
    super();
    const i = this.init;
    this.ring = new FrameRing(i.fromTap.ring);
    this.producer = new Waker(i.fromTap.producer);
    this.u8 = this.ring.u8;
    this.stats = new Stats('tcp', i.stats);
    this.stFrames = this.stats.idx('frames');
    this.stBatches = this.stats.idx('batches');
    const guest = new GuestState(i.guestState);
    const drop = i.cfg.tuning.tcpDrop;
    const out = drop.toGuest
      ? new LossyTapOut(i.toTx, i.vnetLen, guest, i.cfg.ourMac, drop.toGuest)
      : new TapOut(i.toTx, i.vnetLen, guest, i.cfg.ourMac);
    this.handle = drop.fromGuest ? lossyFromGuest(tapHandler, drop.fromGuest) : tapHandler;
    this.spinMs = i.cfg.tuning.spinUs / 1000;
    this.ctx = new TcpCtx(i.cfg, out, guest, this.stats, this.epfd, i.cfg.tuning.flowMax);
    this.ctx.probe();
    this.batch = new TapBatch(this.u8);
    this.view = new TcpView(this.u8);
    this.splice = createSplicePath({
      cfg: i.cfg, nsfd: i.nsfd, guest, bufs: this.ctx, stats: this.stats,
      add: (fd: number, ev: number, ref: number) => this.add(fd, ev, ref),
      mod: (fd: number, ev: number, ref: number) => this.mod(fd, ev, ref),
      del: (fd: number) => this.del(fd),
    });
    this.reader = i.inlineRx ? new TapReader(i.inlineRx, this) : null;
    const table = this.ctx.table;
    this.listeners = new ListenerSet(this, () => table.count < table.capacity,
      (l, fd, peer, now) => this.accepted(l, fd, peer, now), (c) => this.stats.add(c));
  }

  /** A connection accepted on a forwarded port: over the tap, spliced, or refused. */
  private accepted(l: ListenerInfo, fd: number, peer: Uint8Array, now: number): void {
    const path = acceptPath(this.init.cfg, l, peer);
    if (path === 'splice' && this.splice) {
      this.splice.accept(l, fd, peer, now);
    } else if (path === 'tap' || (path === 'splice' && l.side === 'host')) {
      // without the splice path, host loopback sources go over the tap (as --no-splice)
      this.ctx.now = now;
      connFromSock(this.ctx, fd, peer, (l.port + l.delta) & 0xffff);
    } else {
      native.close(fd);
    }
  }

  protected onControl(msg: ControlMsg, now: number): void {
    if (msg.type === 'tap') this.reader?.onControl(msg);
    else if (msg.type === 'guestLink') this.ctx.out.configureLink(msg);
    else if (msg.type === 'flows') this.post({ type: 'flows', req: msg.req, ...listFlows(this.ctx, this.splice, msg.max, now) });
    else this.listeners.handle(msg);
  }

  protected onEvent(ref: number, events: number, now: number): void {
    const ctx = this.ctx;
    ctx.now = now;
    this.activeAt = now;
    switch (refType(ref)) {
      case EpollType.TCP: {
        const c = ctx.conn(refIndex(ref));
        if (c) sockHandler(ctx, c, events);
        break;
      }
      case EpollType.TCP_LISTEN:
        this.listeners.onEvent(refIndex(ref), now);
        break;
      case EpollType.TAP:
        this.reader?.onEvent(ref, events);
        break;
      case EpollType.TCP_SPLICE:
        this.splice?.onEvent(ref, events, now);
        break;
      default:
        break;
    }
  }

  protected work(now: number): boolean {
    const ctx = this.ctx;
    ctx.now = now;
    // the guest's frames, read here when tap-RX runs in this thread: a
    // batch is read into our own input ring and handled right away
    let more = this.reader ? this.reader.work(now) : false;
    if (this.drainTap()) more = true;
    if (this.splice && this.splice.work(now)) more = true;
    if (ctx.ringWaiters.length) this.serveWaiters();
    if (ctx.timers.peekTime() <= now) runTimers(ctx, now);
    ctx.freeClosed();
    // listeners disarmed by a full table or a back-off (listeners.ts)
    this.listeners.resume(now);
    ctx.out.flush();
    if (this.ring.release()) this.producer.wake();
    if (more || ctx.hasClosed() || (ctx.ringWaiters.length > 0 && this.ringHasRoom())) return true;
    return this.spin(now);
  }

  /**
   * Right after activity, poll (epoll_wait with no timeout) for a short
   * while instead of sleeping: an answer that comes within it costs no
   * wake-up of this thread.
   */
  private spin(now: number): boolean {
    if (this.spinMs <= 0 || this.stopping || now < this.spinOffUntil) return false;
    const smallAt = this.splice ? Math.max(this.ctx.smallAt, this.splice.smallAt) : this.ctx.smallAt;
    if (now - smallAt > this.spinMs || now - this.activeAt > this.spinMs) {
      if (this.spinning) {
        // nothing came while spinning: after a few such misses, stop for a
        // while (sparse traffic would only burn CPU)
        this.spinning = false;
        if (++this.spinMisses >= 8) {
          this.spinMisses = 0;
          this.spinOffUntil = now + 1000;
        }
      }
      return false;
    }
    this.spinning = true;
    const n = native.epollWait(this.epfd, this.spinEvents, 64, 0);
    for (let i = 0; i < n; i++) {
      const ref = this.spinEvents[2 * i + 1] >>> 0;
      if (refType(ref) !== EpollType.WAKER) this.onEvent(ref, this.spinEvents[2 * i] >>> 0, now);
    }
    if (n > 0 || this.ring.peek() >= 0) this.spinMisses = 0;
    return true;
  }

  private ringHasRoom(): boolean {
    return this.ctx.out.ring.beginWrite(MAX_FRAME + 64) >= 0;
  }

  /** Connections that stopped for lack of room in the output ring. */
  private serveWaiters(): void {
    const ctx = this.ctx;
    if (!this.ringHasRoom()) return;
    const list = ctx.ringWaiters;
    ctx.ringWaiters = [];
    for (let i = 0; i < list.length; i++) {
      const c = ctx.conn(list[i]);
      if (!c) continue;
      c.flags &= ~TCP_FL.RING_WAIT;
      sockToTap(ctx, c);
    }
  }

  /**
   * Handles guest frames in batches (consecutive frames of one 4-tuple, up
   * to BATCH_MAX: l4/tapIn.ts); true if the budget ran out first.
   */
  private drainTap(): boolean {
    let frames = 0;
    while (frames < FRAME_BUDGET) {
      const n = nextGuestBatch(this.ring, this.batch, Math.min(BATCH_MAX, FRAME_BUDGET - frames));
      if (n === 0) return false;
      frames += n;
      this.handleBatch();
    }
    return this.ring.peek() >= 0;
  }

  /** Hands the batch's well-formed segments to the TCP state machine, then releases their ring space. */
  private handleBatch(): void {
    const b = this.batch;
    const st = this.stats;
    if (b.kind === FRAME_KIND.TCP4 || b.kind === FRAME_KIND.TCP6) {
      st.v[this.stFrames] += b.n;
      const v = this.view;
      const u8 = this.ring.u8;
      let k = 0;
      let syns = 0;
      for (let i = 0; i < b.n; i++) {
        if (isBareSyn(u8, b.off[i], b.len[i])) syns++;
        if (!v.reset(b.off[i], b.len[i])) {
          st.add('dropMalformed');
          st.add('dropped');
          continue;
        }
        b.off[k] = b.off[i];
        b.len[k] = b.len[i];
        k++;
      }
      b.n = k;
      // tap-RX bounds the SYNs waiting in this ring (tapReader.ts SYN_BACKLOG)
      if (syns) this.ring.countSynsDone(syns);
      if (k) {
        st.v[this.stBatches]++;
        this.activeAt = this.ctx.now;
        this.handle(this.ctx, b, v);
      }
    } else {
      st.add('dropped', b.n); // not a kind tap-RX sends here
    }
    b.n = 0;
    if (this.ring.release()) this.producer.wake();
  }

  protected hasInput(): boolean {
    const ctx = this.ctx;
    if (this.reader?.hasInput()) return true;
    if (this.ring.peek() >= 0 || ctx.hasClosed()) return true;
    return ctx.ringWaiters.length > 0 && this.ringHasRoom();
  }

  protected beforeSleep(): void {
    this.reader?.flushAll();
    this.ctx.out.flush();
    // hasInput()'s re-check may have written a WRAP record: publish it too
    this.ctx.out.ring.publish();
    if (this.ring.release()) this.producer.wake();
  }

  protected timeoutMs(now: number): number {
    const t = this.ctx.timers.peekTime();
    let ms = t === Infinity ? 1000 : Math.max(0, t - now);
    if (this.reader) ms = Math.min(ms, Math.max(0, this.reader.timeoutMs(now)));
    ms = Math.min(ms, this.listeners.timeoutMs(now));
    return this.splice ? Math.min(ms, this.splice.timeoutMs(now)) : ms;
  }

  protected drained(now: number): boolean {
    // connections still in a backlog may hold what the command wrote last
    this.listeners.acceptPending(now);
    this.ctx.now = now;
    if (this.ring.peek() >= 0 || this.ctx.hasClosed()) return false;
    if (this.splice && !this.splice.drained(now)) return false;
    const ctx = this.ctx;
    for (const c of ctx.conns) if (c && !c.dead && mayHoldGuestData(c, now)) return false;
    return true;
  }

  protected finish(): void {
    const ctx = this.ctx;
    this.listeners.closeAll();
    let n = 0;
    const now = monotonicMs();
    for (const c of ctx.conns) {
      if (!c || c.dead || c.sock < 0) continue;
      if (mayHoldGuestData(c, now)) {
        // the guest's side is cut short: a reset tells the host peer so,
        // where a FIN would pass a truncated stream for a complete one
        abortSock(c);
      } else {
        // unread data would make close() reset the host side and drop
        // what we queued
        native.recvDiscard(c.sock, 0x7fffffff, MSG_DONTWAIT);
      }
      native.close(c.sock);
      c.sock = -1;
      n++;
    }
    ctx.out.flush();
    if (log.debugOn) log.debug(`TCP: closed ${n} connections at exit`);
  }
}

/**
 * At quit: the guest may still have data for this connection (no FIN yet,
 * and recent activity or a window we keep closed).
 */
function mayHoldGuestData(c: TcpConn, now: number): boolean {
  if (c.events & TCP_EV.TAP_FIN_RCVD) return false;
  if (!(c.events & (TCP_EV.ESTABLISHED | TCP_EV.TAP_SYN_RCVD))) return false;
  return c.wndToTap === 0 || now - c.lastActivity < DRAIN_QUIET_MS;
}

new TcpWorker().run();

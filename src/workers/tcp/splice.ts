/**
 * Spliced TCP (SPEC.md §4.14, §2.8): pasta's local fast path.
 *
 * Theory of operation
 * - A spliced connection joins two sockets with no Layer 2 in between: side
 *   0 is the connection accepted on a pasta listener, side 1 the socket we
 *   connect to the target. Host loopback → namespace (-t, loopback source,
 *   no --no-splice): side 1 lives in the namespace and connects to the
 *   namespace's own address as seen on the tap (addr_seen; over its `lo`),
 *   or to its 127.0.0.1/::1 with --host-lo-to-ns-lo. Namespace loopback →
 *   host (-T): side 1 lives in the init namespace, is bound to the same
 *   loopback address the namespace client used and connects to the host's
 *   127.0.0.1/::1. Target port = listening port + delta.
 * - Bytes never enter userspace: each direction has its own pipe, and
 *   splice(2) moves them socket → pipe → socket (SPLICE_F_MOVE |
 *   SPLICE_F_NONBLOCK). `pending[from]` counts bytes still in the pipe that
 *   carries data read from side `from`.
 * - Set-up: the target socket comes from the pool of its side and family
 *   (splicePool.ts), TCP_NODELAY and TCP_QUICKACK on both sockets, buffers
 *   maxed unless the probe found them low, non-blocking connect
 *   (SPLICE_CONNECT, EPOLLOUT on side 1). Connected → SPLICE_ESTABLISHED, a
 *   pipe pair from the pipe pool, and both directions are serviced at once
 *   (data may already wait on side 0). Connect failure closes both, the
 *   client with a reset.
 * - Forwarding from a readable side: splice as much as the pipe holds into
 *   it, then splice what the pipe holds out to the other socket, repeated
 *   while data flows (within a budget: epoll is level-triggered, so a side
 *   still readable is reported again). A read under a tenth of the pipe
 *   took all the socket had: it is not retried (the retry would only say
 *   EAGAIN; one syscall less per message of request/response traffic).
 *   Such small exchanges set `smallAt`, which lets the worker poll for
 *   the answer instead of sleeping (worker.ts). SPLICE_F_MORE goes with a write when
 *   the read filled ≥ 90 % of a pipe of at least 256 KiB (smaller writes
 *   could fit in one segment and sit corked with nothing in flight).
 * - Backpressure: a write that leaves bytes in the pipe sets OUT_WAIT(to)
 *   and watches EPOLLOUT on that socket; meanwhile the source is not
 *   watched for EPOLLIN (its data waits in the kernel). When EPOLLOUT fires
 *   the pipe is drained first, then reading resumes. EPOLLIN and EPOLLOUT
 *   together service both directions.
 * - A descriptor with nothing to wait for is parked with EPOLLET and no
 *   events, so a socket in EPOLLHUP state cannot make the loop spin; errors
 *   still show up once.
 * - Half-close: EPOLLRDHUP → FIN_RCVD(side). Once a side's read returns 0
 *   and its pipe is empty, shutdown(SHUT_WR) on the other socket,
 *   FIN_SENT(other); that side is no longer read. Both FIN_SENT → close
 *   (sockets and pipes; pipes are not recycled).
 * - Resets: EPOLLERR, or a splice error other than EAGAIN, closes the
 *   connection and resets the other socket too (SO_LINGER 0), so a reset
 *   travels across the splice as a reset, not as an orderly close.
 * - No idle timeout for spliced flows. Shutdown: drained() pushes what each
 *   connection still holds (one sweep per call) and says true only when no
 *   connection is connecting or has bytes in a pipe or in a source socket,
 *   so what a command wrote just before exiting still reaches the other
 *   side; the worker loop bounds this by the drain deadline.
 * - Epoll refs: EpollType.TCP_SPLICE, index = connection << 1 | side.
 *   Pipes are never watched (SPLICE_PIPE stays unused). A closed
 *   connection's index is reused only from the next work() call on, after
 *   the current batch of events, so a stale event finds nothing.
 */
import { native, E } from '../../shared/native';
import {
  AF_INET, AF_INET6, EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP, EPOLLET, IPPROTO_TCP, TCP_NODELAY,
  TCP_QUICKACK, SOL_SOCKET, SO_ERROR, SO_LINGER, SO_SNDBUF, SO_RCVBUF, SHUT_WR, SPLICE_F_MOVE,
  SPLICE_F_NONBLOCK, SPLICE_F_MORE,
} from '../../shared/linux';
import { EpollType, packRef, refIndex } from '../../shared/epollRef';
import type { ListenerInfo } from '../../shared/messages';
import { sockaddrFrom, sockaddrTo, SOCKADDR_LEN } from '../../shared/sockaddr';
import { inanyFrom4, inanyCopy, inanyIs4, inanyParse, endpointString } from '../../shared/flow/inany';
import { log } from '../../shared/log';
import type { SpliceHost, SplicePath, SpliceFlowInfo } from './spliceApi';
import {
  PipePool, SocketPool, Pipe, closePipe, BufferProbe, SOCK_BUF_MAX,
} from './splicePool';

/** Connection events (SPEC §4.14); side 0 = accepted, 1 = connecting side. */
export const SpliceEvent = {
  SPLICE_CONNECT: 1 << 0,
  SPLICE_ESTABLISHED: 1 << 1,
  OUT_WAIT_0: 1 << 2,
  OUT_WAIT_1: 1 << 3,
  FIN_RCVD_0: 1 << 4,
  FIN_RCVD_1: 1 << 5,
  FIN_SENT_0: 1 << 6,
  FIN_SENT_1: 1 << 7,
} as const;

/** Not a SPEC event: the side's read returned 0 (end of its byte stream). */
const RD_EOF_0 = 1 << 8;

const outWait = (side: number): number => SpliceEvent.OUT_WAIT_0 << side;
const finRcvd = (side: number): number => SpliceEvent.FIN_RCVD_0 << side;
const finSent = (side: number): number => SpliceEvent.FIN_SENT_0 << side;
const rdEof = (side: number): number => RD_EOF_0 << side;

const EVENT_NAMES = [
  'SPLICE_CONNECT', 'SPLICE_ESTABLISHED', 'OUT_WAIT_0', 'OUT_WAIT_1', 'FIN_RCVD_0', 'FIN_RCVD_1', 'FIN_SENT_0',
  'FIN_SENT_1', 'RD_EOF_0', 'RD_EOF_1',
];

/** Connections at most (epoll index: 23 bits of connection, 1 of side). */
export const SPLICE_MAX = 1 << 17;
/** Rounds of read+write per forward() call before yielding to other events. */
const FORWARD_BUDGET = 16;
/** A read below this share of the pipe is not followed by another (see the theory block). */
const REREAD_MIN_SHARE = 0.1;
/** A forward() moving less than this is a small exchange (smallAt), unless bulk flowed within BULK_MS. */
const SMALL_MAX = 16384;
const BULK_MS = 2;
/** SPLICE_F_MORE only for writes this large (see the theory block). */
const MORE_MIN_BYTES = 256 << 10;
/** The namespace socket pools are refilled when fewer than this are left. */
const NS_POOL_LOW = 16;
/** Host pools and the pipe pool are refilled by this timer. */
const REFILL_MS = 1000;

const SPLICE_FLAGS = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
/** Parked: no events, edge-triggered so EPOLLHUP is reported once, not forever. */
const PARKED = EPOLLET;

const LO4 = inanyParse('127.0.0.1');
const LO6 = inanyParse('::1');
const LINGER_RESET = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]); // struct linger { 1, 0 }

/** One spliced connection; arrays are indexed by side. */
class SpliceConn {
  events = 0;
  readonly fd = [-1, -1];
  readonly pipe: (Pipe | null)[] = [null, null];
  /** Bytes in pipe[from], read from side `from`, not yet written to the other side. */
  readonly pending = [0, 0];
  /** Events currently registered for each socket (PARKED when none). */
  readonly watched = [PARKED, PARKED];
  /** Bytes read from each side, and written to each side. */
  readonly read = [0, 0];
  readonly written = [0, 0];
  /** Last time a forward() moved bulk data (ms). */
  bulkAt = -1e9;
  /** When it was accepted (ms), and its two ends ("addr:port"), for `flows`. */
  openedAt = 0;
  from = '';
  to = '';
  constructor(readonly index: number) {}
}

export class SpliceConns implements SplicePath {
  private readonly conns: (SpliceConn | null)[] = [];
  private readonly free: number[] = [];
  /** Indices of connections closed since the last work() call. */
  private readonly freeLater: number[] = [];
  private live = 0;
  private readonly pipes: PipePool;
  private readonly hostPool: Record<number, SocketPool>;
  private readonly nsPool: Record<number, SocketPool>;
  private readonly bufs: BufferProbe;
  private nextRefill = 0;
  private nsRefillFailed = false;
  private readonly sa = new Uint8Array(SOCKADDR_LEN);
  private readonly sa16 = this.sa.subarray(0, 16);
  private readonly peerAddr = new Uint8Array(16);
  private readonly dstAddr = new Uint8Array(16);
  /** Counters (debug output). */
  readonly stats = { accepted: 0, connectFailed: 0, closed: 0, resets: 0, bytes: 0 };
  /** The worker's shared counters and the indices of ours, or null (tests). */
  private readonly shared: Float64Array | null;
  private readonly ixActive: number;
  /** Counter indices of bytes moved from side 0 (the client) to side 1, and back. */
  private readonly ixBytes: number;
  private readonly ixBytesBack: number;
  private readonly ixFlows: number;
  /** Last time a small exchange was forwarded (ms; SplicePath.smallAt). */
  smallAt = -1e9;
  /** The time of the event or pass being handled (ms). */
  private now = 0;

  constructor(private readonly host: SpliceHost) {
    this.pipes = new PipePool();
    this.bufs = host.bufs;
    this.shared = host.stats ? host.stats.v : null;
    this.ixActive = host.stats ? host.stats.idx('spliceActive') : 0;
    this.ixBytes = host.stats ? host.stats.idx('spliceBytesFromClient') : 0;
    this.ixBytesBack = host.stats ? host.stats.idx('spliceBytesToClient') : 0;
    this.ixFlows = host.stats ? host.stats.idx('spliceFlows') : 0;
    this.hostPool = { [AF_INET]: new SocketPool(AF_INET, -1), [AF_INET6]: new SocketPool(AF_INET6, -1) };
    this.nsPool = { [AF_INET]: new SocketPool(AF_INET, host.nsfd), [AF_INET6]: new SocketPool(AF_INET6, host.nsfd) };
    this.refillPools(true);
    if (log.debugOn) {
      log.debug(`splice: pipe size ${this.pipes.pipeSize} bytes${this.bufs.lowWmem ? ', low wmem' : ''}` +
        `${this.bufs.lowRmem ? ', low rmem' : ''}`);
    }
  }

  get count(): number {
    return this.live;
  }

  list(max: number, now: number): SpliceFlowInfo[] {
    const out: SpliceFlowInfo[] = [];
    for (const c of this.conns) {
      if (!c) continue;
      if (out.length >= max) break;
      out.push({
        index: c.index, from: c.from, to: c.to, state: EVENT_NAMES.filter((_, i) => c.events & (1 << i)).join('|'),
        bytesFromClient: c.read[0], bytesFromTarget: c.read[1], ageMs: Math.max(0, Math.round(now - c.openedAt)),
      });
    }
    return out;
  }

  /** Probed pipe size (bytes). */
  get pipeSize(): number {
    return this.pipes.pipeSize;
  }

  // --- set-up --------------------------------------------------------------

  accept(l: ListenerInfo, fd: number, peer: Uint8Array, now: number): void {
    this.now = now;
    const cfg = this.host.cfg;
    if (this.live >= SPLICE_MAX || sockaddrTo(peer, 0, this.peerAddr, 0) < 0) {
      native.close(fd);
      return;
    }
    const v4 = inanyIs4(this.peerAddr, 0);
    const family = v4 ? AF_INET : AF_INET6;
    const port = (l.port + l.delta) & 0xffff;
    let target: number;
    let bindSrc = false;
    if (l.side === 'host') {
      // host loopback → namespace (§2.8)
      if (cfg.hostLoToNsLo) inanyCopy(this.dstAddr, 0, v4 ? LO4 : LO6, 0);
      else if (v4) inanyFrom4(this.dstAddr, 0, this.host.guest.addr4Seen, 0);
      else inanyCopy(this.dstAddr, 0, this.host.guest.addr6Seen, 0);
      target = this.nsPool[family].take();
    } else {
      // namespace loopback → host loopback, same source address
      inanyCopy(this.dstAddr, 0, v4 ? LO4 : LO6, 0);
      bindSrc = true;
      target = this.hostPool[family].take();
    }
    if (target < 0) {
      log.debug(`splice: no socket for port ${port}: ${native.strerror(-target)}`);
      this.resetClose(fd);
      return;
    }
    this.sockOpts(fd);
    this.sockOpts(target);
    if (bindSrc) {
      const n = sockaddrFrom(this.sa, 0, this.peerAddr, 0, 0);
      const r = native.bind(target, n === 16 ? this.sa16 : this.sa);
      if (r < 0) {
        log.debug(`splice: bind to ${endpointString(this.peerAddr, 0, 0)}: ${native.strerror(-r)}`);
        native.close(target);
        this.resetClose(fd);
        this.stats.connectFailed++;
        return;
      }
    }

    const c = this.alloc();
    c.fd[0] = fd;
    c.fd[1] = target;
    c.openedAt = now;
    c.from = `${l.side === 'host' ? 'host' : 'namespace'} ${endpointString(this.peerAddr, 0, (peer[2] << 8) | peer[3])}`;
    c.to = `${l.side === 'host' ? 'namespace' : 'host'} ${endpointString(this.dstAddr, 0, port)}`;
    this.stats.accepted++;
    if (this.shared) this.shared[this.ixFlows]++;
    try {
      this.host.add(fd, PARKED, packRef(EpollType.TCP_SPLICE, c.index << 1));
      this.host.add(target, PARKED, packRef(EpollType.TCP_SPLICE, (c.index << 1) | 1));
    } catch (e) {
      log.debug(`splice: ${(e as Error).message}`);
      this.close(c, true);
      return;
    }
    const n = sockaddrFrom(this.sa, 0, this.dstAddr, 0, port);
    const r = native.connect(target, n === 16 ? this.sa16 : this.sa);
    if (log.debugOn) log.debug(`Flow ${c.index} (tcp splice): ${c.from} → ${c.to}`);
    if (r === 0) {
      this.established(c);
    } else if (r === -E.EINPROGRESS) {
      c.events = SpliceEvent.SPLICE_CONNECT;
      this.update(c);
    } else {
      this.connectFailed(c, -r);
    }
  }

  private sockOpts(fd: number): void {
    native.setsockoptInt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    native.setsockoptInt(fd, IPPROTO_TCP, TCP_QUICKACK, 1);
    if (!this.bufs.lowWmem) native.setsockoptInt(fd, SOL_SOCKET, SO_SNDBUF, SOCK_BUF_MAX);
    if (!this.bufs.lowRmem) native.setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, SOCK_BUF_MAX);
  }

  private alloc(): SpliceConn {
    const i = this.free.pop();
    const index = i ?? this.conns.length;
    const c = new SpliceConn(index);
    if (i === undefined) this.conns.push(c); else this.conns[index] = c;
    this.live++;
    if (this.shared) this.shared[this.ixActive] = this.live;
    return c;
  }

  private connectFailed(c: SpliceConn, errno: number): void {
    if (log.debugOn) log.debug(`Flow ${c.index} (tcp splice): connect: ${native.strerror(errno)}`);
    this.stats.connectFailed++;
    this.close(c, true);
  }

  private established(c: SpliceConn): void {
    const pair = this.pipes.take();
    if (!pair) {
      log.debug(`Flow ${c.index} (tcp splice): no pipes`);
      this.close(c, true);
      return;
    }
    c.pipe[0] = pair[0];
    c.pipe[1] = pair[1];
    c.events = SpliceEvent.SPLICE_ESTABLISHED;
    if (log.debugOn) log.debug(`Flow ${c.index} (tcp splice): SPLICE_ESTABLISHED`);
    if (!this.forward(c, 0) || !this.forward(c, 1)) return;
    this.settle(c);
  }

  // --- events --------------------------------------------------------------

  onEvent(ref: number, events: number, now: number): void {
    this.now = now;
    const idx = refIndex(ref);
    const c = this.conns[idx >>> 1];
    if (!c) return;
    const side = idx & 1;
    if ((c.events & SpliceEvent.SPLICE_CONNECT) && side === 1 && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      const err = native.getsockoptInt(c.fd[1], SOL_SOCKET, SO_ERROR);
      if (err !== 0 || (events & (EPOLLERR | EPOLLHUP))) this.connectFailed(c, err > 0 ? err : E.ECONNREFUSED);
      else this.established(c);
      return;
    }
    if (events & EPOLLERR) {
      if (log.debugOn) {
        const err = native.getsockoptInt(c.fd[side], SOL_SOCKET, SO_ERROR);
        log.debug(`Flow ${c.index} (tcp splice): error on side ${side}: ${err > 0 ? native.strerror(err) : 'EPOLLERR'}`);
      }
      this.close(c, true);
      return;
    }
    // side 0 is parked while connecting; a hang-up there shows once connected
    if (c.events & SpliceEvent.SPLICE_CONNECT) return;
    if (events & EPOLLOUT) {
      // the pipe towards this side is drained first, then its source is read again
      c.events &= ~outWait(side);
      if (!this.forward(c, side ^ 1)) return;
    }
    if (events & EPOLLRDHUP) c.events |= finRcvd(side);
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
      if (!this.forward(c, side)) return;
    }
    this.settle(c);
  }

  /**
   * Moves data read from side `from` to the other side.
   * @returns false if the connection was closed
   */
  private forward(c: SpliceConn, from: number): boolean {
    const to = from ^ 1;
    const pipe = c.pipe[from] as Pipe;
    const src = c.fd[from];
    const dst = c.fd[to];
    let moved = 0;
    for (let budget = FORWARD_BUDGET; budget > 0; budget--) {
      let readLen = 0;
      if (!(c.events & rdEof(from))) {
        const r = native.splice(src, pipe.w, pipe.size, SPLICE_FLAGS);
        if (r > 0) {
          readLen = r;
          moved += r;
          c.pending[from] += r;
          c.read[from] += r;
        } else if (r === 0) {
          c.events |= rdEof(from) | finRcvd(from);
        } else if (r !== -E.EAGAIN) {
          return this.fail(c, `read from side ${from}`, r);
        }
      }
      if (c.pending[from] > 0) {
        const more = readLen >= MORE_MIN_BYTES && readLen >= pipe.size * 0.9 ? SPLICE_F_MORE : 0;
        const w = native.splice(pipe.r, dst, c.pending[from], SPLICE_FLAGS | more);
        if (w > 0) {
          c.pending[from] -= w;
          c.written[to] += w;
          this.stats.bytes += w;
          if (this.shared) this.shared[from === 0 ? this.ixBytes : this.ixBytesBack] += w;
        } else if (w !== -E.EAGAIN) {
          return this.fail(c, `write to side ${to}`, w === 0 ? -E.EIO : w);
        }
        if (c.pending[from] > 0) {
          c.events |= outWait(to);
          break;
        }
      }
      if (readLen < pipe.size * REREAD_MIN_SHARE) break;
    }
    if (moved >= SMALL_MAX) c.bulkAt = this.now;
    else if (moved > 0 && this.now - c.bulkAt >= BULK_MS) this.smallAt = this.now;
    if ((c.events & rdEof(from)) && c.pending[from] === 0 && !(c.events & finSent(to))) {
      native.shutdown(dst, SHUT_WR);
      c.events |= finSent(to);
      if (log.debugOn) log.debug(`Flow ${c.index} (tcp splice): FIN_SENT_${to}`);
    }
    return true;
  }

  private fail(c: SpliceConn, what: string, r: number): false {
    if (log.debugOn) log.debug(`Flow ${c.index} (tcp splice): ${what}: ${native.strerror(-r)}`);
    this.close(c, true);
    return false;
  }

  /** After servicing: close when both FINs went through, else update epoll. */
  private settle(c: SpliceConn): void {
    if ((c.events & (SpliceEvent.FIN_SENT_0 | SpliceEvent.FIN_SENT_1)) ===
      (SpliceEvent.FIN_SENT_0 | SpliceEvent.FIN_SENT_1)) {
      this.close(c, false);
      return;
    }
    this.update(c);
  }

  /** Events a side's socket waits for in the connection's current state. */
  private wanted(c: SpliceConn, side: number): number {
    if (c.events & SpliceEvent.SPLICE_CONNECT) return side === 1 ? EPOLLOUT : PARKED;
    let ev = 0;
    if (!(c.events & rdEof(side)) && !(c.events & outWait(side ^ 1))) ev |= EPOLLIN | EPOLLRDHUP;
    if (c.events & outWait(side)) ev |= EPOLLOUT;
    return ev || PARKED;
  }

  private update(c: SpliceConn): void {
    for (let side = 0; side < 2; side++) {
      const ev = this.wanted(c, side);
      if (ev === c.watched[side]) continue;
      const r = this.host.mod(c.fd[side], ev, packRef(EpollType.TCP_SPLICE, (c.index << 1) | side));
      if (r < 0) {
        this.fail(c, 'epoll_ctl', r);
        return;
      }
      c.watched[side] = ev;
    }
  }

  // --- teardown --------------------------------------------------------------

  private resetClose(fd: number): void {
    native.setsockoptBytes(fd, SOL_SOCKET, SO_LINGER, LINGER_RESET);
    native.close(fd);
  }

  /** Closes sockets and pipes; `reset`: abort both sockets (SO_LINGER 0). */
  private close(c: SpliceConn, reset: boolean): void {
    if (log.debugOn) {
      const names = EVENT_NAMES.filter((_, i) => c.events & (1 << i)).join(' ');
      log.debug(`Flow ${c.index} (tcp splice): ${reset ? 'reset' : 'closed'} [${names}] ` +
        `${c.read[0]} bytes 0→1, ${c.read[1]} bytes 1→0`);
    }
    for (let side = 0; side < 2; side++) {
      const fd = c.fd[side];
      if (fd < 0) continue;
      this.host.del(fd);
      if (reset) this.resetClose(fd); else native.close(fd);
      c.fd[side] = -1;
    }
    for (let side = 0; side < 2; side++) {
      const p = c.pipe[side];
      if (p) closePipe(p);
      c.pipe[side] = null;
    }
    if (reset) this.stats.resets++;
    this.stats.closed++;
    // the index is reused only after this batch of epoll events: a stale
    // event for the old sockets must find no connection, not a new one
    this.conns[c.index] = null;
    this.freeLater.push(c.index);
    this.live--;
    if (this.shared) this.shared[this.ixActive] = this.live;
  }

  // --- deferred work and shutdown ------------------------------------------

  /**
   * @param all the 1 s timer: every pool; otherwise only namespace pools
   *   running low (unless a refill failed since the last timer pass, so a
   *   namespace that refuses sockets doesn't cost a thread per iteration)
   */
  private refillPools(all: boolean): void {
    const ns = this.host.nsfd >= 0;
    if (all) this.nsRefillFailed = false;
    for (const fam of [AF_INET, AF_INET6]) {
      if (!this.familyEnabled(fam)) continue;
      if (all) this.hostPool[fam].refill();
      const pool = this.nsPool[fam];
      if (ns && (all || (pool.size < NS_POOL_LOW && !this.nsRefillFailed))) {
        pool.refill();
        if (pool.size < NS_POOL_LOW) this.nsRefillFailed = true;
      }
    }
    if (all) this.pipes.refill();
  }

  private familyEnabled(fam: number): boolean {
    return fam === AF_INET ? this.host.cfg.ip4.enabled : this.host.cfg.ip6.enabled;
  }

  work(now: number): boolean {
    this.now = now;
    while (this.freeLater.length) this.free.push(this.freeLater.pop() as number);
    const timer = now >= this.nextRefill;
    if (timer) this.nextRefill = now + REFILL_MS;
    this.refillPools(timer);
    return false;
  }

  timeoutMs(now: number): number {
    return Math.max(0, this.nextRefill - now);
  }

  drained(now: number): boolean {
    this.now = now;
    if (this.live === 0) return true;
    let quiet = true;
    for (const c of this.conns) {
      if (!c) continue;
      if (c.events & SpliceEvent.SPLICE_CONNECT) {
        quiet = false;
        continue;
      }
      const before = c.read[0] + c.read[1] + c.written[0] + c.written[1];
      for (let side = 0; side < 2; side++) {
        if (!(c.events & rdEof(side)) || c.pending[side] > 0) {
          if (!this.forward(c, side)) break;
        }
      }
      if (!this.conns[c.index]) continue;
      this.settle(c);
      if (!this.conns[c.index]) continue;
      if (c.pending[0] || c.pending[1] || c.read[0] + c.read[1] + c.written[0] + c.written[1] !== before) quiet = false;
    }
    return quiet;
  }

  /** Closes everything (worker exit). */
  closeAll(): void {
    for (const c of this.conns) if (c) this.close(c, false);
    this.pipes.closeAll();
    for (const p of [this.hostPool, this.nsPool]) for (const fam of [AF_INET, AF_INET6]) p[fam].closeAll();
  }
}

/** pasta's spliced path; null for passt, which never splices. */
export function createSplicePath(host: SpliceHost): SplicePath | null {
  if (host.cfg.mode !== 'pasta') return null;
  return new SpliceConns(host);
}

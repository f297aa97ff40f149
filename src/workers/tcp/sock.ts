/**
 * Socket side of tap TCP connections (SPEC §4.2, §4.5, §4.11): data from a
 * host socket to the guest, acknowledged bytes leaving the socket, socket
 * events, outbound connect completion, and inbound (accepted) connections.
 *
 * Theory of operation
 * - No data buffer: bytes the host peer sent stay in the socket's receive
 *   queue until the guest acknowledges them. `sockToTap` peeks
 *   (MSG_PEEK|MSG_DONTWAIT) at most what the guest's window allows, with one
 *   recvmsg() whose iovecs are the payload areas of consecutive full-size
 *   records reserved in the output ring, then writes the headers around each
 *   payload. recvmsg fills iovecs in order, so every record but the last is
 *   full and the records' packed positions stay valid. Bytes already sent
 *   are skipped by the kernel with SO_PEEK_OFF (reset to 0 at establishment
 *   and on every rewind); without it they are peeked into a discard buffer.
 * - Over vhost-user, when a direct write may be made now (nothing of ours
 *   queued for tap-TX or unpublished, the gate free: TapOut.placeLock()),
 *   the peek goes straight into the guest's receive buffers instead, and
 *   only the headers are written in the ring (its reserved record, never
 *   ended) and copied in front of each payload: no copy of the payload in
 *   user space (`placeInGuest`). Without buffers for a frame, or with pcap
 *   (frames must be recorded, and checksummed), the frames are built in the
 *   ring as above.
 * - `consume` discards acknowledged bytes (recv(MSG_TRUNC)), which also
 *   moves the kernel's peek offset back by as much.
 * - Retransmission (timeout or duplicate ACK) rewinds seqToTap to
 *   seqAckFromTap and the peek offset to 0, and peeks again.
 * - Established sockets are watched edge-triggered: an event per arrival of
 *   data, so unacknowledged data sitting in the queue does not make epoll
 *   spin. Whenever we stop with data possibly left — guest window full, or
 *   no room in the output ring — the connection is STALLED and the code that
 *   opens the window (a guest ACK) or frees the ring (tap-TX) calls
 *   `sockToTap` again.
 * - EOF on the peek (the host peer closed and everything was sent) sends
 *   FIN+ACK to the guest; after a rewind past our FIN, the FIN is sent again.
 */
import { native, E } from '../../shared/native';
import {
  SOL_SOCKET, SO_ERROR, SO_PEEK_OFF, SO_SNDBUF, SO_RCVBUF, IPPROTO_TCP, TCP_NODELAY, MSG_PEEK, MSG_DONTWAIT,
  AF_INET, AF_INET6, SOCK_STREAM, SOCK_CLOEXEC,
  EPOLLERR, EPOLLHUP, EPOLLRDHUP, EPOLLIN, EPOLLOUT,
} from '../../shared/linux';
import { FRAME_KIND } from '../../shared/frameKinds';
import { recordSize } from '../../shared/ring/layout';
import { seqAfter, seqDiff } from '../../shared/wire/seq';
import { TCP_FLAG, TCP_HEADER_LEN } from '../../shared/wire/tcp';
import { PIF, INISIDE, TGTSIDE } from '../../shared/flow/table';
import { inanyIs4, inanyIsUnicast, inanyIsLoopback } from '../../shared/flow/inany';
import { sockaddrTo, sockaddrFrom } from '../../shared/sockaddr';
import { l4Offset } from '../l4/tapOut';
import { SOCK_BUF_MAX } from './splicePool';
import { log } from '../../shared/log';
import type { TcpCtx } from './ctx';
import { IOV_MAX, TCPI } from './ctx';
import {
  TcpConn, TCP_EV, TCP_FL, MAX_WS, MAX_WINDOW, ourMss,
} from './conn';
import { sendFlag, resetConn, fillDataSegment, readSndbuf, updateSeqAckWnd, framePayload } from './out';
import { initialSeq } from './isn';
import { VNET_HDR_LEN, type VirtioNetRx } from '../link/vhostUser/net';

/** Bytes per sockToTap call before yielding to other connections. */
const SOCK_BUDGET = 4 << 20;

/** Sets SO_PEEK_OFF (when supported); false if that failed. */
export function setPeekOff(ctx: TcpCtx, c: TcpConn, off: number): boolean {
  if (!ctx.peekOff) return true;
  return native.setsockoptInt(c.sock, SOL_SOCKET, SO_PEEK_OFF, off) === 0;
}

/** Queues the connection until the output ring has room (tap-TX wakes us). */
function waitRing(ctx: TcpCtx, c: TcpConn): void {
  ctx.out.ring.waitForSpace();
  ctx.setFlag(c, TCP_FL.STALLED);
  if (!(c.flags & TCP_FL.RING_WAIT)) {
    c.flags |= TCP_FL.RING_WAIT;
    ctx.ringWaiters.push(c.idx);
  }
}

/** Rewinds to the guest's last ACK so that everything unacknowledged is sent again. */
export function rewind(ctx: TcpCtx, c: TcpConn): boolean {
  c.seqToTap = c.seqAckFromTap;
  return setPeekOff(ctx, c, 0);
}

/**
 * Sends what the socket holds, as far as the guest's window and the output
 * ring allow (SPEC §4.5).
 */
export function sockToTap(ctx: TcpCtx, c: TcpConn): void {
  if (c.dead || !(c.events & TCP_EV.ESTABLISHED)) return;
  if (c.events & TCP_EV.TAP_FIN_SENT && seqAfter(c.seqToTap, c.seqFinToTap)) return; // all sent, FIN included
  const st = ctx.stats;
  let total = 0;
  for (;;) {
    let sent = seqDiff(c.seqToTap, c.seqAckFromTap);
    if (sent >= MAX_WINDOW * 2) {
      // the guest acknowledged beyond what we sent: start again from its ACK
      if (!rewind(ctx, c)) return resetConn(ctx, c, 'peek offset');
      sent = 0;
    }
    const wnd = c.wndFromTap;
    if (wnd === 0 || sent >= wnd) {
      ctx.setFlag(c, TCP_FL.STALLED | TCP_FL.ACK_FROM_TAP_DUE);
      return;
    }
    const budget = wnd - sent;
    updateSeqAckWnd(ctx, c, false, false);

    const out = ctx.out;
    const ring = out.ring;
    const seg = framePayload(ctx, c); // payload per frame
    const hdr = l4Offset(out.vnetLen, c.v4) + TCP_HEADER_LEN;
    const d0 = ring.beginWrite(hdr + seg);
    if (d0 < 0) {
      st.add('ringWaits');
      return waitRing(ctx, c);
    }
    const recSize = recordSize(hdr + seg);
    const offs = ctx.iovOffs;
    const lens = ctx.iovLens;
    let k = 0;
    // vhost-user: straight into the guest's buffers when a direct write may be made now
    const rx = ctx.noDataCsum && ctx.peekOff ? out.placeLock() : null;
    let r = NOT_PLACED;
    if (rx) {
      try {
        r = placeInGuest(ctx, c, rx, d0, hdr, seg, budget);
      } finally {
        out.placeDone();
      }
    }
    const placed = r !== NOT_PLACED;
    if (!placed) {
      let n = Math.floor(ring.contiguousFree() / recSize);
      const need = Math.ceil(budget / seg);
      if (n > need) n = need;
      if (n > IOV_MAX - 1) n = IOV_MAX - 1;
      for (let i = 0; i < n; i++) {
        offs[k] = d0 + i * recSize + hdr;
        const l = budget - i * seg;
        lens[k] = l < seg ? l : seg;
        k++;
      }
      r = !ctx.peekOff && sent
        ? peekAfter(ctx, c, ring.u8, offs, lens, k, sent)
        : native.recvIov(c.sock, ring.u8, offs, lens, k, MSG_PEEK | MSG_DONTWAIT);
    }
    if (r < 0) {
      if (r === -E.EAGAIN) {
        ctx.clearFlag(c, TCP_FL.STALLED);
        return;
      }
      st.add('peekErrors');
      return resetConn(ctx, c, `peek: ${native.strerror(-r)}`);
    }
    if (r === 0) {
      // end of stream: the host peer closed and we sent everything
      ctx.clearFlag(c, TCP_FL.STALLED);
      if (!(c.events & TCP_EV.SOCK_FIN_RCVD)) ctx.event(c, TCP_EV.SOCK_FIN_RCVD);
      if (!(c.events & TCP_EV.TAP_FIN_SENT) || c.seqToTap === c.seqFinToTap) {
        if (!sendFlag(ctx, c, TCP_FLAG.FIN | TCP_FLAG.ACK)) return waitRing(ctx, c);
        ctx.event(c, TCP_EV.TAP_FIN_SENT);
        ctx.setFlag(c, TCP_FL.ACK_FROM_TAP_DUE);
      }
      return;
    }
    let seq = c.seqToTap;
    let asked = 0;
    if (placed) {
      seq = (seq + r) >>> 0;
      st.v[ctx.stSegsToTap] += placedFrames;
      st.add('segsInPlace', placedFrames);
      asked = placedAsked;
    } else {
      let left = r;
      for (let i = 0; left > 0; i++) {
        const len = left < seg ? left : seg;
        const d = d0 + i * recSize;
        fillDataSegment(ctx, c, d, d + hdr - TCP_HEADER_LEN, seq, len);
        ring.endWrite(hdr + len, FRAME_KIND.TO_GUEST);
        seq = (seq + len) >>> 0;
        left -= len;
        st.v[ctx.stSegsToTap]++;
      }
      out.markDirty();
      for (let i = 0; i < k; i++) asked += lens[i];
    }
    if (r >= seg) c.bulkAt = ctx.now;
    else if (ctx.now - c.bulkAt >= 2) ctx.smallAt = ctx.now;
    c.seqToTap = seq;
    st.v[ctx.stBytesToTap] += r;
    c.bytesToTap += r;
    ctx.setFlag(c, TCP_FL.ACK_FROM_TAP_DUE);
    total += r;
    if (r < asked && !(c.events & TCP_EV.SOCK_FIN_RCVD)) {
      // the socket is drained for now: the next arrival brings an event
      // (after the peer's FIN no event comes: go on to peek the end)
      ctx.clearFlag(c, TCP_FL.STALLED);
      return;
    }
    if (total >= SOCK_BUDGET) {
      // more may be queued: come back in the next iteration
      return waitRing(ctx, c);
    }
  }
}

/** placeInGuest(): the caller builds the frames in the ring instead. */
const NOT_PLACED = -0x10000;
/** Most frames per in-place batch (a 64 KiB frame takes some 17 of the guest's 4 KiB buffers). */
const PLACE_FRAMES = 16;
const placeReg = new Int32Array(IOV_MAX);
const placeOff = new Float64Array(IOV_MAX);
const placeLen = new Int32Array(IOV_MAX);
const placeSizes = new Int32Array(PLACE_FRAMES);
/** The last placeInGuest(): frames that got bytes, and the bytes asked for. */
let placedFrames = 0;
let placedAsked = 0;

/**
 * vhost-user, in place: peeks up to `budget` bytes straight into the
 * guest's receive buffers, frames of `seg` payload bytes each, chains
 * taken for them first (VirtioNetRx.reserve()); then each frame's headers
 * are written in the ring's reserved record at d (scratch, never ended:
 * without a payload checksum they need no payload) and copied in front of
 * its payload. Returns the bytes peeked, 0 at end of stream, -errno (no
 * chain used then), or NOT_PLACED when the guest has no buffers for even
 * one frame now (the copying way then waits for them, or drops a frame
 * that never fits). Called under the gate (TapOut.placeLock()).
 */
function placeInGuest(ctx: TcpCtx, c: TcpConn, rx: VirtioNetRx, d: number, hdr: number, seg: number,
  budget: number): number {
  rx.beginPlace();
  let nIov = 0, frames = 0, asked = 0;
  while (frames < PLACE_FRAMES && asked < budget) {
    const len = budget - asked < seg ? budget - asked : seg;
    if (!rx.reserve(VNET_HDR_LEN + hdr + len)) break;
    const k = rx.placeSegs(frames, VNET_HDR_LEN + hdr, len, placeReg, placeOff, placeLen, nIov, IOV_MAX);
    if (k < 0) break; // reserved but not listed: endPlace() gives its chains back
    nIov = k;
    placeSizes[frames++] = len;
    asked += len;
  }
  placedFrames = 0;
  placedAsked = asked;
  if (frames === 0) {
    rx.endPlace(0, placeSizes);
    return NOT_PLACED;
  }
  const r = native.vuRecv(c.sock, rx.q.mem.u8s, placeReg, placeOff, placeLen, nIov, MSG_PEEK | MSG_DONTWAIT);
  if (r <= 0) {
    rx.endPlace(0, placeSizes);
    return r;
  }
  const u8 = ctx.out.u8;
  let seq = c.seqToTap, left = r, n = 0;
  for (; left > 0 && n < frames; n++) {
    const len = left < placeSizes[n] ? left : placeSizes[n];
    fillDataSegment(ctx, c, d, d + hdr - TCP_HEADER_LEN, seq, len);
    rx.placeBytes(n, VNET_HDR_LEN, u8, d, hdr);
    placeSizes[n] = hdr + len;
    seq = (seq + len) >>> 0;
    left -= len;
  }
  rx.endPlace(n, placeSizes);
  placedFrames = n;
  return r;
}

const zeroOff = new Int32Array(1);
const oneLen = new Int32Array(1);

/**
 * Kernels without SO_PEEK_OFF: peeks the bytes already sent and the new ones
 * into the discard buffer, then copies the new part into the frames (one
 * copy more, only on old kernels). Returns new bytes, 0 at end of stream,
 * or -errno.
 */
function peekAfter(ctx: TcpCtx, c: TcpConn, u8: Uint8Array, offs: Int32Array, lens: Int32Array, k: number,
  skip: number): number {
  const disc = ctx.discard as Uint8Array;
  let want = 0;
  for (let i = 0; i < k; i++) want += lens[i];
  if (skip + want > disc.length) want = disc.length - skip;
  oneLen[0] = skip + want;
  const r = native.recvIov(c.sock, disc, zeroOff, oneLen, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r < 0) return r;
  let got = r - skip;
  if (got <= 0) return got === 0 && c.events & TCP_EV.SOCK_FIN_RCVD ? 0 : -E.EAGAIN;
  let p = skip;
  for (let i = 0; i < k && got > 0; i++) {
    const n = got < lens[i] ? got : lens[i];
    u8.set(disc.subarray(p, p + n), offs[i]);
    p += n;
    got -= n;
  }
  return r - skip;
}

/**
 * The guest acknowledged up to `ack`: discard those bytes from the socket
 * (SPEC §4.5). Returns false if the discard failed (the ACK is then treated
 * as not received).
 */
export function consume(ctx: TcpCtx, c: TcpConn, ack: number): boolean {
  if (!seqAfter(ack, c.seqAckFromTap)) return true;
  let n = seqDiff(ack, c.seqAckFromTap);
  let finAcked = false;
  if (c.events & TCP_EV.TAP_FIN_SENT && seqAfter(ack, c.seqFinToTap)) {
    n--; // the FIN is not in the socket
    finAcked = true;
  }
  if (n > 0) {
    const r = native.recvDiscard(c.sock, n, MSG_DONTWAIT);
    if (r < 0) {
      if (log.debugOn) log.debug(`${ctx.tag(c)}: discard ${n}: ${native.strerror(-r)}`);
      return false;
    }
  }
  c.seqAckFromTap = ack;
  c.retrans = 0;
  if (finAcked && !(c.events & TCP_EV.TAP_FIN_ACKED)) ctx.event(c, TCP_EV.TAP_FIN_ACKED);
  return true;
}

/** Closes the connection once both directions are finished. */
export function checkDone(ctx: TcpCtx, c: TcpConn): void {
  if (c.dead) return;
  if ((c.events & (TCP_EV.SOCK_FIN_SENT | TCP_EV.TAP_FIN_ACKED)) === (TCP_EV.SOCK_FIN_SENT | TCP_EV.TAP_FIN_ACKED))
    ctx.close(c);
}

/** epoll event on the socket of a tap connection. */
export function sockHandler(ctx: TcpCtx, c: TcpConn, events: number): void {
  if (c.dead) return;
  c.lastActivity = ctx.now;
  if (c.events === TCP_EV.TAP_SYN_RCVD) {
    // connect() finished, or failed
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) connectDone(ctx, c);
    return;
  }
  if (events & EPOLLERR) {
    const err = native.getsockoptInt(c.sock, SOL_SOCKET, SO_ERROR);
    return resetConn(ctx, c, `socket error ${err > 0 ? native.strerror(err) : ''}`);
  }
  const ev = c.events;
  if (ev & TCP_EV.ESTABLISHED) {
    if (ev & TCP_EV.TAP_FIN_SENT && events & EPOLLHUP) return ctx.close(c);
    if ((ev & (TCP_EV.SOCK_FIN_SENT | TCP_EV.TAP_FIN_ACKED)) === (TCP_EV.SOCK_FIN_SENT | TCP_EV.TAP_FIN_ACKED))
      return ctx.close(c);
    if (events & (EPOLLRDHUP | EPOLLHUP) && !(ev & TCP_EV.SOCK_FIN_RCVD)) ctx.event(c, TCP_EV.SOCK_FIN_RCVD);
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) sockToTap(ctx, c);
    if (events & EPOLLOUT && !c.dead && c.flags & TCP_FL.ACK_TO_TAP_DUE) sendFlag(ctx, c, 0 /* ACK_IF_NEEDED */);
    return;
  }
  // handshake with the guest in progress (SYN+ACK or SYN sent)
  if (events & EPOLLHUP) return resetConn(ctx, c, 'hang-up during handshake');
  if (events & EPOLLRDHUP) c.events |= TCP_EV.SOCK_FIN_RCVD;
}

/** Our window scale towards the guest from the socket's TCP_INFO (just read). */
function wsFromInfo(ctx: TcpCtx): number {
  const ws = ctx.tinfo[TCPI.SND_WSCALE] & 0x0f;
  return ws < MAX_WS ? ws : MAX_WS;
}

/** Sets MSS and window scale towards the guest from the connected socket. */
function synParams(ctx: TcpCtx, c: TcpConn, guestWs: boolean): void {
  readSndbuf(c);
  const info = ctx.readInfo(c.sock);
  c.wsToTap = guestWs && info ? wsFromInfo(ctx) : 0;
  if (info) {
    ctx.noteRtt(c.hostAddr);
    c.lowRtt = ctx.isLowRtt(c.hostAddr);
  }
  const small = ctx.lowWmem && !(c.flags & TCP_FL.LOCAL) && !c.lowRtt;
  c.mssToTap = ourMss(ctx.cfg.mtu, c.v4, info ? ctx.infoU32(TCPI.SND_MSS) : 0, small);
}

/** Outbound connect finished (EPOLLOUT), or failed. */
export function connectDone(ctx: TcpCtx, c: TcpConn): void {
  const err = native.getsockoptInt(c.sock, SOL_SOCKET, SO_ERROR);
  if (err !== 0) {
    ctx.stats.add('refused');
    return resetConn(ctx, c, `connect: ${err > 0 ? native.strerror(err) : native.strerror(-err)}`);
  }
  synParams(ctx, c, c.guestOfferedWs);
  if (!sendFlag(ctx, c, TCP_FLAG.SYN | TCP_FLAG.ACK)) return resetConn(ctx, c, 'no room for SYN+ACK');
  c.seqAckFromTap = c.seqToTap;
  ctx.event(c, TCP_EV.TAP_SYN_ACK_SENT);
  ctx.setFlag(c, TCP_FL.ACK_FROM_TAP_DUE);
}

/** The handshake completed: start moving data. */
export function establish(ctx: TcpCtx, c: TcpConn): void {
  const fin = c.events & TCP_EV.SOCK_FIN_RCVD;
  ctx.event(c, TCP_EV.ESTABLISHED);
  if (fin) ctx.event(c, TCP_EV.SOCK_FIN_RCVD);
  ctx.clearFlag(c, TCP_FL.ACK_FROM_TAP_DUE);
  c.retrans = 0;
  if (!setPeekOff(ctx, c, 0)) resetConn(ctx, c, 'peek offset');
}

/**
 * True if addr is an address of this host (loopback, or bindable): a peer
 * there acknowledges as soon as its application reads, so we acknowledge
 * everything written instead of waiting for its (possibly delayed) ACKs.
 */
function isLocalAddr(ctx: TcpCtx, addr: Uint8Array, v4: boolean): boolean {
  if (inanyIsLoopback(addr, 0)) return true;
  const s = native.socket(v4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
  if (s < 0) return false;
  const n = sockaddrFrom(ctx.sa, 0, addr, 0, 0);
  const r = native.bind(s, ctx.sa.subarray(0, n));
  native.close(s);
  return r === 0;
}

/** Socket options of every tap-side socket (SPEC §4.12). */
export function sockOpts(ctx: TcpCtx, fd: number): void {
  if (!ctx.lowWmem) native.setsockoptInt(fd, SOL_SOCKET, SO_SNDBUF, SOCK_BUF_MAX);
  if (!ctx.lowRmem) native.setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, SOCK_BUF_MAX);
  native.setsockoptInt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
}

/**
 * A connection accepted on a forwarded port goes to the guest over the tap
 * (SPEC §4.2 "Outside → guest"): a flow, our SYN with MSS and window scale,
 * and the handshake timer. Takes ownership of fd (closed on failure).
 * @param peer the peer's sockaddr bytes from accept4
 * @param targetPort the guest port (listener port + delta)
 * @returns the connection, or null
 */
export function connFromSock(ctx: TcpCtx, fd: number, peer: Uint8Array, targetPort: number): TcpConn | null {
  const st = ctx.stats;
  const a = ctx.scratchAddr;
  const port = sockaddrTo(peer, 0, a, 0);
  if (port <= 0 || !inanyIsUnicast(a, 0) || targetPort === 0) {
    st.add('dropBadSyn');
    native.close(fd);
    return null;
  }
  const idx = ctx.table.alloc();
  if (idx < 0) {
    st.add('dropTableFull');
    st.add('dropped');
    native.close(fd);
    return null;
  }
  const c = ctx.newConn(idx);
  c.v4 = inanyIs4(a, 0);
  c.hostAddr.set(a);
  if (!ctx.nat.inboundSrc(a, 0, ctx.guest, c.ourAddr, 0)) {
    ctx.table.release(idx);
    st.add('dropBadSyn');
    native.close(fd);
    return null;
  }
  ctx.nat.inboundDst(c.ourAddr, 0, ctx.guest, c.guestAddr, 0);
  c.ourPort = port;
  c.guestPort = targetPort;
  if (!ctx.table.insert(idx, INISIDE, IPPROTO_TCP, PIF.TAP, c.ourAddr, 0, c.ourPort, c.guestAddr, 0, c.guestPort)) {
    // the guest already has a connection with this 4-tuple
    ctx.table.release(idx);
    st.add('dropBadSyn');
    native.close(fd);
    return null;
  }
  ctx.table.setKey(idx, TGTSIDE, IPPROTO_TCP, PIF.HOST, ctx.zeroAddr, 0, 0, a, 0, port);
  c.sock = fd;
  c.flowLabel = (fd * 2654435761) & 0xfffff;
  if (isLocalAddr(ctx, a, c.v4)) c.flags |= TCP_FL.LOCAL;
  sockOpts(ctx, fd);
  synParams(ctx, c, true);
  c.seqToTap = initialSeq(ctx, c);
  st.add('flows');
  st.add('accepted');
  st.v[ctx.stActive] = ctx.table.count;
  ctx.event(c, TCP_EV.SOCK_ACCEPTED);
  if (!sendFlag(ctx, c, TCP_FLAG.SYN)) {
    ctx.close(c);
    return null;
  }
  c.seqAckFromTap = c.seqToTap;
  ctx.setFlag(c, TCP_FL.ACK_FROM_TAP_DUE);
  return c;
}

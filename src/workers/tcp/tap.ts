/**
 * Segments from the guest (SPEC §4.2, §4.5, §4.10, §4.11): connection
 * set-up from a guest SYN, the handshake of connections we opened towards
 * the guest, ACKs, data, FIN and RST.
 *
 * Theory of operation
 * - tap-RX leaves guest frames in the ring towards this worker; the worker
 *   groups consecutive frames of one 4-tuple into a `TapBatch` (offsets into
 *   the ring, frames released after the batch) and calls `tapHandler` once
 *   per batch (STYLE.md guideline 9).
 * - Unknown 4-tuple: a SYN without ACK opens a connection (`connFromTap`:
 *   flow, NAT target §2.6, non-blocking socket, local-destination test,
 *   connect); anything else is dropped silently, as the original does.
 *   A refused connect becomes RST+ACK acknowledging the guest's SYN, which
 *   the guest's kernel accepts in SYN-SENT: its connect() fails at once.
 * - Handshake: a retransmitted SYN before our SYN+ACK is ignored (the
 *   original answers it with RST, a quirk SPEC §13 lets us fix); after it,
 *   our SYN+ACK is sent again. The guest's ACK establishes. For connections
 *   we opened, the guest's SYN+ACK (MSS, window scale) establishes; RST
 *   closes (and resets the host peer); anything else is answered with RST.
 * - Established, one batch: RST closes at once (the host socket is aborted
 *   with SO_LINGER 0). ACKs: the highest one is applied (acknowledged bytes
 *   leave the socket), the window updated; a pure ACK repeating the highest
 *   ACK with an unchanged window while data is outstanding, when it is the
 *   last ACK of the batch, is a duplicate → fast retransmit (RFC 5681 §3.2,
 *   simplified), once per ACK value (the duplicates of segments sent before
 *   the rewind keep coming).
 * - Data: segments before seqFromTap are dropped (≤ 1 byte behind, or a
 *   pure ACK behind: keep-alive, answered with an ACK), overlaps trimmed,
 *   gaps held while later segments of the batch fill them; all in-order
 *   bytes go out in one sendmsg(). A gap left over → the ACK and three
 *   duplicates, once per hole (exact seqFromTap, not the original's 8 bits).
 *   EAGAIN or a partial write consume what the kernel took; EPIPE
 *   acknowledges and resets. A full segment or more is acknowledged at once;
 *   less within 1 ms, unless data from the socket carries the ACK first (a
 *   request's answer usually does). A FIN after all data → shutdown(SHUT_WR)
 *   and an ACK; after the guest's FIN only ACKs are processed.
 * - Malformed or unexpected input (SYN in an established connection, ACK
 *   beyond what we sent, bad data offset — filtered before) is a counted
 *   drop, never an exception.
 */
import { native, E } from '../../shared/native';
import {
  AF_INET, AF_INET6, SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC, IPPROTO_TCP, TCP_MAXSEG, SOL_SOCKET,
  SO_BINDTODEVICE, MSG_DONTWAIT, MSG_NOSIGNAL, SHUT_WR,
} from '../../shared/linux';
import { TcpView, TCP_FLAG } from '../../shared/wire/tcp';
import { seqAfter, seqBefore, seqDiff } from '../../shared/wire/seq';
import { PIF, INISIDE, TGTSIDE } from '../../shared/flow/table';
import { inanyCopy, inanyIsUnicast, inanyEq } from '../../shared/flow/inany';
import { sockaddrFrom } from '../../shared/sockaddr';
import { log } from '../../shared/log';
import type { TcpCtx } from './ctx';
import {
  TcpConn, TCP_EV, TCP_FL, MAX_WINDOW, guestMss, guestWs,
} from './conn';
import { sendFlag, resetConn, abortSock, ACK_IF_NEEDED, DUP_ACK, alreadySent } from './out';
import {
  sockToTap, consume, connectDone, establish, sockOpts, checkDone, rewind,
} from './sock';
import { initialSeq } from './isn';
import { GuestBatch, GUEST_BATCH_MAX } from '../l4/tapIn';

/** Full segments this recent make a connection "bulk": no delayed ACK, no polling. */
const BULK_MS = 2;

/** Most frames in one batch. */
export const BATCH_MAX = GUEST_BATCH_MAX;

/**
 * Consecutive guest frames of one 4-tuple, still in the input ring
 * (l4/tapIn.ts: the shape the UDP worker takes too): `off` holds the TCP
 * header offsets, `len` the segment lengths (header and payload).
 */
export class TapBatch extends GuestBatch {
  /** Segments already used or to ignore. */
  readonly skip = new Uint8Array(BATCH_MAX);
}

/** Handles one batch; frames are released by the caller afterwards. */
export function tapHandler(ctx: TcpCtx, b: TapBatch, v: TcpView): void {
  const st = ctx.stats;
  v.reset(b.off[0], b.len[0]);
  const sport = v.srcPort;
  const dport = v.dstPort;
  const our = ctx.keyOur;
  const guest = ctx.keyGuest;
  if (!b.addresses(guest, 0, our, 0)) {
    st.add('dropMalformed', b.n);
    st.add('dropped', b.n);
    return;
  }
  const ref = ctx.table.lookup(IPPROTO_TCP, PIF.TAP, our, 0, dport, guest, 0, sport);
  let c: TcpConn | null = ref >= 0 ? ctx.conn(ref >> 1) : null;
  let start = 0;
  if (!c) {
    if ((v.flags & (TCP_FLAG.SYN | TCP_FLAG.ACK | TCP_FLAG.RST | TCP_FLAG.FIN)) !== TCP_FLAG.SYN) {
      st.add('dropNoFlow', b.n);
      st.add('dropped', b.n);
      return;
    }
    c = connFromTap(ctx, v, b.v4, our, guest, sport, dport);
    if (!c || b.n === 1) return;
    start = 1;
  }
  c.lastActivity = ctx.now;
  for (let i = start; i < b.n; i++) b.skip[i] = 0;

  if (c.events & TCP_EV.SOCK_ACCEPTED) {
    v.reset(b.off[start], b.len[start]);
    if (!tapSynAck(ctx, c, v)) return;
    start++;
    if (start >= b.n) return;
  } else if (!(c.events & TCP_EV.ESTABLISHED)) {
    // TAP_SYN_RCVD: wait for our SYN+ACK to be answered
    for (; start < b.n; start++) {
      v.reset(b.off[start], b.len[start]);
      const fl = v.flags;
      if (fl & TCP_FLAG.RST) return rstFromTap(ctx, c, null);
      if (fl & TCP_FLAG.SYN) {
        if (!(fl & TCP_FLAG.ACK) && c.events & TCP_EV.TAP_SYN_ACK_SENT && v.seqNumber === ((c.seqInitFromTap - 1) >>> 0))
          resendSynAck(ctx, c);
        continue; // retransmitted SYN while connecting: ignore
      }
      if (!(c.events & TCP_EV.TAP_SYN_ACK_SENT)) continue;
      if (!(fl & TCP_FLAG.ACK)) continue;
      if (v.ackNumber !== c.seqToTap) return resetConn(ctx, c, 'bad ACK in handshake');
      windowFromTap(c, v.window, true);
      establish(ctx, c);
      if (c.dead) return;
      sockToTap(ctx, c); // the host peer may have spoken first
      if (c.dead) return;
      break;
    }
    if (start >= b.n) return;
  }
  tapData(ctx, c, b, v, start);
  if (!c.dead) checkDone(ctx, c);
}

/** Resends our SYN+ACK (the guest retransmitted its SYN). */
function resendSynAck(ctx: TcpCtx, c: TcpConn): void {
  c.seqToTap = (c.seqToTap - 1) >>> 0;
  sendFlag(ctx, c, TCP_FLAG.SYN | TCP_FLAG.ACK);
}

/** Applies a window field from the guest (SYN segments are unscaled). */
function windowFromTap(c: TcpConn, raw: number, force: boolean): void {
  let w = raw * (1 << c.wsFromTap);
  if (w > MAX_WINDOW) w = MAX_WINDOW;
  // a window shrinking to zero with data outstanding is ignored (SPEC §4.5)
  if (w === 0 && !force && alreadySent(c) > 0) return;
  c.wndFromTap = w;
  c.wndFromTapRaw = raw;
}

/**
 * A SYN for an unknown 4-tuple: a new outbound connection (SPEC §4.2).
 * Returns the connection (maybe already reset), or null if the SYN was dropped.
 */
function connFromTap(ctx: TcpCtx, v: TcpView, v4: boolean, our: Uint8Array, guest: Uint8Array, sport: number,
  dport: number): TcpConn | null {
  const st = ctx.stats;
  if (!sport || !dport || !inanyIsUnicast(our, 0) || !inanyIsUnicast(guest, 0) || inanyEq(our, 0, guest, 0)) {
    st.add('dropBadSyn');
    st.add('dropped');
    return null;
  }
  const idx = ctx.table.alloc();
  if (idx < 0) {
    st.add('dropTableFull');
    st.add('dropped');
    return null;
  }
  const c = ctx.newConn(idx);
  c.v4 = v4;
  inanyCopy(c.ourAddr, 0, our, 0);
  inanyCopy(c.guestAddr, 0, guest, 0);
  c.ourPort = dport;
  c.guestPort = sport;
  ctx.table.insert(idx, INISIDE, IPPROTO_TCP, PIF.TAP, our, 0, dport, guest, 0, sport);
  ctx.nat.outbound(IPPROTO_TCP, our, 0, dport, c.hostAddr, 0);
  ctx.table.setKey(idx, TGTSIDE, IPPROTO_TCP, PIF.HOST, ctx.zeroAddr, 0, 0, c.hostAddr, 0, dport);
  st.add('flows');
  st.v[ctx.stActive] = ctx.table.count;

  synOptionsFromGuest(c, v);
  const seq = v.seqNumber;
  c.seqInitFromTap = c.seqFromTap = c.seqAckToTap = (seq + 1) >>> 0;
  c.seqToTap = c.seqAckFromTap = initialSeq(ctx, c);
  if (v.payloadLen) st.add('synPayload'); // not acknowledged: the guest sends it again

  const af = v4 ? AF_INET : AF_INET6;
  let s = native.socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (s >= 0) {
    // local-destination test: binding to the destination fails when the
    // address is ours and the port is in use (SPEC §4.2 step 3)
    const br = native.bind(s, targetSockaddr(ctx, c, dport));
    if (br === 0) {
      native.close(s);
      s = native.socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    } else if (br !== -E.EADDRNOTAVAIL && br !== -E.EACCES) {
      c.flags |= TCP_FL.LOCAL;
    }
  }
  if (s < 0) {
    log.debug(`TCP: socket: ${native.strerror(-s)}`);
    c.events = TCP_EV.TAP_SYN_RCVD;
    resetConn(ctx, c, 'no socket');
    return c;
  }
  c.sock = s;
  c.flowLabel = (s * 2654435761) & 0xfffff;
  sockOpts(ctx, s);
  native.setsockoptInt(s, IPPROTO_TCP, TCP_MAXSEG, c.mss);
  const fam = v4 ? ctx.nat.v4 : ctx.nat.v6;
  if (fam.outbound) {
    const oa = new Uint8Array(28);
    const n = sockaddrFrom(oa, 0, fam.outbound, 0, 0);
    const r = native.bind(s, oa.subarray(0, n));
    if (r < 0) log.debug(`TCP: bind to outbound address: ${native.strerror(-r)}`);
  }
  if (fam.outboundIf) {
    const r = native.setsockoptBytes(s, SOL_SOCKET, SO_BINDTODEVICE, Buffer.from(`${fam.outboundIf}\0`));
    if (r < 0) log.debug(`TCP: SO_BINDTODEVICE ${fam.outboundIf}: ${native.strerror(-r)}`);
  }
  if (log.debugOn) {
    log.debug(`${ctx.tag(c)}: SYN from guest, connecting${c.flags & TCP_FL.LOCAL ? ' (local)' : ''}`);
  }
  ctx.event(c, TCP_EV.TAP_SYN_RCVD);
  const r = native.connect(s, targetSockaddr(ctx, c, dport));
  if (r === 0) {
    connectDone(ctx, c);
  } else if (r !== -E.EINPROGRESS) {
    st.add('refused');
    resetConn(ctx, c, `connect: ${native.strerror(-r)}`);
  } else {
    ctx.setFlag(c, TCP_FL.ACK_FROM_TAP_DUE);
  }
  return c;
}

/** sockaddr of the host-side target (scratch bytes). */
function targetSockaddr(ctx: TcpCtx, c: TcpConn, port: number): Uint8Array {
  const n = sockaddrFrom(ctx.sa, 0, c.hostAddr, 0, port);
  return ctx.sa.subarray(0, n);
}

/** MSS, window scale and window from the guest's SYN or SYN+ACK at v. */
function synOptionsFromGuest(c: TcpConn, v: TcpView): void {
  v.parseOptions();
  c.mss = guestMss(v.optMss, c.v4);
  c.guestOfferedWs = v.optWs >= 0;
  c.wsFromTap = guestWs(v.optWs);
  c.wndFromTap = v.window || 1;
  c.wndFromTapRaw = v.window;
}

/** A reset from the guest: the host side is reset too and the connection goes. */
function rstFromTap(ctx: TcpCtx, c: TcpConn, why: string | null): void {
  ctx.stats.add('resetsFromTap');
  if (why && log.debugOn) log.debug(`${ctx.tag(c)}: ${why}`);
  abortSock(c);
  ctx.close(c);
}

/** The guest's answer to our SYN (connection accepted on a forwarded port). */
function tapSynAck(ctx: TcpCtx, c: TcpConn, v: TcpView): boolean {
  const fl = v.flags;
  if (fl & TCP_FLAG.RST) {
    rstFromTap(ctx, c, 'refused by the guest');
    return false;
  }
  if ((fl & (TCP_FLAG.SYN | TCP_FLAG.ACK | TCP_FLAG.FIN)) !== (TCP_FLAG.SYN | TCP_FLAG.ACK) ||
      v.ackNumber !== c.seqToTap) {
    resetConn(ctx, c, 'unexpected segment in handshake');
    return false;
  }
  synOptionsFromGuest(c, v);
  if (!c.guestOfferedWs) c.wsToTap = 0;
  c.seqInitFromTap = c.seqFromTap = (v.seqNumber + 1) >>> 0;
  establish(ctx, c);
  if (c.dead) return false;
  sendFlag(ctx, c, TCP_FLAG.ACK);
  sockToTap(ctx, c);
  return !c.dead;
}

/** Data, ACKs, FIN and RST of an established connection (SPEC §4.11). */
function tapData(ctx: TcpCtx, c: TcpConn, b: TapBatch, v: TcpView, start: number): void {
  const st = ctx.stats;
  const n = b.n;
  let ackSeen = false;
  let maxAck = c.seqAckFromTap;
  let maxWnd = c.wndFromTapRaw;
  let dup = false;
  let fin = false;
  let finEnd = 0;

  // pass 1: RST, ACKs, FIN
  for (let i = start; i < n; i++) {
    v.reset(b.off[i], b.len[i]);
    const fl = v.flags;
    if (fl & TCP_FLAG.RST) return rstFromTap(ctx, c, 'RST from guest');
    // a SYN in a synchronised connection (our SYN+ACK retransmitted by a
    // confused guest, or garbage), or a segment without ACK: ignored
    if (fl & TCP_FLAG.SYN || !(fl & TCP_FLAG.ACK)) {
      b.skip[i] = 1;
      st.add('dropMalformed');
      st.add('dropped');
      continue;
    }
    const ack = v.ackNumber;
    const wnd = v.window;
    if (seqAfter(ack, c.seqToTap)) {
      // acknowledges what we never sent: drop it (RFC 9293 §3.10.7.4)
      b.skip[i] = 1;
      st.add('dropOutOfWindow');
      st.add('dropped');
      continue;
    }
    ackSeen = true;
    if (seqAfter(ack, maxAck)) {
      maxAck = ack;
      maxWnd = wnd;
      dup = false;
    } else if (ack === maxAck) {
      const pure = v.payloadLen === 0 && !(fl & TCP_FLAG.FIN);
      dup = pure && wnd === maxWnd && seqBefore(ack, c.seqToTap);
      maxWnd = wnd;
    } else {
      dup = false; // an older ACK: ignored
    }
    if (fl & TCP_FLAG.FIN) {
      fin = true;
      finEnd = (v.seqNumber + v.payloadLen) >>> 0;
    }
  }

  // ACKs: acknowledged bytes leave the socket
  if (ackSeen) {
    const before = c.seqAckFromTap;
    if (!consume(ctx, c, maxAck)) {
      ackSeen = false;
    } else {
      windowFromTap(c, maxWnd, false);
      if (c.wndFromTap === 0) c.retrans = 0; // a live guest with a closed window: persist, don't give up
      if (c.seqAckFromTap === c.seqToTap) ctx.clearFlag(c, TCP_FL.ACK_FROM_TAP_DUE);
      else if (c.seqAckFromTap !== before) ctx.setFlag(c, TCP_FL.ACK_FROM_TAP_DUE);
    }
    if (c.dead) return;
  }
  if (dup && ackSeen && c.retransFastAt === c.seqAckFromTap && c.retransFastDone) {
    dup = false; // already resent from this ACK: the rest of its duplicates were in flight
  }
  if (dup && ackSeen) {
    st.add('retransFast');
    c.retransFastAt = c.seqAckFromTap;
    c.retransFastDone = true;
    if (!rewind(ctx, c)) return resetConn(ctx, c, 'peek offset');
  }

  // pass 2: in-order payload into one sendmsg()
  let expect = c.seqFromTap;
  let keep = -1;
  let nIov = 0;
  let total = 0;
  let keepalive = false;
  const offs = ctx.iovOffs;
  const lens = ctx.iovLens;
  const finRcvd = (c.events & TCP_EV.TAP_FIN_RCVD) !== 0;
  for (let i = start; i < n; i++) {
    if (b.skip[i]) continue;
    v.reset(b.off[i], b.len[i]);
    let len = v.payloadLen;
    if (!len) {
      // a keep-alive probe: a pure ACK one byte behind (RFC 9293 §3.8.4)
      if (seqBefore(v.seqNumber, c.seqFromTap)) keepalive = true;
      continue;
    }
    if (finRcvd) {
      b.skip[i] = 1;
      continue;
    }
    const seq = v.seqNumber;
    let off = 0;
    if (seqBefore(seq, expect)) {
      const behind = seqDiff(expect, seq);
      if (len <= 1 && behind === 1) {
        keepalive = true;
        b.skip[i] = 1;
        continue;
      }
      if (behind >= len) {
        b.skip[i] = 1;
        keepalive = true; // a retransmission of what we have: acknowledge again
        continue;
      }
      off = behind;
    } else if (seq !== expect) {
      if (!seqAfter(seq, expect)) {
        // beyond the comparison horizon: garbage
        b.skip[i] = 1;
        st.add('dropOutOfWindow');
        st.add('dropped');
        continue;
      }
      if (keep < 0) keep = i;
      continue;
    }
    len -= off;
    if (nIov < offs.length) {
      offs[nIov] = v.payloadOff + off;
      lens[nIov] = len;
      nIov++;
    }
    total += len;
    expect = (expect + len) >>> 0;
    b.skip[i] = 1;
    if (keep >= 0) {
      // a held segment may now be in order
      i = keep - 1;
      keep = -1;
    }
  }

  let partial = false;
  if (nIov) {
    const r = native.sendIov(c.sock, b.u8, offs, lens, nIov, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0) {
      if (r === -E.EAGAIN) {
        partial = true;
        st.add('sendEagain');
      } else if (r === -E.EPIPE) {
        c.seqFromTap = expect;
        sendFlag(ctx, c, TCP_FLAG.ACK);
        return resetConn(ctx, c, 'host peer gone');
      } else {
        return resetConn(ctx, c, `send: ${native.strerror(-r)}`);
      }
    } else {
      c.seqFromTap = (c.seqFromTap + r) >>> 0;
      st.v[ctx.stBytesFromTap] += r;
      c.bytesFromTap += r;
      if (r < total) {
        partial = true;
        st.add('sendPartial');
      }
    }
  }

  if (ackSeen && (dup || c.flags & TCP_FL.STALLED)) {
    sockToTap(ctx, c);
    if (c.dead) return;
  }

  if (keep >= 0 && !partial) {
    // a gap is left: ask for the missing bytes with duplicate ACKs, once per
    // hole (the original keeps only 8 bits of seqFromTap for this, which
    // never change when segments are multiples of 256 bytes: a second hole
    // then got no ACK at all)
    if (c.seqDupAck !== c.seqFromTap || !c.dupAckSent) {
      c.seqDupAck = c.seqFromTap;
      c.dupAckSent = true;
      sendFlag(ctx, c, TCP_FLAG.ACK | DUP_ACK);
    }
    return;
  }
  if (fin && !partial && !finRcvd && c.seqFromTap === finEnd) {
    c.seqFromTap = (c.seqFromTap + 1) >>> 0;
    ctx.event(c, TCP_EV.TAP_FIN_RCVD);
    if (!(c.events & TCP_EV.SOCK_FIN_RCVD)) ctx.setFlag(c, TCP_FL.ACTIVE_CLOSE);
    native.shutdown(c.sock, SHUT_WR);
    ctx.event(c, TCP_EV.SOCK_FIN_SENT);
    sendFlag(ctx, c, TCP_FLAG.ACK);
    return;
  }
  if (fin && finRcvd) keepalive = true; // retransmitted FIN: acknowledge it again
  if (keepalive) {
    st.add('keepalives');
    sendFlag(ctx, c, TCP_FLAG.ACK);
  } else if (total >= c.mssToTap || ctx.now - c.bulkAt < BULK_MS) {
    if (total >= c.mssToTap) c.bulkAt = ctx.now;
    sendFlag(ctx, c, ACK_IF_NEEDED);
  } else if (total) {
    ctx.smallAt = ctx.now;
    // a small segment, likely a request: its answer, if quick, carries the
    // ACK (one frame and one guest wake-up fewer per round trip)
    ctx.delayAck(c);
  }
}

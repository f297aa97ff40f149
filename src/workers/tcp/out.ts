/**
 * Segments from the TCP worker to the guest: flag segments (SYN, SYN+ACK,
 * ACK, FIN+ACK, RST), the headers of data segments, and the ACK number and
 * window we advertise (SPEC §4.6, §4.7, §4.13).
 *
 * Theory of operation
 * - Every segment carries ack = seqAckToTap and the window wndToTap scaled
 *   by wsToTap (≤ 65535); SYN and SYN+ACK carry the window unscaled and
 *   exactly the options MSS, NOP, window scale (data offset 7). SYN and FIN
 *   consume a sequence number. Data segments: ACK only, data offset 5.
 * - ACK number: everything written to the socket (seqFromTap) when the
 *   kernel lacks tcpi_bytes_acked, the send buffer is small, the peer is
 *   local or low-RTT, the connection is closing, or a flag segment is being
 *   sent; otherwise what the host peer has acknowledged (bytes_acked + the
 *   guest's initial sequence), never moving backwards — so that the guest's
 *   retransmission logic covers the whole path.
 * - Window: tcpi_snd_wnd (the host peer's receive window) capped by the
 *   send-buffer estimate — for a local or low-RTT peer the send-buffer
 *   estimate alone — less what we acknowledged beyond the peer's own ACK
 *   (those bytes still sit in the socket: without this the guest may send
 *   more than sendmsg() takes, and has to retransmit); at most 16 MiB, at
 *   least 14600 during the handshake. A zero window sets ACK_TO_TAP_DUE so
 *   that it is polled again 10 ms later (and EPOLLOUT is watched). On the
 *   data path the window is refreshed from TCP_INFO only when it is small
 *   (≤ 14600).
 * - ACK_IF_NEEDED sends a pure ACK only if the ACK number changed or the
 *   window opened from less than two MSS or grew by half. DUP_ACK sends the
 *   ACK and three duplicates of it (the guest's fast retransmit wants three;
 *   the original sends one, which without SACK leaves the guest to its
 *   retransmission timeout).
 * - Checksums: headers in JavaScript, payloads with the native sum
 *   (wire/checksum.ts) — or, with the tap's virtio-net header, not at all:
 *   data frames ask for checksum completion (NEEDS_CSUM) and, when longer
 *   than the guest's MSS, for segmentation (GSO), so that one 64 KiB frame
 *   carries many MSS-sized segments even at MTU 1500. Over vhost-user
 *   without pcap data frames carry checksum 0: the virtio-net header says
 *   DATA_VALID and the guest does not check (the C passt does the same).
 * - A full output ring drops the flag segment (counted); the caller keeps
 *   ACK_TO_TAP_DUE so that the ACK is retried.
 */
import { native } from '../../shared/native';
import {
  SOL_SOCKET, SO_SNDBUF, SO_LINGER, VIRTIO_NET_HDR_LEN, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
} from '../../shared/linux';
import { MAX_FRAME } from '../../shared/frameKinds';
import { TCP_FLAG, TCP_FIELD, writeTcpHeader, writeTcpSynOptions, TCP_SYN_OPTIONS_LEN, TCP_HEADER_LEN } from '../../shared/wire/tcp';
import { wr16 } from '../../shared/wire/bytes';
import { IPPROTO_TCP } from '../../shared/linux';
import { sum16, csum, finish, fold } from '../../shared/wire/checksum';
import { seqAfter, seqDiff } from '../../shared/wire/seq';
import { TapOut, l4Offset } from '../l4/tapOut';
import { log } from '../../shared/log';
import type { TcpCtx } from './ctx';
import { TCPI } from './ctx';
import {
  TcpConn, TCP_EV, TCP_FL, MAX_WINDOW, WINDOW_DEFAULT, SNDBUF_SMALL, sndbufEstimate,
} from './conn';

/** sendFlag(): send a pure ACK only if the ACK number or window changed. */
export const ACK_IF_NEEDED = 0;
/** sendFlag() modifier: send the ACK and three duplicates of it. */
export const DUP_ACK = 0x100;

const CLOSING = TCP_EV.SOCK_FIN_RCVD | TCP_EV.SOCK_FIN_SENT | TCP_EV.TAP_FIN_RCVD | TCP_EV.TAP_FIN_SENT;

/** Reads SO_SNDBUF into the connection's estimate. */
export function readSndbuf(c: TcpConn): void {
  c.sndbuf = sndbufEstimate(native.getsockoptInt(c.sock, SOL_SOCKET, SO_SNDBUF));
}

/**
 * Updates seqAckToTap and wndToTap (SPEC §4.6).
 * @param forceSeq acknowledge everything written to the socket
 * @param refresh read TCP_INFO for the window even when it is large
 * @returns true if the ACK number changed or the window grew enough to tell
 */
export function updateSeqAckWnd(ctx: TcpCtx, c: TcpConn, forceSeq: boolean, refresh: boolean): boolean {
  const prevAck = c.seqAckToTap;
  const prevWnd = c.wndToTap;
  let info = false;
  const near = (c.flags & TCP_FL.LOCAL) !== 0 || c.lowRtt;

  if (!ctx.hasBytesAcked || c.sndbuf < SNDBUF_SMALL || near || (c.events & CLOSING) !== 0 || forceSeq) {
    c.seqAckToTap = c.seqFromTap;
  } else if (c.seqAckToTap !== c.seqFromTap) {
    if (!ctx.readInfo(c.sock)) return false;
    info = true;
    const v = (ctx.infoBytesAcked() + c.seqInitFromTap) >>> 0;
    if (seqAfter(v, c.seqAckToTap) && !seqAfter(v, c.seqFromTap)) c.seqAckToTap = v;
  }

  let wnd: number;
  if (!ctx.hasSndWnd) {
    if (ctx.lowWmem) readSndbuf(c);
    wnd = Math.min(c.sndbuf, MAX_WINDOW);
  } else {
    if (!info) {
      if (!refresh && prevWnd > WINDOW_DEFAULT) return c.seqAckToTap !== prevAck;
      if (!ctx.readInfo(c.sock)) return c.seqAckToTap !== prevAck;
    }
    if (ctx.lowWmem) readSndbuf(c);
    // a local or low-RTT peer drains what we write at once: its window
    // matters less than room in our send buffer
    wnd = near ? c.sndbuf : Math.min(ctx.infoU32(TCPI.SND_WND), c.sndbuf);
    if (ctx.hasBytesAcked) {
      // The right edge we offer is where the host peer acknowledged plus
      // that room; bytes written but not yet acknowledged by the peer still
      // occupy the socket, so an ACK ahead of the peer's shrinks the window
      // by as much — else the guest sends what sendmsg() cannot take.
      const ahead = seqDiff(c.seqAckToTap, (ctx.infoBytesAcked() + c.seqInitFromTap) >>> 0);
      if (ahead < MAX_WINDOW) wnd = wnd > ahead ? wnd - ahead : 0;
    }
    if (wnd > MAX_WINDOW) wnd = MAX_WINDOW;
    if (!(c.events & TCP_EV.ESTABLISHED) && wnd < WINDOW_DEFAULT) wnd = WINDOW_DEFAULT;
  }
  let field = wnd >>> c.wsToTap;
  if (field > 0xffff) field = 0xffff;
  c.wndToTap = field << c.wsToTap;
  if (field === 0) ctx.setFlag(c, TCP_FL.ACK_TO_TAP_DUE);
  if ((prevWnd === 0) !== (field === 0)) ctx.updateEpoll(c);
  if (c.seqAckToTap !== prevAck) return true;
  // a window update alone is worth a segment when it opens a small window
  // or grows it by half; a shrinking one waits for the next ACK
  const w = c.wndToTap;
  return w > prevWnd && (prevWnd < 2 * c.mss || w - prevWnd >= prevWnd >> 1);
}

/** Window field for a segment of c. */
function windowField(c: TcpConn, syn: boolean): number {
  const w = syn ? c.wndToTap : c.wndToTap >>> c.wsToTap;
  return w > 0xffff ? 0xffff : w;
}

/**
 * Writes one segment without payload to the output ring.
 * @returns false if the ring was full (nothing written)
 */
function emit(ctx: TcpCtx, c: TcpConn, tcpFlags: number, seq: number, ack: number): boolean {
  const o = ctx.out;
  const syn = (tcpFlags & TCP_FLAG.SYN) !== 0;
  const optLen = syn ? TCP_SYN_OPTIONS_LEN : 0;
  const l4Len = TCP_HEADER_LEN + optLen;
  const p = o.begin(c.v4, l4Len);
  if (p < 0) {
    ctx.stats.add('dropRingFull');
    ctx.stats.add('dropped');
    return false;
  }
  const u8 = o.u8;
  writeTcpHeader(u8, p, c.ourPort, c.guestPort, seq, ack, tcpFlags, windowField(c, syn), optLen);
  if (syn) writeTcpSynOptions(u8, p + TCP_HEADER_LEN, c.mssToTap, c.wsToTap);
  const s = finish(sum16(u8, p, l4Len, TapOut.pseudoSum(c.ourAddr, 0, c.guestAddr, 0, IPPROTO_TCP, l4Len)));
  wr16(u8, p + TCP_FIELD.CHECKSUM, s);
  o.finish(c.ourAddr, 0, c.guestAddr, 0, IPPROTO_TCP, l4Len, c.flowLabel);
  ctx.stats.v[ctx.stFlagsToTap]++;
  return true;
}

/**
 * Sends a flag segment (TCP_FLAG bits, or ACK_IF_NEEDED, optionally with
 * DUP_ACK). SYN and FIN advance seqToTap.
 * @returns false if nothing could be written (ring full)
 */
export function sendFlag(ctx: TcpCtx, c: TcpConn, flags: number): boolean {
  let tcpFlags = flags & 0xff;
  {
    const changed = updateSeqAckWnd(ctx, c, tcpFlags !== 0, true);
    if (tcpFlags === 0) {
      if (!changed) {
        if (c.seqAckToTap === c.seqFromTap && c.wndToTap) ctx.clearFlag(c, TCP_FL.ACK_TO_TAP_DUE);
        return true;
      }
      tcpFlags = TCP_FLAG.ACK;
    }
  }
  if (tcpFlags & (TCP_FLAG.SYN | TCP_FLAG.FIN) && !c.lowRtt && !(c.flags & TCP_FL.LOCAL) && ctx.readInfo(c.sock)) {
    ctx.noteRtt(c.hostAddr);
    c.lowRtt = ctx.isLowRtt(c.hostAddr);
  }
  const ack = tcpFlags & TCP_FLAG.ACK ? c.seqAckToTap : 0;
  if (!emit(ctx, c, tcpFlags, c.seqToTap, ack)) {
    if (tcpFlags === TCP_FLAG.ACK) ctx.setFlag(c, TCP_FL.ACK_TO_TAP_DUE);
    return false;
  }
  if (flags & DUP_ACK) {
    // three duplicates: the guest's fast retransmit wants dupthresh (3) of them
    for (let i = 0; i < 3; i++) emit(ctx, c, tcpFlags, c.seqToTap, ack);
    ctx.stats.add('dupAcksSent');
  }
  if (tcpFlags & TCP_FLAG.FIN) c.seqFinToTap = c.seqToTap;
  if (tcpFlags & (TCP_FLAG.SYN | TCP_FLAG.FIN)) c.seqToTap = (c.seqToTap + 1) >>> 0;
  if (tcpFlags & TCP_FLAG.ACK) {
    if (c.seqAckToTap === c.seqFromTap && c.wndToTap) ctx.clearFlag(c, TCP_FL.ACK_TO_TAP_DUE);
    else ctx.setFlag(c, TCP_FL.ACK_TO_TAP_DUE);
  }
  return true;
}

/** Zero-window probe: a pure ACK one sequence number behind, which the guest answers with its window. */
export function sendProbe(ctx: TcpCtx, c: TcpConn): void {
  emit(ctx, c, TCP_FLAG.ACK, (c.seqAckFromTap - 1) >>> 0, c.seqAckToTap);
}

/**
 * Resets the connection towards the guest (RST, with ACK once the guest's
 * sequence is known so that a guest in SYN-SENT accepts it: its connect()
 * then fails at once with ECONNREFUSED) and closes it. The single reset exit
 * of the TCP code (STYLE.md guideline 4).
 */
export function resetConn(ctx: TcpCtx, c: TcpConn, why: string): void {
  if (c.dead) return;
  if (log.debugOn) log.debug(`${ctx.tag(c)}: reset (${why})`);
  const knowGuest = (c.events & (TCP_EV.TAP_SYN_RCVD | TCP_EV.ESTABLISHED)) !== 0;
  emit(ctx, c, knowGuest ? TCP_FLAG.RST | TCP_FLAG.ACK : TCP_FLAG.RST, c.seqToTap, knowGuest ? c.seqFromTap : 0);
  ctx.stats.add('resetsSent');
  ctx.close(c);
}

/**
 * Closes the host side abruptly (SO_LINGER 0: the kernel sends RST), used
 * when the guest reset the connection.
 */
export function abortSock(c: TcpConn): void {
  if (c.sock < 0) return;
  const l = new Uint8Array(8);
  l[0] = 1; // l_onoff = 1, l_linger = 0
  native.setsockoptBytes(c.sock, SOL_SOCKET, SO_LINGER, l);
}

/**
 * Writes the TCP header and the lower headers of a data segment whose
 * payload (len bytes) is already at l4 + 20, in the record whose data starts
 * at d; the caller ends the record. With a virtio-net header (tap offloads),
 * the payload is not summed: the header asks for checksum completion
 * (NEEDS_CSUM, the TCP checksum field holding the pseudo-header sum), and a
 * payload longer than the guest's MSS is a GSO frame the kernel segments.
 */
export function fillDataSegment(ctx: TcpCtx, c: TcpConn, d: number, l4: number, seq: number, len: number): void {
  const o = ctx.out;
  const u8 = o.u8;
  const l4Len = TCP_HEADER_LEN + len;
  writeTcpHeader(u8, l4, c.ourPort, c.guestPort, seq, c.seqAckToTap, TCP_FLAG.ACK, windowField(c, false), 0);
  let acc = TapOut.pseudoSum(c.ourAddr, 0, c.guestAddr, 0, IPPROTO_TCP, l4Len);
  let s: number;
  if (o.vnetLen >= VIRTIO_NET_HDR_LEN) {
    s = fold(acc);
  } else if (ctx.noDataCsum) {
    s = 0;
  } else {
    acc = sum16(u8, l4, TCP_HEADER_LEN, acc);
    acc = csum(u8, l4 + TCP_HEADER_LEN, len, acc);
    s = finish(acc);
  }
  wr16(u8, l4 + TCP_FIELD.CHECKSUM, s);
  o.writeHeaders(d, c.v4, c.ourAddr, 0, c.guestAddr, 0, IPPROTO_TCP, l4Len, c.flowLabel);
  if (o.vnetLen >= VIRTIO_NET_HDR_LEN) {
    const csumStart = l4 - d - o.vnetLen;
    const gso = len > c.mss;
    u8[d] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    u8[d + 1] = gso ? (c.v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6) : VIRTIO_NET_HDR_GSO_NONE;
    const hdrLen = csumStart + TCP_HEADER_LEN;
    u8[d + 2] = hdrLen & 0xff;
    u8[d + 3] = hdrLen >>> 8;
    const gsoSize = gso ? c.mss : 0;
    u8[d + 4] = gsoSize & 0xff;
    u8[d + 5] = gsoSize >>> 8;
    u8[d + 6] = csumStart & 0xff;
    u8[d + 7] = csumStart >>> 8;
    u8[d + 8] = 16; // csum_offset: the TCP checksum field
    u8[d + 9] = 0;
  }
}

/**
 * Payload bytes per frame towards the guest: its MSS, or with GSO (tap
 * offloads) as many whole MSS as an Ethernet frame of 64 KiB holds.
 */
export function framePayload(ctx: TcpCtx, c: TcpConn): number {
  if (ctx.out.vnetLen < VIRTIO_NET_HDR_LEN) return c.mss;
  const room = MAX_FRAME - l4Offset(0, c.v4) - TCP_HEADER_LEN;
  return room > c.mss ? room - (room % c.mss) : c.mss;
}

/** Bytes sent to the guest and not yet acknowledged (0 if it acked beyond). */
export function alreadySent(c: TcpConn): number {
  const d = seqDiff(c.seqToTap, c.seqAckFromTap);
  return d < MAX_WINDOW * 2 ? d : 0;
}

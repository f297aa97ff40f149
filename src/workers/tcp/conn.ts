/**
 * State of one tap-side TCP connection (SPEC.md §4.3, §4.4): a guest
 * connection paired with one host kernel socket, with no data buffer of its
 * own.
 *
 * Theory of operation
 * - Sequence numbers are 32-bit and modular (wire/seq.ts, 2^24 horizon).
 *   Towards the guest: `seqToTap` is the next byte we send, `seqAckFromTap`
 *   the highest byte the guest acknowledged; the bytes in between are still
 *   queued in the socket (read with MSG_PEEK, discarded on ACK). From the
 *   guest: `seqFromTap` is the next byte we expect (everything before it was
 *   written to the socket), `seqAckToTap` the last ACK number we sent.
 * - Events describe the connection's life (they only accumulate, except
 *   that SOCK_ACCEPTED / TAP_SYN_RCVD / ESTABLISHED replace all others);
 *   flags are conditions that come and go. Names follow passt's tcp_conn.h.
 *
 *   | Event            | Meaning                                          |
 *   |------------------|--------------------------------------------------|
 *   | SOCK_ACCEPTED    | accepted on a listener, SYN sent to the guest    |
 *   | TAP_SYN_RCVD     | SYN from the guest, host socket connecting       |
 *   | TAP_SYN_ACK_SENT | (with TAP_SYN_RCVD) connected, SYN+ACK sent      |
 *   | ESTABLISHED      | handshake done                                   |
 *   | SOCK_FIN_RCVD    | host peer closed its sending side                |
 *   | SOCK_FIN_SENT    | we did shutdown(SHUT_WR) on the socket           |
 *   | TAP_FIN_RCVD     | FIN from the guest                               |
 *   | TAP_FIN_SENT     | FIN sent to the guest                            |
 *   | TAP_FIN_ACKED    | the guest acknowledged our FIN                   |
 *   | (none) CLOSED    | done: freed at the end of the loop iteration     |
 *
 *   Flags: STALLED (guest window or our output ring full while the socket
 *   holds unsent data: EPOLLIN goes edge-triggered, EPOLLOUT is watched),
 *   LOCAL (the destination is an address of this host), ACTIVE_CLOSE (the
 *   guest closed first), ACK_TO_TAP_DUE (our ACK lags: send within 10 ms),
 *   ACK_FROM_TAP_DUE (data or FIN outstanding: retransmit on timeout),
 *   RING_WAIT (queued for space in the ring towards tap-TX).
 * - Timeouts (timer.ts): ACK_TO_TAP 10 ms, SYN 10 s, ACK 2 s (7
 *   retransmissions, then RST), FIN 60 s, idle 7200 s.
 *
 * Read first: RFC 9293 (TCP), RFC 7323 (window scale), RFC 6528 (ISN),
 * RFC 5681 §3.2 (fast retransmit).
 */

export const TCP_EV = {
  CLOSED: 0,
  SOCK_ACCEPTED: 1 << 0,
  TAP_SYN_RCVD: 1 << 1,
  ESTABLISHED: 1 << 2,
  TAP_SYN_ACK_SENT: 1 << 3,
  SOCK_FIN_RCVD: 1 << 4,
  SOCK_FIN_SENT: 1 << 5,
  TAP_FIN_RCVD: 1 << 6,
  TAP_FIN_SENT: 1 << 7,
  TAP_FIN_ACKED: 1 << 8,
} as const;

export const TCP_EV_NAMES = [
  'SOCK_ACCEPTED', 'TAP_SYN_RCVD', 'ESTABLISHED', 'TAP_SYN_ACK_SENT', 'SOCK_FIN_RCVD', 'SOCK_FIN_SENT',
  'TAP_FIN_RCVD', 'TAP_FIN_SENT', 'TAP_FIN_ACKED',
] as const;

/** Events that replace all others when set. */
export const TCP_EV_EXCLUSIVE = TCP_EV.SOCK_ACCEPTED | TCP_EV.TAP_SYN_RCVD | TCP_EV.ESTABLISHED;

export const TCP_FL = {
  STALLED: 1 << 0,
  LOCAL: 1 << 1,
  ACTIVE_CLOSE: 1 << 2,
  ACK_TO_TAP_DUE: 1 << 3,
  ACK_FROM_TAP_DUE: 1 << 4,
  RING_WAIT: 1 << 5,
} as const;

export const TCP_FL_NAMES = ['STALLED', 'LOCAL', 'ACTIVE_CLOSE', 'ACK_TO_TAP_DUE', 'ACK_FROM_TAP_DUE', 'RING_WAIT'] as const;

/** Timeouts in milliseconds (SPEC §4.9). */
export const TCP_TIMEOUT = {
  ACK_TO_TAP: 10,
  /** ACK of less than a full segment, unless data carries it first. */
  ACK_DELAY: 1,
  SYN: 10_000,
  /** Our SYN to the guest is sent again this often until SYN times out. */
  SYN_RETRY: 1_000,
  ACK: 2_000,
  FIN: 60_000,
  ACT: 7_200_000,
} as const;

/** Retransmissions without progress before the connection is reset. */
export const TCP_MAX_RETRANS = 7;
/** Largest window we use or advertise: 2^24 (SPEC §4.7). */
export const MAX_WINDOW = 1 << 24;
/** RFC 6928 initial window: the least we advertise during the handshake. */
export const WINDOW_DEFAULT = 14600;
/** Guest MSS when its SYN carries none (RFC 9293). */
export const MSS_DEFAULT = 536;
/** Largest window scale we advertise. */
export const MAX_WS = 8;
/** Largest window scale the guest may use (RFC 7323). */
export const MAX_WS_FROM_TAP = 14;
/** Send buffers below this make us acknowledge everything written (SPEC §4.6). */
export const SNDBUF_SMALL = 128 * 1024;
export const SNDBUF_BIG = 4 * 1024 * 1024;

export class TcpConn {
  /** Flow table index (also the epoll reference index). */
  idx = -1;
  /** Host socket, or -1. */
  sock = -1;
  v4 = true;
  events: number = TCP_EV.CLOSED;
  flags = 0;
  /** Set once the connection was queued for freeing. */
  dead = false;

  /** Tap side: our address (what the guest talks to) and port, 16-byte inany. */
  readonly ourAddr = new Uint8Array(16);
  ourPort = 0;
  /** Tap side: the guest's address and port. */
  readonly guestAddr = new Uint8Array(16);
  guestPort = 0;
  /** Host side: the peer's address (target of an outbound connection, source of an inbound one). */
  readonly hostAddr = new Uint8Array(16);
  /** The host peer is known to be low-RTT (SPEC §4.6). */
  lowRtt = false;
  /** The guest sent a window scale option in its SYN or SYN+ACK. */
  guestOfferedWs = false;
  /** MSS we advertise to the guest. */
  mssToTap = 0;
  /** IPv6 flow label of our frames (a stable per-connection value). */
  flowLabel = 0;

  /** Next sequence number we send to the guest. */
  seqToTap = 0;
  /** Highest sequence number the guest acknowledged. */
  seqAckFromTap = 0;
  /** Next sequence number expected from the guest. */
  seqFromTap = 0;
  /** Last ACK number sent to the guest. */
  seqAckToTap = 0;
  /** Sequence number of the guest's first data byte (its ISN + 1). */
  seqInitFromTap = 0;
  /** Sequence number of our FIN, when TAP_FIN_SENT. */
  seqFinToTap = 0;
  /** seqFromTap when we last sent duplicate ACKs for a hole (valid if dupAckSent). */
  seqDupAck = 0;
  dupAckSent = false;
  /** seqAckFromTap at our last fast retransmit (valid if retransFastDone). */
  retransFastAt = 0;
  retransFastDone = false;

  /** Usable window the guest advertised, in bytes (scaled, ≤ 16 MiB). */
  wndFromTap = 0;
  /** The guest's last window field as received (unscaled), for duplicate-ACK tests. */
  wndFromTapRaw = 0;
  /** Window we advertise to the guest, in bytes (≤ 16 MiB). */
  wndToTap = 0;
  /** The guest's window scale shift. */
  wsFromTap = 0;
  /** Our window scale shift towards the guest. */
  wsToTap = 0;
  /** Guest MSS: our segment size towards it (multiple of 4). */
  mss = MSS_DEFAULT;
  /** Estimated usable send buffer of the socket (SPEC §4.6). */
  sndbuf = 0;
  /** Retransmissions since the last progress (0–7). */
  retrans = 0;

  /** epoll events currently registered for the socket (0: not registered). */
  epollEvents = 0;
  /** Current timer deadline (ms, monotonic), Infinity when none. */
  deadline = Infinity;
  /** When ACK_TO_TAP_DUE expires (ms). */
  ackDueAt = Infinity;
  /** When ACK_FROM_TAP_DUE expires: retransmission or handshake timeout (ms). */
  rtoAt = Infinity;
  /** FIN timeout, once SOCK_FIN_SENT and TAP_FIN_ACKED (ms). */
  finAt = Infinity;
  /** Earliest deadline this connection has in the timer heap (Infinity: none). */
  heapedAt = Infinity;
  /** Last time a segment or socket event was seen (ms), for the idle timeout. */
  lastActivity = 0;
  /** When the connection was created (ms). */
  openedAt = 0;
  /** Last time a full segment moved either way (ms): bulk traffic, not requests. */
  bulkAt = -1e9;
  /** Payload bytes sent to the guest, and written to the socket from it (control socket's `flows`). */
  bytesToTap = 0;
  bytesFromTap = 0;

  /** Resets the state for a new connection on flow index idx. */
  reset(idx: number): void {
    this.idx = idx;
    this.sock = -1;
    this.v4 = true;
    this.events = TCP_EV.CLOSED;
    this.flags = 0;
    this.dead = false;
    this.ourAddr.fill(0);
    this.guestAddr.fill(0);
    this.hostAddr.fill(0);
    this.lowRtt = false;
    this.guestOfferedWs = false;
    this.mssToTap = 0;
    this.ourPort = this.guestPort = this.flowLabel = 0;
    this.seqToTap = this.seqAckFromTap = this.seqFromTap = this.seqAckToTap = this.seqInitFromTap = 0;
    this.seqFinToTap = 0;
    this.seqDupAck = 0;
    this.dupAckSent = false;
    this.retransFastAt = 0;
    this.retransFastDone = false;
    this.wndFromTap = this.wndFromTapRaw = this.wndToTap = this.wsFromTap = this.wsToTap = 0;
    this.mss = MSS_DEFAULT;
    this.sndbuf = 0;
    this.retrans = 0;
    this.epollEvents = 0;
    this.deadline = Infinity;
    this.ackDueAt = this.rtoAt = this.finAt = Infinity;
    this.heapedAt = Infinity;
    this.lastActivity = 0;
    this.openedAt = 0;
    this.bulkAt = -1e9;
    this.bytesToTap = this.bytesFromTap = 0;
  }
}

/** "TAP_SYN_RCVD|TAP_SYN_ACK_SENT" style names, for debug lines. */
export function eventNames(ev: number): string {
  if (!ev) return 'CLOSED';
  const out: string[] = [];
  TCP_EV_NAMES.forEach((n, i) => { if (ev & (1 << i)) out.push(n); });
  return out.join('|');
}

export function flagNames(fl: number): string {
  const out: string[] = [];
  TCP_FL_NAMES.forEach((n, i) => { if (fl & (1 << i)) out.push(n); });
  return out.join('|') || '-';
}

/** Guest MSS from its SYN option (-1: absent), clamped as SPEC §4.7 says. */
export function guestMss(opt: number, v4: boolean): number {
  let mss = opt < 0 ? MSS_DEFAULT : opt;
  const cap = v4 ? 65492 : 65472;
  if (mss > cap) mss = cap;
  mss &= ~3;
  return mss < 4 ? 4 : mss;
}

/** Guest window scale from its SYN option (-1: absent): 0…14, else 0. */
export function guestWs(opt: number): number {
  return opt >= 0 && opt <= MAX_WS_FROM_TAP ? opt : 0;
}

/**
 * Usable send buffer estimate from SO_SNDBUF (SPEC §4.6): all of it up to
 * 128 KiB, half of it from 4 MiB on, linear in between.
 */
export function sndbufEstimate(v: number): number {
  if (v < 0) return WINDOW_DEFAULT;
  if (v >= SNDBUF_BIG) return Math.floor(v / 2);
  if (v > SNDBUF_SMALL) return Math.floor(v - (v * (v - SNDBUF_SMALL)) / (SNDBUF_BIG - SNDBUF_SMALL) / 2);
  return v;
}

/**
 * Our MSS in SYN and SYN+ACK (SPEC §4.7).
 * @param mtu advertised MTU (0: use sockMss)
 * @param smallMss the connection should get at most 4096 (low wmem, remote peer)
 */
export function ourMss(mtu: number, v4: boolean, sockMss: number, smallMss: boolean): number {
  let mss: number;
  if (mtu === 0) {
    mss = sockMss > 0 ? sockMss : MSS_DEFAULT;
  } else {
    mss = mtu - 20 - (v4 ? 20 : 40);
    if (smallMss) mss = Math.min(mss, 4096);
    else if (mss > 4096) mss -= mss % 4096;
  }
  return Math.max(1, Math.min(mss, 65535));
}

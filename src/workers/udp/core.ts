/**
 * UDP and ICMP/ICMPv6 echo translation: the state of the UDP worker and the
 * life of its flows (SPEC.md §5, §6, §7; NAT §2.6–§2.9).
 *
 * Theory of operation
 * - What is translated: UDP datagrams between the guest (tap) and native
 *   UDP sockets of the host or, in pasta, of the namespace (spliced, no
 *   Layer 2); ICMP/ICMPv6 echo requests from the guest to unprivileged ping
 *   sockets (SOCK_DGRAM, IPPROTO_ICMP/ICMPV6), and their replies back.
 * - Flows: one FlowTable holds UDP and ping flows. A flow has an initiating
 *   side (INISIDE) and a target side (TGTSIDE), each on a pif (TAP, HOST,
 *   SPLICE) with "our" and "endpoint" address:port (table keys). Each side
 *   that is not TAP has a socket in `sock[]`:
 *     guest → anywhere         INISIDE TAP,            TGTSIDE HOST  (reply socket)
 *     -u host → guest          INISIDE HOST (dup),     TGTSIDE TAP
 *     -u host lo → ns (splice) INISIDE HOST (dup),     TGTSIDE SPLICE (reply socket in the namespace)
 *     -U ns lo → host lo       INISIDE SPLICE (dup),   TGTSIDE HOST  (reply socket)
 *     ping                     INISIDE TAP,            TGTSIDE HOST  (ping socket)
 *   "dup" is the forwarded port's listening socket duplicated into the flow
 *   (F_DUPFD_CLOEXEC, SPEC §5.2), unconnected: datagrams leave it with an
 *   explicit destination. Reply and ping sockets are our own, connected
 *   (UDP) or addressed per request (ping), and the only ones in epoll.
 * - Lookup: INISIDE is always hashed (a guest frame or a listener datagram
 *   finds its flow by the 4-tuple); TGTSIDE is hashed when it is TAP (guest
 *   replies to -u flows). Reply sockets reach their flow through the epoll
 *   reference (flow << 1 | side).
 * - States: a slot is FREE (type NONE) or ACTIVE (type UDP, PING4, PING6);
 *   set-up happens within one call (NEW → INI → TGT → TYPED → ACTIVE in
 *   SPEC terms) and is undone completely on any failure. `closing` marks a
 *   flow whose socket failed; the timer pass frees it.
 * - Timeouts: every datagram in either direction refreshes a UDP flow
 *   (`lastMs`); an echo request refreshes a ping flow (replies do not).
 *   The timer pass, at most once per second, frees UDP flows idle for
 *   180 s and ping flows idle for 60 s, and closes their sockets. Tests may
 *   shorten both (cfg.tuning: PASST_TS_UDP_TIMEOUT_MS and
 *   PASST_TS_PING_TIMEOUT_MS, read by conf.ts; never set in production).
 * - Limits: flow table of 131 071 entries (SPEC §7); a full table, a
 *   socket that cannot be made, bound or connected → the datagram is
 *   dropped and counted, nothing throws. Every drop has its counter
 *   (stats.ts 'udp') and also counts in 'dropped'.
 * - Read first: RFC 768 (UDP), RFC 8200 §8.1 (IPv6 UDP checksum, no zero),
 *   RFC 792 and RFC 4443 (echo), ip(7)/icmp(7) on ping sockets.
 */
import type { Config } from '../../shared/config';
import { PING_TIMEOUT_MS, UDP_BATCH, UDP_BATCH_MAX, UDP_TIMEOUT_MS } from '../../shared/config';
import type { NativeAddon } from '../../shared/native';
import { E, errnoName } from '../../shared/native';
import { FlowTable, INISIDE, TGTSIDE, PIF, PIF_NAMES, FLOW_KEY, Pif } from '../../shared/flow/table';
import type { FlowInfo } from '../../shared/messages';
import { Nat } from '../../shared/flow/nat';
import { endpointString, inanyIs4, inanyIsLoopback } from '../../shared/flow/inany';
import type { GuestState } from '../../shared/guestState';
import type { FrameRing } from '../../shared/ring/frameRing';
import { RING_REC_HDR, recordSize } from '../../shared/ring/layout';
import { COUNTERS, CounterName, Stats } from '../../shared/stats';
import { sockaddrFrom, SOCKADDR_LEN } from '../../shared/sockaddr';
import {
  AF_INET, AF_INET6, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_CLOEXEC, SOL_SOCKET, SO_REUSEADDR, SO_BINDTODEVICE,
  IPPROTO_IP, IPPROTO_IPV6, IP_RECVERR, IPV6_RECVERR, IPV6_V6ONLY, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLIN,
  F_DUPFD_CLOEXEC, IP_FREEBIND, IPV6_FREEBIND,
} from '../../shared/linux';
import { EpollType, packRef } from '../../shared/epollRef';
import { log } from '../../shared/log';
import type { TapOut } from '../l4/tapOut';
import { GuestBatch } from '../l4/tapIn';
import { MAX_FRAME } from '../../shared/frameKinds';

/** The syscalls the UDP worker uses (the real addon, or a fake in unit tests). */
export type UdpSys = Pick<NativeAddon, 'socket' | 'bind' | 'connect' | 'setsockoptInt' | 'setsockoptBytes' | 'close' |
  'fcntl' | 'recvmmsg' | 'sendmmsg' | 'drainErrQueue' | 'nsSockets' | 'epollCtl'>;

export const FLOW_TYPE = { NONE: 0, UDP: 1, PING4: 2, PING6: 3 } as const;
export type FlowType = (typeof FLOW_TYPE)[keyof typeof FLOW_TYPE];
export const FLOW_TYPE_NAMES = { 0: 'free', 1: 'udp', 2: 'ping', 3: 'ping6' } satisfies Record<FlowType, string>;

export const IPPROTO_UDP = 17;
export const IPPROTO_ICMP = 1;
export const IPPROTO_ICMPV6 = 58;

/** SPEC §7: flows per table. */
export const FLOW_CAPACITY = 131071;
/** The timer pass runs at most this often. */
export const SCAN_INTERVAL_MS = 1000;
/** Datagrams per recvmmsg()/sendmmsg() call. */
export const DEFAULT_BATCH = UDP_BATCH;
export const MAX_BATCH = UDP_BATCH_MAX;

/** Where a flow's end is, by pif, in the control socket's words. */
const FLOW_END_NAMES = { 0: 'none', 1: 'guest', 2: 'host', 3: 'namespace' } satisfies Record<Pif, string>;

/** Per-side socket flags. */
export const SOCK_F = {
  /** Unconnected (a duplicated listener): send with the endpoint's address. */
  NEEDS_ADDR: 1,
  /** Our own socket, registered in epoll. */
  IN_EPOLL: 2,
} as const;

/** A listening socket of a forwarded port, owned by this worker (messages.ts ListenerInfo). */
export interface Listener {
  id: number;
  fd: number;
  /** HOST (-u) or SPLICE (-U, the namespace's loopback). */
  pif: number;
  port: number;
  delta: number;
  /** Epoll index. */
  slot: number;
  /** Family of the last datagram (guess for the receive layout). */
  lastV4: boolean;
}

export interface UdpCoreOptions {
  cfg: Config;
  guest: GuestState;
  /** Guest frames from tap-RX (kinds UDP4/UDP6/ICMP4/ICMP6). */
  input: FrameRing;
  out: TapOut;
  sys: UdpSys;
  epfd: number;
  /** pasta: the namespace, for spliced reply sockets; -1 otherwise. */
  nsfd: number;
  stats: Stats<'udp'>;
  capacity?: number;
  udpTimeoutMs?: number;
  pingTimeoutMs?: number;
  /** Datagrams per recvmmsg (1 … MAX_BATCH). */
  batch?: number;
  /** Gives consumed input space back to tap-RX (and wakes it if it waits); default: release only. */
  releaseInput?: () => void;
}

type Ix = Record<CounterName<'udp'>, number>;

const ANY4 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]);
const ANY6 = new Uint8Array(16);

/** Unspecified address of the family of a[off]. */
export function anyOf(v4: boolean): Uint8Array {
  return v4 ? ANY4 : ANY6;
}

/**
 * Bytes of the largest record data the worker writes towards tap-TX:
 * virtio-net header plus a maximum Ethernet frame.
 */
export function slotData(vnetLen: number): number {
  return vnetLen + MAX_FRAME;
}

export class UdpCore {
  readonly cfg: Config;
  readonly guest: GuestState;
  readonly input: FrameRing;
  readonly out: TapOut;
  readonly sys: UdpSys;
  readonly epfd: number;
  readonly nsfd: number;
  readonly stats: Stats<'udp'>;
  /** Counter indices, for `stats.v[ix.name]++` on hot paths. */
  readonly ix: Ix;
  readonly nat: Nat;
  readonly table: FlowTable;
  readonly udpTimeoutMs: number;
  readonly pingTimeoutMs: number;
  readonly batch: number;
  readonly isPasta: boolean;
  /** Gives consumed input space back to tap-RX. */
  readonly releaseInput: () => void;

  /** Per flow. */
  readonly ftype: Uint8Array;
  readonly lastMs: Float64Array;
  readonly closing: Uint8Array;
  /** Ping: sequence number of the last reply forwarded (-1: none), for duplicate suppression. */
  readonly lastSeq: Int32Array;
  /** Per flow: when it was made (ms), for the control socket's `flows`. */
  readonly openedMs: Float64Array;
  /** Per side (flow * 2 + side): payload bytes received on that side. */
  readonly rxBytes: Float64Array;
  /** Per side (flow * 2 + side): socket, or -1 for a TAP side. */
  readonly sock: Int32Array;
  readonly sockFlags: Uint8Array;
  /** Flow slots in use are below this. */
  hwm = 0;
  nextScan = 0;

  /**
   * Sockets whose reading waits for room in the ring towards tap-TX
   * (epoll reference → fd), registered with no events meanwhile.
   */
  readonly paused = new Map<number, number>();

  readonly listeners: (Listener | null)[] = [];
  private readonly listenerSlots = new Map<number, number>();

  /** The batch of guest frames being handled (tap.ts), over the input ring. */
  readonly tapBatch: GuestBatch;
  /** Scratch addresses (16-byte inany) for handlers. */
  readonly a16 = new Uint8Array(16);
  readonly b16 = new Uint8Array(16);
  readonly c16 = new Uint8Array(16);
  readonly d16 = new Uint8Array(16);
  /** One sockaddr for set-up calls, and its two possible lengths. */
  private readonly saBuf = new Uint8Array(SOCKADDR_LEN);
  private readonly sa16 = this.saBuf.subarray(0, 16);
  /** Receive buffer for datagrams that cannot go straight into the ring (and ping replies). */
  readonly scratch: Uint8Array;
  private readonly fdOut = new Int32Array(1);
  private pingWarned = false;

  constructor(o: UdpCoreOptions) {
    this.cfg = o.cfg;
    this.guest = o.guest;
    this.input = o.input;
    this.tapBatch = new GuestBatch(o.input.u8);
    this.out = o.out;
    this.sys = o.sys;
    this.epfd = o.epfd;
    this.nsfd = o.nsfd;
    this.stats = o.stats;
    const ix: Record<string, number> = {};
    COUNTERS.udp.forEach((n, i) => { ix[n] = i; });
    this.ix = ix as Ix;
    this.nat = new Nat(o.cfg);
    const cap = o.capacity ?? FLOW_CAPACITY;
    this.table = new FlowTable(cap);
    this.udpTimeoutMs = o.udpTimeoutMs ?? UDP_TIMEOUT_MS;
    this.pingTimeoutMs = o.pingTimeoutMs ?? PING_TIMEOUT_MS;
    this.batch = Math.max(1, Math.min(MAX_BATCH, o.batch ?? DEFAULT_BATCH));
    this.isPasta = o.cfg.mode === 'pasta';
    this.releaseInput = o.releaseInput ?? (() => { this.input.release(); });
    this.ftype = new Uint8Array(cap);
    this.lastMs = new Float64Array(cap);
    this.closing = new Uint8Array(cap);
    // no fill(-1) for sock and lastSeq: alloc() sets a flow's entries (untouched pages cost nothing)
    this.lastSeq = new Int32Array(cap);
    this.openedMs = new Float64Array(cap);
    this.rxBytes = new Float64Array(cap * 2);
    this.sock = new Int32Array(cap * 2);
    this.sockFlags = new Uint8Array(cap * 2);
    this.scratch = new Uint8Array(this.batch * slotRec(o.out.vnetLen));
  }

  /** Counts a drop for `reason` (a counter index) and in 'dropped'. */
  drop(reason: number): void {
    const v = this.stats.v;
    v[reason]++;
    v[this.ix.dropped]++;
  }

  // ------------------------------------------------------------ sockets

  /** sockaddr bytes for (addr at a[off], port) in the shared set-up buffer. */
  sockaddr(a: Uint8Array, off: number, port: number): Uint8Array {
    return sockaddrFrom(this.saBuf, 0, a, off, port) === 16 ? this.sa16 : this.saBuf;
  }

  /**
   * Makes a datagram socket (UDP, or a ping socket for proto ICMP/ICMPv6),
   * on the host or in the namespace. Returns the fd, or -errno.
   */
  newSocket(inNs: boolean, v4: boolean, proto: number): number {
    const dom = v4 ? AF_INET : AF_INET6;
    const type = SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC;
    if (!inNs) return this.sys.socket(dom, type, proto);
    if (this.nsfd < 0) return -E.EINVAL;
    const n = this.sys.nsSockets(this.nsfd, dom, type, proto, 1, this.fdOut);
    return n === 1 ? this.fdOut[0] : n < 0 ? n : -E.EIO;
  }

  /**
   * A connected UDP reply socket: bound to our (addr, port) of the side,
   * connected to its endpoint, registered in epoll as side `side` of flow
   * `f`. Counts the failure reason and returns -1 on failure.
   */
  replySocket(f: number, side: number, inNs: boolean): number {
    const t = this.table;
    const ko = t.keyOff(f, side);
    const keys = t.keys;
    const v4 = inanyIs4(keys, ko + FLOW_KEY.EP_ADDR);
    const fd = this.newSocket(inNs, v4, 0);
    if (fd < 0) {
      this.drop(this.ix.socketErrors);
      if (log.debugOn) log.debug(`Flow ${f} (udp): socket: ${errnoName(fd)}`);
      return -1;
    }
    const s = this.sys;
    s.setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (v4) {
      s.setsockoptInt(fd, IPPROTO_IP, IP_RECVERR, 1);
    } else {
      s.setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
      s.setsockoptInt(fd, IPPROTO_IPV6, IPV6_RECVERR, 1);
    }
    if (this.cfg.freebind) s.setsockoptInt(fd, v4 ? IPPROTO_IP : IPPROTO_IPV6, v4 ? IP_FREEBIND : IPV6_FREEBIND, 1);
    const fam = v4 ? this.nat.v4 : this.nat.v6;
    if (!inNs && fam.outboundIf && !inanyIsLoopback(keys, ko + FLOW_KEY.EP_ADDR)) bindToDevice(s, fd, fam.outboundIf);
    let r = s.bind(fd, this.sockaddr(keys, ko + FLOW_KEY.OUR_ADDR, t.ourPort(f, side)));
    if (r < 0) {
      s.close(fd);
      this.drop(this.ix.bindErrors);
      if (log.debugOn) log.debug(`Flow ${f} (udp): bind ${endpointString(keys, ko + FLOW_KEY.OUR_ADDR, t.ourPort(f, side))}: ${errnoName(r)}`);
      return -1;
    }
    r = s.connect(fd, this.sockaddr(keys, ko + FLOW_KEY.EP_ADDR, t.epPort(f, side)));
    if (r < 0) {
      s.close(fd);
      this.drop(this.ix.connectErrors);
      if (log.debugOn) log.debug(`Flow ${f} (udp): connect ${endpointString(keys, ko + FLOW_KEY.EP_ADDR, t.epPort(f, side))}: ${errnoName(r)}`);
      return -1;
    }
    // datagrams that slipped in between bind() and connect() are not the peer's
    if (!this.discardQueued(fd)) {
      s.close(fd);
      this.drop(this.ix.socketErrors);
      return -1;
    }
    r = s.epollCtl(this.epfd, EPOLL_CTL_ADD, fd, EPOLLIN, packRef(EpollType.UDP_REPLY, f * 2 + side));
    if (r < 0) {
      s.close(fd);
      this.drop(this.ix.socketErrors);
      return -1;
    }
    this.sock[f * 2 + side] = fd;
    this.sockFlags[f * 2 + side] = SOCK_F.IN_EPOLL;
    return fd;
  }

  /** Reads and discards what is queued on fd; false if more than 1024 datagrams were (SPEC §5.2). */
  private discardQueued(fd: number): boolean {
    const lens = this.discardLens;
    let total = 0;
    for (;;) {
      const n = this.sys.recvmmsg(fd, this.scratch, this.discardOffs, lens, 8, null, this.discardOut, 0);
      if (n <= 0) return true;
      total += n;
      if (total > 1024) return false;
    }
  }
  private readonly discardOffs = new Int32Array(8);
  private readonly discardLens = new Int32Array(8).fill(1);
  private readonly discardOut = new Int32Array(8);

  /** Duplicates a listener's socket into side `side` of flow f (unconnected). */
  dupListener(f: number, side: number, l: Listener): boolean {
    const fd = this.sys.fcntl(l.fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      this.drop(this.ix.socketErrors);
      return false;
    }
    this.sock[f * 2 + side] = fd;
    this.sockFlags[f * 2 + side] = SOCK_F.NEEDS_ADDR;
    return true;
  }

  // ------------------------------------------------------------ back-pressure

  /**
   * The ring towards tap-TX has no room for a receive slot: stop reading fd
   * (its datagrams wait in the socket, where the kernel drops what does not
   * fit, at no cost to us) until tap-TX releases space and wakes us.
   */
  pause(ref: number, fd: number): void {
    if (this.paused.has(ref)) return;
    this.out.ring.waitForSpace();
    this.sys.epollCtl(this.epfd, EPOLL_CTL_MOD, fd, 0, ref);
    this.paused.set(ref, fd);
  }

  /** True when sockets are paused and the ring has room for a slot again. */
  canResume(): boolean {
    return this.paused.size > 0 && this.out.ring.beginWrite(slotRec(this.out.vnetLen) - RING_REC_HDR) >= 0;
  }

  /** Re-arms every paused socket once the ring has room; returns how many. */
  resume(): number {
    if (!this.canResume()) return 0;
    const n = this.paused.size;
    for (const [ref, fd] of this.paused) this.sys.epollCtl(this.epfd, EPOLL_CTL_MOD, fd, EPOLLIN, ref);
    this.paused.clear();
    return n;
  }

  /** Ping socket creation failed: one clear warning per run (SPEC §6). */
  warnPing(err: number): void {
    this.drop(this.ix.pingSocketErrors);
    if (this.pingWarned) return;
    this.pingWarned = true;
    log.warn(`Couldn't open ping socket (${errnoName(err)}): ICMP echo requests are dropped. ` +
      'Widen net.ipv4.ping_group_range to include this group, e.g. sysctl -w net.ipv4.ping_group_range="0 2147483647"');
  }

  // ------------------------------------------------------------ flows

  /** Allocates a flow slot, or counts 'tableFull' and returns -1. */
  alloc(): number {
    const f = this.table.alloc();
    if (f < 0) {
      this.drop(this.ix.tableFull);
      return -1;
    }
    if (f >= this.hwm) this.hwm = f + 1;
    this.sock[f * 2] = -1;
    this.sock[f * 2 + 1] = -1;
    this.sockFlags[f * 2] = 0;
    this.sockFlags[f * 2 + 1] = 0;
    this.closing[f] = 0;
    this.lastSeq[f] = -1;
    this.rxBytes[f * 2] = this.rxBytes[f * 2 + 1] = 0;
    return f;
  }

  /** Makes flow f ACTIVE with the given type. */
  activate(f: number, type: FlowType, now: number): void {
    this.ftype[f] = type;
    this.lastMs[f] = this.openedMs[f] = now;
    this.stats.v[type === FLOW_TYPE.UDP ? this.ix.flows : this.ix.pingFlows]++;
    this.stats.v[this.activeCounter(f)]++;
    if (log.debugOn) log.debug(this.describe(f, 'new'));
  }

  /**
   * Opens flow f for what the guest sends from src:sport to dst:dport
   * (16-byte inany): the guest's side is its key, the target side is dst
   * after NAT (SPEC §2.6, left in c16) seen from our outbound address.
   * keepPorts: UDP keeps both ports towards the host; a ping flow's target
   * side has none (its socket picks the identifier). Returns f, or -1
   * (counted: family disabled, table full).
   */
  flowFromTap(proto: number, v4: boolean, src: Uint8Array, sport: number, dst: Uint8Array, dport: number,
    keepPorts: boolean): number {
    const fam = v4 ? this.nat.v4 : this.nat.v6;
    if (!fam.enabled) {
      this.drop(this.ix.familyOff);
      return -1;
    }
    const f = this.alloc();
    if (f < 0) return -1;
    const t = this.table;
    if (!t.insert(f, INISIDE, proto, PIF.TAP, dst, 0, dport, src, 0, sport)) {
      this.free(f);
      this.drop(this.ix.tableFull);
      return -1;
    }
    const tgt = this.c16;
    this.nat.outbound(proto, dst, 0, keepPorts ? dport : 0, tgt, 0);
    t.setKey(f, TGTSIDE, proto, PIF.HOST, fam.outbound ?? anyOf(v4), 0, keepPorts ? sport : 0, tgt, 0,
      keepPorts ? dport : 0);
    return f;
  }

  /** Frees flow f: closes its sockets and gives back its slot (also undoes a half-made flow). */
  free(f: number): void {
    for (let side = 0; side < 2; side++) {
      const i = f * 2 + side;
      const fd = this.sock[i];
      if (fd < 0) continue;
      if (this.sockFlags[i] & SOCK_F.IN_EPOLL) {
        this.sys.epollCtl(this.epfd, EPOLL_CTL_DEL, fd, 0, 0);
        this.paused.delete(packRef(EpollType.UDP_REPLY, i));
      }
      this.sys.close(fd);
      this.sock[i] = -1;
      this.sockFlags[i] = 0;
    }
    if (this.ftype[f] !== FLOW_TYPE.NONE) {
      this.stats.v[this.activeCounter(f)]--;
      if (log.debugOn) log.debug(this.describe(f, 'closed'));
    }
    this.ftype[f] = FLOW_TYPE.NONE;
    this.closing[f] = 0;
    this.table.release(f);
  }

  /** True when no side of flow f is the guest's (socket to socket, pasta's loopback paths). */
  isSpliced(f: number): boolean {
    const t = this.table;
    return t.keys[t.keyOff(f, INISIDE) + FLOW_KEY.PIF] !== PIF.TAP && t.keys[t.keyOff(f, TGTSIDE) + FLOW_KEY.PIF] !== PIF.TAP;
  }

  /** The gauge of open flows that flow f counts in. */
  private activeCounter(f: number): number {
    if (this.ftype[f] !== FLOW_TYPE.UDP) return this.ix.activePing;
    return this.isSpliced(f) ? this.ix.activeSplice : this.ix.activeTap;
  }

  /** The control socket's `flows`: every open flow (at most max listed), oldest slots first. */
  listFlows(max: number, now: number): { flows: FlowInfo[]; total: number } {
    const flows: FlowInfo[] = [];
    let total = 0;
    const t = this.table;
    const end = (f: number, s: number): string => {
      const o = t.keyOff(f, s);
      const pif = t.keys[o + FLOW_KEY.PIF] as Pif;
      return `${FLOW_END_NAMES[pif]} ${endpointString(t.keys, o + FLOW_KEY.EP_ADDR, t.epPort(f, s))}`;
    };
    for (let f = 0; f < this.hwm; f++) {
      const type = this.ftype[f] as FlowType;
      if (type === FLOW_TYPE.NONE) continue;
      total++;
      if (flows.length >= max) continue;
      flows.push({
        proto: type === FLOW_TYPE.UDP ? 'udp' : type === FLOW_TYPE.PING4 ? 'icmp' : 'icmpv6',
        path: this.isSpliced(f) ? 'splice' : 'tap', id: f, from: end(f, INISIDE), to: end(f, TGTSIDE),
        state: this.closing[f] ? 'closing' : 'active', bytesOut: this.rxBytes[f * 2 + INISIDE],
        bytesIn: this.rxBytes[f * 2 + TGTSIDE], ageMs: Math.max(0, Math.round(now - this.openedMs[f])),
      });
    }
    return { flows, total };
  }

  /** "Flow N (udp): new tap [guest]:p -> [addr]:p => host [ours]:p -> [peer]:p" for debug logs. */
  describe(f: number, what: string): string {
    const t = this.table;
    const side = (s: number): string => {
      const o = t.keyOff(f, s);
      const pif = t.keys[o + FLOW_KEY.PIF] as 0 | 1 | 2 | 3;
      return `${PIF_NAMES[pif]} ${endpointString(t.keys, o + FLOW_KEY.EP_ADDR, t.epPort(f, s))} -> ` +
        `${endpointString(t.keys, o + FLOW_KEY.OUR_ADDR, t.ourPort(f, s))}`;
    };
    return `Flow ${f} (${FLOW_TYPE_NAMES[this.ftype[f] as FlowType]}): ${what}: ${side(INISIDE)} => ${side(TGTSIDE)}`;
  }

  /**
   * Timer pass (at most once per SCAN_INTERVAL_MS): frees flows that are
   * closing or idle past their timeout.
   */
  timerHandler(now: number): void {
    if (now < this.nextScan) return;
    this.nextScan = now + SCAN_INTERVAL_MS;
    const ft = this.ftype;
    for (let f = 0; f < this.hwm; f++) {
      const type = ft[f];
      if (type === FLOW_TYPE.NONE) continue;
      const to = type === FLOW_TYPE.UDP ? this.udpTimeoutMs : this.pingTimeoutMs;
      if (this.closing[f] || now - this.lastMs[f] > to) {
        this.free(f);
        this.stats.v[this.ix.expired]++;
      }
    }
    while (this.hwm > 0 && ft[this.hwm - 1] === FLOW_TYPE.NONE) this.hwm--;
  }

  /** Milliseconds until the next timer pass. */
  timeoutMs(now: number): number {
    return Math.max(0, this.nextScan - now);
  }

  // ------------------------------------------------------------ listeners

  /** Takes ownership of forwarded-port sockets (main → 'listen'). */
  listen(l: { id: number; fd: number; side: 'host' | 'ns'; port: number; delta: number }): boolean {
    let slot = this.listeners.indexOf(null);
    if (slot < 0) slot = this.listeners.length;
    const r = this.sys.epollCtl(this.epfd, EPOLL_CTL_ADD, l.fd, EPOLLIN, packRef(EpollType.UDP_LISTEN, slot));
    if (r < 0) {
      log.warn(`UDP port ${l.port}: epoll: ${errnoName(r)}`);
      this.sys.close(l.fd);
      return false;
    }
    this.listeners[slot] = {
      id: l.id, fd: l.fd, pif: l.side === 'ns' ? PIF.SPLICE : PIF.HOST, port: l.port, delta: l.delta & 0xffff, slot,
      lastV4: true,
    };
    this.listenerSlots.set(l.id, slot);
    this.stats.v[this.ix.listeners]++;
    return true;
  }

  /** Stops using and closes a listener; flows keep their duplicates. */
  unlisten(id: number): void {
    const slot = this.listenerSlots.get(id);
    if (slot === undefined) return;
    this.listenerSlots.delete(id);
    const l = this.listeners[slot];
    if (!l) return;
    // a duplicate in a flow keeps the file open: epoll would keep reporting it
    this.sys.epollCtl(this.epfd, EPOLL_CTL_DEL, l.fd, 0, 0);
    this.paused.delete(packRef(EpollType.UDP_LISTEN, slot));
    this.sys.close(l.fd);
    this.listeners[slot] = null;
    this.stats.v[this.ix.listeners]--;
  }

  /** Closes every socket (worker exit). */
  closeAll(): void {
    for (let f = 0; f < this.hwm; f++) if (this.ftype[f] !== FLOW_TYPE.NONE) this.free(f);
    for (const l of this.listeners) if (l) this.unlisten(l.id);
  }
}

/** Record size of one receive slot: header + virtio-net + Ethernet + IPv6 + UDP + largest payload. */
export function slotRec(vnetLen: number): number {
  return recordSize(slotData(vnetLen) + 20);
}

export function bindToDevice(s: UdpSys, fd: number, ifname: string): void {
  const b = new Uint8Array(ifname.length + 1);
  for (let i = 0; i < ifname.length; i++) b[i] = ifname.charCodeAt(i);
  s.setsockoptBytes(fd, SOL_SOCKET, SO_BINDTODEVICE, b);
}

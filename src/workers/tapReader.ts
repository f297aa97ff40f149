/**
 * tap-RX: frames from the guest — the stage, hosted by its own worker
 * (tapRx.ts) or, run to completion, by the TCP worker (passt's default:
 * see supervisor.ts).
 *
 * Theory of operation
 * - Reads frames from the tap in batches straight into a worker's ring
 *   (the TCP worker's, or the UDP worker's when UDP kept more frames of the
 *   last batch: the bulk protocol is never copied in user space): one
 *   native call reads frame after frame, packed as ring records, until
 *   EAGAIN, the batch limit, or the contiguous free space runs out.
 *   The read goes through the back end's receive half (link/link.ts
 *   LinkReceiver): one read() per frame on the tap; on passt's stream
 *   socket StreamReader reassembles length-prefixed frames, reading large
 *   ones straight into their records, and always fills the TCP ring.
 * - Each frame is parsed once (FrameViews) and handled in place:
 *   - every frame goes to pcap (before validation) and feeds the learning
 *     rules (guest MAC, seen addresses: SPEC §2.4/§2.5);
 *   - ARP, DHCP, NDP and DHCPv6 are answered here; replies go to the ring
 *     towards tap-TX;
 *   - TCP stays in the ring (record kind TCP4/TCP6, offsets in meta) when
 *     it belongs to the shard the batch was read for, else it is copied to
 *     its shard's ring; UDP and ICMP echo are copied to the UDP worker;
 *   - everything else, malformed or not forwarded, is counted and dropped
 *     (the record becomes SKIP). Nothing here throws on guest input.
 * - Checks of SPEC §1.3: frames < 14 or > 65535 bytes ignored; IPv4
 *   fragments, 127/8 and IPv6 ::1 endpoints, and next header 59 dropped;
 *   guest checksums are not verified.
 * - Back-pressure: when the TCP ring has no room for a maximum-size
 *   frame, tap-RX stops reading (the tap's own queue then holds or drops
 *   frames) until the consumer releases space (hosted by the TCP worker,
 *   that is the same thread's next pass over its ring). A full UDP ring
 *   does not stop reading: the batch goes to the TCP ring and UDP frames
 *   without room are dropped and counted, so a UDP flood cannot stall TCP.
 * - Floods: at most SYN_BACKLOG bare SYNs wait per TCP ring; more are
 *   dropped (synShed), so established connections are not queued behind
 *   a SYN flood.
 * - The host lends the epoll set and the message port (TapReaderHost);
 *   the stage keeps no loop of its own, so it runs the same in either host.
 */
import type { ControlMsg, RingOut, TapRxInit, WorkerMsg } from '../shared/messages';
import { FrameRing } from '../shared/ring/frameRing';
import { Waker } from '../shared/ring/waker';
import { E } from '../shared/native';
import { EPOLLIN, EPOLLRDHUP, EPOLLHUP, EPOLLERR } from '../shared/linux';
import { EpollType, packRef, refType } from '../shared/epollRef';
import { Stats } from '../shared/stats';
import { log } from '../shared/log';
import { FRAME_KIND, MAX_FRAME, packOffsets } from '../shared/frameKinds';
import { PcapWriter } from '../shared/pcapWriter';
import { GuestState } from '../shared/guestState';
import { FrameViews, FRAME_LAYER } from '../shared/wire/frame';
import { ETHERTYPE } from '../shared/wire/ethernet';
import { IP_PROTO } from '../shared/wire/ipv4';
import { isBareSyn } from '../shared/wire/tcp';
import { ICMP_TYPE, ICMPV6_TYPE } from '../shared/wire/icmp';
import { linkServiceFor, linkHandle, LINK_SERVICE, LINK_REPLY_MAX } from '../shared/services/dispatch';
import { serviceContextFromConfig, ServiceContext } from '../shared/services/context';
import { noteGuestFrame } from '../shared/services/learn';
import { ndpUnsolicitedRa, raIntervalMs } from '../shared/services/ndp';
import { flowHash } from '../shared/flow/hash';
import { IP4_LEN, IP6_LEN } from '../shared/wire/bytes';
import { linkReceiver, LinkReceiver } from './link/link';
import { REC_KIND, nextRecord, recordData, recordHeader } from '../shared/ring/layout';

/** Frames per native read call. */
const BATCH = 64;

/**
 * Bare SYNs (new connections) that may wait in a TCP worker's ring. A SYN
 * beyond it is dropped and counted (synShed), as a full listen queue drops
 * SYNs: the guest sends it again, and a SYN flood cannot queue the frames
 * of established connections behind thousands of connection set-ups (each
 * one a connect() in the TCP worker). The worker counts the SYNs it takes
 * (frameRing.ts countSynsDone); 1024 is far more than any burst of real
 * connections and at most tens of milliseconds of the worker's time.
 */
export const SYN_BACKLOG = 1024;

class Out {
  readonly ring: FrameRing;
  readonly consumer: Waker;
  /** Views over this ring, for frames read into it. */
  readonly views: FrameViews;
  dirty = false;
  /** Bare SYNs written to this ring (mod 2^32; TCP rings only). */
  synsQueued: number;
  /** Called once, at the first publish (the consumer may not run yet: supervisor.ts). */
  onFirstPublish: (() => void) | null = null;
  constructor(o: RingOut) {
    this.ring = new FrameRing(o.ring);
    this.consumer = new Waker(o.consumer);
    this.views = new FrameViews(this.ring.u8);
    this.synsQueued = this.ring.synsDone;
  }

  /** Bare SYNs written and not yet taken by the consumer. */
  synBacklog(): number {
    const n = (this.synsQueued - this.ring.synsDone) | 0;
    return n > 0 ? n : 0;
  }

  /**
   * An empty ring holds no SYN, whatever the counts say: a record consumed
   * without being counted cannot make the bound stick. Called between
   * batches, when everything written is published.
   */
  resyncSyns(): void {
    if (this.ring.isEmpty()) this.synsQueued = this.ring.synsDone;
  }
  /** Publishes what was written and wakes the consumer if it sleeps. */
  flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.ring.publish();
    this.consumer.wake();
    if (this.onFirstPublish) {
      this.onFirstPublish();
      this.onFirstPublish = null;
    }
  }
}

/** What the worker hosting the stage lends it (a WorkerLoop is one). */
export interface TapReaderHost {
  /** Adds fd to the host's epoll set (throws on failure). */
  add(fd: number, events: number, ref: number): void;
  del(fd: number): number;
  post(msg: WorkerMsg): void;
  /** The tap itself failed (pasta): the host stops; main ends the program. */
  stop(): void;
}

export class TapReader {
  private tapfd: number;
  /** The descriptor in the epoll set for it (the back end's watchFd()). */
  private watched = -1;
  /** The receiver's guestDrops already counted (vhost-user). */
  private guestDropsSeen = 0;
  private readonly vnetLen: number;
  private readonly maxRead: number;
  private readonly tcp: Out[];
  private readonly udp: Out;
  private readonly tx: Out;
  /**
   * The ring the next batch is read into: the one that kept most frames of
   * the last batch, so bulk traffic of either protocol is never copied in
   * user space (a receiver that keeps state in the ring, passt's stream
   * reader, always uses the TCP ring: it may park a partial frame there).
   */
  private target: Out;
  private lastTcp = 0;
  private lastUdp = 0;
  private readonly ctx: ServiceContext;
  private readonly guest: GuestState;
  private readonly stats: Stats<'tapRx'>;
  private readonly pcap: PcapWriter | null;
  private readonly lens = new Int32Array(BATCH + 1);
  /** The back end's receive half (link/link.ts). */
  private readonly rx: LinkReceiver;
  /** The tap may have more to read (level-triggered EPOLLIN seen, no EAGAIN since). */
  private readable = true;
  /** Waiting for the TCP ring to release space. */
  private blocked = false;
  private readonly fragWarn = { count: 0, lastMs: -1e9 };
  /** Next unsolicited router advertisement (SPEC §3.3); the first run only schedules. */
  private nextRaMs = -1;

  constructor(private readonly init: TapRxInit, private readonly host: TapReaderHost) {
    const i = init;
    this.tapfd = i.tapfd;
    this.vnetLen = i.vnetLen;
    // room one read needs: the largest frame plus a virtio-net header
    this.maxRead = MAX_FRAME + this.vnetLen + 1;
    this.tcp = i.toTcp.map((o) => new Out(o));
    this.udp = new Out(i.toUdp);
    if (i.cfg.tuning.memory.lazyUdp) this.udp.onFirstPublish = () => host.post({ type: 'wantUdp' });
    this.tx = new Out(i.toTx);
    this.target = this.tcp[0];
    this.stats = new Stats('tapRx', i.stats);
    this.pcap = i.pcapFd >= 0 ? new PcapWriter(i.pcapFd) : null;
    this.guest = new GuestState(i.guestState);
    this.ctx = serviceContextFromConfig(i.cfg, Date.now());
    this.shareGuestState(i.guest.mac);
    this.rx = linkReceiver(i.backend, this.maxRead);
    if (this.tapfd >= 0) this.watchTap();
  }

  /** Makes the services' learnt state live in the shared GuestState. */
  private shareGuestState(mac: string | null): void {
    const g = this.guest;
    const c = this.ctx;
    if (mac) c.guestMac.set(mac.split(':').map((x) => parseInt(x, 16)));
    g.mac.set(c.guestMac);
    g.addr4Seen.set(c.ip4.addrSeen);
    g.addr6Seen.set(c.ip6.addrSeen);
    g.addr6LlSeen.set(c.ip6.addrLlSeen);
    c.guestMac = g.mac;
    c.ip4.addrSeen = g.addr4Seen;
    c.ip6.addrSeen = g.addr6Seen;
    c.ip6.addrLlSeen = g.addr6LlSeen;
    if (this.init.guest.linkLocal) {
      const b = this.init.guest.linkLocal;
      // the namespace's own link-local address, as --config-net saw it
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const ipaddr = require('ipaddr.js') as typeof import('ipaddr.js');
      c.ip6.addrLlSeen.set(ipaddr.parse(b).toByteArray());
      c.ip6.hasAddrLlSeen = true;
    }
    g.setFlags(c.ip6.hasAddrSeen, c.ip6.hasAddrLlSeen);
  }

  private watchTap(): void {
    // the tap or client socket itself; vhost-user: the transmit queue's kick eventfd
    this.watched = this.rx.watchFd ? this.rx.watchFd(this.tapfd) : this.tapfd;
    this.host.add(this.watched, EPOLLIN | EPOLLRDHUP, packRef(EpollType.TAP));
    this.readable = true;
  }

  /** The 'tap' control message (passt: a new client, or none). */
  onControl(msg: ControlMsg): void {
    if (msg.type === 'tap') {
      if (this.tapfd >= 0) this.host.del(this.watched);
      this.tapfd = msg.fd;
      this.rx.reset();
      this.rx.configure?.(msg);
      if (this.tapfd >= 0) this.watchTap();
      else this.readable = false;
      this.host.post({ type: 'tapAck', seq: msg.seq, stage: 'tapRx' });
    }
  }

  /** An epoll event on the tap (other refs are ignored). */
  onEvent(ref: number, events: number): void {
    if (refType(ref) !== EpollType.TAP) return;
    if (events & EPOLLIN) this.readable = true;
    else if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
      // without EPOLLIN nothing is left to read: the peer is gone
      this.tapFailed(this.rx.hangUp);
    }
  }

  private tapFailed(reason: string): void {
    if (this.tapfd < 0) return;
    if (this.rx.lost === 'fatal') {
      this.host.post({ type: 'fatal', message: `${reason}` });
      this.host.stop();
      this.readable = false;
      return;
    }
    // passt: the client is gone; main decides what comes next
    const fd = this.tapfd;
    this.host.del(this.watched);
    this.tapfd = -1;
    this.readable = false;
    this.rx.reset();
    this.host.post({ type: 'tapGone', fd, reason });
  }

  /** Something to read (or room again for what was waiting). */
  hasInput(): boolean {
    if (this.blocked) return this.target.ring.beginWrite(this.maxRead) >= 0;
    return this.tapfd >= 0 && this.readable;
  }

  /** Milliseconds until the next unsolicited router advertisement. */
  timeoutMs(now: number): number {
    return this.nextRaMs < 0 ? 0 : this.nextRaMs - now;
  }

  /** Unsolicited RAs to ff02::1 at random intervals while a guest is connected. */
  private raTimer(now: number): void {
    if (this.nextRaMs >= 0 && now < this.nextRaMs) return;
    if (this.nextRaMs >= 0 && this.tapfd >= 0) this.sendRa();
    this.nextRaMs = now + raIntervalMs(Math.random());
  }

  private sendRa(): void {
    const tx = this.tx;
    const vnet = this.vnetLen;
    const d = tx.ring.beginWrite(vnet + LINK_REPLY_MAX);
    if (d < 0) return;
    const r = ndpUnsolicitedRa(this.ctx, tx.ring.u8, d + vnet);
    if (r <= 0) return;
    if (vnet) tx.ring.u8.fill(0, d, d + vnet);
    tx.ring.endWrite(vnet + r, FRAME_KIND.TO_GUEST);
    tx.dirty = true;
    tx.flush();
  }

  /** Reads and dispatches one batch; true if more is waiting. */
  work(now: number): boolean {
    this.raTimer(now);
    if (this.tapfd < 0 || !this.readable) return false;
    if (!this.blocked && !this.rx.keepsRing) this.target = this.lastUdp > this.lastTcp ? this.udp : this.tcp[0];
    for (let i = 0; i < this.tcp.length; i++) this.tcp[i].resyncSyns();
    let dataOff = this.target.ring.beginWrite(this.maxRead);
    if (dataOff < 0 && this.target === this.udp) {
      // a UDP worker that cannot keep up must not stop TCP: read into the
      // TCP ring, and UDP frames beyond the UDP ring's room are dropped
      // (counted, as the tap's own queue would drop them)
      this.target = this.tcp[0];
      dataOff = this.target.ring.beginWrite(this.maxRead);
    }
    const out = this.target;
    const ring = out.ring;
    if (dataOff < 0) {
      this.stats.add('ringFull');
      ring.waitForSpace();
      this.blocked = true;
      this.flushAll();
      return false;
    }
    this.blocked = false;
    const space = ring.contiguousFree();
    const first = recordHeader(dataOff);
    const n = this.rx.read(this.tapfd, ring, first, space, this.lens, BATCH, this.maxRead);
    const gd = this.rx.guestDrops;
    if (gd !== undefined && gd !== this.guestDropsSeen) {
      this.stats.add('guestDrops', gd - this.guestDropsSeen);
      this.guestDropsSeen = gd;
    }
    const status = this.lens[n];
    if (n > 0) this.stats.add('batches');
    let pos = first;
    let kept = 0;
    if (n > 0) this.lastTcp = this.lastUdp = 0;
    for (let i = 0; i < n; i++) {
      const len = this.lens[i];
      const kind = this.handleFrame(out, recordData(pos), len, now);
      if (kind < 0) {
        ring.endWrite(len, REC_KIND.SKIP);
      } else {
        ring.endWrite(len, kind, this.meta1, this.meta2);
        kept++;
      }
      pos = nextRecord(pos, len);
    }
    if (kept > 0 || this.rx.keepsRing) out.dirty = n > 0;
    // nothing stayed for this ring's worker: reuse the space instead of waking it
    // to pass over SKIP records (the stream reader may park a partial frame
    // behind these records, so passt always publishes)
    else if (n > 0) ring.rollback();
    if (status < 0 && status !== -E.EAGAIN) {
      this.readFailed(status);
    } else {
      // status 0: EAGAIN, the batch limit, or the space ran out (the receiver knows which)
      this.readable = this.rx.more(n, BATCH, space, pos - first, this.maxRead);
    }
    this.flushAll();
    return this.readable;
  }

  /** A read stopped on an error status (-errno, -ENODATA for EOF, -EPROTO for a bad length). */
  private readFailed(status: number): void {
    if (status !== -E.ENODATA && status !== -E.EPROTO) this.stats.add('readErrors');
    this.tapFailed(this.rx.failure(status));
  }

  /** Publishes every ring written to and wakes its consumer. */
  flushAll(): void {
    for (const o of this.tcp) o.flush();
    this.udp.flush();
    this.tx.flush();
  }

  private meta1 = 0;
  private meta2 = 0;

  /**
   * Handles one frame read into ring `inRing` at u8[recOff, recOff+len)
   * (vnet header first). Returns the record kind to keep it there (it is for
   * that ring's worker), or -1 to skip it (answered, copied elsewhere, or
   * dropped).
   */
  private handleFrame(inRing: Out, recOff: number, len: number, now: number): number {
    const u8 = inRing.ring.u8;
    const st = this.stats;
    st.v[0]++; // frames
    st.v[1] += len; // bytes
    const vnet = this.vnetLen;
    const off = recOff + vnet;
    const flen = len - vnet;
    this.pcap?.write(u8, off, flen);
    if (flen < 14) { st.add('tooShort'); return -1; }
    if (flen > MAX_FRAME) { st.add('tooLong'); return -1; }
    const fv = inRing.views;
    const layer = fv.parse(off, flen);
    noteGuestFrame(this.ctx, u8, off, flen);
    this.guest.setFlags(this.ctx.ip6.hasAddrSeen, this.ctx.ip6.hasAddrLlSeen);

    const svc = linkServiceFor(fv);
    if (svc !== LINK_SERVICE.NONE) {
      st.add(svc === LINK_SERVICE.ARP ? 'arp' : svc === LINK_SERVICE.DHCP ? 'dhcp' : svc === LINK_SERVICE.NDP ? 'ndp' : 'dhcpv6');
      this.answer(svc, u8, off, flen);
      return -1;
    }
    if (layer === FRAME_LAYER.NONE || layer === FRAME_LAYER.L2) {
      if (fv.etherType === ETHERTYPE.IPV4) st.add('badIpv4');
      else if (fv.etherType === ETHERTYPE.IPV6) st.add('badIpv6');
      else st.add('badEthertype');
      return -1;
    }
    let l3Off: number;
    let l4Off: number;
    let l4Len: number;
    /** Source and destination address, back to back. */
    let addrOff: number;
    const v4 = fv.etherType === ETHERTYPE.IPV4;
    if (v4) {
      st.add('ipv4');
      const ip = fv.ip4;
      if (ip.isFragment) {
        st.add('fragments');
        this.warnFragments(now);
        return -1;
      }
      if (ip.hasLoopback) { st.add('loopbackAddr'); return -1; }
      l3Off = ip.off;
      l4Off = ip.payloadOff;
      l4Len = ip.payloadLen;
      addrOff = ip.srcOff;
    } else {
      st.add('ipv6');
      const ip = fv.ip6;
      if (ip.hasLoopback) { st.add('loopbackAddr'); return -1; }
      l3Off = ip.off;
      l4Off = ip.payloadOff;
      l4Len = ip.payloadLen;
      addrOff = ip.srcOff;
    }
    const proto = fv.l4Proto;
    // UDP and ICMP echo with a malformed L4 header (truncated, UDP length
    // field beyond the payload) still go to the UDP worker, which counts
    // them by reason
    const toUdpWorker = proto === IP_PROTO.UDP || proto === (v4 ? IP_PROTO.ICMP : IP_PROTO.ICMPV6);
    if (layer !== FRAME_LAYER.L4 && !toUdpWorker) { st.add('otherL4'); return -1; }
    this.meta1 = packOffsets(l3Off - recOff, l4Off - recOff);
    this.meta2 = l4Len;
    const cfg = this.init.cfg;
    if (proto === IP_PROTO.TCP) {
      if (cfg.noTcp) { st.add('otherL4'); return -1; }
      st.add('tcp');
      this.lastTcp++;
      const kind = v4 ? FRAME_KIND.TCP4 : FRAME_KIND.TCP6;
      const dest = this.tcp.length === 1 ? this.tcp[0] : this.tcp[flowHash(u8, addrOff, v4 ? 2 * IP4_LEN : 2 * IP6_LEN, l4Off) % this.tcp.length];
      const syn = isBareSyn(u8, l4Off, l4Len);
      if (syn && dest.synBacklog() >= SYN_BACKLOG) { st.add('synShed'); return -1; }
      return this.keepOrCopy(inRing, dest, u8, recOff, len, kind, syn);
    }
    if (proto === IP_PROTO.UDP) {
      if (cfg.noUdp) { st.add('otherL4'); return -1; }
      st.add('udp');
      this.lastUdp++;
      return this.keepOrCopy(inRing, this.udp, u8, recOff, len, v4 ? FRAME_KIND.UDP4 : FRAME_KIND.UDP6);
    }
    if (proto === IP_PROTO.ICMP || proto === IP_PROTO.ICMPV6) {
      // NDP was consumed above; only echo requests are forwarded (SPEC §6)
      const type = l4Len > 0 ? u8[l4Off] : -1;
      if (cfg.noIcmp || (l4Len > 0 && type !== (v4 ? ICMP_TYPE.ECHO_REQUEST : ICMPV6_TYPE.ECHO_REQUEST))) {
        st.add('otherL4');
        return -1;
      }
      st.add('icmp');
      return this.keepOrCopy(inRing, this.udp, u8, recOff, len, v4 ? FRAME_KIND.ICMP4 : FRAME_KIND.ICMP6);
    }
    st.add('otherL4');
    return -1;
  }

  /**
   * Keeps the frame where it was read if that is its worker's ring (returns
   * kind), else copies it there (-1); a bare SYN that got into dest is counted
   * towards its SYN_BACKLOG.
   */
  private keepOrCopy(inRing: Out, dest: Out, u8: Uint8Array, off: number, len: number, kind: number, syn = false): number {
    const kept = inRing === dest;
    if ((kept || this.copyTo(dest, u8, off, len, kind)) && syn) dest.synsQueued = (dest.synsQueued + 1) | 0;
    return kept ? kind : -1;
  }

  /** Copies the frame to another worker's ring; false if it had no room (counted). */
  private copyTo(o: Out, u8: Uint8Array, off: number, len: number, kind: number): boolean {
    this.stats.add('copies');
    if (!o.ring.tryPush(u8, off, len, kind, this.meta1, this.meta2)) {
      o.ring.countDrop();
      this.stats.add('ringFull');
      return false;
    }
    o.dirty = true;
    return true;
  }

  private answer(svc: (typeof LINK_SERVICE)[keyof typeof LINK_SERVICE], u8: Uint8Array, off: number, len: number): void {
    const tx = this.tx;
    const vnet = this.vnetLen;
    const d = tx.ring.beginWrite(vnet + LINK_REPLY_MAX);
    if (d < 0) {
      tx.ring.countDrop();
      this.stats.add('serviceDrops');
      return;
    }
    const r = linkHandle(this.ctx, svc, u8, off, len, tx.ring.u8, d + vnet);
    if (r <= 0) return;
    if (vnet) tx.ring.u8.fill(0, d, d + vnet);
    tx.ring.endWrite(vnet + r, FRAME_KIND.TO_GUEST);
    tx.dirty = true;
    this.stats.add('serviceReplies');
  }

  private warnFragments(now: number): void {
    this.fragWarn.count++;
    if (now - this.fragWarn.lastMs >= 10000) {
      log.warn(`Can't process IPv4 fragments (${this.fragWarn.count} dropped)`);
      this.fragWarn.lastMs = now;
      this.fragWarn.count = 0;
    }
  }
}


/**
 * tap-TX: the guest link's writer of record.
 *
 * Theory of operation
 * - Drains its input rings (link-service replies from tap-RX first, then
 *   each L4 worker), each within a budget, and hands the frames to the
 *   guest link (link.ts: the back end's framing and the pcap tee), many
 *   frames per call.
 * - A record's space goes back to its producer only once the frame has
 *   left: frames the back end refused for now (would block) stay pending,
 *   tap-TX watches for room (EPOLLOUT) and resumes with them, so no frame
 *   is lost to a full tap queue and producers feel the back-pressure
 *   through their ring.
 * - Without a guest connection (passt between clients), frames are
 *   dropped and counted.
 * - The single-writer gate (txGate.ts): L4 workers write their own frames
 *   when tap-TX holds nothing of theirs. tap-TX takes the gate for each
 *   pass over its inputs, without waiting: when an L4 worker holds it,
 *   tap-TX asks to be rung and sleeps (or goes on with other work), and
 *   the L4 worker rings its waker when it lets go. A frame someone left
 *   half sent on passt's stream is completed before anything else.
 * - A new guest descriptor ('tap' control message, passt) is put in the
 *   gate under the gate, maybe a pass later when an L4 worker held it;
 *   only then tap-TX acknowledges it (nobody writes to the old one any
 *   more, so main may close it).
 */
import { WorkerLoop } from '../loop';
import type { ControlMsg, TapTxInit } from '../../shared/messages';
import { FrameRing } from '../../shared/ring/frameRing';
import { Waker } from '../../shared/ring/waker';
import { native } from '../../shared/native';
import { EpollType, packRef, refType } from '../../shared/epollRef';
import { Stats } from '../../shared/stats';
import { monotonicMs } from '../../shared/time';
import { GuestLink } from './link';
import { TxGate } from './txGate';

const BATCH = 128;

class Input {
  readonly ring: FrameRing;
  readonly producer: Waker;
  /** Frames consumed from the ring but not yet written. */
  readonly offs = new Int32Array(BATCH);
  readonly lens = new Int32Array(BATCH);
  count = 0;
  sent = 0;
  constructor(ring: SharedArrayBuffer, producer: Waker) {
    this.ring = new FrameRing(ring);
    this.producer = producer;
  }
}

class TapTx extends WorkerLoop<TapTxInit> {
  private tapfd: number;
  private readonly vnetLen: number;
  private readonly inputs: Input[];
  private readonly stats: Stats<'tapTx'>;
  private readonly link: GuestLink;
  /** Waiting for room on the guest's descriptor (the back end's waitEvents). */
  private blocked = false;
  /** The descriptor watched while blocked. */
  private waitFd = -1;
  /**
   * The input whose frames were cut short by a full socket: it goes first
   * when writing resumes, since on a stream the rest of a half-sent frame
   * must follow its first bytes.
   */
  private resume: Input | null = null;
  private readonly gate: TxGate;
  /** This thread holds the gate (control messages may arrive while it does). */
  private locked = false;
  /** An L4 worker held the gate when we wanted it: it rings us when it lets go. */
  private gateWanted = false;
  /** The back end's guestDrops already counted (vhost-user). */
  private guestDropsSeen = 0;
  /** A new guest descriptor to put in the gate, then acknowledge (seq), or null. */
  private pendingTap: { fd: number; seq: number } | null = null;

  constructor() {
    super();
    const i = this.init;
    this.tapfd = i.tapfd;
    this.vnetLen = i.vnetLen;
    this.inputs = i.inputs.map((x) => new Input(x.ring, new Waker(x.producer)));
    this.stats = new Stats('tapTx', i.stats);
    this.link = new GuestLink(i.backend, i.vnetLen, i.pcapFd);
    // the main thread put tapfd in the gate when it made it
    this.gate = new TxGate(i.txGate);
  }

  /** Runs fn holding the gate; false, without running it, if an L4 worker holds it. */
  private withGate(fn: () => void): boolean {
    if (this.locked) {
      this.applyPendingTap();
      fn();
      return true;
    }
    if (!this.gate.tryAcquire()) {
      this.gateWanted = true;
      return false;
    }
    this.gateWanted = false;
    this.locked = true;
    try {
      this.applyPendingTap();
      fn();
    } finally {
      this.locked = false;
      this.gate.release();
    }
    return true;
  }

  /** Under the gate: the new descriptor becomes everybody's, then main hears it is applied. */
  private applyPendingTap(): void {
    const p = this.pendingTap;
    if (!p) return;
    this.pendingTap = null;
    this.gate.fd = p.fd;
    this.gate.gen = p.seq;
    this.gate.partial = -1;
    this.post({ type: 'tapAck', seq: p.seq, stage: 'tapTx' });
  }

  protected onControl(msg: ControlMsg): void {
    if (msg.type === 'tap') {
      if (this.blocked) this.unblock();
      this.tapfd = msg.fd;
      this.resume = null;
      this.link.backend.reset();
      this.link.backend.configure?.(msg);
      this.pendingTap = { fd: msg.fd, seq: msg.seq };
      this.withGate(() => {});
    }
  }

  private unblock(): void {
    this.blocked = false;
    this.del(this.waitFd);
    this.waitFd = -1;
  }

  protected onEvent(ref: number, _events: number): void {
    // EPOLLOUT, or EPOLLERR/EPOLLHUP: either way the next write tells
    if (refType(ref) === EpollType.TAP && this.blocked) this.unblock();
  }

  protected hasInput(): boolean {
    // asked to be rung for the gate: it may have come free before we said we sleep
    if (this.gateWanted) return this.gate.isFree();
    return this.pendingTap !== null || this.framesPending();
  }

  /** Frames to write, and room to write them. */
  private framesPending(): boolean {
    if (this.blocked) return false;
    for (const inp of this.inputs) if (inp.sent < inp.count || inp.ring.peek() >= 0) return true;
    return false;
  }

  protected beforeSleep(): void {
    for (const inp of this.inputs) if (inp.sent === inp.count && inp.ring.release()) inp.producer.wake();
  }

  protected drained(): boolean {
    return this.tapfd < 0 || !this.framesPending();
  }

  protected work(): boolean {
    if (this.blocked && !this.pendingTap) return false;
    let more = false;
    this.withGate(() => { more = !this.blocked && this.workLocked(); });
    return more;
  }

  private workLocked(): boolean {
    const p = this.gate.partial;
    if (p >= 0 && this.resume === null) {
      // an L4 worker left a frame half sent: its rest goes first, and
      // nothing else is written until it is published and sent
      const inp = this.inputs[p];
      if (!this.drain(inp, p)) return false;
      if (this.gate.partial >= 0) return false;
    }
    if (this.resume) {
      const first = this.resume;
      this.resume = null;
      if (!this.drain(first, this.inputs.indexOf(first))) return false;
    }
    let more = false;
    for (let i = 0; i < this.inputs.length; i++) {
      const inp = this.inputs[i];
      if (!this.drain(inp, i)) return false; // no room: wait for it
      if (inp.ring.peek() >= 0) more = true;
    }
    return more;
  }

  /** Sends pending frames, then up to one batch from the ring. False if the guest has no room. */
  private drain(inp: Input, idx: number): boolean {
    if (inp.sent === inp.count) {
      inp.count = inp.sent = 0;
      const ring = inp.ring;
      while (inp.count < BATCH) {
        const d = ring.peek();
        if (d < 0) break;
        // the first record of a fresh batch may be a frame an L4 worker left
        // half sent: META1 says how many bytes already left
        if (inp.count === 0 && this.gate.partial === idx) this.link.backend.resume(ring.recMeta1);
        inp.offs[inp.count] = d;
        inp.lens[inp.count] = ring.recLen;
        inp.count++;
        ring.consume();
      }
      if (inp.count === 0) {
        if (ring.release()) inp.producer.wake();
        return true;
      }
    }
    // a new client's frames can only exist once its 'tap' message was posted to us (main posts
    // ours first): look for it before dropping anything for want of a client
    if (this.tapfd < 0 && this.init.backend !== 'tap') this.drainControl(monotonicMs());
    if (this.tapfd < 0) {
      this.stats.add('clientDrops', inp.count - inp.sent);
      inp.sent = inp.count;
    } else {
      const ok = this.send(inp, idx);
      if (!ok) return false;
    }
    if (inp.ring.release()) inp.producer.wake();
    return true;
  }

  /** Writes inp's pending frames; false if some are left (no room). */
  private send(inp: Input, idx: number): boolean {
    const u8 = inp.ring.u8;
    const vnet = this.vnetLen;
    const link = this.link;
    while (inp.sent < inp.count) {
      const first = inp.sent;
      const n = link.send(this.tapfd, u8, inp.offs, inp.lens, first, inp.count - first);
      const gd = link.backend.guestDrops;
      if (gd !== undefined && gd !== this.guestDropsSeen) {
        this.stats.add('guestDrops', gd - this.guestDropsSeen);
        this.guestDropsSeen = gd;
      }
      // a frame cut short keeps everybody else off the link
      this.gate.partial = link.backend.partialBytes > 0 ? idx : -1;
      if (n > 0) {
        for (let i = first; i < first + n; i++) {
          this.stats.v[0]++;
          this.stats.v[1] += inp.lens[i] - vnet;
        }
        this.stats.v[2]++;
        inp.sent += n;
        continue;
      }
      if (n === 0) {
        this.stats.add('eagain');
        this.blocked = true;
        this.resume = inp;
        this.waitFd = link.backend.waitFd(this.tapfd);
        this.add(this.waitFd, link.backend.waitEvents, packRef(EpollType.TAP));
        return false;
      }
      const failure = link.backend.failure(n);
      if (failure === 'drop') {
        // the kernel refused this frame: count it and go on (SPEC §1.1)
        this.stats.add('dropped');
        inp.sent++;
        continue;
      }
      if (failure === 'gone') {
        // the client is gone: tell main (tap-RX may report it too), drop frames until a new one comes
        this.stats.add('clientDrops', inp.count - inp.sent);
        inp.sent = inp.count;
        const fd = this.tapfd;
        this.tapfd = -1;
        link.backend.reset();
        this.gate.fd = -1;
        this.gate.partial = -1;
        this.post({ type: 'tapGone', fd, reason: `send error on client connection: ${native.strerror(-n)}` });
        return true;
      }
      this.post({ type: 'fatal', message: `write to tap: ${native.strerror(-n)}` });
      this.stopping = true;
      inp.sent = inp.count;
      return true;
    }
    return true;
  }
}

new TapTx().run();

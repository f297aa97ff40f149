/**
 * tap-TX: frames to the guest.
 *
 * Theory of operation
 * - Drains its input rings (link-service replies from tap-RX first, then
 *   each L4 worker), each within a budget, and writes the frames to the tap
 *   (one write() per frame, batched in one native call) or, in passt, to
 *   the qemu stream socket (StreamWriter: length prefixes, many frames per
 *   sendmsg, partial writes resumed).
 * - A record's space goes back to its producer only once the frame has
 *   left: frames the tap refused (EAGAIN) stay pending, tap-TX watches
 *   EPOLLOUT and resumes with them, so no frame is lost to a full tap
 *   queue and producers feel the back-pressure through their ring.
 * - pcap: every frame sent is recorded (without the virtio-net header).
 * - Without a guest connection (passt between clients), frames are
 *   dropped and counted.
 * - Writer gate (txGate.ts): L4 workers write their own frames when tap-TX
 *   holds nothing of theirs; tap-TX holds the gate for each pass over its
 *   inputs, and a frame someone left half sent on passt's stream is
 *   completed before anything else.
 */
import { WorkerLoop } from './loop';
import type { ControlMsg, TapTxInit } from '../shared/messages';
import { FrameRing } from '../shared/ring/frameRing';
import { Waker } from '../shared/ring/waker';
import { native, E } from '../shared/native';
import { EPOLLOUT } from '../shared/linux';
import { EpollType, packRef, refType } from '../shared/epollRef';
import { Stats } from '../shared/stats';
import { PcapWriter } from '../shared/pcapWriter';
import { StreamWriter } from './streamWriter';
import { monotonicMs } from '../shared/time';
import { TxGate } from '../shared/txGate';

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
  private readonly pcap: PcapWriter | null;
  private readonly stream: StreamWriter | null;
  /** Waiting for EPOLLOUT on the tap. */
  private blocked = false;
  /**
   * The input whose frames were cut short by a full socket: it goes first
   * when writing resumes, since on a stream the rest of a half-sent frame
   * must follow its first bytes.
   */
  private resume: Input | null = null;
  private readonly gate: TxGate;
  /** This thread holds the gate (control messages may arrive while it does). */
  private locked = false;

  constructor() {
    super();
    const i = this.init;
    this.tapfd = i.tapfd;
    this.vnetLen = i.vnetLen;
    this.inputs = i.inputs.map((x) => new Input(x.ring, new Waker(x.producer)));
    this.stats = new Stats('tapTx', i.stats);
    this.pcap = i.pcapFd >= 0 ? new PcapWriter(i.pcapFd) : null;
    this.stream = i.backend === 'stream' ? new StreamWriter() : null;
    this.gate = new TxGate(i.txGate);
    this.withGate(() => { this.gate.fd = this.tapfd; });
  }

  private withGate<T>(fn: () => T): T {
    if (this.locked) return fn();
    this.gate.lock();
    this.locked = true;
    try {
      return fn();
    } finally {
      this.locked = false;
      this.gate.unlock();
    }
  }

  protected onControl(msg: ControlMsg): void {
    if (msg.type === 'tap') {
      if (this.tapfd >= 0 && this.blocked) this.del(this.tapfd);
      this.tapfd = msg.fd;
      this.blocked = false;
      this.resume = null;
      this.stream?.reset();
      this.withGate(() => {
        this.gate.fd = msg.fd;
        this.gate.partial = -1;
      });
      this.post({ type: 'tapAck', seq: msg.seq, stage: 'tapTx' });
    }
  }

  protected onEvent(ref: number, _events: number): void {
    // EPOLLOUT, or EPOLLERR/EPOLLHUP: either way the next write tells
    if (refType(ref) === EpollType.TAP && this.blocked) {
      this.blocked = false;
      this.del(this.tapfd);
    }
  }

  protected hasInput(): boolean {
    if (this.blocked) return false;
    for (const inp of this.inputs) if (inp.sent < inp.count || inp.ring.peek() >= 0) return true;
    return false;
  }

  protected beforeSleep(): void {
    for (const inp of this.inputs) if (inp.sent === inp.count && inp.ring.release()) inp.producer.wake();
  }

  protected drained(): boolean {
    return this.blocked || this.tapfd < 0 || !this.hasInput();
  }

  protected work(): boolean {
    if (this.blocked) return false;
    return this.withGate(() => this.workLocked());
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
      if (!this.drain(inp, i)) return false; // tap full: wait for EPOLLOUT
      if (inp.ring.peek() >= 0) more = true;
    }
    return more;
  }

  /** Sends pending frames, then up to one batch from the ring. False if the tap is full. */
  private drain(inp: Input, idx: number): boolean {
    if (inp.sent === inp.count) {
      inp.count = inp.sent = 0;
      const ring = inp.ring;
      while (inp.count < BATCH) {
        const d = ring.peek();
        if (d < 0) break;
        // the first record of a fresh batch may be a frame an L4 worker left
        // half sent: META1 says how many bytes already left
        if (inp.count === 0 && this.stream && this.gate.partial === idx) this.stream.setPartial(ring.recMeta1);
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
    if (this.tapfd < 0 && this.init.backend === 'stream') this.drainControl(monotonicMs());
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

  /** Writes inp's pending frames; false if some are left (tap full). */
  private send(inp: Input, idx: number): boolean {
    const u8 = inp.ring.u8;
    const vnet = this.vnetLen;
    while (inp.sent < inp.count) {
      const first = inp.sent;
      const n = this.stream
        ? this.stream.send(this.tapfd, u8, inp.offs, inp.lens, first, inp.count - first)
        : native.writeFrames(this.tapfd, u8, inp.offs.subarray(first), inp.lens.subarray(first), inp.count - first);
      // on the stream, a frame cut short keeps everybody else off it
      if (this.stream) this.gate.partial = this.stream.partialBytes > 0 ? idx : -1;
      if (n > 0) {
        for (let i = first; i < first + n; i++) {
          this.stats.v[0]++;
          this.stats.v[1] += inp.lens[i] - vnet;
          this.pcap?.write(u8, inp.offs[i] + vnet, inp.lens[i] - vnet);
        }
        this.stats.v[2]++;
        inp.sent += n;
        continue;
      }
      if (n === -E.EAGAIN || n === 0) {
        this.stats.add('eagain');
        this.blocked = true;
        this.resume = inp;
        this.add(this.tapfd, EPOLLOUT, packRef(EpollType.TAP));
        return false;
      }
      if (!this.stream && (n === -E.ENOBUFS || n === -E.ENOSPC || n === -E.EIO || n === -E.EINVAL || n === -E.EMSGSIZE)) {
        // the kernel refused this frame: count it and go on (SPEC §1.1)
        this.stats.add('dropped');
        inp.sent++;
        continue;
      }
      if (this.init.backend === 'stream') {
        // the client is gone: tell main (tap-RX may report it too), drop frames until a new one comes
        this.stats.add('clientDrops', inp.count - inp.sent);
        inp.sent = inp.count;
        const fd = this.tapfd;
        this.tapfd = -1;
        this.stream?.reset();
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

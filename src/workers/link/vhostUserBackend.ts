/**
 * The vhost-user back end (passt --vhost-user, issue 14): frames to and
 * from the guest's virtqueues in its own memory, which the addon mapped
 * (link/vhostUser/: protocol, queues, virtio-net).
 *
 * Theory of operation
 * - The main thread speaks the protocol (main/vhostUser.ts) and, once both
 *   queues are ready, hands the connection to tap-RX and tap-TX with the
 *   'tap' control message and a VuLink: the memory table (this thread maps
 *   its own views of it), the queues, their kick and call eventfds, and the
 *   positions in shared memory. `fd` is then the connection's descriptor,
 *   only a token here: frames never touch the socket. Before anything
 *   changes (a message from qemu, qemu gone) main takes the link back the
 *   same way (fd -1) and waits for both acknowledgements, so nobody uses a
 *   queue, an eventfd or a mapping that is changing.
 * - Send (tap-TX, the writer of record, or an L4 worker's direct write
 *   under the gate, its back end configured by a 'guestLink' message and
 *   writing only while tap-TX has that link applied: txGate.ts GEN): each
 *   frame into the receive queue (VirtioNetRx), then one
 *   used-index update and, unless the guest asked for none, one interrupt
 *   (the call eventfd) per batch. No buffers: the kick eventfd is drained,
 *   the queue looked at once more (buffers posted before the drain kicked
 *   nothing new), and if still empty the batch stops: 0, "would block", and
 *   tap-TX sleeps on the kick eventfd (waitFd). A frame never fits in part,
 *   so partialBytes stays 0. A frame that can never fit is -EMSGSIZE: the
 *   'drop' of failure().
 * - Receive (tap-RX): frames from the transmit queue copied into ring
 *   records packed as native.readFrames packs them (one copy, where the tap
 *   has the kernel's), used entries returned and the guest signalled once
 *   per batch. tap-RX watches the transmit queue's kick eventfd, drained
 *   before the queue is read, so a kick after that means new chains.
 * - Kicks (the guest's doorbells, a VM exit each) are asked for only when
 *   we would sleep without them (VRING_USED_F_NO_NOTIFY otherwise): on the
 *   transmit queue while tap-RX is not reading it (more() keeps it reading
 *   until the queue is empty, then kicks are turned on and the queue looked
 *   at once more), on the receive queue while tap-TX waits for buffers.
 * - Counters: chains and frames dropped for the guest's faults are kept by
 *   the queue and virtio-net objects by reason; their total since start
 *   (`guestDrops`) goes into tap-TX's and tap-RX's `guestDrops` counters.
 */
import { native, E } from '../../shared/native';
import { EPOLLIN } from '../../shared/linux';
import type { ControlMsg, VuLink } from '../../shared/messages';
import type { FrameRing } from '../../shared/ring/frameRing';
import { RING_REC_HDR } from '../../shared/ring/layout';
import type { LinkBackend, LinkFailure, LinkReceiver } from './link';
import { memoryFor } from './vhostUser/protocol';
import { QUEUE_POS_WORDS, SplitQueue } from './vhostUser/virtqueue';
import { RX_DROPPED, VirtioNetRx, VirtioNetTx } from './vhostUser/net';

const RX_QUEUE = 0;
const TX_QUEUE = 1;
/** Looks at an empty receive queue again once, after draining its kick. */
const EAGAIN_RETRY = 1;

/** One queue of a VuLink in this thread. */
function openQueue(vu: VuLink, i: number): SplitQueue | null {
  const mem = memoryFor(vu.regions);
  if (!mem) return null;
  const d = vu.queues[i];
  const q = SplitQueue.create(mem, d.num, d.addr, new Int32Array(vu.pos), i * QUEUE_POS_WORDS);
  return typeof q === 'string' ? null : q;
}

/** Drains an eventfd (non-blocking): a kick or a doorbell seen. */
function drain(fd: number): void {
  if (fd >= 0) native.eventfdRead(fd);
}

export class VhostUserBackend implements LinkBackend {
  readonly partialBytes = 0;
  readonly waitEvents = EPOLLIN;
  private net: VirtioNetRx | null = null;
  private kickFd = -1;
  private callFd = -1;
  /** guestDrops of the links before this one. */
  private pastDrops = 0;
  /** The receive queue asks the guest to kick (only while we wait for buffers). */
  private kicksOn = false;
  /** tap-TX's (kicks are its to turn on and off), not a direct writer's. */
  private primary = true;
  private seq = -1;

  get guestDrops(): number {
    return this.pastDrops + (this.net?.guestDrops ?? 0);
  }

  /** Seq of the link configured: a direct writer writes only while tap-TX has it applied. */
  get linkSeq(): number {
    return this.seq;
  }

  /**
   * The 'tap' message (tap-TX) or 'guestLink' (a direct writer, not
   * primary: it leaves the kicks to tap-TX, which alone sleeps on them):
   * the new link, or none.
   */
  configure(msg: ControlMsg, primary = true): void {
    this.pastDrops = this.guestDrops;
    this.net = null;
    this.kickFd = this.callFd = -1;
    this.primary = primary;
    if (msg.type !== 'tap' && msg.type !== 'guestLink') return;
    this.seq = msg.seq;
    if (!msg.vu || msg.fd < 0) return;
    const q = openQueue(msg.vu, RX_QUEUE);
    if (!q) return;
    this.net = new VirtioNetRx(q, msg.vu.mergeable);
    // kicks only while waiting for buffers (send())
    if (primary) q.setKicks(false);
    this.kicksOn = false;
    this.kickFd = msg.vu.queues[RX_QUEUE].kickFd;
    this.callFd = msg.vu.queues[RX_QUEUE].callFd;
  }

  send(_fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, first: number, count: number): number {
    const net = this.net;
    if (!net) return -E.ENOTCONN;
    let n = 0;
    let retried = 0;
    while (n < count) {
      const r = net.putFrame(u8, offs[first + n], lens[first + n]);
      if (r === 1) {
        n++;
        continue;
      }
      if (r === RX_DROPPED) {
        if (n > 0) break; // reported on the next call, as the first frame
        this.signal();
        return -E.EMSGSIZE;
      }
      // no buffers: ask for kicks, drain the old one, then look once more (tap-TX only:
      // a direct writer gives its frames to tap-TX then)
      if (!this.primary || retried++ >= EAGAIN_RETRY) break;
      this.kicks(true);
      drain(this.kickFd);
    }
    // all placed: no kicks while buffers last
    if (n === count && this.primary) this.kicks(false);
    this.signal();
    return n;
  }

  placeRx(): VirtioNetRx | null {
    return this.net;
  }

  placed(): void {
    this.signal();
  }

  private kicks(on: boolean): void {
    if (this.kicksOn === on) return;
    this.kicksOn = on;
    this.net?.q.setKicks(on);
  }

  /** Publishes the used entries; interrupts the guest unless it asked not to be. */
  private signal(): void {
    const q = this.net?.q;
    if (q && q.flush() && q.wantsInterrupt() && this.callFd >= 0) native.eventfdWrite(this.callFd, 1);
  }

  resume(_bytes: number): void {}

  reset(): void {}

  /** A frame that can never fit is dropped; no link (main took it back) drops until the next. */
  failure(errno: number): LinkFailure {
    return errno === -E.EMSGSIZE ? 'drop' : 'gone';
  }

  /** While blocked: the receive queue's kick (the guest posted buffers). */
  waitFd(fd: number): number {
    return this.kickFd >= 0 ? this.kickFd : fd;
  }
}

export class VhostUserReceiver implements LinkReceiver {
  readonly keepsRing = false;
  readonly hangUp = 'vhost-user transmit queue hang-up';
  /** The link comes back when main hands it over again (qemu reconnects, or set-up changes). */
  readonly lost = 'gone';
  private net: VirtioNetTx | null = null;
  private kickFd = -1;
  private callFd = -1;
  /** Chains may be left (a batch stopped on its limit, not on an empty queue). */
  private left = false;
  private pastDrops = 0;

  get guestDrops(): number {
    return this.pastDrops + (this.net?.guestDrops ?? 0);
  }

  configure(msg: ControlMsg): void {
    this.pastDrops = this.guestDrops;
    this.net = null;
    this.kickFd = this.callFd = -1;
    if (msg.type !== 'tap' || !msg.vu || msg.fd < 0) return;
    const q = openQueue(msg.vu, TX_QUEUE);
    if (!q) return;
    this.net = new VirtioNetTx(q);
    q.setKicks(true);
    this.kickFd = msg.vu.queues[TX_QUEUE].kickFd;
    this.callFd = msg.vu.queues[TX_QUEUE].callFd;
  }

  /** tap-RX watches the transmit queue's kick eventfd, not the connection. */
  watchFd(fd: number): number {
    return this.kickFd >= 0 ? this.kickFd : fd;
  }

  read(_fd: number, ring: FrameRing, recOff: number, space: number, lens: Int32Array, max: number,
    maxRead: number): number {
    const net = this.net;
    if (!net) {
      lens[0] = 0;
      return 0;
    }
    drain(this.kickFd);
    // no kicks while we read: more() keeps tap-RX reading until the queue is empty
    net.q.setKicks(false);
    const u8 = ring.u8;
    let cursor = recOff;
    const end = recOff + space;
    let n = 0;
    this.left = false;
    while (n < max && end - cursor >= RING_REC_HDR + maxRead) {
      const len = net.takeFrame(u8, cursor + RING_REC_HDR, maxRead);
      if (len === 0) break;
      if (len < 0) continue; // a bad chain: counted, given back
      lens[n++] = len;
      cursor = (cursor + RING_REC_HDR + len + 7) & ~7;
    }
    const q = net.q;
    if (n === max || end - cursor < RING_REC_HDR + maxRead) this.left = q.available() > 0;
    if (!this.left) {
      // going to sleep on the kick: kicks on, then one more look (setKicks())
      q.setKicks(true);
      this.left = q.available() > 0;
    }
    lens[n] = 0;
    if (q.flush() && q.wantsInterrupt() && this.callFd >= 0) native.eventfdWrite(this.callFd, 1);
    return n;
  }

  more(_n: number, _max: number, _space: number, _used: number, _maxRead: number): boolean {
    return this.left;
  }

  reset(): void {
    this.left = false;
  }

  failure(status: number): string {
    return `vhost-user: ${native.strerror(-status)}`;
  }
}

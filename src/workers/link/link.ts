/**
 * The guest link: the one way frames leave for the guest, whichever back
 * end carries them and whichever thread writes them (DESIGN.md "Back
 * ends": the L4 workers do not know which one carries their frames).
 *
 * Theory of operation
 * - Frames to the guest are ring records (frameRing.ts), each
 *   `[virtio-net header: vnetLen bytes][Ethernet frame]`, built in place by
 *   the L4 workers (l4/tapOut.ts) and by tap-RX's link services. The
 *   REC_PREFIX_ROOM bytes right before a record's data belong to whoever
 *   writes it to the guest (layout.ts): the stream back end puts its
 *   length prefix there, so a frame is one contiguous iovec.
 * - Two kinds of writer call the same interface, `GuestLink.send()`:
 *   tap-TX (tapTx.ts), the writer of record, drains the rings; an L4 worker
 *   whose ring tap-TX has fully drained writes its fresh frames itself
 *   (directWriter.ts), where the configuration places it (cfg.tuning
 *   .directTx). The single-writer gate (txGate.ts) lets exactly one of them
 *   write at a time, without anyone waiting on the data path.
 * - `send()` hands frames to the back end (framing, syscalls) and tees
 *   every frame that left completely to the pcap file (SPEC §1.7: without
 *   the virtio-net header). Nothing else between the workers and the
 *   guest's descriptor knows about framing, pcap or the descriptor.
 * - Frames from the guest take the mirror path: tap-RX (tapReader.ts)
 *   reads through the back end's receive half (`LinkReceiver`: the tap's
 *   one read() per frame, StreamReader on passt's socket), which packs
 *   frames straight into ring records as native.readFrames does.
 *
 * Back ends (`LinkBackend`): tapBackend.ts (one write() per frame on the
 * tap), streamBackend.ts (passt's qemu socket: 32-bit length prefixes,
 * many frames per sendmsg(), frames cut by a full socket resumed at the
 * exact byte) and vhostUserBackend.ts (passt --vhost-user, issue 14: the
 * guest's virtqueues in its own memory, mapped by the addon, each thread
 * with its own external ArrayBuffers over it; the protocol is the main
 * thread's, main/vhostUser.ts):
 * - `send()` places each frame in the guest's receive queue (mergeable
 *   buffers as negotiated), publishes the used entries and signals the call
 *   eventfd once per batch unless the guest suppressed it; no buffers left
 *   is "would block", and `waitFd()` is then the receive queue's kick
 *   eventfd (EPOLLIN); a frame is never cut (`partialBytes` stays 0);
 * - direct writers (directWriter.ts) get the link in a 'guestLink'
 *   message of their own and write only while the gate's GEN is that
 *   link's seq (tap-TX sets it under the gate when it applies a 'tap'
 *   message), so nobody writes through views or eventfds of a link main
 *   took back; the kicks are tap-TX's alone (it is the one that sleeps on
 *   them); the queue positions live in shared memory, taken in turns under
 *   the gate;
 * - its `LinkReceiver` pops the guest's transmit queue into tap-RX's ring
 *   in readFrames' packing, and tap-RX watches that queue's kick eventfd
 *   (`watchFd()`); both halves get the queues and the memory table with
 *   the 'tap' control message (`configure()`).
 * A back end's `Backend` name is in messages.ts, `linkBackend()` and
 * `linkReceiver()` below.
 */
import type { VirtioNetRx } from './vhostUser/net';
import type { Backend, ControlMsg } from '../../shared/messages';
import { PcapWriter } from '../../shared/pcapWriter';
import type { FrameRing } from '../../shared/ring/frameRing';
import { StreamBackend } from './streamBackend';
import { StreamReader } from './streamReader';
import { TapBackend, TapReceiver } from './tapBackend';
import { VhostUserBackend, VhostUserReceiver } from './vhostUserBackend';

/** What a failed send means for the link. */
export type LinkFailure =
  /** The kernel refused this one frame: count it, go on with the next. */
  | 'drop'
  /** The peer is gone (passt's client): drop what is queued until a new one comes. */
  | 'gone'
  /** The guest link is broken for good: the program ends. */
  | 'fatal';

/** How frames reach the guest: what every back end implements. */
export interface LinkBackend {
  /**
   * Sends frames first … first+count-1 in order, frame i at
   * u8[offs[i], offs[i]+lens[i]) (virtio-net header first, the record's
   * REC_PREFIX_ROOM free before it), to descriptor fd.
   * @returns frames that left completely (0: would block, nothing more
   *   fits now), or -errno (see failure())
   */
  send(fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, first: number, count: number): number;
  /** Bytes of the first frame not sent completely that already left (0 but on a stream). */
  readonly partialBytes: number;
  /** The next send continues a frame another writer left `bytes` into (txGate.ts PARTIAL). */
  resume(bytes: number): void;
  /** Forgets any frame in flight (a new descriptor). */
  reset(): void;
  /** What -errno from send() means. */
  failure(errno: number): LinkFailure;
  /** Descriptor and epoll events to wait for after send() would block. */
  waitFd(fd: number): number;
  readonly waitEvents: number;
  /**
   * The 'tap' (tap-TX) or 'guestLink' (direct writers: primary false)
   * control message's link details (vhost-user: queues and memory).
   */
  configure?(msg: ControlMsg, primary?: boolean): void;
  /** Seq of the link configured (vhost-user): direct writes only while the gate's GEN is this. */
  readonly linkSeq?: number;
  /** Descriptor chains and frames dropped so far for the guest's faults (vhost-user). */
  readonly guestDrops?: number;
  /**
   * vhost-user: the receive queue, for frames built in place in the
   * guest's buffers (vhostUser/net.ts), or null; only under the gate.
   */
  placeRx?(): VirtioNetRx | null;
  /** After an in-place batch: publishes its used entries and interrupts the guest unless it asked not to be. */
  placed?(): void;
}

/** How frames from the guest are read: the receive half of a back end (tap-RX). */
export interface LinkReceiver {
  /**
   * Reads frames from fd into ring records packed as native.readFrames
   * does, the first record's header at recOff, within `space` free bytes,
   * at most `max` frames of at most `maxRead` bytes. lens[i] gets frame i's
   * length, lens[n] the stop status: 0 (nothing more for now, or out of
   * space or batch), -ENODATA (the peer closed), -EPROTO (bad framing), or
   * another -errno. Returns n.
   */
  read(fd: number, ring: FrameRing, recOff: number, space: number, lens: Int32Array, max: number,
    maxRead: number): number;
  /**
   * State lives in the ring between reads (a frame received in part waits
   * in its record): read into the same ring every time, and publish every
   * batch (a rollback would lose it).
   */
  readonly keepsRing: boolean;
  /**
   * After read() returned n (with `used` of `space` bytes packed): more can
   * be read without a new readiness event.
   */
  more(n: number, max: number, space: number, used: number, maxRead: number): boolean;
  /** Forgets any frame in flight (a new descriptor). */
  reset(): void;
  /** The log line for a read that stopped on status (< 0, not EAGAIN). */
  failure(status: number): string;
  /** The log line for a hang-up without anything left to read. */
  readonly hangUp: string;
  /** Losing the descriptor: the end of the program (tap), or of a client that may come back (stream). */
  readonly lost: LinkFailure;
  /** The 'tap' control message's link details (vhost-user: queues and memory). */
  configure?(msg: ControlMsg): void;
  /** The descriptor tap-RX watches for fd (vhost-user: the transmit queue's kick), fd if absent. */
  watchFd?(fd: number): number;
  /** Descriptor chains and frames dropped so far for the guest's faults (vhost-user). */
  readonly guestDrops?: number;
}

/** The back end of a kind. */
export function linkBackend(kind: Backend): LinkBackend {
  switch (kind) {
    case 'tap': return new TapBackend();
    case 'stream': return new StreamBackend();
    case 'vhost-user': return new VhostUserBackend();
    default: {
      const never: never = kind;
      return never;
    }
  }
}

/** The receive half of a back end of a kind. */
export function linkReceiver(kind: Backend, maxRead: number): LinkReceiver {
  switch (kind) {
    case 'tap': return new TapReceiver();
    case 'stream': return new StreamReader(maxRead);
    case 'vhost-user': return new VhostUserReceiver();
    default: {
      const never: never = kind;
      return never;
    }
  }
}

/** One writer's end of the guest link: the back end plus the pcap tee. */
export class GuestLink {
  readonly backend: LinkBackend;
  private readonly pcap: PcapWriter | null;

  constructor(kind: Backend, readonly vnetLen: number, pcapFd: number) {
    this.backend = linkBackend(kind);
    this.pcap = pcapFd >= 0 ? new PcapWriter(pcapFd) : null;
  }

  /**
   * The one way frames leave: sends frames first … first+count-1 (as
   * LinkBackend.send) and records each that left in the pcap file.
   * Call only while holding the gate (txGate.ts).
   */
  /** Frames are recorded in a pcap file (then nothing is built in place: frames must pass through send()). */
  get pcapOn(): boolean {
    return this.pcap !== null;
  }

  send(fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, first: number, count: number): number {
    const n = this.backend.send(fd, u8, offs, lens, first, count);
    const pcap = this.pcap;
    if (pcap && n > 0) {
      const vnet = this.vnetLen;
      for (let i = first; i < first + n; i++) pcap.write(u8, offs[i] + vnet, lens[i] - vnet);
    }
    return n;
  }
}

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
 * - Frames from the guest take the mirror path in tap-RX (tapReader.ts):
 *   `native.readFrames` on the tap, StreamReader (streamReader.ts) on
 *   passt's socket, both packing frames as ring records the same way.
 *
 * Back ends (`LinkBackend`): tapBackend.ts (one write() per frame on the
 * tap) and streamBackend.ts (passt's qemu socket: 32-bit length prefixes,
 * many frames per sendmsg(), frames cut by a full socket resumed at the
 * exact byte). vhost-user (issue 14) lands as one more file here,
 * `vhostUserBackend.ts`, implementing the same interface:
 * - the guest memory regions (VHOST_USER_SET_MEM_TABLE) are mapped by the
 *   addon and seen as external ArrayBuffers; the virtqueues' descriptor,
 *   available and used rings are views over them;
 * - `send()` takes an available descriptor chain of the guest's receive
 *   queue per frame, copies the virtio-net header and frame into it
 *   (merging buffers as negotiated), publishes the used entries with the
 *   barriers virtio requires, and signals the call eventfd unless the
 *   guest suppressed it; no descriptor left is "would block" (return the
 *   frames placed so far, 0 if none); it never cuts a frame
 *   (`partialBytes` stays 0, `resume()` is never called);
 * - `waitFd()`/`waitEvents`: while blocked, tap-TX waits for the receive
 *   queue's kick eventfd (EPOLLIN) instead of EPOLLOUT on a socket;
 * - `failure()`: a vanished front end is 'gone' (the gate's FD is then the
 *   vhost-user connection, changed with the same 'tap' control message as
 *   passt's client socket);
 * - the receive side pops the guest's transmit queue into tap-RX's ring in
 *   readFrames' packing, next to StreamReader.
 * Its `Backend` name goes into messages.ts and `linkBackend()` below.
 */
import type { Backend } from '../../shared/messages';
import { PcapWriter } from '../../shared/pcapWriter';
import { StreamBackend } from './streamBackend';
import { TapBackend } from './tapBackend';

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
}

/** The back end of a kind. */
export function linkBackend(kind: Backend): LinkBackend {
  switch (kind) {
    case 'tap': return new TapBackend();
    case 'stream': return new StreamBackend();
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

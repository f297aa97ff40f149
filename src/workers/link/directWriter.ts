/**
 * Direct writes: an L4 worker writes its own fresh frames to the guest,
 * through the guest link, instead of publishing them for tap-TX
 * (cfg.tuning.directTx says which workers may: link.ts, txGate.ts).
 *
 * Theory of operation
 * - Only while tap-TX holds nothing of this worker's ring (every record
 *   published so far has been released: `consumerCaughtUp()`), so no frame
 *   of its flows is queued and the guest still sees them in order; only
 *   with the gate (never waiting for it, and never while tap-TX asked for
 *   it: txGate.ts), a guest descriptor, and no frame left half sent on
 *   passt's stream.
 * - The frames are the ring's unpublished records (`unpublished()`). All
 *   of them left: the records are rolled back, as if never written, and
 *   tap-TX is not woken. Otherwise the caller publishes them, having had
 *   those that left turned into SKIP records here; a frame the stream cut
 *   short gets the bytes already sent in its META1 and its ring's input
 *   index in the gate's PARTIAL, so tap-TX completes it before any other
 *   byte. Errors, EAGAIN included, are left to tap-TX the same way.
 * - On letting go of the gate, tap-TX is rung if it asked for the gate
 *   meanwhile (txGate.ts).
 * - vhost-user, in place: under the same conditions (and no pcap) the TCP
 *   worker may take the gate to build frames straight in the guest's
 *   receive buffers (`placeLock()`, then `placeDone()`; tcp/sock.ts).
 */
import type { ControlMsg, DirectTx } from '../../shared/messages';
import type { FrameRing } from '../../shared/ring/frameRing';
import type { Waker } from '../../shared/ring/waker';
import { GuestLink } from './link';
import { TxGate } from './txGate';
import type { VirtioNetRx } from './vhostUser/net';

/** Most frames written directly per flush; larger batches go through tap-TX. */
const DIRECT_MAX = 128;

export class DirectWriter {
  private readonly gate: TxGate;
  private readonly link: GuestLink;
  private readonly offs = new Int32Array(DIRECT_MAX);
  private readonly lens = new Int32Array(DIRECT_MAX);
  private readonly hdrs = new Int32Array(DIRECT_MAX);

  /**
   * @param ring the worker's ring towards tap-TX (its producer side)
   * @param tapTx tap-TX's waker, rung when it waits for the gate
   */
  constructor(private readonly d: DirectTx, private readonly ring: FrameRing, vnetLen: number,
    private readonly tapTx: Waker) {
    this.gate = new TxGate(d.gate);
    this.link = new GuestLink(d.backend, vnetLen, d.pcapFd);
  }

  /** A 'guestLink' message: the link's details for our back end (vhost-user). */
  configure(msg: ControlMsg): void {
    this.link.backend.configure?.(msg, false);
  }

  /**
   * Writes the ring's unpublished frames to the guest when it may. True if
   * all of them left (their records are rolled back); false: the caller
   * publishes the ring (and wakes tap-TX).
   */
  tryWrite(): boolean {
    if (!this.ring.consumerCaughtUp() || !this.gate.tryLock()) return false;
    let done = false;
    try {
      done = this.writeLocked();
    } finally {
      if (this.gate.release()) this.tapTx.wake();
    }
    return done;
  }

  /**
   * For frames built in place in the guest's buffers (vhost-user): takes
   * the gate when a direct write could be made now (tap-TX holds nothing of
   * this ring, nothing half sent, the link tap-TX applied is ours, no pcap)
   * and returns the receive queue; null (gate not held) otherwise. The
   * caller must have no unpublished frames (they would be overtaken), and
   * ends with placeDone().
   */
  placeLock(): VirtioNetRx | null {
    const link = this.link;
    if (!link.backend.placeRx || link.pcapOn || !this.ring.consumerCaughtUp() || !this.gate.tryLock()) return null;
    const gate = this.gate;
    const rx = gate.fd >= 0 && gate.partial < 0 && link.backend.linkSeq === gate.gen ? link.backend.placeRx() : null;
    if (!rx && this.gate.release()) this.tapTx.wake();
    return rx;
  }

  /** Ends an in-place batch: publishes it to the guest, lets go of the gate. */
  placeDone(): void {
    this.link.backend.placed?.();
    if (this.gate.release()) this.tapTx.wake();
  }

  private writeLocked(): boolean {
    const gate = this.gate;
    const fd = gate.fd;
    if (fd < 0 || gate.partial >= 0) return false;
    // vhost-user: our views and eventfds must be those of the link tap-TX applied
    const seq = this.link.backend.linkSeq;
    if (seq !== undefined && seq !== gate.gen) return false;
    const ring = this.ring;
    const n = ring.unpublished(this.offs, this.lens, this.hdrs, DIRECT_MAX);
    if (n <= 0) return n === 0;
    const link = this.link;
    link.backend.reset();
    let sent = link.send(fd, ring.u8, this.offs, this.lens, 0, n);
    if (sent < 0) sent = 0; // errors: tap-TX deals with them
    const partial = link.backend.partialBytes;
    if (sent === n && partial === 0) {
      ring.rollback();
      return true;
    }
    for (let i = 0; i < sent; i++) ring.skipUnpublished(this.hdrs[i]);
    if (partial > 0) {
      // the next bytes on the stream must be the rest of this frame
      ring.setUnpublishedMeta1(this.hdrs[sent], partial);
      gate.partial = this.d.input;
    }
    return false;
  }
}

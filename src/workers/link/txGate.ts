/**
 * The single-writer gate of the guest link: who may write frames to the
 * guest (the tap, passt's socket) right now.
 *
 * Theory of operation
 * - tap-TX is the writer of record, but an L4 worker whose own ring is
 *   fully drained (tap-TX holds nothing of it, so no frame of its flows is
 *   queued) may write its fresh frames itself instead of publishing them
 *   and waking tap-TX: one thread hand-off less per batch, which is most of
 *   the cost on a busy small machine (DESIGN.md "Performance levers",
 *   directTx.ts). Whoever writes holds LOCK; at most one thread writes the
 *   guest's descriptor at any time.
 * - Nobody ever waits for the gate on the data path (DESIGN.md: wait and
 *   notify only off it). Taking it is one compare-and-swap of LOCK 0 → 1:
 *   - an L4 worker that does not get it (`tryLock()`) publishes its frames
 *     instead, for tap-TX to write. It does not even try while WANTED is
 *     set: tap-TX asked for the gate, and goes first (so a busy L4 worker
 *     cannot starve the frames queued in tap-TX);
 *   - tap-TX that does not get it (`tryAcquire()`) stores WANTED = 1 and
 *     tries once more; if the gate is still held it goes on with other
 *     work or sleeps in its epoll set, re-checking `isFree()` after it said
 *     it sleeps. WANTED stays set until tap-TX holds the gate;
 *   - `release()` stores LOCK = 0, then loads WANTED: when set, the
 *     releasing L4 worker rings tap-TX's waker.
 *   No wake-up is lost, by Dekker's argument (as for a ring's WAITING flag,
 *   frameRing.ts/waker.ts): tap-TX stores WANTED, then loads LOCK; the
 *   holder stores LOCK, then loads WANTED — all seq-cst, so either tap-TX's
 *   second try (or its `isFree()` re-check before sleeping) sees LOCK = 0,
 *   or the holder sees WANTED = 1 and rings. A holder never blocks (one
 *   non-blocking sendmsg/write batch), so the gate is never held long.
 * - FD is the current guest descriptor (-1: none). The main thread sets it
 *   at allocation; afterwards tap-TX changes it under the gate when passt's
 *   client changes, so nobody writes to a descriptor being closed (tap-TX
 *   acknowledges the change only once it holds the gate and applied it).
 *   GEN is the seq of that change: a direct writer whose back end was
 *   configured for another link (vhost-user's queues and memory reach the
 *   L4 workers in a message of their own) does not write.
 * - On passt's stream a frame cut by a full socket must be completed before
 *   any other byte: PARTIAL names the tap-TX input whose first record is
 *   half sent (its META1 says how many bytes left already), or -1. While it
 *   is set only tap-TX writes, and it serves that input first.
 */

/** Int32 indices in the gate's SharedArrayBuffer, each field on its own 64-byte line. */
export const TX_GATE_FIELD = { LOCK: 0, FD: 16, PARTIAL: 32, WANTED: 48, GEN: 64 } as const;
const F = TX_GATE_FIELD;
export const TX_GATE_BYTES = 320;

export class TxGate {
  private readonly i32: Int32Array;

  constructor(sab: SharedArrayBuffer) {
    this.i32 = new Int32Array(sab);
  }

  /** Main thread: a gate for descriptor fd (-1: none yet), nothing half sent. */
  static allocate(fd: number): SharedArrayBuffer {
    const sab = new SharedArrayBuffer(TX_GATE_BYTES);
    const g = new Int32Array(sab);
    g[F.FD] = fd;
    g[F.PARTIAL] = -1;
    return sab;
  }

  /** L4 workers: takes the gate if it is free and tap-TX did not ask for it (never waits). */
  tryLock(): boolean {
    if (Atomics.load(this.i32, F.WANTED) !== 0) return false;
    return Atomics.compareExchange(this.i32, F.LOCK, 0, 1) === 0;
  }

  /**
   * tap-TX: takes the gate if it is free; else asks the holder to ring
   * tap-TX when it lets go (and the L4 workers to stay off), and tries once
   * more (never waits).
   */
  tryAcquire(): boolean {
    if (Atomics.compareExchange(this.i32, F.LOCK, 0, 1) !== 0) {
      Atomics.store(this.i32, F.WANTED, 1);
      if (Atomics.compareExchange(this.i32, F.LOCK, 0, 1) !== 0) return false;
    }
    // ours: the L4 workers may take it again after us
    if (Atomics.load(this.i32, F.WANTED) !== 0) Atomics.store(this.i32, F.WANTED, 0);
    return true;
  }

  /** tap-TX, after it said it sleeps: the gate may be taken now. */
  isFree(): boolean {
    return Atomics.load(this.i32, F.LOCK) === 0;
  }

  /**
   * Lets go of the gate.
   * @returns true when tap-TX asked for it meanwhile: an L4 worker then
   *   rings tap-TX's waker
   */
  release(): boolean {
    Atomics.store(this.i32, F.LOCK, 0);
    return Atomics.load(this.i32, F.WANTED) !== 0;
  }

  /** The guest descriptor (read or set under the gate). */
  get fd(): number {
    return Atomics.load(this.i32, F.FD);
  }

  set fd(v: number) {
    Atomics.store(this.i32, F.FD, v);
  }

  /**
   * Seq of the 'tap' message tap-TX applied last (under the gate): a direct
   * writer configured for another link (vhost-user) must not write.
   */
  get gen(): number {
    return Atomics.load(this.i32, F.GEN);
  }

  set gen(v: number) {
    Atomics.store(this.i32, F.GEN, v);
  }

  /** tap-TX input holding a half-sent frame, or -1 (under the gate). */
  get partial(): number {
    return Atomics.load(this.i32, F.PARTIAL);
  }

  set partial(v: number) {
    Atomics.store(this.i32, F.PARTIAL, v);
  }
}

/**
 * The writer gate of the guest connection: who may write frames to the tap
 * (or passt's socket) right now.
 *
 * Theory of operation
 * - tap-TX is the writer of record, but an L4 worker whose own ring is
 *   fully drained (tap-TX holds nothing of it, so no frame of its flows is
 *   queued) may write its fresh frames itself instead of publishing them
 *   and waking tap-TX: one thread hand-off less per batch, which is most of
 *   the cost on a busy small machine (DESIGN.md "Performance levers").
 * - Whoever writes holds LOCK (compare-and-swap 0 → 1, never held across a
 *   wait; tap-TX waits for it briefly with Atomics.wait). FD is the current
 *   guest descriptor (-1: none), changed by tap-TX under the lock when
 *   passt's client changes, so nobody writes to a descriptor being closed.
 * - On passt's stream a frame cut by a full socket must be completed before
 *   any other byte: PARTIAL names the tap-TX input whose first record is
 *   half sent (its META1 says how many bytes left already), or -1. While it
 *   is set only tap-TX writes, and it serves that input first.
 */

const F = { LOCK: 0, FD: 16, PARTIAL: 32 } as const;
export const TX_GATE_BYTES = 192;

export class TxGate {
  private readonly i32: Int32Array;

  constructor(sab: SharedArrayBuffer) {
    this.i32 = new Int32Array(sab);
  }

  /** Main thread: a gate with no descriptor and nothing half sent. */
  static allocate(): SharedArrayBuffer {
    const sab = new SharedArrayBuffer(TX_GATE_BYTES);
    const g = new Int32Array(sab);
    g[F.FD] = -1;
    g[F.PARTIAL] = -1;
    return sab;
  }

  tryLock(): boolean {
    return Atomics.compareExchange(this.i32, F.LOCK, 0, 1) === 0;
  }

  /** Waits (briefly: holders never block) until the lock is ours. */
  lock(): void {
    while (Atomics.compareExchange(this.i32, F.LOCK, 0, 1) !== 0) Atomics.wait(this.i32, F.LOCK, 1, 1);
  }

  unlock(): void {
    Atomics.store(this.i32, F.LOCK, 0);
    Atomics.notify(this.i32, F.LOCK, 1);
  }

  /** The guest descriptor (read or set under the lock). */
  get fd(): number {
    return Atomics.load(this.i32, F.FD);
  }

  set fd(v: number) {
    Atomics.store(this.i32, F.FD, v);
  }

  /** tap-TX input holding a half-sent frame, or -1 (under the lock). */
  get partial(): number {
    return Atomics.load(this.i32, F.PARTIAL);
  }

  set partial(v: number) {
    Atomics.store(this.i32, F.PARTIAL, v);
  }
}

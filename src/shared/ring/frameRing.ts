/**
 * FrameRing: a single-producer single-consumer ring of variable-length
 * records in one SharedArrayBuffer, the transport between worker threads.
 *
 * # Theory of operation
 *
 * **What is carried.** Records of 0..capacity-16 data bytes, each with a
 * 16-byte header `[len, kind, meta1, meta2]` (layout.ts). Kinds >= 0 belong
 * to the user (the pipeline stages put a frame type there, and a flow hint
 * in meta1/meta2). Two kinds are the ring's own: WRAP (-1, "continue at
 * offset 0") and SKIP (-2, "pass over me"). The consumer never sees them.
 *
 * **Directions.** Exactly one producer thread and one consumer thread per
 * ring (one ring per (producer, consumer) pair). Each side builds its own
 * `new FrameRing(sab)` and uses only its half of the API. Each side writes
 * only its own index: the producer TAIL, the consumer HEAD. Records belong
 * to the producer until published and to the consumer from then until
 * released; each side may rewrite a record while it owns it (kind, meta1,
 * and the REC_PREFIX_ROOM bytes before the data: layout.ts).
 *
 * **Positions; full versus empty.** HEAD and TAIL are byte positions in
 * [0, 2 * capacity): position p is data-area offset `p mod capacity`, and
 * the extra bit tells the lap. Used bytes = (TAIL - HEAD) mod 2*capacity,
 * which is 0 when empty and `capacity` when full, so the two are never
 * confused and no gap has to be kept. Any capacity that is a multiple of 8
 * works (no power of two needed).
 *
 * **Producer states and operations.**
 * - `beginWrite(minBytes)` looks for `16 + minBytes` contiguous free bytes
 *   at the write cursor. When the end of the data area is too short it
 *   writes a WRAP header there (or nothing, if fewer than 16 bytes remain:
 *   the wrap is implicit) and moves the cursor to offset 0 — only once the
 *   whole tail end is free, so that no unread record is overwritten. It
 *   returns the data offset (in `u8`) of the next record, or -1.
 * - The producer fills the data, then `endWrite(len, kind, meta1, meta2)`
 *   writes the header at the cursor and moves the cursor to
 *   align8(cursor + 16 + len). Several records may be written back to back
 *   inside `contiguousFree()` bytes after one `beginWrite` (this is how
 *   `native.readFrames` packs a batch from the tap); a record that turns
 *   out to be for nobody becomes a SKIP record.
 * - `publish()` makes everything ended so far visible with one
 *   `Atomics.store(TAIL)`. Data and headers are plain writes before that
 *   store, so they are visible to a consumer that has loaded the new TAIL
 *   (seq-cst Atomics give release/acquire ordering). Publish once per batch.
 * - Nothing before `publish()` is visible: a reader never sees a record
 *   half written.
 * - Until then the producer may also take records back, still the only
 *   thread touching them: `unpublished()` lists the records ended since
 *   the last publish, `skipUnpublished()`/`setUnpublishedMeta1()` rewrite
 *   one, and `rollback()` forgets them all, as if never written. This is
 *   how an L4 worker writes its own frames to the guest without the
 *   consumer (link/directWriter.ts: what left is rolled back or becomes
 *   SKIP) and how tap-RX reuses a batch that held nothing for the ring's
 *   consumer; the consumer never learns of either.
 * - tap-RX reads a batch straight into the ring (readFrames stops when
 *   fewer than 16 + MAX_FRAME bytes remain, so no frame is truncated):
 *   ```
 *   const d = ring.beginWrite(MAX_FRAME);
 *   if (d < 0) → wait for space (below), or leave the frames in the tap
 *   const n = native.readFrames(tapFd, ring.u8, recordHeader(d), ring.contiguousFree(), RING_REC_HDR,
 *     lens, max, MAX_FRAME);
 *   for (let i = 0; i < n; i++) ring.endWrite(lens[i], forMe ? kind : REC_KIND.SKIP, meta1, meta2);
 *   if (ring.publish()) consumerWaker.wake();
 *   ```
 *
 * **Consumer states and operations.**
 * - `peek()` loads TAIL (only when its cached copy is used up), passes over
 *   WRAP, SKIP and implicit wraps, and returns the data offset of the next
 *   user record, or -1. `recLen`, `recKind`, `recMeta1`, `recMeta2` describe
 *   the peeked record; `peek()` again returns the same record.
 * - `consume()` moves the local read cursor past the peeked record. The
 *   data stays valid until `release()`.
 * - `release()` hands the space back with one `Atomics.store(HEAD)`. Call it
 *   after every drain loop, even one where `peek()` returned -1 at once
 *   (peek may have passed a WRAP whose space the producer waits for), and
 *   last thing before sleeping.
 *
 * **Waiting.** Each side sleeps on its own Waker (waker.ts), in this order:
 * ```
 * // producer, after beginWrite(n) returned -1
 * ring.waitForSpace();                        // WAITING = 1
 * myWaker.prepareSleep();                     // SLEEPING = 1
 * if (ring.beginWrite(n) >= 0) myWaker.cancelSleep();
 * else {
 *   if (ring.publish()) consumerWaker.wake();
 *   native.epollWait(...); myWaker.wokeUp();
 * }
 * // consumer, after peek() returned -1
 * myWaker.prepareSleep();
 * if (ring.peek() >= 0) myWaker.cancelSleep();
 * else {
 *   if (ring.release()) producerWaker.wake();
 *   native.epollWait(...); myWaker.wokeUp();
 * }
 * ```
 * The publish()/release() comes *after* the re-check on purpose: the
 * producer's re-check may write a WRAP (the end became free, the start is
 * not), and the consumer's re-check may pass a WRAP or SKIP; the other side
 * may be waiting exactly for that, so it must be published/released before
 * this side sleeps. `release()` stores HEAD and then takes WAITING (1 → 0);
 * when it was set, the caller wakes the producer. Dekker's argument (each
 * side stores its variable, then loads the other's, all seq-cst) shows that
 * either the producer's re-check sees the new HEAD or the consumer's
 * release sees WAITING = 1; waker.ts has the whole proof.
 *
 * **Limits.** capacity: 64 .. 2^30 bytes, a multiple of 8. A record holds at
 * most capacity - 16 data bytes; `beginWrite` with more throws (a broken
 * invariant, not back-pressure). A full ring is back-pressure: `beginWrite`
 * returns -1, and a producer that drops instead of waiting counts it with
 * `countDrop()`. There are no timeouts in the ring.
 *
 * **Stale answers.** `isEmpty()`, `usedBytes()` and the counters read
 * shared state that the other side may change right after: from the
 * producer a "not empty"/"used" answer may already be stale (the consumer
 * released more), from the consumer an "empty" answer may already be stale
 * (the producer published more). Only the producer's own free-space
 * answers are safe to act on, because only the producer can reduce free
 * space; only the consumer's `peek()` is safe for "is there a record".
 *
 * **Read first.** L. Lamport, "Proving the correctness of multiprocess
 * programs" (1977) for the SPSC queue; ECMA-262 "Memory Model" for the
 * seq-cst `Atomics`; ringbuf.js and smoltcp's PacketBuffer for the shape.
 */
import {
  RING_HDR, RING_DATA, RING_MAGIC, REC, RING_REC_HDR, REC_KIND, RING_MIN_CAPACITY, RING_MAX_CAPACITY,
  recordSize,
} from './layout';

/** Options of a FrameRing view. */
export interface FrameRingOptions {
  /**
   * Check every call's contract (overruns, consume without peek). Defaults
   * to FrameRing.debugDefault.
   */
  debug?: boolean;
}

export class FrameRing {
  /**
   * The `debug` option of views made without one: a worker sets it once at
   * start-up from its configuration (cfg.tuning.ringDebug, loop.ts).
   */
  static debugDefault = false;

  /** The shared buffer (header, then data area). */
  readonly sab: SharedArrayBuffer;
  /** Bytes of the whole SharedArrayBuffer; record data offsets index this. */
  readonly u8: Uint8Array;
  /** Int32 view of the whole SharedArrayBuffer (header fields, record headers). */
  readonly i32: Int32Array;
  /** Bytes in the data area. */
  readonly capacity: number;
  /** Positions run modulo this (2 * capacity). */
  private readonly span: number;
  private readonly debug: boolean;

  // Producer-side state (only the producing thread touches these).
  /** Position where the next record header goes. */
  private wPos: number;
  /** Last HEAD loaded; never ahead of the real HEAD, so free space is never overestimated. */
  private headCache: number;
  /** Last position stored in TAIL. */
  private pubPos: number;
  /** User records ended so far (mod 2^32), stored in RECORDS by publish(). */
  private recCount: number;
  /** recCount as of the last publish(). */
  private pubRecCount: number;

  // Consumer-side state (only the consuming thread touches these).
  /** Position of the next record header to read (past consumed records). */
  private rPos: number;
  /** Last TAIL loaded; never ahead of the real TAIL. */
  private tailCache: number;
  /** Last position stored in HEAD. */
  private relPos: number;
  /** Int32 index of the peeked record's header, or -1. */
  private cur = -1;

  /**
   * Allocates and initialises a ring (main thread); pass the buffer to the
   * two workers, which wrap it with `new FrameRing(sab)`.
   * @param capacity bytes of the data area: a multiple of 8, 64 .. 2^30
   */
  static allocate(capacity: number): SharedArrayBuffer {
    if (!Number.isInteger(capacity) || capacity % 8 !== 0 || capacity < RING_MIN_CAPACITY ||
        capacity > RING_MAX_CAPACITY)
      throw new RangeError(`ring capacity ${capacity}: must be a multiple of 8 in ${RING_MIN_CAPACITY}..${RING_MAX_CAPACITY}`);
    const sab = new SharedArrayBuffer(RING_DATA + capacity);
    const i32 = new Int32Array(sab);
    i32[RING_HDR.CAPACITY] = capacity;
    Atomics.store(i32, RING_HDR.MAGIC, RING_MAGIC);
    return sab;
  }

  /** Wraps a buffer made by `allocate()`; call once per thread and side. */
  constructor(sab: SharedArrayBuffer, opts: FrameRingOptions = {}) {
    const i32 = new Int32Array(sab);
    if (sab.byteLength < RING_DATA || Atomics.load(i32, RING_HDR.MAGIC) !== RING_MAGIC ||
        i32[RING_HDR.CAPACITY] !== sab.byteLength - RING_DATA)
      throw new TypeError('not a FrameRing buffer (use FrameRing.allocate)');
    this.sab = sab;
    this.i32 = i32;
    this.u8 = new Uint8Array(sab);
    this.capacity = i32[RING_HDR.CAPACITY];
    this.span = 2 * this.capacity;
    this.debug = opts.debug ?? FrameRing.debugDefault;
    this.wPos = this.pubPos = this.tailCache = Atomics.load(i32, RING_HDR.TAIL);
    this.rPos = this.relPos = this.headCache = Atomics.load(i32, RING_HDR.HEAD);
    this.recCount = this.pubRecCount = Atomics.load(i32, RING_HDR.RECORDS);
  }

  /** Data-area offset of a position. */
  private offsetOf(pos: number): number {
    return pos >= this.capacity ? pos - this.capacity : pos;
  }

  /** pos + n modulo 2 * capacity (n <= capacity). */
  private advance(pos: number, n: number): number {
    const p = pos + n;
    return p >= this.span ? p - this.span : p;
  }

  /**
   * Walking records: the Int32 index of the header at pos, or -1 where the
   * lap ends there (a gap too short for a header, or a WRAP record: the
   * next record is at lapEnd(pos)).
   */
  private headerAt(pos: number): number {
    const off = this.offsetOf(pos);
    if (this.capacity - off < RING_REC_HDR) return -1;
    const h = (RING_DATA + off) >> 2;
    return this.i32[h + REC.KIND] === REC_KIND.WRAP ? -1 : h;
  }

  /** The position where the next lap starts, from pos in this one. */
  private lapEnd(pos: number): number {
    return this.advance(pos, this.capacity - this.offsetOf(pos));
  }

  /** Bytes free from the producer's point of view, with the given HEAD. */
  private freeFrom(head: number): number {
    const used = this.wPos - head;
    return this.capacity - (used < 0 ? used + this.span : used);
  }

  // ---------------------------------------------------------------- producer

  /**
   * Producer: reserves the next record with room for at least `minBytes` of
   * data, wrapping to offset 0 if the end of the data area is too short.
   * @returns the data offset (into `u8`) of the record, or -1 when there is
   *   not enough free space yet (back-pressure: wait or drop)
   */
  beginWrite(minBytes: number): number {
    const need = RING_REC_HDR + minBytes;
    if (!(minBytes >= 0 && need <= this.capacity))
      throw new RangeError(`ring record of ${minBytes} bytes cannot fit a ${this.capacity}-byte ring`);
    const off = this.offsetOf(this.wPos);
    const toEnd = this.capacity - off;
    let free = this.freeFrom(this.headCache);
    if (toEnd >= need) {
      if (free < need) {
        free = this.freeFrom(this.headCache = Atomics.load(this.i32, RING_HDR.HEAD));
        if (free < need) return -1;
      }
      return RING_DATA + off + RING_REC_HDR;
    }
    // The record must go to offset 0; first the tail end must be all free.
    if (free < toEnd) {
      free = this.freeFrom(this.headCache = Atomics.load(this.i32, RING_HDR.HEAD));
      if (free < toEnd) return -1;
    }
    if (toEnd >= RING_REC_HDR) {
      const h = (RING_DATA + off) >> 2;
      this.i32[h + REC.LEN] = 0;
      this.i32[h + REC.KIND] = REC_KIND.WRAP;
    }
    this.wPos = this.advance(this.wPos, toEnd);
    free -= toEnd;
    if (free < need) {
      free = this.freeFrom(this.headCache = Atomics.load(this.i32, RING_HDR.HEAD));
      if (free < need) return -1;
    }
    return RING_DATA + RING_REC_HDR;
  }

  /**
   * Producer: contiguous free bytes from the current record's header
   * position (header included), for packing several records after one
   * `beginWrite` the way `native.readFrames(..., hdrRoom = 16, ...)` does.
   * Always a multiple of 8. Only grows until the producer writes.
   */
  contiguousFree(): number {
    const free = this.freeFrom(this.headCache = Atomics.load(this.i32, RING_HDR.HEAD));
    const toEnd = this.capacity - this.offsetOf(this.wPos);
    return free < toEnd ? free : toEnd;
  }

  /** Producer: data offset (into `u8`) the current record would have; valid after beginWrite(). */
  get writeDataOffset(): number {
    return RING_DATA + this.offsetOf(this.wPos) + RING_REC_HDR;
  }

  /**
   * Producer: ends the record at the cursor (its data already written at
   * cursor + 16) and moves the cursor to align8(cursor + 16 + len). Not
   * visible to the consumer before `publish()`.
   * @param kind user kind (>= 0), or REC_KIND.SKIP for a record to pass over
   */
  endWrite(len: number, kind: number, meta1 = 0, meta2 = 0): void {
    const size = recordSize(len);
    if (this.debug) {
      if (!(Number.isInteger(len) && len >= 0)) throw new Error(`ring endWrite: bad length ${len}`);
      if (!(Number.isInteger(kind) && (kind >= 0 || kind === REC_KIND.SKIP)))
        throw new Error(`ring endWrite: bad kind ${kind}`);
      if (size > this.contiguousFree())
        throw new Error(`ring endWrite: record of ${len} bytes overruns free space (${this.contiguousFree()})`);
    }
    const h = (RING_DATA + this.offsetOf(this.wPos)) >> 2;
    const i32 = this.i32;
    i32[h + REC.LEN] = len;
    i32[h + REC.KIND] = kind;
    i32[h + REC.META1] = meta1;
    i32[h + REC.META2] = meta2;
    this.wPos = this.advance(this.wPos, size);
    if (kind >= 0) this.recCount = (this.recCount + 1) | 0;
  }

  /**
   * Producer: makes every ended record visible (one Atomics.store of TAIL).
   * @returns true when something new was published (then wake the consumer)
   */
  publish(): boolean {
    if (this.wPos === this.pubPos) return false;
    Atomics.store(this.i32, RING_HDR.TAIL, this.pubPos = this.wPos);
    Atomics.store(this.i32, RING_HDR.RECORDS, this.pubRecCount = this.recCount);
    return true;
  }

  /**
   * Producer: true when the consumer has released everything published so
   * far (it holds nothing of ours). Safe to act on: only the consumer moves
   * HEAD, and only forward.
   */
  consumerCaughtUp(): boolean {
    return Atomics.load(this.i32, RING_HDR.HEAD) === this.pubPos;
  }

  /**
   * Producer: the user records ended since the last publish(), in order
   * (SKIP and WRAP passed over): data offsets into `u8`, lengths, and the
   * Int32 index of each header in `i32` (to rewrite KIND or META1 before
   * publishing). Returns the count, or -1 if there are more than `max`.
   */
  unpublished(offs: Int32Array, lens: Int32Array, hdrs: Int32Array, max: number): number {
    const i32 = this.i32;
    let pos = this.pubPos;
    let n = 0;
    while (pos !== this.wPos) {
      const h = this.headerAt(pos);
      if (h < 0) {
        pos = this.lapEnd(pos);
        continue;
      }
      const len = i32[h + REC.LEN];
      if (i32[h + REC.KIND] >= 0) {
        if (n === max) return -1;
        offs[n] = (h << 2) + RING_REC_HDR;
        lens[n] = len;
        hdrs[n] = h;
        n++;
      }
      pos = this.advance(pos, recordSize(len));
    }
    return n;
  }

  /**
   * Producer: turns a record listed by unpublished() (`hdr`, its header
   * index) into SKIP: once published, the consumer passes over it. It
   * still counts in `records`.
   */
  skipUnpublished(hdr: number): void {
    this.i32[hdr + REC.KIND] = REC_KIND.SKIP;
  }

  /** Producer: sets META1 of a record listed by unpublished() (`hdr`, its header index). */
  setUnpublishedMeta1(hdr: number, meta1: number): void {
    this.i32[hdr + REC.META1] = meta1;
  }

  /**
   * Producer: forgets every record ended since the last publish(). None of
   * them was visible, so their space is simply reused (a WRAP header written
   * meanwhile lies beyond TAIL and is rewritten by the next wrap). Used when
   * a batch read in place turned out to hold nothing for this consumer, so
   * it is not woken to pass over SKIP records.
   */
  rollback(): void {
    this.wPos = this.pubPos;
    this.recCount = this.pubRecCount;
  }

  /**
   * Producer: copies `len` bytes of `src` from `srcOff` into a new record
   * and ends it (not published).
   * @returns false, with nothing written, when the ring has no room
   */
  tryPush(src: Uint8Array, srcOff: number, len: number, kind: number, meta1 = 0, meta2 = 0): boolean {
    const d = this.beginWrite(len);
    if (d < 0) return false;
    this.u8.set(src.subarray(srcOff, srcOff + len), d);
    this.endWrite(len, kind, meta1, meta2);
    return true;
  }

  /**
   * Producer: announces that it is going to sleep until the consumer
   * releases space. Then retry `beginWrite()` and sleep only if it fails.
   */
  waitForSpace(): void {
    Atomics.store(this.i32, RING_HDR.WAITING, 1);
  }

  // ---------------------------------------------------------------- consumer

  /**
   * Consumer: the next visible user record, passing over WRAP and SKIP.
   * @returns its data offset (into `u8`), or -1 when none is published
   */
  peek(): number {
    if (this.cur >= 0) return (this.cur << 2) + RING_REC_HDR;
    const i32 = this.i32;
    let pos = this.rPos;
    for (;;) {
      if (pos === this.tailCache) {
        this.tailCache = Atomics.load(i32, RING_HDR.TAIL);
        if (pos === this.tailCache) {
          this.rPos = pos;
          return -1;
        }
      }
      const h = this.headerAt(pos);
      if (h < 0) {
        pos = this.lapEnd(pos);
        continue;
      }
      const kind = i32[h + REC.KIND];
      if (kind >= 0) {
        this.rPos = pos;
        this.cur = h;
        return (h << 2) + RING_REC_HDR;
      }
      if (this.debug && kind !== REC_KIND.SKIP) throw new Error(`ring peek: bad kind ${kind} at offset ${this.offsetOf(pos)}`);
      pos = this.advance(pos, recordSize(i32[h + REC.LEN]));
    }
  }

  /** Consumer: data length of the peeked record. */
  get recLen(): number {
    return this.i32[this.cur + REC.LEN];
  }

  /** Consumer: kind of the peeked record (>= 0). */
  get recKind(): number {
    return this.i32[this.cur + REC.KIND];
  }

  /** Consumer: meta1 of the peeked record. */
  get recMeta1(): number {
    return this.i32[this.cur + REC.META1];
  }

  /** Consumer: meta2 of the peeked record. */
  get recMeta2(): number {
    return this.i32[this.cur + REC.META2];
  }

  /** Consumer: passes the peeked record; its data stays valid until release(). */
  consume(): void {
    const h = this.cur;
    if (h < 0) {
      if (this.debug) throw new Error('ring consume: no record peeked');
      return;
    }
    this.rPos = this.advance(this.rPos, recordSize(this.i32[h + REC.LEN]));
    this.cur = -1;
  }

  /**
   * Consumer: gives consumed space back (one Atomics.store of HEAD).
   * @returns true when the producer was waiting for space (the flag is now
   *   cleared): the caller must then wake the producer's Waker
   */
  release(): boolean {
    if (this.rPos === this.relPos) return false;
    Atomics.store(this.i32, RING_HDR.HEAD, this.relPos = this.rPos);
    // Load first: in a busy pipeline the flag is 0 and no locked RMW is paid.
    if (Atomics.load(this.i32, RING_HDR.WAITING) === 0) return false;
    if (Atomics.compareExchange(this.i32, RING_HDR.WAITING, 1, 0) !== 1) return false;
    Atomics.add(this.i32, RING_HDR.SPACE_WAKES, 1);
    return true;
  }

  // ---------------------------------------------------------- either side

  /**
   * True when every published record has been released. May be stale on
   * either side (see the theory block): use peek() / beginWrite() to act.
   */
  isEmpty(): boolean {
    return Atomics.load(this.i32, RING_HDR.HEAD) === Atomics.load(this.i32, RING_HDR.TAIL);
  }

  /** Bytes between released HEAD and published TAIL (may be stale, as isEmpty()). */
  usedBytes(): number {
    const used = Atomics.load(this.i32, RING_HDR.TAIL) - Atomics.load(this.i32, RING_HDR.HEAD);
    return used < 0 ? used + this.span : used;
  }

  /** Counts `n` records dropped because the ring was full (any thread). */
  countDrop(n = 1): void {
    Atomics.add(this.i32, RING_HDR.DROPS, n);
  }

  /** Records dropped on a full ring, as counted by countDrop() (mod 2^32). */
  get drops(): number {
    return Atomics.load(this.i32, RING_HDR.DROPS) >>> 0;
  }

  /**
   * Counts `n` bare SYNs (tcp.ts isBareSyn) consumed from this ring (the
   * consumer), so that the producer can bound how many wait: tapReader.ts
   * SYN_BACKLOG.
   */
  countSynsDone(n: number): void {
    Atomics.add(this.i32, RING_HDR.SYNS_DONE, n);
  }

  /** Bare SYNs consumed so far, as counted by countSynsDone() (mod 2^32). */
  get synsDone(): number {
    return Atomics.load(this.i32, RING_HDR.SYNS_DONE) >>> 0;
  }

  /** User records published so far (mod 2^32). */
  get records(): number {
    return Atomics.load(this.i32, RING_HDR.RECORDS) >>> 0;
  }

  /** Times release() found the producer waiting for space. */
  get spaceWakes(): number {
    return Atomics.load(this.i32, RING_HDR.SPACE_WAKES) >>> 0;
  }

  /** For tests: data-area offset of the producer's cursor. */
  get writeOffset(): number {
    return this.offsetOf(this.wPos);
  }

  /** For tests: data-area offset of the consumer's local read cursor. */
  get readOffset(): number {
    return this.offsetOf(this.rPos);
  }
}

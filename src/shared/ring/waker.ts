/**
 * Waker: the one doorbell of a worker (STYLE.md guideline 11).
 *
 * Each worker blocks in exactly one place, `native.epollWait`, and its epoll
 * set holds one eventfd — its Waker — besides its sockets. Other threads
 * ring it after they publish records into a ring the worker consumes, or
 * release space in a ring the worker produces into. A small SharedArrayBuffer
 * holds a `sleeping` flag, so the eventfd is written only when the worker
 * said it is going to sleep: a busy pipeline makes no signalling syscalls.
 *
 * Owner (the worker):
 * ```
 * for (;;) {
 *   ...handle inputs, publish() output rings, release() input rings...
 *   ring.waitForSpace() for each output ring that refused a record;
 *   waker.prepareSleep();                 // SLEEPING = 1
 *   if (any input ready: ring.peek() >= 0, beginWrite(n) >= 0, ...) { waker.cancelSleep(); continue; }
 *   publish()/release() once more (the re-check may have written or passed
 *     a WRAP) and wake the peers they name;
 *   native.epollWait(...);                // the eventfd is in this set
 *   waker.wokeUp();                       // SLEEPING = 0, drain the eventfd
 * }
 * ```
 * Others: `if (ring.publish()) consumerWaker.wake();` and
 * `if (ring.release()) producerWaker.wake();`.
 *
 * # Why no wake-up is lost
 *
 * All accesses to SLEEPING, ring TAIL/HEAD and ring WAITING are seq-cst
 * `Atomics`, so they fall into one total order S that every thread agrees
 * with (ECMA-262 memory model). Consider an owner that blocks in epoll_wait
 * after its latest `prepareSleep()`, whose store SLEEPING = 1 we call P, and
 * a waker thread that made an input ready with a store X (TAIL for new
 * records; HEAD for new space) and then called `wake()`, whose load or
 * compareExchange of SLEEPING we call C. Program order gives
 * P <S (owner's re-check loads of TAIL/HEAD) and X <S C.
 *
 * 1. If X <S P: the owner's re-check after P loads a value at least as new
 *    as X, sees the input ready and does not sleep (cancelSleep). Not lost.
 * 2. If P <S X: then P <S C. C reads the latest SLEEPING store before it in S.
 *    a. It reads 1 and wins 1 → 0: this thread writes the eventfd. The write
 *       happens after P, so it is not consumed by an earlier `wokeUp()` drain
 *       of this owner (drains only follow an epoll_wait that returned), and
 *       an eventfd with a non-zero count is readable whenever epoll_wait
 *       looks: the pending wait returns. Not lost.
 *    b. It reads 0: some store of 0 lies between P and C. Either another
 *       waker's successful compareExchange (case a applies to that waker:
 *       the eventfd is written, the owner wakes, and its next iteration
 *       handles all inputs, including ours, or sleeps again only after a new
 *       P' and a new re-check — apply this argument to P'), or the owner's
 *       own `cancelSleep()`/`wokeUp()`, which means it is awake and will run
 *       its handlers and re-check again after a later P' before sleeping.
 * By induction over the owner's sleeps, every ready input is either seen by
 * a re-check or followed by an eventfd write the owner's epoll_wait sees.
 *
 * The ring's own WAITING flag (frameRing.ts) is the same pattern one level
 * down: producer stores WAITING = 1 then re-checks HEAD; consumer stores
 * HEAD then takes WAITING. If the consumer sees 0 the producer's re-check
 * sees the new HEAD; if it sees 1 it calls wake(), covered above. Space the
 * producer still lacks after its re-check is held by records it published
 * (at the latest by the publish() after the re-check, which also wakes the
 * consumer): the consumer releases that space after WAITING = 1 in the
 * order S, so that release sees the flag.
 *
 * The reverse is harmless: an eventfd write can land after the owner woke
 * for another reason and drained, which costs one spurious wake-up later.
 *
 * Fast paths: `wake()` first loads SLEEPING and returns when it is 0 (no
 * locked RMW, no syscall); loading 0 is case 2b or case 1 above.
 */
import { native } from '../native';
import { EFD_CLOEXEC, EFD_NONBLOCK } from '../linux';
import { ErrnoError } from '../errors';

/** Int32 indices in the Waker's SharedArrayBuffer. */
export const WAKER_FIELD = {
  /** 1 while the owner is (about to be) blocked in epoll_wait. */
  SLEEPING: 0,
  /** eventfd writes made by wake() (statistics; mod 2^32). */
  WAKES: 16,
  /** Times the owner called prepareSleep() (statistics; mod 2^32). */
  SLEEPS: 32,
} as const;

/** Bytes of a Waker's SharedArrayBuffer (three 64-byte lines). */
export const WAKER_BYTES = 192;

/** What main hands to a worker (and to every thread that wakes it). */
export interface WakerHandle {
  /** eventfd (EFD_NONBLOCK | EFD_CLOEXEC); fds are process-wide. */
  fd: number;
  sab: SharedArrayBuffer;
}

export class Waker {
  /** The eventfd to add (EPOLLIN) to the owner's epoll set. */
  readonly fd: number;
  private readonly i32: Int32Array;

  /** Main thread: creates the eventfd and the flag buffer of one worker. */
  static create(): WakerHandle {
    const fd = native.eventfdCreate(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw new ErrnoError(-fd, 'eventfd', 'creating a worker doorbell');
    return { fd, sab: new SharedArrayBuffer(WAKER_BYTES) };
  }

  /** Main thread: closes the eventfd once the owner and its wakers are gone. */
  static destroy(h: WakerHandle): void {
    native.close(h.fd);
  }

  /** Wraps a handle; the owner and every waking thread each make one. */
  constructor(h: WakerHandle) {
    this.fd = h.fd;
    this.i32 = new Int32Array(h.sab);
  }

  /** Owner: announces sleep. Then re-check every input, and cancelSleep() or block. */
  prepareSleep(): void {
    Atomics.store(this.i32, WAKER_FIELD.SLEEPING, 1);
    this.i32[WAKER_FIELD.SLEEPS]++;
  }

  /** Owner: the re-check found work; stays awake. */
  cancelSleep(): void {
    Atomics.store(this.i32, WAKER_FIELD.SLEEPING, 0);
  }

  /**
   * Owner: after epoll_wait returned; clears the flag and drains the eventfd.
   * @param drain false saves the read() when epoll_wait did not report this
   *   eventfd (a stale write must be drained, or epoll_wait keeps returning)
   */
  wokeUp(drain = true): void {
    Atomics.store(this.i32, WAKER_FIELD.SLEEPING, 0);
    if (drain) native.eventfdRead(this.fd);
  }

  /**
   * Any other thread, after making an input of the owner ready (publish, or
   * release of space it waits for). Writes the eventfd only if the owner
   * announced sleep, and only once per sleep.
   * @returns true when it wrote the eventfd
   */
  wake(): boolean {
    if (Atomics.load(this.i32, WAKER_FIELD.SLEEPING) === 0) return false;
    if (Atomics.compareExchange(this.i32, WAKER_FIELD.SLEEPING, 1, 0) !== 1) return false;
    native.eventfdWrite(this.fd, 1);
    Atomics.add(this.i32, WAKER_FIELD.WAKES, 1);
    return true;
  }

  /** True while the owner has announced sleep (stale as soon as read). */
  get sleeping(): boolean {
    return Atomics.load(this.i32, WAKER_FIELD.SLEEPING) !== 0;
  }

  /** eventfd writes made so far (statistics). */
  get wakes(): number {
    return Atomics.load(this.i32, WAKER_FIELD.WAKES) >>> 0;
  }

  /** prepareSleep() calls so far (statistics; written by the owner only). */
  get sleeps(): number {
    return Atomics.load(this.i32, WAKER_FIELD.SLEEPS) >>> 0;
  }
}

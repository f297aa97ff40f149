/**
 * The event loop every pipeline worker runs (STYLE.md guideline 11: one
 * wait point per worker).
 *
 * Theory of operation
 * - A worker blocks in exactly one place: native epoll_wait on its own
 *   epoll set, which holds its descriptors (sockets, tap) and its waker
 *   eventfd. Producers and consumers of its rings, and the main thread
 *   after posting a control message, ring that waker — only when the
 *   worker has said it is going to sleep, so a busy pipeline makes no
 *   signalling syscalls.
 * - One iteration: read the clock once (`now`, ms), drain control messages,
 *   let the stage do its work (`work(now)`, bounded by its own budgets;
 *   true means "more is pending, don't sleep"), then prepare to sleep,
 *   re-check the inputs (`hasInput()`), and block until an event or the
 *   stage's next deadline (`timeoutMs(now)`, at most 1 s), then dispatch
 *   the events (`onEvent(ref, events, now)`).
 * - Shutdown: a 'shutdown' message sets `stopping`; the stage keeps running
 *   until `drained(now)` says its buffers are empty or the drain deadline
 *   passes, then the worker reports 'drained' and returns.
 */
import { parentPort, receiveMessageOnPort, resourceLimits, workerData } from 'node:worker_threads';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { compactHeap } from '../shared/heap';
import { native } from '../shared/native';
import { EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLIN, EPOLLET } from '../shared/linux';
import { EpollType, packRef, refType } from '../shared/epollRef';
import { Waker } from '../shared/ring/waker';
import { FrameRing } from '../shared/ring/frameRing';
import type { ControlMsg, WorkerCommon, WorkerMsg, LogTarget } from '../shared/messages';
import { log, LogSink } from '../shared/log';
import { LogFileSink, SyslogSink } from '../shared/logSinks';
import { monotonicMs } from '../shared/time';
import * as fs from 'node:fs';

const MAX_EVENTS = 64;

/** Log sink for a worker from its LogTarget. */
export function sinkFor(t: LogTarget): LogSink {
  switch (t.kind) {
    case 'fd':
      return { write: (_l, line) => { try { fs.writeSync(t.fd, line); } catch { /* closed */ } } };
    case 'pipe':
      return { write: (_l, line) => { try { fs.writeSync(t.fd, `LOG ${line}`); } catch { /* closed */ } } };
    case 'file':
      return new LogFileSink(t.handle);
    case 'syslog':
      return new SyslogSink(t.name, t.fd);
    default: {
      const never: never = t;
      return never;
    }
  }
}

export abstract class WorkerLoop<I extends WorkerCommon = WorkerCommon> {
  readonly init: I;
  readonly epfd: number;
  readonly waker: Waker;
  protected stopping = false;
  private drainDeadline = 0;
  private readonly events = new Int32Array(2 * MAX_EVENTS);

  constructor() {
    this.init = workerData as I;
    FrameRing.debugDefault = this.init.cfg.tuning.ringDebug;
    log.configure({ level: this.init.logLevel, sink: sinkFor(this.init.logTarget), prefix: this.init.cfg.name,
      timestamps: this.init.logTarget.kind === 'fd' && this.init.logTarget.timestamps });
    this.epfd = native.epollCreate();
    if (this.epfd < 0) throw new Error(`epoll_create: ${native.strerror(-this.epfd)}`);
    this.waker = new Waker(this.init.waker);
    // edge-triggered: every eventfd write is reported once, so the counter
    // never needs draining (one read() per wake-up saved)
    this.add(this.waker.fd, EPOLLIN | EPOLLET, packRef(EpollType.WAKER));
  }

  /** Adds fd to the epoll set; throws on failure (set-up path). */
  add(fd: number, events: number, ref: number): void {
    const r = native.epollCtl(this.epfd, EPOLL_CTL_ADD, fd, events, ref);
    if (r < 0) throw new Error(`epoll_ctl ADD fd ${fd}: ${native.strerror(-r)}`);
  }

  /** Changes the events watched on fd; returns 0 or -errno. */
  mod(fd: number, events: number, ref: number): number {
    return native.epollCtl(this.epfd, EPOLL_CTL_MOD, fd, events, ref);
  }

  del(fd: number): number {
    return native.epollCtl(this.epfd, EPOLL_CTL_DEL, fd, 0, 0);
  }

  post(msg: WorkerMsg): void {
    parentPort?.postMessage(msg);
  }

  /** Ends the loop at its next turn, without draining (a stage's input failed for good). */
  stop(): void {
    this.stopping = true;
  }

  /** Runs the loop until drained after a shutdown request. */
  run(): void {
    // start-up is over: its garbage goes, the pages with it (heap.ts)
    if (this.init.cfg.tuning.memory.compactAfterStart) compactHeap();
    if (log.debugOn) {
      // the limits V8 applied to this worker (supervisor.ts workerLimits(); perf/README.md "Memory per instance")
      const young = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
      const name = this.init.role === 'tcp' ? `tcp${this.init.shard}` : this.init.role;
      log.debug(`${name} heap: young generation up to ${resourceLimits.maxYoungGenerationSizeMb} MB, ` +
        `new space ${young ? Math.round(young.space_size / 1024) : '?'} KiB, ` +
        `${Math.round(getHeapStatistics().total_physical_size / 1024)} KiB in all`);
    }
    this.post({ type: 'ready' });
    for (;;) {
      const now = monotonicMs();
      this.drainControl(now);
      const busy = this.work(now);
      if (this.stopping && (this.drained(now) || now >= this.drainDeadline)) break;
      if (busy) continue;
      this.waker.prepareSleep();
      if (this.hasInput()) {
        this.waker.cancelSleep();
        continue;
      }
      this.beforeSleep();
      let timeout = Math.min(this.timeoutMs(now), 1000);
      if (this.stopping) timeout = Math.min(timeout, 10);
      const n = native.epollWait(this.epfd, this.events, MAX_EVENTS, Math.max(0, Math.ceil(timeout)));
      // the waker is edge-triggered (above): nothing to drain
      this.waker.wokeUp(false);
      const t = n > 0 ? monotonicMs() : now;
      for (let i = 0; i < n; i++) {
        const ev = this.events[2 * i] >>> 0;
        const ref = this.events[2 * i + 1] >>> 0;
        if (refType(ref) === EpollType.WAKER) continue; // rings and messages are checked every iteration
        this.onEvent(ref, ev, t);
      }
    }
    this.finish();
    this.post({ type: 'drained' });
  }

  /** Applies pending control messages (also callable from a stage that must see them now). */
  protected drainControl(now: number): void {
    if (!parentPort) return;
    for (;;) {
      const m = receiveMessageOnPort(parentPort);
      if (!m) return;
      const msg = m.message as ControlMsg;
      if (msg.type === 'shutdown') {
        this.stopping = true;
        this.drainDeadline = now + msg.drainMs;
      } else if (msg.type === 'log') {
        log.configure({ level: msg.level, sink: sinkFor(msg.target) });
      }
      this.onControl(msg, now);
    }
  }

  /** Stage work: drain inputs within budgets. Returns true if more is pending. */
  protected abstract work(now: number): boolean;
  /** Cheap re-check of the inputs after prepareSleep(). */
  protected abstract hasInput(): boolean;
  /** An epoll event on one of the stage's descriptors. */
  protected abstract onEvent(ref: number, events: number, now: number): void;
  /** Milliseconds until the stage's next deadline. */
  protected timeoutMs(_now: number): number {
    return 1000;
  }
  /** Last chance to publish/release before blocking (ring protocol). */
  protected beforeSleep(): void {}
  /** Stage-specific control messages. */
  protected onControl(_msg: ControlMsg, _now: number): void {}
  /** True when nothing is left to flush after a shutdown request. */
  protected drained(_now: number): boolean {
    return true;
  }
  /** Called once after the loop ends. */
  protected finish(): void {}
}

/**
 * Listening sockets of forwarded ports inside the TCP worker.
 *
 * The main thread binds them (forward.ts) and hands them over with
 * 'listen'/'unlisten' control messages; from then on this set owns them:
 * they sit in the worker's epoll set (EpollType.TCP_LISTEN, index = slot),
 * and each EPOLLIN accepts up to a budget of connections.
 *
 * A listener with a connection in its backlog stays readable (epoll is
 * level-triggered here), so every way of not taking that connection must
 * also stop watching the listener, or the worker polls it in a tight loop:
 * - Flow table full (SPEC §4.2, §7: a flow slot is reserved before
 *   accept4()): the connection waits in the kernel's backlog. Every
 *   listener is disarmed (no events watched) until a flow is free again;
 *   the worker calls resume() each iteration. Counted in acceptPaused.
 * - No descriptor left (EMFILE, ENFILE) or no kernel memory (ENOBUFS,
 *   ENOMEM): accept-and-close. A spare descriptor (an eventfd) is kept
 *   for this: it is closed, the connection accepted with the freed number
 *   and reset (SO_LINGER 0), the spare reopened. The client learns at once
 *   that nobody will serve it instead of hanging in the backlog. Counted
 *   in acceptDropped. When even that fails (another thread took the
 *   number, the system table is full), every listener backs off for
 *   ACCEPT_BACKOFF_MS (acceptPaused).
 * - Errors that belong to the one connection (ECONNABORTED, EPROTO,
 *   EPERM) consumed it: the loop goes on. Anything else backs off too.
 *   Every failure but EAGAIN counts in acceptErrors.
 */
import { native, E } from '../../shared/native';
import { EPOLLIN, SOCK_NONBLOCK, SOCK_CLOEXEC, EFD_CLOEXEC, SOL_SOCKET, SO_LINGER } from '../../shared/linux';
import { EpollType, packRef } from '../../shared/epollRef';
import type { ControlMsg, ListenerInfo } from '../../shared/messages';
import { SOCKADDR_LEN } from '../../shared/sockaddr';
import { log } from '../../shared/log';

/** Connections accepted per listener event before yielding to other work. */
const ACCEPT_BUDGET = 32;
/** How long listeners stay disarmed after accept() failed for want of descriptors or memory (ms). */
export const ACCEPT_BACKOFF_MS = 100;
/** struct linger { l_onoff = 1, l_linger = 0 }: close() sends a reset. */
const LINGER_RESET = Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0);

export interface ListenerHost {
  add(fd: number, events: number, ref: number): void;
  mod(fd: number, events: number, ref: number): number;
  del(fd: number): number;
}

export type AcceptFn = (l: ListenerInfo, fd: number, peer: Uint8Array, now: number) => void;
/** The counters this set keeps (in the TCP worker's block). */
export type ListenerCounter = 'acceptPaused' | 'acceptDropped' | 'acceptErrors';

/** Why the listeners are disarmed. */
const Pause = { NONE: 0, FULL: 1, BACKOFF: 2 } as const;
type Pause = (typeof Pause)[keyof typeof Pause];

export class ListenerSet {
  private readonly slots: (ListenerInfo | null)[] = [];
  private readonly byId = new Map<number, number>();
  private readonly peer = new Uint8Array(SOCKADDR_LEN);
  private pause: Pause = Pause.NONE;
  /** BACKOFF: when the listeners are armed again (ms). */
  private resumeAt = 0;
  /** The spare descriptor for accept-and-close, or -1. */
  private spare: number;

  /**
   * @param canAccept false while no flow can be allocated (table full)
   * @param onAccept takes ownership of the accepted fd
   * @param count adds one to a counter
   */
  constructor(private readonly host: ListenerHost, private readonly canAccept: () => boolean,
    private readonly onAccept: AcceptFn, private readonly count: (c: ListenerCounter) => void = () => {}) {
    this.spare = native.eventfdCreate(0, EFD_CLOEXEC);
  }

  /** Handles 'listen'/'unlisten'; ignores other messages. */
  handle(msg: ControlMsg): void {
    if (msg.type === 'listen') {
      for (const l of msg.add) {
        if (l.proto !== 'tcp') continue;
        let slot = this.slots.indexOf(null);
        if (slot < 0) slot = this.slots.push(null) - 1;
        this.slots[slot] = l;
        this.byId.set(l.id, slot);
        this.host.add(l.fd, this.pause === Pause.NONE ? EPOLLIN : 0, packRef(EpollType.TCP_LISTEN, slot));
      }
    } else if (msg.type === 'unlisten') {
      for (const id of msg.ids) {
        const slot = this.byId.get(id);
        if (slot === undefined) continue;
        const l = this.slots[slot] as ListenerInfo;
        this.host.del(l.fd);
        native.close(l.fd);
        this.slots[slot] = null;
        this.byId.delete(id);
      }
    }
  }

  /** EPOLLIN on listener `slot`: accept a budget of connections. */
  onEvent(slot: number, now: number): void {
    const l = this.slots[slot];
    if (!l || this.pause !== Pause.NONE) return;
    for (let i = 0; i < ACCEPT_BUDGET; i++) {
      if (!this.canAccept()) {
        this.disarm(Pause.FULL, now);
        return;
      }
      const fd = native.accept4(l.fd, SOCK_NONBLOCK | SOCK_CLOEXEC, this.peer);
      if (fd >= 0) {
        this.onAccept(l, fd, this.peer, now);
        continue;
      }
      const err = -fd;
      if (err === E.EAGAIN) return;
      this.count('acceptErrors');
      if (err === E.ECONNABORTED || err === E.EPROTO || err === E.EPERM) continue;
      if (log.debugOn) log.debug(`accept on port ${l.port}: ${native.strerror(err)}`);
      if (err === E.EMFILE || err === E.ENFILE || err === E.ENOBUFS || err === E.ENOMEM) {
        const r = this.acceptAndReset(l);
        if (r === 0) continue;
        if (r === -E.EAGAIN) return;
      }
      this.disarm(Pause.BACKOFF, now);
      return;
    }
  }

  /**
   * Takes the connection at the head of l's backlog with the spare
   * descriptor and resets it; 0 if one was, else accept4()'s -errno (or
   * -EMFILE without a spare).
   */
  private acceptAndReset(l: ListenerInfo): number {
    if (this.spare < 0) return -E.EMFILE;
    native.close(this.spare);
    const fd = native.accept4(l.fd, SOCK_CLOEXEC, this.peer);
    if (fd >= 0) {
      native.setsockoptBytes(fd, SOL_SOCKET, SO_LINGER, LINGER_RESET);
      native.close(fd);
      this.count('acceptDropped');
    }
    this.spare = native.eventfdCreate(0, EFD_CLOEXEC);
    return fd >= 0 ? 0 : fd;
  }

  /** Stops watching every listener (their connections wait in the backlogs). */
  private disarm(why: Pause, now: number): void {
    this.pause = why;
    this.resumeAt = why === Pause.BACKOFF ? now + ACCEPT_BACKOFF_MS : Infinity;
    this.count('acceptPaused');
    this.arm(0);
  }

  private arm(events: number): void {
    for (let slot = 0; slot < this.slots.length; slot++) {
      const l = this.slots[slot];
      if (l) this.host.mod(l.fd, events, packRef(EpollType.TCP_LISTEN, slot));
    }
  }

  /**
   * Arms the listeners again once what disarmed them is over (a flow is
   * free, the back-off ran out); cheap, the worker calls it every iteration.
   */
  resume(now: number): void {
    if (this.pause === Pause.NONE) return;
    if (this.pause === Pause.FULL ? !this.canAccept() : now < this.resumeAt) return;
    if (this.spare < 0) this.spare = native.eventfdCreate(0, EFD_CLOEXEC);
    this.pause = Pause.NONE;
    this.arm(EPOLLIN);
  }

  /** Milliseconds until resume() has something to do on its own (a back-off ends). */
  timeoutMs(now: number): number {
    return this.pause === Pause.BACKOFF ? Math.max(0, this.resumeAt - now) : Infinity;
  }

  /** True while the listeners are disarmed. */
  get paused(): boolean {
    return this.pause !== Pause.NONE;
  }

  /**
   * Accepts whatever waits in every listener's backlog (shutdown drain: a
   * connection made just before the command exited still carries its bytes).
   */
  acceptPending(now: number): void {
    this.resume(now);
    for (let slot = 0; slot < this.slots.length; slot++) if (this.slots[slot]) this.onEvent(slot, now);
  }

  get size(): number {
    return this.byId.size;
  }

  closeAll(): void {
    for (const id of [...this.byId.keys()]) this.handle({ type: 'unlisten', ids: [id] });
    if (this.spare >= 0) native.close(this.spare);
    this.spare = -1;
  }
}

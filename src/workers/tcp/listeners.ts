/**
 * Listening sockets of forwarded ports inside the TCP worker.
 *
 * The main thread binds them (forward.ts) and hands them over with
 * 'listen'/'unlisten' control messages; from then on this set owns them:
 * they sit in the worker's epoll set (EpollType.TCP_LISTEN, index = slot),
 * and each EPOLLIN accepts up to a budget of connections. SPEC §4.2: a flow
 * slot is reserved before accept4(), so with a full flow table the
 * connection simply waits in the kernel's backlog.
 */
import { native, E } from '../../shared/native';
import { EPOLLIN, SOCK_NONBLOCK, SOCK_CLOEXEC } from '../../shared/linux';
import { EpollType, packRef } from '../../shared/epollRef';
import type { ControlMsg, ListenerInfo } from '../../shared/messages';
import { SOCKADDR_LEN } from '../../shared/sockaddr';
import { log } from '../../shared/log';

/** Connections accepted per listener event before yielding to other work. */
const ACCEPT_BUDGET = 32;

export interface ListenerHost {
  add(fd: number, events: number, ref: number): void;
  del(fd: number): number;
}

export type AcceptFn = (l: ListenerInfo, fd: number, peer: Uint8Array, now: number) => void;

export class ListenerSet {
  private readonly slots: (ListenerInfo | null)[] = [];
  private readonly byId = new Map<number, number>();
  private readonly peer = new Uint8Array(SOCKADDR_LEN);

  /**
   * @param canAccept false while no flow can be allocated (table full)
   * @param onAccept takes ownership of the accepted fd
   */
  constructor(private readonly host: ListenerHost, private readonly canAccept: () => boolean,
    private readonly onAccept: AcceptFn) {}

  /** Handles 'listen'/'unlisten'; ignores other messages. */
  handle(msg: ControlMsg): void {
    if (msg.type === 'listen') {
      for (const l of msg.add) {
        if (l.proto !== 'tcp') continue;
        let slot = this.slots.indexOf(null);
        if (slot < 0) slot = this.slots.push(null) - 1;
        this.slots[slot] = l;
        this.byId.set(l.id, slot);
        this.host.add(l.fd, EPOLLIN, packRef(EpollType.TCP_LISTEN, slot));
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
    if (!l) return;
    for (let i = 0; i < ACCEPT_BUDGET; i++) {
      if (!this.canAccept()) return;
      const fd = native.accept4(l.fd, SOCK_NONBLOCK | SOCK_CLOEXEC, this.peer);
      if (fd < 0) {
        if (fd !== -E.EAGAIN && fd !== -E.ECONNABORTED) log.debug(`accept on port ${l.port}: ${native.strerror(-fd)}`);
        return;
      }
      this.onAccept(l, fd, this.peer, now);
    }
  }

  /**
   * Accepts whatever waits in every listener's backlog (shutdown drain: a
   * connection made just before the command exited still carries its bytes).
   */
  acceptPending(now: number): void {
    for (let slot = 0; slot < this.slots.length; slot++) if (this.slots[slot]) this.onEvent(slot, now);
  }

  get size(): number {
    return this.byId.size;
  }

  closeAll(): void {
    for (const id of [...this.byId.keys()]) this.handle({ type: 'unlisten', ids: [id] });
  }
}

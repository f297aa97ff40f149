/**
 * A ListenerSet (src/workers/tcp/listeners.ts) on a real epoll set with a
 * real listening socket on 127.0.0.1, for listeners.test.ts and its
 * low-RLIMIT_NOFILE child (_acceptChild.ts): the test plays the TCP
 * worker, `ready()` says whether epoll would wake the worker now.
 */
import { native } from '../../src/shared/native';
import {
  AF_INET, SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC, SOL_SOCKET, SO_REUSEADDR, EPOLL_CTL_ADD, EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
} from '../../src/shared/linux';
import { sockaddr } from '../../src/shared/sockaddr';
import { inanyParse } from '../../src/shared/flow/inany';
import { ListenerCounter, ListenerSet } from '../../src/workers/tcp/listeners';
import { refIndex } from '../../src/shared/epollRef';
import type { ListenerInfo } from '../../src/shared/messages';

export interface ListenRig {
  set: ListenerSet;
  /** Whether the flow table has room (canAccept). */
  room: boolean;
  /** fds handed to onAccept (the test closes them). */
  accepted: number[];
  counts: Record<ListenerCounter, number>;
  /** Listener slots epoll reports readable right now (timeout 0). */
  ready(): number[];
  /** Dispatches what epoll reports, as the worker loop does; how many events. */
  poll(now: number): number;
  /** A non-blocking client connecting to the listener (handshake done by the kernel). */
  client(): number;
  close(): void;
}

export function listenRig(port: number): ListenRig {
  const epfd = native.epollCreate();
  const lfd = native.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  native.setsockoptInt(lfd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (native.bind(lfd, sockaddr(inanyParse('127.0.0.1'), port)) < 0 || native.listen(lfd, 128) < 0) {
    throw new Error(`listen on ${port}`);
  }
  const out = new Int32Array(128);
  const counts: Record<ListenerCounter, number> = { acceptPaused: 0, acceptDropped: 0, acceptErrors: 0 };
  const clients: number[] = [];
  const rig: ListenRig = {
    room: true,
    accepted: [],
    counts,
    set: null as unknown as ListenerSet,
    ready() {
      const n = native.epollWait(epfd, out, 64, 0);
      const slots: number[] = [];
      for (let i = 0; i < n; i++) slots.push(refIndex(out[2 * i + 1] >>> 0));
      return slots;
    },
    poll(now) {
      const n = native.epollWait(epfd, out, 64, 0);
      for (let i = 0; i < n; i++) rig.set.onEvent(refIndex(out[2 * i + 1] >>> 0), now);
      return Math.max(0, n);
    },
    client() {
      const c = native.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c < 0) throw new Error(`socket: ${native.strerror(-c)}`);
      native.connect(c, sockaddr(inanyParse('127.0.0.1'), port));
      clients.push(c);
      return c;
    },
    close() {
      rig.set.closeAll();
      for (const fd of [...clients, ...rig.accepted]) native.close(fd);
      native.close(epfd);
    },
  };
  rig.set = new ListenerSet({
    add: (fd, ev, ref) => {
      const r = native.epollCtl(epfd, EPOLL_CTL_ADD, fd, ev, ref);
      if (r < 0) throw new Error(`epoll add: ${native.strerror(-r)}`);
    },
    mod: (fd, ev, ref) => native.epollCtl(epfd, EPOLL_CTL_MOD, fd, ev, ref),
    del: (fd) => native.epollCtl(epfd, EPOLL_CTL_DEL, fd, 0, 0),
  }, () => rig.room, (_l, fd) => { rig.accepted.push(fd); }, (c) => { counts[c]++; });
  const l: ListenerInfo = { id: 1, fd: lfd, proto: 'tcp', side: 'host', port, delta: 0 };
  rig.set.handle({ type: 'listen', add: [l] });
  return rig;
}

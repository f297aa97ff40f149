/**
 * The spliced-TCP engine (src/workers/tcp/splice.ts) driven in-process, on
 * loopback of the made test namespace, with the test as its epoll loop: a
 * client of ours connects to a listener of ours, the connection is handed
 * to SpliceConns (target: 127.0.0.1, as with --host-lo-to-ns-lo, sockets
 * from the "namespace" pool of the current namespace), and a server of ours
 * is the target. Checks what end-to-end runs can't see: backpressure parks
 * the descriptors instead of spinning, events and epoll registrations follow
 * the SPEC's states, drained() and count.
 * Ports 12600–12619.
 */
import anyTest, { TestFn } from 'ava';
import * as net from 'node:net';
import { inTestNs, NOT_IN_NS, waitFor, sleep } from '../helpers/env';
import { sendRandom, receiveAll } from '../helpers/tcpTool';
import { native } from '../../src/shared/native';
import {
  AF_INET, SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC, SOL_SOCKET, SO_REUSEADDR, EPOLL_CTL_ADD, EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
} from '../../src/shared/linux';
import { sockaddr, SOCKADDR_LEN } from '../../src/shared/sockaddr';
import { inanyParse } from '../../src/shared/flow/inany';
import { GuestState } from '../../src/shared/guestState';
import { SpliceConns } from '../../src/workers/tcp/splice';
import { probeBuffers } from '../../src/workers/tcp/splicePool';
import type { SpliceHost } from '../../src/workers/tcp/spliceApi';
import type { Config } from '../../src/shared/config';
import type { ListenerInfo } from '../../src/shared/messages';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('in-process splice tests', (t) => t.pass(NOT_IN_NS));

interface Rig {
  splice: SpliceConns;
  /** epoll events dispatched so far */
  events(): number;
  /** Accepts one pending connection on the listener and hands it over. */
  acceptOne(): Promise<void>;
  close(): void;
}

function rig(listenPort: number, targetPort: number): Rig {
  const epfd = native.epollCreate();
  const cfg = { mode: 'pasta', hostLoToNsLo: true, ip4: { enabled: true }, ip6: { enabled: false } } as unknown as Config;
  const host: SpliceHost = {
    cfg, nsfd: -1, guest: new GuestState(GuestState.allocate()), bufs: probeBuffers(),
    add: (fd, ev, ref) => {
      const r = native.epollCtl(epfd, EPOLL_CTL_ADD, fd, ev, ref);
      if (r < 0) throw new Error(`epoll add: ${r}`);
    },
    mod: (fd, ev, ref) => native.epollCtl(epfd, EPOLL_CTL_MOD, fd, ev, ref),
    del: (fd) => native.epollCtl(epfd, EPOLL_CTL_DEL, fd, 0, 0),
  };
  const splice = new SpliceConns(host);
  const lfd = native.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  native.setsockoptInt(lfd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (native.bind(lfd, sockaddr(inanyParse('127.0.0.1'), listenPort)) < 0 || native.listen(lfd, 128) < 0) {
    throw new Error('listen');
  }
  const l: ListenerInfo = { id: 1, fd: lfd, proto: 'tcp', side: 'host', port: listenPort, delta: (targetPort - listenPort) & 0xffff };
  const out = new Int32Array(128);
  let count = 0;
  const timer = setInterval(() => {
    const n = native.epollWait(epfd, out, 64, 0);
    for (let i = 0; i < n; i++) splice.onEvent(out[2 * i + 1] >>> 0, out[2 * i] >>> 0, performance.now());
    count += Math.max(0, n);
    splice.work(performance.now());
  }, 1);
  const peer = new Uint8Array(SOCKADDR_LEN);
  return {
    splice,
    events: () => count,
    async acceptOne() {
      const fd = await waitFor(() => {
        const r = native.accept4(lfd, SOCK_NONBLOCK | SOCK_CLOEXEC, peer);
        return r >= 0 ? r + 1 : 0;
      }, 5000, 2);
      if (!fd) throw new Error('nothing to accept');
      splice.accept(l, fd - 1, peer, performance.now());
    },
    close() {
      clearInterval(timer);
      splice.closeAll();
      native.close(lfd);
      native.close(epfd);
    },
  };
}

function server(port: number): Promise<{ srv: net.Server; conn: Promise<net.Socket> }> {
  return new Promise((resolve) => {
    let got!: (s: net.Socket) => void;
    const conn = new Promise<net.Socket>((r) => { got = r; });
    const srv = net.createServer({ allowHalfOpen: true }, (s) => got(s));
    srv.listen({ host: '127.0.0.1', port }, () => resolve({ srv, conn }));
  });
}

e2e('a reader that stops: the writer side is parked (no spinning), then everything arrives in order', async (t) => {
  const r = rig(12600, 12601);
  const { srv, conn } = await server(12601);
  try {
    const c = net.connect({ host: '127.0.0.1', port: 12600, allowHalfOpen: true });
    await r.acceptOne();
    const s = await conn;
    s.pause();
    const sending = sendRandom(c, 48 << 20);
    // let buffers and the pipe fill up
    await sleep(500);
    t.is(r.splice.count, 1);
    t.false(r.splice.drained(performance.now()), 'bytes wait in the pipe');
    const before = r.events();
    await sleep(300);
    t.true(r.events() - before < 20, `parked while the reader is stopped (${r.events() - before} events in 300 ms)`);
    const got = receiveAll(s);
    s.resume();
    const [sent, recv] = await Promise.all([sending, got]);
    t.deepEqual(recv, sent);
    s.end();
    t.truthy(await waitFor(() => r.splice.count === 0, 5000), 'closed once both FINs went through');
    t.true(r.splice.drained(performance.now()));
    c.destroy();
  } finally {
    r.close();
    srv.close();
  }
});

// Sizes: with about 10 MiB (buffers of a stock kernel) the server's FIN reaches
// our socket while its data still waits there: EPOLLHUP with nothing to do.
for (const [i, size] of [[0, 48 << 20], [1, 10 << 20], [2, 3 << 20]]) e2e(`half-closed with the other direction blocked: no spinning on the hung-up side (${size >> 20} MiB)`, async (t) => {
  const r = rig(12606 + 2 * i, 12607 + 2 * i);
  const { srv, conn } = await server(12607 + 2 * i);
  try {
    const c = net.connect({ host: '127.0.0.1', port: 12606 + 2 * i, allowHalfOpen: true });
    await r.acceptOne();
    const s = await conn;
    // server → client is blocked (client doesn't read), client → server is finished
    c.pause();
    c.end();
    await new Promise<void>((res) => s.once('end', res));
    const sending = sendRandom(s, size);
    await sleep(500);
    const before = r.events();
    await sleep(300);
    t.true(r.events() - before < 20, `${r.events() - before} events in 300 ms`);
    const got = receiveAll(c);
    c.resume();
    const [sent, recv] = await Promise.all([sending, got]);
    t.deepEqual(recv, sent);
    t.truthy(await waitFor(() => r.splice.count === 0, 5000));
  } finally {
    r.close();
    srv.close();
  }
});

e2e('connect failure: the client is reset and nothing is left behind', async (t) => {
  const r = rig(12604, 12605);
  try {
    const c = net.connect({ host: '127.0.0.1', port: 12604 });
    const err = new Promise<string>((res) => {
      c.once('error', (e: NodeJS.ErrnoException) => res(e.code ?? ''));
      c.once('close', () => res('closed'));
    });
    await r.acceptOne();
    t.is(await err, 'ECONNRESET');
    t.is(r.splice.count, 0);
    t.is(r.splice.stats.connectFailed, 1);
  } finally {
    r.close();
  }
});

/**
 * UDP load generator and sink for perf/udp.sh (no TCP control channel, unlike
 * iperf3, so it measures the UDP path alone). Blocking sockets, batches of
 * 64 datagrams per sendmmsg/recvmmsg through the addon.
 *
 *   node udpBlast.js send ADDR PORT SIZE SECONDS [GBPS]
 *       as fast as possible, or paced to GBPS (batches of 8, sleeping when ahead)
 *       → {"sent":n,"bytes":b,"seconds":s}
 *   node udpBlast.js recv ADDR PORT [MAX_SECONDS]
 *       prints {"ready":true} once bound, then, 1 s after the last datagram
 *       (or after MAX_SECONDS), {"received":n,"bytes":b,"seconds":s,"gbps":g}
 *       with seconds from the first to the last datagram.
 */
import { native } from '../src/shared/native';
import { inanyParse } from '../src/shared/flow/inany';
import { sockaddr } from '../src/shared/sockaddr';
import { AF_INET, AF_INET6, SOCK_DGRAM, SOL_SOCKET, SO_RCVBUF, SO_SNDBUF, IPPROTO_IPV6, IPV6_V6ONLY } from '../src/shared/linux';

const BATCH = 64;
const SO_RCVTIMEO = 20;

function open(addr: string): number {
  const v6 = addr.includes(':');
  const fd = native.socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) throw new Error(`socket: ${native.strerror(-fd)}`);
  if (v6) native.setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
  return fd;
}

function send(addr: string, port: number, size: number, seconds: number, gbps: number): void {
  const fd = open(addr);
  native.setsockoptInt(fd, SOL_SOCKET, SO_SNDBUF, 4 << 20);
  const r = native.connect(fd, sockaddr(inanyParse(addr), port));
  if (r < 0) throw new Error(`connect: ${native.strerror(-r)}`);
  const buf = new Uint8Array(size);
  for (let i = 0; i < size; i++) buf[i] = i & 0xff;
  const offs = new Int32Array(BATCH);
  const lens = new Int32Array(BATCH).fill(size);
  let sent = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const batch = gbps > 0 ? 8 : BATCH;
  const msPerDatagram = gbps > 0 ? (size * 8) / (gbps * 1e6) : 0;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const now = performance.now();
    if (now >= end) break;
    if (gbps > 0) {
      const ahead = t0 + sent * msPerDatagram - now;
      if (ahead > 0.05) {
        Atomics.wait(nap, 0, 0, ahead);
        continue;
      }
    }
    const n = native.sendmmsg(fd, buf, offs, lens, batch, null, 0);
    if (n > 0) sent += n;
  }
  const s = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ sent, bytes: sent * size, seconds: s }));
}

function recv(addr: string, port: number, maxSeconds: number): void {
  const fd = open(addr);
  native.setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, 4 << 20);
  const r = native.bind(fd, sockaddr(inanyParse(addr), port));
  if (r < 0) throw new Error(`bind: ${native.strerror(-r)}`);
  const tv = new Uint8Array(16);
  new DataView(tv.buffer).setInt32(8, 200_000, true); // 200 ms
  native.setsockoptBytes(fd, SOL_SOCKET, SO_RCVTIMEO, tv);
  const slot = 65536;
  const buf = new Uint8Array(BATCH * slot);
  const offs = Int32Array.from({ length: BATCH }, (_, i) => i * slot);
  const lens = new Int32Array(BATCH).fill(slot);
  const out = new Int32Array(BATCH);
  console.log(JSON.stringify({ ready: true }));
  let received = 0;
  let bytes = 0;
  let first = 0;
  let last = 0;
  const start = performance.now();
  for (;;) {
    const n = native.recvmmsg(fd, buf, offs, lens, BATCH, null, out, 0);
    const now = performance.now();
    if (n > 0) {
      if (!received) first = now;
      last = now;
      received += n;
      for (let i = 0; i < n; i++) bytes += out[i] > 0 ? out[i] : 0;
    }
    if (received && now - last > 1000) break;
    if (now - start > maxSeconds * 1000) break;
  }
  const s = Math.max(1e-9, (last - first) / 1000);
  console.log(JSON.stringify({ received, bytes, seconds: s, gbps: received > 1 ? (bytes * 8) / s / 1e9 : 0 }));
}

const [mode, addr, port, a3, a4] = process.argv.slice(2);
if (mode === 'send') send(addr, Number(port), Number(a3), Number(a4), Number(process.argv[7] ?? 0));
else if (mode === 'recv') recv(addr, Number(port), Number(a3 || 60));
else {
  console.error('usage: udpBlast.js send ADDR PORT SIZE SECONDS | recv ADDR PORT [MAX_SECONDS]');
  process.exit(2);
}

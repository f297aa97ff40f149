/**
 * The UDP worker's own cost per datagram, without the kernel: its handlers
 * run against the fake syscall layer of the unit tests (test/udp/_harness),
 * so what is measured is the JavaScript around the syscalls:
 *
 * 1. guest → socket: 64 guest datagrams of one flow through tapHandler
 *    (validation, flow lookup, batching into one sendmmsg);
 * 2. socket → guest: 32 datagrams received per recvmmsg into the ring
 *    slots, headers written in place (IPv4: checksum 0; IPv6: computed),
 *    moves or SKIP records for the gaps, then drained like tap-TX would.
 *
 * The fake recvmmsg and sendmmsg move no payload bytes (the kernel's copies
 * are not the worker's cost); the IPv6 checksum over the payload is. Filling
 * the input ring (tap-RX's copy) is measured on its own as a baseline, to
 * subtract from guest → socket.
 *
 * Found on the way (Node 20): TypedArray set/copyWithin into a
 * SharedArrayBuffer runs at ~26 GB/s when source and destination have the
 * same alignment modulo 8, and ~3.6 GB/s otherwise (16 KB: 0.6 vs 4.4 µs),
 * so payload moves keep both ends equally aligned.
 *
 * Run: npx tsc -p . && node dist/perf/udp.bench.js [timeMs]
 */
import { Bench } from 'tinybench';
import { harness, push, runTap, event, bytes, GUEST4, GW4, GUEST6, GW6, Harness } from '../test/udp/_harness';
import { makeConfig, eth, ipv4, ipv6, udp4, udp6, GUEST_MAC, OUR_MAC } from '../test/helpers/frames';
import { EpollType } from '../src/shared/epollRef';

const time = Number(process.argv[2] ?? 500);

const cfg = makeConfig({ mode: 'pasta', name: 'pasta' }, { addr: GUEST4, gateway: GW4, mapHostLoopback: GW4 },
  { addr: GUEST6, gateway: GW6, ourLinkLocal: 'fe80::1', mapHostLoopback: GW6 });

function guestFrame(v6: boolean, size: number): Uint8Array {
  return v6
    ? eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6({ src: GUEST6, dst: GW6, nh: 17 }, udp6(GUEST6, GW6, 40000, 11000, bytes(size))))
    : eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4({ src: GUEST4, dst: GW4, proto: 17 }, udp4(GUEST4, GW4, 40000, 11000, bytes(size))));
}

/** A harness with one flow, its reply socket's epoll index, and a drain of both rings. */
function setup(v6: boolean): { h: Harness; index: number; drain: () => void } {
  const h = harness(cfg, { capacity: 16 });
  push(h, guestFrame(v6, 1));
  runTap(h);
  const s = h.sys.open()[0];
  const index = (h.sys.epoll.get(s.fds[0])?.ref ?? 0) & 0xffffff;
  h.sys.sendmmsg = (_fd, _u8, _offs, _lens, count) => count;
  h.sys.recvmmsg = (fd, _u8, _offs, lens, count, _addrs, outLens) => {
    const q = h.sys.sock(fd).rx;
    let n = 0;
    for (; n < count && q.length; n++) {
      const len = (q.shift() as { data: Uint8Array }).data.length;
      outLens[n] = len > lens[n] ? -1 : len;
    }
    return n || -11;
  };
  const drain = () => {
    h.core.out.flush();
    const r = h.fromWorker;
    while (r.peek() >= 0) r.consume();
    r.release();
  };
  return { h, index, drain };
}

async function main(): Promise<void> {
  const bench = new Bench({ time });
  for (const v6 of [false, true]) {
    for (const size of [64, 1472, 16000]) {
      const fam = v6 ? 'IPv6' : 'IPv4';
      {
        const { h, drain } = setup(v6);
        const f = guestFrame(v6, size);
        bench.add(`guest → socket ${fam} ${size} B, 64 per batch`, () => {
          for (let i = 0; i < 64; i++) push(h, f);
          runTap(h);
          drain();
        });
        const b = setup(v6);
        bench.add(`  baseline: filling the input ring ${fam} ${size} B, 64 per batch`, () => {
          for (let i = 0; i < 64; i++) push(b.h, f);
          while (b.h.core.input.peek() >= 0) b.h.core.input.consume();
          b.h.core.input.release();
        });
      }
      {
        const { h, index, drain } = setup(v6);
        const s = h.sys.open()[0];
        const d = { data: bytes(size), addr: null };
        bench.add(`socket → guest ${fam} ${size} B, 32 per recvmmsg`, () => {
          for (let i = 0; i < 32; i++) s.rx.push(d);
          event(h, EpollType.UDP_REPLY, index);
          drain();
        });
      }
    }
  }
  {
    // mixed sizes: gaps closed by moves (small) and SKIP records (large)
    const { h, index, drain } = setup(false);
    const s = h.sys.open()[0];
    const ds = [64, 16000, 200, 65000, 1472, 9000, 80, 32000].map((n) => ({ data: bytes(n), addr: null }));
    bench.add('socket → guest IPv4 mixed 64…65000 B, 32 per recvmmsg', () => {
      for (let i = 0; i < 32; i++) s.rx.push(ds[i & 7]);
      event(h, EpollType.UDP_REPLY, index);
      drain();
    });
  }
  await bench.run();
  const per = (name: string) => (name.includes('64 per') ? 64 : 32);
  console.table(bench.tasks.map((t) => {
    const mean = t.result && 'latency' in t.result ? (t.result as { latency: { mean: number } }).latency.mean : NaN;
    return { task: t.name, 'µs per datagram': ((mean * 1000) / per(t.name)).toFixed(3) };
  }));
}

void main();

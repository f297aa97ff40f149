/**
 * Frames per second through the real pipeline, tap-RX → link service →
 * tap-TX, with a trivial echo: the "guest" (this thread) writes ARP requests
 * into one end of a SOCK_SEQPACKET socketpair standing in for the tap (one
 * frame per read/write, like a tap), the pipeline's ARP proxy answers each,
 * and tap-TX writes the replies back. Measures the per-frame cost of the
 * worker pipeline (batch read into the ring, parse, service, ring hop,
 * batch write) without any kernel networking in between.
 *
 *   node dist/perf/pipeline.bench.js [seconds] [window]
 *
 * The guest keeps `window` requests outstanding. On a 2-core machine the
 * guest's busy loop competes with tap-RX and tap-TX for the CPUs, so the
 * result is a lower bound of what the pipeline alone can do.
 */
import { Supervisor } from '../src/main/supervisor';
import { parseOptions, resolveConfig } from '../src/main/conf';
import { parseResolvConf, HostFamily } from '../src/main/hostInfo';
import { native, E } from '../src/shared/native';
import { AF_UNIX, SOCK_SEQPACKET, SOCK_NONBLOCK, SOCK_CLOEXEC } from '../src/shared/linux';

const seconds = Number(process.argv[2] ?? 3);
const windowSize = Number(process.argv[3] ?? 256);

function fam4(): HostFamily {
  return {
    family: 2, ifindex: 2, ifname: 'eth0', gateway: Uint8Array.from([192, 0, 2, 1]), addr: Uint8Array.from([192, 0, 2, 2]),
    prefixLen: 24, linkLocal: null, routes: [], addrs: [], ambiguous: false,
  };
}

function arpRequest(): Uint8Array {
  const f = new Uint8Array(42);
  f.fill(0xff, 0, 6); // broadcast
  f.set([0x02, 0, 0, 0, 0, 0x01], 6); // guest MAC
  f.set([0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1], 12); // ARP, Ethernet/IPv4, request
  f.set([0x02, 0, 0, 0, 0, 0x01, 192, 0, 2, 2], 22); // sender
  f.set([0, 0, 0, 0, 0, 0, 192, 0, 2, 1], 32); // target: the gateway
  return f;
}

async function main(): Promise<void> {
  const opts = parseOptions('pasta', ['-4', '--', 'true'], [49152, 65535]);
  const cfg = resolveConfig(opts, { tmpl4: fam4(), tmpl6: null, resolv: parseResolvConf('') });
  const pair = new Int32Array(2);
  if (native.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) < 0) throw new Error('socketpair');
  const [guest, tap] = [pair[0], pair[1]];
  const sup = new Supervisor();
  await sup.start({
    cfg, backend: 'tap', tapfd: tap, nsfd: -1, vnetLen: 0, guest: { mac: '02:00:00:00:00:01', linkLocal: null },
    pcapFd: -1, logLevel: 'warning', logTarget: { kind: 'fd', fd: 2, timestamps: false }, tcpShards: 1,
  });

  const req = arpRequest();
  const buf = new Uint8Array(2048);
  let sent = 0;
  let received = 0;
  let outstanding = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(Math.round(seconds * 1e9));
  let now = t0;
  while (now < end) {
    while (outstanding < windowSize) {
      if (native.write(guest, req, 0, req.length) < 0) break;
      sent++;
      outstanding++;
    }
    for (;;) {
      const r = native.read(guest, buf, 0, buf.length);
      if (r < 0) {
        if (r !== -E.EAGAIN) throw new Error(`read: ${native.strerror(-r)}`);
        break;
      }
      if (r === 42 && buf[21] === 2) received++; // an ARP reply
      outstanding--;
    }
    now = process.hrtime.bigint();
  }
  const secs = Number(now - t0) / 1e9;
  const stats = sup.stats();
  await sup.shutdown(200);
  console.log(`pipeline echo (ARP through tap-RX → ARP proxy → tap-TX), window ${windowSize}, ${secs.toFixed(1)} s`);
  console.log(`  ${(received / secs / 1e3).toFixed(1)} k frames/s echoed (${sent} sent, ${received} replies)`);
  console.log(`  tap-RX batches: ${stats['tap-rx'].batches}, frames/batch ${(stats['tap-rx'].frames / Math.max(1, stats['tap-rx'].batches)).toFixed(1)}; ` +
    `tap-TX writes: ${stats['tap-tx'].writes}, frames/write ${(stats['tap-tx'].frames / Math.max(1, stats['tap-tx'].writes)).toFixed(1)}`);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

/**
 * Wire-format micro-benchmarks (tinybench):
 *
 * 1. parse rate of Ethernet+IPv4+TCP and Ethernet+IPv6+UDP frames through the
 *    views' `reset` (views built once, frames in a SharedArrayBuffer slab);
 * 2. DataView getters against manual byte shifts for the same field reads
 *    (the decision recorded in wire/bytes.ts and wire/view.ts), over a
 *    SharedArrayBuffer and over a plain ArrayBuffer;
 * 3. the pure-JS `sum16` against the addon's `native.csum`, for 64 … 65536
 *    bytes (the crossover sets NATIVE_CSUM_MIN in wire/checksum.ts).
 *
 * Run: npx tsc -p . && node dist/perf/wire.bench.js [timeMs]
 */
import { Bench } from 'tinybench';
import { EthernetView, ETHERTYPE } from '../src/shared/wire/ethernet';
import { Ipv4View, IP_PROTO } from '../src/shared/wire/ipv4';
import { Ipv6View } from '../src/shared/wire/ipv6';
import { TcpView } from '../src/shared/wire/tcp';
import { UdpView } from '../src/shared/wire/udp';
import { sum16, fold } from '../src/shared/wire/checksum';
import { native } from '../src/shared/native';

const FRAMES = 256;
const SLOT = 2048;

/** A slab of FRAMES slots, each holding a copy of `frame`. */
function slab(frame: Uint8Array, shared: boolean): Uint8Array {
  const u8 = new Uint8Array(shared ? new SharedArrayBuffer(FRAMES * SLOT) : new ArrayBuffer(FRAMES * SLOT));
  for (let i = 0; i < FRAMES; i++) u8.set(frame, i * SLOT);
  return u8;
}

function tcp4Frame(): Uint8Array {
  const f = new Uint8Array(14 + 20 + 32 + 100);
  f.set([0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55, 0x08, 0x00]);
  f.set([0x45, 0, 0, 152, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 2, 15, 93, 184, 216, 34], 14);
  f.set([0xb2, 0x6e, 0, 80, 1, 2, 3, 4, 5, 6, 7, 8, 0x80, 0x18, 0x01, 0xf5, 0, 0, 0, 0,
    1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], 34);
  return f;
}

function udp6Frame(): Uint8Array {
  const f = new Uint8Array(14 + 40 + 8 + 100);
  f.set([0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55, 0x86, 0xdd]);
  f.set([0x60, 0, 0, 0, 0, 108, 17, 64], 14);
  f[22] = 0x20; f[23] = 0x01; f[53] = 1; // src 2001::…1
  f[38] = 0x20; f[39] = 0x01; f[69 - 16] = 2; // dst
  f.set([0xd4, 0x31, 0, 53, 0, 108, 0, 0], 54);
  return f;
}

let sink = 0;

function addParse(b: Bench): void {
  const t4 = slab(tcp4Frame(), true);
  const eth = new EthernetView(t4);
  const ip4 = new Ipv4View(t4);
  const tcp = new TcpView(t4);
  const len4 = tcp4Frame().length;
  b.add(`parse eth+ipv4+tcp x${FRAMES} (reset + 6 fields)`, () => {
    for (let i = 0; i < FRAMES; i++) {
      const off = i * SLOT;
      if (!eth.reset(off, len4) || eth.etherType !== ETHERTYPE.IPV4) continue;
      if (!ip4.reset(eth.payloadOff, eth.payloadLen) || ip4.protocol !== IP_PROTO.TCP) continue;
      if (!tcp.reset(ip4.payloadOff, ip4.payloadLen)) continue;
      sink += tcp.srcPort + tcp.dstPort + tcp.seqNumber + tcp.ackNumber + tcp.flags + tcp.payloadLen;
    }
  });
  const u6 = slab(udp6Frame(), true);
  const eth6 = new EthernetView(u6);
  const ip6 = new Ipv6View(u6);
  const udp = new UdpView(u6);
  const len6 = udp6Frame().length;
  b.add(`parse eth+ipv6+udp x${FRAMES} (reset + 3 fields)`, () => {
    for (let i = 0; i < FRAMES; i++) {
      const off = i * SLOT;
      if (!eth6.reset(off, len6) || eth6.etherType !== ETHERTYPE.IPV6) continue;
      if (!ip6.reset(eth6.payloadOff, eth6.payloadLen) || ip6.protocol !== IP_PROTO.UDP) continue;
      if (!udp.reset(ip6.payloadOff, ip6.payloadLen)) continue;
      sink += udp.srcPort + udp.dstPort + udp.payloadLen;
    }
  });
}

/** Minimal TCP header reader through a DataView. */
class DvReader {
  off = 0;
  readonly dv: DataView;
  constructor(u8: Uint8Array) { this.dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength); }
  get srcPort(): number { return this.dv.getUint16(this.off); }
  get dstPort(): number { return this.dv.getUint16(this.off + 2); }
  get seq(): number { return this.dv.getUint32(this.off + 4); }
  get ack(): number { return this.dv.getUint32(this.off + 8); }
  get window(): number { return this.dv.getUint16(this.off + 14); }
}

/** The same through manual shifts on the Uint8Array. */
class ShiftReader {
  off = 0;
  constructor(readonly u8: Uint8Array) {}
  get srcPort(): number { const u = this.u8, o = this.off; return (u[o] << 8) | u[o + 1]; }
  get dstPort(): number { const u = this.u8, o = this.off + 2; return (u[o] << 8) | u[o + 1]; }
  get seq(): number { const u = this.u8, o = this.off + 4; return ((u[o] << 24) | (u[o + 1] << 16) | (u[o + 2] << 8) | u[o + 3]) >>> 0; }
  get ack(): number { const u = this.u8, o = this.off + 8; return ((u[o] << 24) | (u[o + 1] << 16) | (u[o + 2] << 8) | u[o + 3]) >>> 0; }
  get window(): number { const u = this.u8, o = this.off + 14; return (u[o] << 8) | u[o + 1]; }
}

function addGetters(b: Bench): void {
  for (const shared of [true, false]) {
    const u8 = slab(tcp4Frame(), shared);
    const dv = new DvReader(u8);
    const sh = new ShiftReader(u8);
    const kind = shared ? 'SAB' : 'AB';
    b.add(`getters DataView  ${kind} x${FRAMES} (5 fields)`, () => {
      for (let i = 0; i < FRAMES; i++) { dv.off = i * SLOT + 34; sink += dv.srcPort + dv.dstPort + dv.seq + dv.ack + dv.window; }
    });
    b.add(`getters shifts    ${kind} x${FRAMES} (5 fields)`, () => {
      for (let i = 0; i < FRAMES; i++) { sh.off = i * SLOT + 34; sink += sh.srcPort + sh.dstPort + sh.seq + sh.ack + sh.window; }
    });
  }
}

const CSUM_SIZES = [64, 128, 256, 512, 1500, 65536];

function addChecksums(b: Bench): void {
  const u8 = new Uint8Array(new SharedArrayBuffer(70000));
  for (let i = 0; i < u8.length; i++) u8[i] = (i * 131 + 7) & 0xff;
  for (const n of CSUM_SIZES) {
    if (fold(sum16(u8, 14, n)) !== native.csum(u8, 14, n)) throw new Error(`csum mismatch at ${n}`);
    b.add(`csum JS sum16     ${n} B`, () => { sink += sum16(u8, 14, n); });
    b.add(`csum native.csum  ${n} B`, () => { sink += native.csum(u8, 14, n); });
  }
}

/** Runs the benchmarks and prints one table; returns the rows for callers. */
export async function run(timeMs = 500): Promise<Record<string, string>[]> {
  const b = new Bench({ time: timeMs, warmup: true });
  addParse(b);
  addGetters(b);
  addChecksums(b);
  await b.run();
  const rows: Record<string, string>[] = [];
  for (const task of b.tasks) {
    const r = task.result;
    if (!('latency' in r)) { rows.push({ task: task.name, error: r.state }); continue; }
    const ns = r.latency.p50 * 1e6;
    const per = /x(\d+)/.exec(task.name);
    const bytes = /(\d+) B$/.exec(task.name);
    const row: Record<string, string> = { task: task.name, 'median ns/call': ns.toFixed(0), 'rme %': r.latency.rme.toFixed(1) };
    if (per) row['ns/frame'] = (ns / Number(per[1])).toFixed(1);
    if (per) row['Mframes/s'] = (Number(per[1]) / ns * 1e3).toFixed(1);
    if (bytes) row['GB/s'] = (Number(bytes[1]) / ns).toFixed(2);
    rows.push(row);
  }
  console.table(rows);
  if (sink === 42) console.log('');
  return rows;
}

if (require.main === module) {
  const t = Number(process.argv[2] ?? 500);
  run(Number.isFinite(t) && t > 0 ? t : 500).catch((e) => { console.error(e); process.exit(1); });
}

/**
 * Runs inside a pasta namespace (spawned by test/e2e/tcp.test.ts): injects
 * hand-made TCP segments on eth0 with an AF_PACKET socket, as if the
 * namespace's kernel had sent them, and records what pasta answers. Prints
 * one JSON line of results.
 *
 *   node rawTcp.js GATEWAY OPEN_PORT CLOSED_PORT GUEST_MAC IFINDEX
 *
 * Segments that need a handshake use source addresses the namespace does
 * not own (192.0.2.7x), so that its kernel ignores our answers instead of
 * resetting them.
 */
import { native } from '../../src/shared/native';
import { be16, be32, concat, eth, ipv4, ip4, refChecksum, rd16, rd32, mac, OUR_MAC } from './frames';

const [gw, openPortS, closedPortS, guestMac, ifindexS] = process.argv.slice(2);
const OPEN = Number(openPortS);
const CLOSED = Number(closedPortS);
const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const ETH_P_ALL_BE = 0x0300;

const fd = native.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, ETH_P_ALL_BE);
if (fd < 0) throw new Error(`AF_PACKET socket: ${native.strerror(-fd)}`);
const sll = new Uint8Array(20);
sll[0] = AF_PACKET;
sll[2] = 0x00;
sll[3] = 0x03;
new DataView(sll.buffer).setInt32(4, Number(ifindexS), true);
if (native.bind(fd, sll) < 0) throw new Error('bind AF_PACKET');

const FIN = 1;
const SYN = 2;
const RST = 4;
const ACK = 0x10;

interface Seg { src: string; sport: number; dport: number; seq: number; ack: number; flags: number;
  doff?: number; opts?: number[]; payload?: Uint8Array; window?: number; truncate?: number }

function send(s: Seg): void {
  const opts = s.opts ?? [];
  const payload = s.payload ?? new Uint8Array(0);
  const hl = 20 + opts.length;
  const doff = s.doff ?? hl / 4;
  const t = concat(be16(s.sport), be16(s.dport), be32(s.seq >>> 0), be32(s.ack >>> 0),
    [doff << 4, s.flags], be16(s.window ?? 65535), [0, 0, 0, 0], opts, payload);
  const l4 = s.truncate ? t.subarray(0, s.truncate) : t;
  const c = refChecksum(ip4(s.src), ip4(gw), [0, 6], be16(l4.length), l4);
  l4[16] = c >>> 8;
  l4[17] = c & 0xff;
  const f = eth(OUR_MAC, guestMac, 0x0800, ipv4({ src: s.src, dst: gw, proto: 6 }, l4));
  const u8 = new Uint8Array(f);
  const r = native.write(fd, u8, 0, u8.length);
  if (r < 0) throw new Error(`send: ${native.strerror(-r)}`);
}

interface Rx { flags: number; seq: number; ack: number; payload: number; mss: number; sport: number; dport: number; dst: string }

const sleepBuf = new Int32Array(new SharedArrayBuffer(4));
const rxBuf = new Uint8Array(70000);
const ourMac = mac(OUR_MAC);

/** TCP segments from pasta (source MAC ours) to dport, within ms. */
function collect(dport: number, ms: number): Rx[] {
  const out: Rx[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const n = native.read(fd, rxBuf, 0, rxBuf.length);
    if (n < 0) {
      Atomics.wait(sleepBuf, 0, 0, 5);
      continue;
    }
    if (n < 54) continue;
    let fromUs = true;
    for (let i = 0; i < 6; i++) if (rxBuf[6 + i] !== ourMac[i]) fromUs = false;
    if (!fromUs || rd16(rxBuf, 12) !== 0x0800 || rxBuf[14 + 9] !== 6) continue;
    const ihl = (rxBuf[14] & 0x0f) * 4;
    const tot = rd16(rxBuf, 16);
    const t = 14 + ihl;
    if (rd16(rxBuf, t + 2) !== dport) continue;
    const hl = (rxBuf[t + 12] >> 4) * 4;
    let mss = -1;
    for (let p = t + 20; p < t + hl;) {
      const k = rxBuf[p];
      if (k === 0) break;
      if (k === 1) { p++; continue; }
      if (k === 2) mss = rd16(rxBuf, p + 2);
      p += rxBuf[p + 1] || 1;
    }
    out.push({
      flags: rxBuf[t + 13], seq: rd32(rxBuf, t + 4), ack: rd32(rxBuf, t + 8), payload: tot - ihl - hl, mss,
      sport: rd16(rxBuf, t), dport: rd16(rxBuf, t + 2), dst: Array.from(rxBuf.subarray(30, 34)).join('.'),
    });
  }
  return out;
}

const res: Record<string, unknown> = {};
const ME = '192.0.2.2';

// SYN to a closed port: RST+ACK acknowledging it
send({ src: ME, sport: 40001, dport: CLOSED, seq: 1000, ack: 0, flags: SYN, opts: [2, 4, 5, 180] });
{
  const rx = collect(40001, 500);
  const rst = rx.find((r) => r.flags & RST);
  res.closedPort = { rst: !!rst, ackOk: !!rst && (rst.flags & ACK) !== 0 && rst.ack === 1001 };
}

// SYN with payload: answered as a SYN, payload not acknowledged
send({ src: '192.0.2.71', sport: 40002, dport: OPEN, seq: 5000, ack: 0, flags: SYN, opts: [2, 4, 5, 180],
  payload: new Uint8Array(10) });
{
  const rx = collect(40002, 500);
  const sa = rx.find((r) => (r.flags & (SYN | ACK)) === (SYN | ACK));
  res.synPayload = { synAck: !!sa, ackOk: !!sa && sa.ack === 5001, mssOpt: !!sa && sa.mss > 0 };
  if (sa) send({ src: '192.0.2.71', sport: 40002, dport: OPEN, seq: 5001, ack: sa.seq + 1, flags: RST });
}

// garbage to unknown flows: no answer
const silent = (name: string, s: Seg) => {
  send(s);
  res[name] = collect(s.sport, 200).length ? 'answered' : 'silent';
};
silent('badDoff', { src: ME, sport: 40010, dport: OPEN, seq: 1, ack: 0, flags: SYN, doff: 3 });
silent('doffPastEnd', { src: ME, sport: 40011, dport: OPEN, seq: 1, ack: 0, flags: SYN, doff: 15 });
silent('optsPastEnd', { src: ME, sport: 40012, dport: OPEN, seq: 1, ack: 0, flags: SYN, doff: 6, opts: [2, 4, 5, 180],
  truncate: 22 });
silent('synFin', { src: ME, sport: 40013, dport: OPEN, seq: 1, ack: 0, flags: SYN | FIN });
silent('synRst', { src: ME, sport: 40014, dport: OPEN, seq: 1, ack: 0, flags: SYN | RST });
silent('finOnly', { src: ME, sport: 40015, dport: OPEN, seq: 1, ack: 0, flags: FIN | ACK });
silent('ackUnknown', { src: ME, sport: 40016, dport: OPEN, seq: 1, ack: 77, flags: ACK, payload: new Uint8Array(5) });
silent('rstUnknown', { src: ME, sport: 40017, dport: OPEN, seq: 1, ack: 0, flags: RST });

// options running past the option area: parsing stops, the SYN is still a SYN
send({ src: '192.0.2.72', sport: 40020, dport: OPEN, seq: 9000, ack: 0, flags: SYN, opts: [1, 1, 2, 40] });
{
  const rx = collect(40020, 500);
  const sa = rx.find((r) => (r.flags & (SYN | ACK)) === (SYN | ACK));
  res.badOptions = { synAck: !!sa };
  if (sa) send({ src: '192.0.2.72', sport: 40020, dport: OPEN, seq: 9001, ack: sa.seq + 1, flags: RST });
}

// an established connection fed odd segments
{
  const src = '192.0.2.73';
  const sp = 40030;
  let seq = 20000;
  send({ src, sport: sp, dport: OPEN, seq, ack: 0, flags: SYN, opts: [2, 4, 5, 180, 1, 3, 3, 7] });
  const sa = collect(sp, 500).find((r) => (r.flags & (SYN | ACK)) === (SYN | ACK));
  const e: Record<string, unknown> = { synAck: !!sa };
  if (sa) {
    seq++;
    const our = sa.seq + 1;
    send({ src, sport: sp, dport: OPEN, seq, ack: our, flags: ACK });
    // a segment far beyond the expected sequence: a gap → duplicate ACKs
    send({ src, sport: sp, dport: OPEN, seq: seq + 100000, ack: our, flags: ACK, payload: new Uint8Array(10) });
    let rx = collect(sp, 300);
    e.gapDupAcks = rx.filter((r) => r.ack === seq && !r.payload).length;
    // in order: acknowledged
    send({ src, sport: sp, dport: OPEN, seq, ack: our, flags: ACK, payload: new Uint8Array(5) });
    rx = collect(sp, 300);
    e.inOrderAcked = rx.some((r) => r.ack === seq + 5);
    // again (old data): acknowledged again
    send({ src, sport: sp, dport: OPEN, seq, ack: our, flags: ACK, payload: new Uint8Array(5) });
    rx = collect(sp, 300);
    e.oldAcked = rx.some((r) => r.ack === seq + 5);
    seq += 5;
    // acknowledging data we never sent: dropped
    send({ src, sport: sp, dport: OPEN, seq, ack: our + 100000, flags: ACK, payload: new Uint8Array(3) });
    rx = collect(sp, 200);
    e.badAckIgnored = !rx.some((r) => r.ack === seq + 3);
    // a SYN inside the connection: ignored
    send({ src, sport: sp, dport: OPEN, seq, ack: 0, flags: SYN });
    // SYN+FIN inside the connection: ignored
    send({ src, sport: sp, dport: OPEN, seq, ack: our, flags: SYN | FIN });
    send({ src, sport: sp, dport: OPEN, seq, ack: our, flags: ACK, payload: new Uint8Array(3) });
    rx = collect(sp, 300);
    e.stillWorks = rx.some((r) => r.ack === seq + 3);
    seq += 3;
    send({ src, sport: sp, dport: OPEN, seq, ack: our, flags: RST });
  }
  res.established = e;
}

// and a normal SYN is still answered
send({ src: '192.0.2.74', sport: 40040, dport: OPEN, seq: 1, ack: 0, flags: SYN, opts: [2, 4, 5, 180] });
{
  const sa = collect(40040, 500).find((r) => (r.flags & (SYN | ACK)) === (SYN | ACK));
  res.afterwards = sa ? 'reply' : 'none';
  if (sa) send({ src: '192.0.2.74', sport: 40040, dport: OPEN, seq: 2, ack: sa.seq + 1, flags: RST });
}

process.stdout.write(`${JSON.stringify(res)}\n`);
native.close(fd);

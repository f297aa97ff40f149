/**
 * Socket → guest, and socket → socket (spliced): datagrams received on
 * reply sockets and forwarded-port listeners (SPEC.md §5.3).
 *
 * Theory of operation
 * - Datagrams are received with recvmmsg (up to `core.batch` per call,
 *   MAX_ROUNDS calls per event, so one busy socket cannot starve the
 *   others; epoll is level-triggered and comes back) straight into the
 *   ring towards tap-TX, each into a *slot* sized for the largest frame,
 *   at the offset where its payload belongs behind the virtio-net,
 *   Ethernet, IP and UDP headers:
 *   ```
 *   slot i: [rec hdr 16][vnet][eth 14][ip 20|40][udp 8][payload ...........]
 *   ```
 *   The IP header length is guessed per socket (a reply socket's family is
 *   its flow's; a listener remembers the family of its last datagram).
 * - Records must be contiguous, so after datagram i is placed its record
 *   ends well before slot i+1. Datagram i+1 then starts where the previous
 *   record ended: a payload up to COPY_MAX bytes is moved there (cheap, and
 *   the ring stays dense), a larger one stays in place behind a SKIP record
 *   covering the gap (when the gap is a multiple of 8 and at least a record
 *   header). So no payload above COPY_MAX is ever copied in user space:
 *   kernel → ring → kernel.
 *   Invariant: when datagram i is handled, the write cursor is at most at
 *   slot i's data start, and a record written from it ends before slot
 *   i+1 (slots have room for the largest IPv6 header in front of the
 *   largest payload).
 * - Each datagram goes to the other side of its flow: the tap (headers
 *   written in place, UDP checksum 0 over IPv4 and computed over IPv6,
 *   SPEC §1.4) or a socket (spliced: gathered into one sendmmsg per run of
 *   the same flow, sent before any later tap frame may move data over it).
 * - Back-pressure: when the ring has no room for a slot, a socket whose
 *   datagrams go to the guest (a reply socket of a tap flow, or a
 *   listener) is paused — taken out of epoll's interest until tap-TX
 *   releases space and wakes the worker (core.pause/resume) — so datagrams
 *   wait in the socket, and what overflows it is dropped by the kernel
 *   before we spend anything on it. Spliced reply sockets keep going
 *   through a scratch area; if a tap frame still finds no record there it
 *   is counted 'ringFull'.
 * - Listener datagrams find (or make) their flow by (pif, our port,
 *   source address:port); reply sockets know theirs from the epoll
 *   reference. Every datagram refreshes its flow.
 * - EPOLLERR: the error queue (IP_RECVERR) is drained and counted; ICMP
 *   errors are not sent to the guest. An unreadable error state closes the
 *   flow.
 */
import { UdpCore, Listener, FLOW_TYPE, IPPROTO_UDP, MAX_BATCH, slotRec, anyOf } from './core';
import { udpFlowFromListener } from './flow';
import { SendBatch, flushBatch } from './tap';
import { pingSockHandler } from './icmp';
import { FLOW_KEY, INISIDE } from '../../shared/flow/table';
import { inanyIs4 } from '../../shared/flow/inany';
import { FRAME_KIND, MAX_FRAME } from '../../shared/frameKinds';
import { REC_KIND, RING_ALIGN, RING_REC_HDR, recordData, recordHeader, recordLenFilling } from '../../shared/ring/layout';
import { sockaddrTo, SOCKADDR_LEN } from '../../shared/sockaddr';
import { EpollType, packRef, refIndex, refType } from '../../shared/epollRef';
import { EPOLLERR, EPOLLIN } from '../../shared/linux';
import { E } from '../../shared/native';
import { l4Checksum6 } from '../../shared/wire/checksum';
import { l4Offset } from '../l4/tapOut';
import { writeUdpHeader, udpChecksumValue, UDP_HEADER_LEN } from '../../shared/wire/udp';
import { wr16 } from '../../shared/wire/bytes';

/** recvmmsg calls per readiness event. */
const MAX_ROUNDS = 4;
/**
 * Payloads up to this many bytes are moved to close a gap; larger ones get a
 * SKIP record. A SKIP wastes ring space until tap-TX passes it (with 16 KB
 * datagrams, 3/4 of every slot), which limits what can be in flight; a move
 * of an equally aligned payload costs ~0.6 µs per 16 KB (perf/udp.bench.ts).
 * Measured (perf/udp.sh udp_in_tap, 16 KB datagrams, same quiet-ish hour):
 * COPY_MAX 4096 → 5.9 Gbit/s, 32768 → 7.0 Gbit/s (C pasta: 10.1).
 */
export const COPY_MAX = 32768;
/** Largest UDP payload in a frame (IPv4; IPv6 has 20 bytes less). */
const MAX_PAYLOAD = MAX_FRAME - l4Offset(0, true) - UDP_HEADER_LEN;

/** Receive buffers of the socket side, reused for every call. */
export class RecvState {
  readonly offs = new Int32Array(MAX_BATCH);
  readonly lens = new Int32Array(MAX_BATCH);
  readonly out = new Int32Array(MAX_BATCH);
  readonly addrs = new Uint8Array(MAX_BATCH * SOCKADDR_LEN);
  readonly splice = new SendBatch();
}

/** An epoll event on a UDP reply, UDP listening or ping socket. */
export function sockHandler(c: UdpCore, st: RecvState, ref: number, events: number, now: number): void {
  const type = refType(ref);
  const idx = refIndex(ref);
  if (type === EpollType.UDP_REPLY) {
    const f = idx >> 1;
    const fd = c.sock[idx];
    if (fd < 0 || c.ftype[f] !== FLOW_TYPE.UDP) return;
    if (events & EPOLLERR) {
      c.stats.v[c.ix.errQueue]++;
      if (c.sys.drainErrQueue(fd) < 0) {
        c.closing[f] = 1;
        return;
      }
    }
    if (events & EPOLLIN) recvSock(c, st, fd, null, f, idx & 1, now);
  } else if (type === EpollType.UDP_LISTEN) {
    const l = c.listeners[idx];
    if (!l) return;
    if (events & EPOLLERR) {
      c.stats.v[c.ix.errQueue]++;
      c.sys.drainErrQueue(l.fd);
    }
    if (events & EPOLLIN) recvSock(c, st, l.fd, l, -1, -1, now);
  } else if (type === EpollType.PING) {
    pingSockHandler(c, idx, events);
  }
}

/**
 * Receives from fd: a listener's (l given, flows looked up per datagram) or
 * the reply socket of side s0 of flow f0.
 */
export function recvSock(c: UdpCore, st: RecvState, fd: number, l: Listener | null, f0: number, s0: number,
  now: number): void {
  const ring = c.out.ring;
  const vnet = c.out.vnetLen;
  const slot = slotRec(vnet);
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const v4 = l ? l.lastV4 : inanyIs4(c.table.keys, c.table.keyOff(f0, s0 ^ 1) + FLOW_KEY.EP_ADDR);
    const hdr = l4Offset(vnet, v4) + UDP_HEADER_LEN;
    let area: Uint8Array;
    let base: number;
    let count: number;
    let inRing: boolean;
    const d = ring.beginWrite(slot - RING_REC_HDR);
    if (d < 0 && (l || c.sock[f0 * 2 + (s0 ^ 1)] < 0)) {
      // datagrams for the guest, and no room: leave them in the socket
      c.pause(l ? packRef(EpollType.UDP_LISTEN, l.slot) : packRef(EpollType.UDP_REPLY, f0 * 2 + s0), fd);
      c.stats.v[c.ix.paused]++;
      break;
    }
    if (d >= 0) {
      inRing = true;
      area = ring.u8;
      base = recordHeader(d);
      count = Math.min(c.batch, Math.floor(ring.contiguousFree() / slot));
    } else {
      inRing = false;
      area = c.scratch;
      base = 0;
      count = c.batch;
    }
    for (let i = 0; i < count; i++) {
      st.offs[i] = recordData(base + i * slot) + hdr;
      st.lens[i] = MAX_PAYLOAD;
    }
    const n = c.sys.recvmmsg(fd, area, st.offs, st.lens, count, l ? st.addrs : null, st.out, 0);
    if (n <= 0) {
      if (n < 0 && n !== -E.EAGAIN) c.stats.v[c.ix.recvErrors]++;
      break;
    }
    for (let i = 0; i < n; i++) {
      const len = st.out[i];
      if (len < 0) {
        c.drop(c.ix.tooBig);
        continue;
      }
      let f = f0;
      let s = s0;
      if (l) {
        const sport = sockaddrTo(st.addrs, i * SOCKADDR_LEN, c.a16, 0);
        if (sport < 0) {
          c.drop(c.ix.badAddr);
          continue;
        }
        const src4 = inanyIs4(c.a16, 0);
        l.lastV4 = src4;
        let ref = c.table.lookup(IPPROTO_UDP, l.pif, anyOf(src4), 0, l.port, c.a16, 0, sport);
        if (ref < 0) {
          ref = udpFlowFromListener(c, l, c.a16, sport, now);
          if (ref < 0) continue;
        }
        f = ref >> 1;
        s = ref & 1;
      }
      c.lastMs[f] = now;
      c.rxBytes[f * 2 + s] += len;
      const o = s ^ 1;
      if (c.sock[f * 2 + o] < 0) {
        c.stats.v[c.ix.bytesToTap] += len;
        toTap(c, st, area, inRing, f, o, st.offs[i], len);
      } else {
        c.stats.v[s === INISIDE ? c.ix.splicedFromClient : c.ix.splicedToClient] += len;
        spliceAdd(c, st, area, f, o, st.offs[i], len);
      }
    }
    flushBatch(c, st.splice, area, c.ix.spliced);
    // publish each round: tap-TX starts writing while we receive the next
    c.out.flush();
    if (n < count) break;
  }
}

function spliceAdd(c: UdpCore, st: RecvState, area: Uint8Array, f: number, o: number, pay: number, len: number): void {
  const b = st.splice;
  if (b.n && (b.flow !== f || b.side !== o || b.n === MAX_BATCH)) flushBatch(c, b, area, c.ix.spliced);
  b.flow = f;
  b.side = o;
  b.offs[b.n] = pay;
  b.lens[b.n] = len;
  b.n++;
}

/** Datagram of len bytes at area[pay] to the guest, as side o of flow f. */
function toTap(c: UdpCore, st: RecvState, area: Uint8Array, inRing: boolean, f: number, o: number, pay: number,
  len: number): void {
  // moving this payload may overwrite spliced ones still waiting
  flushBatch(c, st.splice, area, c.ix.spliced);
  const t = c.table;
  const keys = t.keys;
  const ko = t.keyOff(f, o);
  const v4 = inanyIs4(keys, ko + FLOW_KEY.EP_ADDR);
  if (!v4 && len > MAX_PAYLOAD - 20) {
    c.drop(c.ix.tooBig);
    return;
  }
  const out = c.out;
  const ring = out.ring;
  const u8 = ring.u8;
  const vnet = out.vnetLen;
  const l4Off = l4Offset(vnet, v4);
  const fhdr = l4Off + UDP_HEADER_LEN;
  let rec: number;
  if (inRing) {
    rec = ring.writeDataOffset;
    const natural = pay - fhdr;
    if (natural !== rec) {
      const gap = natural - rec;
      if (len > COPY_MAX && gap >= RING_REC_HDR && gap % RING_ALIGN === 0) {
        ring.endWrite(recordLenFilling(gap), REC_KIND.SKIP);
        rec = natural;
      } else {
        u8.copyWithin(rec + fhdr, pay, pay + len);
      }
    }
  } else {
    rec = ring.beginWrite(fhdr + len);
    if (rec < 0) {
      c.drop(c.ix.ringFull);
      return;
    }
    u8.set(area.subarray(pay, pay + len), rec + fhdr);
  }
  const l4 = rec + l4Off;
  const l4Len = writeUdpHeader(u8, l4, t.ourPort(f, o), t.epPort(f, o), len) + len;
  if (!v4) {
    // RFC 8200 §8.1: mandatory, and 0 is sent as 0xffff
    wr16(u8, l4 + 6, udpChecksumValue(l4Checksum6(keys, ko + FLOW_KEY.OUR_ADDR, keys, ko + FLOW_KEY.EP_ADDR,
      IPPROTO_UDP, u8, l4, l4Len)));
  }
  out.writeHeaders(rec, v4, keys, ko + FLOW_KEY.OUR_ADDR, keys, ko + FLOW_KEY.EP_ADDR, IPPROTO_UDP, l4Len);
  ring.endWrite(fhdr + len, FRAME_KIND.TO_GUEST);
  out.markDirty();
  c.stats.v[c.ix.toTap]++;
}

/**
 * ICMP/ICMPv6 echo through unprivileged ping sockets (SPEC.md §6, §13 item 3).
 *
 * Theory of operation
 * - Only Echo Requests reach this file (tap-RX forwards type 8 / 128 and
 *   nothing else; anything else is counted 'icmpNotEcho').
 * - Flow key: (guest address, pinged address, echo identifier), the
 *   identifier standing in for both ports, on the TAP side. The target is
 *   HOST per §2.6 (pinging the gateway pings the host's loopback).
 * - Each flow owns one ping socket, socket(AF_INET, SOCK_DGRAM,
 *   IPPROTO_ICMP) or (AF_INET6, ..., IPPROTO_ICMPV6), bound to the -o
 *   address or any with identifier 0, so the kernel picks the identifier
 *   it sends (bind failures are ignored); SO_BINDTODEVICE for
 *   --outbound-if4/6 unless the target is loopback.
 * - Request: the ICMP message (header + payload) goes to sendto() with the
 *   target address; the kernel rewrites identifier and checksum.
 * - Reply: each message received must be an Echo Reply of the flow's
 *   family and at least a header long ('icmpBadReply'); its identifier
 *   becomes the guest's again, the sequence number stays, the checksum is
 *   recomputed (ICMPv6 with the pseudo-header), and it goes to the guest
 *   from the address the guest pinged. pasta drops a reply whose sequence
 *   number equals the previous one forwarded ('icmpDup').
 * - Timeout: 60 s after the last request (core.ts timer pass).
 * - Ping sockets forbidden (net.ipv4.ping_group_range excludes our group):
 *   one warning for the run, then each request is a counted drop
 *   ('pingSocketErrors'). Nothing crashes.
 */
import { UdpCore, FLOW_TYPE, IPPROTO_ICMP, IPPROTO_ICMPV6, SOCK_F, anyOf, bindToDevice } from './core';
import { guestAddrs } from './tap';
import type { GuestBatch } from '../l4/tapIn';
import { INISIDE, TGTSIDE, PIF, FLOW_KEY } from '../../shared/flow/table';
import { inanyIs4, inanyIsLoopback } from '../../shared/flow/inany';
import { EPOLL_CTL_ADD, EPOLLIN, EPOLLERR } from '../../shared/linux';
import { EpollType, packRef } from '../../shared/epollRef';
import { csum, finish, l4Checksum6 } from '../../shared/wire/checksum';
import { ICMP_TYPE, ICMPV6_TYPE } from '../../shared/wire/icmp';
import { wr16 } from '../../shared/wire/bytes';
import { SOCKADDR_LEN, sockaddrFrom } from '../../shared/sockaddr';
import { log } from '../../shared/log';

/** Replies read per event. */
const REPLY_BATCH = 8;

const one = { offs: new Int32Array(1), lens: new Int32Array(1) };
const rx = { offs: new Int32Array(REPLY_BATCH), lens: new Int32Array(REPLY_BATCH), out: new Int32Array(REPLY_BATCH) };
const dest = new Uint8Array(SOCKADDR_LEN);

/** An echo request from the guest at u8[l4, l4+l4Len) of the input ring. */
export function icmpFromTap(c: UdpCore, inb: GuestBatch, l4: number, l4Len: number, now: number): void {
  const u8 = c.input.u8;
  const v4 = inb.v4;
  if (l4Len < 8) {
    c.drop(c.ix.truncated);
    return;
  }
  if (u8[l4] !== (v4 ? ICMP_TYPE.ECHO_REQUEST : ICMPV6_TYPE.ECHO_REQUEST) || u8[l4 + 1] !== 0) {
    c.drop(c.ix.icmpNotEcho);
    return;
  }
  const id = (u8[l4 + 4] << 8) | u8[l4 + 5];
  if (!guestAddrs(c, inb)) return;
  const src = c.a16;
  const dst = c.b16;
  const proto = v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  let ref = c.table.lookup(proto, PIF.TAP, dst, 0, id, src, 0, id);
  if (ref < 0) {
    ref = pingFlowFromTap(c, v4, src, dst, id, now);
    if (ref < 0) return;
  }
  const f = ref >> 1;
  c.lastMs[f] = now;
  c.rxBytes[ref] += l4Len;
  const t = c.table;
  const ko = t.keyOff(f, TGTSIDE);
  // a whole SOCKADDR_LEN slot: the addon reads the family to know the length
  sockaddrFrom(dest, 0, t.keys, ko + FLOW_KEY.EP_ADDR, 0);
  one.offs[0] = l4;
  one.lens[0] = l4Len;
  const r = c.sys.sendmmsg(c.sock[f * 2 + TGTSIDE], u8, one.offs, one.lens, 1, dest, 0);
  if (r === 1) {
    c.stats.v[c.ix.pingRequests]++;
  } else {
    c.drop(c.ix.sendErrors);
  }
}

function pingFlowFromTap(c: UdpCore, v4: boolean, src: Uint8Array, dst: Uint8Array, id: number, now: number): number {
  const proto = v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  const f = c.flowFromTap(proto, v4, src, id, dst, id, false);
  if (f < 0) return -1;
  const fam = v4 ? c.nat.v4 : c.nat.v6;
  const tgt = c.c16;
  const our = fam.outbound ?? anyOf(v4);
  const s = c.sys;
  const fd = c.newSocket(false, inanyIs4(tgt, 0), proto);
  if (fd < 0) {
    c.free(f);
    c.warnPing(fd);
    return -1;
  }
  c.sock[f * 2 + TGTSIDE] = fd;
  if (fam.outboundIf && !inanyIsLoopback(tgt, 0)) bindToDevice(s, fd, fam.outboundIf);
  s.bind(fd, c.sockaddr(our, 0, 0)); // failure ignored: the kernel picks an address
  if (s.epollCtl(c.epfd, EPOLL_CTL_ADD, fd, EPOLLIN, packRef(EpollType.PING, f)) < 0) {
    c.free(f);
    c.drop(c.ix.socketErrors);
    return -1;
  }
  c.sockFlags[f * 2 + TGTSIDE] = SOCK_F.IN_EPOLL;
  c.activate(f, v4 ? FLOW_TYPE.PING4 : FLOW_TYPE.PING6, now);
  return f * 2 + INISIDE;
}

/** Readiness of the ping socket of flow f: replies to the guest. */
export function pingSockHandler(c: UdpCore, f: number, events: number): void {
  const fd = c.sock[f * 2 + TGTSIDE];
  if (fd < 0 || c.ftype[f] === FLOW_TYPE.NONE) return;
  if (events & EPOLLERR) {
    c.stats.v[c.ix.errQueue]++;
    if (c.sys.drainErrQueue(fd) < 0) c.closing[f] = 1;
  }
  const v4 = c.ftype[f] === FLOW_TYPE.PING4;
  const area = c.scratch;
  const max = Math.min(REPLY_BATCH, Math.floor(area.length / 65536));
  for (let i = 0; i < max; i++) {
    rx.offs[i] = i * 65536;
    rx.lens[i] = 65535;
  }
  const n = c.sys.recvmmsg(fd, area, rx.offs, rx.lens, max, null, rx.out, 0);
  if (n < 0) return;
  const t = c.table;
  const ko = t.keyOff(f, INISIDE);
  const id = t.epPort(f, INISIDE);
  const proto = v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  for (let i = 0; i < n; i++) {
    const len = rx.out[i];
    const m = rx.offs[i];
    if (len < 8 || area[m] !== (v4 ? ICMP_TYPE.ECHO_REPLY : ICMPV6_TYPE.ECHO_REPLY)) {
      c.drop(c.ix.icmpBadReply);
      continue;
    }
    const seq = (area[m + 6] << 8) | area[m + 7];
    if (c.isPasta && seq === c.lastSeq[f]) {
      c.drop(c.ix.icmpDup);
      continue;
    }
    const out = c.out;
    const d = out.begin(v4, len);
    if (d < 0) {
      c.drop(c.ix.ringFull);
      continue;
    }
    c.lastSeq[f] = seq;
    const u8 = out.u8;
    u8.set(area.subarray(m, m + len), d);
    wr16(u8, d + 2, 0);
    wr16(u8, d + 4, id);
    const ck = v4
      ? finish(csum(u8, d, len))
      : l4Checksum6(t.keys, ko + FLOW_KEY.OUR_ADDR, t.keys, ko + FLOW_KEY.EP_ADDR, proto, u8, d, len);
    wr16(u8, d + 2, ck);
    out.finish(t.keys, ko + FLOW_KEY.OUR_ADDR, t.keys, ko + FLOW_KEY.EP_ADDR, proto, len);
    c.stats.v[c.ix.pingReplies]++;
    if (log.traceOn) log.trace(`Flow ${f} (ping): reply seq ${seq}, ${len} bytes`);
  }
}

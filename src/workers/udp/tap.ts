/**
 * Guest → socket: UDP datagrams and echo requests from tap-RX's ring
 * (SPEC.md §5.3, §1.3, §6).
 *
 * Theory of operation
 * - tap-RX hands over records of kind UDP4/UDP6/ICMP4/ICMP6 with the L3
 *   and L4 offsets in meta1 and the L4 length (from the IP header, padding
 *   excluded) in meta2; IP-level checks (lengths, fragments, loopback) are
 *   done there. They come in batches of one kind and 4-tuple, the shape
 *   the TCP worker takes too (l4/tapIn.ts), whose addresses are read once.
 *   Checks here, each a counted drop:
 *   - L4 shorter than its 8-byte header → 'truncated';
 *   - UDP length field < 8 or beyond the IP payload → 'badLength' (a field
 *     shorter than the payload is honoured: trailing bytes are ignored, as
 *     the kernel does);
 *   - UDP over IPv6 with checksum 0 → 'zeroChecksum' (RFC 8200 §8.1);
 *     other checksums are not verified (SPEC §1.3);
 *   - port 0 → 'zeroPort'; a source that is not unicast, or an unspecified
 *     destination → 'badAddr'.
 * - The flow is looked up by the guest's 4-tuple (TAP side), and made if
 *   missing (flow.ts). Consecutive datagrams for the same flow side are
 *   batched: their payloads stay in the input ring (released only after
 *   the input batch is handled and every payload of it sent) and leave with one
 *   sendmmsg(MSG_NOSIGNAL), with explicit destinations when the socket is a
 *   duplicated listener.
 *   Zero-length datagrams are forwarded.
 * - A datagram the kernel refuses is counted ('sendErrors') and skipped;
 *   the rest of the batch is still sent. EAGAIN (socket buffer full) drops
 *   the rest of the batch.
 */
import { UdpCore, SOCK_F, IPPROTO_UDP, MAX_BATCH } from './core';
import { udpFlowFromTap } from './flow';
import { icmpFromTap } from './icmp';
import { PIF, FLOW_KEY } from '../../shared/flow/table';
import { inanyIsUnicast, inanyIsUnspecified } from '../../shared/flow/inany';
import { FRAME_KIND } from '../../shared/frameKinds';
import { GuestBatch, GUEST_BATCH_MAX, nextGuestBatch } from '../l4/tapIn';
import { sockaddrFrom, SOCKADDR_LEN } from '../../shared/sockaddr';
import { MSG_NOSIGNAL } from '../../shared/linux';
import { E, errnoName } from '../../shared/native';
import { log } from '../../shared/log';

/** Datagrams gathered for one sendmmsg(). */
export class SendBatch {
  flow = -1;
  side = -1;
  n = 0;
  readonly offs = new Int32Array(MAX_BATCH);
  readonly lens = new Int32Array(MAX_BATCH);
  readonly addrs = new Uint8Array(MAX_BATCH * SOCKADDR_LEN);
}

/**
 * Sends datagrams [0, n) of (offs, lens) in u8 on fd, with addrs when given;
 * skips (and counts) those the kernel refuses. Returns how many were sent.
 */
export function sendAll(c: UdpCore, fd: number, u8: Uint8Array, offs: Int32Array, lens: Int32Array, n: number,
  addrs: Uint8Array | null): number {
  let sent = 0;
  let ok = 0;
  let retried = -1;
  while (sent < n) {
    const r = sent === 0
      ? c.sys.sendmmsg(fd, u8, offs, lens, n, addrs, MSG_NOSIGNAL)
      : c.sys.sendmmsg(fd, u8, offs.subarray(sent), lens.subarray(sent), n - sent,
        addrs ? addrs.subarray(sent * SOCKADDR_LEN) : null, MSG_NOSIGNAL);
    if (r > 0) {
      sent += r;
      ok += r;
      continue;
    }
    if (r === -E.EAGAIN) {
      for (; sent < n; sent++) c.drop(c.ix.sendErrors);
      break;
    }
    // a pending error (e.g. ECONNREFUSED from an earlier ICMP) is reported
    // once instead of sending: try the same datagram again, once
    if (retried !== sent) {
      retried = sent;
      continue;
    }
    if (log.debugOn) log.debug(`UDP: send on fd ${fd}: ${errnoName(r)}`);
    c.drop(c.ix.sendErrors);
    sent++;
  }
  return ok;
}

/**
 * Sends a batch whose payloads are in u8, on the socket of its flow side,
 * and adds what left to stats counter `counter`.
 */
export function flushBatch(c: UdpCore, b: SendBatch, u8: Uint8Array, counter: number): void {
  const n = b.n;
  if (n === 0) return;
  b.n = 0;
  const i = b.flow * 2 + b.side;
  const fd = c.sock[i];
  if (fd < 0) {
    for (let k = 0; k < n; k++) c.drop(c.ix.sendErrors);
    return;
  }
  let addrs: Uint8Array | null = null;
  if (c.sockFlags[i] & SOCK_F.NEEDS_ADDR) {
    const t = c.table;
    const ko = t.keyOff(b.flow, b.side);
    const len = sockaddrFrom(b.addrs, 0, t.keys, ko + FLOW_KEY.EP_ADDR, t.epPort(b.flow, b.side));
    for (let k = 1; k < n; k++) b.addrs.copyWithin(k * SOCKADDR_LEN, 0, len);
    addrs = b.addrs;
  }
  c.stats.v[counter] += sendAll(c, fd, u8, b.offs, b.lens, n, addrs);
}

/**
 * Sends the batch gathered from the input ring, then hands the space of
 * every record consumed so far back to tap-RX (their payloads are sent).
 */
export function flushTapBatch(c: UdpCore, b: SendBatch): void {
  flushBatch(c, b, c.input.u8, c.ix.toSock);
  c.releaseInput();
}

/**
 * Drains up to `budget` records from the input ring, in batches of one
 * kind and 4-tuple (l4/tapIn.ts). Returns how many were handled. Input
 * space goes back to tap-RX after each batch, once its payloads are sent.
 */
export function tapHandler(c: UdpCore, b: SendBatch, now: number, budget: number): number {
  const inb = c.tapBatch;
  let n = 0;
  while (n < budget) {
    const k = nextGuestBatch(c.input, inb, Math.min(GUEST_BATCH_MAX, budget - n));
    if (k === 0) break;
    n += k;
    c.stats.v[c.ix.frames] += k;
    const kind = inb.kind;
    if (kind === FRAME_KIND.UDP4 || kind === FRAME_KIND.UDP6) {
      for (let i = 0; i < k; i++) udpFromTap(c, b, inb, inb.off[i], inb.len[i], now);
    } else if (kind === FRAME_KIND.ICMP4 || kind === FRAME_KIND.ICMP6) {
      flushBatch(c, b, c.input.u8, c.ix.toSock);
      for (let i = 0; i < k; i++) icmpFromTap(c, inb, inb.off[i], inb.len[i], now);
    } else {
      // out-of-bounds offsets, or not a kind tap-RX sends here
      for (let i = 0; i < k; i++) c.drop(c.ix.truncated);
    }
    // nothing of this batch is referenced any more once b is sent
    flushTapBatch(c, b);
  }
  return n;
}

/**
 * Reads the batch's source and destination into c.a16 / c.b16 (through
 * the IP views, once per batch). False (counted as badAddr) unless the
 * source is unicast and the destination specified.
 */
export function guestAddrs(c: UdpCore, inb: GuestBatch): boolean {
  if (!inb.addresses(c.a16, 0, c.b16, 0)) {
    c.drop(c.ix.truncated);
    return false;
  }
  if (!inanyIsUnicast(c.a16, 0) || inanyIsUnspecified(c.b16, 0)) {
    c.drop(c.ix.badAddr);
    return false;
  }
  return true;
}

function udpFromTap(c: UdpCore, b: SendBatch, inb: GuestBatch, l4: number, l4Len: number, now: number): void {
  const u8 = c.input.u8;
  if (l4Len < 8) {
    c.drop(c.ix.truncated);
    return;
  }
  const ulen = (u8[l4 + 4] << 8) | u8[l4 + 5];
  if (ulen < 8 || ulen > l4Len) {
    c.drop(c.ix.badLength);
    return;
  }
  if (!inb.v4 && u8[l4 + 6] === 0 && u8[l4 + 7] === 0) {
    c.drop(c.ix.zeroChecksum);
    return;
  }
  const sport = (u8[l4] << 8) | u8[l4 + 1];
  const dport = (u8[l4 + 2] << 8) | u8[l4 + 3];
  if (sport === 0 || dport === 0) {
    c.drop(c.ix.zeroPort);
    return;
  }
  if (!guestAddrs(c, inb)) return;
  const src = c.a16;
  const dst = c.b16;
  let ref = c.table.lookup(IPPROTO_UDP, PIF.TAP, dst, 0, dport, src, 0, sport);
  if (ref < 0) {
    ref = udpFlowFromTap(c, src, sport, dst, dport, now);
    if (ref < 0) return;
  }
  const f = ref >> 1;
  const other = (ref & 1) ^ 1;
  c.lastMs[f] = now;
  c.rxBytes[ref] += ulen - 8;
  c.stats.v[c.ix.bytesFromTap] += ulen - 8;
  // a full batch, or another flow: send what is gathered (its records stay ours until released)
  if (b.n && (b.flow !== f || b.side !== other || b.n === MAX_BATCH)) flushBatch(c, b, u8, c.ix.toSock);
  b.flow = f;
  b.side = other;
  b.offs[b.n] = l4 + 8;
  b.lens[b.n] = ulen - 8;
  b.n++;
}

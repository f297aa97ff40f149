/**
 * Frames from an L4 worker to the guest: records in the worker's ring
 * towards tap-TX, each `[virtio-net header][Ethernet][IPv4|IPv6][L4]`.
 *
 * Theory of operation
 * - The L4 code reserves room (`begin`), writes its L4 header and payload
 *   at the returned offset — payloads are received from sockets straight
 *   there, so a byte is copied only kernel → ring → kernel — and then
 *   `finish` writes the lower headers (SPEC §1.4: destination = the
 *   guest's current MAC, source = our MAC, IPv4 TTL 255 and ID 0 with a
 *   correct header checksum, IPv6 hop limit 255 with the given flow label)
 *   and ends the record. For batches (TCP peeks several segments with one
 *   recvmsg), `writeHeaders` does the same on a record placed by the caller.
 * - `flush` publishes once per batch and wakes tap-TX only if it sleeps.
 * - A full ring is back-pressure: `begin` returns -1 and the caller keeps
 *   its data in the socket (TCP) or counts a drop (UDP).
 */
import { FrameRing } from '../../shared/ring/frameRing';
import { Waker } from '../../shared/ring/waker';
import type { RingOut } from '../../shared/messages';
import type { GuestState } from '../../shared/guestState';
import { FRAME_KIND } from '../../shared/frameKinds';
import { inanyIs4 } from '../../shared/flow/inany';
import { pseudo4, pseudo6 } from '../../shared/wire/checksum';
import { writeEthHeader, ETHERTYPE, ETH_HEADER_LEN } from '../../shared/wire/ethernet';
import { writeIpv4Header, IPV4_HEADER_LEN } from '../../shared/wire/ipv4';
import { writeIpv6Header, IPV6_HEADER_LEN } from '../../shared/wire/ipv6';
import { TxGate } from '../../shared/txGate';
import { PcapWriter } from '../../shared/pcapWriter';
import { native } from '../../shared/native';
import { REC, REC_KIND } from '../../shared/ring/layout';
import { StreamWriter } from '../streamWriter';

/** Most frames written directly per flush; larger batches go through tap-TX. */
const DIRECT_MAX = 128;

/** The direct-write path of one ring (txGate.ts): only while tap-TX holds nothing of ours. */
class Direct {
  readonly gate: TxGate;
  readonly stream: StreamWriter | null;
  readonly pcap: PcapWriter | null;
  readonly offs = new Int32Array(DIRECT_MAX);
  readonly lens = new Int32Array(DIRECT_MAX);
  readonly hdrs = new Int32Array(DIRECT_MAX);
  /** Frames written directly (statistics). */
  frames = 0;
  constructor(readonly input: number, gate: SharedArrayBuffer, stream: boolean, pcapFd: number) {
    this.gate = new TxGate(gate);
    this.stream = stream ? new StreamWriter() : null;
    this.pcap = pcapFd >= 0 ? new PcapWriter(pcapFd) : null;
  }
}

/** Bytes before the L4 header in a record's data: vnet + Ethernet + IP. */
export function l4Offset(vnetLen: number, v4: boolean): number {
  return vnetLen + ETH_HEADER_LEN + (v4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN);
}

export class TapOut {
  readonly ring: FrameRing;
  readonly u8: Uint8Array;
  private readonly consumer: Waker;
  private readonly ourMac: Uint8Array;
  /** Frames ended since the last flush(). */
  protected dirty = false;
  private cur = -1;
  private curV4 = true;
  private readonly direct: Direct | null;

  constructor(o: RingOut, readonly vnetLen: number, readonly guest: GuestState, ourMac: string) {
    this.ring = new FrameRing(o.ring);
    this.u8 = this.ring.u8;
    this.consumer = new Waker(o.consumer);
    this.ourMac = Uint8Array.from(ourMac.split(':').map((x) => parseInt(x, 16)));
    const d = o.direct;
    this.direct = d ? new Direct(d.input, d.gate, d.backend === 'stream', d.pcapFd) : null;
  }

  /** Frames this ring's producer wrote to the guest itself. */
  get directFrames(): number {
    return this.direct ? this.direct.frames : 0;
  }

  /**
   * Reserves a frame with room for l4Max bytes of L4 header and payload.
   * Returns the offset in `u8` where the L4 header goes, or -1 (ring full).
   */
  begin(v4: boolean, l4Max: number): number {
    const off = l4Offset(this.vnetLen, v4);
    const d = this.ring.beginWrite(off + l4Max);
    if (d < 0) return -1;
    this.cur = d;
    this.curV4 = v4;
    return d + off;
  }

  /** Completes the frame reserved by begin() with l4Len bytes of L4 data. */
  finish(src: Uint8Array, sOff: number, dst: Uint8Array, dOff: number, proto: number, l4Len: number,
    flowLabel = 0): void {
    const d = this.cur;
    this.writeHeaders(d, this.curV4, src, sOff, dst, dOff, proto, l4Len, flowLabel);
    this.ring.endWrite(l4Offset(this.vnetLen, this.curV4) + l4Len, FRAME_KIND.TO_GUEST);
    this.dirty = true;
    this.cur = -1;
  }

  /**
   * Writes virtio-net (zeroed), Ethernet and IP headers for a record whose
   * data starts at d. The caller ends the record with
   * ring.endWrite(l4Offset(vnetLen, v4) + l4Len, FRAME_KIND.TO_GUEST) and
   * calls markDirty().
   */
  writeHeaders(d: number, v4: boolean, src: Uint8Array, sOff: number, dst: Uint8Array, dOff: number,
    proto: number, l4Len: number, flowLabel = 0): void {
    const u8 = this.u8;
    if (this.vnetLen) u8.fill(0, d, d + this.vnetLen);
    const e = d + this.vnetLen;
    writeEthHeader(u8, e, this.guest.mac, 0, this.ourMac, 0, v4 ? ETHERTYPE.IPV4 : ETHERTYPE.IPV6);
    const ip = e + ETH_HEADER_LEN;
    if (v4) writeIpv4Header(u8, ip, l4Len, proto, src, sOff + 12, dst, dOff + 12);
    else writeIpv6Header(u8, ip, l4Len, proto, flowLabel, src, sOff, dst, dOff);
  }

  /**
   * Pseudo-header checksum accumulator for an L4 segment between src and
   * dst (16-byte inany addresses).
   */
  static pseudoSum(src: Uint8Array, sOff: number, dst: Uint8Array, dOff: number, proto: number, l4Len: number): number {
    return inanyIs4(src, sOff)
      ? pseudo4(src, sOff + 12, dst, dOff + 12, proto, l4Len)
      : pseudo6(src, sOff, dst, dOff, proto, l4Len);
  }

  markDirty(): void {
    this.dirty = true;
  }

  /**
   * Hands what was written to the guest: directly, when tap-TX holds
   * nothing of this ring and the writer gate is free (no thread hand-off),
   * else by publishing it and waking tap-TX if it sleeps.
   */
  flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const d = this.direct;
    if (d && this.cur < 0 && this.ring.consumerCaughtUp() && d.gate.tryLock()) {
      let done = false;
      try {
        done = this.writeDirect(d);
      } finally {
        d.gate.unlock();
      }
      if (done) return;
    }
    this.ring.publish();
    this.consumer.wake();
  }

  /**
   * Writes the unpublished frames to the guest (the gate is held). Returns
   * true if all left (their records are rolled back); otherwise what left
   * becomes SKIP records, a frame cut short on passt's stream is marked for
   * tap-TX to complete first, and the caller publishes the rest.
   */
  private writeDirect(d: Direct): boolean {
    const fd = d.gate.fd;
    if (fd < 0 || d.gate.partial >= 0) return false;
    const n = this.ring.unpublished(d.offs, d.lens, d.hdrs, DIRECT_MAX);
    if (n <= 0) return n === 0;
    const u8 = this.u8;
    let sent: number;
    if (d.stream) {
      d.stream.reset();
      sent = d.stream.send(fd, u8, d.offs, d.lens, 0, n);
    } else {
      sent = native.writeFrames(fd, u8, d.offs, d.lens, n);
    }
    if (sent < 0) sent = 0; // errors, EAGAIN included: tap-TX deals with them
    const vnet = this.vnetLen;
    for (let i = 0; i < sent; i++) d.pcap?.write(u8, d.offs[i] + vnet, d.lens[i] - vnet);
    d.frames += sent;
    const partial = d.stream ? d.stream.partialBytes : 0;
    if (sent === n && partial === 0) {
      this.ring.rollback();
      return true;
    }
    const i32 = this.ring.i32;
    for (let i = 0; i < sent; i++) i32[d.hdrs[i] + REC.KIND] = REC_KIND.SKIP;
    if (partial > 0) {
      // the next bytes on the stream must be the rest of this frame
      i32[d.hdrs[sent] + REC.META1] = partial;
      d.gate.partial = d.input;
    }
    return false;
  }
}

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
 * - `flush` hands the batch to the guest link (link/link.ts): it writes
 *   the frames itself where the configuration places direct writes and
 *   tap-TX holds nothing of this ring, or publishes once per batch and
 *   wakes tap-TX only if it sleeps. Framing, pcap and the guest's
 *   descriptor are the link's business, never this file's.
 * - A full ring is back-pressure: `begin` returns -1 and the caller keeps
 *   its data in the socket (TCP) or counts a drop (UDP).
 */
import { FrameRing } from '../../shared/ring/frameRing';
import { Waker } from '../../shared/ring/waker';
import type { ControlMsg, RingOut } from '../../shared/messages';
import type { GuestState } from '../../shared/guestState';
import { FRAME_KIND } from '../../shared/frameKinds';
import { inanyIs4 } from '../../shared/flow/inany';
import { pseudo4, pseudo6 } from '../../shared/wire/checksum';
import { writeEthHeader, ETHERTYPE, ETH_HEADER_LEN } from '../../shared/wire/ethernet';
import { writeIpv4Header, IPV4_HEADER_LEN } from '../../shared/wire/ipv4';
import { writeIpv6Header, IPV6_HEADER_LEN } from '../../shared/wire/ipv6';
import { DirectWriter } from '../link/directWriter';
import type { VirtioNetRx } from '../link/vhostUser/net';

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
  /** Direct writes to the guest, where the configuration places them. */
  private readonly direct: DirectWriter | null;

  constructor(o: RingOut, readonly vnetLen: number, readonly guest: GuestState, ourMac: string) {
    this.ring = new FrameRing(o.ring);
    this.u8 = this.ring.u8;
    this.consumer = new Waker(o.consumer);
    this.ourMac = Uint8Array.from(ourMac.split(':').map((x) => parseInt(x, 16)));
    this.direct = o.direct ? new DirectWriter(o.direct, this.ring, vnetLen, this.consumer) : null;
  }

  /** A 'guestLink' control message (vhost-user): the link for direct writes. */
  configureLink(msg: ControlMsg): void {
    this.direct?.configure(msg);
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

  /**
   * The guest's receive queue for frames built in place (vhost-user: see
   * DirectWriter.placeLock()), when no frame of this ring is in progress or
   * unpublished; null otherwise. End with placeDone().
   */
  placeLock(): VirtioNetRx | null {
    return this.direct && !this.dirty && this.cur < 0 ? this.direct.placeLock() : null;
  }

  placeDone(): void {
    this.direct?.placeDone();
  }

  markDirty(): void {
    this.dirty = true;
  }

  /**
   * Hands what was written to the guest link: written by this thread when
   * the configuration lets it and tap-TX holds nothing of this ring
   * (link/directWriter.ts), else published for tap-TX, which is woken if
   * it sleeps.
   */
  flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    if (this.direct && this.cur < 0 && this.direct.tryWrite()) return;
    this.ring.publish();
    this.consumer.wake();
  }
}

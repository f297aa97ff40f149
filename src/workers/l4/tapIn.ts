/**
 * Frames from the guest into an L4 worker: the records tap-RX leaves in
 * the worker's input ring, taken in batches of one shape by the TCP and
 * the UDP worker alike.
 *
 * Theory of operation
 * - tap-RX hands over records of kinds TCP4/TCP6 (TCP worker) and
 *   UDP4/UDP6/ICMP4/ICMP6 (UDP worker), with the IP and L4 header offsets
 *   in meta1 and the L4 length (from the IP header, padding excluded) in
 *   meta2 (frameKinds.ts).
 * - `nextGuestBatch` takes consecutive records of one kind whose frames
 *   share their addresses and their first four L4 bytes (the ports of TCP
 *   and UDP; ICMP echo requests seldom group), up to a limit: one flow's
 *   burst, handled at once (STYLE.md guideline 9). It consumes them; the
 *   frames stay valid in the ring until the worker releases it, which it
 *   does only once nothing of the batch is still referenced (TCP after the
 *   state machine ran, UDP once the payloads are sent).
 * - A record whose offsets do not lie inside it (never from tap-RX) comes
 *   alone, as a batch of kind BAD_RECORD, for the worker to count.
 * - The batch's addresses are read once, through the IPv4/IPv6 views
 *   (`addresses()`), as 16-byte inany addresses.
 */
import type { FrameRing } from '../../shared/ring/frameRing';
import { FRAME_KIND, l3OffOf, l4OffOf } from '../../shared/frameKinds';
import { Ipv4View, IPV4_FIELD } from '../../shared/wire/ipv4';
import { Ipv6View, IPV6_FIELD } from '../../shared/wire/ipv6';
import { IP4_LEN, IP6_LEN } from '../../shared/wire/bytes';
import { inanyCopy, inanyFrom4 } from '../../shared/flow/inany';

/** Most frames in one batch. */
export const GUEST_BATCH_MAX = 256;

/** Kind of a batch holding one record whose offsets are out of bounds. */
export const BAD_RECORD = -1;

/** L4 bytes that must match for two frames to share a batch (the ports). */
const L4_KEY = 4;

/** Consecutive guest frames of one kind and one 4-tuple, still in the input ring. */
export class GuestBatch {
  /** Record kind of every frame (FRAME_KIND), or BAD_RECORD. */
  kind = BAD_RECORD;
  v4 = true;
  n = 0;
  /** IP header offset of the first frame in `u8` (the batch's addresses). */
  l3 = 0;
  /** L4 header offsets in `u8`. */
  readonly off = new Int32Array(GUEST_BATCH_MAX);
  /** L4 lengths (header and payload). */
  readonly len = new Int32Array(GUEST_BATCH_MAX);
  private readonly ip4: Ipv4View;
  private readonly ip6: Ipv6View;
  /** The addresses, once read: -1 not yet, 0 unreadable, 1 in `addrs`. */
  private addrState = -1;
  private readonly addrs = new Uint8Array(32);

  /** @param u8 the input ring's bytes */
  constructor(readonly u8: Uint8Array) {
    this.ip4 = new Ipv4View(u8);
    this.ip6 = new Ipv6View(u8);
  }

  /** Starts over with frames at l3 (callers filling a batch by hand, e.g. tests, call this first). */
  begin(kind: number, v4: boolean, l3: number): void {
    this.kind = kind;
    this.v4 = v4;
    this.l3 = l3;
    this.n = 0;
    this.addrState = -1;
  }

  /**
   * The batch's source (the guest's side) and destination addresses, read
   * through the IP header's view, into src[sOff] and dst[dOff] as inany
   * addresses. False if the first frame's IP header does not validate.
   */
  addresses(src: Uint8Array, sOff: number, dst: Uint8Array, dOff: number): boolean {
    if (this.addrState < 0) this.readAddresses();
    if (this.addrState === 0) return false;
    inanyCopy(src, sOff, this.addrs, 0);
    inanyCopy(dst, dOff, this.addrs, 16);
    return true;
  }

  private readAddresses(): void {
    const ipLen = this.off[0] + this.len[0] - this.l3;
    const u8 = this.u8;
    this.addrState = 0;
    if (this.v4) {
      const ip = this.ip4;
      if (!ip.reset(this.l3, ipLen)) return;
      inanyFrom4(this.addrs, 0, u8, ip.srcOff);
      inanyFrom4(this.addrs, 16, u8, ip.dstOff);
    } else {
      const ip = this.ip6;
      if (!ip.reset(this.l3, ipLen)) return;
      inanyCopy(this.addrs, 0, u8, ip.srcOff);
      inanyCopy(this.addrs, 16, u8, ip.dstOff);
    }
    this.addrState = 1;
  }
}

/** IPv4 or IPv6 kinds of the L4 workers' input. */
function isV4Kind(kind: number): boolean {
  return kind === FRAME_KIND.TCP4 || kind === FRAME_KIND.UDP4 || kind === FRAME_KIND.ICMP4;
}

/**
 * Takes the next batch from `ring` into b: at most `max` consecutive
 * records of one kind and one 4-tuple (consumed, not released). Returns
 * b.n, 0 when the ring holds nothing.
 */
export function nextGuestBatch(ring: FrameRing, b: GuestBatch, max: number): number {
  b.n = 0;
  const u8 = ring.u8;
  for (;;) {
    const d = ring.peek();
    if (d < 0) break;
    const kind = ring.recKind;
    const m1 = ring.recMeta1;
    const l3 = d + l3OffOf(m1);
    const l4 = d + l4OffOf(m1);
    const len = ring.recMeta2;
    if (l4 < l3 || l4 + len > d + ring.recLen) {
      if (b.n) break;
      ring.consume();
      b.begin(BAD_RECORD, true, l3);
      b.n = 1;
      break;
    }
    if (b.n) {
      if (b.n === max || kind !== b.kind || !sameTuple(u8, b, l3, l4, len)) break;
    } else {
      b.begin(kind, isV4Kind(kind), l3);
    }
    ring.consume();
    b.off[b.n] = l4;
    b.len[b.n] = len;
    b.n++;
  }
  return b.n;
}

/** The frame at l3/l4 has the batch's addresses and first L4 bytes. */
function sameTuple(u8: Uint8Array, b: GuestBatch, l3: number, l4: number, len: number): boolean {
  if (len < L4_KEY || b.len[0] < L4_KEY) return false;
  const a = b.l3 + (b.v4 ? IPV4_FIELD.SRC : IPV6_FIELD.SRC);
  const c = l3 + (b.v4 ? IPV4_FIELD.SRC : IPV6_FIELD.SRC);
  const n = 2 * (b.v4 ? IP4_LEN : IP6_LEN); // source and destination, back to back
  for (let i = 0; i < n; i++) if (u8[a + i] !== u8[c + i]) return false;
  const p = b.off[0];
  for (let i = 0; i < L4_KEY; i++) if (u8[p + i] !== u8[l4 + i]) return false;
  return true;
}

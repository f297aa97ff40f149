/**
 * Record kinds on the pipeline's rings, and how a record's meta fields
 * describe the frame inside it. Every record's data is
 * `[virtio-net header (vnetLen bytes, may be 0)][Ethernet frame]`.
 */

export const FRAME_KIND = {
  /** A complete frame for the guest (→ tap-TX). meta1/meta2: scratch for tap-TX. */
  TO_GUEST: 0,
  /** Guest frames for the L4 workers; meta1 = l3Off << 16 | l4Off, meta2 = L4 length. */
  TCP4: 1,
  TCP6: 2,
  UDP4: 3,
  UDP6: 4,
  ICMP4: 5,
  ICMP6: 6,
} as const;

export type FrameKind = (typeof FRAME_KIND)[keyof typeof FRAME_KIND];

/** Largest Ethernet frame we accept or produce. */
export const MAX_FRAME = 65535;

export function packOffsets(l3Off: number, l4Off: number): number {
  return ((l3Off << 16) | l4Off) >>> 0;
}

export function l3OffOf(meta1: number): number {
  return meta1 >>> 16;
}

export function l4OffOf(meta1: number): number {
  return meta1 & 0xffff;
}

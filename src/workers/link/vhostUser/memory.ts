/**
 * The guest's memory as a vhost-user back end sees it: the regions of the
 * last VHOST_USER_SET_MEM_TABLE, each a view over a mapping the addon made
 * (native.mapShared/mapView), addressed by guest-physical address (the
 * descriptors) or by qemu's own virtual address (the vring addresses of
 * VHOST_USER_SET_VRING_ADDR).
 *
 * Every address and length here comes from the guest or from qemu, so
 * nothing is trusted: a range is found only when it lies inside a region,
 * computed on doubles (exact below 2^53; anything at or above is no
 * region's), and every byte access afterwards goes through the region's
 * Uint8Array, which cannot reach past the region.
 */

/** One memory region (vhost_user_memory_region), with its bytes. */
export interface MemRegion {
  /** Guest-physical address of the first byte. */
  readonly gpa: number;
  readonly size: number;
  /** qemu's virtual address of the first byte (userspace_addr). */
  readonly qva: number;
  /** Offset of the region in its mapping (mmap_offset). */
  readonly mmapOffset: number;
  /** The region's bytes: exactly [gpa, gpa + size). */
  readonly u8: Uint8Array;
  /**
   * End of the qemu region this one is a piece of (qva + size unless a
   * region larger than a typed array was cut: the pieces share u8.buffer).
   */
  readonly qvaEnd?: number;
}

/** Largest address handled exactly; a 64-bit field at or above it is no region's. */
export const ADDR_LIMIT = 2 ** 53;

/** Reads a little-endian u64 address field as a double (ADDR_LIMIT or more: out of range). */
export function readAddr(dv: DataView, off: number): number {
  const lo = dv.getUint32(off, true);
  const hi = dv.getUint32(off + 4, true);
  return hi >= 0x200000 ? ADDR_LIMIT : hi * 0x100000000 + lo;
}

export class GuestMemory {
  /** Each region's bytes, by region index (for native.vuCopy). */
  readonly u8s: readonly Uint8Array[];

  constructor(readonly regions: readonly MemRegion[]) {
    this.u8s = regions.map((r) => r.u8);
  }

  /** Region index holding guest-physical `gpa` (one byte), or -1. */
  regionOf(gpa: number): number {
    const rs = this.regions;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i];
      if (gpa >= r.gpa && gpa < r.gpa + r.size) return i;
    }
    return -1;
  }

  /** Region index holding all of [gpa, gpa + len) (len > 0), or -1. */
  regionFor(gpa: number, len: number): number {
    const i = this.regionOf(gpa);
    if (i < 0) return -1;
    const r = this.regions[i];
    return gpa + len <= r.gpa + r.size ? i : -1;
  }

  /**
   * Where qemu's virtual range [qva, qva + len) is: region index and offset
   * in it (the range may run on past the piece into the rest of its qemu
   * region, in the same buffer), or null when it is not all inside one
   * qemu region.
   */
  qvaRange(qva: number, len: number): { region: number; off: number } | null {
    const rs = this.regions;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i];
      if (qva >= r.qva && qva < r.qva + r.size && qva + len <= (r.qvaEnd ?? r.qva + r.size))
        return { region: i, off: qva - r.qva };
    }
    return null;
  }
}

/**
 * What tap-RX learns about the guest from its frames (SPEC.md §2.4, §2.5),
 * shared with the L4 workers that build frames towards it: the guest's MAC
 * and the "seen" addresses used as destinations. One writer (tap-RX), any
 * number of readers; fields change rarely, and a reader racing a change
 * uses either the old or the new value of a field, both valid.
 */

const F = {
  MAC: 0, // 6 bytes
  ADDR4_SEEN: 8, // 4
  ADDR6_SEEN: 12, // 16
  ADDR6_LL_SEEN: 28, // 16
  FLAGS: 44, // int32: bit 0 addr6 seen, bit 1 link-local seen
  VERSION: 48, // int32, bumped on every change
} as const;
export const GUEST_STATE_BYTES = 64;

export class GuestState {
  readonly u8: Uint8Array;
  private readonly i32: Int32Array;
  /** Views over the shared bytes (handed to the services' context). */
  readonly mac: Uint8Array;
  readonly addr4Seen: Uint8Array;
  readonly addr6Seen: Uint8Array;
  readonly addr6LlSeen: Uint8Array;

  constructor(readonly sab: SharedArrayBuffer) {
    this.u8 = new Uint8Array(sab);
    this.i32 = new Int32Array(sab);
    this.mac = this.u8.subarray(F.MAC, F.MAC + 6);
    this.addr4Seen = this.u8.subarray(F.ADDR4_SEEN, F.ADDR4_SEEN + 4);
    this.addr6Seen = this.u8.subarray(F.ADDR6_SEEN, F.ADDR6_SEEN + 16);
    this.addr6LlSeen = this.u8.subarray(F.ADDR6_LL_SEEN, F.ADDR6_LL_SEEN + 16);
  }

  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(GUEST_STATE_BYTES);
  }

  get has6Seen(): boolean {
    return (Atomics.load(this.i32, F.FLAGS >> 2) & 1) !== 0;
  }

  get hasLlSeen(): boolean {
    return (Atomics.load(this.i32, F.FLAGS >> 2) & 2) !== 0;
  }

  /** Writer: records the flags and bumps the version. */
  setFlags(has6Seen: boolean, hasLlSeen: boolean): void {
    const v = (has6Seen ? 1 : 0) | (hasLlSeen ? 2 : 0);
    if (Atomics.load(this.i32, F.FLAGS >> 2) !== v) Atomics.store(this.i32, F.FLAGS >> 2, v);
  }

  bump(): void {
    Atomics.add(this.i32, F.VERSION >> 2, 1);
  }

  get version(): number {
    return Atomics.load(this.i32, F.VERSION >> 2);
  }
}

/**
 * Memory layout of a FrameRing SharedArrayBuffer, in one place (STYLE.md
 * guideline 10). frameRing.ts explains how the fields are used.
 *
 * ```
 * byte 0      ┌──────────────────────────────────────────────┐
 *             │ line 0  HEAD      consumer position (released) │  written by the consumer
 *        64   │ line 1  TAIL      producer position (published)│  written by the producer
 *       128   │ line 2  WAITING   producer waits for space      │  set by producer, cleared by consumer
 *       192   │ line 3  DROPS     records dropped on a full ring│  Atomics.add by anyone
 *       256   │ line 4  RECORDS   user records published (mod 2^32) │ producer
 *       320   │ line 5  SPACE_WAKES  times release() asked for a wake │ consumer
 *       384   │ line 6  CAPACITY, MAGIC (constant after allocate)│
 *       448   │ line 7  SYNS_DONE  bare SYNs consumed (mod 2^32) │ consumer (tap-RX → TCP rings)
 * RING_DATA   ├──────────────────────────────────────────────┤
 *   = 512     │ data area: `capacity` bytes of records         │
 *             └──────────────────────────────────────────────┘
 * ```
 *
 * Every header field is an Int32 on its own 64-byte line, so the producer
 * and the consumer never write to the same cache line on the fast path.
 *
 * A record starts at an 8-byte aligned position of the data area:
 *
 * ```
 * +0   len    i32   bytes of data (0 allowed)
 * +4   kind   i32   >= 0: user kinds; -1 WRAP; -2 SKIP
 * +8   meta1  i32   user data
 * +12  meta2  i32   user data
 * +16  data   len bytes
 *      next record at align8(pos + 16 + len)
 * ```
 *
 * This is exactly the packing of `native.readFrames(fd, u8, off, len,
 * hdrRoom = RING_REC_HDR, ...)`: frame i lands at cursor + 16 and the cursor
 * moves to align8(cursor + 16 + len_i). Code outside the ring walks records
 * with the helpers below (recordData, recordHeader, nextRecord, recordSize,
 * recordLenFilling), never with the numbers.
 */

/** Bytes per header line (one cache line on x86_64 and most arm64). */
export const RING_LINE = 64;

/** Int32 indices of the header fields, each on its own line. */
export const RING_HDR = {
  HEAD: 0 * (RING_LINE / 4),
  TAIL: 1 * (RING_LINE / 4),
  WAITING: 2 * (RING_LINE / 4),
  DROPS: 3 * (RING_LINE / 4),
  RECORDS: 4 * (RING_LINE / 4),
  SPACE_WAKES: 5 * (RING_LINE / 4),
  CAPACITY: 6 * (RING_LINE / 4),
  MAGIC: 6 * (RING_LINE / 4) + 1,
  SYNS_DONE: 7 * (RING_LINE / 4),
} as const;

/** Bytes of header before the data area (a multiple of RING_LINE). */
export const RING_DATA = 8 * RING_LINE;

/** Value of the MAGIC field ("RING" in ASCII), checked by `new FrameRing`. */
export const RING_MAGIC = 0x52494e47;

/** Int32 offsets of the record header fields, relative to the record. */
export const REC = { LEN: 0, KIND: 1, META1: 2, META2: 3 } as const;

/** Bytes of the record header; the data follows at +RING_REC_HDR. */
export const RING_REC_HDR = 16;

/** Records start at multiples of this. */
export const RING_ALIGN = 8;

/** Record kinds reserved by the ring; user kinds are >= 0. */
export const REC_KIND = {
  /** Rest of the data area is unused; the next record is at offset 0. */
  WRAP: -1,
  /** A record the consumer passes over without seeing it. */
  SKIP: -2,
} as const;

/** Smallest data area accepted by allocate(). */
export const RING_MIN_CAPACITY = 64;

/**
 * Largest data area: positions run over [0, 2 * capacity), which must stay a
 * positive Int32.
 */
export const RING_MAX_CAPACITY = 1 << 30;

/** Rounds n up to the next multiple of RING_ALIGN. */
export function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Bytes a record of `len` data bytes takes in the data area. */
export function recordSize(len: number): number {
  return (RING_REC_HDR + len + 7) & ~7;
}

/** Offset of the data of the record whose header is at `recOff`. */
export function recordData(recOff: number): number {
  return recOff + RING_REC_HDR;
}

/** Offset of the header of the record whose data is at `dataOff`. */
export function recordHeader(dataOff: number): number {
  return dataOff - RING_REC_HDR;
}

/** Offset of the header after a record of `len` data bytes whose header is at `recOff`. */
export function nextRecord(recOff: number, len: number): number {
  return recOff + recordSize(len);
}

/**
 * Data length of a record that takes exactly `bytes` of the data area
 * (`bytes` a multiple of RING_ALIGN, at least RING_REC_HDR): how a SKIP
 * record fills a gap.
 */
export function recordLenFilling(bytes: number): number {
  return bytes - RING_REC_HDR;
}

/**
 * Bytes right before a record's data (its META2) that the ring's consumer
 * may overwrite once it consumed the record, and its producer while the
 * record is unpublished: room for passt's 4-byte length prefix, so that a
 * frame and its prefix go out as one contiguous iovec.
 */
export const REC_PREFIX_ROOM = 4;

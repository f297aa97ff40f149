/**
 * Common shape of every wire-format view (STYLE.md guideline 1).
 *
 * Theory of operation: a view wraps a byte buffer (a Uint8Array, usually over
 * a SharedArrayBuffer slab) and a DataView over the same bytes, and is
 * re-targeted at one header after another with `reset(off, len)`. `reset`
 * validates every length field of the header once and returns false for a
 * malformed one; until the next successful `reset`, every getter and setter
 * of the view stays inside [off, off+len). After a failed `reset` the view is
 * left empty (off 0, len 0) and its getters must not be used. Construct one
 * view per buffer and per header type, once, and re-use it: no allocation per
 * frame. Each subclass adds a static `check(u8, off, len)` returning a fresh
 * view or null, for code that is not on a hot path.
 *
 * Each subclass writes its own `reset` (rather than a shared one calling an
 * abstract `validate`) so that the call site stays monomorphic in V8.
 */
import { dataViewOf } from './bytes';

/** Base of every header view: buffer, DataView, and the checked range. */
export abstract class WireView {
  /** The whole buffer; fields are at u8[off + FIELD]. */
  readonly u8: Uint8Array;
  /** Same bytes as u8, same indices; used for big-endian reads. */
  readonly dv: DataView;
  /** Start of the header in u8. */
  off = 0;
  /** Bytes available from off (the header, its payload, maybe padding). */
  len = 0;

  constructor(u8: Uint8Array) {
    this.u8 = u8;
    this.dv = dataViewOf(u8);
  }

  /** Validates [off, off+len) as this header; false (and an empty view) if malformed. */
  abstract reset(off: number, len: number): boolean;

  /** Empties the view; returns false so `reset` can `return this.fail()`. */
  protected fail(): false {
    this.off = 0;
    this.len = 0;
    return false;
  }
}

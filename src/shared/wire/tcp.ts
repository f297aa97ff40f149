/**
 * TCP header (RFC 9293) and the options we read and write (RFC 9293 MSS,
 * RFC 7323 window scale and timestamps, RFC 2018 SACK-permitted).
 *
 * Theory of operation: `reset(off, len)` is given the whole segment (the L4
 * bytes from the IP layer) and checks 20 ≤ data offset × 4 ≤ len; the
 * payload is what follows the header. Options are parsed only on request
 * (`parseOptions`, needed for SYN and SYN+ACK), defensively as SPEC §4.7
 * says: the walk stops at End of Option List, NOP is one byte, and a length
 * below 2 or running past the option area aborts it; options found before the
 * abort are kept, the first occurrence of each kind wins, and a known kind
 * with the wrong length is skipped. The view reports raw values; clamping
 * (MSS default 536 and caps, window scale > 14 → 0) is the TCP layer's job.
 * Our SYN and SYN+ACK carry exactly MSS, NOP, window scale: 8 bytes, data
 * offset 7 (`writeTcpSynOptions`). Checksums are computed with checksum.ts
 * (`l4Checksum4/6`) over the whole segment.
 */
import { rangeOk } from './bytes';
import { WireView } from './view';

export const TCP_FIELD = {
  SRC_PORT: 0, DST_PORT: 2, SEQ: 4, ACK: 8, DATA_OFF: 12, FLAGS: 13, WINDOW: 14, CHECKSUM: 16, URGENT: 18,
} as const;
export const TCP_HEADER_LEN = 20;
export const TCP_MAX_HEADER_LEN = 60;

export const TCP_FLAG = {
  FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80,
} as const;

/**
 * A segment that opens a connection: SYN without ACK or RST (the TCP
 * header at u8[off, off+len) is not otherwise checked). What tap-RX
 * bounds per TCP ring and the TCP worker counts back (frameRing.ts
 * countSynsDone).
 */
export function isBareSyn(u8: Uint8Array, off: number, len: number): boolean {
  return len >= 20 && (u8[off + 13] & (TCP_FLAG.SYN | TCP_FLAG.ACK | TCP_FLAG.RST)) === TCP_FLAG.SYN;
}

export const TCP_OPT = {
  EOL: 0, NOP: 1, MSS: 2, WINDOW_SCALE: 3, SACK_PERMITTED: 4, SACK: 5, TIMESTAMP: 8,
} as const;
/** Option lengths (kind, length and value) of the options with a fixed size. */
export const TCP_OPT_LEN = { MSS: 4, WINDOW_SCALE: 3, SACK_PERMITTED: 2, TIMESTAMP: 10 } as const;
/** Bytes of options in our SYN and SYN+ACK: MSS (4), NOP (1), window scale (3). */
export const TCP_SYN_OPTIONS_LEN = 8;

/** View of a TCP segment. */
export class TcpView extends WireView {
  /** MSS option value, or -1 if absent (after parseOptions). */
  optMss = -1;
  /** Window scale shift as received (not clamped), or -1 if absent. */
  optWs = -1;
  optSackPermitted = false;
  /** Timestamp option present; then optTsVal/optTsEcr hold its values. */
  optTimestamp = false;
  optTsVal = 0;
  optTsEcr = 0;

  /** Validates 20 ≤ data offset × 4 ≤ len; clears the option results. */
  reset(off: number, len: number): boolean {
    if (!rangeOk(this.u8, off, len) || len < TCP_HEADER_LEN) return this.fail();
    const hl = (this.u8[off + TCP_FIELD.DATA_OFF] >>> 4) << 2;
    if (hl < TCP_HEADER_LEN || hl > len) return this.fail();
    this.off = off;
    this.len = len;
    this.clearOptions();
    return true;
  }

  protected fail(): false {
    this.clearOptions();
    return super.fail();
  }

  private clearOptions(): void {
    this.optMss = -1;
    this.optWs = -1;
    this.optSackPermitted = false;
    this.optTimestamp = false;
    this.optTsVal = 0;
    this.optTsEcr = 0;
  }

  /** A new view of [off, off+len), or null if malformed. */
  static check(u8: Uint8Array, off: number, len: number): TcpView | null {
    const v = new TcpView(u8);
    return v.reset(off, len) ? v : null;
  }

  get srcPort(): number { return this.dv.getUint16(this.off + TCP_FIELD.SRC_PORT); }
  get dstPort(): number { return this.dv.getUint16(this.off + TCP_FIELD.DST_PORT); }
  get seqNumber(): number { return this.dv.getUint32(this.off + TCP_FIELD.SEQ); }
  get ackNumber(): number { return this.dv.getUint32(this.off + TCP_FIELD.ACK); }
  /** Data offset in 32-bit words. */
  get dataOffset(): number { return this.u8[this.off + TCP_FIELD.DATA_OFF] >>> 4; }
  /** Header length in bytes (data offset × 4). */
  get headerLen(): number { return (this.u8[this.off + TCP_FIELD.DATA_OFF] >>> 4) << 2; }
  /** Flag bits (TCP_FLAG), the low 8 bits of the control field. */
  get flags(): number { return this.u8[this.off + TCP_FIELD.FLAGS]; }
  get window(): number { return this.dv.getUint16(this.off + TCP_FIELD.WINDOW); }
  get checksum(): number { return this.dv.getUint16(this.off + TCP_FIELD.CHECKSUM); }
  get urgentPointer(): number { return this.dv.getUint16(this.off + TCP_FIELD.URGENT); }
  get optionsOff(): number { return this.off + TCP_HEADER_LEN; }
  get optionsLen(): number { return this.headerLen - TCP_HEADER_LEN; }
  get payloadOff(): number { return this.off + this.headerLen; }
  get payloadLen(): number { return this.len - this.headerLen; }

  /**
   * Walks the options into optMss/optWs/optSackPermitted/optTimestamp.
   * @returns false if the walk was aborted by a malformed option (earlier finds are kept)
   */
  parseOptions(): boolean {
    this.clearOptions();
    const u8 = this.u8;
    let p = this.off + TCP_HEADER_LEN;
    const end = this.off + this.headerLen;
    while (p < end) {
      const kind = u8[p];
      if (kind === TCP_OPT.EOL) return true;
      if (kind === TCP_OPT.NOP) { p++; continue; }
      if (p + 2 > end) return false;
      const olen = u8[p + 1];
      if (olen < 2 || p + olen > end) return false;
      switch (kind) {
        case TCP_OPT.MSS:
          if (olen === TCP_OPT_LEN.MSS && this.optMss < 0) this.optMss = (u8[p + 2] << 8) | u8[p + 3];
          break;
        case TCP_OPT.WINDOW_SCALE:
          if (olen === TCP_OPT_LEN.WINDOW_SCALE && this.optWs < 0) this.optWs = u8[p + 2];
          break;
        case TCP_OPT.SACK_PERMITTED:
          if (olen === TCP_OPT_LEN.SACK_PERMITTED) this.optSackPermitted = true;
          break;
        case TCP_OPT.TIMESTAMP:
          if (olen === TCP_OPT_LEN.TIMESTAMP && !this.optTimestamp) {
            this.optTimestamp = true;
            this.optTsVal = this.dv.getUint32(p + 2);
            this.optTsEcr = this.dv.getUint32(p + 6);
          }
          break;
        default:
          break;
      }
      p += olen;
    }
    return true;
  }

  setSrcPort(v: number): void { this.dv.setUint16(this.off + TCP_FIELD.SRC_PORT, v); }
  setDstPort(v: number): void { this.dv.setUint16(this.off + TCP_FIELD.DST_PORT, v); }
  setSeqNumber(v: number): void { this.dv.setUint32(this.off + TCP_FIELD.SEQ, v >>> 0); }
  setAckNumber(v: number): void { this.dv.setUint32(this.off + TCP_FIELD.ACK, v >>> 0); }
  /** Breaks the check if words × 4 exceeds len or is below 20: re-`reset` after. */
  setDataOffset(words: number): void {
    const p = this.off + TCP_FIELD.DATA_OFF;
    this.u8[p] = (this.u8[p] & 0x0f) | ((words & 0x0f) << 4);
  }
  setFlags(v: number): void { this.u8[this.off + TCP_FIELD.FLAGS] = v; }
  setWindow(v: number): void { this.dv.setUint16(this.off + TCP_FIELD.WINDOW, v); }
  setChecksum(v: number): void { this.dv.setUint16(this.off + TCP_FIELD.CHECKSUM, v); }
  setUrgentPointer(v: number): void { this.dv.setUint16(this.off + TCP_FIELD.URGENT, v); }
}

/**
 * Writes a TCP header (checksum 0, urgent pointer 0) with room for optLen
 * bytes of options (a multiple of 4, ≤ 40) at out[off]; returns the header length.
 */
export function writeTcpHeader(out: Uint8Array, off: number, srcPort: number, dstPort: number,
  seq: number, ack: number, flags: number, window: number, optLen = 0): number {
  const hl = TCP_HEADER_LEN + optLen;
  out[off] = srcPort >>> 8; out[off + 1] = srcPort;
  out[off + 2] = dstPort >>> 8; out[off + 3] = dstPort;
  out[off + 4] = seq >>> 24; out[off + 5] = seq >>> 16; out[off + 6] = seq >>> 8; out[off + 7] = seq;
  out[off + 8] = ack >>> 24; out[off + 9] = ack >>> 16; out[off + 10] = ack >>> 8; out[off + 11] = ack;
  out[off + TCP_FIELD.DATA_OFF] = (hl >>> 2) << 4;
  out[off + TCP_FIELD.FLAGS] = flags;
  out[off + 14] = window >>> 8; out[off + 15] = window;
  out[off + 16] = 0; out[off + 17] = 0;
  out[off + 18] = 0; out[off + 19] = 0;
  return hl;
}

/** Writes our SYN/SYN+ACK options MSS, NOP, window scale at out[off]; returns 8. */
export function writeTcpSynOptions(out: Uint8Array, off: number, mss: number, ws: number): number {
  out[off] = TCP_OPT.MSS;
  out[off + 1] = TCP_OPT_LEN.MSS;
  out[off + 2] = mss >>> 8;
  out[off + 3] = mss;
  out[off + 4] = TCP_OPT.NOP;
  out[off + 5] = TCP_OPT.WINDOW_SCALE;
  out[off + 6] = TCP_OPT_LEN.WINDOW_SCALE;
  out[off + 7] = ws;
  return TCP_SYN_OPTIONS_LEN;
}

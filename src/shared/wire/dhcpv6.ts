/**
 * DHCPv6 messages (RFC 8415) and the options we read or write, plus the DNS
 * options of RFC 3646.
 *
 * Theory of operation: a client/server message is msg-type (1 byte),
 * transaction-id (3 bytes), then options, each code (2), length (2), data.
 * `Dhcpv6View.reset` validates the top-level option chain once: every option
 * header and its data must fit the message. Encapsulated options (inside
 * IA_NA after its 12 fixed bytes, inside IA_TA after 4, inside IA Address after
 * 24) are walked with `Dhcpv6OptionCursor`, which reports a truncated chain
 * as `malformed`. `parseDhcpv6` collects what the server decides on (client
 * and server identifiers, the first IA_NA, counts of IA_NA/IA_TA). Relay
 * messages (12, 13) are not understood (we are the only server on the link).
 * Writers cover option headers and our DUID-LLT (RFC 8415 §11.2).
 */
import { copyBytes, MAC_LEN, rangeOk, wr16, wr32 } from './bytes';
import { WireView } from './view';

export const DHCPV6_FIELD = { MSG_TYPE: 0, XID: 1, OPTIONS: 4 } as const;
export const DHCPV6_HEADER_LEN = 4;
export const DHCPV6_OPT_HEADER_LEN = 4;
export const DHCPV6_PORT = { CLIENT: 546, SERVER: 547 } as const;

export const DHCPV6_MSG = {
  SOLICIT: 1, ADVERTISE: 2, REQUEST: 3, CONFIRM: 4, RENEW: 5, REBIND: 6, REPLY: 7,
  RELEASE: 8, DECLINE: 9, RECONFIGURE: 10, INFORMATION_REQUEST: 11,
} as const;

export const DHCPV6_OPT = {
  CLIENTID: 1, SERVERID: 2, IA_NA: 3, IA_TA: 4, IAADDR: 5, ORO: 6, STATUS_CODE: 13,
  RAPID_COMMIT: 14, DNS_SERVERS: 23, DOMAIN_LIST: 24, CLIENT_FQDN: 39,
} as const;

/** Client FQDN option 39 flags (RFC 4704 §4.1). */
export const FQDN6_FLAG = { S: 0x01, O: 0x02, N: 0x04 } as const;

/** Fixed parts before encapsulated options. */
export const DHCPV6_IA_NA_FIXED = 12;
export const DHCPV6_IA_TA_FIXED = 4;
export const DHCPV6_IAADDR_FIXED = 24;
export const DHCPV6_STATUS = { SUCCESS: 0, NO_ADDRS_AVAIL: 2, NOT_ON_LINK: 4 } as const;
/** Largest client DUID accepted (SPEC §3.5). */
export const DHCPV6_CLIENTID_MAX = 128;
export const DHCPV6_INFINITY = 0xffffffff;

export const DUID_TYPE_LLT = 1;
export const DUID_HW_ETHERNET = 1;
/** Length of a DUID-LLT for an Ethernet address. */
export const DUID_LLT_LEN = 14;

/** Iterates over a chain of DHCPv6 options in u8[off, off+len). */
export class Dhcpv6OptionCursor {
  code = 0;
  dataOff = 0;
  dataLen = 0;
  /** Set when the chain ended in a truncated option. */
  malformed = false;
  private p = 0;
  private end = 0;
  private u8: Uint8Array = new Uint8Array(0);

  /** Starts a walk over u8[off, off+len) (range must be inside u8). */
  reset(u8: Uint8Array, off: number, len: number): this {
    this.u8 = u8;
    this.p = off;
    this.end = off + len;
    this.malformed = false;
    return this;
  }

  /** Moves to the next option; false at the end or on a truncated one (then `malformed`). */
  next(): boolean {
    if (this.p >= this.end) return false;
    if (this.p + DHCPV6_OPT_HEADER_LEN > this.end) { this.malformed = true; return false; }
    const u8 = this.u8;
    const p = this.p;
    const l = (u8[p + 2] << 8) | u8[p + 3];
    if (p + DHCPV6_OPT_HEADER_LEN + l > this.end) { this.malformed = true; return false; }
    this.code = (u8[p] << 8) | u8[p + 1];
    this.dataOff = p + DHCPV6_OPT_HEADER_LEN;
    this.dataLen = l;
    this.p = this.dataOff + l;
    return true;
  }
}

const scratch = new Dhcpv6OptionCursor();

/** True if u8[off, off+len) is a complete chain of options. */
export function dhcpv6OptionsValid(u8: Uint8Array, off: number, len: number): boolean {
  const c = scratch.reset(u8, off, len);
  while (c.next());
  return !c.malformed;
}

/** View of a DHCPv6 client/server message (the UDP payload). */
export class Dhcpv6View extends WireView {
  /** Validates len ≥ 4 and a complete top-level option chain. */
  reset(off: number, len: number): boolean {
    if (!rangeOk(this.u8, off, len) || len < DHCPV6_HEADER_LEN) return this.fail();
    if (!dhcpv6OptionsValid(this.u8, off + DHCPV6_HEADER_LEN, len - DHCPV6_HEADER_LEN)) return this.fail();
    this.off = off;
    this.len = len;
    return true;
  }

  /** A new view of [off, off+len), or null if malformed. */
  static check(u8: Uint8Array, off: number, len: number): Dhcpv6View | null {
    const v = new Dhcpv6View(u8);
    return v.reset(off, len) ? v : null;
  }

  get msgType(): number { return this.u8[this.off + DHCPV6_FIELD.MSG_TYPE]; }
  /** 24-bit transaction id. */
  get xid(): number { return this.dv.getUint32(this.off) & 0xffffff; }
  get optionsOff(): number { return this.off + DHCPV6_FIELD.OPTIONS; }
  get optionsLen(): number { return this.len - DHCPV6_FIELD.OPTIONS; }
  /** A cursor over the top-level options. */
  options(c: Dhcpv6OptionCursor = new Dhcpv6OptionCursor()): Dhcpv6OptionCursor {
    return c.reset(this.u8, this.optionsOff, this.optionsLen);
  }
}

/** The top-level options the server decides on; offsets into the view's buffer, length −1 if absent. */
export interface Dhcpv6Repr {
  msgType: number;
  xid: number;
  clientIdOff: number;
  clientIdLen: number;
  serverIdOff: number;
  serverIdLen: number;
  /** First IA_NA option's data. */
  iaNaOff: number;
  iaNaLen: number;
  iaNaCount: number;
  iaTaCount: number;
  /** Flags byte of the first Client FQDN option (RFC 4704), −1 if absent or empty. */
  clientFqdnFlags: number;
}

/** Collects the top-level options of a validated message (first occurrence wins). */
export function parseDhcpv6(v: Dhcpv6View): Dhcpv6Repr {
  const r: Dhcpv6Repr = {
    msgType: v.msgType, xid: v.xid, clientIdOff: 0, clientIdLen: -1, serverIdOff: 0, serverIdLen: -1,
    iaNaOff: 0, iaNaLen: -1, iaNaCount: 0, iaTaCount: 0, clientFqdnFlags: -1,
  };
  const c = v.options(scratch);
  while (c.next()) {
    switch (c.code) {
      case DHCPV6_OPT.CLIENTID:
        if (r.clientIdLen < 0) { r.clientIdOff = c.dataOff; r.clientIdLen = c.dataLen; }
        break;
      case DHCPV6_OPT.SERVERID:
        if (r.serverIdLen < 0) { r.serverIdOff = c.dataOff; r.serverIdLen = c.dataLen; }
        break;
      case DHCPV6_OPT.IA_NA:
        if (r.iaNaLen < 0) { r.iaNaOff = c.dataOff; r.iaNaLen = c.dataLen; }
        r.iaNaCount++;
        break;
      case DHCPV6_OPT.IA_TA:
        r.iaTaCount++;
        break;
      case DHCPV6_OPT.CLIENT_FQDN:
        if (r.clientFqdnFlags < 0 && c.dataLen >= 1) r.clientFqdnFlags = v.u8[c.dataOff];
        break;
      default:
        break;
    }
  }
  return r;
}

/** Writes an option header (code, length) at out[off]; returns 4. */
export function writeDhcpv6OptionHeader(out: Uint8Array, off: number, code: number, len: number): number {
  wr16(out, off, code);
  wr16(out, off + 2, len);
  return DHCPV6_OPT_HEADER_LEN;
}

/** Writes a DUID-LLT (type 1, Ethernet, time, MAC) at out[off]; returns 14. */
export function writeDuidLlt(out: Uint8Array, off: number, time: number, mac: Uint8Array, macOff = 0): number {
  wr16(out, off, DUID_TYPE_LLT);
  wr16(out, off + 2, DUID_HW_ETHERNET);
  wr32(out, off + 4, time >>> 0);
  copyBytes(out, off + 8, mac, macOff, MAC_LEN);
  return DUID_LLT_LEN;
}

/**
 * DHCP (RFC 2131, options RFC 2132) and BOOTP (RFC 951) messages.
 *
 * Theory of operation: a message is the fixed 236-byte BOOTP header, the
 * 4-byte magic cookie and the options area; `DhcpView.reset` needs those 240
 * bytes (the cookie value itself is not checked, only echoed, SPEC §3.4).
 * `parseDhcp` walks the options into a small repr: Pad (0) is one byte, End
 * (255) stops the walk, any other option is type, length, value, and one that
 * runs past the data makes the whole message invalid (SPEC §3.4: truncated
 * options → drop). Option overload (52) of sname/file is not honoured. A
 * later occurrence of an option replaces an earlier one. Replies are built by
 * services/dhcp.ts with `writeDhcpReplyHeader` and `writeDhcpOption`; the
 * options area of a reply is at most 308 bytes (576-byte datagram, RFC 2131
 * §2) and at least 60 (the RFC 951 vendor area after the cookie).
 */
import { copyBytes, rangeOk } from './bytes';
import { WireView } from './view';

export const DHCP_FIELD = {
  OP: 0, HTYPE: 1, HLEN: 2, HOPS: 3, XID: 4, SECS: 8, FLAGS: 10,
  CIADDR: 12, YIADDR: 16, SIADDR: 20, GIADDR: 24, CHADDR: 28, SNAME: 44, FILE: 108,
  COOKIE: 236, OPTIONS: 240,
} as const;
/** BOOTP header plus magic cookie. */
export const DHCP_FIXED_LEN = 240;
export const DHCP_MAGIC_COOKIE = 0x63825363;
export const DHCP_OP = { BOOTREQUEST: 1, BOOTREPLY: 2 } as const;
export const DHCP_FLAG_BROADCAST = 0x8000;
export const DHCP_PORT = { SERVER: 67, CLIENT: 68 } as const;
/** Options area bounds of our replies (after the cookie). */
export const DHCP_OPTIONS_MIN = 60;
export const DHCP_OPTIONS_MAX = 308;

export const DHCP_MSG = {
  DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8,
} as const;

export const DHCP_OPT = {
  PAD: 0, SUBNET_MASK: 1, ROUTER: 3, DNS: 6, HOSTNAME: 12, MTU: 26, REQUESTED_IP: 50, LEASE_TIME: 51,
  OVERLOAD: 52, MSG_TYPE: 53, SERVER_ID: 54, PARAM_REQUEST: 55, RAPID_COMMIT: 80, CLIENT_FQDN: 81,
  DOMAIN_SEARCH: 119, CLASSLESS_ROUTES: 121, END: 255,
} as const;

/** Client FQDN option 81 flags (RFC 4702 §2.1) and the RCODE value servers send (§2.2: 255). */
export const FQDN4_FLAG = { S: 0x01, O: 0x02, E: 0x04, N: 0x08 } as const;
export const FQDN4_RCODE = 255;

/** View of a BOOTP/DHCP message (the UDP payload). */
export class DhcpView extends WireView {
  /** Validates len ≥ 240 (header and cookie). */
  reset(off: number, len: number): boolean {
    if (!rangeOk(this.u8, off, len) || len < DHCP_FIXED_LEN) return this.fail();
    this.off = off;
    this.len = len;
    return true;
  }

  /** A new view of [off, off+len), or null if shorter than 240 bytes. */
  static check(u8: Uint8Array, off: number, len: number): DhcpView | null {
    const v = new DhcpView(u8);
    return v.reset(off, len) ? v : null;
  }

  get op(): number { return this.u8[this.off + DHCP_FIELD.OP]; }
  get htype(): number { return this.u8[this.off + DHCP_FIELD.HTYPE]; }
  get hlen(): number { return this.u8[this.off + DHCP_FIELD.HLEN]; }
  get hops(): number { return this.u8[this.off + DHCP_FIELD.HOPS]; }
  get xid(): number { return this.dv.getUint32(this.off + DHCP_FIELD.XID); }
  get secs(): number { return this.dv.getUint16(this.off + DHCP_FIELD.SECS); }
  get flags(): number { return this.dv.getUint16(this.off + DHCP_FIELD.FLAGS); }
  get broadcast(): boolean { return (this.flags & DHCP_FLAG_BROADCAST) !== 0; }
  /** Offsets in u8 of the 4-byte address fields, chaddr (16), sname (64), file (128). */
  get ciaddrOff(): number { return this.off + DHCP_FIELD.CIADDR; }
  get yiaddrOff(): number { return this.off + DHCP_FIELD.YIADDR; }
  get siaddrOff(): number { return this.off + DHCP_FIELD.SIADDR; }
  get giaddrOff(): number { return this.off + DHCP_FIELD.GIADDR; }
  get chaddrOff(): number { return this.off + DHCP_FIELD.CHADDR; }
  get cookie(): number { return this.dv.getUint32(this.off + DHCP_FIELD.COOKIE); }
  get optionsOff(): number { return this.off + DHCP_FIELD.OPTIONS; }
  get optionsLen(): number { return this.len - DHCP_FIELD.OPTIONS; }
}

/** What the server needs from a request's options. */
export interface DhcpRepr {
  op: number;
  xid: number;
  flags: number;
  /** Option 53 value, or 0 when absent (plain BOOTP). */
  messageType: number;
  /** Option 80 present. */
  rapidCommit: boolean;
  /** Option 55 value in the view's buffer: offset and length (length −1 if absent). */
  paramRequestOff: number;
  paramRequestLen: number;
  /** Flags byte of the client's FQDN option 81 (RFC 4702 §2.1), −1 if absent or empty. */
  clientFqdnFlags: number;
}

/** Parses the options of a DHCP message; null if an option is truncated or option 53 is empty. */
export function parseDhcp(v: DhcpView): DhcpRepr | null {
  const u8 = v.u8;
  const end = v.off + v.len;
  const r: DhcpRepr = {
    op: v.op, xid: v.xid, flags: v.flags, messageType: 0, rapidCommit: false,
    paramRequestOff: 0, paramRequestLen: -1, clientFqdnFlags: -1,
  };
  let p = v.optionsOff;
  while (p < end) {
    const code = u8[p];
    if (code === DHCP_OPT.PAD) { p++; continue; }
    if (code === DHCP_OPT.END) break;
    if (p + 2 > end) return null;
    const olen = u8[p + 1];
    const d = p + 2;
    if (d + olen > end) return null;
    switch (code) {
      case DHCP_OPT.MSG_TYPE:
        if (olen < 1) return null;
        r.messageType = u8[d];
        break;
      case DHCP_OPT.RAPID_COMMIT:
        r.rapidCommit = true;
        break;
      case DHCP_OPT.PARAM_REQUEST:
        r.paramRequestOff = d;
        r.paramRequestLen = olen;
        break;
      case DHCP_OPT.CLIENT_FQDN:
        // only the flags matter to us; a short option is not a reason to drop the request
        if (olen >= 1) r.clientFqdnFlags = u8[d];
        break;
      default:
        break;
    }
    p = d + olen;
  }
  return r;
}

/**
 * Writes the 240-byte reply header at out[off] from the request at
 * req[reqOff]: op BOOTREPLY, hops 0, secs 0, yiaddr given; htype, hlen, xid,
 * flags, ciaddr, siaddr, giaddr, chaddr, sname, file and cookie echoed. Returns 240.
 */
export function writeDhcpReplyHeader(out: Uint8Array, off: number, req: Uint8Array, reqOff: number,
  yiaddr: Uint8Array, yiaddrOff: number): number {
  copyBytes(out, off, req, reqOff, DHCP_FIXED_LEN);
  out[off + DHCP_FIELD.OP] = DHCP_OP.BOOTREPLY;
  out[off + DHCP_FIELD.HOPS] = 0;
  out[off + DHCP_FIELD.SECS] = 0;
  out[off + DHCP_FIELD.SECS + 1] = 0;
  copyBytes(out, off + DHCP_FIELD.YIADDR, yiaddr, yiaddrOff, 4);
  return DHCP_FIXED_LEN;
}

/** Writes option code with data[dataOff, +dataLen) (≤ 255) at out[off]; returns 2 + dataLen. */
export function writeDhcpOption(out: Uint8Array, off: number, code: number, data: Uint8Array,
  dataOff: number, dataLen: number): number {
  out[off] = code;
  out[off + 1] = dataLen;
  copyBytes(out, off + 2, data, dataOff, dataLen);
  return 2 + dataLen;
}

/**
 * rtnetlink: reading the host's links, addresses and routes, and configuring
 * the namespace's tap interface (`--config-net`) without the `ip` command.
 *
 * Theory of operation
 * - One NETLINK_ROUTE socket per network namespace: the host's is created by
 *   the main thread (which lives in the init namespace), the namespace's by
 *   a native thread that entered it (native.nsSockets); a netlink socket
 *   operates on the namespace it was created in, whichever thread uses it.
 * - Requests are synchronous (main thread, start-up only): send one message,
 *   read until NLMSG_DONE (dumps) or the NLMSG_ERROR acknowledgement.
 * - Messages are built and parsed here, in host byte order (netlink's),
 *   addresses as raw bytes; see rtnetlink(7) and <linux/rtnetlink.h>.
 */
import { native, check } from '../shared/native';
import { AF_INET, AF_INET6, AF_NETLINK, SOCK_RAW, SOCK_CLOEXEC, NETLINK_ROUTE } from '../shared/linux';
import { ErrnoError } from '../shared/errors';

const LE = true; // netlink uses host byte order; Node runs on little-endian Linux targets

// message types
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
export const RTM_NEWLINK = 16;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_GETROUTE = 26;

// flags
const NLM_F_REQUEST = 0x1;
const NLM_F_MULTI = 0x2;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

// link attributes and flags
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
export const IFF_UP = 0x1;
export const IFF_LOOPBACK = 0x8;
export const IFF_NOARP = 0x80;

// address attributes and flags
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02;
export const IFA_F_DEPRECATED = 0x20;
export const IFA_F_TENTATIVE = 0x40;

// route attributes and values
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_MULTIPATH = 9;
const RTA_TABLE = 15;
const RTA_NH_ID = 30;
export const RT_TABLE_MAIN = 254;
export const RTN_UNICAST = 1;
export const RTPROT_BOOT = 3;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;

export interface Link {
  index: number;
  name: string;
  flags: number;
  mtu: number;
  mac: Uint8Array | null;
}

export interface Addr {
  family: number;
  index: number;
  prefixLen: number;
  flags: number;
  scope: number;
  addr: Uint8Array;
}

export interface Nexthop {
  ifindex: number;
  weight: number;
  gateway: Uint8Array | null;
}

export interface Route {
  family: number;
  dstLen: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number;
  dst: Uint8Array | null;
  gateway: Uint8Array | null;
  oif: number;
  priority: number;
  multipath: Nexthop[] | null;
  /** The route's raw attributes, for replaying it into the namespace. */
  attrs: Attr[];
}

interface Attr {
  type: number;
  data: Uint8Array;
}

/** Builds one netlink message: header, fixed family part, attributes. */
class MsgBuilder {
  private buf = new Uint8Array(4096);
  private dv = new DataView(this.buf.buffer);
  private len = 16;

  constructor(type: number, flags: number) {
    this.dv.setUint16(4, type, LE);
    this.dv.setUint16(6, flags | NLM_F_REQUEST, LE);
  }

  bytes(b: Uint8Array): this {
    this.buf.set(b, this.len);
    this.len += (b.length + 3) & ~3;
    return this;
  }

  attr(type: number, data: Uint8Array): this {
    const alen = 4 + data.length;
    this.dv.setUint16(this.len, alen, LE);
    this.dv.setUint16(this.len + 2, type, LE);
    this.buf.set(data, this.len + 4);
    this.len += (alen + 3) & ~3;
    return this;
  }

  attrU32(type: number, v: number): this {
    const d = new Uint8Array(4);
    new DataView(d.buffer).setUint32(0, v >>> 0, LE);
    return this.attr(type, d);
  }

  attrStr(type: number, s: string): this {
    const enc = Buffer.from(s + '\0', 'utf8');
    return this.attr(type, new Uint8Array(enc.buffer, enc.byteOffset, enc.length));
  }

  finish(seq: number): Uint8Array {
    this.dv.setUint32(0, this.len, LE);
    this.dv.setUint32(8, seq, LE);
    return this.buf.subarray(0, this.len);
  }
}

function parseAttrs(buf: Uint8Array, off: number, end: number): Attr[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Attr[] = [];
  while (off + 4 <= end) {
    const alen = dv.getUint16(off, LE);
    const type = dv.getUint16(off + 2, LE) & 0x3fff;
    if (alen < 4 || off + alen > end) break;
    out.push({ type, data: buf.slice(off + 4, off + alen) });
    off += (alen + 3) & ~3;
  }
  return out;
}

function attrU32(a: Attr | undefined): number {
  if (!a || a.data.length < 4) return 0;
  return new DataView(a.data.buffer, a.data.byteOffset, 4).getUint32(0, LE);
}

function ifinfomsg(family: number, index: number, flags: number, change: number): Uint8Array {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  b[0] = family;
  dv.setInt32(4, index, LE);
  dv.setUint32(8, flags >>> 0, LE);
  dv.setUint32(12, change >>> 0, LE);
  return b;
}

function ifaddrmsg(family: number, prefixLen: number, flags: number, scope: number, index: number): Uint8Array {
  const b = new Uint8Array(8);
  b[0] = family;
  b[1] = prefixLen;
  b[2] = flags & 0xff;
  b[3] = scope;
  new DataView(b.buffer).setUint32(4, index, LE);
  return b;
}

function rtmsg(r: Partial<Route> & { family: number }): Uint8Array {
  const b = new Uint8Array(12);
  b[0] = r.family;
  b[1] = r.dstLen ?? 0;
  b[4] = r.table && r.table < 256 ? r.table : RT_TABLE_MAIN;
  b[5] = r.protocol ?? RTPROT_BOOT;
  b[6] = r.scope ?? RT_SCOPE_UNIVERSE;
  b[7] = r.type ?? RTN_UNICAST;
  new DataView(b.buffer).setUint32(8, r.flags ?? 0, LE);
  return b;
}

/** A synchronous rtnetlink connection to one network namespace. */
export class Netlink {
  private seq = 1;
  private readonly rx = new Uint8Array(65536);

  private constructor(public readonly fd: number) {}

  /** Netlink socket in the caller's (init) namespace. */
  static host(): Netlink {
    return new Netlink(check(native.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), 'socket', 'netlink'));
  }

  /** Netlink socket inside the namespace behind nsfd. */
  static inNamespace(nsfd: number): Netlink {
    const out = new Int32Array(1);
    check(native.nsSockets(nsfd, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE, 1, out), 'socket',
      'netlink socket in namespace');
    return new Netlink(out[0]);
  }

  close(): void {
    native.close(this.fd);
  }

  /**
   * Sends msg and collects the replies: for a dump, every message until
   * NLMSG_DONE; otherwise until the acknowledgement. Returns the reply
   * messages (type + payload), or throws ErrnoError with the kernel's error.
   */
  private transact(b: MsgBuilder, what: string): { type: number; payload: Uint8Array }[] {
    const seq = this.seq++;
    const msg = b.finish(seq);
    check(native.write(this.fd, msg, 0, msg.length), 'sendmsg', `netlink ${what}`);
    const out: { type: number; payload: Uint8Array }[] = [];
    const dv = new DataView(this.rx.buffer);
    for (;;) {
      const n = native.read(this.fd, this.rx, 0, this.rx.length);
      if (n < 0) throw new ErrnoError(-n, 'recv', `netlink ${what}`);
      let off = 0;
      while (off + 16 <= n) {
        const len = dv.getUint32(off, LE);
        const type = dv.getUint16(off + 4, LE);
        const flags = dv.getUint16(off + 6, LE);
        const mseq = dv.getUint32(off + 8, LE);
        if (len < 16 || off + len > n) break;
        if (mseq === seq) {
          if (type === NLMSG_DONE) return out;
          if (type === NLMSG_ERROR) {
            const err = dv.getInt32(off + 16, LE);
            if (err < 0) throw new ErrnoError(-err, 'netlink', what);
            return out; // ACK
          }
          out.push({ type, payload: this.rx.slice(off + 16, off + len) });
          if (!(flags & NLM_F_MULTI)) {
            // a single reply to a non-dump GET; an ACK may follow only if asked
            return out;
          }
        }
        off += (len + 3) & ~3;
      }
    }
  }

  links(): Link[] {
    const b = new MsgBuilder(RTM_GETLINK, NLM_F_DUMP).bytes(ifinfomsg(0, 0, 0, 0));
    return this.transact(b, 'link dump').filter((m) => m.type === RTM_NEWLINK).map((m) => {
      const dv = new DataView(m.payload.buffer, m.payload.byteOffset);
      const attrs = parseAttrs(m.payload, 16, m.payload.length);
      const name = attrs.find((a) => a.type === IFLA_IFNAME);
      const mac = attrs.find((a) => a.type === IFLA_ADDRESS);
      return {
        index: dv.getInt32(4, LE),
        flags: dv.getUint32(8, LE),
        name: name ? Buffer.from(name.data).toString('utf8').replace(/\0.*$/s, '') : '',
        mtu: attrU32(attrs.find((a) => a.type === IFLA_MTU)),
        mac: mac && mac.data.length === 6 ? mac.data : null,
      };
    });
  }

  link(nameOrIndex: string | number): Link | null {
    return this.links().find((l) => (typeof nameOrIndex === 'number' ? l.index === nameOrIndex : l.name === nameOrIndex)) ?? null;
  }

  addrs(family: number, index = 0): Addr[] {
    const b = new MsgBuilder(RTM_GETADDR, NLM_F_DUMP).bytes(ifaddrmsg(family, 0, 0, 0, 0));
    const out: Addr[] = [];
    for (const m of this.transact(b, 'address dump')) {
      if (m.type !== RTM_NEWADDR) continue;
      const p = m.payload;
      const idx = new DataView(p.buffer, p.byteOffset).getUint32(4, LE);
      if (p[0] !== family || (index && idx !== index)) continue;
      const attrs = parseAttrs(p, 8, p.length);
      const local = attrs.find((a) => a.type === IFA_LOCAL) ?? attrs.find((a) => a.type === IFA_ADDRESS);
      const fl = attrs.find((a) => a.type === IFA_FLAGS);
      if (!local) continue;
      out.push({ family, index: idx, prefixLen: p[1], flags: fl ? attrU32(fl) : p[2], scope: p[3], addr: local.data });
    }
    return out;
  }

  routes(family: number): Route[] {
    const b = new MsgBuilder(RTM_GETROUTE, NLM_F_DUMP).bytes(rtmsg({ family, table: 0, protocol: 0, type: 0 }));
    const out: Route[] = [];
    for (const m of this.transact(b, 'route dump')) {
      if (m.type !== RTM_NEWROUTE) continue;
      const p = m.payload;
      if (p[0] !== family) continue;
      const attrs = parseAttrs(p, 12, p.length);
      const tableAttr = attrs.find((a) => a.type === RTA_TABLE);
      const r: Route = {
        family, dstLen: p[1], table: tableAttr ? attrU32(tableAttr) : p[4], protocol: p[5], scope: p[6], type: p[7],
        flags: new DataView(p.buffer, p.byteOffset).getUint32(8, LE),
        dst: attrs.find((a) => a.type === RTA_DST)?.data ?? null,
        gateway: attrs.find((a) => a.type === RTA_GATEWAY)?.data ?? null,
        oif: attrU32(attrs.find((a) => a.type === RTA_OIF)),
        priority: attrU32(attrs.find((a) => a.type === RTA_PRIORITY)),
        multipath: null,
        attrs,
      };
      const mp = attrs.find((a) => a.type === RTA_MULTIPATH);
      if (mp) r.multipath = parseMultipath(mp.data);
      out.push(r);
    }
    return out;
  }

  /** Sets link flags (masked by change), MTU and/or MAC address. */
  setLink(index: number, opts: { flags?: number; change?: number; mtu?: number; mac?: Uint8Array }): void {
    const b = new MsgBuilder(RTM_NEWLINK, NLM_F_ACK).bytes(ifinfomsg(0, index, opts.flags ?? 0, opts.change ?? 0));
    if (opts.mtu !== undefined) b.attrU32(IFLA_MTU, opts.mtu);
    if (opts.mac) b.attr(IFLA_ADDRESS, opts.mac);
    this.transact(b, 'link set');
  }

  addAddr(a: { family: number; index: number; prefixLen: number; addr: Uint8Array; flags: number; scope?: number },
    replace = false): void {
    const b = new MsgBuilder(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL))
      .bytes(ifaddrmsg(a.family, a.prefixLen, a.flags, a.scope ?? RT_SCOPE_UNIVERSE, a.index))
      .attr(IFA_LOCAL, a.addr)
      .attr(IFA_ADDRESS, a.addr)
      .attrU32(IFA_FLAGS, a.flags);
    this.transact(b, 'address add');
  }

  /** Adds a default route via gw on the interface. */
  addDefaultRoute(family: number, index: number, gw: Uint8Array): void {
    const b = new MsgBuilder(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
      .bytes(rtmsg({ family, dstLen: 0, table: RT_TABLE_MAIN, protocol: RTPROT_BOOT, scope: RT_SCOPE_UNIVERSE }))
      .attrU32(RTA_OIF, index)
      .attr(RTA_GATEWAY, gw);
    this.transact(b, 'route add');
  }

  /**
   * Replays a host route on another interface: output interface remapped,
   * preferred source and nexthop ID stripped. Multipath routes are re-built
   * with every nexthop on the new interface.
   */
  copyRoute(r: Route, index: number): void {
    const b = new MsgBuilder(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).bytes(rtmsg(r));
    for (const a of r.attrs) {
      if (a.type === RTA_OIF || a.type === RTA_PREFSRC || a.type === RTA_NH_ID || a.type === RTA_TABLE) continue;
      if (a.type === RTA_MULTIPATH) {
        b.attr(RTA_MULTIPATH, remapMultipath(a.data, index));
        continue;
      }
      if (a.type === 12 /* RTA_CACHEINFO */ || a.type === 23 /* RTA_EXPIRES */) continue;
      b.attr(a.type, a.data);
    }
    if (!r.multipath) b.attrU32(RTA_OIF, index);
    if (r.table > 255) b.attrU32(RTA_TABLE, r.table);
    this.transact(b, 'route add');
  }
}

function parseMultipath(d: Uint8Array): Nexthop[] {
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const out: Nexthop[] = [];
  let off = 0;
  while (off + 8 <= d.length) {
    const len = dv.getUint16(off, LE);
    if (len < 8 || off + len > d.length) break;
    const attrs = parseAttrs(d, off + 8, off + len);
    out.push({
      weight: d[off + 3] + 1,
      ifindex: dv.getInt32(off + 4, LE),
      gateway: attrs.find((a) => a.type === RTA_GATEWAY)?.data ?? null,
    });
    off += (len + 3) & ~3;
  }
  return out;
}

function remapMultipath(d: Uint8Array, index: number): Uint8Array {
  const out = d.slice();
  const dv = new DataView(out.buffer);
  let off = 0;
  while (off + 8 <= out.length) {
    const len = dv.getUint16(off, LE);
    if (len < 8) break;
    dv.setInt32(off + 4, index, LE);
    off += (len + 3) & ~3;
  }
  return out;
}

export { AF_INET, AF_INET6 };

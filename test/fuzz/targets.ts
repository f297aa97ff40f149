/**
 * Fuzz targets: every parser that reads guest (or client) bytes, and the
 * tap-RX dispatch as a whole. Each is a `FuzzTarget` (engine.ts): one
 * execution per input, an exception is a crash. Besides "does not throw",
 * each checks what its parser promises:
 * - views (Ethernet/ARP, IPv4, IPv6 with extension headers and fragments,
 *   TCP with options, UDP, ICMP/ICMPv6, NDP): the result and every getter
 *   are the same whatever bytes surround the range (nothing is read
 *   outside it), the input is never written;
 * - frames / DHCP / DHCPv6 / NDP services: frames.fuzz.ts (replies stay
 *   within their slot and advertised maximum, input unchanged), with the
 *   payload targets wrapping the input in a well-formed frame so that
 *   mutations land in the protocol, not in the headers before it;
 * - dns-names: what is encoded decodes back to the normalised names;
 * - stream (passt's framing): exactly the frames a reference parser finds,
 *   byte for byte, whatever the cuts between reads, and nothing after a
 *   bad length;
 * - slirp-api, control: every answer is one JSON line, the forwarding
 *   table matches what the backend bound;
 * - tap-rx: the whole stage on a socket pair, tap (one datagram per
 *   frame) or passt's stream: every frame counted once, records in the
 *   rings of the right kinds and within bounds, replies from our MAC.
 */
import { fuzz as framesFuzz } from './frames.fuzz';
import type { FuzzTarget } from './engine';
import {
  ARP_REQUEST, DHCP_DISCOVER, DHCPV6_SOLICIT, GUEST_LL, NDP_NS, NDP_RS, SOLICIT_PAYLOAD, TCP_SYN, TCP_SYN_SEGMENT,
  dhcpDiscoverPayload, dhcpFrame, dhcpv6Frame,
} from '../helpers/fixtures';
import { concat, eth, GUEST_MAC, icmp6, ipv4, ipv6, makeConfig, OUR_MAC, udp4, udp6 } from '../helpers/frames';
import { snapshot } from '../helpers/snapshot';
import { ArpView, parseArp } from '../../src/shared/wire/arp';
import { EthernetView } from '../../src/shared/wire/ethernet';
import { Ipv4View } from '../../src/shared/wire/ipv4';
import { Ipv6View } from '../../src/shared/wire/ipv6';
import { TcpView } from '../../src/shared/wire/tcp';
import { UdpView } from '../../src/shared/wire/udp';
import { Icmpv4View, Icmpv6View } from '../../src/shared/wire/icmp';
import { NdpView } from '../../src/shared/wire/ndp';
import { DhcpView, parseDhcp } from '../../src/shared/wire/dhcpv4';
import { Dhcpv6View, parseDhcpv6 } from '../../src/shared/wire/dhcpv6';
import { encodeDomainNames, normalizeDomain } from '../../src/shared/wire/dnsname';
import { StreamReader } from '../../src/workers/link/streamReader';
import { FrameRing } from '../../src/shared/ring/frameRing';
import { native, E } from '../../src/shared/native';
import { AF_UNIX, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_SEQPACKET, SOCK_STREAM } from '../../src/shared/linux';
import { HostfwdApi, Backend } from '../../src/main/slirp4netns/api';
import { isBad, LineSplitter, parseRequest } from '../../src/main/control/protocol';
import { parseForwardOption } from '../../src/main/portSpec';
import { PasstError } from '../../src/shared/errors';
import { TapReader, TapReaderHost } from '../../src/workers/tapReader';
import { Waker } from '../../src/shared/ring/waker';
import { Stats } from '../../src/shared/stats';
import { GuestState } from '../../src/shared/guestState';
import { FRAME_KIND, MAX_FRAME } from '../../src/shared/frameKinds';
import type { TapRxInit } from '../../src/shared/messages';

function fail(msg: string): never {
  throw new Error(`fuzz invariant: ${msg}`);
}

const enc = (s: string): Uint8Array => Buffer.from(s, 'latin1');

// ------------------------------------------------------------------ views

interface View { reset(off: number, len: number): boolean }

/**
 * A view target: byte 0 chooses the range's offset in the buffer (0-7),
 * the rest is the range. The view runs over two buffers whose bytes around
 * the range differ (0x00, 0xff); `extra` calls the view's methods and returns what they
 * found. Results, getters and extras must agree, and neither buffer changes.
 */
function viewTarget<V extends View>(name: string, make: (u8: Uint8Array) => V, seeds: Uint8Array[],
  extra: (v: V) => unknown = () => null, dict?: (string | number[])[]): FuzzTarget {
  const run = (body: Uint8Array, pre: number, canary: number): [boolean, unknown, unknown] => {
    const buf = new Uint8Array(pre + body.length + 16).fill(canary);
    buf.set(body, pre);
    const v = make(buf);
    const ok = v.reset(pre, body.length);
    const snap = ok ? snapshot(v) : null;
    const ex = ok ? JSON.stringify(extra(v)) : null;
    for (let i = 0; i < buf.length; i++) {
      const want = i >= pre && i < pre + body.length ? body[i - pre] : canary;
      if (buf[i] !== want) fail(`${name} wrote byte ${i}`);
    }
    return [ok, snap, ex];
  };
  return {
    name,
    maxLen: 1600,
    dict,
    seeds: () => seeds.map((s) => concat([0], s)),
    fuzz(data: Uint8Array): void {
      if (!data.length) return;
      const pre = data[0] & 7;
      const body = data.subarray(1);
      const [ok1, s1, x1] = run(body, pre, 0x00);
      const [ok2, s2, x2] = run(body, pre, 0xff);
      if (ok1 !== ok2) fail(`${name}.reset depends on bytes outside the range`);
      if (JSON.stringify(s1) !== JSON.stringify(s2)) fail(`${name} getters read outside the range`);
      if (x1 !== x2) fail(`${name} methods read outside the range`);
    },
  };
}

/** Getters that report offsets must stay inside [off, off+len]. */
function within(v: { off: number; len: number }, what: string, o: number, n = 0): void {
  if (o < v.off || o + n > v.off + v.len) fail(`${what} ${o}+${n} outside [${v.off}, ${v.off + v.len})`);
}

const IP4 = DHCP_DISCOVER.subarray(14);
const UDP4 = DHCP_DISCOVER.subarray(34);
const NDP_RS_MSG = NDP_RS.subarray(54);
const NDP_NS_MSG = NDP_NS.subarray(54);
const ext = (nh: number, len8: number, fill = 0): number[] => [nh, len8, ...new Array(6 + 8 * len8).fill(fill)];
const IP6_EXT = [
  // hop-by-hop → destination options → fragment (first) → UDP
  ipv6({ src: GUEST_LL, dst: 'ff02::1:2', nh: 0 }, concat(ext(60, 0), ext(44, 1), [17, 0, 0, 1, 0, 0, 0, 7],
    udp6(GUEST_LL, 'ff02::1:2', 546, 547, SOLICIT_PAYLOAD))),
  // fragment with offset (not the first), routing header, AH, no next header
  ipv6({ src: GUEST_LL, dst: 'fe80::1', nh: 44 }, concat([43, 0, 0, 0x39, 0, 0, 0, 9], ext(51, 0),
    [59, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], new Array(16).fill(0xa5))),
  // ESP stops the walk
  ipv6({ src: GUEST_LL, dst: 'fe80::1', nh: 50 }, Uint8Array.from(new Array(24).fill(1))),
];
const TCP_OPTS = [
  TCP_SYN_SEGMENT,
  // SACK blocks, unknown option, EOL in the middle
  concat(TCP_SYN_SEGMENT.subarray(0, 12), [0xf0, 0x10], TCP_SYN_SEGMENT.subarray(14, 20),
    [5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0x22, 4, 1, 2, 0, 1, 2, 4, 5, 0xb4, 3, 3, 14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    enc('GET / HTTP/1.0\r\n\r\n')),
];

const viewTargets: FuzzTarget[] = [
  viewTarget('ethernet', (u8) => new EthernetView(u8), [ARP_REQUEST, TCP_SYN, DHCPV6_SOLICIT]),
  viewTarget('arp', (u8) => new ArpView(u8), [ARP_REQUEST.subarray(14)], (v) => parseArp(v)),
  viewTarget('ipv4', (u8) => new Ipv4View(u8), [IP4, TCP_SYN.subarray(14),
    ipv4({ src: '10.0.2.15', dst: '10.0.2.2', proto: 1, flags: 0x2000 }, new Uint8Array(16)),
    concat([0x46], IP4.subarray(1, 20), [1, 1, 0, 0], IP4.subarray(20))], (v) => {
    within(v, 'ipv4 payload', v.payloadOff, Math.max(0, v.payloadLen));
    return [v.isFragment, v.hasLoopback];
  }),
  viewTarget('ipv6', (u8) => new Ipv6View(u8), [DHCPV6_SOLICIT.subarray(14), NDP_NS.subarray(14), ...IP6_EXT], (v) => {
    within(v, 'ipv6 payload', v.payloadOff, v.payloadLen);
    if (v.payloadOff + v.payloadLen !== v.off + v.len) fail('ipv6 payload does not end with the packet');
    return [v.protocol, v.isFragment, v.extLen];
  }),
  viewTarget('tcp', (u8) => new TcpView(u8), TCP_OPTS, (v) => {
    const ok = v.parseOptions();
    within(v, 'tcp payload', v.payloadOff, v.payloadLen);
    return [ok, snapshot(v)];
  }),
  viewTarget('udp', (u8) => new UdpView(u8), [UDP4, DHCPV6_SOLICIT.subarray(54)]),
  viewTarget('icmp', (u8) => new Icmpv4View(u8), [Uint8Array.of(8, 0, 0xf7, 0xff, 0, 1, 0, 1, 1, 2, 3, 4)],
    (v) => [v.isEcho]),
  viewTarget('icmpv6', (u8) => new Icmpv6View(u8), [NDP_RS_MSG, NDP_NS_MSG, Uint8Array.of(128, 0, 0, 0, 0, 1, 0, 2, 9)],
    (v) => [v.isEcho, v.isNdp]),
  viewTarget('ndp', (u8) => new NdpView(u8), [NDP_RS_MSG, NDP_NS_MSG,
    concat([134, 0, 0, 0, 64, 0xc0, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 2, 3, 4, 5, 6, 7], [5, 1, 0, 0, 0, 0, 5, 0xdc],
      [3, 4, 64, 0xc0], new Array(28).fill(0x20)),
    concat([136, 0, 0, 0, 0x60, 0, 0, 0], new Array(16).fill(0xfe), [2, 1, 1, 2, 3, 4, 5, 6])], (v) => {
    const found: number[] = [];
    for (const type of [1, 2, 3, 4, 5, 24, 25, 31, 0, 255]) {
      const o = v.findOption(type);
      if (o >= 0) within(v, `ndp option ${type}`, o, 2);
      found.push(o);
    }
    return found;
  }),
  viewTarget('dhcp', (u8) => new DhcpView(u8), [DHCP_DISCOVER.subarray(42)], (v) => parseDhcp(v)),
  viewTarget('dhcpv6', (u8) => new Dhcpv6View(u8), [SOLICIT_PAYLOAD], (v) => parseDhcpv6(v)),
];

// -------------------------------------------------------- services in frames

/** frames.fuzz.ts on the input; its first two bytes pick the buffer slack. */
const framesTarget: FuzzTarget = {
  name: 'frames',
  maxLen: 1600,
  seeds: () => [ARP_REQUEST, DHCP_DISCOVER, DHCPV6_SOLICIT, NDP_NS, NDP_RS, TCP_SYN, ...IP6_EXT.map((p) =>
    eth('33:33:00:01:00:02', GUEST_MAC, 0x86dd, p)), dhcpFrame(dhcpDiscoverPayload({ extraOptions: [80, 0] }))]
    .map((f) => concat([0, 0], f)),
  fuzz: framesFuzz,
};

/** A service target: the input is the protocol message, wrapped in a well-formed frame. */
function serviceTarget(name: string, wrap: (msg: Uint8Array) => Uint8Array, seeds: Uint8Array[],
  dict?: (string | number[])[]): FuzzTarget {
  return {
    name,
    maxLen: 1400,
    dict,
    seeds: () => seeds.map((s) => concat([0, 0], s)),
    fuzz(data: Uint8Array): void {
      if (data.length < 2) return;
      framesFuzz(concat(data.subarray(0, 2), wrap(data.subarray(2))));
    },
  };
}

const DHCP_OPTS_DICT: number[][] = [[53, 1, 1], [53, 1, 3], [53, 1, 7], [50, 4, 10, 0, 2, 15], [54, 4, 10, 0, 2, 2],
  [55, 4, 1, 3, 6, 119], [61, 7, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56], [81, 4, 1, 0, 0, 0], [12, 1, 0x68],
  [57, 2, 2, 64], [0x63, 0x82, 0x53, 0x63], [255], [0], [52, 1, 3], [66, 0], [67, 0]];
const dhcpFqdn = (flags: number, name: number[]): number[] => [81, 3 + name.length, flags, 0, 0, ...name];
const DHCP_SEEDS = [
  dhcpDiscoverPayload(),
  dhcpDiscoverPayload({ extraOptions: [50, 4, 10, 0, 2, 15, 61, 7, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56] }),
  dhcpDiscoverPayload({ extraOptions: dhcpFqdn(0x05, [4, 0x68, 0x6f, 0x73, 0x74, 7, ...enc('example'), 3, ...enc('com'), 0]) }),
  dhcpDiscoverPayload({ extraOptions: [52, 1, 3, 57, 2, 2, 64] }),
];
const dhcpv6Opt = (code: number, body: number[]): number[] => [code >>> 8, code & 0xff, body.length >>> 8, body.length & 0xff, ...body];
const DHCPV6_SEEDS = [
  SOLICIT_PAYLOAD,
  // REQUEST with server id, IA_NA with an IAADDR, client FQDN, rapid commit
  Uint8Array.from([3, 1, 2, 3, ...dhcpv6Opt(1, [0, 3, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]),
    ...dhcpv6Opt(2, [0, 1, 0, 1, 1, 2, 3, 4, 0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55]),
    ...dhcpv6Opt(3, [0, 0x12, 0x34, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, ...dhcpv6Opt(5, [...new Array(16).fill(0x20), 0, 0, 0, 0, 0, 0, 0, 0])]),
    ...dhcpv6Opt(39, [1, 4, ...enc('host'), 0]), ...dhcpv6Opt(14, []), ...dhcpv6Opt(6, [0, 23, 0, 24, 0, 39])]),
  // INFORMATION-REQUEST, CONFIRM, IA_TA
  Uint8Array.from([11, 9, 8, 7, ...dhcpv6Opt(1, [0, 3, 0, 1, 1, 2, 3, 4, 5, 6]), ...dhcpv6Opt(6, [0, 23])]),
  Uint8Array.from([4, 9, 8, 7, ...dhcpv6Opt(1, [0, 3, 0, 1, 1, 2, 3, 4, 5, 6]), ...dhcpv6Opt(4, [0, 0, 0, 1])]),
];
const DHCPV6_DICT: number[][] = [[0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [0, 6], [0, 8], [0, 13], [0, 14], [0, 23], [0, 24],
  [0, 39], [0, 3, 0, 1], [0, 1, 0, 1]];

const serviceTargets: FuzzTarget[] = [
  serviceTarget('dhcp-service', (m) => dhcpFrame(m), DHCP_SEEDS, DHCP_OPTS_DICT),
  serviceTarget('dhcpv6-service', (m) => dhcpv6Frame(m), DHCPV6_SEEDS, DHCPV6_DICT),
  serviceTarget('ndp-service', (m) => eth('33:33:00:00:00:02', GUEST_MAC, 0x86dd,
    ipv6({ src: GUEST_LL, dst: 'ff02::2', nh: 58, hop: 255 }, icmp6(GUEST_LL, 'ff02::2', m))),
  [NDP_RS_MSG, NDP_NS_MSG, Uint8Array.from([135, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])],
  [[1, 1], [2, 1], [133], [134], [135], [136], [137], [0xfe, 0x80], [0xff, 0x02]]),
];

// ------------------------------------------------------------------ DNS names

/** RFC 1035 name list decoder (with compression pointers), for the round trip. */
function decodeNames(b: Uint8Array, ends: number[]): string[] {
  const names: string[] = [];
  let start = 0;
  for (const end of ends) {
    const labels: string[] = [];
    let p = start;
    let hops = 0;
    for (;;) {
      if (p >= b.length) fail('name runs past the data');
      const l = b[p];
      if (l === 0) break;
      if ((l & 0xc0) === 0xc0) {
        const to = ((l & 0x3f) << 8) | b[p + 1];
        if (to >= start && hops === 0) fail('pointer does not point backwards');
        if (++hops > 128) fail('pointer loop');
        p = to;
        continue;
      }
      if (l > 63) fail(`label length ${l}`);
      labels.push(Buffer.from(b.subarray(p + 1, p + 1 + l)).toString('utf8'));
      p += 1 + l;
    }
    names.push(labels.join('.'));
    start = end;
  }
  if (start !== b.length) fail('data after the last name');
  return names;
}

const dnsTarget: FuzzTarget = {
  name: 'dns-names',
  maxLen: 1024,
  dict: ['.', '..', 'example', 'com', 'a', 'EXAMPLE', '\u00e9', ' ', '\t', 'x'.repeat(63), 'y'.repeat(64)],
  seeds: () => [enc('\x01example.com\0a.example.com\0eng.example.com.\0'), enc('\x00com\0com.\0.\0'),
    enc(`\x01${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}\0x.y\0`)],
  fuzz(data: Uint8Array): void {
    if (!data.length) return;
    const compress = (data[0] & 1) === 1;
    const raw = Buffer.from(data.subarray(1)).toString('utf8').split('\0');
    const names: string[] = [];
    for (const r of raw) {
      const n = normalizeDomain(r);
      if (n === null) continue;
      if (n.endsWith('.') || n.startsWith('.') || n.includes('..')) fail(`normalizeDomain kept "${n}"`);
      if (Buffer.byteLength(n) + 2 > 255) fail(`normalizeDomain kept ${Buffer.byteLength(n)} bytes`);
      names.push(n);
    }
    const e = encodeDomainNames(names, compress);
    if (e.ends.length !== names.length) fail('ends');
    for (let i = 1; i < e.ends.length; i++) if (e.ends[i] <= e.ends[i - 1]) fail('ends not increasing');
    const back = decodeNames(e.data, e.ends);
    for (let i = 0; i < names.length; i++) {
      const want = compress ? names[i].toLowerCase() : names[i];
      const got = compress ? back[i].toLowerCase() : back[i];
      if (got !== want) fail(`round trip: "${names[i]}" came back as "${back[i]}"`);
    }
  },
};

// ------------------------------------------------------ passt's stream framing

function socketPair(type: number): [number, number] {
  const out = new Int32Array(2);
  const r = native.socketpair(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, out);
  if (r < 0) throw new Error(`socketpair: ${native.strerror(-r)}`);
  return [out[0], out[1]];
}

/** Drains a descriptor (leftovers of the last execution). */
function drain(fd: number, scratch: Uint8Array): void {
  while (native.read(fd, scratch, 0, scratch.length) > 0) { /* empty */ }
}

const STREAM_MAX_READ = 65536;
let streamRig: { a: number; b: number; ring: FrameRing; lens: Int32Array; scratch: Uint8Array } | null = null;

/** The frames a correct reader delivers from `bytes`, and whether it then sees a bad length. */
function referenceFrames(bytes: Uint8Array): { frames: Uint8Array[]; bad: boolean } {
  const frames: Uint8Array[] = [];
  let p = 0;
  while (p + 4 <= bytes.length) {
    const l = ((bytes[p] << 24) | (bytes[p + 1] << 16) | (bytes[p + 2] << 8) | bytes[p + 3]) >>> 0;
    if (l < 14 || l > 65535) return { frames, bad: true };
    if (p + 4 + l > bytes.length) break;
    frames.push(bytes.subarray(p + 4, p + 4 + l));
    p += 4 + l;
  }
  return { frames, bad: false };
}

/**
 * Input: byte 0 = where to cut the stream into pieces written between
 * reads (a step of 1..256 bytes, 0 = one write), byte 1 = frames per read
 * call (1..8), then the stream itself.
 */
const streamTarget: FuzzTarget = {
  name: 'stream',
  maxLen: 4096,
  dict: [[0, 0, 0, 14], [0, 0, 0, 13], [0, 0, 0xff, 0xff], [0, 1, 0, 0], [0xff, 0xff, 0xff, 0xff], [0, 0, 0, 0], [0, 0, 5, 0xea]],
  seeds: () => {
    const f = (n: number, v: number): number[] => [0, 0, n >>> 8, n & 0xff, ...new Array(n).fill(v)];
    return [Uint8Array.from([0, 8, ...f(60, 1), ...f(14, 2), ...f(1514, 3)]), Uint8Array.from([7, 1, ...f(100, 4), ...f(20, 5)]),
      Uint8Array.from([3, 2, ...f(14, 6), 0, 0, 0, 13, 1, 2, 3])];
  },
  fuzz(data: Uint8Array): void {
    if (data.length < 2) return;
    if (!streamRig) {
      const [a, b] = socketPair(SOCK_STREAM);
      streamRig = { a, b, ring: new FrameRing(FrameRing.allocate(1 << 20)), lens: new Int32Array(9), scratch: new Uint8Array(65536) };
    }
    const { a, b, ring, lens, scratch } = streamRig;
    drain(b, scratch);
    const step = data[0] === 0 ? Infinity : data[0];
    const max = 1 + (data[1] & 7);
    const bytes = data.subarray(2);
    const reader = new StreamReader(STREAM_MAX_READ);
    const got: Uint8Array[] = [];
    let status = 0;
    let after = false;
    const readAll = (): void => {
      for (let guard = 0; guard < 4096; guard++) {
        const d = ring.beginWrite(STREAM_MAX_READ);
        if (d < 0) fail('ring full');
        const n = reader.read(b, ring, d - 16, ring.contiguousFree(), lens, max, STREAM_MAX_READ);
        if (n < 0 || n > max) fail(`read returned ${n}`);
        let pos = d - 16;
        for (let i = 0; i < n; i++) {
          const len = lens[i];
          if (status < 0) after = true;
          got.push(ring.u8.slice(pos + 16, pos + 16 + len));
          ring.endWrite(len, 0);
          pos = (pos + 16 + len + 7) & ~7;
        }
        ring.publish();
        while (ring.peek() >= 0) ring.consume();
        ring.release();
        const st = lens[n];
        if (st < 0 && st !== -E.EAGAIN) {
          // after an error the connection is reset (tap-RX): one more read must bring nothing
          if (status !== 0) return;
          status = st;
          continue;
        }
        if (status !== 0) return;
        if (n < max && !reader.pending) return;
      }
      fail('reader does not settle');
    };
    for (let p = 0; p < bytes.length && status === 0; p += step) {
      const piece = bytes.subarray(p, Math.min(bytes.length, p + step));
      if (native.write(a, piece, 0, piece.length) !== piece.length) fail('short write to the socket pair');
      readAll();
    }
    readAll();
    const ref = referenceFrames(bytes);
    if (after) fail('frames after a protocol error');
    if (got.length !== ref.frames.length) fail(`${got.length} frames, reference ${ref.frames.length}`);
    for (let i = 0; i < got.length; i++) {
      if (Buffer.compare(Buffer.from(got[i]), Buffer.from(ref.frames[i])) !== 0) fail(`frame ${i} differs`);
    }
    if (ref.bad !== (status === -E.EPROTO)) fail(`status ${status}, reference ${ref.bad ? 'bad length' : 'fine'}`);
    if (ref.bad && !reader.error) fail('no error text for a bad length');
  },
};

// -------------------------------------------------------------- JSON APIs

const slirpTarget: FuzzTarget = {
  name: 'slirp-api',
  maxLen: 2048,
  dict: ['{"execute":"add_hostfwd","arguments":{', '{"execute":"list_hostfwd"}', '{"execute":"remove_hostfwd","arguments":{"id":1}}',
    '"proto":"tcp"', '"proto":"udp"', '"host_addr":"127.0.0.1"', '"host_addr":"0.0.0.0"', '"host_port":8080', '"guest_port":80',
    '"guest_addr":"10.0.2.100"', '"id":', '}}', '\n', '1e999', '-1', '65536', '0.5', 'null', '[]', '"', '\\u0000', '\0'],
  seeds: () => [
    enc('{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_port":80}}\n' +
      '{"execute":"list_hostfwd"}\n{"execute":"remove_hostfwd","arguments":{"id":1}}\n{"execute":"list_hostfwd"}'),
    enc('{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":53,"guest_addr":"10.0.2.100","guest_port":53}}\n' +
      '{"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"127.0.0.1","host_port":53,"guest_port":5353}}'),
    enc('{"execute":"nothing"}\n[1]\n"x"\n{"execute":1}'),
  ],
  fuzz(data: Uint8Array): void {
    const bound = new Map<number, string>();
    let next = 1;
    const backend: Backend = {
      add(proto, hostAddr, hostPort, guestPort) {
        if (hostPort === 9) return { error: 'bind: Address in use' };
        bound.set(next, `${proto} ${hostAddr}:${hostPort} ${guestPort}`);
        return { handle: next++ };
      },
      remove(handle) {
        if (!bound.delete(handle as number)) fail('removing an unknown handle');
      },
    };
    const api = new HostfwdApi('10.0.2.100', backend);
    for (const req of Buffer.from(data).toString('latin1').split('\n').slice(0, 16)) {
      const ans = api.handle(Buffer.from(req, 'latin1'));
      if (ans.includes('\n')) fail('answer with a newline');
      const j = JSON.parse(ans) as Record<string, unknown>;
      if (typeof j !== 'object' || j === null) fail('answer is not an object');
      const list = api.list();
      if (list.length !== bound.size) fail(`${list.length} forwards, ${bound.size} bound`);
      for (const f of list) {
        if (!(f.hostPort >= 1 && f.hostPort <= 65535 && f.guestPort >= 1 && f.guestPort <= 65535)) fail('port out of range');
      }
    }
  },
};

const controlTarget: FuzzTarget = {
  name: 'control',
  maxLen: 2048,
  dict: ['{"cmd":"stats"}', '{"cmd":"flows","limit":', '{"cmd":"add-port","option":"-t","spec":"8080"}', '{"cmd":"remove-port"',
    '"id":', '"cmd":', '"ports"', '"quit"', '\n', '\r\n', 'null', '1e999', '-1', '"spec":"', ',', '}', '"option":"-U"',
    '~', '-', ':', '/', '%', '[::1]', '0.0.0.0', '65535', '1-1024', '~22', '%lo'],
  seeds: () => [enc('{"cmd":"stats","id":1,"format":"prometheus"}\n{"cmd":"flows","offset":3,"limit":10}\n{"cmd":"ports"}\r\n'),
    enc('{"cmd":"add-port","option":"-t","spec":"127.0.0.1/8080:80","id":"a"}\n{"cmd":"remove-port","option":"-u","spec":"53"}\n'),
    enc('{"cmd":"add-port","option":"-T","spec":"1000-1010:2000-2010,~1005"}\n{"cmd":"add-port","option":"-t","spec":"::1%lo/22"}\n'),
    enc('{"cmd":"quit"}\n{}\n[]\nnot json\n')],
  fuzz(data: Uint8Array): void {
    if (!data.length) return;
    const max = 16 + data[0] * 4;
    const split = new LineSplitter(max);
    const buf = Buffer.from(data.subarray(1));
    const cut = data.length > 2 ? data[1] % buf.length : buf.length;
    for (const chunk of [buf.subarray(0, cut), buf.subarray(cut)]) {
      for (const ev of split.push(chunk)) {
        if ('tooLong' in ev) {
          if (ev.tooLong <= max) fail(`tooLong ${ev.tooLong} <= ${max}`);
          continue;
        }
        if (Buffer.byteLength(ev.line) > max * 3) fail('line longer than the limit');
        const r = parseRequest(ev.line);
        if (isBad(r)) {
          if (typeof r.error !== 'string' || !r.error) fail('bad request without an error');
        } else if (typeof r.cmd !== 'string') {
          fail('request without a verb');
        } else if ((r.cmd === 'add-port' || r.cmd === 'remove-port') && !['none', 'auto', 'all'].includes(r.spec)) {
          // what forward.ts does with the spec (the port-spec parser on client text)
          let parsed: ReturnType<typeof parseForwardOption> | null = null;
          try {
            parsed = parseForwardOption(undefined, r.option, r.spec, 'pasta', [32768, 60999]);
          } catch (e) {
            if (!(e instanceof PasstError)) throw e;
          }
          for (const rule of parsed?.spec.rules ?? []) {
            for (const p of rule.ports) {
              // SPEC §8.2: PORT 0-65535 (0 as the C original takes it), offsets mod 65536
              if (!(Number.isInteger(p.port) && p.port >= 0 && p.port <= 65535) ||
                !(Number.isInteger(p.delta) && p.delta >= 0 && p.delta <= 65535)) fail(`port ${p.port} delta ${p.delta}`);
            }
          }
        }
      }
    }
  },
};

// ---------------------------------------------------------------- tap-RX

interface TapRig {
  init: TapRxInit;
  host: TapReaderHost & { fatal: string | null };
  reader?: TapReader;
  rings: { tcp: FrameRing; udp: FrameRing; tx: FrameRing };
  stats: Stats<'tapRx'>;
  pairs: { tap: [number, number]; stream: [number, number] };
  scratch: Uint8Array;
}
/** Per back end: a ring has one producer, and each reader is one. */
const tapRigs: { tap?: TapRig; stream?: TapRig } = {};

function makeTapRig(): TapRig {
  const ring = () => ({ ring: FrameRing.allocate(1 << 20), consumer: Waker.create() });
  const toTcp = ring();
  const toUdp = ring();
  const toTx = ring();
  const cfg = makeConfig({ mode: 'pasta', name: 'pasta' }, { addr: '10.0.2.15', gateway: '10.0.2.2' });
  const statsSab = Stats.allocate('tapRx');
  const init: TapRxInit = {
    role: 'tapRx', shard: 0, cfg, logLevel: 'error', logTarget: { kind: 'fd', fd: 2, timestamps: false },
    waker: Waker.create(), stats: statsSab, guestState: GuestState.allocate(), tapfd: -1, backend: 'tap', vnetLen: 0,
    toTcp: [toTcp], toUdp, toTx, pcapFd: -1, guest: { mac: null, linkLocal: null },
  };
  const host: TapReaderHost & { fatal: string | null } = {
    fatal: null, add: () => {}, del: () => 0, stop: () => {},
    post: (m) => { if (m.type === 'fatal') host.fatal = m.message; },
  };
  return {
    init,
    host,
    rings: { tcp: new FrameRing(toTcp.ring), udp: new FrameRing(toUdp.ring), tx: new FrameRing(toTx.ring) },
    stats: new Stats('tapRx', statsSab),
    pairs: { tap: socketPair(SOCK_SEQPACKET), stream: socketPair(SOCK_STREAM) },
    scratch: new Uint8Array(1 << 16),
  };
}

const OUR_MAC_BYTES = OUR_MAC.split(':').map((x) => parseInt(x, 16));
const L4_KINDS: Record<string, number[]> = {
  tcp: [FRAME_KIND.TCP4, FRAME_KIND.TCP6],
  udp: [FRAME_KIND.UDP4, FRAME_KIND.UDP6, FRAME_KIND.ICMP4, FRAME_KIND.ICMP6],
};

/** Consumes every record of a ring, checking kinds and bounds. */
function drainRing(name: 'tcp' | 'udp' | 'tx', ring: FrameRing): number {
  let n = 0;
  while (ring.peek() >= 0) {
    const d = ring.peek();
    const len = ring.recLen;
    const kind = ring.recKind;
    if (len > MAX_FRAME || len < 0) fail(`${name} record of ${len} bytes`);
    if (name === 'tx') {
      if (kind !== FRAME_KIND.TO_GUEST) fail(`kind ${kind} towards tap-TX`);
      if (len < 14) fail(`reply of ${len} bytes`);
      for (let i = 0; i < 6; i++) if (ring.u8[d + 6 + i] !== OUR_MAC_BYTES[i]) fail('reply not from our MAC');
    } else {
      if (!L4_KINDS[name].includes(kind)) fail(`kind ${kind} in the ${name} ring`);
      const l3 = ring.recMeta1 >>> 16;
      const l4 = ring.recMeta1 & 0xffff;
      const l4len = ring.recMeta2;
      if (!(14 <= l3 && l3 < l4 && l4 + l4len <= len)) fail(`${name} record offsets ${l3}/${l4}/${l4len} in ${len}`);
    }
    ring.consume();
    n++;
  }
  ring.release();
  return n;
}

/**
 * Input: byte 0 bit 0 chooses the back end: tap (then the rest is frames,
 * each after a 2-byte length, one datagram each) or passt's stream (the
 * rest goes to the socket as is: length prefixes included).
 */
const tapRxTarget: FuzzTarget = {
  name: 'tap-rx',
  maxLen: 4096,
  dict: [[0x08, 0x00, 0x45], [0x86, 0xdd, 0x60], [0x08, 0x06], [0x33, 0x33], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [0, 0, 0, 14]],
  seeds: () => {
    const frames = [ARP_REQUEST, DHCP_DISCOVER, DHCPV6_SOLICIT, NDP_NS, NDP_RS, TCP_SYN,
      eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4({ src: '10.0.2.15', dst: '10.0.2.2', proto: 17 }, udp4('10.0.2.15', '10.0.2.2', 5000, 53, enc('\x12\x34query')))),
      eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6({ src: GUEST_LL, dst: 'fe80::1', nh: 17 }, udp6(GUEST_LL, 'fe80::1', 5000, 53, enc('q')))),
      eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4({ src: '10.0.2.15', dst: '10.0.2.2', proto: 1 }, Uint8Array.of(8, 0, 0xf7, 0xfe, 0, 1, 0, 0))),
      eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4({ src: '127.0.0.1', dst: '10.0.2.2', proto: 6 }, TCP_SYN_SEGMENT)),
      eth(OUR_MAC, GUEST_MAC, 0x86dd, IP6_EXT[1])];
    const tap = concat([0], ...frames.map((f) => concat([f.length >>> 8, f.length & 0xff], f)));
    const stream = concat([1], ...frames.slice(0, 6).map((f) => concat([0, 0, f.length >>> 8, f.length & 0xff], f)));
    return [tap, stream, concat([0], ...frames.slice(6).map((f) => concat([f.length >>> 8, f.length & 0xff], f)))];
  },
  fuzz(data: Uint8Array): void {
    if (!data.length) return;
    const streamMode = (data[0] & 1) === 1;
    const mode = streamMode ? 'stream' : 'tap';
    const rig = tapRigs[mode] ?? (tapRigs[mode] = makeTapRig());
    const [peer, fd] = streamMode ? rig.pairs.stream : rig.pairs.tap;
    drain(fd, rig.scratch);
    const host = rig.host;
    host.fatal = null;
    const before = rig.stats.get('frames');
    const body = data.subarray(1);
    let written = 0;
    if (streamMode) {
      if (body.length && native.write(peer, body, 0, body.length) !== body.length) fail('short stream write');
      written = referenceFrames(body).frames.length;
    } else {
      for (let p = 0; p + 2 <= body.length && written < 32;) {
        const l = Math.min(((body[p] << 8) | body[p + 1]) & 0x7ff, body.length - p - 2);
        p += 2;
        if (l > 0) {
          if (native.write(peer, body, p, l) !== l) fail('datagram write');
          written++;
        }
        p += l;
      }
    }
    // one reader per back end, as in a long run; each input comes as a new
    // client would (passt's 'tap' message: the receiver starts afresh)
    const reader = rig.reader ?? (rig.reader = new TapReader({ ...rig.init, tapfd: fd, backend: mode }, host));
    reader.onControl({ type: 'tap', fd, seq: 0 });
    let kept = 0;
    for (let i = 0; i < 64; i++) {
      const more = reader.work(i);
      reader.flushAll();
      kept += drainRing('tcp', rig.rings.tcp) + drainRing('udp', rig.rings.udp);
      drainRing('tx', rig.rings.tx);
      if (!more) break;
    }
    const frames = rig.stats.get('frames') - before;
    if (frames !== written) fail(`${frames} frames counted, ${written} sent`);
    if (kept > frames) fail(`${kept} records kept of ${frames} frames`);
    if (streamMode && host.fatal !== null && !referenceFrames(body).bad) fail(`fatal without a bad length: ${host.fatal}`);
  },
};

// ------------------------------------------------------------------ registry

export const TARGETS: FuzzTarget[] = [
  framesTarget, ...viewTargets, ...serviceTargets, dnsTarget, streamTarget, slirpTarget, controlTarget, tapRxTarget,
];

export function targetByName(name: string): FuzzTarget {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`no fuzz target ${name} (have: ${TARGETS.map((x) => x.name).join(', ')})`);
  return t;
}

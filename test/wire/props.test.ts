/**
 * Properties of every view and parser on hostile input: never throw, read
 * nothing outside [off, off+len) (results do not depend on the bytes around
 * the range), write nothing outside it, and reject what does not fit.
 */
import { testProp, fc } from '@fast-check/ava';
import { ArpView, parseArp, emitArp } from '../../src/shared/wire/arp';
import { DhcpView, parseDhcp } from '../../src/shared/wire/dhcpv4';
import { Dhcpv6View, parseDhcpv6 } from '../../src/shared/wire/dhcpv6';
import { EthernetView } from '../../src/shared/wire/ethernet';
import { FrameViews } from '../../src/shared/wire/frame';
import { Icmpv4View, Icmpv6View } from '../../src/shared/wire/icmp';
import { Ipv4View } from '../../src/shared/wire/ipv4';
import { Ipv6View } from '../../src/shared/wire/ipv6';
import { NdpView } from '../../src/shared/wire/ndp';
import { prettyFrame } from '../../src/shared/wire/pretty';
import { TcpView } from '../../src/shared/wire/tcp';
import { UdpView } from '../../src/shared/wire/udp';
import { WireView } from '../../src/shared/wire/view';
import {
  ARP_REQUEST, DHCP_DISCOVER, DHCPV6_SOLICIT, NDP_NS, NDP_RS, SOLICIT_PAYLOAD, TCP_SYN, TCP_SYN_SEGMENT,
  dhcpDiscoverPayload,
} from '../helpers/fixtures';
import { anyNumber, callSetters, framed, hostile, snapshot } from '../helpers/props';

type ViewClass = { new (u8: Uint8Array): WireView; check(u8: Uint8Array, off: number, len: number): WireView | null };

/** Everything a caller could learn from a view after a successful reset. */
function deepRead(v: WireView): Record<string, unknown> {
  const s = snapshot(v);
  if (v instanceof ArpView) s.repr = parseArp(v);
  if (v instanceof TcpView) { s.optOk = v.parseOptions(); Object.assign(s, snapshot(v)); }
  if (v instanceof Ipv4View) s.csumOk = v.verifyChecksum();
  if (v instanceof NdpView) s.opts = [1, 2, 3, 5, 25, 31].map((t) => v.findOption(t));
  if (v instanceof DhcpView) s.repr = parseDhcp(v);
  if (v instanceof Dhcpv6View) {
    s.repr = parseDhcpv6(v);
    const c = v.options();
    const codes: number[] = [];
    while (c.next()) codes.push(c.code, c.dataOff, c.dataLen);
    s.codes = codes;
    s.malformed = c.malformed;
  }
  return s;
}

const ETH_SEEDS = [ARP_REQUEST, DHCP_DISCOVER, DHCPV6_SOLICIT, NDP_NS, NDP_RS, TCP_SYN];
const CASES: [string, ViewClass, Uint8Array[]][] = [
  ['EthernetView', EthernetView, ETH_SEEDS],
  ['ArpView', ArpView, [ARP_REQUEST.subarray(14)]],
  ['Ipv4View', Ipv4View, [TCP_SYN.subarray(14), DHCP_DISCOVER.subarray(14)]],
  ['Ipv6View', Ipv6View, [DHCPV6_SOLICIT.subarray(14), NDP_NS.subarray(14),
    Uint8Array.of(0x60, 0, 0, 0, 0, 24, 0, 64, ...new Uint8Array(32), 43, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0)]],
  ['TcpView', TcpView, [TCP_SYN_SEGMENT]],
  ['UdpView', UdpView, [DHCP_DISCOVER.subarray(34)]],
  ['Icmpv4View', Icmpv4View, [Uint8Array.of(8, 0, 0, 0, 0, 1, 0, 2, 9, 9)]],
  ['Icmpv6View', Icmpv6View, [NDP_RS.subarray(54)]],
  ['NdpView', NdpView, [NDP_RS.subarray(54), NDP_NS.subarray(54)]],
  ['DhcpView', DhcpView, [dhcpDiscoverPayload(), dhcpDiscoverPayload({ extraOptions: [80, 0, 0, 0, 12, 40] })]],
  ['Dhcpv6View', Dhcpv6View, [SOLICIT_PAYLOAD]],
];

const runs = { numRuns: 400 };

for (const [name, View, seeds] of CASES) {
  testProp(`${name}: reset/check never throw, whatever the bytes, offset and length`,
    [hostile(...seeds), anyNumber, anyNumber], (t, data, off, len) => {
      const v = new View(data);
      const ok = v.reset(off, len);
      const c = View.check(data, off, len);
      t.is(c !== null, ok);
      if (ok) {
        t.true(v.off >= 0 && v.len >= 0 && v.off + v.len <= data.length);
        deepRead(v);
      } else {
        t.is(v.len, 0);
      }
    }, runs);

  testProp(`${name}: results do not depend on bytes outside the range; setters stay inside`,
    [hostile(...seeds), fc.nat(9), fc.nat(9), fc.nat(0xffff)], (t, data, pre, post, value) => {
      const a = framed(data, pre, post, 0xa5);
      const b = framed(data, pre, post, 0x5a);
      const va = new View(a);
      const vb = new View(b);
      const ok = va.reset(pre, data.length);
      t.is(vb.reset(pre, data.length), ok);
      if (!ok) return;
      t.deepEqual(deepRead(va), deepRead(vb));
      callSetters(va, value);
      if (va instanceof Ipv4View) va.fillChecksum();
      for (let i = 0; i < a.length; i++) if (i < pre || i >= pre + data.length) t.is(a[i], 0xa5, `byte ${i}`);
    }, runs);
}

testProp('FrameViews and prettyFrame: never throw, same results whatever surrounds the frame',
  [hostile(...ETH_SEEDS), fc.nat(9), fc.nat(9), anyNumber, anyNumber], (t, data, pre, post, off, len) => {
    const a = framed(data, pre, post, 0xa5);
    const b = framed(data, pre, post, 0x5a);
    const fa = new FrameViews(a);
    const fb = new FrameViews(b);
    t.is(fa.parse(pre, data.length), fb.parse(pre, data.length));
    t.is(fa.l4Proto, fb.l4Proto);
    t.is(prettyFrame(a, pre, data.length), prettyFrame(b, pre, data.length));
    t.is(typeof prettyFrame(a, off, len), 'string');
    fa.parse(off, len);
  }, runs);

testProp('ARP parse/emit round trip', [fc.uint8Array({ minLength: 28, maxLength: 28 })], (t, body) => {
  body.set([0, 1, 8, 0, 6, 4], 0);
  const r = parseArp(ArpView.check(body, 0, 28)!)!;
  const out = new Uint8Array(28);
  emitArp(r, out, 0);
  t.deepEqual(out, body);
});

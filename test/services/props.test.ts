/**
 * Every service handler and the learning rules on hostile input: never
 * throw, never modify the request, never write outside [outOff, outOff+n),
 * never depend on bytes outside the frame, replies within the advertised
 * maximum and well formed (checksums verified independently).
 */
import { testProp, fc } from '@fast-check/ava';
import { arpHandle, ARP_REPLY_LEN } from '../../src/shared/services/arp';
import { serviceContextFromConfig, ServiceContext } from '../../src/shared/services/context';
import { dhcpHandle, DHCP_REPLY_MAX } from '../../src/shared/services/dhcp';
import { dhcpv6Handle, DHCPV6_REPLY_MAX } from '../../src/shared/services/dhcpv6';
import { noteGuestFrame } from '../../src/shared/services/learn';
import { ndpHandle, NDP_REPLY_MAX } from '../../src/shared/services/ndp';
import {
  ARP_REQUEST, DHCP_DISCOVER, DHCPV6_SOLICIT, NDP_NS, NDP_RS, SOLICIT_PAYLOAD, dhcpDiscoverPayload, dhcpFrame,
  dhcpv6Frame,
} from '../helpers/fixtures';
import { anyNumber, framed, hostile } from '../helpers/props';
import { concat, hex, makeConfig, refChecksum, START_MS } from '../helpers/frames';
import { decode6, decodeUdp4, dhcpOptions, dhcpv6Options } from '../helpers/decode';

type Handler = (ctx: ServiceContext, u8: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number) => number;

const fresh = () => serviceContextFromConfig(makeConfig({ searchDomains: ['example.com', 'a.example.com', 'x.org'],
  hostname: 'guest', fqdn: 'guest.example.com' }, { addr: '10.0.2.15', gateway: '10.0.2.2' }), START_MS);

const REQUEST = hex('0300 0001 0001 000a 0003 0001 525400123456 0002 000e 0001 0001 2f11ce00 9a559a559a55 0003 0028 00000001 00000000 00000000 0005 0018 20010db8000100020000000000000001 00000000 00000000');

const CASES: [string, Handler, number, Uint8Array[]][] = [
  ['arpHandle', arpHandle, ARP_REPLY_LEN, [ARP_REQUEST]],
  ['dhcpHandle', dhcpHandle, DHCP_REPLY_MAX, [DHCP_DISCOVER, dhcpFrame(dhcpDiscoverPayload({ extraOptions: [80, 0], msgType: 3 })),
    dhcpFrame(dhcpDiscoverPayload({ extraOptions: [81, 5, 1, 0, 0, 1, 0x61, 0] }))]],
  ['ndpHandle', ndpHandle, NDP_REPLY_MAX, [NDP_NS, NDP_RS]],
  ['dhcpv6Handle', dhcpv6Handle, DHCPV6_REPLY_MAX, [DHCPV6_SOLICIT, dhcpv6Frame(REQUEST),
    dhcpv6Frame(concat(SOLICIT_PAYLOAD, hex('0027 0004 01 01 61 00')))]],
];

/** Independent well-formedness check of a reply frame. */
function replyOk(f: Uint8Array): boolean {
  const et = (f[12] << 8) | f[13];
  if (et === 0x0806) return f.length === 42;
  if (et === 0x0800) return refChecksum(f.subarray(14, 34)) === 0 && ((f[16] << 8) | f[17]) === f.length - 14;
  if (et === 0x86dd) { const d = decode6(f); return d.l4ChecksumOk && d.payloadLen === f.length - 54 && d.hopLimit === 255; }
  return false;
}

const runs = { numRuns: 500 };

for (const [name, handle, max, seeds] of CASES) {
  testProp(`${name}: hostile frames and offsets never throw; reply confined and well formed`,
    [hostile(...seeds), fc.nat(8), fc.nat(8), fc.nat(40)], (t, data, pre, post, outOff) => {
      const inA = framed(data, pre, post, 0xa5);
      const inB = framed(data, pre, post, 0x5a);
      const before = inA.slice();
      const outA = new Uint8Array(outOff + max + 16).fill(0xa5);
      const outB = new Uint8Array(outOff + max + 16).fill(0xa5);
      const n = handle(fresh(), inA, pre, data.length, outA, outOff);
      const m = handle(fresh(), inB, pre, data.length, outB, outOff);
      t.is(n, m, 'same answer whatever surrounds the frame');
      t.deepEqual(outA, outB);
      t.deepEqual(inA, before, 'request untouched');
      t.true(n >= 0 && n <= max);
      for (let i = 0; i < outA.length; i++) if (i < outOff || i >= outOff + n) t.is(outA[i], 0xa5, `out byte ${i}`);
      if (n > 0) t.true(replyOk(outA.subarray(outOff, outOff + n)));
    }, runs);

  testProp(`${name}: arbitrary offsets and lengths never throw`,
    [hostile(...seeds), anyNumber, anyNumber, anyNumber], (t, data, off, len, outOff) => {
      const out = new Uint8Array(max + 40);
      const n = handle(fresh(), data, off, len, out, outOff);
      t.true(n >= 0 && n <= max);
    }, { numRuns: 300 });
}

testProp('noteGuestFrame never throws and never writes the frame',
  [hostile(ARP_REQUEST, DHCP_DISCOVER, DHCPV6_SOLICIT, NDP_NS), anyNumber, anyNumber], (t, data, off, len) => {
    const before = data.slice();
    noteGuestFrame(fresh(), data, off, len);
    t.deepEqual(data, before);
  }, runs);

/** The FQDN in wire labels, as fresh() configures it. */
const OUR_FQDN = Array.from(hex('05 6775657374 07 6578616d706c65 03 636f6d 00'));

testProp('DHCP option 81 from the client, any content: answered, our name intact, O exactly when S was asked',
  [fc.uint8Array({ maxLength: 80 }), fc.boolean()], (t, data, withFlags) => {
    const payload = withFlags ? data : data.subarray(0, 0);
    const f = dhcpFrame(dhcpDiscoverPayload({ prl: [1], extraOptions: [81, payload.length, ...payload] }));
    const out = new Uint8Array(DHCP_REPLY_MAX);
    const n = dhcpHandle(fresh(), f, 0, f.length, out, 0);
    t.true(n > 0);
    const o81 = dhcpOptions(decodeUdp4(out.subarray(0, n)).payload.subarray(240)).list.find(([c]) => c === 81)![1];
    const asked = payload.length > 0 && (payload[0] & 0x01) !== 0;
    t.is(o81[0], asked ? 0x06 : 0x04);
    t.deepEqual(o81.slice(1), [255, 255, ...OUR_FQDN]);
  }, runs);

testProp('DHCPv6 option 39 from the client, any content: answered, our name intact, O exactly when S was asked',
  [fc.uint8Array({ maxLength: 80 })], (t, payload) => {
    const f = dhcpv6Frame(concat(SOLICIT_PAYLOAD, [0, 39, 0, payload.length], payload));
    const out = new Uint8Array(DHCPV6_REPLY_MAX);
    const n = dhcpv6Handle(fresh(), f, 0, f.length, out, 0);
    t.true(n > 0);
    const opts = dhcpv6Options(decode6(out.subarray(0, n)).l4.subarray(12));
    const o39 = Array.from(opts.find(([c]) => c === 39)![1]);
    const asked = payload.length > 0 && (payload[0] & 0x01) !== 0;
    t.deepEqual(o39, [asked ? 0x02 : 0x00, ...OUR_FQDN]);
  }, runs);

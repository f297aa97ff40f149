/**
 * Fuzz target for the frame parsers and link services, in the Jazzer.js
 * shape (`module.exports.fuzz(data)`): run it with
 * `npx jazzer dist/test/fuzz/frames.fuzz.js` where @jazzer.js/core loads
 * (see the report: its linux-x64 prebuild needs glibc ≥ 2.38), or with the
 * dependency-free mutation driver `node dist/test/fuzz/run.js [iterations]`.
 *
 * The first two input bytes choose the frame's offset and trailing slack in
 * the buffer; the rest is the frame. Invariants (a violation throws, which
 * both drivers report as a crash): nothing throws, the input is never
 * modified, replies stay within their slot and their advertised maximum.
 */
import { arpHandle, ARP_REPLY_LEN } from '../../src/shared/services/arp';
import { serviceContextFromConfig, ServiceContext } from '../../src/shared/services/context';
import { dhcpHandle, DHCP_REPLY_MAX } from '../../src/shared/services/dhcp';
import { dhcpv6Handle, DHCPV6_REPLY_MAX } from '../../src/shared/services/dhcpv6';
import { linkServiceFor } from '../../src/shared/services/dispatch';
import { noteGuestFrame } from '../../src/shared/services/learn';
import { ndpHandle, NDP_REPLY_MAX } from '../../src/shared/services/ndp';
import { FrameViews } from '../../src/shared/wire/frame';
import { prettyFrame } from '../../src/shared/wire/pretty';
import { makeConfig, START_MS } from '../helpers/frames';

type Handler = (ctx: ServiceContext, u8: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number) => number;
const HANDLERS: [Handler, number][] = [
  [arpHandle, ARP_REPLY_LEN], [dhcpHandle, DHCP_REPLY_MAX], [ndpHandle, NDP_REPLY_MAX], [dhcpv6Handle, DHCPV6_REPLY_MAX],
];
const OUT_OFF = 8;
const out = new Uint8Array(OUT_OFF + 1500 + 8);
const cfg = makeConfig({ searchDomains: ['example.com', 'a.example.com'] }, { addr: '10.0.2.15', gateway: '10.0.2.2' });

function fail(msg: string): never {
  throw new Error(`fuzz invariant: ${msg}`);
}

/** One fuzz iteration over `data`. */
export function fuzz(data: Uint8Array): void {
  if (data.length < 2) return;
  const pre = data[0] & 7;
  const post = data[1] & 7;
  const frame = data.subarray(2);
  const buf = new Uint8Array(new SharedArrayBuffer(pre + frame.length + post)).fill(0xa5);
  buf.set(frame, pre);
  const before = buf.slice();
  const ctx = serviceContextFromConfig(cfg, START_MS);

  const fv = new FrameViews(buf);
  fv.parse(pre, frame.length);
  linkServiceFor(fv);
  if (typeof prettyFrame(buf, pre, frame.length) !== 'string') fail('prettyFrame');
  noteGuestFrame(ctx, buf, pre, frame.length);
  for (const [handle, max] of HANDLERS) {
    out.fill(0xa5);
    const n = handle(ctx, buf, pre, frame.length, out, OUT_OFF);
    if (!(n >= 0 && n <= max)) fail(`${handle.name} returned ${n}`);
    for (let i = 0; i < out.length; i++) {
      if ((i < OUT_OFF || i >= OUT_OFF + n) && out[i] !== 0xa5) fail(`${handle.name} wrote out[${i}]`);
    }
  }
  for (let i = 0; i < buf.length; i++) if (buf[i] !== before[i]) fail(`input modified at ${i}`);
}

module.exports.fuzz = fuzz;

/**
 * Fuzz target for the frame parsers and link services, in the Jazzer.js
 * shape (`module.exports.fuzz(data)`): the coverage-guided engine runs it
 * as target "frames" (and, wrapped, as the *-service targets: targets.ts),
 * `node dist/test/fuzz/fuzz.js --targets frames`; where @jazzer.js/core
 * loads (its linux-x64 prebuild needs glibc ≥ 2.38) also
 * `npx jazzer dist/test/fuzz/frames.fuzz.js`.
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
const out = new Uint8Array(OUT_OFF + 1500 + 8).fill(0xa5);
const outB = Buffer.from(out.buffer);
const CANARY = Buffer.alloc(out.length, 0xa5);
const cfg = makeConfig({ searchDomains: ['example.com', 'a.example.com'] }, { addr: '10.0.2.15', gateway: '10.0.2.2' });

function fail(msg: string): never {
  throw new Error(`fuzz invariant: ${msg}`);
}

/** The services' state as configured: each iteration starts from a copy (no state carried over). */
const CTX = serviceContextFromConfig(cfg, START_MS);
/** A buffer and its views per buffer length (views check ranges against the buffer's end). */
const bufs = new Map<number, { buf: Uint8Array; fv: FrameViews; svc: FrameViews }>();

/** One fuzz iteration over `data`. */
export function fuzz(data: Uint8Array): void {
  if (data.length < 2) return;
  const pre = data[0] & 7;
  const post = data[1] & 7;
  const frame = data.subarray(2);
  const size = pre + frame.length + post;
  let b = bufs.get(size);
  if (!b) {
    const buf = new Uint8Array(new SharedArrayBuffer(size));
    b = { buf, fv: new FrameViews(buf), svc: new FrameViews(buf) };
    bufs.set(size, b);
  }
  const { buf, fv } = b;
  buf.fill(0xa5);
  buf.set(frame, pre);
  const before = Buffer.from(buf);
  const ctx = structuredClone(CTX);
  ctx.views = b.svc; // the services' scratch views over this buffer (context.ts viewsFor)

  fv.parse(pre, frame.length);
  linkServiceFor(fv);
  if (typeof prettyFrame(buf, pre, frame.length) !== 'string') fail('prettyFrame');
  noteGuestFrame(ctx, buf, pre, frame.length);
  for (const [handle, max] of HANDLERS) {
    const n = handle(ctx, buf, pre, frame.length, out, OUT_OFF);
    if (!(n >= 0 && n <= max)) fail(`${handle.name} returned ${n}`);
    // out is all canary but for the reply's slot (memcmp, not a JS loop: this runs millions of times)
    if (Buffer.compare(outB.subarray(0, OUT_OFF), CANARY.subarray(0, OUT_OFF)) !== 0 ||
      Buffer.compare(outB.subarray(OUT_OFF + n), CANARY.subarray(OUT_OFF + n)) !== 0) {
      fail(`${handle.name} wrote outside its ${n}-byte reply`);
    }
    out.fill(0xa5, OUT_OFF, OUT_OFF + n);
  }
  if (Buffer.compare(Buffer.from(buf.buffer, 0, buf.length), before) !== 0) fail('input modified');
}

module.exports.fuzz = fuzz;

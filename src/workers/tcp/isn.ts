/**
 * Initial sequence numbers (RFC 6528, SPEC §4.8): a keyed hash of the
 * connection's tap-side identity plus a clock, so that sequence numbers of
 * a reused 4-tuple keep moving forward and cannot be guessed from outside.
 *
 * ISN = (hi32(F) XOR lo32(F)) + M, F = SipHash-2-4(secret; our address,
 * guest address, our port, guest port, protocol, pif), M = monotonic
 * nanoseconds >> 5 (32 ns ticks, wrapping every ~137 s).
 */
import { siphash24 } from '../../shared/flow/siphash';
import { PIF } from '../../shared/flow/table';
import type { TcpConn } from './conn';

const msg = new Uint8Array(38);

/** The tap-side flowside bytes hashed for the ISN. */
export function isnInput(c: TcpConn): Uint8Array {
  msg.set(c.ourAddr, 0);
  msg.set(c.guestAddr, 16);
  msg[32] = c.ourPort >>> 8;
  msg[33] = c.ourPort & 0xff;
  msg[34] = c.guestPort >>> 8;
  msg[35] = c.guestPort & 0xff;
  msg[36] = 6;
  msg[37] = PIF.TAP;
  return msg;
}

/** ISN from the secret, the connection's identity and a clock in ns. */
export function isnFrom(secret: Uint8Array, c: TcpConn, ns: bigint): number {
  const [hi, lo] = siphash24(secret, isnInput(c));
  const m = Number((ns >> 5n) & 0xffffffffn);
  return (((hi ^ lo) >>> 0) + m) >>> 0;
}

export function initialSeq(ctx: { secret: Uint8Array }, c: TcpConn): number {
  return isnFrom(ctx.secret, c, process.hrtime.bigint());
}

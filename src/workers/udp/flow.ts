/**
 * UDP flow creation (SPEC.md §5.1, §5.2; NAT §2.6–§2.8).
 *
 * Theory of operation
 * - From the tap (`udpFlowFromTap`): the guest's 4-tuple is the INISIDE
 *   (TAP, hashed); the target is always HOST: destination per §2.6 (DNS
 *   forwarding, host-loopback mapping, guest-address mapping), our address
 *   the -o address or any, our port **the guest's source port**. The reply
 *   socket is bound there (SO_REUSEADDR, so one guest port can talk to
 *   several peers), connected to the target and put in epoll.
 * - From a listener (`udpFlowFromListener`): the datagram's source is the
 *   INISIDE endpoint (pif HOST for -u, SPLICE for -U), our end the
 *   listener's port; the listener is duplicated into the flow. Target:
 *   - -U (namespace loopback): both ends must be loopback; HOST socket
 *     bound to the same loopback address and source port, connected to the
 *     host's 127.0.0.1/::1 at port + delta (§2.8);
 *   - -u in pasta, loopback source, splicing on: SPLICE socket in the
 *     namespace bound to any:source port, connected to the namespace's
 *     seen address (or its loopback with --host-lo-to-ns-lo) at port +
 *     delta (§2.8);
 *   - otherwise TAP (hashed): source per §2.7 (loopback → map-host-loopback
 *     or our tap address, ...), destination the guest's seen address at
 *     port + delta; source port kept.
 * - Any failure undoes the whole flow (`core.free`) and counts the reason.
 */
import { UdpCore, Listener, FLOW_TYPE, IPPROTO_UDP, anyOf } from './core';
import { INISIDE, TGTSIDE, PIF } from '../../shared/flow/table';
import { LOOPBACK4, LOOPBACK6 } from '../../shared/flow/nat';
import {
  inanyIs4, inanyIsLoopback, inanyIsUnicast, inanyFrom4, inanyCopy,
} from '../../shared/flow/inany';

/**
 * A new flow for a guest datagram src:sport → dst:dport (16-byte inany).
 * Returns the side reference of the guest's side (flow << 1 | INISIDE), or -1.
 */
export function udpFlowFromTap(c: UdpCore, src: Uint8Array, sport: number, dst: Uint8Array, dport: number,
  now: number): number {
  const f = c.flowFromTap(IPPROTO_UDP, inanyIs4(dst, 0), src, sport, dst, dport, true);
  if (f < 0) return -1;
  if (c.replySocket(f, TGTSIDE, false) < 0) {
    c.free(f);
    return -1;
  }
  c.activate(f, FLOW_TYPE.UDP, now);
  return f * 2 + INISIDE;
}

/**
 * A new flow for a datagram from src:sport (16-byte inany) received on a
 * listener. Returns the side reference of the listener's side, or -1.
 */
export function udpFlowFromListener(c: UdpCore, l: Listener, src: Uint8Array, sport: number, now: number): number {
  if (!inanyIsUnicast(src, 0)) {
    c.drop(c.ix.badAddr);
    return -1;
  }
  if (sport === 0) {
    c.drop(c.ix.zeroPort);
    return -1;
  }
  const v4 = inanyIs4(src, 0);
  const fam = v4 ? c.nat.v4 : c.nat.v6;
  const loop = inanyIsLoopback(src, 0);
  if (l.pif === PIF.SPLICE && !loop) {
    c.drop(c.ix.notLoopback);
    return -1;
  }
  const f = c.alloc();
  if (f < 0) return -1;
  const t = c.table;
  const any = anyOf(v4);
  if (!t.insert(f, INISIDE, IPPROTO_UDP, l.pif, any, 0, l.port, src, 0, sport)) {
    c.free(f);
    c.drop(c.ix.tableFull);
    return -1;
  }
  const tport = (l.port + l.delta) & 0xffff;
  const lo = v4 ? LOOPBACK4 : LOOPBACK6;
  if (l.pif === PIF.SPLICE) {
    // -U: namespace loopback → host loopback, from the same loopback address
    t.setKey(f, TGTSIDE, IPPROTO_UDP, PIF.HOST, src, 0, sport, lo, 0, tport);
    if (c.replySocket(f, TGTSIDE, false) < 0) {
      c.free(f);
      return -1;
    }
  } else if (c.isPasta && !c.cfg.noSplice && loop) {
    // -u, loopback source: spliced into the namespace
    const ep = c.c16;
    if (c.cfg.hostLoToNsLo) inanyCopy(ep, 0, lo, 0);
    else if (v4) inanyFrom4(ep, 0, c.guest.addr4Seen, 0);
    else inanyCopy(ep, 0, c.guest.addr6Seen, 0);
    t.setKey(f, TGTSIDE, IPPROTO_UDP, PIF.SPLICE, any, 0, sport, ep, 0, tport);
    if (c.replySocket(f, TGTSIDE, true) < 0) {
      c.free(f);
      return -1;
    }
  } else {
    if (!fam.enabled) {
      c.free(f);
      c.drop(c.ix.familyOff);
      return -1;
    }
    const our = c.c16;
    const ep = c.d16;
    if (!c.nat.inboundSrc(src, 0, c.guest, our, 0)) {
      c.free(f);
      c.drop(c.ix.refused);
      return -1;
    }
    c.nat.inboundDst(our, 0, c.guest, ep, 0);
    if (!t.insert(f, TGTSIDE, IPPROTO_UDP, PIF.TAP, our, 0, sport, ep, 0, tport)) {
      // the guest already has a flow with this 4-tuple (its own, from the tap)
      c.free(f);
      c.drop(c.ix.tableFull);
      return -1;
    }
  }
  if (!c.dupListener(f, INISIDE, l)) {
    c.free(f);
    return -1;
  }
  c.activate(f, FLOW_TYPE.UDP, now);
  return f * 2 + INISIDE;
}

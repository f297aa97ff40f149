/**
 * The boundary between the TCP worker and the spliced-TCP path (SPEC.md
 * §2.8, §4.14). The TCP worker owns listeners and epoll; for every accepted
 * connection it asks `acceptPath` whether the connection goes over the tap
 * (its own TCP translation), over a splice (loopback ↔ loopback, socket to
 * socket through pipes, no Layer 2), or nowhere. Spliced connections are
 * handed to the SplicePath, which owns them from then on.
 */
import type { Config } from '../../shared/config';
import type { GuestState } from '../../shared/guestState';
import type { ListenerInfo } from '../../shared/messages';
import { sockaddrTo } from '../../shared/sockaddr';
import { inanyIsLoopback } from '../../shared/flow/inany';
import type { BufferProbe } from './splicePool';
import type { Stats } from '../../shared/stats';

export type AcceptPath = 'tap' | 'splice' | 'drop';

const peerAddr = new Uint8Array(16);

/**
 * Where an accepted connection goes:
 * - namespace-side listeners (-T): spliced to the host's loopback; both
 *   ends must be loopback, anything else is dropped;
 * - host-side listeners (-t): pasta splices connections from a loopback
 *   source (unless --no-splice); everything else, and all of passt, goes
 *   over the tap.
 */
export function acceptPath(cfg: Config, l: ListenerInfo, peer: Uint8Array): AcceptPath {
  if (sockaddrTo(peer, 0, peerAddr, 0) < 0) return 'drop';
  const lo = inanyIsLoopback(peerAddr, 0);
  if (l.side === 'ns') return lo ? 'splice' : 'drop';
  if (cfg.mode === 'pasta' && !cfg.noSplice && lo) return 'splice';
  return 'tap';
}

/** What the TCP worker lends the splice path. */
export interface SpliceHost {
  readonly cfg: Config;
  /** Target network namespace (for namespace-side sockets: native.nsSockets). */
  readonly nsfd: number;
  /** The guest's (namespace's) learnt addresses: host → namespace splices target addr_seen. */
  readonly guest: GuestState;
  /** The TCP worker's start-up probe of the socket buffer limits (SPEC §4.12). */
  readonly bufs: BufferProbe;
  /** The TCP worker's counters (spliceActive, spliceFlows, spliceBytes*), if any. */
  readonly stats?: Stats<'tcp'>;
  /** epoll registration in the worker's set; refs use EpollType.TCP_SPLICE. */
  add(fd: number, events: number, ref: number): void;
  mod(fd: number, events: number, ref: number): number;
  del(fd: number): number;
}

/** One spliced connection as the control socket shows it. */
export interface SpliceFlowInfo {
  index: number;
  /** The accepted side's peer and the target, "addr:port". */
  from: string;
  to: string;
  state: string;
  /** Bytes read from the accepted side, and from the target side. */
  bytesFromClient: number;
  bytesFromTarget: number;
  ageMs: number;
}

/** The spliced-TCP path, driven by the TCP worker's loop. */
export interface SplicePath {
  /** Takes over an accepted connection that acceptPath() sent here. */
  accept(l: ListenerInfo, fd: number, peer: Uint8Array, now: number): void;
  /** An event on one of its descriptors (ref type TCP_SPLICE). */
  onEvent(ref: number, events: number, now: number): void;
  /** Deferred work (pool refills, pending moves); true if more is pending. */
  work(now: number): boolean;
  /** Milliseconds until its next deadline. */
  timeoutMs(now: number): number;
  /** True when no spliced connection still holds data to move (shutdown drain). */
  drained(now: number): boolean;
  /** Open spliced connections. */
  readonly count: number;
  /** Every open spliced connection, for the control socket's `flows` (at most max). */
  list(max: number, now: number): SpliceFlowInfo[];
  /** Last time a small exchange (request/response traffic) was forwarded, ms. */
  readonly smallAt: number;
}

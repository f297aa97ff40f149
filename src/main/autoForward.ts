/**
 * Automatic port forwarding, pasta's `auto` (SPEC.md §8.4).
 *
 * Theory of operation
 * - `-t auto` / `-u auto` (inbound) follow the ports listening inside the
 *   namespace, `-T auto` / `-U auto` (outbound) those of the init
 *   namespace: /proc/net/tcp and tcp6 (state LISTEN), udp and udp6
 *   (unconnected), the namespace's files opened once by a native thread
 *   inside it (/proc/thread-self/net/...), all of them re-read from offset
 *   0 (pread) at every scan. Ports keep their number (no mapping).
 * - One scan before readiness, then one every second (SPEC: the TCP and
 *   UDP timers), on the main thread: it is control work, a few reads.
 * - Loop avoidance: a port is never forwarded back to where it came from.
 *   What a scan finds on one side includes our own listeners there (the
 *   opposite direction's); those are excluded. "Ours" is the set of ports
 *   we hold listeners on at the start of the scan — the static ones of the
 *   other option and the auto ones — so a listener being released in the
 *   same scan (closed by its worker a moment later) is not mistaken for a
 *   new port of that side.
 * - UDP `auto` also forwards the ports of listening TCP sockets (iperf3
 *   pairs a TCP control port with UDP data), except our own TCP and UDP
 *   listeners.
 * - Rebinding after each scan: listeners of ports that disappeared are
 *   released ('unlisten' to their worker, which closes them); missing ones
 *   are opened — host side as a static forward without address (§8.3,
 *   dual-stack or one per family), namespace side on 127.0.0.1 and ::1
 *   inside the namespace (sockets created there in one batch per family and
 *   scan). A port that cannot be bound (in use, or below
 *   ip_unprivileged_port_start: EACCES) is skipped silently and tried again
 *   at the next scan.
 */
import * as fs from 'node:fs';
import type { Config, ForwardSpec } from '../shared/config';
import type { ListenerInfo } from '../shared/messages';
import { native } from '../shared/native';
import {
  AF_INET, AF_INET6, O_RDONLY, O_CLOEXEC, SOCK_STREAM, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_CLOEXEC,
} from '../shared/linux';
import { LOOPBACK4, LOOPBACK6 } from '../shared/flow/nat';
import { log } from '../shared/log';
import { procNetPorts, TCP_LISTEN, UDP_UNCONNECTED } from './procNet';
import type { Forwarder } from './forward';

/** Scan period (SPEC §8.4). */
export const SCAN_INTERVAL_MS = 1000;

type Proto = 'tcp' | 'udp';
type Side = 'host' | 'ns';


/** The /proc/net files of one namespace: fds or -1. */
interface NetFiles {
  tcp: number;
  tcp6: number;
  udp: number;
  udp6: number;
}

/** One auto direction: which proto, which side its listeners are on, what it holds. */
interface AutoDir {
  proto: Proto;
  /** Side its listeners are bound on ('host' for -t/-u, 'ns' for -T/-U). */
  side: Side;
  /** Held listeners by port. */
  held: Map<number, ListenerInfo[]>;
  /** Recently released ports → the scan number until which they still count as ours. */
  released: Map<number, number>;
}

/** Scans a released listener still counts as ours (its worker closes it asynchronously). */
const RELEASE_GRACE_SCANS = 2;

/** Ports of a static spec (the listening ports). */
function specPorts(spec: ForwardSpec): Set<number> {
  const s = new Set<number>();
  for (const r of spec.rules) for (const p of r.ports) s.add(p.port);
  return s;
}

/**
 * Reads a whole /proc file from offset 0 into the scratch buffer.
 * @returns the text, or null if it cannot be read
 */
function preadAll(fd: number, scratch: { buf: Buffer }): string | null {
  let total = 0;
  try {
    for (;;) {
      if (scratch.buf.length - total < 4096) {
        const bigger = Buffer.allocUnsafe(scratch.buf.length * 2);
        scratch.buf.copy(bigger, 0, 0, total);
        scratch.buf = bigger;
      }
      const n = fs.readSync(fd, scratch.buf, total, scratch.buf.length - total, total);
      if (n <= 0) break;
      total += n;
    }
  } catch {
    return null;
  }
  return scratch.buf.toString('latin1', 0, total);
}

/** Ports found listening (TCP) or bound unconnected (UDP) on each side, or ours there. */
export interface SidePorts {
  nsTcp: Set<number>;
  nsUdp: Set<number>;
  hostTcp: Set<number>;
  hostUdp: Set<number>;
}

/** What each auto direction should forward. */
export interface WantedPorts {
  tcpIn: Set<number>;
  udpIn: Set<number>;
  tcpOut: Set<number>;
  udpOut: Set<number>;
}

function minus(a: Set<number>, ...ex: Set<number>[]): Set<number> {
  const r = new Set<number>();
  for (const p of a) if (!ex.some((e) => e.has(p))) r.add(p);
  return r;
}

function union(a: Set<number>, b: Set<number>): Set<number> {
  const r = new Set(a);
  for (const p of b) r.add(p);
  return r;
}

/**
 * SPEC §8.4 with loop avoidance: inbound (-t/-u) follows the namespace,
 * outbound (-T/-U) the host; UDP also follows TCP listeners; what we
 * listen on ourselves on the scanned side is never forwarded back.
 * @param found what the scan found on each side
 * @param ours our own listeners on each side
 */
export function wantedPorts(found: SidePorts, ours: SidePorts): WantedPorts {
  return {
    tcpIn: minus(found.nsTcp, ours.nsTcp),
    udpIn: minus(union(found.nsUdp, found.nsTcp), ours.nsTcp, ours.nsUdp),
    tcpOut: minus(found.hostTcp, ours.hostTcp),
    udpOut: minus(union(found.hostUdp, found.hostTcp), ours.hostTcp, ours.hostUdp),
  };
}

export class AutoForwarder {
  private readonly dirs: { tcpIn?: AutoDir; udpIn?: AutoDir; tcpOut?: AutoDir; udpOut?: AutoDir } = {};
  /** Static listening ports per (proto, side): never ours to scan for. */
  private readonly staticPorts: Record<`${Proto}/${Side}`, Set<number>>;
  private readonly hostFiles: NetFiles;
  private readonly nsFiles: NetFiles;
  private readonly scratch = { buf: Buffer.allocUnsafe(64 << 10) };
  private timer: NodeJS.Timeout | null = null;
  private readErrorLogged = false;
  /** Scans done so far. */
  private scans = 0;

  /** Null unless some direction is `auto` (pasta only). */
  static create(cfg: Config, nsfd: number, fwd: Forwarder): AutoForwarder | null {
    if (cfg.mode !== 'pasta' || nsfd < 0) return null;
    const any = [cfg.tcpIn, cfg.udpIn, cfg.tcpOut, cfg.udpOut].some((s) => s.mode === 'auto');
    return any ? new AutoForwarder(cfg, nsfd, fwd) : null;
  }

  private constructor(private readonly cfg: Config, private readonly nsfd: number, private readonly fwd: Forwarder) {
    const mk = (proto: Proto, side: Side): AutoDir => ({ proto, side, held: new Map(), released: new Map() });
    if (cfg.tcpIn.mode === 'auto') this.dirs.tcpIn = mk('tcp', 'host');
    if (cfg.udpIn.mode === 'auto') this.dirs.udpIn = mk('udp', 'host');
    if (cfg.tcpOut.mode === 'auto') this.dirs.tcpOut = mk('tcp', 'ns');
    if (cfg.udpOut.mode === 'auto') this.dirs.udpOut = mk('udp', 'ns');
    this.staticPorts = {
      'tcp/host': specPorts(cfg.tcpIn), 'udp/host': specPorts(cfg.udpIn),
      'tcp/ns': specPorts(cfg.tcpOut), 'udp/ns': specPorts(cfg.udpOut),
    };
    // inbound auto reads the namespace's files, outbound the init namespace's
    const inbound = !!(this.dirs.tcpIn || this.dirs.udpIn);
    const outbound = !!(this.dirs.tcpOut || this.dirs.udpOut);
    const nsOpen = (name: string): number => {
      const fd = native.nsOpen(nsfd, `/proc/thread-self/net/${name}`, O_RDONLY | O_CLOEXEC);
      if (fd < 0) log.warn(`Couldn't open /proc/net/${name} in the namespace: ${native.strerror(-fd)}`);
      return fd;
    };
    const hostOpen = (name: string): number => {
      const fd = native.open(`/proc/thread-self/net/${name}`, O_RDONLY | O_CLOEXEC, 0);
      if (fd < 0) log.warn(`Couldn't open /proc/net/${name}: ${native.strerror(-fd)}`);
      return fd;
    };
    const none: NetFiles = { tcp: -1, tcp6: -1, udp: -1, udp6: -1 };
    const wantUdpIn = !!this.dirs.udpIn;
    const wantUdpOut = !!this.dirs.udpOut;
    this.nsFiles = inbound ? {
      tcp: nsOpen('tcp'), tcp6: nsOpen('tcp6'),
      udp: wantUdpIn ? nsOpen('udp') : -1, udp6: wantUdpIn ? nsOpen('udp6') : -1,
    } : none;
    this.hostFiles = outbound ? {
      tcp: hostOpen('tcp'), tcp6: hostOpen('tcp6'),
      udp: wantUdpOut ? hostOpen('udp') : -1, udp6: wantUdpOut ? hostOpen('udp6') : -1,
    } : { ...none };
  }

  /** First scan (before readiness), then one every SCAN_INTERVAL_MS. */
  start(): void {
    this.scan();
    this.timer = setInterval(() => this.scan(), SCAN_INTERVAL_MS);
    this.timer.unref();
  }

  /** Stops scanning (shutdown); held listeners stay with their workers. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Ports currently forwarded automatically, for tests and debugging. */
  forwarded(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const [k, d] of Object.entries(this.dirs)) if (d) out[k] = [...d.held.keys()].sort((a, b) => a - b);
    return out;
  }

  private readPorts(files: NetFiles, proto: Proto): Set<number> {
    const s = new Set<number>();
    const state = proto === 'tcp' ? TCP_LISTEN : UDP_UNCONNECTED;
    for (const fd of proto === 'tcp' ? [files.tcp, files.tcp6] : [files.udp, files.udp6]) {
      if (fd < 0) continue;
      const text = preadAll(fd, this.scratch);
      if (text === null) {
        if (!this.readErrorLogged) log.warn('Couldn\'t read a /proc/net file for automatic forwarding');
        this.readErrorLogged = true;
        continue;
      }
      procNetPorts(text, state, s);
    }
    s.delete(0);
    return s;
  }

  /**
   * Ports we listen on for (proto, side): static forwards, held auto ones,
   * and those released in the last scans (their sockets may not be closed yet).
   */
  private ours(proto: Proto, side: Side): Set<number> {
    const s = new Set(this.staticPorts[`${proto}/${side}`]);
    // and the ports added at run time through the control socket
    for (const p of this.fwd.heldPorts(proto, side)) s.add(p);
    for (const d of Object.values(this.dirs)) {
      if (!d || d.proto !== proto || d.side !== side) continue;
      for (const p of d.held.keys()) s.add(p);
      for (const [p, until] of d.released) {
        if (until < this.scans) d.released.delete(p); else s.add(p);
      }
    }
    return s;
  }

  /** One scan and rebind. */
  scan(): void {
    this.scans++;
    const d = this.dirs;
    // what listens where (only what some auto direction needs)
    const nsTcp = d.tcpIn || d.udpIn ? this.readPorts(this.nsFiles, 'tcp') : new Set<number>();
    const nsUdp = d.udpIn ? this.readPorts(this.nsFiles, 'udp') : new Set<number>();
    const hostTcp = d.tcpOut || d.udpOut ? this.readPorts(this.hostFiles, 'tcp') : new Set<number>();
    const hostUdp = d.udpOut ? this.readPorts(this.hostFiles, 'udp') : new Set<number>();
    // our own listeners on each side, as they are before this scan's changes
    const want = wantedPorts({ nsTcp, nsUdp, hostTcp, hostUdp }, {
      nsTcp: this.ours('tcp', 'ns'), nsUdp: this.ours('udp', 'ns'),
      hostTcp: this.ours('tcp', 'host'), hostUdp: this.ours('udp', 'host'),
    });
    for (const k of ['tcpOut', 'udpOut', 'tcpIn', 'udpIn'] as const) {
      const dir = d[k];
      if (dir) this.rebind(dir, want[k], k);
    }
  }

  private rebind(dir: AutoDir, want: Set<number>, what: string): void {
    const gone: number[] = [];
    for (const [port, ls] of dir.held) {
      if (want.has(port)) continue;
      for (const l of ls) gone.push(l.id);
      dir.held.delete(port);
      dir.released.set(port, this.scans + RELEASE_GRACE_SCANS);
    }
    if (gone.length) {
      this.fwd.release(gone, dir.proto);
      log.debug(`auto ${what}: released ${gone.length} listener(s)`);
    }
    const add: number[] = [];
    for (const p of want) {
      if (dir.held.has(p)) continue;
      dir.released.delete(p);
      add.push(p);
    }
    if (!add.length) return;
    add.sort((a, b) => a - b);
    const got: ListenerInfo[] = [];
    if (dir.side === 'host') {
      for (const port of add) {
        const r = this.fwd.bindHost(dir.proto, null, null, port);
        if ('errno' in r) continue;
        const ls = r.fds.map((fd) => this.info(fd, dir, port));
        dir.held.set(port, ls);
        got.push(...ls);
      }
    } else {
      this.bindNsBatch(dir, add, got);
    }
    if (got.length) this.fwd.handOver(got);
  }

  /** Namespace-side listeners on 127.0.0.1 and ::1: one native thread per family for the whole batch. */
  private bindNsBatch(dir: AutoDir, ports: number[], got: ListenerInfo[]): void {
    const type = (dir.proto === 'tcp' ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
    const fams: [number, Uint8Array, number][] = [];
    if (this.cfg.ip4.enabled) fams.push([AF_INET, LOOPBACK4, -1]);
    if (this.cfg.ip6.enabled) fams.push([AF_INET6, LOOPBACK6, 1]);
    const byPort = new Map<number, ListenerInfo[]>();
    for (const [family, addr, v6only] of fams) {
      const fds = new Int32Array(ports.length);
      const n = native.nsSockets(this.nsfd, family, type, 0, ports.length, fds);
      for (let i = 0; i < ports.length; i++) {
        const pre = i < n ? fds[i] : -1;
        const fd = this.fwd.openBound(dir.proto, addr, ports[i], null, v6only, this.nsfd, pre);
        if (fd < 0) continue;
        const l = this.info(fd, dir, ports[i]);
        const list = byPort.get(ports[i]);
        if (list) list.push(l); else byPort.set(ports[i], [l]);
      }
    }
    for (const [port, ls] of byPort) {
      dir.held.set(port, ls);
      got.push(...ls);
    }
  }

  private info(fd: number, dir: AutoDir, port: number): ListenerInfo {
    return { id: this.fwd.allocId(), fd, proto: dir.proto, side: dir.side, port, delta: 0 };
  }
}

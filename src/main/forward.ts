/**
 * Port forwarding listeners (SPEC.md §8).
 *
 * Theory of operation
 * - The main thread owns binding: for every forwarded port of -t/-u (host
 *   side, in the init namespace) and, in pasta, -T/-U (namespace side, on
 *   127.0.0.1 and ::1 inside the namespace, sockets created there by a
 *   native thread), it creates and binds the listening sockets, then hands
 *   them to the TCP or UDP worker ('listen' messages), which owns them from
 *   then on and closes them on 'unlisten'.
 * - Host side, without a bind address and with both families enabled, one
 *   dual-stack socket on [::] is tried first, then one socket per family
 *   (IPv6 with IPV6_V6ONLY). With an address, only that family; with a
 *   device, SO_BINDTODEVICE (a socket that cannot be restricted is closed,
 *   never left listening unfiltered). SO_REUSEADDR always, IP_FREEBIND with
 *   --freebind, IP(V6)_RECVERR on UDP sockets, listen(128) on TCP ones.
 * - Static forwards are bound before readiness: a specific port that
 *   cannot be bound is fatal, naming the port and the option; ports of
 *   `all` and exclusion-only specs are skipped silently, fatal only if none
 *   at all could be bound.
 * - `auto` forwards (pasta's default) follow the listening sockets of the
 *   other side; see autoForward.ts.
 * - Every static listener is remembered by (option, bind address,
 *   interface, port), so that the control socket (src/main/control/) can
 *   list the table, add ports at run time (same grammar, same binding; a
 *   port that cannot be bound is an error answer, not fatal) and remove
 *   them (their workers close the listeners; accepted connections and UDP
 *   flows go on until they end).
 */
import type { Config, ForwardSpec } from '../shared/config';
import { parseForwardOption, readEphemeralRange, ForwardOpt } from './portSpec';
import type { ListenerInfo } from '../shared/messages';
import { PasstError } from '../shared/errors';
import { native, E } from '../shared/native';
import {
  AF_INET, AF_INET6, SOCK_STREAM, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_CLOEXEC, SOL_SOCKET, SO_REUSEADDR,
  SO_BINDTODEVICE, IPPROTO_IP, IPPROTO_IPV6, IP_FREEBIND, IPV6_FREEBIND, IPV6_V6ONLY, IP_RECVERR, IPV6_RECVERR,
} from '../shared/linux';
import { inanyParse } from '../shared/flow/inany';
import { sockaddr } from '../shared/sockaddr';
import { log } from '../shared/log';
import type { Supervisor } from './supervisor';

const LISTEN_BACKLOG = 128;

type Proto = 'tcp' | 'udp';
type Side = 'host' | 'ns';

const ANY4 = inanyParse('0.0.0.0');
const ANY6 = inanyParse('::');
const LO4 = inanyParse('127.0.0.1');
const LO6 = inanyParse('::1');

/** Result of binding one port: sockets, or the errno of the failure. */
type BindResult = { fds: number[] } | { errno: number };

/** One statically forwarded port and its listeners. */
export interface HeldPort {
  opt: ForwardOpt;
  /** Bind address and interface of its rule (null: any). */
  addr: string | null;
  ifname: string | null;
  port: number;
  /** Target port = (port + delta) & 0xffff. */
  delta: number;
  ls: ListenerInfo[];
}

/** Protocol and side of each option. */
export const OPT_TARGET = {
  '-t': { proto: 'tcp', side: 'host' }, '-u': { proto: 'udp', side: 'host' },
  '-T': { proto: 'tcp', side: 'ns' }, '-U': { proto: 'udp', side: 'ns' },
} as const satisfies Record<ForwardOpt, { proto: Proto; side: Side }>;

function heldKey(opt: ForwardOpt, addr: string | null, ifname: string | null, port: number): string {
  return `${opt} ${addr ?? '*'}%${ifname ?? '*'}/${port}`;
}

export class Forwarder {
  private nextId = 1;
  /** Static forwards by heldKey(), in the order they were bound. */
  private readonly held = new Map<string, HeldPort>();

  /** A fresh listener id (autoForward.ts makes ListenerInfos too). */
  allocId(): number {
    return this.nextId++;
  }

  /**
   * @param nsfd pasta's target network namespace, or -1 (passt)
   */
  constructor(private readonly cfg: Config, private readonly nsfd: number, private readonly sup: Supervisor) {}

  /** Binds every static forward and hands the sockets over. Throws PasstError. */
  bindStatic(): void {
    const cfg = this.cfg;
    const specs: [ForwardSpec, ForwardOpt][] = [[cfg.tcpIn, '-t'], [cfg.udpIn, '-u']];
    if (cfg.mode === 'pasta' && this.nsfd >= 0) specs.push([cfg.tcpOut, '-T'], [cfg.udpOut, '-U']);
    this.bindAll(specs);
  }

  /** Binds the specs; all or nothing (throws PasstError, closing what it bound). */
  private bindAll(specs: [ForwardSpec, ForwardOpt][]): HeldPort[] {
    const got: HeldPort[] = [];
    try {
      for (const [spec, opt] of specs) this.bindSpec(spec, opt, got);
    } catch (e) {
      for (const h of got) for (const l of h.ls) native.close(l.fd);
      throw e;
    }
    for (const h of got) this.held.set(heldKey(h.opt, h.addr, h.ifname, h.port), h);
    this.handOver(got.flatMap((h) => h.ls));
    return got;
  }

  /**
   * Control socket: forwards the ports of `spec` (the option's grammar) now.
   * @throws PasstError naming the bad part of the spec, a port already
   *   forwarded, or a port that cannot be bound (then nothing is added)
   */
  addPorts(opt: ForwardOpt, spec: string): HeldPort[] {
    const parsed = this.parseRuntime(opt, spec);
    for (const r of parsed.rules) {
      for (const p of r.ports) {
        if (this.held.has(heldKey(opt, r.addr, r.ifname, p.port)))
          throw new PasstError('PASST_ERR_PORT_SPEC', `Port ${p.port} is already forwarded by ${opt}`);
      }
    }
    try {
      return this.bindAll([[parsed, opt]]);
    } catch (e) {
      if (e instanceof PasstError) throw new PasstError(e.code, e.message.replace(/, exiting$/, ''));
      throw e;
    }
  }

  /**
   * Control socket: stops forwarding the ports of `spec` (matched by bind
   * address, interface and port; a mapping's target is not compared). The
   * workers close the listeners; existing connections and flows go on.
   * Ports of an exclusion-only spec that are not forwarded are passed over
   * (such a spec was bound best effort), as long as one of them is.
   * @throws PasstError for a bad spec or a port not forwarded (then nothing is removed)
   */
  removePorts(opt: ForwardOpt, spec: string): HeldPort[] {
    const parsed = this.parseRuntime(opt, spec);
    const keys: string[] = [];
    for (const r of parsed.rules) {
      for (const p of r.ports) {
        const k = heldKey(opt, r.addr, r.ifname, p.port);
        if (!this.held.has(k) && r.bestEffort) continue;
        if (!this.held.has(k)) {
          const bind = r.addr || r.ifname ? ` on ${r.addr ?? ''}${r.ifname ? `%${r.ifname}` : ''}` : '';
          throw new PasstError('PASST_ERR_PORT_SPEC', `Port ${p.port}${bind} is not forwarded by ${opt}`);
        }
        keys.push(k);
      }
    }
    if (!keys.length) throw new PasstError('PASST_ERR_PORT_SPEC', `No port of ${spec} is forwarded by ${opt}`);
    const gone = keys.map((k) => this.held.get(k) as HeldPort);
    for (const k of keys) this.held.delete(k);
    this.release(gone.flatMap((h) => h.ls.map((l) => l.id)), OPT_TARGET[opt].proto);
    return gone;
  }

  /**
   * Enters listeners bound elsewhere (slirp4netns-ts' API: bindHost() with
   * a mapping) in the table, so that the control socket lists them and
   * `remove-port` can end them, and hands them over.
   * @returns false, with nothing done, if the table already holds the port
   */
  hold(h: HeldPort): boolean {
    const k = heldKey(h.opt, h.addr, h.ifname, h.port);
    if (this.held.has(k)) return false;
    this.held.set(k, h);
    this.handOver(h.ls);
    return true;
  }

  /** Ends a forward entered by hold() (a no-op if the control socket removed it already). */
  unhold(h: HeldPort): void {
    const k = heldKey(h.opt, h.addr, h.ifname, h.port);
    if (this.held.get(k) !== h) return;
    this.held.delete(k);
    this.release(h.ls.map((l) => l.id), OPT_TARGET[h.opt].proto);
  }

  /** The static forwarding table as it is now. */
  table(): HeldPort[] {
    return [...this.held.values()];
  }

  /** Ports with static listeners of (proto, side) now (autoForward.ts: never ours to scan for). */
  heldPorts(proto: Proto, side: Side): Set<number> {
    const s = new Set<number>();
    for (const h of this.held.values()) {
      const t = OPT_TARGET[h.opt];
      if (t.proto === proto && t.side === side) s.add(h.port);
    }
    return s;
  }

  /** A run-time spec: the option's grammar, explicit ports only, for an enabled protocol. */
  private parseRuntime(opt: ForwardOpt, spec: string): ForwardSpec {
    const cfg = this.cfg;
    const { proto, side } = OPT_TARGET[opt];
    if (side === 'ns' && (cfg.mode !== 'pasta' || this.nsfd < 0))
      throw new PasstError('PASST_ERR_PORT_SPEC', `${opt} is for pasta mode only`);
    if (proto === 'tcp' ? cfg.noTcp : cfg.noUdp)
      throw new PasstError('PASST_ERR_PORT_SPEC', `${proto.toUpperCase()} port forwarding requested but ${proto.toUpperCase()} is disabled`);
    if (spec === 'none' || spec === 'auto' || spec === 'all')
      throw new PasstError('PASST_ERR_PORT_SPEC', `Port forwarding mode '${spec}' cannot be changed at run time: give ports`);
    return parseForwardOption(undefined, opt, spec, cfg.mode, readEphemeralRange()).spec;
  }

  /** Sends listeners to their workers. */
  handOver(ls: ListenerInfo[]): void {
    const tcp = ls.filter((l) => l.proto === 'tcp');
    const udp = ls.filter((l) => l.proto === 'udp');
    if (tcp.length) this.sup.control({ type: 'listen', add: tcp }, 'tcp');
    if (udp.length) this.sup.control({ type: 'listen', add: udp }, 'udp');
    if (ls.length) log.debug(`forwarding ${ls.map((l) => `${l.proto}/${l.side}/${l.port}`).join(' ')}`);
  }

  /** Tells the workers to close listeners. */
  release(ids: number[], proto: Proto): void {
    if (ids.length) this.sup.control({ type: 'unlisten', ids }, proto);
  }

  private bindSpec(spec: ForwardSpec, flag: ForwardOpt, out: HeldPort[]): void {
    if (spec.mode === 'none' || spec.mode === 'auto') return;
    const { proto, side } = OPT_TARGET[flag];
    const batch = side === 'ns' ? new NsSocketBatch(this.nsfd, proto) : null;
    try {
      for (const rule of spec.rules) this.bindRule(rule, flag, out, batch);
    } finally {
      batch?.close();
    }
  }

  private bindRule(rule: ForwardSpec['rules'][number], flag: ForwardOpt, out: HeldPort[],
    batch: NsSocketBatch | null): void {
    const { proto, side } = OPT_TARGET[flag];
    let bound = 0;
    let lastErr = 0;
    for (const p of rule.ports) {
      const r = side === 'host' ? this.bindHost(proto, rule.addr, rule.ifname, p.port) : this.bindNs(proto, p.port, batch);
      if ('errno' in r) {
        lastErr = r.errno;
        // running out of descriptors is fatal even where busy ports are skipped (SPEC §8.2)
        if (rule.bestEffort && r.errno !== E.EMFILE && r.errno !== E.ENFILE) continue;
        throw new PasstError('PASST_ERR_BIND',
          `Failed to bind port ${p.port} (${native.strerror(r.errno)}) for option '${flag}', exiting`);
      }
      const ls = r.fds.map((fd) => ({ id: this.nextId++, fd, proto, side, port: p.port, delta: p.delta }));
      out.push({ opt: flag, addr: rule.addr, ifname: rule.ifname, port: p.port, delta: p.delta, ls });
      bound++;
    }
    if (rule.bestEffort && rule.ports.length && bound === 0) {
      throw new PasstError('PASST_ERR_BIND',
        `Failed to bind any port for option '${flag}' (${native.strerror(lastErr || E.EADDRINUSE)}), exiting`);
    }
  }

  /**
   * One host-side port: a dual-stack socket, or one per family, or only the
   * given address's family.
   */
  bindHost(proto: Proto, addr: string | null, ifname: string | null, port: number): BindResult {
    const v4 = this.cfg.ip4.enabled;
    const v6 = this.cfg.ip6.enabled;
    if (addr !== null) {
      const a = inanyParse(addr);
      const fd = this.openBound(proto, a.subarray(0, 16), port, ifname, addr.includes(':') ? 1 : -1, -1);
      return fd < 0 ? { errno: -fd } : { fds: [fd] };
    }
    if (v4 && v6) {
      const dual = this.openBound(proto, ANY6, port, ifname, 0, -1);
      if (dual >= 0) return { fds: [dual] };
      const fds: number[] = [];
      let err = -dual;
      for (const a of [ANY4, ANY6]) {
        const fd = this.openBound(proto, a, port, ifname, a === ANY6 ? 1 : -1, -1);
        if (fd >= 0) fds.push(fd); else err = -fd;
      }
      return fds.length ? { fds } : { errno: err };
    }
    const fd = v6 ? this.openBound(proto, ANY6, port, ifname, 1, -1) : this.openBound(proto, ANY4, port, ifname, -1, -1);
    return fd < 0 ? { errno: -fd } : { fds: [fd] };
  }

  /**
   * One namespace-side port: 127.0.0.1 and ::1 inside the namespace.
   * @param batch sockets created inside the namespace beforehand, in batches
   */
  bindNs(proto: Proto, port: number, batch: NsSocketBatch | null = null): BindResult {
    const fds: number[] = [];
    let err = 0;
    if (this.cfg.ip4.enabled) {
      const pre = batch ? batch.take(AF_INET) : -1;
      if (pre < -1) return { errno: -pre };
      const fd = this.openBound(proto, LO4, port, null, -1, this.nsfd, pre);
      if (fd >= 0) fds.push(fd); else err = -fd;
    }
    if (this.cfg.ip6.enabled) {
      const pre = batch ? batch.take(AF_INET6) : -1;
      if (pre < -1) return { errno: -pre };
      const fd = this.openBound(proto, LO6, port, null, 1, this.nsfd, pre);
      if (fd >= 0) fds.push(fd); else err = -fd;
    }
    return fds.length ? { fds } : { errno: err || E.EADDRNOTAVAIL };
  }

  /**
   * A listening (TCP) or bound (UDP) socket on addr:port.
   * @param v6only 1/0 to set IPV6_V6ONLY on an IPv6 socket, -1 for IPv4
   * @param nsfd create the socket inside this namespace, or -1
   * @param preFd a socket of the right family and type created beforehand
   *   (e.g. in a batch inside the namespace), or -1; closed on failure
   * @returns fd, or -errno
   */
  openBound(proto: Proto, addr: Uint8Array, port: number, ifname: string | null, v6only: number, nsfd: number,
    preFd = -1): number {
    const family = v6only >= 0 ? AF_INET6 : AF_INET;
    const type = (proto === 'tcp' ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
    let fd: number;
    if (preFd >= 0) {
      fd = preFd;
    } else if (nsfd >= 0) {
      const out = new Int32Array(1);
      const r = native.nsSockets(nsfd, family, type, 0, 1, out);
      if (r < 0) return r;
      fd = out[0];
    } else {
      fd = native.socket(family, type, 0);
      if (fd < 0) return fd;
    }
    const fail = (r: number): number => {
      native.close(fd);
      return r;
    };
    native.setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (family === AF_INET6) native.setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only);
    if (this.cfg.freebind) {
      if (family === AF_INET) native.setsockoptInt(fd, IPPROTO_IP, IP_FREEBIND, 1);
      else native.setsockoptInt(fd, IPPROTO_IPV6, IPV6_FREEBIND, 1);
    }
    if (proto === 'udp') {
      if (family === AF_INET) native.setsockoptInt(fd, IPPROTO_IP, IP_RECVERR, 1);
      else native.setsockoptInt(fd, IPPROTO_IPV6, IPV6_RECVERR, 1);
    }
    if (ifname) {
      const r = native.setsockoptBytes(fd, SOL_SOCKET, SO_BINDTODEVICE, Buffer.from(ifname + '\0'));
      if (r < 0) return fail(r);
    }
    let r = native.bind(fd, sockaddr(addr, port));
    if (r < 0) return fail(r);
    if (proto === 'tcp') {
      r = native.listen(fd, LISTEN_BACKLOG);
      if (r < 0) return fail(r);
    }
    return fd;
  }
}

/**
 * Sockets created inside the namespace 64 at a time (each nsSockets call
 * starts one native thread that enters the namespace), so binding
 * thousands of namespace-side ports doesn't start thousands of threads.
 */
export class NsSocketBatch {
  private readonly pending = new Map<number, number[]>();
  private readonly buf = new Int32Array(64);

  constructor(private readonly nsfd: number, private readonly proto: Proto) {}

  /** A socket of the family, or -errno. */
  take(family: number): number {
    let list = this.pending.get(family);
    if (!list || !list.length) {
      const type = (this.proto === 'tcp' ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
      const n = native.nsSockets(this.nsfd, family, type, 0, this.buf.length, this.buf);
      if (n <= 0) return n < 0 ? n : -E.EMFILE;
      list = Array.from(this.buf.subarray(0, n)).reverse();
      this.pending.set(family, list);
    }
    return list.pop() as number;
  }

  /** Closes the sockets nobody took. */
  close(): void {
    for (const list of this.pending.values()) for (const fd of list) native.close(fd);
    this.pending.clear();
  }
}

/**
 * The supervisor builds the pipeline of DESIGN.md and watches it.
 *
 * Theory of operation
 * - Allocates one Waker per worker and one FrameRing per (producer,
 *   consumer) pair:
 *       tap-RX → TCP[i], tap-RX → UDP, tap-RX → tap-TX (link services),
 *       TCP[i] → tap-TX, UDP → tap-TX.
 * - Starts the workers (node:worker_threads) with typed start-up data
 *   (messages.ts) and waits until each reports 'ready'.
 * - passt runs the tap-RX stage inside TCP worker 0 (inlineRx), run to
 *   completion: a guest's segment is read, handled and written to its
 *   socket, and the ACK written back, by one thread with no hand-off. With
 *   qemu busy on one core of two, each hand-off was a wake-up and a task
 *   switch: guest → host cost 1.6 CPU-s/GB with a tap-RX worker (the C
 *   passt: 0.6). pasta keeps tap-RX in a thread of its own, where reading
 *   the tap in parallel with the TCP worker measured faster. The
 *   configuration chooses (cfg.tuning.inlineRx, conf.ts). The rings keep
 *   their roles; a ring whose producer and consumer share a thread wakes
 *   nobody (its waker is that thread's, never asleep while it works).
 * - Control goes to a worker as a message on its port plus a ring of its
 *   waker (it is blocked in epoll_wait and drains the port by hand).
 * - A worker that throws, exits unexpectedly or reports 'fatal' ends the
 *   program with a clear message and exit status 1: a broken pipeline must
 *   never hang.
 * - The UDP worker starts on demand (cfg.tuning.memory.lazyUdp; perf/README.md
 *   "Memory per instance": an isolate and its arena, about 8 MB): when
 *   tap-RX publishes its first frame towards it ('wantUdp'), or the first
 *   datagram arrives at a forwarded UDP port: until then the main thread
 *   holds the listeners it was to hand over ('listen') and watches them
 *   (native.fdWatch); a listener removed meanwhile ('unlisten') is closed
 *   here. Its rings, waker and counters exist from the start, so tap-RX
 *   queues frames in its ring meanwhile (the waker's flag says nobody
 *   sleeps: no wake-up is owed), and the counters read zeros. Control messages for it wait in a queue
 *   ('log' and 'guestLink' keep only the latest); 'flows' is not asked of
 *   it (nothing to list). Its modules are read at start-up (workerImage.ts):
 *   after isolation the filesystem may be gone.
 * - Shutdown asks every worker to drain (bounded by a deadline) and waits
 *   for them to finish.
 */
import { Worker, ResourceLimits } from 'node:worker_threads';
import * as path from 'node:path';
import type { Config, LogLevel, MemoryTuning } from '../shared/config';
import type {
  Backend, ControlMsg, GuestInit, L4Init, LogTarget, RingIn, RingOut, TapRxInit, TapTxInit, WorkerInit, WorkerMsg,
} from '../shared/messages';
import { FrameRing } from '../shared/ring/frameRing';
import { Waker, WakerHandle } from '../shared/ring/waker';
import { GuestState } from '../shared/guestState';
import { TxGate } from '../workers/link/txGate';
import { Stats, Role } from '../shared/stats';
import { log } from '../shared/log';
import { native } from '../shared/native';
import { prepareCompaction, endCompaction } from '../shared/heap';
import { BOOT, readWorkerImage, WorkerImage } from './workerImage';

/** Ring sizes (data bytes). */
const RING = {
  TAP_TO_TCP: 8 << 20,
  TAP_TO_UDP: 4 << 20,
  TAP_TO_TX: 1 << 20,
  TCP_TO_TX: 8 << 20,
  UDP_TO_TX: 4 << 20,
} as const;

/**
 * V8 limits of a pipeline worker (perf/README.md "Memory per instance"):
 * a young generation of three semi-spaces; V8's defaults where 0.
 */
export function workerLimits(m: MemoryTuning): ResourceLimits {
  return m.semiSpaceMb > 0 ? { maxYoungGenerationSizeMb: 3 * m.semiSpaceMb } : {};
}

export interface PipelineOptions {
  cfg: Config;
  backend: Backend;
  /** Tap (pasta) or connected client socket (passt), or -1. */
  tapfd: number;
  nsfd: number;
  vnetLen: number;
  guest: GuestInit;
  pcapFd: number;
  logLevel: LogLevel;
  logTarget: LogTarget;
  tcpShards: number;
}

/** How full one ring is (control socket's `stats`). */
export interface RingUsage {
  /** "producer→consumer" stage names. */
  name: string;
  capacity: number;
  /** Bytes published and not yet released (may be stale by the time it is read). */
  used: number;
  /** Records published so far (mod 2^32) and records dropped on a full ring. */
  records: number;
  drops: number;
}

export type FlowsAnswer = Extract<WorkerMsg, { type: 'flows' }>;

interface Member {
  name: string;
  role: Role;
  /** Roles of the stages the worker runs (its own, plus tap-RX when inline). */
  hosts: Role[];
  /** Counters of every stage it runs, by stage name. */
  statsOf: { name: string; role: Role; sab: SharedArrayBuffer }[];
  /** null until a worker started on demand starts (see the top). */
  worker: Worker | null;
  deferred: {
    file: string; init: WorkerInit; image: WorkerImage; queued: ControlMsg[];
    /** Listeners held for it, by id: their fd and main's watch of it. */
    held: Map<number, { fd: number; watch: number }>;
  } | null;
  waker: WakerHandle;
  ready: Promise<void>;
  done: Promise<void>;
}

export class Supervisor {
  private readonly members: Member[] = [];
  /** Every ring, by "producer→consumer" name, for ringUsage(). */
  private readonly rings: { name: string; ring: FrameRing }[] = [];
  private stopping = false;
  /**
   * Set once the main thread compacted its heap after start-up
   * (runtime.ts): a worker started on demand later asks for its own
   * compaction.
   */
  startupOver = false;
  /** Called with a message when the pipeline cannot go on. */
  onFatal: (message: string) => void = (m) => {
    log.error(m);
    process.exit(1);
  };
  /** passt: the client connection fd is gone (reported by tap-RX or tap-TX). */
  onTapGone: (fd: number, reason: string) => void = () => {};
  /** passt: the tap-RX or tap-TX stage (whichever worker runs it) applied the 'tap' control message seq. */
  onTapAck: (stage: 'tapRx' | 'tapTx', seq: number) => void = () => {};
  /** A worker answered a 'flows' request (control socket). */
  onFlows: (worker: string, m: FlowsAnswer) => void = () => {};

  async start(o: PipelineOptions): Promise<void> {
    const { inlineRx, directTx } = o.cfg.tuning;
    const tcpWakers = Array.from({ length: o.tcpShards }, () => Waker.create());
    const wakers = {
      // the tap-RX stage's waker: its own worker's, or TCP worker 0's
      tapRx: inlineRx ? tcpWakers[0] : Waker.create(),
      tapTx: Waker.create(),
      tcp: tcpWakers,
      udp: Waker.create(),
    };
    const guestState = GuestState.allocate();
    const pair = (name: string, cap: number, producer: WakerHandle, consumer: WakerHandle): { out: RingOut; in: RingIn } => {
      const ring = FrameRing.allocate(cap);
      this.rings.push({ name, ring: new FrameRing(ring) });
      return { out: { ring, consumer }, in: { ring, producer } };
    };
    const rxTcp = wakers.tcp.map((w, i) => pair(`tap-rx→tcp${i}`, RING.TAP_TO_TCP, wakers.tapRx, w));
    const rxUdp = pair('tap-rx→udp', RING.TAP_TO_UDP, wakers.tapRx, wakers.udp);
    const rxTx = pair('tap-rx→tap-tx', RING.TAP_TO_TX, wakers.tapRx, wakers.tapTx);
    const tcpTx = wakers.tcp.map((w, i) => pair(`tcp${i}→tap-tx`, RING.TCP_TO_TX, w, wakers.tapTx));
    const udpTx = pair('udp→tap-tx', RING.UDP_TO_TX, wakers.udp, wakers.tapTx);
    // tap-TX's inputs are [rxTx, udpTx, ...tcpTx]; L4 workers may write to the
    // guest themselves when tap-TX holds nothing of theirs (link/), where
    // the configuration says so (conf.ts: the UDP worker always, the TCP
    // worker in passt; in pasta its ACKs would run the namespace's receive
    // path in its own thread, and tap-TX doing that in parallel measured
    // faster: tcp_out_tap 8.4 vs 5.4 Gbit/s)
    const txGate = TxGate.allocate(o.tapfd);
    if (directTx.udp) udpTx.out.direct = { gate: txGate, input: 1, backend: o.backend, pcapFd: o.pcapFd };
    if (directTx.tcp) tcpTx.forEach((p, i) => { p.out.direct = { gate: txGate, input: 2 + i, backend: o.backend, pcapFd: o.pcapFd }; });

    const common = (role: Role, waker: WakerHandle, shard = 0) => ({
      role, shard, cfg: o.cfg, logLevel: o.logLevel, logTarget: o.logTarget, waker,
      stats: Stats.allocate(role), guestState,
    });
    const rx: TapRxInit = {
      ...common('tapRx', wakers.tapRx), role: 'tapRx', tapfd: o.tapfd, backend: o.backend, vnetLen: o.vnetLen,
      toTcp: rxTcp.map((p) => p.out), toUdp: rxUdp.out, toTx: rxTx.out, pcapFd: o.pcapFd, guest: o.guest,
    };
    const tx: TapTxInit = {
      ...common('tapTx', wakers.tapTx), role: 'tapTx', tapfd: o.tapfd, backend: o.backend, vnetLen: o.vnetLen,
      inputs: [rxTx.in, udpTx.in, ...tcpTx.map((p) => p.in)], pcapFd: o.pcapFd, txGate,
    };
    const tcps: L4Init[] = wakers.tcp.map((w, i) => ({
      ...common('tcp', w, i), role: 'tcp', fromTap: rxTcp[i].in, toTx: tcpTx[i].out, vnetLen: o.vnetLen,
      nsfd: o.nsfd, guest: o.guest,
    }));
    const udp: L4Init = {
      ...common('udp', wakers.udp), role: 'udp', fromTap: rxUdp.in, toTx: udpTx.out, vnetLen: o.vnetLen,
      nsfd: o.nsfd, guest: o.guest,
    };

    // before any worker exists: V8's flags are process-wide (heap.ts)
    if (o.cfg.tuning.memory.compactAfterStart) prepareCompaction();
    if (inlineRx) tcps[0].inlineRx = rx;
    log.debug(inlineRx ? 'tap-RX runs in TCP worker 0' : 'tap-RX runs in a worker of its own');
    this.spawn('tap-tx', 'link/tapTx.js', tx);
    if (!inlineRx) this.spawn('tap-rx', 'tapRx.js', rx);
    tcps.forEach((t, i) => this.spawn(`tcp${i}`, 'tcp/worker.js', t));
    this.spawn('udp', 'udp/worker.js', udp, o.cfg.tuning.memory.lazyUdp);
    await Promise.all(this.members.map((m) => m.ready));
  }

  /** Creates the member of a worker; started now, or on demand (see the top). */
  private spawn(name: string, file: string, init: WorkerInit, onDemand = false): void {
    const hosts: Role[] = [init.role];
    const statsOf = [{ name, role: init.role, sab: init.stats }];
    if (init.role === 'tcp' && init.inlineRx) {
      hosts.push('tapRx');
      statsOf.unshift({ name: 'tap-rx', role: 'tapRx', sab: init.inlineRx.stats });
    }
    const m: Member = {
      name, role: init.role, hosts, statsOf, worker: null, deferred: null, waker: init.waker,
      ready: Promise.resolve(), done: Promise.resolve(),
    };
    this.members.push(m);
    if (onDemand) {
      m.deferred = { file, init, image: readWorkerImage(path.join(__dirname, '..', 'workers', file)), queued: [], held: new Map() };
      log.debug(`${name} worker starts on demand`);
    } else {
      this.launch(m, file, init, null);
    }
  }

  /** Starts a member's worker: from its file, or from its image (on demand, perhaps after isolation). */
  private launch(member: Member, file: string, init: WorkerInit, image: WorkerImage | null): void {
    const name = member.name;
    const opts = { stdout: false, stderr: false, resourceLimits: workerLimits(init.cfg.tuning.memory) };
    const worker = image
      ? new Worker(BOOT, { ...opts, eval: true, workerData: { ...init, image } })
      : new Worker(path.join(__dirname, '..', 'workers', file), { ...opts, workerData: init });
    let readyResolve!: () => void;
    member.ready = new Promise<void>((r) => { readyResolve = r; });
    let doneResolve!: () => void;
    member.done = new Promise<void>((r) => { doneResolve = r; });
    member.worker = worker;
    worker.on('message', (m: WorkerMsg) => {
      switch (m.type) {
        case 'ready': readyResolve(); break;
        case 'drained': break;
        case 'fatal': this.fatal(`${name}: ${m.message}`); break;
        case 'tapGone': this.onTapGone(m.fd, m.reason); break;
        case 'tapAck': this.onTapAck(m.stage, m.seq); break;
        case 'flows': this.onFlows(name, m); break;
        case 'wantUdp': this.startDeferred('udp'); break;
        default: {
          const never: never = m;
          void never;
        }
      }
    });
    worker.on('error', (e) => this.fatal(`${name} worker failed: ${e.stack ?? e.message}`));
    worker.on('exit', (code) => {
      doneResolve();
      if (!this.stopping) this.fatal(`${name} worker exited unexpectedly (status ${code})`);
    });
  }

  /** A control message for a worker not started yet (see the top). */
  private defer(m: Member, msg: ControlMsg): void {
    const d = m.deferred;
    if (!d) return;
    const q = d.queued;
    if (msg.type === 'log' || msg.type === 'guestLink') {
      const i = q.findIndex((x) => x.type === msg.type);
      if (i >= 0) q.splice(i, 1);
    }
    if (msg.type === 'unlisten') {
      // listeners it never got: closed here, and forgotten
      const gone = new Set(msg.ids.filter((id) => d.held.has(id)));
      for (const id of gone) {
        const h = d.held.get(id) as { fd: number; watch: number };
        if (h.watch >= 0) native.fdUnwatch(h.watch);
        native.close(h.fd);
        d.held.delete(id);
      }
      for (const x of q) if (x.type === 'listen') x.add = x.add.filter((l) => !gone.has(l.id));
      const rest = msg.ids.filter((id) => !gone.has(id));
      if (rest.length) q.push({ type: 'unlisten', ids: rest });
      return;
    }
    q.push(msg);
    if (msg.type !== 'listen') return;
    for (const l of msg.add) {
      // the first datagram at any of them starts the worker, which reads it
      const watch = native.fdWatch(l.fd, () => this.startDeferred(m.role));
      d.held.set(l.id, { fd: l.fd, watch });
      if (watch < 0) {
        log.debug(`watching ${l.proto} port ${l.port}: ${native.strerror(-watch)}; starting the ${m.name} worker`);
        this.startDeferred(m.role);
        return;
      }
    }
  }

  /** Starts the worker of `role` if it waits to be started on demand; its queued control messages follow. */
  private startDeferred(role: Role): void {
    const m = this.members.find((x) => x.role === role && x.deferred);
    if (!m || !m.deferred || this.stopping) return;
    const d = m.deferred;
    m.deferred = null;
    // main's watches end before the worker owns the listeners
    for (const h of d.held.values()) if (h.watch >= 0) native.fdUnwatch(h.watch);
    log.debug(`starting the ${m.name} worker`);
    const { compactAfterStart: compact, trimAfterStart: trim } = d.init.cfg.tuning.memory;
    // its compaction before 'ready' (heap.ts), as at start-up; the flag is
    // process-wide, so the others' full collections compact meanwhile too
    if (compact && this.startupOver) prepareCompaction();
    this.launch(m, d.file, d.init, d.image);
    const worker = m.worker as Worker;
    for (const msg of d.queued) worker.postMessage(msg);
    native.eventfdWrite(m.waker.fd, 1);
    void m.ready.then(() => {
      if (compact && this.startupOver) endCompaction();
      if (trim) native.mallocTrim();
    });
  }

  private fatal(message: string): void {
    if (this.stopping) {
      log.debug(message);
      return;
    }
    this.stopping = true;
    this.onFatal(message);
  }

  /** Sends a control message to the workers of a role (or all); returns how many got it. */
  control(msg: ControlMsg, role?: Role): number {
    let n = 0;
    for (const m of this.members) {
      if (role && !m.hosts.includes(role)) continue;
      if (m.deferred) {
        // not started (see the top): nothing to list or stop; the rest waits for it
        if (msg.type === 'flows' || msg.type === 'shutdown') continue;
        this.defer(m, msg);
        n++;
        continue;
      }
      if (!m.worker) continue;
      m.worker.postMessage(msg);
      // always ring: the worker may be between its last port check and its sleep flag
      native.eventfdWrite(m.waker.fd, 1);
      n++;
    }
    return n;
  }

  /** Occupancy of every ring (read from the shared headers; each figure may be stale at once). */
  ringUsage(): RingUsage[] {
    return this.rings.map(({ name, ring }) => ({
      name, capacity: ring.capacity, used: ring.usedBytes(), records: ring.records, drops: ring.drops,
    }));
  }

  setLog(level: LogLevel, target: LogTarget): void {
    this.control({ type: 'log', level, target });
  }

  /** Counters of every stage, with its role, in pipeline order. */
  stageStats(): { name: string; role: Role; values: Record<string, number> }[] {
    return this.members.flatMap((m) => m.statsOf.map((st) => ({
      name: st.name, role: st.role, values: new Stats(st.role, st.sab).snapshot(),
    })));
  }

  /** Counters of every worker, by worker name. */
  stats(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const m of this.members) for (const s of m.statsOf) out[s.name] = new Stats(s.role, s.sab).snapshot();
    return out;
  }

  /**
   * Asks every worker to drain and stop; resolves when all exited or the
   * deadline passed. With a drain time, the L4 workers go first while tap-RX
   * and tap-TX keep running: the TCP worker can only finish delivering what
   * the guest sent if frames keep arriving (the guest's last data, its FIN)
   * and its ACKs keep leaving. Then tap-RX and tap-TX stop, tap-TX after
   * flushing what the L4 workers left in its rings.
   */
  async shutdown(drainMs: number): Promise<void> {
    if (!this.members.length) return;
    this.stopping = true;
    const isL4 = (m: Member) => m.role === 'tcp' || m.role === 'udp';
    const stop = async (ms: number, all: Member[]) => {
      // a worker never started has nothing to stop (its done is resolved)
      const which = all.filter((m) => m.worker);
      for (const m of which) {
        m.worker?.postMessage({ type: 'shutdown', drainMs: ms } satisfies ControlMsg);
        native.eventfdWrite(m.waker.fd, 1);
      }
      const deadline = new Promise<void>((r) => setTimeout(r, ms + 500).unref());
      await Promise.race([Promise.all(which.map((m) => m.done)), deadline]);
    };
    if (drainMs > 0) await stop(drainMs, this.members.filter(isL4));
    await stop(drainMs > 0 ? Math.min(drainMs, 200) : 0, this.members.filter((m) => !isL4(m) || drainMs === 0));
  }
}

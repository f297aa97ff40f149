/**
 * Everything that crosses between the main thread and the workers, typed
 * in one place (STYLE.md: cross-thread messages are typed interfaces kept
 * in one file). Frames never travel here: they go through FrameRings.
 *
 * Start-up data is the worker's `workerData`; control messages go to a
 * worker through its MessagePort, announced by its waker (the worker is
 * usually blocked in epoll_wait and drains the port with
 * receiveMessageOnPort); worker messages go back with postMessage.
 */
import type { Config, LogLevel } from './config';
import type { LogFileHandle } from './logSinks';
import type { WakerHandle } from './ring/waker';
import type { Role } from './stats';

/** Where a worker writes its log lines. */
export type LogTarget =
  | { kind: 'fd'; fd: number; timestamps: boolean }
  | { kind: 'file'; handle: LogFileHandle }
  | { kind: 'syslog'; name: string; fd: number }
  | { kind: 'pipe'; fd: number };

/** How frames reach the guest: one back end per kind (workers/link/link.ts). */
export type Backend = 'tap' | 'stream' | 'vhost-user';

/**
 * What the workers need of a vhost-user connection (link/vhostUser/):
 * the memory table (mappings made by main, each worker takes its own
 * views), the guest's receive (0) and transmit (1) queues, and the
 * queues' positions, shared with main for GET_VRING_BASE.
 */
export interface VuLink {
  regions: { gpa: number; size: number; qva: number; mmapOffset: number; handle: number }[];
  queues: { num: number; addr: { desc: number; avail: number; used: number }; kickFd: number; callFd: number }[];
  pos: SharedArrayBuffer;
  mergeable: boolean;
}

/** State pasta learnt from the namespace before the workers start. */
export interface GuestInit {
  /** Guest MAC ("aa:bb:..."), or null (passt: learnt from the first frame). */
  mac: string | null;
  /** Guest IPv6 link-local address, or null. */
  linkLocal: string | null;
}

export interface WorkerCommon {
  role: Role;
  /** Shard number for roles that have several workers (tcp). */
  shard: number;
  cfg: Config;
  logLevel: LogLevel;
  logTarget: LogTarget;
  /** The worker's own doorbell: eventfd in its epoll set plus its sleep flag. */
  waker: WakerHandle;
  /** Counters (stats.ts), written by the worker only. */
  stats: SharedArrayBuffer;
  /** What tap-RX learns about the guest (guestState.ts), read by the others. */
  guestState: SharedArrayBuffer;
}

/** One input ring and the producer to wake when space is released. */
export interface RingIn {
  ring: SharedArrayBuffer;
  producer: WakerHandle;
}

/**
 * Lets the producer of a ring towards tap-TX write its frames to the guest
 * itself when tap-TX holds nothing of it (workers/link/directWriter.ts).
 */
export interface DirectTx {
  /** The writer gate shared with tap-TX. */
  gate: SharedArrayBuffer;
  /** This ring's index among tap-TX's inputs (for a half-sent frame). */
  input: number;
  backend: Backend;
  pcapFd: number;
}

/** One output ring and the consumer to wake when records are published. */
export interface RingOut {
  ring: SharedArrayBuffer;
  consumer: WakerHandle;
  /** Direct writes to the guest allowed (L4 rings towards tap-TX). */
  direct?: DirectTx;
}

export interface TapRxInit extends WorkerCommon {
  role: 'tapRx';
  /** Tap fd (pasta) or connected stream socket (passt), -1 until a client connects. */
  tapfd: number;
  backend: Backend;
  /** Bytes of virtio-net header before every frame on the tap (0: none). */
  vnetLen: number;
  toTcp: RingOut[];
  toUdp: RingOut;
  toTx: RingOut;
  /** pcap file (O_APPEND) or -1. */
  pcapFd: number;
  guest: GuestInit;
}

export interface TapTxInit extends WorkerCommon {
  role: 'tapTx';
  tapfd: number;
  backend: Backend;
  vnetLen: number;
  /** Inputs in priority order: link-service replies first. */
  inputs: RingIn[];
  pcapFd: number;
  /** Writer gate shared with the L4 workers' direct writes (workers/link/txGate.ts). */
  txGate: SharedArrayBuffer;
}

export interface L4Init extends WorkerCommon {
  role: 'tcp' | 'udp';
  fromTap: RingIn;
  toTx: RingOut;
  vnetLen: number;
  /** pasta: the target network namespace (for namespace-side sockets), or -1. */
  nsfd: number;
  guest: GuestInit;
  /**
   * TCP worker 0 only: run the tap-RX stage here, run to completion, instead
   * of in a worker of its own (supervisor.ts says when).
   */
  inlineRx?: TapRxInit;
}

export type WorkerInit = TapRxInit | TapTxInit | L4Init;

/**
 * A listening socket of a forwarded port, created and bound by the main
 * thread (forward.ts) and handed to the TCP or UDP worker, which owns it
 * from then on (adds it to its epoll set, accepts/receives, closes it on
 * 'unlisten').
 */
export interface ListenerInfo {
  /** Unique id, for 'unlisten'. */
  id: number;
  fd: number;
  proto: 'tcp' | 'udp';
  /** 'host': init namespace (-t/-u); 'ns': pasta's namespace loopback (-T/-U). */
  side: 'host' | 'ns';
  /** Port the socket is bound to. */
  port: number;
  /** Target port = (port + delta) & 0xffff. */
  delta: number;
}

/**
 * One flow as the control socket's `flows` shows it (src/main/control/),
 * made by the worker that owns the flow, off the data path.
 */
export interface FlowInfo {
  proto: 'tcp' | 'udp' | 'icmp' | 'icmpv6';
  /** 'tap': one end is the guest; 'splice': socket to socket (pasta's loopback paths). */
  path: 'tap' | 'splice';
  /** The owning worker's flow index (unique per worker and path). */
  id: number;
  /**
   * The two ends, "WHERE addr:port" with WHERE one of guest, host,
   * namespace: `from` started the flow (for TCP over the tap: the guest's
   * end, and `to` the address it talks to, as the guest sees it).
   */
  from: string;
  to: string;
  /** Protocol state, in the worker's own vocabulary (TCP events, splice events, "active"). */
  state: string;
  /** Payload bytes from `from` towards `to`, and back; age in whole milliseconds. */
  bytesOut: number;
  bytesIn: number;
  ageMs: number;
}

/** main → worker */
export type ControlMsg =
  | { type: 'shutdown'; drainMs: number }
  | { type: 'log'; level: LogLevel; target: LogTarget }
  /**
   * passt: a new client socket (or -1: the client is gone). tap-RX and
   * tap-TX answer with 'tapAck' carrying seq once they stopped using the
   * previous descriptor, so main can close it safely.
   */
  | { type: 'tap'; fd: number; seq: number; vu?: VuLink }
  /**
   * vhost-user: the link of 'tap' message seq, for the L4 workers' direct
   * writes (link/directWriter.ts: they write only while the gate's GEN is seq).
   */
  | { type: 'guestLink'; fd: number; seq: number; vu?: VuLink }
  /** Listening sockets handed over (forwarded ports). */
  | { type: 'listen'; add: ListenerInfo[] }
  /** Listeners to stop using and close (auto-forwarding or the control socket removed them). */
  | { type: 'unlisten'; ids: number[] }
  /** Control socket: list up to `max` flows, answered with a 'flows' message carrying `req`. */
  | { type: 'flows'; req: number; max: number };

/** worker → main */
export type WorkerMsg =
  | { type: 'ready' }
  /** The worker finished draining and is about to exit. */
  | { type: 'drained' }
  /** A fatal condition: main logs it and exits 1. */
  | { type: 'fatal'; message: string }
  /** passt: the client connection fd failed (EOF, error, bad frame length). */
  | { type: 'tapGone'; fd: number; reason: string }
  /** passt: the 'tap' control message seq was applied by that stage (wherever it runs). */
  | { type: 'tapAck'; seq: number; stage: 'tapRx' | 'tapTx' }
  /** tap-RX published its first frame towards the UDP worker, which starts on demand (supervisor.ts). */
  | { type: 'wantUdp' }
  /** Answer to a 'flows' request: up to its max flows, and how many the worker has in all. */
  | { type: 'flows'; req: number; flows: FlowInfo[]; total: number };

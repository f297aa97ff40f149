/**
 * The running program's resources and their orderly end: the tap (or passt
 * socket) descriptor, the pcap file and the worker pipeline
 * (supervisor.ts), and the exit path every quit reason takes (command
 * exit, namespace gone, SIGTERM, a failed worker).
 */
import { releaseInitSignals } from './initSignals';
import type { Config } from '../shared/config';
import { log } from '../shared/log';
import { native } from '../shared/native';
import { getHeapSpaceStatistics } from 'node:v8';
import { compactHeap, endCompaction } from '../shared/heap';
import { openPcap } from '../shared/pcapWriter';
import type { Backend } from '../shared/messages';
import { Supervisor } from './supervisor';
import { Forwarder } from './forward';
import { AutoForwarder } from './autoForward';
import { currentLogTarget } from './logging';
import { startControl, runtimeTarget } from './control';

export interface RuntimeFds {
  /** Target network namespace (pasta), or -1. */
  nsfd: number;
  /** Tap device (pasta) or connected qemu socket (passt), or -1. */
  tapfd: number;
  tapName: string;
  backend: Backend;
  /** Guest MAC as read from the namespace (pasta), or null. */
  guestMac: Uint8Array | null;
  /** Guest IPv6 link-local address, if known. */
  guestLinkLocal: string | null;
  /** Bytes of virtio-net header before every frame on the tap (pasta with offloads: 10), default 0. */
  vnetLen?: number;
}

/** How long workers may take to flush what they hold when quitting. */
export const DRAIN_MS = 2000;

function macString(m: Uint8Array): string {
  return Array.from(m, (b) => b.toString(16).padStart(2, '0')).join(':');
}

export class Runtime {
  readonly sup = new Supervisor();
  fwd: Forwarder | null = null;
  auto: AutoForwarder | null = null;
  private fds: RuntimeFds | null = null;
  private exiting = false;
  /** Keeps the event loop alive while nothing else does (e.g. --no-netns-quit). */
  private keepAlive: NodeJS.Timeout | null = null;
  /** Last step before the process exits (after the workers stopped). */
  onExit: () => void = () => {};

  constructor(readonly cfg: Config) {
    const quit = () => void this.shutdown(0);
    process.on('SIGTERM', quit);
    process.on('SIGQUIT', quit);
    releaseInitSignals();
    // PID 1 of a PID namespace gets no signal it has no handler for (SIGKILL
    // aside), so Ctrl-C or a hangup, which end the program anywhere else,
    // would be ignored there (a container's entrypoint, unshare --pid)
    if (process.pid === 1) {
      process.on('SIGINT', () => void this.shutdown(128 + 2));
      process.on('SIGHUP', () => void this.shutdown(128 + 1));
    }
    this.sup.onFatal = (m) => {
      log.error(m);
      void this.shutdown(1);
    };
  }

  async start(fds: RuntimeFds): Promise<void> {
    this.fds = fds;
    this.keepAlive = setInterval(() => {}, 1 << 30);
    let pcapFd = -1;
    if (this.cfg.pcap) {
      try {
        pcapFd = openPcap(this.cfg.pcap);
        log.info(`Saving packet capture to ${this.cfg.pcap}`);
      } catch (e) {
        log.error(`Couldn't open pcap file ${this.cfg.pcap}: ${(e as Error).message}`);
      }
    }
    await this.sup.start({
      cfg: this.cfg, backend: fds.backend, tapfd: fds.tapfd, nsfd: fds.nsfd, vnetLen: fds.vnetLen ?? 0,
      guest: { mac: fds.guestMac ? macString(fds.guestMac) : null, linkLocal: fds.guestLinkLocal },
      pcapFd, logLevel: this.cfg.logLevel, logTarget: currentLogTarget(), tcpShards: 1,
    });
    log.debug(`pipeline running on ${fds.tapName} (fd ${fds.tapfd})`);
    // forwarded ports are bound before readiness (CLIENTS.md §0)
    this.fwd = new Forwarder(this.cfg, fds.nsfd, this.sup);
    this.fwd.bindStatic();
    // pasta's `auto` forwards: first scan now, before readiness, then every second
    this.auto = AutoForwarder.create(this.cfg, fds.nsfd, this.fwd);
    this.auto?.start();
    // the control socket exists before readiness too (--control)
    if (this.cfg.control) await startControl(this.cfg.control, runtimeTarget(this));
  }

  /** The program is ready: workers follow the main thread's log target. */
  afterReady(): void {
    this.sup.setLog(this.cfg.logLevel, currentLogTarget());
    // the workers compacted their heaps before reporting ready (heap.ts)
    if (this.cfg.tuning.memory.compactAfterStart) {
      compactHeap();
      endCompaction();
    }
    if (this.cfg.tuning.memory.trimAfterStart) native.mallocTrim();
    if (log.debugOn) {
      const kib = (n: number) => Math.round(n / 1024);
      const spaces = getHeapSpaceStatistics().filter((x) => x.physical_space_size > 0);
      log.debug(`main heap: ${spaces.map((x) => `${x.space_name} ${kib(x.physical_space_size)}`).join(', ')} KiB`);
    }
    this.sup.startupOver = true;
  }

  /**
   * Stops everything and exits the process with `code`.
   * @param drain let workers flush what they hold (bounded by DRAIN_MS);
   *   by default only for a clean exit. pasta's spawned command exiting is
   *   a clean end whatever its status: what it wrote into spliced
   *   connections just before must still arrive.
   */
  async shutdown(code: number, drain = code === 0): Promise<never> {
    if (!this.exiting) {
      this.exiting = true;
      if (this.keepAlive) clearInterval(this.keepAlive);
      this.auto?.stop();
      await this.sup.shutdown(drain ? DRAIN_MS : 0);
      if (log.debugOn) for (const [k, v] of Object.entries(this.sup.stats())) log.debug(`${k}: ${JSON.stringify(v)}`);
      if (this.fds && this.fds.tapfd >= 0) native.close(this.fds.tapfd);
      this.onExit();
    }
    process.exit(code);
  }
}

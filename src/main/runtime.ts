/**
 * The running program's resources and their orderly end: the tap (or passt
 * socket) descriptor and the worker pipeline (supervisor.ts), and the exit
 * path used by every quit reason (command exit, namespace gone, SIGTERM).
 */
import type { Config } from '../shared/config';
import { log } from '../shared/log';
import { native } from '../shared/native';

export interface RuntimeFds {
  /** Target network namespace (pasta), or -1. */
  nsfd: number;
  /** Tap device (pasta) or connected qemu socket (passt), or -1. */
  tapfd: number;
  tapName: string;
  /** Guest MAC as read from the namespace (pasta), or null. */
  guestMac: Uint8Array | null;
  /** Guest IPv6 link-local address, if known. */
  guestLinkLocal: string | null;
}

export class Runtime {
  private fds: RuntimeFds | null = null;
  private exiting = false;
  /** Keeps the event loop alive while nothing else does (e.g. --no-netns-quit). */
  private keepAlive: NodeJS.Timeout | null = null;

  constructor(readonly cfg: Config) {
    const quit = () => void this.shutdown(0);
    process.on('SIGTERM', quit);
    process.on('SIGQUIT', quit);
  }

  async start(fds: RuntimeFds): Promise<void> {
    this.fds = fds;
    this.keepAlive = setInterval(() => {}, 1 << 30);
    log.debug(`tap ${fds.tapName} (fd ${fds.tapfd}) ready`);
  }

  /** Stops everything and exits the process with `code`. */
  async shutdown(code: number): Promise<never> {
    if (!this.exiting) {
      this.exiting = true;
      if (this.keepAlive) clearInterval(this.keepAlive);
      if (this.fds && this.fds.tapfd >= 0) native.close(this.fds.tapfd);
    }
    process.exit(code);
  }
}

/**
 * TCP worker (SPEC.md §4). Until TCP translation over the tap lands, this
 * worker counts tap frames, owns the forwarded TCP listeners, hands
 * connections that qualify to the spliced path, and closes the rest.
 */
import { CountingL4Worker } from '../l4stub';
import { ListenerSet } from './listeners';
import { acceptPath, SplicePath } from './spliceApi';
import { createSplicePath } from './splice';
import { GuestState } from '../../shared/guestState';
import { EpollType, refType, refIndex } from '../../shared/epollRef';
import type { ControlMsg } from '../../shared/messages';
import { native } from '../../shared/native';

class TcpWorker extends CountingL4Worker {
  private readonly splice: SplicePath | null;
  private readonly listeners: ListenerSet;

  constructor() {
    super();
    const host = {
      cfg: this.init.cfg, nsfd: this.init.nsfd, guest: new GuestState(this.init.guestState),
      add: (fd: number, ev: number, ref: number) => this.add(fd, ev, ref),
      mod: (fd: number, ev: number, ref: number) => this.mod(fd, ev, ref),
      del: (fd: number) => this.del(fd),
    };
    this.splice = createSplicePath(host);
    this.listeners = new ListenerSet(this, () => true, (l, fd, peer, now) => {
      if (this.splice && acceptPath(this.init.cfg, l, peer) === 'splice') this.splice.accept(l, fd, peer, now);
      else native.close(fd);
    });
  }

  protected onControl(msg: ControlMsg): void {
    this.listeners.handle(msg);
  }

  protected onEvent(ref: number, events: number, now: number): void {
    const t = refType(ref);
    if (t === EpollType.TCP_LISTEN) this.listeners.onEvent(refIndex(ref), now);
    else if (t === EpollType.TCP_SPLICE || t === EpollType.SPLICE_PIPE) this.splice?.onEvent(ref, events, now);
  }

  protected work(now: number): boolean {
    const a = super.work(now);
    const b = this.splice ? this.splice.work(now) : false;
    return a || b;
  }

  protected timeoutMs(now: number): number {
    return this.splice ? this.splice.timeoutMs(now) : 1000;
  }

  protected drained(now: number): boolean {
    // connections still in a backlog may hold what the command wrote last
    this.listeners.acceptPending(now);
    return this.splice ? this.splice.drained(now) : true;
  }
}

new TcpWorker().run();

/**
 * The UDP worker (SPEC.md §5, §6): owns UDP and ping flows and their
 * sockets, and the listening sockets of UDP forwarded ports.
 *
 * Theory of operation
 * - Inputs: the ring from tap-RX (guest UDP datagrams and echo requests,
 *   in batches of one 4-tuple, l4/tapIn.ts; tap.ts), readiness of its sockets in its epoll set (sock.ts, icmp.ts),
 *   and control messages from main ('listen'/'unlisten' hand over and take
 *   back forwarded-port sockets). Output: frames to the guest in its ring
 *   towards tap-TX (TapOut), handed to the guest link once per loop
 *   iteration (written by this thread while tap-TX holds nothing of it,
 *   else published: link/directWriter.ts).
 * - One iteration (loop.ts): drain the input ring within a budget (payloads
 *   are sent before the space is released), run the timer pass (core.ts:
 *   flow expiry, once per second), publish frames, release input space;
 *   then sleep in epoll_wait until a socket, the waker or the next timer
 *   pass, and dispatch socket events.
 * - Shutdown: nothing is buffered beyond one iteration; sockets are closed
 *   when the loop ends.
 */
import { WorkerLoop } from '../loop';
import type { ControlMsg, L4Init } from '../../shared/messages';
import { FrameRing } from '../../shared/ring/frameRing';
import { Waker } from '../../shared/ring/waker';
import { GuestState } from '../../shared/guestState';
import { Stats } from '../../shared/stats';
import { native } from '../../shared/native';
import { TapOut } from '../l4/tapOut';
import { UdpCore } from './core';
import { SendBatch, tapHandler } from './tap';
import { RecvState, sockHandler } from './sock';

/** Guest records handled per iteration before sockets get their turn. */
const TAP_BUDGET = 1024;

class UdpWorker extends WorkerLoop<L4Init> {
  private readonly input: FrameRing;
  private readonly producer: Waker;
  private readonly out: TapOut;
  private readonly core: UdpCore;
  private readonly batch = new SendBatch();
  private readonly rx = new RecvState();

  constructor() {
    super();
    const i = this.init;
    this.input = new FrameRing(i.fromTap.ring);
    this.producer = new Waker(i.fromTap.producer);
    const guest = new GuestState(i.guestState);
    this.out = new TapOut(i.toTx, i.vnetLen, guest, i.cfg.ourMac);
    this.core = new UdpCore({
      cfg: i.cfg, guest, input: this.input, out: this.out, sys: native, epfd: this.epfd, nsfd: i.nsfd,
      stats: new Stats('udp', i.stats),
      udpTimeoutMs: i.cfg.tuning.udpTimeoutMs, pingTimeoutMs: i.cfg.tuning.pingTimeoutMs, batch: i.cfg.tuning.udpBatch,
      capacity: i.cfg.tuning.flowMax,
      releaseInput: () => { if (this.input.release()) this.producer.wake(); },
    });
  }

  protected work(now: number): boolean {
    const n = tapHandler(this.core, this.batch, now, TAP_BUDGET);
    this.core.timerHandler(now);
    if (this.core.paused.size) this.core.resume();
    this.beforeSleep();
    return n === TAP_BUDGET;
  }

  protected hasInput(): boolean {
    return this.input.peek() >= 0 || this.core.canResume();
  }

  protected beforeSleep(): void {
    this.out.flush();
    this.core.releaseInput();
  }

  protected onEvent(ref: number, events: number, now: number): void {
    sockHandler(this.core, this.rx, ref, events, now);
  }

  protected timeoutMs(now: number): number {
    return this.core.timeoutMs(now);
  }

  protected onControl(msg: ControlMsg, now: number): void {
    if (msg.type === 'guestLink') {
      this.out.configureLink(msg);
    } else if (msg.type === 'flows') {
      this.post({ type: 'flows', req: msg.req, ...this.core.listFlows(msg.max, now) });
    } else if (msg.type === 'listen') {
      for (const l of msg.add) if (l.proto === 'udp') this.core.listen(l);
    } else if (msg.type === 'unlisten') {
      for (const id of msg.ids) this.core.unlisten(id);
    }
  }

  protected finish(): void {
    this.out.flush();
    this.core.closeAll();
  }
}

new UdpWorker().run();

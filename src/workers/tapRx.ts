/**
 * tap-RX worker: hosts the TapReader stage (tapReader.ts) on an epoll loop
 * of its own, so that reading the tap runs in parallel with the TCP and UDP
 * workers (pasta's default; passt runs the stage inside the TCP worker).
 */
import { WorkerLoop } from './loop';
import type { ControlMsg, TapRxInit } from '../shared/messages';
import { TapReader } from './tapReader';

class TapRxWorker extends WorkerLoop<TapRxInit> {
  private readonly reader: TapReader;

  constructor() {
    super();
    this.reader = new TapReader(this.init, this);
  }

  protected onControl(msg: ControlMsg): void {
    this.reader.onControl(msg);
  }

  protected onEvent(ref: number, events: number): void {
    this.reader.onEvent(ref, events);
  }

  protected hasInput(): boolean {
    return this.reader.hasInput();
  }

  protected beforeSleep(): void {
    this.reader.flushAll();
  }

  protected timeoutMs(now: number): number {
    return this.reader.timeoutMs(now);
  }

  protected work(now: number): boolean {
    return this.reader.work(now);
  }
}

new TapRxWorker().run();

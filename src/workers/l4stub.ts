/**
 * Placeholder for an L4 worker whose protocol has not arrived yet: it owns
 * its input ring, counts every frame handed to it and releases the space,
 * so the pipeline around it runs for real. Replaced by tcp/worker.ts and
 * udp/worker.ts.
 */
import { WorkerLoop } from './loop';
import type { L4Init } from '../shared/messages';
import { FrameRing } from '../shared/ring/frameRing';
import { Waker } from '../shared/ring/waker';
import { Stats } from '../shared/stats';

export class CountingL4Worker extends WorkerLoop<L4Init> {
  private readonly ring: FrameRing;
  private readonly producer: Waker;
  private readonly stats: Stats<'tcp' | 'udp'>;

  constructor() {
    super();
    this.ring = new FrameRing(this.init.fromTap.ring);
    this.producer = new Waker(this.init.fromTap.producer);
    this.stats = new Stats(this.init.role, this.init.stats);
  }

  protected work(_now: number): boolean {
    let n = 0;
    while (n < 256 && this.ring.peek() >= 0) {
      this.ring.consume();
      n++;
    }
    this.stats.add('frames', n);
    this.stats.add('dropped', n);
    if (this.ring.release()) this.producer.wake();
    return this.ring.peek() >= 0;
  }

  protected hasInput(): boolean {
    return this.ring.peek() >= 0;
  }

  protected beforeSleep(): void {
    if (this.ring.release()) this.producer.wake();
  }

  protected onEvent(_ref: number, _events: number, _now: number): void {}
}

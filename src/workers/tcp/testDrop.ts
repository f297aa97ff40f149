/**
 * Test hook (cfg.tuning.tcpDrop, PASST_TS_TCP_DROP="to=N,from=M"): loses
 * every Nth TCP data frame towards the guest and every Mth from it, to
 * exercise retransmissions where the kernel offers no netem.
 *
 * Theory of operation: the hook is chosen once, when the worker starts:
 * with it off, the worker runs the plain batch handler and the plain
 * TapOut, and the data path carries no test branch at all. With it on:
 * - from the guest, `lossyFromGuest` wraps the batch handler: it takes
 *   the lost segments out of each batch (pure ACKs are never lost) before
 *   the state machine sees it;
 * - towards the guest, `LossyTapOut` turns every Nth data frame of what
 *   is about to be flushed into a SKIP record, so it never reaches the
 *   guest (the TCP worker believes it sent it, as on a lossy link).
 */
import type { RingOut } from '../../shared/messages';
import type { GuestState } from '../../shared/guestState';
import { FrameViews, FRAME_LAYER } from '../../shared/wire/frame';
import type { TcpView } from '../../shared/wire/tcp';
import { TapOut } from '../l4/tapOut';
import type { TcpCtx } from './ctx';
import type { TapBatch } from './tap';

/** The batch handler's shape (tap.ts tapHandler). */
export type BatchHandler = (ctx: TcpCtx, b: TapBatch, v: TcpView) => void;

/** `handle`, losing every `every`th data segment of the guest's first. */
export function lossyFromGuest(handle: BatchHandler, every: number): BatchHandler {
  let count = 0;
  return (ctx, b, v) => {
    let k = 0;
    for (let i = 0; i < b.n; i++) {
      v.reset(b.off[i], b.len[i]);
      if (v.payloadLen && ++count % every === 0) continue;
      b.off[k] = b.off[i];
      b.len[k] = b.len[i];
      k++;
    }
    b.n = k;
    if (b.n) handle(ctx, b, v);
  };
}

/** Most records looked at per flush (more than an 8 MiB ring holds). */
const MAX_RECORDS = 1 << 17;

/** A TapOut that loses every `every`th TCP data frame it flushes. */
export class LossyTapOut extends TapOut {
  private readonly offs = new Int32Array(MAX_RECORDS);
  private readonly lens = new Int32Array(MAX_RECORDS);
  private readonly hdrs = new Int32Array(MAX_RECORDS);
  private readonly views: FrameViews;
  private count = 0;

  constructor(o: RingOut, vnetLen: number, guest: GuestState, ourMac: string, private readonly every: number) {
    super(o, vnetLen, guest, ourMac);
    this.views = new FrameViews(this.u8);
  }

  override flush(): void {
    if (!this.dirty) return;
    const n = this.ring.unpublished(this.offs, this.lens, this.hdrs, MAX_RECORDS);
    const fv = this.views;
    for (let i = 0; i < n; i++) {
      const layer = fv.parse(this.offs[i] + this.vnetLen, this.lens[i] - this.vnetLen);
      if (layer === FRAME_LAYER.L4 && fv.tcp.payloadLen > 0 && ++this.count % this.every === 0)
        this.ring.skipUnpublished(this.hdrs[i]);
    }
    super.flush();
  }
}

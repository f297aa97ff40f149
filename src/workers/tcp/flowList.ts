/**
 * The TCP worker's answer to the control socket's `flows` (messages.ts
 * FlowInfo): its connections over the tap, in flow-index order, then its
 * spliced ones. Made between two loop iterations, off the data path.
 */
import type { FlowInfo } from '../../shared/messages';
import { endpointString } from '../../shared/flow/inany';
import type { TcpCtx } from './ctx';
import type { SplicePath } from './spliceApi';
import { eventNames, flagNames } from './conn';

/** Up to max flows, and how many there are in all. */
export function listFlows(ctx: TcpCtx, splice: SplicePath | null, max: number, now: number): { flows: FlowInfo[]; total: number } {
  const flows: FlowInfo[] = [];
  let total = 0;
  for (const c of ctx.conns) {
    if (!c || c.dead || c.idx < 0 || !ctx.table.isUsed(c.idx)) continue;
    total++;
    if (flows.length >= max) continue;
    flows.push({
      proto: 'tcp', path: 'tap', id: c.idx, from: `guest ${endpointString(c.guestAddr, 0, c.guestPort)}`,
      to: `host ${endpointString(c.ourAddr, 0, c.ourPort)}`, state: c.flags ? `${eventNames(c.events)} [${flagNames(c.flags)}]` : eventNames(c.events), bytesOut: c.bytesFromTap,
      bytesIn: c.bytesToTap, ageMs: Math.max(0, Math.round(now - c.openedAt)),
    });
  }
  if (splice) {
    total += splice.count;
    for (const f of splice.list(Math.max(0, max - flows.length), now)) {
      flows.push({ proto: 'tcp', path: 'splice', id: f.index, from: f.from, to: f.to, state: f.state,
        bytesOut: f.bytesFromClient, bytesIn: f.bytesFromTarget, ageMs: f.ageMs });
    }
  }
  return { flows, total };
}

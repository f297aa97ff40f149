/**
 * Per-connection timers of tap TCP connections (SPEC §4.9), as deadlines
 * in the worker's timer heap (timerHeap.ts), checked once per loop
 * iteration.
 *
 * Theory of operation
 * - A connection has at most one entry in effect: the earliest of
 *   - ACK_TO_TAP_DUE: 10 ms after our ACK started lagging → send an ACK if
 *     the ACK number or window changed (a zero window is re-polled);
 *   - ACK_FROM_TAP_DUE: SYN_TIMEOUT 10 s before ESTABLISHED (→ RST; our
 *     SYN to the guest is sent again every second meanwhile, a departure
 *     from the original that helps guests whose address is still in DAD), then
 *     ACK_TIMEOUT 2 s after the last data segment we sent → rewind to the
 *     guest's ACK and send again; the 8th expiry without progress → RST.
 *     With a zero window from the guest this is the persist timer instead: a
 *     window probe (an ACK one byte behind, as Linux sends, which the guest
 *     answers with its window), without counting towards the reset;
 *   - FIN_TIMEOUT 60 s once SOCK_FIN_SENT and TAP_FIN_ACKED are both set
 *     (→ RST; normally the connection is closed before);
 *   - ACT_TIMEOUT 7200 s after the last activity → RST (SPEC §13 item 1:
 *     the intent, not the original's never-firing check).
 * - Setting ACK_FROM_TAP_DUE again moves its deadline forward. Cleared
 *   flags do not remove heap entries: an expiry finds the flag clear or the
 *   deadline moved and just re-arms.
 */
import type { TcpCtx } from './ctx';
import { TcpConn, TCP_EV, TCP_FL, TCP_MAX_RETRANS, TCP_TIMEOUT } from './conn';
import { sendFlag, sendProbe, resetConn, ACK_IF_NEEDED, alreadySent } from './out';
import { sockToTap, rewind } from './sock';
import { TCP_FLAG } from '../../shared/wire/tcp';

/** Runs every expired timer. */
export function runTimers(ctx: TcpCtx, now: number): void {
  const h = ctx.timers;
  let budget = 4096;
  while (h.size && h.peekTime() <= now && budget-- > 0) {
    const t = h.peekTime();
    const i = h.peekIndex();
    h.pop();
    const c = ctx.conns[i];
    if (!c || c.dead || c.heapedAt !== t) continue; // stale entry
    c.heapedAt = Infinity;
    ctx.armTimer(c); // recomputes the deadline (activity moves it later)
    if (c.deadline > now) continue;
    timerHandler(ctx, c, now);
    if (!c.dead) ctx.armTimer(c);
  }
}

/** An expired deadline of c. */
export function timerHandler(ctx: TcpCtx, c: TcpConn, now: number): void {
  if (c.flags & TCP_FL.ACK_TO_TAP_DUE && now >= c.ackDueAt) {
    c.flags &= ~TCP_FL.ACK_TO_TAP_DUE;
    c.ackDueAt = Infinity;
    if (c.events & TCP_EV.ESTABLISHED) sendFlag(ctx, c, ACK_IF_NEEDED);
    if (c.dead) return;
  }
  if (c.flags & TCP_FL.ACK_FROM_TAP_DUE && now >= c.rtoAt) {
    c.flags &= ~TCP_FL.ACK_FROM_TAP_DUE;
    c.rtoAt = Infinity;
    if (!(c.events & TCP_EV.ESTABLISHED)) {
      if (c.events & TCP_EV.SOCK_ACCEPTED && now - c.openedAt < TCP_TIMEOUT.SYN) {
        // our SYN may have met an address still in DAD: send it again
        c.seqToTap = (c.seqToTap - 1) >>> 0;
        sendFlag(ctx, c, TCP_FLAG.SYN);
        ctx.setFlag(c, TCP_FL.ACK_FROM_TAP_DUE);
        c.rtoAt = Math.min(now + TCP_TIMEOUT.SYN_RETRY, c.openedAt + TCP_TIMEOUT.SYN);
        ctx.armTimer(c);
        return;
      }
      return resetConn(ctx, c, 'handshake timeout');
    }
    if ((c.events & (TCP_EV.SOCK_FIN_SENT | TCP_EV.TAP_FIN_ACKED)) === (TCP_EV.SOCK_FIN_SENT | TCP_EV.TAP_FIN_ACKED))
      return resetConn(ctx, c, 'FIN timeout');
    if (c.wndFromTap === 0) {
      // persist: a probe the guest answers with its current window
      ctx.stats.add('windowProbes');
      sendProbe(ctx, c);
      ctx.setFlag(c, TCP_FL.ACK_FROM_TAP_DUE);
    } else if (alreadySent(c) > 0) {
      if (c.retrans >= TCP_MAX_RETRANS) return resetConn(ctx, c, 'retransmission limit');
      c.retrans++;
      ctx.stats.add('retransTimeout');
      if (!rewind(ctx, c)) return resetConn(ctx, c, 'peek offset');
      sockToTap(ctx, c);
      if (c.dead) return;
      if (!(c.flags & TCP_FL.ACK_FROM_TAP_DUE)) ctx.setFlag(c, TCP_FL.ACK_FROM_TAP_DUE);
    } else if (c.flags & TCP_FL.STALLED) {
      // nothing outstanding but data waits (window or ring): try again
      sockToTap(ctx, c);
      if (c.dead) return;
    }
  }
  if (c.finAt <= now) return resetConn(ctx, c, 'FIN timeout');
  if (now - c.lastActivity >= TCP_TIMEOUT.ACT) return resetConn(ctx, c, 'idle timeout');
}

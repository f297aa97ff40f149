/**
 * Time as a parameter (STYLE.md guideline 8): each worker reads the
 * monotonic clock once per loop iteration and passes `now` (milliseconds,
 * fractional) to every handler. Wall-clock time is only for pcap stamps.
 */
import { performance } from 'node:perf_hooks';

/** Monotonic milliseconds since the thread's time origin (performance.now()). */
export function monotonicMs(): number {
  return performance.now();
}

/** Wall-clock time as [seconds, microseconds] for pcap records. */
export function realtimeUs(): [number, number] {
  const us = Math.round((performance.timeOrigin + performance.now()) * 1000);
  return [Math.floor(us / 1e6), us % 1e6];
}

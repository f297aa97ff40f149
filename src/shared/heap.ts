/**
 * One compacting full garbage collection per isolate once start-up is over
 * (cfg.tuning.memory.compactAfterStart; perf/README.md "Memory per
 * instance").
 *
 * Theory of operation
 * - Start-up leaves garbage in the old generation (with 1 MiB semi-spaces
 *   much of what module loading allocates is promoted before it dies). V8
 *   would collect it some day, but compacts only the pages it picks, and a
 *   worker blocked in epoll_wait runs none of V8's idle-time tasks (the
 *   memory reducer). One full collection with compaction gives the pages
 *   back: about 0.5 to 0.8 MiB per isolate.
 * - V8's flags are process-wide, so the main thread sets them before any
 *   worker exists (prepareCompaction()): gc() in every new context, and
 *   every full collection compacts. Each worker collects before it reports
 *   ready (compactHeap()); the main thread collects once all are ready and
 *   gives full collections back to V8's heuristics (endCompaction()).
 * - gc() comes from a fresh context (vm), where V8 installs it once the
 *   flag is set: a context made before the flag (the main thread's own)
 *   has none.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Main thread, before the workers start. */
export function prepareCompaction(): void {
  setFlagsFromString('--expose-gc');
  setFlagsFromString('--compact-on-every-full-gc');
}

/** A full, compacting collection of this isolate's heap (after prepareCompaction()). */
export function compactHeap(): void {
  (runInNewContext('gc') as () => void)();
}

/** Main thread, once every worker collected: full collections compact by V8's heuristics again. */
export function endCompaction(): void {
  setFlagsFromString('--no-compact-on-every-full-gc');
}

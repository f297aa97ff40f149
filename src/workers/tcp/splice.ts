/**
 * Spliced TCP (SPEC.md §4.14): not implemented yet — without it, host
 * loopback connections to -t ports go over the tap (as with --no-splice)
 * and -T listeners refuse their connections.
 */
import type { SpliceHost, SplicePath } from './spliceApi';

export function createSplicePath(_host: SpliceHost): SplicePath | null {
  return null;
}

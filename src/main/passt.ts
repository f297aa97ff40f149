/**
 * passt mode: serves a qemu guest over a UNIX stream socket (SPEC.md §10).
 * Arrives with the passt-mode issue; until then passt says so and exits.
 */
import { PasstError } from '../shared/errors';
import type { Options } from './conf';

export async function runPasst(_o: Options): Promise<void> {
  throw new PasstError('PASST_ERR_UNIMPLEMENTED', 'passt mode is not implemented yet (qemu stream socket back end pending)');
}

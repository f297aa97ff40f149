/**
 * Property-test helpers: arbitraries for hostile input (random bytes and
 * mutated fixtures, arbitrary offsets and lengths) and a generic snapshot
 * of a view's getters, used to show that a view reads nothing outside its
 * range (same results whatever bytes surround it).
 */
import { fc } from '@fast-check/ava';

/** Any number a caller might pass as an offset or length, sane or not. */
export const anyNumber = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -4, max: 400 }) },
  { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity, 0.5, 2 ** 32, 2 ** 31, -0, 1e300) },
  { weight: 1, arbitrary: fc.double() },
);

/** A fixture with a few bytes changed and its length cut or extended. */
export function mutant(seed: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.tuple(
    fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 6 }),
    // mostly keep the length: length fields then agree and deeper layers get exercised
    fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -seed.length, max: 24 }) }),
    fc.uint8Array({ maxLength: 24 }),
  ).map(([edits, delta, tail]) => {
    const n = Math.max(0, seed.length + delta);
    const b = new Uint8Array(n);
    b.set(seed.subarray(0, Math.min(n, seed.length)));
    if (n > seed.length) b.set(tail.subarray(0, n - seed.length), seed.length);
    for (const [i, v] of edits) if (n) b[i % n] = v;
    return b;
  });
}

/** Random bytes or mutants of the seeds. */
export function hostile(...seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.oneof(fc.uint8Array({ maxLength: 160 }), ...seeds.map(mutant));
}

/** A buffer with `pre` bytes of `canary`, the data, `post` bytes of `canary`. */
export function framed(data: Uint8Array, pre: number, post: number, canary: number): Uint8Array {
  const b = new Uint8Array(pre + data.length + post).fill(canary);
  b.set(data, pre);
  return b;
}

export { snapshot } from './snapshot';

/** Calls every setX method of a view with plausible arguments (addresses get a 16-byte array). */
export function callSetters(v: object, value: number): void {
  for (let p = Object.getPrototypeOf(v); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const [k, d] of Object.entries(Object.getOwnPropertyDescriptors(p))) {
      if (!k.startsWith('set') || typeof d.value !== 'function') continue;
      const f = d.value as (...a: unknown[]) => void;
      if (k === 'setSrc' || k === 'setDst') f.call(v, new Uint8Array(16).fill(value & 0xff), 0);
      else f.call(v, value);
    }
  }
}

/**
 * @fast-check/ava for our CommonJS test build.
 *
 * The package is ESM-only (an `exports` map, no `main`), which TypeScript's
 * `moduleResolution: "node"` cannot resolve, although Node 20.19+ loads it
 * with require(). So: types by path, value by require().
 */
import type * as FcAva from '../../node_modules/@fast-check/ava/lib/ava-fast-check';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const mod = require('@fast-check/ava') as typeof FcAva;

export const testProp = mod.testProp;
export const fc = mod.fc;

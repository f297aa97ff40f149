/**
 * Error classes for set-up and control paths (never the data path, where
 * failures are values). Each carries a stable `code` (STYLE.md guideline 4).
 */

/** A configuration or start-up failure: one line for the user, exit 1. */
export class PasstError extends Error {
  constructor(public readonly code: string, message: string) {
    super(message);
    this.name = 'PasstError';
  }
}

/** A failed system call on a set-up path. */
export class ErrnoError extends Error {
  readonly code: string;
  constructor(public readonly errno: number, public readonly syscall: string, detail?: string) {
    super(`${detail ? detail + ': ' : ''}${describeErrno(errno)}`);
    this.name = 'ErrnoError';
    this.code = errnoCode(errno);
  }
}

let strerror: ((e: number) => string) | null = null;
let codes: Map<number, string> | null = null;

function errnoCode(e: number): string {
  if (!codes) {
    codes = new Map();
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    for (const [k, v] of Object.entries(require('node:os').constants.errno as Record<string, number>))
      if (!codes.has(v)) codes.set(v, k);
  }
  return codes.get(e) ?? `E${e}`;
}

/** strerror() text for an errno (positive or negative). */
export function describeErrno(e: number): string {
  if (!strerror) {
    // Lazy, so this module stays usable where the addon is not built.
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    strerror = (require('./native') as typeof import('./native')).native.strerror;
  }
  return strerror(Math.abs(e));
}

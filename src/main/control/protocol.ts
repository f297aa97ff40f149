/**
 * The control socket's wire protocol (README.md "Control socket").
 *
 * Theory of operation
 * - One JSON object per line each way (UTF-8, "\n" ends a line; "\r\n" is
 *   accepted). A request names its verb in `cmd`; it may carry an `id`
 *   (string or number), which the answer repeats, so a client may send
 *   several requests without waiting. Answers come in request order.
 * - An answer is `{"ok": true, ...data}` or `{"ok": false, "error": TEXT}`.
 *   A bad request never closes the connection: malformed JSON, a verb we
 *   don't know, a field of the wrong type or one the verb doesn't take all
 *   get an error answer naming what was wrong.
 * - A line longer than MAX_LINE bytes is not buffered: its bytes are
 *   dropped up to its end, and it is answered with an error (LineSplitter).
 * - This module is pure (no I/O): the server (server.ts) feeds it bytes and
 *   writes what it returns; the client (client.ts) uses the same types.
 *
 * Verbs and fields:
 *   stats       [format: "json" | "prometheus"]
 *   flows       [offset: integer >= 0] [limit: 1..MAX_FLOWS_PAGE]
 *   ports
 *   add-port    option: "-t" | "-u" | "-T" | "-U", spec: that option's SPEC
 *   remove-port option, spec (as add-port)
 *   quit
 */
import type { ForwardOpt } from '../portSpec';

/** Longest request line we accept, in bytes (without its newline). */
export const MAX_LINE = 64 * 1024;
/** Flows per `flows` page at most, and by default. */
export const MAX_FLOWS_PAGE = 1000;
export const DEFAULT_FLOWS_PAGE = 100;

export const VERBS = ['stats', 'flows', 'ports', 'add-port', 'remove-port', 'quit'] as const;
export type Verb = (typeof VERBS)[number];

export type RequestId = string | number;

export type Request =
  | { cmd: 'stats'; id?: RequestId; format: 'json' | 'prometheus' }
  | { cmd: 'flows'; id?: RequestId; offset: number; limit: number }
  | { cmd: 'ports'; id?: RequestId }
  | { cmd: 'add-port' | 'remove-port'; id?: RequestId; option: ForwardOpt; spec: string }
  | { cmd: 'quit'; id?: RequestId };

/** A request that cannot be served, with the id to answer it under (if one could be read). */
export interface BadRequest {
  error: string;
  id?: RequestId;
}

/** Fields each verb takes besides `cmd` and `id`. */
const FIELDS: Record<Verb, readonly string[]> = {
  stats: ['format'],
  flows: ['offset', 'limit'],
  ports: [],
  'add-port': ['option', 'spec'],
  'remove-port': ['option', 'spec'],
  quit: [],
};

const OPTIONS: readonly ForwardOpt[] = ['-t', '-u', '-T', '-U'];

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v) : typeof v;
}

/** Parses one request line (without its newline). */
export function parseRequest(line: string): Request | BadRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    return { error: `malformed JSON: ${(e as Error).message}` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    return { error: `a request is a JSON object, not ${describe(v)}` };
  }
  const o = v as Record<string, unknown>;
  let id: RequestId | undefined;
  if ('id' in o) {
    if (typeof o.id !== 'string' && !(typeof o.id === 'number' && Number.isFinite(o.id)))
      return { error: `"id" must be a string or a number, not ${describe(o.id)}` };
    id = o.id;
  }
  const bad = (error: string): BadRequest => (id === undefined ? { error } : { error, id });
  if (!('cmd' in o)) return bad('missing "cmd" (one of ' + VERBS.join(', ') + ')');
  if (typeof o.cmd !== 'string') return bad(`"cmd" must be a string, not ${describe(o.cmd)}`);
  const cmd = o.cmd;
  if (!(VERBS as readonly string[]).includes(cmd))
    return bad(`unknown command ${describe(cmd)} (one of ${VERBS.join(', ')})`);
  const verb = cmd as Verb;
  for (const k of Object.keys(o)) {
    if (k !== 'cmd' && k !== 'id' && !FIELDS[verb].includes(k)) return bad(`unknown field "${k}" for ${verb}`);
  }
  const withId = <T extends object>(r: T): T & { id?: RequestId } => (id === undefined ? r : { ...r, id });

  switch (verb) {
    case 'stats': {
      const format = o.format ?? 'json';
      if (format !== 'json' && format !== 'prometheus')
        return bad(`"format" must be "json" or "prometheus", not ${describe(format)}`);
      return withId({ cmd: verb, format });
    }
    case 'flows': {
      const offset = o.offset ?? 0;
      const limit = o.limit ?? DEFAULT_FLOWS_PAGE;
      if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
        return bad(`"offset" must be an integer >= 0, not ${describe(offset)}`);
      if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_FLOWS_PAGE)
        return bad(`"limit" must be an integer from 1 to ${MAX_FLOWS_PAGE}, not ${describe(limit)}`);
      return withId({ cmd: verb, offset, limit });
    }
    case 'add-port':
    case 'remove-port': {
      if (!('option' in o)) return bad(`missing "option" (one of ${OPTIONS.join(', ')})`);
      if (typeof o.option !== 'string' || !(OPTIONS as readonly string[]).includes(o.option))
        return bad(`"option" must be one of ${OPTIONS.join(', ')}, not ${describe(o.option)}`);
      if (!('spec' in o)) return bad('missing "spec" (the port specification, as on the command line)');
      if (typeof o.spec !== 'string') return bad(`"spec" must be a string, not ${describe(o.spec)}`);
      if (o.spec === '') return bad('"spec" is empty');
      return withId({ cmd: verb, option: o.option as ForwardOpt, spec: o.spec });
    }
    case 'ports':
    case 'quit':
      return withId({ cmd: verb });
    default: {
      const never: never = verb;
      return never;
    }
  }
}

export function isBad(r: Request | BadRequest): r is BadRequest {
  return 'error' in r;
}

/** The text of an answer line (with its newline). */
export function answerLine(id: RequestId | undefined, body: { ok: true } & object | { ok: false; error: string }): string {
  return JSON.stringify(id === undefined ? body : { ...body, id }) + '\n';
}

/** An error answer line. */
export function errorLine(error: string, id?: RequestId): string {
  return answerLine(id, { ok: false, error });
}

/** What LineSplitter found in a chunk: a complete line, or a line that was too long. */
export type LineEvent = { line: string } | { tooLong: number };

/**
 * Splits a byte stream into lines of at most `max` bytes. A longer line is
 * reported once (tooLong, with the bytes seen before giving up) and its
 * remaining bytes are skipped up to its newline: memory stays bounded
 * whatever a client sends.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private skipping = false;

  constructor(private readonly max = MAX_LINE) {}

  /** Feeds a chunk; returns the events it completes, in order. */
  push(chunk: Buffer): LineEvent[] {
    const out: LineEvent[] = [];
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl < 0 ? chunk.length : nl;
      const piece = chunk.subarray(start, end);
      if (!this.skipping) {
        if (this.size + piece.length > this.max) {
          out.push({ tooLong: this.size + piece.length });
          this.parts = [];
          this.size = 0;
          this.skipping = true;
        } else if (piece.length) {
          this.parts.push(piece);
          this.size += piece.length;
        }
      }
      if (nl < 0) break;
      if (!this.skipping) {
        let line = Buffer.concat(this.parts, this.size).toString('utf8');
        if (line.endsWith('\r')) line = line.slice(0, -1);
        out.push({ line });
      }
      this.parts = [];
      this.size = 0;
      this.skipping = false;
      start = nl + 1;
    }
    // a retained piece must not pin the whole chunk
    if (this.parts.length && this.parts[this.parts.length - 1].buffer === chunk.buffer) {
      this.parts[this.parts.length - 1] = Buffer.from(this.parts[this.parts.length - 1]);
    }
    return out;
  }

  /** Bytes of an unfinished line held now. */
  get pending(): number {
    return this.size;
  }
}

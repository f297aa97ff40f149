/**
 * A client of the control socket (protocol.ts): connects, sends requests
 * one JSON line each, and matches answers to requests by order (the server
 * answers in request order). Used by passt-ts-ctl and the tests.
 */
import * as net from 'node:net';

/** An answer: `ok` plus the verb's data, or `ok: false` and `error`. */
export type Answer = { ok: true; [k: string]: unknown } | { ok: false; error: string; [k: string]: unknown };

export class ControlClient {
  private buf = '';
  private readonly waiting: { resolve: (a: Answer) => void; reject: (e: Error) => void }[] = [];
  /** Answers that came before their request was sent (a refusal is written at once). */
  private readonly early: Answer[] = [];
  private ended: Error | null = null;

  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        let a: Answer;
        try {
          a = JSON.parse(line) as Answer;
        } catch (e) {
          a = { ok: false, error: `bad answer from the control socket: ${(e as Error).message}` };
        }
        const w = this.waiting.shift();
        if (w) w.resolve(a); else this.early.push(a);
      }
    });
    const fail = (e: Error): void => {
      this.ended = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('the control socket closed the connection')));
  }

  static connect(path: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      s.once('connect', () => {
        s.removeListener('error', reject);
        resolve(new ControlClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Sends one request and resolves with its answer. */
  request(req: Record<string, unknown>): Promise<Answer> {
    return this.send(JSON.stringify(req));
  }

  /** Sends one raw line (tests: malformed requests) and resolves with the answer. */
  send(line: string): Promise<Answer> {
    const early = this.early.shift();
    if (early) return Promise.resolve(early);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sock.write(line + '\n');
    });
  }

  close(): void {
    this.sock.end();
    this.sock.destroy();
  }
}

/** Connects, sends one request, closes; resolves with the answer. */
export async function controlRequest(path: string, req: Record<string, unknown>): Promise<Answer> {
  const c = await ControlClient.connect(path);
  try {
    return await c.request(req);
  } finally {
    c.close();
  }
}

/**
 * The `--api-socket` listener: a UNIX stream socket serving one request
 * per connection (api.ts answers it).
 *
 * Theory of operation
 * - The path is unlinked first (slirp4netns does, to avoid EADDRINUSE),
 *   then bound; it is removed again when the server closes.
 * - A connection's bytes are collected until the client shuts down its
 *   writing side, or until they form a complete JSON value (a client that
 *   waits for the answer without shutdown(SHUT_WR) is served like
 *   slirp4netns serves it after its single read), or for at most IDLE_MS.
 *   REQUEST_MAX bytes or more are refused with slirp4netns' "too large
 *   message" error without reading further. The answer is written, then
 *   the connection is closed. Requests are logged to stderr as slirp4netns
 *   does, control characters replaced.
 * - Connections are served one at a time in arrival order, as slirp4netns
 *   does, so requests never interleave; at most MAX_PENDING wait, further
 *   ones are closed unanswered.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { HostfwdApi, REQUEST_MAX, TOO_LARGE } from './api';
import { Removable } from '../removable';

const IDLE_MS = 2000;
const MAX_PENDING = 64;

export class ApiServer {
  private readonly server: net.Server;
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;
  /** The socket file, removed at exit (through its directory: see removable.ts). */
  private file: Removable | null = null;

  private constructor(private readonly api: HostfwdApi,
    private readonly log: (line: string) => void) {
    this.server = net.createServer((c) => this.enqueue(c));
  }

  /** Binds and listens; rejects with the bind error. */
  static listen(path: string, api: HostfwdApi, log: (line: string) => void): Promise<ApiServer> {
    try {
      fs.unlinkSync(path);
    } catch { /* not there */ }
    const s = new ApiServer(api, log);
    return new Promise((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(path, () => {
        s.server.removeListener('error', reject);
        s.server.on('error', (e) => log(`api socket: ${e.message}`));
        s.file = Removable.of(path);
        resolve(s);
      });
    });
  }

  close(): void {
    this.server.close();
    this.file?.remove();
  }

  private enqueue(c: net.Socket): void {
    if (this.pending >= MAX_PENDING) {
      c.destroy();
      return;
    }
    this.pending++;
    c.pause();
    c.on('error', () => { /* answered by close */ });
    this.queue = this.queue.then(() => this.serve(c)).finally(() => { this.pending--; });
  }

  private serve(c: net.Socket): Promise<void> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (answer: string | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        c.removeAllListeners('data');
        if (answer !== null && !c.destroyed) c.end(answer);
        else c.destroy();
        resolve();
      };
      const answer = () => {
        if (done) return null;
        const req = Buffer.concat(chunks, size);
        // eslint-disable-next-line no-control-regex
        this.log(`api_handler: got request: ${req.toString('utf8').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '?')}`);
        return this.api.handle(req);
      };
      const timer = setTimeout(() => finish(size ? answer() : null), IDLE_MS);
      c.on('data', (d: Buffer) => {
        chunks.push(d);
        size += d.length;
        if (size >= REQUEST_MAX) {
          this.log(`api_handler: too large message (>= ${REQUEST_MAX} bytes)`);
          finish(TOO_LARGE);
          return;
        }
        if (completeJson(Buffer.concat(chunks, size))) finish(answer());
      });
      c.on('end', () => finish(answer()));
      c.on('close', () => finish(null));
      c.resume();
    });
  }
}

/** True if the bytes are one whole JSON value (so the request is complete). */
function completeJson(b: Buffer): boolean {
  try {
    JSON.parse(b.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

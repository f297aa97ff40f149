/**
 * The control socket server: a UNIX stream socket on the main thread's
 * event loop (node:net), speaking protocol.ts, serving service.ts.
 *
 * Theory of operation
 * - Creation: the path must not hold anything but a stale socket (one
 *   nobody answers on is removed; a live one, or any other file, is an
 *   error before readiness). The socket is bound with umask 0177 so it is
 *   never, even for an instant, accessible to others, and chmod'ed 0600 on
 *   top; it belongs to the user we run as (after isolation.ts switched a
 *   root-started program to nobody, to nobody: it removes it at exit).
 * - Who may talk: the kernel refuses connect() to a 0600 socket for other
 *   users; on top, every connection's SO_PEERCRED is read and a peer whose
 *   uid is neither the one we were started as nor 0 (root, which could
 *   ptrace us anyway) gets one
 *   error answer and is disconnected, as is one whose credentials cannot
 *   be read. So a socket whose mode was loosened, or passed on, still lets
 *   no other user in. Inside a user namespace both uids are as seen there.
 * - Each connection: bytes → LineSplitter (lines of at most MAX_LINE
 *   bytes; longer ones are skipped and answered with an error) → a bounded
 *   queue of requests, served one at a time in order, each answer written
 *   before the next request is looked at.
 * - Hostile clients cannot hurt the daemon: at most MAX_QUEUED requests
 *   wait per connection (reading pauses beyond that); a client that does
 *   not read its answers stops being served once OUT_HIGH bytes wait for
 *   it, and is disconnected if it still has not read them STALL_MS later
 *   (or at once past OUT_MAX bytes); at most MAX_CLIENTS connections at
 *   once, further ones get an error answer and are closed. Errors on a connection only
 *   end that connection.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { PasstError } from '../../shared/errors';
import { log } from '../../shared/log';
import { native } from '../../shared/native';
import { SOL_SOCKET, SO_PEERCRED } from '../../shared/linux';
import { Removable } from '../removable';
import { LineSplitter, LineEvent, MAX_LINE, parseRequest, isBad, answerLine, errorLine } from './protocol';
import type { ControlService } from './service';

/** Connections served at once. */
export const MAX_CLIENTS = 32;
/** Requests read ahead per connection before reading pauses. */
const MAX_QUEUED = 64;
/** Answer bytes waiting for a client above which its requests wait too, and above which it is dropped. */
const OUT_HIGH = 1 << 20;
const OUT_MAX = 16 << 20;
/** A client that leaves OUT_HIGH bytes unread this long is disconnected (ms). */
export const STALL_MS = 5000;

/** uid of the process at the other end of a UNIX socket, or -1. */
export function peerUid(fd: number): number {
  const cred = new Uint8Array(12);
  if (fd < 0 || native.getsockoptBytes(fd, SOL_SOCKET, SO_PEERCRED, cred) < 12) return -1;
  return new DataView(cred.buffer).getUint32(4, true);
}

/** The descriptor under a net.Socket (Node keeps it on the handle), or -1. */
function socketFd(s: net.Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/** Resolves true if something accepts connections on path. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** One error answer, then the connection goes (at once if the peer does not close within a second). */
function refuse(s: net.Socket, why: string): void {
  s.on('error', () => {});
  s.end(errorLine(why));
  s.setTimeout(1000, () => s.destroy());
}

class Connection {
  private readonly lines = new LineSplitter(MAX_LINE);
  private readonly queue: LineEvent[] = [];
  private busy = false;
  private closed = false;
  /** The client half-closed: end our side once everything is answered. */
  private endAfter = false;
  /** Armed while answers wait unread beyond OUT_HIGH. */
  private stall: NodeJS.Timeout | null = null;

  constructor(private readonly sock: net.Socket, private readonly service: ControlService) {
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('drain', () => this.serve());
    sock.on('error', (e) => log.debug(`Control: client: ${e.message}`));
    sock.on('close', () => {
      this.closed = true;
      if (this.stall) clearTimeout(this.stall);
    });
    // a client that half-closes still gets its answers
    sock.on('end', () => { this.endAfter = true; this.serve(); });
  }

  private onData(chunk: Buffer): void {
    for (const ev of this.lines.push(chunk)) {
      if ('line' in ev && ev.line.trim() === '') continue;
      this.queue.push(ev);
    }
    if (this.queue.length >= MAX_QUEUED) this.sock.pause();
    this.serve();
  }

  private write(text: string): void {
    if (this.closed) return;
    this.sock.write(text);
    if (this.sock.writableLength > OUT_MAX) {
      log.debug('Control: client does not read its answers: disconnected');
      this.sock.destroy();
      this.closed = true;
    }
  }

  /** Serves queued requests in order, one at a time, while the client reads. */
  private serve(): void {
    while (!this.busy && !this.closed && this.queue.length && this.sock.writableLength < OUT_HIGH) {
      const ev = this.queue.shift() as LineEvent;
      if ('tooLong' in ev) {
        this.write(errorLine(`request line longer than ${MAX_LINE} bytes`));
        continue;
      }
      const req = parseRequest(ev.line);
      if (isBad(req)) {
        this.write(errorLine(req.error, req.id));
        continue;
      }
      this.busy = true;
      this.service.handle(req).then((body) => {
        this.busy = false;
        this.write(answerLine(req.id, body));
        this.serve();
      }, (e: unknown) => {
        this.busy = false;
        this.write(errorLine(`internal error: ${(e as Error)?.message ?? String(e)}`, req.id));
        this.serve();
      });
    }
    const stalled = !this.closed && this.sock.writableLength >= OUT_HIGH;
    if (stalled && !this.stall) {
      this.stall = setTimeout(() => {
        log.debug('Control: client does not read its answers: disconnected');
        this.sock.destroy();
      }, STALL_MS);
    } else if (!stalled && this.stall) {
      clearTimeout(this.stall);
      this.stall = null;
    }
    if (this.queue.length < MAX_QUEUED && !this.closed) this.sock.resume();
    if (this.endAfter && !this.busy && !this.queue.length && !this.closed) this.sock.end();
  }
}

export class ControlServer {
  private clients = 0;

  /** The socket file, removed at exit (through its directory: see removable.ts). */
  private readonly file: Removable | null;

  /**
   * The uid we were started as: the one let in besides root. Not the one
   * we may run as later (isolation.ts: a root-started program becomes
   * nobody, and then owns the socket file, but nobody's other processes
   * must not get in).
   */
  private readonly ownerUid = process.geteuid?.() ?? -1;

  private constructor(readonly path: string, private readonly server: net.Server, private readonly service: ControlService) {
    this.file = Removable.of(path);
    server.on('connection', (s) => this.onConnection(s));
    server.on('error', (e) => log.warn(`Control socket ${path}: ${e.message}`));
  }

  /**
   * Listens on path (mode 0600).
   * @throws PasstError PASST_ERR_CONTROL if the path is taken or cannot be bound
   */
  static async open(path: string, service: ControlService): Promise<ControlServer> {
    const fail = (why: string): never => {
      throw new PasstError('PASST_ERR_CONTROL', `Control socket ${path}: ${why}`);
    };
    let st: fs.Stats | null = null;
    try { st = fs.lstatSync(path); } catch { /* free */ }
    if (st) {
      if (!st.isSocket()) fail('exists and is not a socket');
      if (await answers(path)) fail('in use by another process');
      try { fs.unlinkSync(path); } catch (e) { fail(`can't remove the stale socket: ${(e as Error).message}`); }
    }
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    const listening = new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.once('listening', () => { server.removeListener('error', reject); resolve(); });
    });
    // bind() happens within listen() (errors are reported later): the
    // umask is ours only for that call, no other file is made meanwhile
    const old = process.umask(0o177);
    try {
      server.listen({ path, backlog: 4 * MAX_CLIENTS });
    } finally {
      process.umask(old);
    }
    try {
      await listening;
    } catch (e) {
      fail((e as Error).message);
    }
    fs.chmodSync(path, 0o600);
    // the socket is the program's own: don't hold the event loop open for it
    server.unref();
    const cs = new ControlServer(path, server, service);
    process.once('exit', () => cs.close());
    log.debug(`Control socket listening at ${path}`);
    return cs;
  }

  private onConnection(s: net.Socket): void {
    const uid = peerUid(socketFd(s));
    if (uid < 0 || (uid !== this.ownerUid && uid !== 0)) {
      log.warn(`Control: refused a connection from uid ${uid < 0 ? 'unknown' : uid}`);
      refuse(s, 'permission denied: another user');
      return;
    }
    if (this.clients >= MAX_CLIENTS) {
      refuse(s, `too many control connections (at most ${MAX_CLIENTS})`);
      return;
    }
    this.clients++;
    s.on('close', () => { this.clients--; });
    new Connection(s, this.service);
    s.resume();
  }

  /** Stops listening and removes the socket file. */
  close(): void {
    this.server.close();
    this.file?.remove();
  }
}

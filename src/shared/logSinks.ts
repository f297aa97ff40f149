/**
 * Log sinks (SPEC.md §9.7): the `-l` log file with size-bounded rotation,
 * syslog over /dev/log, and a pipe to the foreground process while a daemon
 * starts up.
 *
 * The log file is shared by all threads: its current size and a lock live
 * in a small SharedArrayBuffer, so any thread can append and, when an entry
 * would overflow --log-size, cut about 30 % of the file (rounded up to a
 * page, then to the next line) from the start, keeping the header line with
 * " - log truncated at TIME" appended. Entries are "TIME LEVEL: text".
 */
import * as fs from 'node:fs';
import type { LogLevel } from './config';
import type { LogSink } from './log';
import { native } from './native';
import { AF_UNIX, SOCK_DGRAM, SOCK_CLOEXEC, SOCK_NONBLOCK } from './linux';

const PAGE = 4096;
const TAGS: Record<LogLevel, string> = { error: 'ERROR:   ', warning: 'WARNING: ', info: 'info:    ', debug: '         ', trace: '         ' };

/** What a worker needs to reopen the same log file sink. */
export interface LogFileHandle {
  fd: number;
  maxSize: number;
  state: SharedArrayBuffer;
}

function stamp(): string {
  const t = process.hrtime();
  return `${t[0]}.${String(Math.floor(t[1] / 1e5)).padStart(4, '0')}`;
}

export class LogFileSink implements LogSink {
  private readonly st: Int32Array;

  constructor(private readonly h: LogFileHandle) {
    this.st = new Int32Array(h.state);
  }

  /**
   * Creates (truncates) the log file, mode 0600, and writes the header line.
   * @param header e.g. "pasta 0.1.0 (passt-ts) /usr/bin/pasta (1234)"
   */
  static create(path: string, maxSize: number, header: string): LogFileSink {
    const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600);
    const state = new SharedArrayBuffer(16);
    const sink = new LogFileSink({ fd, maxSize, state });
    const line = Buffer.from(header + '\n');
    fs.writeSync(fd, line, 0, line.length, 0);
    Atomics.store(sink.st, 1, line.length);
    return sink;
  }

  get handle(): LogFileHandle {
    return this.h;
  }

  private lock(): void {
    while (Atomics.compareExchange(this.st, 0, 0, 1) !== 0) Atomics.wait(this.st, 0, 1, 5);
  }

  private unlock(): void {
    Atomics.store(this.st, 0, 0);
    Atomics.notify(this.st, 0, 1);
  }

  write(level: LogLevel, line: string): void {
    const buf = Buffer.from(`${stamp()} ${TAGS[level]}${line}`);
    this.lock();
    try {
      let size = Atomics.load(this.st, 1);
      if (size + buf.length > this.h.maxSize) size = this.rotate(size);
      fs.writeSync(this.h.fd, buf, 0, buf.length, size);
      Atomics.store(this.st, 1, size + buf.length);
    } catch {
      /* logging must never take the process down */
    } finally {
      this.unlock();
    }
  }

  /** Cuts ~30 % from the start of the file; returns the new size. */
  private rotate(size: number): number {
    const data = Buffer.alloc(size);
    fs.readSync(this.h.fd, data, 0, size, 0);
    const nl = data.indexOf(10);
    const header = (nl >= 0 ? data.subarray(0, nl).toString() : '').replace(/ - log truncated at .*$/, '');
    const bodyStart = nl + 1;
    let cut = bodyStart + Math.ceil((size * 0.3) / PAGE) * PAGE;
    if (cut >= size) cut = size;
    else {
      const next = data.indexOf(10, cut);
      cut = next < 0 ? size : next + 1;
    }
    const newHeader = Buffer.from(`${header} - log truncated at ${stamp()}\n`);
    const rest = data.subarray(cut);
    fs.writeSync(this.h.fd, newHeader, 0, newHeader.length, 0);
    fs.writeSync(this.h.fd, rest, 0, rest.length, newHeader.length);
    const newSize = newHeader.length + rest.length;
    fs.ftruncateSync(this.h.fd, newSize);
    return newSize;
  }
}

/** Syslog over the /dev/log datagram socket ("<PRI>name: text"); silent if absent. */
export class SyslogSink implements LogSink {
  private fd = -1;
  private readonly pri: Record<LogLevel, number> = { error: 3, warning: 4, info: 6, debug: 7, trace: 7 };

  /**
   * @param fd an already connected socket to share (a worker's sink uses
   *   the main thread's: once the process is isolated, /dev/log is out of
   *   reach), or undefined to connect one now
   */
  constructor(private readonly name: string, fd?: number) {
    if (fd !== undefined) {
      this.fd = fd;
      return;
    }
    this.fd = SyslogSink.connect();
  }

  /** The descriptor written to (-1: no syslog). */
  get socketFd(): number {
    return this.fd;
  }

  private static connect(): number {
    const fd = native.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    const path = Buffer.from('/dev/log');
    const sa = new Uint8Array(2 + path.length + 1);
    new DataView(sa.buffer).setUint16(0, AF_UNIX, true);
    sa.set(path, 2);
    if (native.connect(fd, sa) < 0) {
      native.close(fd);
      return -1;
    }
    return fd;
  }

  write(level: LogLevel, line: string): void {
    if (this.fd < 0) return;
    const b = Buffer.from(`<${this.pri[level] + 8}>${this.name}: ${line.replace(/\n$/, '')}`);
    native.write(this.fd, b, 0, b.length);
  }
}

/** Writes lines to several sinks. */
export class TeeSink implements LogSink {
  constructor(private readonly sinks: LogSink[]) {}
  write(level: LogLevel, line: string): void {
    for (const s of this.sinks) s.write(level, line);
  }
}

/** Prefixes each line with "LOG " and writes it to fd (daemon → foreground). */
export class PipeSink implements LogSink {
  constructor(private readonly fd: number) {}
  write(_level: LogLevel, line: string): void {
    try {
      fs.writeSync(this.fd, `LOG ${line}`);
    } catch {
      /* foreground gone */
    }
  }
}

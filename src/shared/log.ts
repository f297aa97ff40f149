/**
 * Levelled logging usable from any thread. Lines are written synchronously
 * to a file descriptor (stderr, or the -l log file) with fs.writeSync, which
 * works the same in the main thread and in workers and never reorders lines
 * of one thread. `log.traceOn` / `log.debugOn` let hot paths test a boolean
 * before building any string (STYLE.md guideline 15).
 */
import * as fs from 'node:fs';
import type { LogLevel } from './config';

const LEVELS: Record<LogLevel, number> = { error: 0, warning: 1, info: 2, debug: 3, trace: 4 };

export interface LogSink {
  /** Writes one complete line (with its newline). */
  write(level: LogLevel, line: string): void;
}

class FdSink implements LogSink {
  constructor(private readonly fd: number) {}
  write(_level: LogLevel, line: string): void {
    try {
      fs.writeSync(this.fd, line);
    } catch {
      /* a closed stderr must not take the process down */
    }
  }
}

const start = process.hrtime.bigint();

export class Logger {
  private level = LEVELS.info;
  private sink: LogSink = new FdSink(2);
  private prefix = 'pasta';
  private timestamps = false;
  debugOn = false;
  traceOn = false;

  configure(opts: { level?: LogLevel; sink?: LogSink; prefix?: string; timestamps?: boolean }): void {
    if (opts.level) this.level = LEVELS[opts.level];
    if (opts.sink) this.sink = opts.sink;
    if (opts.prefix) this.prefix = opts.prefix;
    if (opts.timestamps !== undefined) this.timestamps = opts.timestamps;
    this.debugOn = this.level >= LEVELS.debug;
    this.traceOn = this.level >= LEVELS.trace;
  }

  get levelName(): LogLevel {
    return (Object.keys(LEVELS) as LogLevel[]).find((k) => LEVELS[k] === this.level) ?? 'info';
  }

  private emit(level: LogLevel, msg: string): void {
    if (LEVELS[level] > this.level) return;
    let line: string;
    if (this.timestamps) {
      const s = Number(process.hrtime.bigint() - start) / 1e9;
      line = `${s.toFixed(4)}: ${msg}\n`;
    } else {
      line = `${msg}\n`;
    }
    this.sink.write(level, line);
  }

  error(msg: string): void { this.emit('error', msg); }
  warn(msg: string): void { this.emit('warning', msg); }
  info(msg: string): void { this.emit('info', msg); }
  debug(msg: string): void { this.emit('debug', msg); }
  trace(msg: string): void { this.emit('trace', msg); }

  get name(): string { return this.prefix; }
}

/** The process-wide (per thread) logger. */
export const log = new Logger();

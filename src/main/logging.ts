/**
 * Where log lines go in each phase of a run (SPEC.md §9.7).
 *
 * - Parsing and early start-up: stderr.
 * - Daemon start-up: through the readiness pipe to the foreground's stderr.
 * - `-l FILE`: that file only (errors during a daemon's start-up are also
 *   sent to the foreground, so a failing start is never silent).
 * - After readiness: a daemon, or pasta once its command runs (unless -d),
 *   stops writing to stderr and logs to syslog.
 * With -d/--trace on stderr, lines carry seconds since start.
 */
import * as fs from 'node:fs';
import type { Config, LogLevel } from '../shared/config';
import { log, LogSink } from '../shared/log';
import { LogFileSink, SyslogSink, TeeSink } from '../shared/logSinks';
import { procPid, type ReadyChannel } from './daemon';
import type { LogTarget } from '../shared/messages';

export const VERSION = '0.1.0';

let fileSink: LogFileSink | null = null;
let target: LogTarget = { kind: 'fd', fd: 2, timestamps: false };

/** Where workers should log right now (follows the main thread's phase). */
export function currentLogTarget(): LogTarget {
  return target;
}

/** The log file sink, for workers to share (null without -l). */
export function logFileSink(): LogFileSink | null {
  return fileSink;
}

class ErrorsOnly implements LogSink {
  constructor(private readonly inner: LogSink) {}
  write(level: LogLevel, line: string): void {
    if (level === 'error') this.inner.write(level, line);
  }
}

class StderrSink implements LogSink {
  write(_level: LogLevel, line: string): void {
    try {
      fs.writeSync(2, line);
    } catch { /* closed */ }
  }
}

/** Logging for the run, once the configuration is known. */
export function setupRunLogging(cfg: Config, ready: ReadyChannel | null): void {
  const debug = cfg.logLevel === 'debug' || cfg.logLevel === 'trace';
  if (cfg.logFile) {
    const header = `${cfg.name} ${VERSION} (passt-ts) ${process.argv[1]} (${procPid})`;
    fileSink = LogFileSink.create(cfg.logFile, cfg.logSize, header);
    log.configure({ level: cfg.logLevel, sink: ready ? new TeeSink([fileSink, new ErrorsOnly(ready.sink)]) : fileSink, timestamps: false });
    target = { kind: 'file', handle: fileSink.handle };
    return;
  }
  log.configure({ level: cfg.logLevel, sink: ready ? ready.sink : new StderrSink(), timestamps: debug && !ready });
  target = ready ? { kind: 'pipe', fd: ready.fd } : { kind: 'fd', fd: 2, timestamps: debug };
}

/** True if the program logs to syslog once ready. */
function syslogWhenReady(cfg: Config): boolean {
  if (fileSink) return false;
  const debug = cfg.logLevel === 'debug' || cfg.logLevel === 'trace';
  const daemon = !cfg.foreground;
  const spawned = cfg.mode === 'pasta' && cfg.command !== null;
  return daemon || (spawned && !debug);
}

/** What logging once ready needs opened before the process is isolated (isolation.ts): syslog's socket. */
export function beforeIsolation(cfg: Config): void {
  if (syslogWhenReady(cfg)) openSyslog(cfg.name);
}

/** Logging once the program is ready (daemonised, or the command runs). */
export function afterReadyLogging(cfg: Config): void {
  if (fileSink) {
    log.configure({ sink: fileSink });
    return;
  }
  if (syslogWhenReady(cfg)) {
    const sink = openSyslog(cfg.name);
    log.configure({ sink, timestamps: false });
    target = { kind: 'syslog', name: cfg.name, fd: sink.socketFd };
  }
}

let syslog: SyslogSink | null = null;

/**
 * The syslog sink, connected to /dev/log on first use: call it before the
 * process is isolated (isolation.ts), whose empty root has no /dev/log.
 */
export function openSyslog(name: string): SyslogSink {
  if (!syslog) syslog = new SyslogSink(name);
  return syslog;
}

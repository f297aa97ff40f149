/**
 * PID 1 of a PID namespace (a container's entrypoint, `unshare --pid
 * --fork`, and our own daemon, which daemonize() makes PID 1 of a namespace
 * of its own) receives no signal it has no handler for, SIGKILL aside: a
 * SIGTERM that arrives during set-up, before Runtime installs its handlers,
 * would be lost and the program would run on. Until then these provisional
 * handlers end the program as the default action would elsewhere (exit
 * status 0 for SIGTERM and SIGQUIT, as Runtime's shutdown; 128+N for SIGINT
 * and SIGHUP); Runtime's constructor takes over (releaseInitSignals()).
 */
const PROVISIONAL: [NodeJS.Signals, number][] = [['SIGTERM', 0], ['SIGQUIT', 0], ['SIGINT', 128 + 2], ['SIGHUP', 128 + 1]];
let installed: [NodeJS.Signals, () => void][] = [];

/** Installs the provisional handlers if this process is PID 1 of its namespace. */
export function holdInitSignals(): void {
  if (process.pid !== 1 || installed.length) return;
  installed = PROVISIONAL.map(([sig, code]) => {
    const h = (): void => process.exit(code);
    process.on(sig, h);
    return [sig, h];
  });
}

/** Removes them: the caller's own handlers are in place. */
export function releaseInitSignals(): void {
  for (const [sig, h] of installed) process.removeListener(sig, h);
  installed = [];
}

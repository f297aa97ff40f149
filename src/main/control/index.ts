/**
 * `--control PATH`: the control socket of a running pasta or passt
 * (README.md "Control socket"). Front ends call `startControl()` once the
 * pipeline and the static forwards are up, before readiness, so the socket
 * exists when the caller goes on:
 *
 *     if (cfg.control) await startControl(cfg.control, runtimeTarget(rt));
 *
 * A front end that is not built on Runtime (a future slirp4netns-compatible
 * command, say) implements ControlTarget itself and calls the same.
 */
import type { Runtime } from '../runtime';
import { ControlServer } from './server';
import { ControlService, ControlTarget, FlowsQuery } from './service';

export type { ControlTarget } from './service';

/** Opens the control socket at path; throws PasstError if it cannot. */
export function startControl(path: string, target: ControlTarget): Promise<ControlServer> {
  return ControlServer.open(path, new ControlService(target));
}

/** The ControlTarget of a running Runtime (pasta, passt). */
export function runtimeTarget(rt: Runtime): ControlTarget {
  const flows = new FlowsQuery(rt.sup);
  return {
    mode: rt.cfg.mode,
    stages: () => rt.sup.stageStats(),
    rings: () => rt.sup.ringUsage(),
    flows: (max) => flows.ask(max),
    get forwarder() { return rt.fwd; },
    autoPorts: () => rt.auto?.forwarded() ?? {},
    quit: () => void rt.shutdown(0),
  };
}

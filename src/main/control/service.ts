/**
 * The control socket's verbs, served on the main thread (DESIGN.md: it owns
 * configuration, lifecycle and the forwarded ports' listening sockets).
 *
 * Theory of operation
 * - The server (server.ts) hands every well-formed request to
 *   `ControlService.handle()`, which answers with the body of the answer.
 * - `stats` reads shared-memory counters and ring headers (metrics.ts);
 *   `ports`, `add-port` and `remove-port` go through the Forwarder
 *   (forward.ts: the same SPEC parser and binding code as the command
 *   line) and the AutoForwarder's table; `quit` answers, then shuts down
 *   as SIGTERM does.
 * - `flows` is the only verb that asks the workers: a 'flows' control
 *   message to each TCP and UDP worker (off the data path: it is read
 *   between two iterations of the worker's loop), answered with a list.
 *   Each worker lists at most offset + limit flows, in its own stable
 *   order; the lists are merged by worker name and the page cut from that. A worker that does
 *   not answer within FLOWS_TIMEOUT_MS makes it an error answer.
 * - ControlTarget is what the service needs from the running program, so
 *   that every front end (pasta, passt, the slirp4netns-compatible
 *   command) can pass `--control PATH` the same way: build a target
 *   (`runtimeTarget(rt)` for a Runtime) and call `startControl()`
 *   (index.ts).
 */
import type { FlowInfo } from '../../shared/messages';
import { PasstError } from '../../shared/errors';
import { log } from '../../shared/log';
import type { Supervisor, FlowsAnswer, RingUsage } from '../supervisor';
import type { Forwarder, HeldPort } from '../forward';
import type { ForwardOpt } from '../portSpec';
import type { Request } from './protocol';
import { snapshot, prometheusText, StageCounters } from './metrics';

/** How long `flows` waits for the workers' lists. */
export const FLOWS_TIMEOUT_MS = 2000;

/** One flow of a `flows` answer: the worker's FlowInfo and which worker. */
export type FlowEntry = FlowInfo & { worker: string };

/** One row of the `ports` answer. */
export interface PortEntry {
  option: ForwardOpt;
  /** "ADDR", "ADDR%IF", "%IF", or null (every address). */
  bind: string | null;
  port: number;
  /** Port connections are forwarded to. */
  target: number;
  /** Found by automatic forwarding (`auto`), not configured. */
  auto: boolean;
}

/** What the service needs from the running program. */
export interface ControlTarget {
  readonly mode: string;
  /** Every stage's counters. */
  stages(): StageCounters[];
  rings(): RingUsage[];
  /** Asks every L4 worker for up to `max` flows each. */
  flows(max: number): Promise<{ flows: FlowEntry[]; total: number }>;
  /** Static forwards (null before the pipeline runs). */
  readonly forwarder: Forwarder | null;
  /** Automatic forwards now, by direction (tcpIn, udpIn, tcpOut, udpOut). */
  autoPorts(): Record<string, number[]>;
  /** Ends the program as SIGTERM does. */
  quit(): void;
}

/** The body of an answer (server.ts adds the id and writes the line). */
export type AnswerBody = ({ ok: true } & Record<string, unknown>) | { ok: false; error: string };

const AUTO_OPT: Record<string, ForwardOpt> = { tcpIn: '-t', udpIn: '-u', tcpOut: '-T', udpOut: '-U' };

function portEntry(h: HeldPort): PortEntry {
  const bind = h.addr === null && h.ifname === null ? null : `${h.addr ?? ''}${h.ifname ? `%${h.ifname}` : ''}`;
  return { option: h.opt, bind, port: h.port, target: (h.port + h.delta) & 0xffff, auto: false };
}

export class ControlService {
  private readonly started = Date.now();

  constructor(private readonly target: ControlTarget) {}

  async handle(req: Request): Promise<AnswerBody> {
    const t = this.target;
    try {
      switch (req.cmd) {
        case 'stats': {
          const stages = t.stages();
          const s = snapshot(stages, t.rings(), t.mode, Date.now() - this.started);
          if (req.format === 'prometheus') return { ok: true, format: 'prometheus', text: prometheusText(stages, s) };
          return { ok: true, ...s };
        }
        case 'flows': {
          const { flows, total } = await t.flows(req.offset + req.limit);
          return { ok: true, total, offset: req.offset, flows: flows.slice(req.offset, req.offset + req.limit) };
        }
        case 'ports':
          return { ok: true, ports: this.ports() };
        case 'add-port':
        case 'remove-port': {
          const fwd = t.forwarder;
          if (!fwd) return { ok: false, error: 'port forwarding is not running yet' };
          if (req.cmd === 'add-port') {
            const added = fwd.addPorts(req.option, req.spec).map(portEntry);
            log.info(`Control: forwarding ${req.option} ${req.spec}`);
            return { ok: true, added };
          }
          const removed = fwd.removePorts(req.option, req.spec).map(portEntry);
          log.info(`Control: no longer forwarding ${req.option} ${req.spec}`);
          return { ok: true, removed };
        }
        case 'quit':
          log.info('Control: quit requested');
          // after this answer is written (server.ts flushes before acting)
          setImmediate(() => t.quit());
          return { ok: true };
        default: {
          const never: never = req;
          return never;
        }
      }
    } catch (e) {
      if (e instanceof PasstError) return { ok: false, error: e.message };
      log.warn(`Control: ${req.cmd} failed: ${(e as Error).stack ?? String(e)}`);
      return { ok: false, error: `internal error: ${(e as Error).message}` };
    }
  }

  /** Static forwards, then automatic ones. */
  ports(): PortEntry[] {
    const t = this.target;
    const out = (t.forwarder?.table() ?? []).map(portEntry);
    for (const [dir, ports] of Object.entries(t.autoPorts())) {
      const option = AUTO_OPT[dir];
      if (option) for (const port of ports) out.push({ option, bind: null, port, target: port, auto: true });
    }
    return out;
  }
}

/**
 * Collects the workers' answers to 'flows' requests (Supervisor.onFlows).
 * One instance per supervisor.
 */
export class FlowsQuery {
  private nextReq = 1;
  private readonly pending = new Map<number, { want: number; got: FlowsAnswer[]; names: string[];
    done: (r: { flows: FlowEntry[]; total: number } | Error) => void }>();

  constructor(private readonly sup: Supervisor) {
    sup.onFlows = (worker, m) => this.onAnswer(worker, m);
  }

  /** Up to `max` flows from each TCP and UDP worker, merged. */
  ask(max: number): Promise<{ flows: FlowEntry[]; total: number }> {
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(req);
        reject(new PasstError('PASST_ERR_CONTROL', `a worker did not list its flows within ${FLOWS_TIMEOUT_MS} ms`));
      }, FLOWS_TIMEOUT_MS);
      const entry = {
        want: 0, got: [] as FlowsAnswer[], names: [] as string[],
        done: (r: { flows: FlowEntry[]; total: number } | Error) => {
          clearTimeout(timer);
          this.pending.delete(req);
          if (r instanceof Error) reject(r); else resolve(r);
        },
      };
      this.pending.set(req, entry);
      entry.want = this.sup.control({ type: 'flows', req, max }, 'tcp') + this.sup.control({ type: 'flows', req, max }, 'udp');
      if (entry.want === 0) entry.done({ flows: [], total: 0 });
    });
  }

  private onAnswer(worker: string, m: FlowsAnswer): void {
    const p = this.pending.get(m.req);
    if (!p) return;
    p.got.push(m);
    p.names.push(worker);
    if (p.got.length < p.want) return;
    const flows: FlowEntry[] = [];
    let total = 0;
    p.got.forEach((a, i) => {
      total += a.total;
      for (const f of a.flows) flows.push({ ...f, worker: p.names[i] });
    });
    // by worker, each worker's list in its own order (a stable sort): the
    // first max of the merged list are then within what each worker sent
    flows.sort((a, b) => (a.worker < b.worker ? -1 : a.worker > b.worker ? 1 : 0));
    p.done({ flows, total });
  }
}

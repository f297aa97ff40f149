/**
 * The control socket's verbs against a fake program (service.ts): `flows`
 * pages cut from the workers' merged lists, a worker that does not answer,
 * the `ports` table with automatic entries marked, errors as answers.
 */
import test from 'ava';
import { ControlService, ControlTarget, FlowsQuery, FlowEntry } from '../../src/main/control/service';
import type { FlowInfo } from '../../src/shared/messages';
import type { Supervisor, FlowsAnswer } from '../../src/main/supervisor';
import type { Forwarder, HeldPort } from '../../src/main/forward';
import { PasstError } from '../../src/shared/errors';

function flow(id: number, path: 'tap' | 'splice' = 'tap'): FlowInfo {
  return { proto: 'tcp', path, id, from: `10.0.0.1:${id}`, to: '10.0.0.2:80', state: 'ESTABLISHED', bytesOut: id,
    bytesIn: 0, ageMs: 1 };
}

/** A supervisor whose workers hold the given flows and answer 'flows' requests (or not). */
function fakeSupervisor(workers: Record<string, { role: 'tcp' | 'udp'; flows: FlowInfo[]; mute?: boolean }>): Supervisor {
  const sup = {
    onFlows: (_w: string, _m: FlowsAnswer) => {},
    control(msg: { type: string; req: number; max: number }, role: string): number {
      let n = 0;
      for (const [name, w] of Object.entries(workers)) {
        if (w.role !== role) continue;
        n++;
        if (w.mute) continue;
        setImmediate(() => sup.onFlows(name, { type: 'flows', req: msg.req, flows: w.flows.slice(0, msg.max),
          total: w.flows.length }));
      }
      return n;
    },
  };
  return sup as unknown as Supervisor;
}

function service(sup: Supervisor, fwd: Partial<Forwarder> | null = null, auto: Record<string, number[]> = {}): ControlService {
  const q = new FlowsQuery(sup);
  const target: ControlTarget = {
    mode: 'pasta', stages: () => [], rings: () => [], flows: (max) => q.ask(max),
    forwarder: fwd as Forwarder | null, autoPorts: () => auto, quit: () => {},
  };
  return new ControlService(target);
}

test('flows: pages over the merged lists of every worker, in worker order', async (t) => {
  const tcp = Array.from({ length: 7 }, (_, i) => flow(i));
  const udp = Array.from({ length: 5 }, (_, i) => ({ ...flow(i), proto: 'udp' as const }));
  const svc = service(fakeSupervisor({ udp: { role: 'udp', flows: udp }, tcp0: { role: 'tcp', flows: tcp } }));
  const all: FlowEntry[] = [];
  for (let offset = 0; ; offset += 3) {
    const a = await svc.handle({ cmd: 'flows', offset, limit: 3 });
    if (!a.ok) return t.fail(a.error);
    t.is(a.total, 12);
    t.is(a.offset, offset);
    const page = a.flows as FlowEntry[];
    if (!page.length) break;
    t.true(page.length <= 3);
    all.push(...page);
  }
  t.deepEqual(all.map((f) => `${f.worker}/${f.id}`),
    [...tcp.map((f) => `tcp0/${f.id}`), ...udp.map((f) => `udp/${f.id}`)]);
});

test('flows: a worker that does not answer makes an error answer', async (t) => {
  const svc = service(fakeSupervisor({ tcp0: { role: 'tcp', flows: [flow(1)] }, udp: { role: 'udp', flows: [], mute: true } }));
  const a = await svc.handle({ cmd: 'flows', offset: 0, limit: 10 });
  t.false(a.ok);
  if (!a.ok) t.regex(a.error, /did not list its flows within 2000 ms/);
});

test('ports: static forwards then automatic ones, marked; add/remove errors are answers', async (t) => {
  const held: HeldPort[] = [
    { opt: '-t', addr: null, ifname: null, port: 8080, delta: (80 - 8080) & 0xffff, ls: [] },
    { opt: '-u', addr: '127.0.0.1', ifname: 'lo', port: 53, delta: 0, ls: [] },
  ];
  const fwd: Partial<Forwarder> = {
    table: () => held,
    addPorts: () => { throw new PasstError('PASST_ERR_PORT_SPEC', 'Invalid port specifier x: expected a port number'); },
  };
  const svc = service(fakeSupervisor({}), fwd, { tcpIn: [22], udpOut: [5353] });
  const a = await svc.handle({ cmd: 'ports' });
  t.deepEqual(a, { ok: true, ports: [
    { option: '-t', bind: null, port: 8080, target: 80, auto: false },
    { option: '-u', bind: '127.0.0.1%lo', port: 53, target: 53, auto: false },
    { option: '-t', bind: null, port: 22, target: 22, auto: true },
    { option: '-U', bind: null, port: 5353, target: 5353, auto: true },
  ] });
  t.deepEqual(await svc.handle({ cmd: 'add-port', option: '-t', spec: 'x' }),
    { ok: false, error: 'Invalid port specifier x: expected a port number' });
  const none = service(fakeSupervisor({}));
  t.deepEqual(await none.handle({ cmd: 'remove-port', option: '-t', spec: '1' }),
    { ok: false, error: 'port forwarding is not running yet' });
});

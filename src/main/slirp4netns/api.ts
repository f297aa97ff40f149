/**
 * slirp4netns' API (`--api-socket`): the requests, answered as slirp4netns
 * 1.2 answers them, byte for byte.
 *
 * Theory of operation
 * - One request per connection: a JSON object `{"execute": NAME,
 *   "arguments": {...}}` of fewer than REQUEST_MAX bytes (the client ends
 *   it with shutdown(SHUT_WR); apiServer.ts collects it). The input is
 *   untrusted: anything that is not such an object gets slirp4netns' error
 *   for it, never an exception.
 * - Field access follows slirp4netns (parson's dotget): a string field of
 *   another type is absent, a number field of another type is 0, numbers
 *   are truncated to integers.
 * - add_hostfwd {proto: "tcp"|"udp", host_addr (IPv4, default 0.0.0.0),
 *   host_port, guest_addr (IPv4, default the --configure address),
 *   guest_port} → {"return":{"id":N}}, ids counting from 1;
 *   list_hostfwd → {"entries":[...]} (slirp4netns 1.2 has no "return"
 *   wrapper here); remove_hostfwd {id} → {"return":{}}. Errors are
 *   {"error":{"desc":"bad request: ..."}} with slirp4netns' texts.
 * - Where slirp4netns 1.2 would misbehave we answer with its error for the
 *   field instead: a missing proto (it crashes), ports outside 1-65535 (it
 *   wraps them modulo 65536). A guest_addr other than the namespace's own
 *   address cannot be reached by pasta's engine and fails like a refused
 *   forward ("slirp_add_hostfwd failed"), as does a host address and port
 *   already forwarded or that cannot be bound.
 * - Binding and unbinding are the Backend's (run.ts: pasta's Forwarder).
 */
import { isIpv4 } from './options';

/** Largest request slirp4netns accepts is REQUEST_MAX - 1 bytes. */
export const REQUEST_MAX = 4096;

export type Proto = 'tcp' | 'udp';

export interface Hostfwd {
  id: number;
  proto: Proto;
  hostAddr: string;
  hostPort: number;
  guestAddr: string;
  guestPort: number;
}

/** What a forward needs from the engine. */
export interface Backend {
  /** Binds host_addr:host_port; returns a handle for remove(), or an error text for the log. */
  add(proto: Proto, hostAddr: string, hostPort: number, guestPort: number): { handle: unknown } | { error: string };
  remove(handle: unknown): void;
}

function err(desc: string): string {
  return JSON.stringify({ error: { desc: `bad request: ${desc}` } });
}

export const TOO_LARGE = err('too large message');

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** parson's json_object_dotget_string: the string at "a.b", or null. */
function dotString(o: Obj, a: string, b: string): string | null {
  const inner = Object.prototype.hasOwnProperty.call(o, a) ? o[a] : undefined;
  if (!isObj(inner) || !Object.prototype.hasOwnProperty.call(inner, b)) return null;
  const v = inner[b];
  return typeof v === 'string' ? v : null;
}

/** parson's json_object_dotget_number cast to int: the number at "a.b" truncated, 0 if absent. */
function dotInt(o: Obj, a: string, b: string): number {
  const inner = Object.prototype.hasOwnProperty.call(o, a) ? o[a] : undefined;
  if (!isObj(inner) || !Object.prototype.hasOwnProperty.call(inner, b)) return 0;
  const v = inner[b];
  return typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : 0;
}

function validPort(p: number): boolean {
  return p >= 1 && p <= 65535;
}

/** The forwarding table and the request handler. */
export class HostfwdApi {
  private readonly entries: { fwd: Hostfwd; handle: unknown }[] = [];
  private nextId = 1;

  /**
   * @param guestAddr the namespace's address (the default and only reachable guest_addr)
   * @param log receives one line per refused forward
   */
  constructor(private readonly guestAddr: string, private readonly backend: Backend,
    private readonly log: (line: string) => void = () => {}) {}

  list(): Hostfwd[] {
    return this.entries.map((e) => ({ ...e.fwd }));
  }

  /** Answers one request (the bytes as received; too large is apiServer.ts's to say). */
  handle(request: Buffer | string): string {
    const text = typeof request === 'string' ? request : request.toString('utf8');
    let jv: unknown;
    try {
      jv = JSON.parse(text.replace(/\0[\s\S]*$/, ''));
    } catch {
      return err('cannot parse JSON');
    }
    if (!isObj(jv)) return err('json_object() failed');
    const execute = Object.prototype.hasOwnProperty.call(jv, 'execute') ? jv.execute : undefined;
    if (typeof execute !== 'string') return err('no execute found');
    switch (execute) {
      case 'add_hostfwd': return this.add(jv);
      case 'list_hostfwd': return this.listJson();
      case 'remove_hostfwd': return this.remove(jv);
      default: return err('unknown execute');
    }
  }

  private add(jo: Obj): string {
    const protoS = dotString(jo, 'arguments', 'proto');
    if (protoS !== 'tcp' && protoS !== 'udp') return err('add_hostfwd: bad arguments.proto');
    const proto: Proto = protoS;
    let hostAddr = dotString(jo, 'arguments', 'host_addr');
    if (hostAddr === null || hostAddr === '') hostAddr = '0.0.0.0';
    if (!isIpv4(hostAddr)) return err('add_hostfwd: bad arguments.host_addr');
    const hostPort = dotInt(jo, 'arguments', 'host_port');
    if (!validPort(hostPort)) return err('add_hostfwd: bad arguments.host_port');
    let guestAddr = dotString(jo, 'arguments', 'guest_addr');
    if (guestAddr === null || guestAddr === '') guestAddr = this.guestAddr;
    else if (!isIpv4(guestAddr)) return err('add_hostfwd: bad arguments.guest_addr');
    const guestPort = dotInt(jo, 'arguments', 'guest_port');
    if (!validPort(guestPort)) return err('add_hostfwd: bad arguments.guest_port');

    const refused = (why: string) => {
      this.log(`add_hostfwd: ${proto} ${hostAddr}:${hostPort} -> ${guestAddr}:${guestPort}: ${why}`);
      return err('add_hostfwd: slirp_add_hostfwd failed');
    };
    if (guestAddr !== this.guestAddr) return refused(`only the namespace's address ${this.guestAddr} can be a target`);
    const clash = this.entries.some((e) => e.fwd.proto === proto && e.fwd.hostPort === hostPort &&
      (e.fwd.hostAddr === hostAddr || e.fwd.hostAddr === '0.0.0.0' || hostAddr === '0.0.0.0'));
    if (clash) return refused('already forwarded');
    const r = this.backend.add(proto, hostAddr, hostPort, guestPort);
    if ('error' in r) return refused(r.error);
    const fwd: Hostfwd = { id: this.nextId++, proto, hostAddr, hostPort, guestAddr, guestPort };
    this.entries.push({ fwd, handle: r.handle });
    return `{"return":{"id":${fwd.id}}}`;
  }

  private listJson(): string {
    const entries = this.entries.map(({ fwd: f }) => ({
      id: f.id, proto: f.proto, host_addr: f.hostAddr, host_port: f.hostPort, guest_addr: f.guestAddr, guest_port: f.guestPort,
    }));
    return JSON.stringify({ entries });
  }

  private remove(jo: Obj): string {
    const id = dotInt(jo, 'arguments', 'id');
    const i = this.entries.findIndex((e) => e.fwd.id === id);
    if (i < 0) return err('remove_hostfwd: bad arguments.id');
    const [e] = this.entries.splice(i, 1);
    this.backend.remove(e.handle);
    return '{"return":{}}';
  }
}

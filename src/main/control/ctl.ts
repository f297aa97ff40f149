/**
 * passt-ts-ctl: talks to the control socket of a running pasta or passt
 * (`--control PATH`).
 *
 *   passt-ts-ctl [--json] PATH stats [--prometheus]
 *   passt-ts-ctl [--json] PATH flows [--offset N] [--limit N]
 *   passt-ts-ctl [--json] PATH ports
 *   passt-ts-ctl [--json] PATH add-port|remove-port -t|-u|-T|-U SPEC
 *   passt-ts-ctl PATH quit
 *   passt-ts-ctl PATH top [--interval MS] [--count N]
 *
 * Human tables by default; `--json` prints the answer as the daemon sent
 * it. `top` redraws the stats (with rates) and the busiest flows every
 * second until interrupted (or N times). Exit status: 0 done, 1 the daemon
 * answered with an error or could not be reached, 2 usage error.
 */
import { ControlClient, Answer } from './client';
import type { StatsSnapshot } from './metrics';
import type { FlowEntry, PortEntry } from './service';

const USAGE = `Usage: passt-ts-ctl [--json] PATH VERB [ARGS]

Verbs:
  stats [--prometheus]           counters per stage, flows, traffic, drops, rings
  flows [--offset N] [--limit N] open flows (paged: 100 by default, at most 1000)
  ports                          forwarding table (auto-detected ports marked)
  add-port OPTION SPEC           forward more ports now, e.g. add-port -t 10005:10005
  remove-port OPTION SPEC        stop forwarding ports (their connections finish)
  quit                           stop the daemon
  top [--interval MS] [--count N]  refresh stats and the busiest flows every second

OPTION is -t, -u (host to guest or namespace), -T or -U (namespace to host,
pasta only); SPEC is that option's port specification, as on the command line.
`;

class UsageError extends Error {}

/** A table with left-aligned text and right-aligned numbers. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map((c) => String(c)))];
  const width = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const numeric = head.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  return cells.map((r) => r.map((c, i) => (numeric[i] ? c.padStart(width[i]) : c.padEnd(width[i])))
    .join('  ').trimEnd()).join('\n') + '\n';
}

/** 1536 → "1.5 KiB". */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

function age(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}

export function formatStats(s: StatsSnapshot, rates?: Map<string, number>): string {
  const rate = (k: string): string => (rates ? `  ${bytes(Math.round(rates.get(k) ?? 0))}/s` : '');
  const t = s.traffic;
  let out = `${s.mode} pid ${s.pid}, control socket up ${age(s.uptimeMs)}\n\nFlows\n`;
  out += table(['PROTO', 'TAP', 'SPLICE'], [
    ['tcp', s.flows.tcp.tap, s.flows.tcp.splice], ['udp', s.flows.udp.tap, s.flows.udp.splice], ['icmp', s.flows.icmp.tap, 0],
  ]);
  out += '\nTraffic\n';
  out += `  tcp tap     from guest ${bytes(t.tcp.tap.bytesFromGuest)} in ${t.tcp.tap.segmentsFromGuest} segments${rate('tcpFrom')}\n`;
  out += `              to guest   ${bytes(t.tcp.tap.bytesToGuest)} in ${t.tcp.tap.segmentsToGuest} segments${rate('tcpTo')}\n`;
  out += `  tcp splice  from client ${bytes(t.tcp.splice.bytesFromClient)}${rate('tcpSpliceFrom')}\n`;
  out += `              to client   ${bytes(t.tcp.splice.bytesToClient)}${rate('tcpSpliceTo')}\n`;
  out += `  udp tap     from guest ${bytes(t.udp.tap.bytesFromGuest)} in ${t.udp.tap.datagramsFromGuest} datagrams${rate('udpFrom')}\n`;
  out += `              to guest   ${bytes(t.udp.tap.bytesToGuest)} in ${t.udp.tap.datagramsToGuest} datagrams${rate('udpTo')}\n`;
  out += `  udp splice  from client ${bytes(t.udp.splice.bytesFromClient)}${rate('udpSpliceFrom')}\n`;
  out += `              to client   ${bytes(t.udp.splice.bytesToClient)}${rate('udpSpliceTo')}` +
    ` (${t.udp.splice.datagrams} datagrams both ways)\n`;
  out += `  icmp        ${t.icmp.tap.requestsFromGuest} echo requests from guest, ${t.icmp.tap.repliesToGuest} replies\n`;
  const drops: (string | number)[][] = [];
  for (const [w, reasons] of Object.entries(s.drops)) for (const [r, n] of Object.entries(reasons)) if (n) drops.push([w, r, n]);
  out += '\nDrops\n' + (drops.length ? table(['STAGE', 'REASON', 'COUNT'], drops) : '  none\n');
  out += '\nRings\n' + table(['RING', 'USED', 'CAPACITY', 'RECORDS', 'DROPS'],
    s.rings.map((r) => [r.name, r.used, r.capacity, r.records, r.drops]));
  out += '\nCounters\n';
  for (const [w, v] of Object.entries(s.workers)) {
    const nz = Object.entries(v).filter(([, n]) => n !== 0).map(([k, n]) => `${k}=${n}`);
    out += `  ${w}: ${nz.join(' ') || '(all zero)'}\n`;
  }
  return out;
}

export function formatFlows(flows: FlowEntry[], total: number, offset: number): string {
  const rows = flows.map((f) => [f.proto, f.path, f.worker, f.id, f.from, f.to, f.state, f.bytesOut, f.bytesIn, age(f.ageMs)]);
  const last = offset + flows.length;
  return table(['PROTO', 'PATH', 'WORKER', 'ID', 'FROM', 'TO', 'STATE', 'BYTES-OUT', 'BYTES-IN', 'AGE'], rows) +
    `${flows.length ? `flows ${offset + 1}-${last}` : 'no flows'} of ${total}\n`;
}

export function formatPorts(ports: PortEntry[]): string {
  if (!ports.length) return 'no forwarded ports\n';
  return table(['OPTION', 'BIND', 'PORT', 'TARGET', 'SOURCE'],
    ports.map((p) => [p.option, p.bind ?? '*', p.port, p.target, p.auto ? 'auto' : 'configured']));
}

function takeNumber(args: string[], name: string): number | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = Number(args[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0) throw new UsageError(`${name} needs a non-negative integer`);
  args.splice(i, 2);
  return v;
}

function check(a: Answer): Answer & { ok: true } {
  if (!a.ok) throw new Error(a.error);
  return a;
}

async function top(c: ControlClient, intervalMs: number, count: number | undefined): Promise<void> {
  let prev: StatsSnapshot | null = null;
  let prevAt = 0;
  const tty = process.stdout.isTTY;
  for (let n = 0; count === undefined || n < count; n++) {
    if (n) await new Promise((r) => setTimeout(r, intervalMs));
    const s = check(await c.request({ cmd: 'stats' })) as unknown as StatsSnapshot;
    const f = check(await c.request({ cmd: 'flows', limit: 1000 }));
    const now = Date.now();
    const rates = new Map<string, number>();
    if (prev) {
      const dt = (now - prevAt) / 1000;
      const d = (a: number, b: number) => Math.max(0, a - b) / dt;
      rates.set('tcpFrom', d(s.traffic.tcp.tap.bytesFromGuest, prev.traffic.tcp.tap.bytesFromGuest));
      rates.set('tcpTo', d(s.traffic.tcp.tap.bytesToGuest, prev.traffic.tcp.tap.bytesToGuest));
      rates.set('tcpSpliceFrom', d(s.traffic.tcp.splice.bytesFromClient, prev.traffic.tcp.splice.bytesFromClient));
      rates.set('tcpSpliceTo', d(s.traffic.tcp.splice.bytesToClient, prev.traffic.tcp.splice.bytesToClient));
      rates.set('udpFrom', d(s.traffic.udp.tap.bytesFromGuest, prev.traffic.udp.tap.bytesFromGuest));
      rates.set('udpTo', d(s.traffic.udp.tap.bytesToGuest, prev.traffic.udp.tap.bytesToGuest));
      rates.set('udpSpliceFrom', d(s.traffic.udp.splice.bytesFromClient, prev.traffic.udp.splice.bytesFromClient));
      rates.set('udpSpliceTo', d(s.traffic.udp.splice.bytesToClient, prev.traffic.udp.splice.bytesToClient));
    }
    prev = s;
    prevAt = now;
    const flows = (f.flows as FlowEntry[]).sort((a, b) => (b.bytesIn + b.bytesOut) - (a.bytesIn + a.bytesOut)).slice(0, 15);
    const screen = formatStats(s, rates) + '\nBusiest flows\n' + formatFlows(flows, f.total as number, 0);
    process.stdout.write((tty ? '\x1b[H\x1b[2J' : '') + screen + (tty ? '' : '\n'));
  }
}

export async function run(argv: string[]): Promise<number> {
  const args = [...argv];
  let json = false;
  const j = args.indexOf('--json');
  if (j >= 0) { json = true; args.splice(j, 1); }
  if (args[0] === '-h' || args[0] === '--help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const [path, verb, ...rest] = args;
  if (!path || !verb) throw new UsageError('a socket path and a verb are needed');
  const c = await ControlClient.connect(path);
  try {
    let a: Answer;
    switch (verb) {
      case 'stats': {
        const prom = rest.includes('--prometheus');
        const left = rest.filter((x) => x !== '--prometheus');
        if (left.length) throw new UsageError(`unexpected ${left[0]}`);
        a = check(await c.request({ cmd: 'stats', ...(prom ? { format: 'prometheus' } : {}) }));
        if (json) break;
        process.stdout.write(prom ? String(a.text) : formatStats(a as unknown as StatsSnapshot));
        return 0;
      }
      case 'flows': {
        const offset = takeNumber(rest, '--offset');
        const limit = takeNumber(rest, '--limit');
        if (rest.length) throw new UsageError(`unexpected ${rest[0]}`);
        a = check(await c.request({ cmd: 'flows', ...(offset !== undefined ? { offset } : {}), ...(limit !== undefined ? { limit } : {}) }));
        if (json) break;
        process.stdout.write(formatFlows(a.flows as FlowEntry[], a.total as number, a.offset as number));
        return 0;
      }
      case 'ports':
        if (rest.length) throw new UsageError(`unexpected ${rest[0]}`);
        a = check(await c.request({ cmd: 'ports' }));
        if (json) break;
        process.stdout.write(formatPorts(a.ports as PortEntry[]));
        return 0;
      case 'add-port':
      case 'remove-port': {
        if (rest.length !== 2) throw new UsageError(`${verb} needs an option (-t, -u, -T, -U) and a SPEC`);
        a = check(await c.request({ cmd: verb, option: rest[0], spec: rest[1] }));
        if (json) break;
        const list = (verb === 'add-port' ? a.added : a.removed) as PortEntry[];
        process.stdout.write(`${verb === 'add-port' ? 'added' : 'removed'} ${list.length} port${list.length === 1 ? '' : 's'}\n` +
          formatPorts(list));
        return 0;
      }
      case 'quit':
        if (rest.length) throw new UsageError(`unexpected ${rest[0]}`);
        a = check(await c.request({ cmd: 'quit' }));
        if (!json) return 0;
        break;
      case 'top': {
        const interval = takeNumber(rest, '--interval') ?? 1000;
        const count = takeNumber(rest, '--count');
        if (rest.length) throw new UsageError(`unexpected ${rest[0]}`);
        await top(c, Math.max(100, interval), count);
        return 0;
      }
      default:
        throw new UsageError(`unknown verb '${verb}'`);
    }
    process.stdout.write(JSON.stringify(a) + '\n');
    return 0;
  } finally {
    c.close();
  }
}

export function main(): void {
  run(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`passt-ts-ctl: ${e.message}\n${USAGE}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`passt-ts-ctl: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}

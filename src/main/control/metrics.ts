/**
 * What the control socket's `stats` answers, from the counters the workers
 * keep in shared memory (src/shared/stats.ts) and the ring headers
 * (supervisor.ts ringUsage()): nothing is asked of a worker, nothing
 * crosses the data path.
 *
 * Theory of operation
 * - `workers`: every counter of every stage, by stage name ("tap-rx",
 *   "tap-tx", "tcp0", "udp"), as the workers wrote them. Gauges (flows
 *   open now, listeners) and counters (everything else, monotonic) are
 *   told apart by GAUGES.
 * - `flows`: open flows per protocol and path, summed over workers.
 * - `traffic`: payload bytes and segments/datagrams each way per protocol
 *   and path ("fromGuest"/"toGuest" on the tap; "fromClient"/"toClient"
 *   on the splice path, the client being the end that made the flow; echo
 *   requests and replies for ICMP).
 * - `drops`: every drop reason with its count, per stage (DROP_REASONS).
 * - `rings`: per ring, capacity, bytes in use, records passed and drops.
 * - `prometheusText()` renders the same snapshot in the Prometheus text
 *   exposition format (version 0.0.4): `passt_ts_<stage role>_<counter>`
 *   with a `worker` label (`_total` for counters), `passt_ts_flows`,
 *   `passt_ts_ring_*`.
 */
import { COUNTERS, Role } from '../../shared/stats';
import type { RingUsage } from '../supervisor';

/** Counters that go up and down (everything else only goes up). */
export const GAUGES: Partial<Record<Role, readonly string[]>> = {
  tcp: ['active', 'spliceActive'],
  udp: ['listeners', 'activeTap', 'activeSplice', 'activePing'],
};

/** Counters that are drop reasons, per role. */
export const DROP_REASONS: Record<Role, readonly string[]> = {
  tapRx: ['tooShort', 'tooLong', 'badEthertype', 'badIpv4', 'badIpv6', 'fragments', 'loopbackAddr', 'otherL4',
    'serviceDrops', 'ringFull', 'readErrors', 'synShed'],
  tapTx: ['dropped', 'clientDrops', 'pcapErrors'],
  tcp: ['dropNoFlow', 'dropMalformed', 'dropBadSyn', 'dropTableFull', 'dropRingFull', 'dropOutOfWindow',
    'acceptDropped'],
  udp: ['truncated', 'badLength', 'zeroChecksum', 'zeroPort', 'badAddr', 'icmpNotEcho', 'familyOff', 'tableFull',
    'socketErrors', 'bindErrors', 'connectErrors', 'pingSocketErrors', 'notLoopback', 'refused', 'sendErrors',
    'recvErrors', 'tooBig', 'ringFull', 'icmpBadReply', 'icmpDup'],
};

/** One stage's counters, with the role that says what they mean. */
export interface StageCounters {
  name: string;
  role: Role;
  values: Record<string, number>;
}

export interface StatsSnapshot {
  mode: string;
  pid: number;
  uptimeMs: number;
  workers: Record<string, Record<string, number>>;
  flows: {
    tcp: { tap: number; splice: number };
    udp: { tap: number; splice: number };
    icmp: { tap: number };
  };
  traffic: {
    tcp: {
      tap: { bytesFromGuest: number; bytesToGuest: number; segmentsFromGuest: number; segmentsToGuest: number };
      splice: { bytesFromClient: number; bytesToClient: number };
    };
    udp: {
      tap: { bytesFromGuest: number; bytesToGuest: number; datagramsFromGuest: number; datagramsToGuest: number };
      splice: { bytesFromClient: number; bytesToClient: number; datagrams: number };
    };
    icmp: { tap: { requestsFromGuest: number; repliesToGuest: number } };
  };
  drops: Record<string, Record<string, number>>;
  rings: RingUsage[];
}

/** Builds the `stats` answer. */
export function snapshot(stages: StageCounters[], rings: RingUsage[], mode: string, uptimeMs: number): StatsSnapshot {
  const s: StatsSnapshot = {
    mode, pid: process.pid, uptimeMs, workers: {},
    flows: { tcp: { tap: 0, splice: 0 }, udp: { tap: 0, splice: 0 }, icmp: { tap: 0 } },
    traffic: {
      tcp: { tap: { bytesFromGuest: 0, bytesToGuest: 0, segmentsFromGuest: 0, segmentsToGuest: 0 }, splice: { bytesFromClient: 0, bytesToClient: 0 } },
      udp: {
        tap: { bytesFromGuest: 0, bytesToGuest: 0, datagramsFromGuest: 0, datagramsToGuest: 0 },
        splice: { bytesFromClient: 0, bytesToClient: 0, datagrams: 0 },
      },
      icmp: { tap: { requestsFromGuest: 0, repliesToGuest: 0 } },
    },
    drops: {},
    rings,
  };
  for (const st of stages) {
    const v = st.values;
    s.workers[st.name] = v;
    const drops: Record<string, number> = {};
    for (const r of DROP_REASONS[st.role]) drops[r] = v[r] ?? 0;
    s.drops[st.name] = drops;
    if (st.role === 'tcp') {
      s.flows.tcp.tap += v.active;
      s.flows.tcp.splice += v.spliceActive;
      const t = s.traffic.tcp;
      t.tap.bytesFromGuest += v.bytesFromTap;
      t.tap.bytesToGuest += v.bytesToTap;
      t.tap.segmentsFromGuest += v.frames;
      t.tap.segmentsToGuest += v.segsToTap + v.flagsToTap;
      t.splice.bytesFromClient += v.spliceBytesFromClient;
      t.splice.bytesToClient += v.spliceBytesToClient;
    } else if (st.role === 'udp') {
      s.flows.udp.tap += v.activeTap;
      s.flows.udp.splice += v.activeSplice;
      s.flows.icmp.tap += v.activePing;
      const u = s.traffic.udp;
      u.tap.bytesFromGuest += v.bytesFromTap;
      u.tap.bytesToGuest += v.bytesToTap;
      u.tap.datagramsFromGuest += v.toSock;
      u.tap.datagramsToGuest += v.toTap;
      u.splice.bytesFromClient += v.splicedFromClient;
      u.splice.bytesToClient += v.splicedToClient;
      u.splice.datagrams += v.spliced;
      s.traffic.icmp.tap.requestsFromGuest += v.pingRequests;
      s.traffic.icmp.tap.repliesToGuest += v.pingReplies;
    }
  }
  return s;
}

/** "bytesToTap" → "bytes_to_tap". */
export function snakeCase(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([A-Z])([A-Z][a-z])/g, '$1_$2').toLowerCase();
}

/** A label value in the exposition format: backslash, quote and newline escaped. */
export function labelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

const ROLE_METRIC: Record<Role, string> = { tapRx: 'tap_rx', tapTx: 'tap_tx', tcp: 'tcp', udp: 'udp' };

/** The snapshot in the Prometheus text exposition format (0.0.4). */
export function prometheusText(stages: StageCounters[], s: StatsSnapshot): string {
  const out: string[] = [];
  const family = (name: string, type: 'counter' | 'gauge', help: string, samples: [string, number][]): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(`${name}${labels} ${Number.isFinite(value) ? value : 0}`);
  };
  family('passt_ts_uptime_seconds', 'gauge', 'Seconds since the control socket started.', [['', s.uptimeMs / 1000]]);
  // one family per counter name of a role, one sample per worker of that role
  for (const role of Object.keys(COUNTERS) as Role[]) {
    const mine = stages.filter((st) => st.role === role);
    if (!mine.length) continue;
    for (const c of COUNTERS[role]) {
      const gauge = GAUGES[role]?.includes(c) ?? false;
      const name = `passt_ts_${ROLE_METRIC[role]}_${snakeCase(c)}${gauge ? '' : '_total'}`;
      family(name, gauge ? 'gauge' : 'counter', `${role} counter ${c} (src/shared/stats.ts).`,
        mine.map((st) => [`{worker="${labelValue(st.name)}"}`, st.values[c] ?? 0]));
    }
  }
  family('passt_ts_flows', 'gauge', 'Open flows by protocol and path.', [
    ['{proto="tcp",path="tap"}', s.flows.tcp.tap], ['{proto="tcp",path="splice"}', s.flows.tcp.splice],
    ['{proto="udp",path="tap"}', s.flows.udp.tap], ['{proto="udp",path="splice"}', s.flows.udp.splice],
    ['{proto="icmp",path="tap"}', s.flows.icmp.tap],
  ]);
  const ring = (r: RingUsage) => `{ring="${labelValue(r.name)}"}`;
  family('passt_ts_ring_capacity_bytes', 'gauge', 'Data bytes of each ring between stages.',
    s.rings.map((r) => [ring(r), r.capacity]));
  family('passt_ts_ring_used_bytes', 'gauge', 'Bytes published and not yet released in each ring.',
    s.rings.map((r) => [ring(r), r.used]));
  family('passt_ts_ring_records_total', 'counter', 'Records passed through each ring (wraps at 2^32).',
    s.rings.map((r) => [ring(r), r.records]));
  family('passt_ts_ring_drops_total', 'counter', 'Records dropped on a full ring.',
    s.rings.map((r) => [ring(r), r.drops]));
  return out.join('\n') + '\n';
}

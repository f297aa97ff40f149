/**
 * passt with a real guest: CPU seconds of the passt process per GB moved,
 * for this implementation and the C passt in the same run, both
 * directions. `perf/guest-bench.sh [--quick]` (as root: it makes its own
 * network namespace, then runs `node dist/perf/guest.bench.js`).
 *
 * Under TCG the guest's vCPU is the bottleneck, so Gbit/s compares guests,
 * not implementations; what passt costs is its own CPU time for the bytes
 * it moved. Each (implementation, direction) is one boot of the test guest
 * (test/guest/) running `iperf3 -c 192.0.2.1` (-R for host → guest) against
 * `iperf3 -s` on the host's 127.0.0.1 (reached through the host-loopback
 * mapping). passt's CPU time (/proc) is read when the guest script starts
 * and when qemu has stopped: CPU-s/GB uses the difference, so start-up
 * (Node and its workers: about half a CPU second) and boot are left out;
 * the whole-run figure, as ../shared/qemu/selftest.sh reports it, is
 * printed beside it.
 * The C passt refuses to run as root: it runs as BENCH_USER (bench).
 *
 * Links: `ts` and `c` are passt-ts and the C passt over `-netdev stream`;
 * `ts-vu` and `c-vu` over vhost-user (issue 14: passt --vhost-user, qemu's
 * `-netdev vhost-user` on a shared memfd), the C one being the 2025 passt
 * (BENCH_C_VU_PASST), as the 2023 one in Debian has no vhost-user.
 *
 * Env: BENCH_C_PASST (/usr/bin/passt), BENCH_C_VU_PASST
 * (/opt/passt-ref/passt), BENCH_USER (bench), IPERF_T (10 s), IPERF_RUNS
 * (2), BENCH_IMPLS ("ts c"; any of ts ts-vu c c-vu), BENCH_TS_ARGS (more
 * passt-ts arguments, e.g. "-d": its counters are printed at exit),
 * BENCH_LOG=1 (print passt-ts's output after each run).
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { runGuest, guestUnavailable, describeRun } from '../test/guest/runner';

const quick = process.argv.includes('--quick');
const T = Number(process.env.IPERF_T ?? (quick ? 4 : 10));
const RUNS = Number(process.env.IPERF_RUNS ?? (quick ? 1 : 2));
const PORT = 13201;
const ROOT = path.resolve(__dirname, '..', '..');
const user = process.env.BENCH_USER ?? 'bench';

interface Impl {
  key: string;
  name: string;
  passt: string[];
  asUser?: string[];
  vhostUser?: boolean;
}

const tsPasst = [path.join(ROOT, 'bin', 'passt'), ...(process.env.BENCH_TS_ARGS ?? '').split(' ').filter(Boolean)];
const asBench = ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups'];
const wanted = (process.env.BENCH_IMPLS ?? 'ts c').split(' ');
const IMPLS: Impl[] = ([
  { key: 'ts', name: 'passt-ts', passt: tsPasst },
  { key: 'ts-vu', name: 'ts vhost', passt: tsPasst, vhostUser: true },
  { key: 'c', name: 'C passt', passt: [process.env.BENCH_C_PASST ?? '/usr/bin/passt'], asUser: asBench },
  { key: 'c-vu', name: 'C vhost', passt: [process.env.BENCH_C_VU_PASST ?? '/opt/passt-ref/passt'], asUser: asBench, vhostUser: true },
] as Impl[]).filter((i) => wanted.includes(i.key));

interface Row {
  impl: string;
  dir: string;
  gbits: number[];
  gb: number;
  /** CPU seconds while the guest script ran. */
  cpuS: number;
  /** CPU seconds of the whole run, start-up included. */
  cpuAllS: number;
}

async function one(impl: Impl, rev: boolean): Promise<Row> {
  const script = Array.from({ length: RUNS }, () =>
    `echo @@IPERF; iperf3 -J -c 192.0.2.1 -p ${PORT} -t ${T} ${rev ? '-R' : ''}; echo @@END`).join('\n') +
    // the serial console is slow under TCG: let the last JSON out before the power-off message cuts into it
    '\nsleep 2';
  const r = await runGuest({ passt: impl.passt, asUser: impl.asUser, vhostUser: impl.vhostUser, script, timeoutMs: 120000 + RUNS * T * 2000 });
  if (process.env.BENCH_LOG === '1' && impl.key.startsWith('ts')) process.stderr.write(`${impl.name} ${rev ? 'rev' : 'fwd'}:\n${r.passtLog}\n`);
  const blocks = r.output.split('@@IPERF').slice(1).map((b) => b.split('@@END')[0]);
  const gbits: number[] = [];
  let bytes = 0;
  for (const b of blocks) {
    try {
      const j = JSON.parse(b.slice(b.indexOf('{'), b.lastIndexOf('}') + 1));
      gbits.push(j.end.sum_received.bits_per_second / 1e9);
      bytes += j.end.sum_received.bytes;
    } catch {
      process.stderr.write(`${impl.name} ${rev ? 'rev' : 'fwd'}: no iperf3 result\n${describeRun(r)}\n`);
    }
  }
  const all = gbits.length === RUNS ? r.passtCpuS ?? NaN : NaN; // CPU of a run without its result counts for nothing
  return { impl: impl.name, dir: rev ? 'host → guest' : 'guest → host', gbits, gb: bytes / 1e9, cpuS: all - (r.passtCpuAtBeginS ?? NaN), cpuAllS: all };
}

async function main(): Promise<void> {
  const why = guestUnavailable();
  if (why) throw new Error(why);
  const iperf = spawn('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(PORT)], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 300));
  const rows: Row[] = [];
  try {
    for (const rev of [false, true]) for (const impl of IMPLS) rows.push(await one(impl, rev));
  } finally {
    iperf.kill();
  }
  const fmt = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '-');
  console.log(`# guest iperf3, TCG, ${RUNS} × ${T} s per boot`);
  console.log('direction      impl       Gbit/s (runs)        GB   CPU s (script)  CPU-s/GB   CPU s (run)  CPU-s/GB (run)');
  for (const r of rows) {
    console.log(`${r.dir.padEnd(14)} ${r.impl.padEnd(10)} ${r.gbits.map((g) => fmt(g)).join(' ').padEnd(20)} ${fmt(r.gb).padStart(5)} ` +
      `${fmt(r.cpuS).padStart(15)} ${fmt(r.cpuS / r.gb).padStart(9)} ${fmt(r.cpuAllS).padStart(13)} ${fmt(r.cpuAllS / r.gb).padStart(15)}`);
  }
  for (const dir of ['guest → host', 'host → guest']) {
    for (const [a, b] of [['passt-ts', 'C passt'], ['ts vhost', 'C vhost'], ['ts vhost', 'passt-ts']]) {
      const ts = rows.find((r) => r.dir === dir && r.impl === a);
      const c = rows.find((r) => r.dir === dir && r.impl === b);
      if (ts && c) {
        console.log(`${dir}: ${a} / ${b} CPU-s/GB = ${fmt((ts.cpuS / ts.gb) / (c.cpuS / c.gb))}; ` +
          `whole runs: ${fmt((ts.cpuAllS / ts.gb) / (c.cpuAllS / c.gb))}`);
      }
    }
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});

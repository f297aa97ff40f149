/**
 * Runs the micro-benchmarks one after another (`npm run bench`):
 * view parsing and checksums, rings between workers, frames through the
 * tap-RX → tap-TX pipeline, and the UDP worker's cost per datagram. The end-to-end comparisons with the C pasta
 * and slirp4netns are shell scripts in perf/ (see perf/README.md).
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const quick = process.argv.includes('--quick');
const benches: [string, string[]][] = [
  ['wire.bench.js', [quick ? '200' : '500']],
  ['ring.bench.js', quick ? ['--quick'] : []],
  ['pipeline.bench.js', [quick ? '1' : '3']],
  ['udp.bench.js', [quick ? '200' : '500']],
];
let failed = 0;
for (const [file, args] of benches) {
  console.log(`\n=== ${file} ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [path.join(__dirname, file), ...args], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);

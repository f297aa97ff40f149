/**
 * Dependency-free mutation driver for frames.fuzz.ts, for machines where
 * Jazzer.js does not load: seeds are the captured-style fixtures; each
 * iteration flips, inserts, deletes or splices bytes (seeded PRNG, so a
 * crash is reproducible from the printed seed and iteration).
 *
 * Run: node dist/test/fuzz/run.js [iterations] [seed]
 */
import { fuzz } from './frames.fuzz';
import {
  ARP_REQUEST, DHCP_DISCOVER, DHCPV6_SOLICIT, NDP_NS, NDP_RS, TCP_SYN, dhcpDiscoverPayload, dhcpFrame,
} from '../helpers/fixtures';

const SEEDS = [ARP_REQUEST, DHCP_DISCOVER, DHCPV6_SOLICIT, NDP_NS, NDP_RS, TCP_SYN,
  dhcpFrame(dhcpDiscoverPayload({ extraOptions: [80, 0] }))];

/** xorshift32: small, fast, reproducible. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

function mutate(r: () => number, src: Uint8Array): Uint8Array {
  const b = Array.from(src);
  const n = 1 + (r() % 4);
  for (let k = 0; k < n; k++) {
    const op = r() % 6;
    const i = b.length ? r() % b.length : 0;
    if (op <= 2 && b.length) b[i] = r() & 0xff;
    else if (op === 3) b.splice(i, 0, r() & 0xff);
    else if (op === 4 && b.length) b.splice(i, 1 + (r() % 8));
    else if (op === 5) { const s = SEEDS[r() % SEEDS.length]; const j = r() % s.length; b.splice(i, 0, ...s.subarray(j, j + (r() % 16))); }
  }
  return Uint8Array.from(b);
}

const iterations = Number(process.argv[2] ?? 200000);
const seed = Number(process.argv[3] ?? Date.now() & 0xffffffff);
const r = prng(seed);
const t0 = process.hrtime.bigint();
for (let it = 0; it < iterations; it++) {
  const base = SEEDS[r() % SEEDS.length];
  const frame = r() % 16 === 0 ? Uint8Array.from({ length: r() % 200 }, () => r() & 0xff) : mutate(r, base);
  const input = new Uint8Array(frame.length + 2);
  input[0] = r() & 0xff;
  input[1] = r() & 0xff;
  input.set(frame, 2);
  try {
    fuzz(input);
  } catch (e) {
    console.error(`crash at iteration ${it} (seed ${seed}): ${(e as Error).stack ?? e}`);
    console.error(`input: ${Buffer.from(input).toString('hex')}`);
    process.exit(1);
  }
}
const s = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(`${iterations} iterations, seed ${seed}, ${(iterations / s).toFixed(0)}/s, no invariant violated`);

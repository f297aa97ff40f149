/**
 * The -t/-u/-T/-U SPEC grammar (SPEC.md §8.2 and its testable facts), the
 * forms Podman and libvirt write, accumulation over repeated options, and
 * fuzzing: no input throws anything but a PasstError.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseForwardOption, readEphemeralRange, EPHEMERAL_FALLBACK, type ForwardOpt } from '../../src/main/portSpec';
import type { ForwardSpec, Mode } from '../../src/shared/config';
import { PasstError } from '../../src/shared/errors';
import { testProp, fc } from '../_lib/fcAva';

const EPH: [number, number] = [49152, 65535];

function parse(value: string, opt: ForwardOpt = '-t', mode: Mode = 'passt', prev?: ForwardSpec) {
  return parseForwardOption(prev, opt, value, mode, EPH);
}

/** "5-9,21-25" for listen ports; a mapped port shows as "8080>80". */
function show(spec: ForwardSpec): string[] {
  return spec.rules.map((r) => {
    const runs: string[] = [];
    for (let i = 0; i < r.ports.length;) {
      let j = i;
      const d = r.ports[i].delta;
      while (j + 1 < r.ports.length && r.ports[j + 1].port === r.ports[j].port + 1 && r.ports[j + 1].delta === d) j++;
      const a = r.ports[i].port, b = r.ports[j].port;
      const to = d ? `>${(a + d) & 0xffff}${a === b ? '' : `-${(b + d) & 0xffff}`}` : '';
      runs.push(`${a}${a === b ? '' : `-${b}`}${to}`);
      i = j + 1;
    }
    const bind = r.addr || r.ifname ? `${r.addr ?? ''}${r.ifname ? `%${r.ifname}` : ''}/` : '';
    return `${bind}${runs.join(',')}${r.bestEffort ? ' (best effort)' : ''}`;
  });
}

// ----------------------------------------------------------------- accepted

const accepted: [string, ForwardOpt, Mode, string[]][] = [
  // SPEC.md §8 testable facts
  ['2222:22', '-t', 'passt', ['2222>22']],
  ['5-25,~10-20', '-t', 'passt', ['5-9,21-25']],
  ['~25', '-t', 'passt', ['1-24,26-49151 (best effort)']],
  ['192.0.2.1/22', '-t', 'passt', ['192.0.2.1/22']],
  // single ports, lists, ranges, port 0 and 65535, leading zeros
  ['80', '-t', 'passt', ['80']],
  ['80,443', '-u', 'pasta', ['80,443']],
  ['0', '-t', 'passt', ['0']],
  ['65535', '-t', 'passt', ['65535']],
  ['0080', '-t', 'passt', ['80']],
  ['1000-1003', '-t', 'passt', ['1000-1003']],
  ['7-7', '-t', 'passt', ['7']],
  ['~10-20,5-25', '-t', 'passt', ['5-9,21-25']],
  ['1-10,~3,20-30,~25-27', '-t', 'passt', ['1-2,4-10,20-24,28-30']],
  // mappings, wrapping deltas
  ['8080-8082:80-82', '-t', 'passt', ['8080-8082>80-82']],
  ['1:65535', '-t', 'passt', ['1>65535']],
  ['65535:0', '-t', 'passt', ['65535>0']],
  // Podman
  ['8080-8080:80-80', '-t', 'pasta', ['8080>80']],
  ['127.0.0.1/5000-5000:5000-5000', '-u', 'pasta', ['127.0.0.1/5000']],
  ['::1/8080-8080:80-80', '-t', 'pasta', ['::1/8080>80']],
  // libvirt
  ['1.2.3.4/5000-5020:6000-6020,~5010-5015', '-t', 'passt', ['1.2.3.4/5000-5009>6000-6009,5016-5020>6016-6020']],
  ['2001:db8:ac10:fd01::1:10%eth0/8080,4433:3444', '-t', 'passt', ['2001:db8:ac10:fd01::1:10%eth0/4433>3444,8080']],
  // BIND forms
  ['[::1]/80', '-t', 'passt', ['::1/80']],
  ['[192.0.2.1]/80', '-t', 'passt', ['192.0.2.1/80']],
  ['%eth0/80', '-t', 'passt', ['%eth0/80']],
  ['[fe80::1]%br0/80', '-u', 'passt', ['fe80::1%br0/80']],
  ['2001:DB8:0:0::1/80', '-t', 'passt', ['2001:db8::1/80']],
  ['::ffff:192.0.2.1/80', '-t', 'passt', ['192.0.2.1/80']],
  ['0.0.0.0/80', '-t', 'passt', ['0.0.0.0/80']],
  ['%abcdefghijklmno/80', '-t', 'passt', ['%abcdefghijklmno/80']],
  ['192.0.2.1/~80', '-t', 'passt', ['192.0.2.1/1-79,81-49151 (best effort)']],
  // -T / -U: no BIND, same items
  ['8080:80,~8080', '-T', 'pasta', []],
  ['1-3:11-13', '-U', 'pasta', ['1-3>11-13']],
  ['~53', '-U', 'pasta', ['1-52,54-49151 (best effort)']],
];

for (const [value, opt, mode, expected] of accepted) {
  test(`accepts ${opt} ${value} (${mode})`, (t) => {
    const { spec, warnings } = parse(value, opt, mode);
    t.is(spec.mode, 'spec');
    t.deepEqual(show(spec), expected);
    t.deepEqual(warnings, []);
  });
}

test('keywords: none, auto (pasta), all (passt)', (t) => {
  t.deepEqual(parse('none').spec, { mode: 'none', rules: [] });
  t.deepEqual(parse('none', '-U', 'pasta').spec, { mode: 'none', rules: [] });
  t.deepEqual(parse('auto', '-t', 'pasta').spec, { mode: 'auto', rules: [] });
  t.deepEqual(parse('auto', '-T', 'pasta').spec, { mode: 'auto', rules: [] });
  const all = parse('all', '-t', 'passt').spec;
  t.is(all.mode, 'all');
  t.deepEqual(show(all), ['1-49151 (best effort)'], 'port 0 and ephemeral ports skipped');
  const narrow = parseForwardOption(undefined, '-u', 'all', 'passt', [32768, 60999]).spec;
  t.deepEqual(show(narrow), ['1-32767,61000-65535 (best effort)'], 'ephemeral range is a parameter');
});

test('exclusion-only specs follow the ephemeral range given', (t) => {
  const { spec } = parseForwardOption(undefined, '-t', '~22,~80-90', 'passt', [40000, 50000]);
  t.deepEqual(show(spec), ['1-21,23-79,91-39999,50001-65535 (best effort)']);
});

// ----------------------------------------------------------------- rejected

const rejected: [string, ForwardOpt, Mode, RegExp][] = [
  // SPEC.md §8 testable facts
  ['auto', '-t', 'passt', /^'auto' port forwarding is only allowed for pasta$/],
  ['all', '-t', 'pasta', /^'all' port forwarding is only allowed for passt$/],
  ['80-70', '-t', 'passt', /first port 80 is above last port 70/],
  ['1:2-3', '-t', 'passt', /'1' has 1 port but '2-3' has 2/],
  ['1,~2,~2', '-t', 'passt', /overlapping excluded ranges/],
  // bad numbers
  ['', '-t', 'passt', /no ports given/],
  ['abc', '-t', 'passt', /expected a port number, found 'abc'/],
  ['-80', '-t', 'passt', /expected a port number, found '-80'/],
  ['+80', '-t', 'passt', /expected a port number/],
  [' 80', '-t', 'passt', /expected a port number/],
  ['0x50', '-t', 'passt', /unexpected 'x50' after '0'/],
  ['65536', '-t', 'passt', /port 65536 is above 65535/],
  ['1-70000', '-t', 'passt', /port 70000 is above 65535/],
  ['99999999999999999999', '-t', 'passt', /above 65535/],
  ['80:65536', '-t', 'passt', /port 65536 is above 65535/],
  // garbage after a range
  ['80x', '-t', 'passt', /unexpected 'x' after '80'/],
  ['80 ', '-t', 'passt', /unexpected ' ' after '80'/],
  ['80-90-100', '-t', 'passt', /unexpected '-100' after '80-90'/],
  ['80:90:100', '-t', 'passt', /unexpected ':100' after '80:90'/],
  ['~80x', '-t', 'passt', /unexpected 'x' after '~80'/],
  ['~1:2', '-t', 'passt', /mapping is not allowed in an exclusion/],
  ['80;81', '-t', 'passt', /unexpected ';81'/],
  // empty parts
  ['80,', '-t', 'passt', /empty item in '80,'/],
  [',80', '-t', 'passt', /empty item/],
  ['80,,81', '-t', 'passt', /empty item/],
  ['80-', '-t', 'passt', /expected a port number after '80-', found nothing/],
  ['80:', '-t', 'passt', /expected a port number after '80:', found nothing/],
  [':80', '-t', 'passt', /expected a port number, found ':80'/],
  ['~', '-t', 'passt', /expected a port number after '~', found nothing/],
  ['~~80', '-t', 'passt', /expected a port number after '~'/],
  ['192.0.2.1/', '-t', 'passt', /no ports given/],
  ['/80', '-t', 'passt', /empty bind address before '\/'/],
  ['[]/80', '-t', 'passt', /empty bind address '\[\]'/],
  ['%/80', '-t', 'passt', /empty interface name/],
  // mappings, exclusions
  ['1-3:4-5', '-t', 'passt', /'1-3' has 3 ports but '4-5' has 2/],
  ['10-20:30', '-t', 'passt', /has 11 ports but '30' has 1/],
  ['~10-20,~15-30,1', '-t', 'passt', /overlapping excluded ranges \('~15-30' excludes port 15 again\)/],
  ['~5,~5', '-U', 'pasta', /overlapping excluded ranges/],
  ['~30-20', '-t', 'passt', /first port 30 is above last port 20/],
  // BIND
  ['1.2.3.4/80', '-T', 'pasta', /only accepted for -t and -u, not -T/],
  ['%lo/80', '-U', 'pasta', /only accepted for -t and -u, not -U/],
  ['192.0.2.256/80', '-t', 'passt', /bad bind address '192.0.2.256'/],
  ['01.2.3.4/80', '-t', 'passt', /bad bind address/],
  ['1.2.3/80', '-t', 'passt', /bad bind address/],
  ['localhost/80', '-t', 'passt', /bad bind address 'localhost'/],
  ['[::1/80', '-t', 'passt', /bad bind address '\[::1'/],
  ['1::2::3/80', '-t', 'passt', /bad bind address/],
  ['[::1%lo]/80', '-t', 'passt', /bad bind address '\[::1'/],
  ['1.2.3.4%abcdefghijklmnop/80', '-t', 'passt', /interface name 'abcdefghijklmnop' is longer than 15 bytes/],
  ['%äbcdefghijklmno/80', '-t', 'passt', /longer than 15 bytes/], // 15 characters, 16 bytes
  ['1.2.3.4/5/6', '-t', 'passt', /expected a port number, found '5\/6'|unexpected '\/6'/],
];

for (const [value, opt, mode, message] of rejected) {
  test(`rejects ${opt} ${JSON.stringify(value)} (${mode})`, (t) => {
    const e = t.throws(() => parse(value, opt, mode), { instanceOf: PasstError, message });
    t.is(e?.code, 'PASST_ERR_PORT_SPEC');
    if (!/only allowed/.test(e?.message ?? '')) t.true(e!.message.startsWith(`Invalid port specifier ${value}: `));
  });
}

// ------------------------------------------------------------- accumulation

test('repeated options accumulate, and a re-mapped port is reported', (t) => {
  let r = parse('80,81');
  r = parse('81:8081,82', '-t', 'passt', r.spec);
  t.deepEqual(show(r.spec), ['80,81>8081,82']);
  t.deepEqual(r.warnings, ['Altering mapping of already mapped port number 81: -t 81:8081,82']);
  r = parse('90-99', '-t', 'passt', r.spec);
  t.deepEqual(show(r.spec), ['80,81>8081,82,90-99']);
  t.deepEqual(r.warnings, []);
  r = parse('80-85,95-120', '-t', 'passt', r.spec);
  t.deepEqual(show(r.spec), ['80-85,90-120']);
  t.deepEqual(r.warnings, ['Altering mapping of already mapped port numbers 80-82, 95-99: -t 80-85,95-120']);
});

test('within one option the later mapping of a port wins, with a warning', (t) => {
  const r = parse('80:8080,80');
  t.deepEqual(show(r.spec), ['80']);
  t.deepEqual(r.warnings, ['Altering mapping of already mapped port number 80: -t 80:8080,80']);
});

test('different binds keep their own rules; the same port on two binds is reported', (t) => {
  let r = parse('127.0.0.1/80', '-t', 'pasta');
  r = parse('::1/80', '-t', 'pasta', r.spec);
  r = parse('%eth0/443', '-t', 'pasta', r.spec);
  t.deepEqual(show(r.spec), ['127.0.0.1/80', '::1/80', '%eth0/443']);
  r = parse('127.0.0.1/81', '-t', 'pasta', r.spec);
  t.deepEqual(show(r.spec), ['127.0.0.1/80-81', '::1/80', '%eth0/443'], 'same bind: one rule');
  const w = parse('[::ffff:127.0.0.1]/80:8080', '-t', 'pasta', r.spec);
  t.deepEqual(show(w.spec), ['127.0.0.1/80>8080,81', '::1/80', '%eth0/443'], 'v4-mapped is the same bind');
  t.is(w.warnings.length, 1);
});

test('best-effort and explicit ports of one bind: the later option owns the port', (t) => {
  let r = parse('22:2222,80');
  r = parse('~80', '-t', 'passt', r.spec);
  t.deepEqual(show(r.spec), ['80', '1-79,81-49151 (best effort)'], '22 moved to the best-effort rule, 80 stays');
  t.deepEqual(r.warnings, ['Altering mapping of already mapped port number 22: -t ~80']);
  r = parse('8080:80', '-t', 'passt', r.spec);
  t.deepEqual(show(r.spec), ['80,8080>80', '1-79,81-8079,8081-49151 (best effort)']);
});

test('the previous spec is not modified', (t) => {
  const a = parse('80,81').spec;
  const copy = JSON.parse(JSON.stringify(a));
  parse('81:8081', '-t', 'passt', a);
  parse('~81', '-t', 'passt', a);
  t.deepEqual(a, copy);
});

test('none/auto/all conflict with anything before or after (original wording)', (t) => {
  const spec = parse('80').spec;
  for (const [kw, mode] of [['none', 'passt'], ['auto', 'pasta'], ['all', 'passt'], ['auto', 'passt'], ['all', 'pasta']] as const)
    t.throws(() => parse(kw, '-t', mode, spec), { instanceOf: PasstError, message: `Port forwarding mode '${kw}' conflicts with previous mode` });
  for (const [kw, mode] of [['none', 'passt'], ['auto', 'pasta'], ['all', 'passt']] as const) {
    const first = parse(kw, '-u', mode).spec;
    t.throws(() => parse('80', '-u', mode, first), { instanceOf: PasstError, message: 'Specific ports cannot be specified together with all/none/auto' });
    t.throws(() => parse('~80', '-u', mode, first), { instanceOf: PasstError, message: /cannot be specified together/ });
    t.throws(() => parse('none', '-u', mode, first), { instanceOf: PasstError, message: "Port forwarding mode 'none' conflicts with previous mode" });
    t.throws(() => parse(kw, '-u', mode, first), { instanceOf: PasstError, message: `Port forwarding mode '${kw}' conflicts with previous mode` });
  }
});

// ----------------------------------------------------------- ephemeral range

test('readEphemeralRange reads the sysctl, falls back to 49152-65535', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portspec-'));
  const f = path.join(dir, 'range');
  const tryText = (s: string): [number, number] => {
    fs.writeFileSync(f, s);
    return readEphemeralRange(f);
  };
  t.deepEqual(tryText('32768\t60999\n'), [32768, 60999]);
  t.deepEqual(tryText('1024 1024'), [1024, 1024]);
  t.deepEqual(tryText('60999\t32768\n'), [...EPHEMERAL_FALLBACK]);
  t.deepEqual(tryText('0\t100\n'), [...EPHEMERAL_FALLBACK]);
  t.deepEqual(tryText('32768\t70000\n'), [...EPHEMERAL_FALLBACK]);
  t.deepEqual(tryText('garbage'), [...EPHEMERAL_FALLBACK]);
  t.deepEqual(tryText(''), [...EPHEMERAL_FALLBACK]);
  t.deepEqual(readEphemeralRange(path.join(dir, 'missing')), [...EPHEMERAL_FALLBACK]);
  fs.rmSync(dir, { recursive: true });
  const sys = readEphemeralRange();
  t.true(sys[0] >= 1 && sys[0] <= sys[1] && sys[1] <= 65535);
});

// ------------------------------------------------------------------- fuzzing

const OPTS: ForwardOpt[] = ['-t', '-u', '-T', '-U'];

/** Strings close to the grammar, so the fuzzer reaches deep into it. */
const nearSpec = fc.array(
  fc.oneof(
    fc.constantFrom('0', '1', '22', '80', '443', '65535', '65536', '99999', '007', '-', ':', ',', '~', '/', '%', '[', ']',
      '.', '::', '::1', '127.0.0.1', 'fe80::1', 'eth0', 'all', 'auto', 'none', ' ', '\t', 'x', 'é', '\u0000'),
    fc.nat({ max: 70000 }).map(String),
  ),
  { maxLength: 14 },
).map((parts) => parts.join(''));

testProp(
  'any string either parses to a well-formed spec or throws a PasstError',
  [fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 }), nearSpec),
    fc.constantFrom(...OPTS), fc.constantFrom<Mode>('pasta', 'passt')],
  (t, value, opt, mode) => {
    let res;
    try {
      res = parseForwardOption(undefined, opt, value, mode, EPH);
    } catch (e) {
      if (!(e instanceof PasstError) || e.code !== 'PASST_ERR_PORT_SPEC') throw e;
      t.pass();
      return;
    }
    // Plain checks (a spec may hold 49k ports; one assertion each is slow).
    const problems: string[] = [];
    for (const r of res.spec.rules) {
      for (let i = 0; i < r.ports.length; i++) {
        const { port, delta } = r.ports[i];
        if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) problems.push(`port ${port}`);
        if (!(Number.isInteger(delta) && delta >= 0 && delta <= 65535)) problems.push(`delta ${delta}`);
        if (i && port <= r.ports[i - 1].port) problems.push(`unsorted at ${port}`);
      }
      if (r.ifname !== null && !(Buffer.byteLength(r.ifname) < 16 && r.ifname.length > 0)) problems.push('ifname');
      if ((opt === '-T' || opt === '-U') && (r.addr !== null || r.ifname !== null)) problems.push('bind on -T/-U');
    }
    t.deepEqual(problems, []);
    t.true(['none', 'auto', 'all', 'spec'].includes(res.spec.mode));
  },
  { numRuns: 3000 },
);

/** A random well-formed list of items, and the ports it must forward. */
const itemsArb = fc.array(
  fc.record({
    exclude: fc.boolean(),
    first: fc.nat({ max: 2000 }),
    len: fc.nat({ max: 40 }),
    to: fc.option(fc.nat({ max: 65535 }), { nil: undefined }),
  }),
  { minLength: 1, maxLength: 8 },
);

testProp(
  'well-formed item lists forward exactly the modelled ports',
  [itemsArb],
  (t, items) => {
    const text = items.map((it) => {
      const r = it.len ? `${it.first}-${it.first + it.len}` : `${it.first}`;
      if (it.exclude) return `~${r}`;
      if (it.to === undefined) return r;
      const to = Math.min(it.to, 65535 - it.len);
      return `${r}:${it.len ? `${to}-${to + it.len}` : to}`;
    }).join(',');
    // Model: exclusions first (overlap is an error), then ranges in order.
    const excluded = new Set<number>();
    let overlap = false;
    for (const it of items.filter((i) => i.exclude))
      for (let p = it.first; p <= it.first + it.len; p++) overlap ||= excluded.has(p), excluded.add(p);
    const want = new Map<number, number>();
    const ranges = items.filter((i) => !i.exclude);
    if (ranges.length === 0) {
      for (let p = 1; p < EPH[0]; p++) if (!excluded.has(p)) want.set(p, 0);
    }
    for (const it of ranges) {
      const to = it.to === undefined ? it.first : Math.min(it.to, 65535 - it.len);
      for (let p = it.first; p <= it.first + it.len; p++) if (!excluded.has(p)) want.set(p, (to - it.first) & 0xffff);
    }
    if (overlap) {
      t.throws(() => parse(text), { message: /overlapping excluded ranges/ });
      return;
    }
    const { spec } = parse(text);
    const got = new Map(spec.rules.flatMap((r) => r.ports.map((p) => [p.port, p.delta] as [number, number])));
    // Compared by hand: deepEqual of 49k-entry arrays is slow.
    const diff: string[] = [];
    for (const [p, d] of want) if (got.get(p) !== d) diff.push(`port ${p}: want delta ${d}, got ${got.get(p)}`);
    for (const p of got.keys()) if (!want.has(p)) diff.push(`port ${p} not wanted`);
    t.deepEqual(diff.slice(0, 5), [], text);
  },
  { numRuns: 300 },
);

/**
 * The control socket's request parser and line framing (protocol.ts), and
 * the Prometheus rendering of the stats (metrics.ts): every well-formed
 * request of every verb parses to itself, anything else is an error value
 * (never a throw) that keeps a readable id, lines are split the same way
 * whatever the chunking, and an over-long line is reported once and
 * skipped without being buffered.
 */
import test from 'ava';
import {
  parseRequest, isBad, LineSplitter, LineEvent, VERBS, MAX_FLOWS_PAGE, DEFAULT_FLOWS_PAGE, answerLine, errorLine,
} from '../../src/main/control/protocol';
import { snapshot, prometheusText, snakeCase, labelValue, StageCounters } from '../../src/main/control/metrics';
import { COUNTERS, Role } from '../../src/shared/stats';
import { testProp, fc } from '../_lib/fcAva';

test('each verb with its defaults', (t) => {
  t.deepEqual(parseRequest('{"cmd":"stats"}'), { cmd: 'stats', format: 'json' });
  t.deepEqual(parseRequest('{"cmd":"stats","format":"prometheus"}'), { cmd: 'stats', format: 'prometheus' });
  t.deepEqual(parseRequest('{"cmd":"flows"}'), { cmd: 'flows', offset: 0, limit: DEFAULT_FLOWS_PAGE });
  t.deepEqual(parseRequest('{"cmd":"flows","offset":5,"limit":7,"id":"x"}'), { cmd: 'flows', offset: 5, limit: 7, id: 'x' });
  t.deepEqual(parseRequest('{"cmd":"ports","id":3}'), { cmd: 'ports', id: 3 });
  t.deepEqual(parseRequest('{"cmd":"add-port","option":"-t","spec":"10005:10005"}'),
    { cmd: 'add-port', option: '-t', spec: '10005:10005' });
  t.deepEqual(parseRequest('{"cmd":"remove-port","option":"-U","spec":"53"}'), { cmd: 'remove-port', option: '-U', spec: '53' });
  t.deepEqual(parseRequest('{"cmd":"quit"}'), { cmd: 'quit' });
});

test('bad requests name what is wrong, and keep the id', (t) => {
  const cases: [string, RegExp][] = [
    ['{"cmd":', /^malformed JSON/],
    ['[1,2]', /JSON object, not an array/],
    ['"stats"', /JSON object, not "stats"/],
    ['null', /JSON object, not null/],
    ['{}', /missing "cmd"/],
    ['{"cmd":7}', /"cmd" must be a string, not 7/],
    ['{"cmd":"reboot"}', /unknown command "reboot" \(one of stats, flows/],
    ['{"cmd":"stats","format":"xml"}', /"format" must be "json" or "prometheus", not "xml"/],
    ['{"cmd":"stats","verbose":true}', /unknown field "verbose" for stats/],
    ['{"cmd":"flows","limit":0}', /"limit" must be an integer from 1 to 1000, not 0/],
    [`{"cmd":"flows","limit":${MAX_FLOWS_PAGE + 1}}`, /not 1001/],
    ['{"cmd":"flows","offset":-1}', /"offset" must be an integer >= 0, not -1/],
    ['{"cmd":"flows","offset":1.5}', /not 1.5/],
    ['{"cmd":"add-port","spec":"1"}', /missing "option"/],
    ['{"cmd":"add-port","option":"-x","spec":"1"}', /"option" must be one of -t, -u, -T, -U, not "-x"/],
    ['{"cmd":"add-port","option":"-t"}', /missing "spec"/],
    ['{"cmd":"add-port","option":"-t","spec":80}', /"spec" must be a string, not 80/],
    ['{"cmd":"add-port","option":"-t","spec":""}', /"spec" is empty/],
    ['{"cmd":"quit","now":1}', /unknown field "now" for quit/],
    ['{"cmd":"stats","id":{}}', /"id" must be a string or a number, not object/],
  ];
  for (const [line, re] of cases) {
    const r = parseRequest(line);
    t.true(isBad(r), line);
    if (isBad(r)) t.regex(r.error, re, line);
  }
  t.deepEqual(parseRequest('{"cmd":"nope","id":9}'), { error: 'unknown command "nope" (one of stats, flows, ports, add-port, remove-port, quit)', id: 9 });
});

/** An arbitrary well-formed request. */
const request = fc.oneof(
  fc.record({ cmd: fc.constant('stats'), format: fc.constantFrom('json', 'prometheus') }),
  fc.record({ cmd: fc.constant('flows'), offset: fc.nat(), limit: fc.integer({ min: 1, max: MAX_FLOWS_PAGE }) }),
  fc.record({ cmd: fc.constantFrom('ports', 'quit') }),
  fc.record({
    cmd: fc.constantFrom('add-port', 'remove-port'), option: fc.constantFrom('-t', '-u', '-T', '-U'),
    spec: fc.string({ minLength: 1 }),
  }),
).chain((r) => fc.option(fc.oneof(fc.string(), fc.integer()), { nil: undefined })
  .map((id) => (id === undefined ? r : { ...r, id })));

testProp('a well-formed request parses to itself', [request], (t, r) => {
  t.deepEqual(parseRequest(JSON.stringify(r)), r);
});

testProp('any text is a request or an error value, never a throw', [fc.oneof(fc.string(), fc.json(),
  fc.dictionary(fc.constantFrom('cmd', 'id', 'format', 'offset', 'limit', 'option', 'spec', 'x'),
    fc.oneof(fc.constantFrom(...VERBS, '-t', '-T', 'json', 'prometheus'), fc.jsonValue())).map((o) => JSON.stringify(o)))],
(t, line) => {
  const r = parseRequest(line);
  if (isBad(r)) t.true(typeof r.error === 'string' && r.error.length > 0);
  else t.true((VERBS as readonly string[]).includes(r.cmd));
});

test('answers carry ok, data and the id', (t) => {
  t.is(answerLine(undefined, { ok: true }), '{"ok":true}\n');
  t.is(answerLine('a', { ok: true, n: 1 } as { ok: true }), '{"ok":true,"n":1,"id":"a"}\n');
  t.is(errorLine('bad', 2), '{"ok":false,"error":"bad","id":2}\n');
});

/** Lines of text cut into chunks at the given points. */
function splitAll(text: Buffer, cuts: number[], max: number): LineEvent[] {
  const s = new LineSplitter(max);
  const out: LineEvent[] = [];
  let at = 0;
  for (const c of [...cuts.map((x) => x % (text.length + 1))].sort((a, b) => a - b).concat(text.length)) {
    out.push(...s.push(text.subarray(at, c)));
    at = c;
  }
  return out;
}

testProp('line splitting does not depend on how the bytes are chunked', [
  fc.array(fc.string({ maxLength: 40 }).map((x) => x.replace(/\n/g, '')), { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 8 }),
], (t, lines, cuts) => {
  const text = Buffer.from(lines.map((l) => l + '\n').join(''));
  const expect = lines.map((l) => (Buffer.byteLength(l) > 30 ? { tooLong: -1 } : { line: l.replace(/\r$/, '') }));
  const got = splitAll(text, cuts, 30).map((e) => ('tooLong' in e ? { tooLong: -1 } : e));
  t.deepEqual(got, expect);
});

test('an over-long line is reported once, skipped to its end, and memory stays bounded', (t) => {
  const s = new LineSplitter(100);
  const evs: LineEvent[] = [];
  evs.push(...s.push(Buffer.from('{"cmd":"ports"}\r\n')));
  for (let i = 0; i < 1000; i++) {
    evs.push(...s.push(Buffer.alloc(1000, 0x61)));
    t.true(s.pending <= 100);
  }
  evs.push(...s.push(Buffer.from('aaa\n{"cmd":"quit"}\n')));
  t.is(evs.length, 3);
  t.deepEqual(evs[0], { line: '{"cmd":"ports"}' });
  t.true('tooLong' in evs[1]);
  t.deepEqual(evs[2], { line: '{"cmd":"quit"}' });
});

/** Counters of a stage with value i+1 for counter i. */
function stage(name: string, role: Role): StageCounters {
  const values: Record<string, number> = {};
  COUNTERS[role].forEach((c, i) => { values[c] = i + 1; });
  return { name, role, values };
}

test('stats snapshot sums flows and traffic per protocol and path, and lists every drop reason', (t) => {
  const stages = [stage('tap-rx', 'tapRx'), stage('tap-tx', 'tapTx'), stage('tcp0', 'tcp'), stage('udp', 'udp')];
  const s = snapshot(stages, [{ name: 'tcp0→tap-tx', capacity: 64, used: 8, records: 3, drops: 1 }], 'pasta', 1500);
  const tcp = stages[2].values;
  const udp = stages[3].values;
  t.deepEqual(s.flows, {
    tcp: { tap: tcp.active, splice: tcp.spliceActive },
    udp: { tap: udp.activeTap, splice: udp.activeSplice }, icmp: { tap: udp.activePing },
  });
  t.is(s.traffic.tcp.tap.bytesToGuest, tcp.bytesToTap);
  t.deepEqual(s.traffic.tcp.splice, { bytesFromClient: tcp.spliceBytesFromClient, bytesToClient: tcp.spliceBytesToClient });
  t.is(s.traffic.udp.tap.datagramsFromGuest, udp.toSock);
  t.deepEqual(s.traffic.icmp.tap, { requestsFromGuest: udp.pingRequests, repliesToGuest: udp.pingReplies });
  t.is(s.drops.tcp0.dropNoFlow, tcp.dropNoFlow);
  t.is(Object.keys(s.drops.udp).length, 20);
  t.is(s.workers['tap-tx'].frames, 1);
});

test('Prometheus text: one family per counter, HELP and TYPE before samples, valid names and escaped labels', (t) => {
  const stages = [stage('tcp0', 'tcp'), stage('tcp"1\\', 'tcp'), stage('udp', 'udp')];
  const s = snapshot(stages, [{ name: 'a→b', capacity: 64, used: 8, records: 3, drops: 1 }], 'passt', 2000);
  const text = prometheusText(stages, s);
  t.true(text.endsWith('\n'));
  const seen = new Set<string>();
  let family = '';
  for (const line of text.trimEnd().split('\n')) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$/.exec(line);
    if (help) {
      t.false(seen.has(help[1]), `family ${help[1]} once`);
      seen.add(help[1]);
      family = help[1];
      continue;
    }
    if (type) {
      t.is(type[1], family);
      if (type[2] === 'counter') t.regex(family, /_total$/);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+]+)$/.exec(line);
    t.truthy(m, line);
    if (m) t.is(m[1], family, line);
  }
  t.true(text.includes('passt_ts_tcp_bytes_to_tap_total{worker="tcp0"} 9'));
  t.true(text.includes('passt_ts_tcp_active{worker="tcp\\"1\\\\"} 5'));
  t.true(text.includes('passt_ts_flows{proto="udp",path="splice"}'));
  t.true(text.includes('passt_ts_ring_used_bytes{ring="a→b"} 8'));
  t.is(snakeCase('bytesToTap'), 'bytes_to_tap');
  t.is(snakeCase('badIpv4'), 'bad_ipv4');
  t.is(labelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

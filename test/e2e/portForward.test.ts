/**
 * Port forwarding end to end (SPEC.md §8): every form of the -t/-T SPEC
 * grammar against real listeners over the spliced path (an A:B mapping
 * reaches port B, exclusions are not forwarded, bind address and interface
 * restrict the listener), malformed specs rejected with the offending part
 * named, and pasta's `auto` mode (§8.4): listeners appearing and
 * disappearing on either side, UDP mirroring TCP ports, no forwarding loops.
 * Ports 12400–12599 (this file's share of the splice helper's range).
 */
import anyTest, { TestFn } from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PASTA, inTestNs, NOT_IN_NS, run, waitFor, sleep } from '../helpers/env';
import { startPasta, PastaNs, hostTcpListening, hostUdpBound } from '../helpers/pastaNs';
import { probe } from '../helpers/tcpTool';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('end-to-end port forwarding tests', (t) => t.pass(NOT_IN_NS));

/** "P <port> <reply>" lines of a probe run inside the namespace, by port. */
async function nsProbe(ns: PastaNs, addr: string, ports: number[], retryMs = 0): Promise<Record<number, string>> {
  const p = await ns.tool(['probe', addr, ports.join(','), String(retryMs)], false);
  await p.exited;
  const out: Record<number, string> = {};
  for (const l of p.lines) {
    const m = /^P (\d+) (.*)$/.exec(l);
    if (m) out[Number(m[1])] = m[2];
  }
  return out;
}

/** Host servers answering "PORT <port>" on each port of `ports` at addr. */
async function hostWhoami(addr: string, ports: number[]): Promise<net.Server[]> {
  return Promise.all(ports.map((port) => new Promise<net.Server>((resolve, reject) => {
    const srv = net.createServer((c) => {
      c.on('error', () => {});
      c.end(`PORT ${c.localPort}`);
    });
    srv.once('error', reject);
    srv.listen({ host: addr, port }, () => resolve(srv));
  })));
}

/** TCP sockets listening on `port` (count, both families) in a /proc/net/tcp* text pair. */
function listenCount(tcp: string, tcp6: string, port: number): number {
  let n = 0;
  for (const l of `${tcp}\n${tcp6}`.split('\n')) {
    const f = l.trim().split(/\s+/);
    if (f.length > 3 && f[3] === '0A' && parseInt(f[1].split(':')[1], 16) === port) n++;
  }
  return n;
}

async function nsListening(ns: PastaNs): Promise<{ tcp: string; tcp6: string }> {
  return { tcp: await ns.nsExec(['cat', '/proc/net/tcp']), tcp6: await ns.nsExec(['cat', '/proc/net/tcp6']) };
}

function hostListenCount(port: number): number {
  return listenCount(fs.readFileSync('/proc/net/tcp', 'utf8'), fs.readFileSync('/proc/net/tcp6', 'utf8'), port);
}

/** Every -t form against listeners in the namespace; `extra`: more pasta options. */
async function tForms(t: import('ava').ExecutionContext, extra: string[]): Promise<void> {
  const ns = await startPasta([...extra,
    '-t', '12400', '-t', '12401-12402', '-t', '12403:12423,12404-12405:12424-12425', '-t', '12406-12408,~12407',
    '-t', '127.0.0.1/12409', '-t', '::1/12410', '-t', '[::1]/12411', '-t', '%lo/12412', '-t', '127.0.0.1%lo/12416',
    '-T', 'none', '-u', 'none', '-U', 'none',
  ]);
  try {
    // the namespace listens on every target port (and not on the mapped-from ones)
    const targets = [12400, 12401, 12402, 12423, 12424, 12425, 12406, 12407, 12408, 12409, 12410, 12411, 12412, 12416];
    await ns.tool(['whoami', '::', targets.join(',')]);
    const expect: [string, number, string][] = [
      ['127.0.0.1', 12400, 'PORT 12400'], ['::1', 12400, 'PORT 12400'],
      ['127.0.0.1', 12401, 'PORT 12401'], ['127.0.0.1', 12402, 'PORT 12402'],
      ['127.0.0.1', 12403, 'PORT 12423'], ['::1', 12404, 'PORT 12424'], ['127.0.0.1', 12405, 'PORT 12425'],
      ['127.0.0.1', 12406, 'PORT 12406'], ['127.0.0.1', 12407, 'ERR ECONNREFUSED'], ['127.0.0.1', 12408, 'PORT 12408'],
      ['127.0.0.1', 12409, 'PORT 12409'], ['::1', 12409, 'ERR ECONNREFUSED'],
      ['::1', 12410, 'PORT 12410'], ['127.0.0.1', 12410, 'ERR ECONNREFUSED'],
      ['::1', 12411, 'PORT 12411'], ['127.0.0.1', 12411, 'ERR ECONNREFUSED'],
      ['127.0.0.1', 12412, 'PORT 12412'], ['::1', 12412, 'PORT 12412'],
      ['127.0.0.1', 12416, 'PORT 12416'], ['::1', 12416, 'ERR ECONNREFUSED'],
    ];
    for (const [addr, port, want] of expect) t.is(await probe(addr, port), want, `${addr} port ${port}`);
  } finally {
    await ns.stop();
  }
}

e2e('-t forms (spliced): port, range, A:B, ranges mapped, exclusion, address, [address], %interface, address%interface, combined',
  (t) => tForms(t, []));

// The same through the tap (--no-splice).
e2e('-t forms through the tap (--no-splice)', (t) => tForms(t, ['--no-splice']));

e2e('-T forms: port, A:B, ranges mapped, exclusion, combined', async (t) => {
  const servers = await hostWhoami('127.0.0.1', [12430, 12441, 12442, 12443, 12434, 12435, 12436]);
  const ns = await startPasta(['-T', '12430', '-T', '12431:12441,12432-12433:12442-12443', '-T', '12434-12436,~12435',
    '-t', 'none', '-u', 'none', '-U', 'none']);
  try {
    const r = await nsProbe(ns, '127.0.0.1', [12430, 12431, 12432, 12433, 12434, 12435, 12436, 12441]);
    t.deepEqual(r, {
      12430: 'PORT 12430', 12431: 'PORT 12441', 12432: 'PORT 12442', 12433: 'PORT 12443',
      12434: 'PORT 12434', 12435: 'ERR ECONNREFUSED', 12436: 'PORT 12436', 12441: 'ERR ECONNREFUSED',
    });
  } finally {
    await ns.stop();
    for (const s of servers) s.close();
  }
});

e2e('malformed or conflicting specs are rejected, naming the offending part', async (t) => {
  const cases: [string[], RegExp][] = [
    [['-t', '80-70'], /Invalid port specifier 80-70: first port 80 is above last port 70/],
    [['-t', '1:2-3'], /Invalid port specifier 1:2-3: '1' has 1 port but '2-3' has 2/],
    [['-t', '1,~2,~2'], /Invalid port specifier 1,~2,~2: overlapping excluded ranges/],
    [['-t', '70000'], /Invalid port specifier 70000: port 70000 is above 65535/],
    [['-t', '12a'], /Invalid port specifier 12a: unexpected 'a' after '12'/],
    [['-t', '1,,2'], /Invalid port specifier 1,,2: empty item/],
    [['-t', '~1:2'], /Invalid port specifier ~1:2: a mapping is not allowed in an exclusion/],
    [['-t', 'x'], /Invalid port specifier x: expected a port number, found 'x'/],
    [['-t', '1-'], /Invalid port specifier 1-: expected a port number after '1-', found nothing/],
    [['-t', 'localhost/80'], /Invalid port specifier localhost\/80: bad bind address 'localhost'/],
    [['-t', '%/80'], /empty interface name/],
    [['-t', '%averyveryverylongname/80'], /interface name 'averyveryverylongname' is longer than 15 bytes/],
    [['-T', '127.0.0.1/80'], /only accepted for -t and -u, not -T/],
    [['-t', 'all'], /'all' port forwarding is only allowed for passt/],
    [['-t', '80', '-t', 'none'], /Port forwarding mode 'none' conflicts with previous mode/],
    [['-t', 'auto', '-t', '80'], /Specific ports cannot be specified together with all\/none\/auto/],
    [['-U', '1-2:3'], /Invalid port specifier 1-2:3/],
  ];
  for (const [args, re] of cases) {
    const r = await run(PASTA, [...args, '--', 'true'], { timeoutMs: 20000 });
    t.is(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, re, args.join(' '));
  }
});

e2e('auto (default): a namespace listener becomes reachable from the host, UDP mirrors it, and it goes away', async (t) => {
  const ns = await startPasta([]);
  try {
    t.false(hostTcpListening().has(12450));
    const srv = await ns.tool(['whoami', '::', '12450']);
    const reached = await waitFor(async () => (await probe('127.0.0.1', 12450)) === 'PORT 12450', 5000, 100);
    t.truthy(reached, 'reachable from the host loopback within the scan interval');
    t.is(await probe('::1', 12450), 'PORT 12450');
    t.true(hostUdpBound().has(12450), '-u auto forwards the port of a listening TCP socket');
    srv.kill();
    await srv.exited;
    const gone = await waitFor(() => !hostTcpListening().has(12450), 5000, 100);
    t.truthy(gone, 'no longer forwarded after it closed');
    t.is(await probe('127.0.0.1', 12450), 'ERR ECONNREFUSED');
  } finally {
    await ns.stop();
  }
});

e2e('auto: ports listening at start are forwarded before readiness; host listeners come and go in the namespace', async (t) => {
  const early = await hostWhoami('127.0.0.1', [12454]);
  const ns = await startPasta([]);
  try {
    t.deepEqual(await nsProbe(ns, '127.0.0.1', [12454]), { 12454: 'PORT 12454' }, 'forwarded at readiness');
    const [late] = await hostWhoami('::1', [12451]);
    t.deepEqual(await nsProbe(ns, '::1', [12451], 5000), { 12451: 'PORT 12451' }, 'a later host listener is picked up');
    late.close();
    const gone = await waitFor(async () => {
      const l = await nsListening(ns);
      return listenCount(l.tcp, l.tcp6, 12451) === 0;
    }, 5000, 200);
    t.truthy(gone, 'the namespace listener goes away with the host one');
  } finally {
    await ns.stop();
    for (const s of early) s.close();
  }
});

e2e('auto: no forwarding loops, in either direction, as listeners appear and disappear', async (t) => {
  const ns = await startPasta([]);
  try {
    // host → namespace (-T auto): the namespace gets our listener; -t auto must not send it back
    const [h] = await hostWhoami('127.0.0.1', [12452]);
    const inNs = await waitFor(async () => {
      const l = await nsListening(ns);
      return listenCount(l.tcp, l.tcp6, 12452) > 0;
    }, 5000, 200);
    t.truthy(inNs);
    await sleep(2500); // two more scans
    t.is(hostListenCount(12452), 1, 'only the host\'s own listener on the host');
    h.close();
    const cleared = await waitFor(async () => {
      const l = await nsListening(ns);
      return listenCount(l.tcp, l.tcp6, 12452) === 0;
    }, 5000, 200);
    t.truthy(cleared);
    await sleep(2500);
    t.is(hostListenCount(12452), 0, 'the namespace\'s leftover was not turned into a host listener');

    // namespace → host (-t auto): the host gets our listener; -T auto must not send it back
    const srv = await ns.tool(['whoami', '::', '12453']);
    t.truthy(await waitFor(() => hostListenCount(12453) > 0, 5000, 100));
    await sleep(2500);
    const l = await nsListening(ns);
    t.is(listenCount(l.tcp, l.tcp6, 12453), 1, 'only the namespace\'s own listener in the namespace');
    srv.kill();
    await srv.exited;
    t.truthy(await waitFor(() => hostListenCount(12453) === 0, 5000, 100));
    await sleep(2500);
    const l2 = await nsListening(ns);
    t.is(listenCount(l2.tcp, l2.tcp6, 12453), 0);
  } finally {
    await ns.stop();
  }
});

e2e('-t with only exclusions forwards every non-ephemeral port but those (own namespace, --host-lo-to-ns-lo)', async (t) => {
  // Binding every non-ephemeral port would take ports from concurrent tests:
  // run in a namespace of its own, with a smaller non-ephemeral range.
  const tool = path.join(__dirname, '..', 'helpers', 'tcpTool.js');
  const node = process.execPath;
  const script = [
    'ip link set lo up',
    'sysctl -q -w net.ipv4.ip_local_port_range="15000 60999"',
    `${PASTA} --config-net --host-lo-to-ns-lo -t '~12460' -T none -u none -U none -- ` +
      `${node} ${tool} whoami :: 12459,12460,12461,14999,15000,1023 >/dev/null & p=$!`,
    `${node} ${tool} probe 127.0.0.1 12459 20000`,
    `${node} ${tool} probe 127.0.0.1 12460,12461,14999,15000,1023`,
    'kill $p; wait $p',
  ].join('\n');
  const r = await run('unshare', ['-n', 'sh', '-c', script], { timeoutMs: 60000 });
  const got: Record<string, string> = {};
  for (const m of r.stdout.matchAll(/^P (\d+) (.*)$/gm)) got[m[1]] = m[2];
  t.deepEqual(got, {
    12459: 'PORT 12459', 12460: 'ERR ECONNREFUSED', 12461: 'PORT 12461', 14999: 'PORT 14999',
    15000: 'ERR ECONNREFUSED', 1023: 'ERR ECONNREFUSED',
  }, r.stderr);
});

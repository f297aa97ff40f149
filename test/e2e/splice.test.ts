/**
 * pasta's spliced TCP path end to end (SPEC.md §4.14, §2.8): host loopback →
 * namespace (-t) and namespace loopback → host (-T), socket to socket through
 * pipes. Byte-exact 32 MiB transfers in both directions and both families,
 * half-close both ways, resets from either side, 200 concurrent connections,
 * nothing lost when the command exits right after writing, --no-splice.
 * Ports 12000–12399 (this file's share of the splice helper's range).
 */
import anyTest, { TestFn } from 'ava';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { PASTA, inTestNs, NOT_IN_NS, run, tmpPath, sleep } from '../helpers/env';
import { startPasta, connect, hostServer } from '../helpers/pastaNs';
import { sendRandom, receiveAll, manyEcho, Digest } from '../helpers/tcpTool';

const test = anyTest as TestFn;
const e2e = inTestNs() ? test.serial : test.skip;
if (!inTestNs()) test('end-to-end splice tests', (t) => t.pass(NOT_IN_NS));

const BIG = 32 << 20;
const QUIET = ['-u', 'none', '-U', 'none'];

function digestLine(l: string | null): Digest | null {
  const m = l ? /^(?:RECV|SENT) (\d+) ([0-9a-f]{64})$/.exec(l) : null;
  return m ? { bytes: Number(m[1]), sha: m[2] } : null;
}

e2e('host loopback → namespace: 32 MiB byte-exact over IPv4 and IPv6', async (t) => {
  const ns = await startPasta(['-t', '12010', '-T', 'none', ...QUIET]);
  try {
    const sink = await ns.tool(['sink', '::', '12010', '2']);
    for (const host of ['127.0.0.1', '::1']) {
      const s = await connect(host, 12010);
      const sent = await sendRandom(s, BIG);
      const got = digestLine(await sink.line(new RegExp(`^RECV ${BIG} ${sent.sha}$`), 30000));
      t.deepEqual(got, sent, `over ${host}: ${sink.lines.join(' | ')}`);
      s.destroy();
    }
  } finally {
    await ns.stop();
  }
});

e2e('namespace loopback → host: 32 MiB byte-exact over IPv4 and IPv6, source address kept', async (t) => {
  const ns = await startPasta(['-T', '12012', '-t', 'none', ...QUIET]);
  try {
    for (const [dst, src, seen] of [['127.0.0.1', '127.0.0.2', '127.0.0.2'], ['::1', '', '::1']]) {
      const srv = await hostServer(dst, 12012);
      const args = ['source', dst, '12012', String(BIG), ...(src ? [src] : [])];
      const cli = await ns.tool(args, false);
      const conn = await srv.conn;
      t.is(conn.remoteAddress?.replace(/^::ffff:/, ''), seen, 'host-side source = the namespace client\'s loopback address');
      const got = await receiveAll(conn);
      conn.end();
      const sent = digestLine(await cli.line(/^SENT /, 30000));
      t.deepEqual(got, sent, `to ${dst}`);
      t.is(got.bytes, BIG);
      srv.server.close();
    }
  } finally {
    await ns.stop();
  }
});

e2e('half-close both ways, -t and -T', async (t) => {
  const ns = await startPasta(['-t', '12014,12015', '-T', '12016', ...QUIET]);
  try {
    // client half-closes first: the server answers after seeing EOF
    await ns.tool(['replyAfterEof', '::', '12014']);
    {
      const s = await connect('127.0.0.1', 12014);
      const [sent, reply] = await Promise.all([sendRandom(s, 1 << 20), receiveText(s)]);
      t.is(reply, `GOT ${sent.bytes} ${sent.sha}`, 'FIN host → namespace, data namespace → host after it');
    }
    // server half-closes first: the client keeps sending after EOF
    const fin = await ns.tool(['finFirst', '::', '12015']);
    {
      const s = await connect('::1', 12015);
      const hello = await receiveText(s);
      t.is(hello, 'HELLO', 'FIN namespace → host arrives after the data');
      const sent = await sendRandom(s, 1 << 20);
      const got = digestLine(await fin.line(/^RECV /, 10000));
      t.deepEqual(got, sent, 'data host → namespace after the namespace side half-closed');
      s.destroy();
    }
    // -T: namespace client half-closes, host server answers after EOF
    const srv = await hostServer('127.0.0.1', 12016);
    const cli = await ns.tool(['source', '127.0.0.1', '12016', String(1 << 20)], false);
    const conn = await srv.conn;
    const got = await receiveAll(conn);
    conn.end(`GOT ${got.bytes} ${got.sha}`);
    const sent = digestLine(await cli.line(/^SENT /));
    const reply = await cli.line(/^REPLY /);
    t.is(reply, `REPLY GOT ${sent?.bytes} ${sent?.sha}`);
    srv.server.close();
  } finally {
    await ns.stop();
  }
});

/** Everything s receives until its end, as text. */
function receiveText(s: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    s.on('data', (b: Buffer) => { text += b.toString('latin1'); });
    s.once('end', () => resolve(text));
    s.once('error', reject);
  });
}

/** Resolves with the error code s fails with, or 'closed' if it just ends/closes. */
function outcome(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.once('close', () => resolve('closed'));
    s.resume();
  });
}

e2e('resets cross the splice: either side resetting resets the other', async (t) => {
  const ns = await startPasta(['-t', '12018,12019,12021', '-T', '12020', ...QUIET]);
  try {
    // host client resets → the namespace server sees a reset
    const sink = await ns.tool(['sink', '::', '12018']);
    const s = await connect('127.0.0.1', 12018);
    s.write(Buffer.alloc(1000, 1));
    await sleep(200);
    s.resetAndDestroy();
    t.truthy(await sink.line(/^ERROR .*ECONNRESET/, 5000), `namespace side: ${sink.lines.join(' | ')}`);

    // namespace server resets → the host client sees a reset
    await ns.tool(['resetOnData', '::', '12019']);
    const c = await connect('::1', 12019);
    const o = outcome(c);
    c.write('x');
    t.is(await o, 'ECONNRESET');

    // -T: host server resets → the namespace client sees a reset
    const srv = await hostServer('127.0.0.1', 12020);
    const cli = await ns.tool(['source', '127.0.0.1', '12020', String(64 << 20)], false);
    const conn = await srv.conn;
    conn.once('data', () => conn.resetAndDestroy());
    conn.on('error', () => {});
    t.truthy(await cli.line(/^ERROR .*(ECONNRESET|EPIPE)/, 10000), `namespace client: ${cli.lines.join(' | ')}`);
    srv.server.close();

    // nothing listening on the target: the client's connection is refused by a reset
    // (which may come before Node saw the connect complete)
    t.is(await outcome(net.connect({ host: '127.0.0.1', port: 12021 })), 'ECONNRESET');
  } finally {
    await ns.stop();
  }
});

e2e('200 concurrent spliced connections each way', async (t) => {
  const ns = await startPasta(['-t', '12022', '-T', '12023', ...QUIET]);
  try {
    await ns.tool(['echo', '::', '12022']);
    const r = await manyEcho('127.0.0.1', 12022, 200, 256 << 10);
    t.deepEqual(r, { ok: 200, errors: [] }, 'host → namespace');

    const echo = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => s.destroy());
      s.pipe(s);
    });
    await new Promise<void>((res) => echo.listen({ host: '::1', port: 12023, backlog: 1024 }, res));
    const many = await ns.tool(['many', '::1', '12023', '200', String(256 << 10)], false);
    t.is(await many.line(/^(OK|FAIL)/, 60000), 'OK 200', 'namespace → host');
    echo.close();
  } finally {
    await ns.stop();
  }
});

/** A 32 MiB random file and its digest. */
let bigFile: { path: string; digest: Digest } | null = null;
function big(): { path: string; digest: Digest } {
  if (bigFile) return bigFile;
  const p = tmpPath('big.bin');
  const data = crypto.randomBytes(BIG);
  fs.writeFileSync(p, data);
  fs.chmodSync(p, 0o644);
  bigFile = { path: p, digest: { bytes: BIG, sha: crypto.createHash('sha256').update(data).digest('hex') } };
  return bigFile;
}

e2e('nothing lost at exit: the command writes 32 MiB into a -T connection and exits', async (t) => {
  const f = big();
  for (const [port, status] of [[12030, 0], [12031, 3]]) {
    const srv = await hostServer('127.0.0.1', port);
    const got = srv.conn.then((c) => receiveAll(c));
    const cmd = `socat -u OPEN:${f.path} TCP4:127.0.0.1:${port}; exit ${status}`;
    const r = await run(PASTA, ['--config-net', '-T', String(port), '-t', 'none', ...QUIET, '--', 'sh', '-c', cmd], { timeoutMs: 60000 });
    t.is(r.code, status, r.stderr);
    t.deepEqual(await got, f.digest, `every byte reached the host (command exit status ${status})`);
    srv.server.close();
  }
});

e2e('nothing lost at exit: the command serves 32 MiB on a -t port and exits', async (t) => {
  const f = big();
  const port = 12032;
  const pasta = run(PASTA, ['--config-net', '-t', String(port), '-T', 'none', ...QUIET, '--',
    'socat', '-u', `OPEN:${f.path}`, `TCP-LISTEN:${port},reuseaddr`], { timeoutMs: 60000 });
  // until the command listens, pasta resets our connection: try again
  let got: Digest | null = null;
  for (let i = 0; i < 200 && !got; i++) {
    const d = await connect('127.0.0.1', port).then((s) => receiveAll(s)).catch(() => null);
    if (d && d.bytes > 0) got = d;
    else await sleep(50);
  }
  const r = await pasta;
  t.is(r.code, 0, r.stderr);
  t.deepEqual(got, f.digest, 'every byte reached the host');
});

e2e('--no-splice: host loopback connections to -t ports leave the splice path; -T still splices', async (t) => {
  const ns = await startPasta(['-d', '--no-splice', '-t', '12034', '-T', '12035', ...QUIET]);
  try {
    await ns.tool(['echo', '::', '12034']);
    const s = await connect('127.0.0.1', 12034).catch(() => null);
    if (s) {
      s.write('x');
      await Promise.race([outcome(s), sleep(1000)]);
      s.destroy();
    }
    const srv = await hostServer('127.0.0.1', 12035);
    const cli = await ns.tool(['source', '127.0.0.1', '12035', '1000'], false);
    const got = await receiveAll(await srv.conn);
    t.deepEqual(got, digestLine(await cli.line(/^SENT /)));
    srv.server.close();
    await sleep(100);
    const lines = ns.stderr().split('\n').filter((l) => l.includes('(tcp splice)') && l.includes('→'));
    t.true(lines.length >= 1 && lines.every((l) => l.includes('→ host')), lines.join('\n'));
  } finally {
    await ns.stop();
  }
});

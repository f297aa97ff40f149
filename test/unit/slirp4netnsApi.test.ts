/**
 * slirp4netns-ts's API (api.ts): slirp4netns 1.2's answers, byte for byte
 * (recorded from the real slirp4netns 1.2.0 over its --api-socket), with
 * a recording backend; as the input is untrusted, properties over
 * arbitrary bytes and near-miss JSON; and the socket's framing (a UNIX
 * socket in a temporary directory, no network).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApiServer } from '../../src/main/slirp4netns/apiServer';
import { HostfwdApi, Backend, Proto, REQUEST_MAX, TOO_LARGE } from '../../src/main/slirp4netns/api';
import { testProp, fc } from '../_lib/fcAva';

interface Bound { proto: Proto; hostAddr: string; hostPort: number; guestPort: number; handle: number }

/** A backend that records binds and can be told to refuse a port. */
function recorder(refuse: number[] = []) {
  const bound: Bound[] = [];
  let next = 1;
  const backend: Backend = {
    add(proto, hostAddr, hostPort, guestPort) {
      if (refuse.includes(hostPort)) return { error: 'bind: Address in use' };
      const b = { proto, hostAddr, hostPort, guestPort, handle: next++ };
      bound.push(b);
      return { handle: b.handle };
    },
    remove(handle) {
      const i = bound.findIndex((b) => b.handle === handle);
      if (i < 0) throw new Error('removing an unknown handle');
      bound.splice(i, 1);
    },
  };
  return { bound, backend };
}

const add = (args: object) => JSON.stringify({ execute: 'add_hostfwd', arguments: args });

test("the real slirp4netns 1.2.0's answers to its own test suite's requests", (t) => {
  const { backend, bound } = recorder();
  const api = new HostfwdApi('10.0.2.100', backend);
  t.is(api.handle('badjson\n'), '{"error":{"desc":"bad request: cannot parse JSON"}}');
  t.is(api.handle('{"unexpectedjson": 42}\n'), '{"error":{"desc":"bad request: no execute found"}}');
  t.is(api.handle('[1,2]'), '{"error":{"desc":"bad request: json_object() failed"}}');
  t.is(api.handle('{"execute": 5}'), '{"error":{"desc":"bad request: no execute found"}}');
  t.is(api.handle('{"execute": "bad"}\n'), '{"error":{"desc":"bad request: unknown execute"}}');
  t.is(api.handle('{"execute": "add_hostfwd", "arguments":{"proto": "bad"}}\n'),
    '{"error":{"desc":"bad request: add_hostfwd: bad arguments.proto"}}');
  t.is(api.handle('{"execute": "add_hostfwd", "arguments":{"proto": "tcp","host_port":8080,"guest_port":80}}\n'),
    '{"return":{"id":1}}');
  t.is(api.handle(add({ proto: 'tcp4', host_port: 8081, guest_port: 80 })),
    '{"error":{"desc":"bad request: add_hostfwd: bad arguments.proto"}}');
  t.is(api.handle(add({ proto: 'tcp', host_addr: '127.0.0.1', host_port: 8083, guest_addr: '10.0.2.100', guest_port: 80 })),
    '{"return":{"id":2}}');
  t.is(api.handle(add({ proto: 'tcp', host_port: 8080, guest_port: 80 })),
    '{"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}}', 'the same host port twice');
  t.is(api.handle(add({ proto: 'tcp', host_port: '8084', guest_port: 80 })),
    '{"error":{"desc":"bad request: add_hostfwd: bad arguments.host_port"}}');
  t.is(api.handle(add({ proto: 'tcp', host_port: 8085.7, guest_port: 80 })), '{"return":{"id":3}}', 'truncated like (int)');
  t.is(api.handle(add({ proto: 'tcp', host_port: 8086, guest_port: 80, host_addr: '::1' })),
    '{"error":{"desc":"bad request: add_hostfwd: bad arguments.host_addr"}}');
  t.is(api.handle(add({ proto: 'tcp', host_port: 8087, guest_port: 80, host_addr: '1.2.3' })),
    '{"error":{"desc":"bad request: add_hostfwd: bad arguments.host_addr"}}');
  t.is(api.handle('{"execute": "list_hostfwd"}\n'),
    '{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80},' +
    '{"id":2,"proto":"tcp","host_addr":"127.0.0.1","host_port":8083,"guest_addr":"10.0.2.100","guest_port":80},' +
    '{"id":3,"proto":"tcp","host_addr":"0.0.0.0","host_port":8085,"guest_addr":"10.0.2.100","guest_port":80}]}');
  t.is(api.handle('{"execute": "remove_hostfwd", "arguments":{"id": 1}}'), '{"return":{}}');
  t.is(api.handle('{"execute": "remove_hostfwd", "arguments":{"id": 1}}'),
    '{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}');
  t.is(api.handle('{"execute": "remove_hostfwd"}'), '{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}');
  t.deepEqual(bound.map((b) => `${b.proto} ${b.hostAddr}:${b.hostPort}>${b.guestPort}`),
    ['tcp 127.0.0.1:8083>80', 'tcp 0.0.0.0:8085>80']);
  t.is(TOO_LARGE, '{"error":{"desc":"bad request: too large message"}}');
  t.is(REQUEST_MAX, 4096);
});

test("Podman's and rootlesskit's requests", (t) => {
  const { backend, bound } = recorder();
  const api = new HostfwdApi('10.0.2.100', backend);
  // podman libpod/networking_slirp4netns.go: Go's json.Marshal, "\n", guest_addr ""
  t.is(api.handle('{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"","guest_port":80}}\n'),
    '{"return":{"id":1}}');
  // rootlesskit pkg/port/slirp4netns: json.Encoder, guest_addr = the child's IP
  t.is(api.handle('{"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"127.0.0.1","host_port":5353,"guest_addr":"10.0.2.100","guest_port":53}}\n'),
    '{"return":{"id":2}}');
  t.is(api.handle('{"execute":"remove_hostfwd","arguments":{"id":2}}\n'), '{"return":{}}');
  t.deepEqual(bound.map((b) => b.hostPort), [8080]);
});

test('refusals: another guest address, a clash with 0.0.0.0, a port that cannot be bound, ports out of range', (t) => {
  const { backend, bound } = recorder([9999]);
  const logged: string[] = [];
  const api = new HostfwdApi('10.0.2.100', backend, (l) => logged.push(l));
  const failed = '{"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}}';
  t.is(api.handle(add({ proto: 'tcp', host_port: 8000, guest_port: 80, guest_addr: '10.0.2.55' })), failed);
  t.regex(logged[0], /only the namespace's address 10\.0\.2\.100/);
  t.is(api.handle(add({ proto: 'udp', host_port: 8000, guest_port: 80 })), '{"return":{"id":1}}');
  t.is(api.handle(add({ proto: 'udp', host_addr: '127.0.0.1', host_port: 8000, guest_port: 80 })), failed);
  t.is(api.handle(add({ proto: 'tcp', host_addr: '127.0.0.1', host_port: 8000, guest_port: 80 })), '{"return":{"id":2}}',
    'TCP and UDP ports are separate');
  t.is(api.handle(add({ proto: 'tcp', host_port: 9999, guest_port: 80 })), failed);
  t.regex(logged[logged.length - 1], /Address in use/);
  for (const p of [0, -1, 65536, 70000, 1e300])
    t.is(api.handle(add({ proto: 'tcp', host_port: p, guest_port: 80 })), '{"error":{"desc":"bad request: add_hostfwd: bad arguments.host_port"}}');
  t.is(api.handle(add({ proto: 'tcp', host_port: 1, guest_port: 65536 })), '{"error":{"desc":"bad request: add_hostfwd: bad arguments.guest_port"}}');
  t.is(api.handle(add({ proto: 'tcp', host_port: 1, guest_port: 1, guest_addr: '010.0.2.100' })),
    '{"error":{"desc":"bad request: add_hostfwd: bad arguments.guest_addr"}}');
  t.is(bound.length, 2);
  t.is(api.handle(add({ proto: 'tcp', host_port: 8001, guest_port: 80 })), '{"return":{"id":3}}', 'ids are not reused');
});

test('field types follow parson: wrong types are absent, __proto__ is just a key', (t) => {
  const { backend } = recorder();
  const api = new HostfwdApi('10.0.2.100', backend);
  t.is(api.handle('{"execute":"add_hostfwd","arguments":{"proto":["tcp"],"host_port":1,"guest_port":1}}'),
    '{"error":{"desc":"bad request: add_hostfwd: bad arguments.proto"}}');
  t.is(api.handle('{"execute":"add_hostfwd","arguments":"tcp"}'), '{"error":{"desc":"bad request: add_hostfwd: bad arguments.proto"}}');
  t.is(api.handle('{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":7,"host_port":1,"guest_port":2}}'),
    '{"return":{"id":1}}', 'a non-string host_addr is the default');
  t.is(api.handle('{"__proto__":{"execute":"list_hostfwd"}}'), '{"error":{"desc":"bad request: no execute found"}}');
  t.is(api.handle('{"execute":"list_hostfwd"}\u0000garbage'), api.handle('{"execute":"list_hostfwd"}'), 'a C string ends at NUL');
  t.is(api.handle('null'), '{"error":{"desc":"bad request: json_object() failed"}}');
  t.is(api.handle(''), '{"error":{"desc":"bad request: cannot parse JSON"}}');
});

/** JSON-ish text built from the API's own vocabulary, mostly almost right. */
const nearRequest = fc.oneof(
  fc.record({
    execute: fc.oneof(fc.constantFrom('add_hostfwd', 'list_hostfwd', 'remove_hostfwd', 'x', ''), fc.integer(), fc.constant(null)),
    arguments: fc.oneof(
      fc.record({
        proto: fc.oneof(fc.constantFrom('tcp', 'udp', 'tcp4', 'sctp', ''), fc.integer()),
        host_addr: fc.oneof(fc.constantFrom('0.0.0.0', '127.0.0.1', '::', '', '256.1.1.1', '1.2.3.4 '), fc.string({ maxLength: 8 })),
        host_port: fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.double(), fc.string({ maxLength: 4 })),
        guest_addr: fc.oneof(fc.constantFrom('10.0.2.100', '10.0.2.5', ''), fc.string({ maxLength: 8 })),
        guest_port: fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.boolean()),
        id: fc.integer({ min: -2, max: 30 }),
      }, { requiredKeys: [] }),
      fc.anything({ maxDepth: 2 }),
    ),
  }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  fc.anything({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'undefined'),
);

testProp('any request gets exactly one answer of the form {"return":…}, {"entries":…} or {"error":{"desc":"bad request: …"}}',
  [fc.array(fc.oneof(nearRequest, fc.string({ maxLength: 60 }), fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b))),
    { maxLength: 25 })],
  (t, requests) => {
    const { backend, bound } = recorder([7]);
    const api = new HostfwdApi('10.0.2.100', backend);
    for (const r of requests) {
      const answer = api.handle(r);
      const v = JSON.parse(answer) as Record<string, unknown>;
      const keys = Object.keys(v);
      t.is(keys.length, 1);
      if (keys[0] === 'error') t.regex(String((v.error as { desc: unknown }).desc), /^bad request: /);
      else t.true(keys[0] === 'return' || keys[0] === 'entries', answer);
    }
    // the table and what is bound stay in step; every forward is well formed
    const entries = api.list();
    t.is(entries.length, bound.length);
    for (const e of entries) {
      t.true(e.hostPort >= 1 && e.hostPort <= 65535 && e.guestPort >= 1 && e.guestPort <= 65535);
      t.is(e.guestAddr, '10.0.2.100');
      t.true(bound.some((b) => b.proto === e.proto && b.hostPort === e.hostPort && b.hostAddr === e.hostAddr));
    }
    t.is(new Set(entries.map((e) => e.id)).size, entries.length);
  }, { numRuns: 800 });

testProp('add then remove by the returned id restores the table',
  [fc.constantFrom<Proto>('tcp', 'udp'), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 })],
  (t, proto, hostPort, guestPort) => {
    const { backend, bound } = recorder();
    const api = new HostfwdApi('10.0.2.100', backend);
    const r = JSON.parse(api.handle(add({ proto, host_port: hostPort, guest_port: guestPort }))) as { return: { id: number } };
    t.deepEqual(JSON.parse(api.handle('{"execute":"list_hostfwd"}')), { entries: [
      { id: r.return.id, proto, host_addr: '0.0.0.0', host_port: hostPort, guest_addr: '10.0.2.100', guest_port: guestPort },
    ] });
    t.is(api.handle(JSON.stringify({ execute: 'remove_hostfwd', arguments: { id: r.return.id } })), '{"return":{}}');
    t.is(api.handle('{"execute":"list_hostfwd"}'), '{"entries":[]}');
    t.is(bound.length, 0);
  });

/** One request over the socket: write, optionally shut down writing, read to EOF. */
function ask(sock: string, data: Buffer | string, shutdown = true): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sock);
    let got = '';
    c.on('data', (d) => { got += d.toString(); });
    c.on('error', reject);
    c.on('close', () => resolve(got));
    c.write(data, () => { if (shutdown) c.end(); });
  });
}

test('the socket: one request per connection, in pieces or without shutdown, bounded size, served in order', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slirp4netns-api-'));
  const sock = path.join(dir, 'api.sock');
  fs.writeFileSync(sock, 'stale');
  const { backend } = recorder();
  const server = await ApiServer.listen(sock, new HostfwdApi('10.0.2.100', backend), () => {});
  try {
    t.is(await ask(sock, add({ proto: 'tcp', host_port: 1000, guest_port: 80 }) + '\n'), '{"return":{"id":1}}');
    t.is(await ask(sock, '{"execute":"list_hostfwd"}', false), '{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0",' +
      '"host_port":1000,"guest_addr":"10.0.2.100","guest_port":80}]}', 'answered without shutdown(SHUT_WR) once complete');
    t.is(await ask(sock, Buffer.alloc(5000)), TOO_LARGE);
    t.is(await ask(sock, 'x'.repeat(REQUEST_MAX - 1)), '{"error":{"desc":"bad request: cannot parse JSON"}}');
    t.is(await ask(sock, ' '.repeat(REQUEST_MAX)), TOO_LARGE);
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      ask(sock, add({ proto: 'udp', host_port: 2000 + i, guest_port: 53 }))));
    t.deepEqual(many.map((a) => (JSON.parse(a) as { return: { id: number } }).return.id).sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i + 2), 'concurrent clients each get their own id');
  } finally {
    server.close();
  }
  t.false(fs.existsSync(sock), 'the socket file goes with the server');
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * The run-as user and the capabilities kept (src/main/isolation.ts); the
 * isolation itself is end to end (test/e2e/sandbox.test.ts).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseRunAs, runTimeCaps, CAP } from '../../src/main/isolation';
import { PasstError } from '../../src/shared/errors';

function dbFiles(): { passwd: string; group: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passt-ts-runas-'));
  const passwd = path.join(dir, 'passwd');
  const group = path.join(dir, 'group');
  fs.writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nalice:x:1000:1001::/home/alice:/bin/sh\n');
  fs.writeFileSync(group, 'root:x:0:\nusers:x:100:\nalice:x:1001:\n');
  return { passwd, group };
}

test('--runas: numeric UID (GID the same), UID:GID, names, login with a group name', (t) => {
  const { passwd, group } = dbFiles();
  t.deepEqual(parseRunAs('1234', passwd, group), { uid: 1234, gid: 1234 });
  t.deepEqual(parseRunAs('1234:5', passwd, group), { uid: 1234, gid: 5 });
  t.deepEqual(parseRunAs('0', passwd, group), { uid: 0, gid: 0 }, 'numeric 0 is allowed');
  t.deepEqual(parseRunAs('alice', passwd, group), { uid: 1000, gid: 1001 }, 'a login takes its primary group');
  t.deepEqual(parseRunAs('alice:users', passwd, group), { uid: 1000, gid: 100 });
  t.deepEqual(parseRunAs('nobody:7', passwd, group), { uid: 65534, gid: 7 });
});

test('--runas: unknown names, and the login of UID 0, are refused', (t) => {
  const { passwd, group } = dbFiles();
  for (const bad of ['bob', 'alice:nogroup', 'root', '99999999999']) {
    const e = t.throws(() => parseRunAs(bad, passwd, group), { instanceOf: PasstError });
    t.is(e?.message, `Invalid --runas option: ${bad}`);
  }
});

test('capabilities kept after set-up: pasta SYS_ADMIN and NET_BIND_SERVICE, passt none (NET_BIND_SERVICE with --control)', (t) => {
  const bit = (c: number) => 1n << BigInt(c);
  t.is(runTimeCaps('pasta', false), bit(CAP.SYS_ADMIN) | bit(CAP.NET_BIND_SERVICE));
  t.is(runTimeCaps('pasta', true), bit(CAP.SYS_ADMIN) | bit(CAP.NET_BIND_SERVICE));
  t.is(runTimeCaps('pasta', false, true), bit(CAP.SYS_ADMIN) | bit(CAP.NET_BIND_SERVICE) | bit(CAP.KILL),
    'and KILL after switching with a spawned command (its helper\'s parent-death signal)');
  t.is(runTimeCaps('passt', false), 0n);
  t.is(runTimeCaps('passt', true), bit(CAP.NET_BIND_SERVICE));
});

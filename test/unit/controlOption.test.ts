/**
 * `--control PATH` on the command line (conf.ts): both programs take it,
 * the path is made absolute (a daemon may not share the caller's working
 * directory), and one too long for a UNIX socket address is refused.
 */
import test from 'ava';
import * as path from 'node:path';
import { parseOptions } from '../../src/main/conf';
import { PasstError } from '../../src/shared/errors';

const EPH: [number, number] = [49152, 65535];

test('--control is taken by pasta and passt, as an absolute path', (t) => {
  t.is(parseOptions('pasta', ['--control', '/run/user/1000/p.ctl', '--', 'true'], EPH).control, '/run/user/1000/p.ctl');
  t.is(parseOptions('passt', ['--control=x.ctl'], EPH).control, path.resolve('x.ctl'));
  t.is(parseOptions('passt', [], EPH).control, null);
});

test('--control refuses an empty path or one too long for a socket address', (t) => {
  for (const v of ['', `/tmp/${'x'.repeat(120)}`]) {
    const e = t.throws(() => parseOptions('pasta', ['--control', v, '--', 'true'], EPH));
    t.true(e instanceof PasstError);
    t.regex(e?.message ?? '', /Invalid control socket path/);
  }
});

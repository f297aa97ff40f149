import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LogFileSink } from '../../src/shared/logSinks';

test('log file: header line, and --log-size keeps it between ~50 and 100 KiB under a flood', (t) => {
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lf-')), 'log');
  const sink = LogFileSink.create(f, 102400, 'pasta 0.1.0 (passt-ts) /bin/pasta (1234)');
  t.regex(fs.readFileSync(f, 'utf8'), /^pasta .* \(\d+\)\n$/);
  for (let i = 0; i < 20000; i++) {
    sink.write(i % 2 ? 'info' : 'warning', `line ${i} ${'x'.repeat(i % 90)}\n`);
    if (i > 3000 && i % 997 === 0) {
      const size = fs.statSync(f).size;
      t.true(size <= 102400, `size ${size}`);
      t.true(size >= 50 * 1024, `size ${size}`);
    }
  }
  const text = fs.readFileSync(f, 'utf8');
  const lines = text.split('\n');
  t.regex(lines[0], /^pasta .* \(1234\) - log truncated at \d+\.\d{4}$/);
  t.regex(lines[1], /^\d+\.\d{4} (info|WARNING): +line \d+/, 'cut at a line boundary');
  t.regex(text, /line 19999/);
});

/**
 * Entry point of all programs: the mode comes from the name the program
 * is invoked by (SPEC.md §0: contains "pasta" → pasta, else contains "passt"
 * → passt, else exit 1; before those, a name containing "slirp4netns" runs
 * the slirp4netns-compatible front end).
 */
import * as path from 'node:path';
import type { Mode } from '../shared/config';
import { PasstError, ErrnoError } from '../shared/errors';
import { log } from '../shared/log';
import { usage } from './cli';
import { parseOptions } from './conf';
import { VERSION } from './logging';
import { holdInitSignals } from './initSignals';

function modeFromName(argv1: string): Mode | null {
  const base = path.basename(argv1);
  if (base.includes('pasta')) return 'pasta';
  if (base.includes('passt')) return 'passt';
  return null;
}

function versionText(mode: Mode): string {
  return `${mode} ${VERSION} (passt-ts, Node.js ${process.version})\n` +
    'Copyright (c) 2026 the passt-ts developers.\n' +
    'License GPLv2+: GNU GPL version 2 or later <https://www.gnu.org/licenses/old-licenses/gpl-2.0.html>.\n' +
    'This is free software: you are free to change and redistribute it.\n' +
    'There is NO WARRANTY, to the extent permitted by law.\n';
}

function die(msg: string): never {
  log.error(msg);
  process.exit(1);
}

export function main(): void {
  holdInitSignals();
  if (path.basename(process.argv[1] ?? '').includes('slirp4netns')) {
    // the slirp4netns-compatible front end (src/main/slirp4netns/run.ts)
    (require('./slirp4netns/run') as typeof import('./slirp4netns/run')).mainSlirp4netns();
    return;
  }
  const mode = modeFromName(process.argv[1] ?? '');
  if (!mode) {
    process.stderr.write('Cannot determine mode from program name: call it as pasta or passt\n');
    process.exit(1);
  }
  log.configure({ prefix: mode });

  let opts;
  try {
    opts = parseOptions(mode, process.argv.slice(2));
  } catch (e) {
    if (e instanceof PasstError) {
      process.stderr.write(e.message + '\n');
      if (e.code === 'PASST_ERR_USAGE') process.stderr.write(usage(mode));
      process.exit(1);
    }
    throw e;
  }
  if (opts.help) {
    process.stdout.write(usage(mode));
    process.exit(0);
  }
  if (opts.version) {
    process.stdout.write(versionText(mode));
    process.exit(0);
  }
  if (opts.printCapabilities) {
    process.stdout.write('{\n  "type": "net"\n}\n');
    process.exit(0);
  }
  log.configure({ level: opts.logLevel ?? 'info', timestamps: opts.logLevel === 'debug' || opts.logLevel === 'trace' });
  // forwarding many ports needs many descriptors (SPEC §11.5: soft limit raised to the hard one)
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  (require('../shared/native') as typeof import('../shared/native')).native.raiseNofile();

  const run = mode === 'pasta'
    ? (require('./pasta') as typeof import('./pasta')).runPasta
    : (require('./passt') as typeof import('./passt')).runPasst;
  run(opts).catch((e: unknown) => {
    if (e instanceof PasstError || e instanceof ErrnoError) die(e.message);
    die(`Internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  });
}

/**
 * The unprivileged path, as Podman uses it: a normal user made by the test
 * runs pasta from a world-readable copy of the program (the checkout may sit
 * under a directory only root can enter).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './env';

export const TEST_USER = 'passt-ts-test';

export function ensureUser(): { uid: number; gid: number } {
  let r = spawnSync('id', ['-u', TEST_USER], { encoding: 'utf8' });
  if (r.status !== 0) {
    const add = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/bin/sh', TEST_USER], { encoding: 'utf8' });
    if (add.status !== 0 && !/already exists/.test(add.stderr)) throw new Error(`useradd: ${add.stderr}`);
    r = spawnSync('id', ['-u', TEST_USER], { encoding: 'utf8' });
  }
  const g = spawnSync('id', ['-g', TEST_USER], { encoding: 'utf8' });
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** First subordinate ID of the test user's ranges (Podman's user namespace maps them). */
export const SUBID_START = 524288;
export const SUBID_COUNT = 65536;

/**
 * Gives the test user /etc/subuid and /etc/subgid ranges (as useradd does for
 * a normal login user), unless it has some already; rootless Podman's
 * newuidmap/newgidmap refuse to map a user without them.
 */
export function ensureSubIds(): void {
  ensureUser();
  for (const [file, flag] of [['/etc/subuid', '--add-subuids'], ['/etc/subgid', '--add-subgids']]) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    if (text.split('\n').some((l) => l.startsWith(`${TEST_USER}:`))) continue;
    const r = spawnSync('usermod', [flag, `${SUBID_START}-${SUBID_START + SUBID_COUNT - 1}`, TEST_USER], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`usermod ${flag}: ${r.stderr}`);
  }
}

let installDir: string | null = null;

/** A world-readable copy of what running pasta needs; returns its root. */
export function readableInstall(): string {
  if (installDir) return installDir;
  const dir = fs.mkdtempSync('/tmp/passt-ts-unpriv-');
  fs.chmodSync(dir, 0o755);
  // verbatimSymlinks: bin/pasta -> passt-ts.js stays relative (cpSync would
  // otherwise point it at the checkout, which the copy is there to replace)
  const copy = (rel: string) => fs.cpSync(path.join(ROOT, rel), path.join(dir, rel), { recursive: true, dereference: false, verbatimSymlinks: true });
  copy('package.json');
  copy('bin');
  copy('dist/src');
  fs.mkdirSync(path.join(dir, 'native/build/Release'), { recursive: true });
  for (const f of ['passt_native.node', 'pasta-helper'])
    fs.copyFileSync(path.join(ROOT, 'native/build/Release', f), path.join(dir, 'native/build/Release', f));
  fs.chmodSync(path.join(dir, 'native/build/Release/pasta-helper'), 0o755);
  for (const m of ['commander', 'ipaddr.js', 'node-gyp-build']) copy(path.join('node_modules', m));
  spawnSync('chmod', ['-R', 'a+rX', dir]);
  installDir = dir;
  return dir;
}

/** Command prefix that runs as the test user. */
export function asUser(): string[] {
  const { uid, gid } = ensureUser();
  return ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups'];
}

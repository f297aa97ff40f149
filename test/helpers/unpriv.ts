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

/**
 * Subordinate ID ranges for the test user (/etc/subuid, /etc/subgid), which
 * rootlesskit and rootless Podman map into their user namespaces with
 * newuidmap/newgidmap. Kept if the user already has one.
 */
export function ensureSubids(first = 200000, count = 65536): void {
  ensureUser();
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    const text = fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
    if (text.split('\n').some((l) => l.startsWith(`${TEST_USER}:`))) continue;
    fs.appendFileSync(f, `${text && !text.endsWith('\n') ? '\n' : ''}${TEST_USER}:${first}:${count}\n`);
  }
}

let installDir: string | null = null;

/** A world-readable copy of what running pasta needs; returns its root. */
export function readableInstall(): string {
  if (installDir) return installDir;
  const dir = fs.mkdtempSync('/tmp/passt-ts-unpriv-');
  fs.chmodSync(dir, 0o755);
  const copy = (rel: string) => fs.cpSync(path.join(ROOT, rel), path.join(dir, rel), { recursive: true, dereference: false });
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

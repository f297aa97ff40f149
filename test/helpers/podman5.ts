/**
 * Rootless Podman 5 for the end-to-end tests: the real podman with its own
 * `--network pasta` (Debian 13's, in the root test/podman5/build.sh makes),
 * run as the test user, finding passt-ts as its pasta through
 * `helper_binaries_dir`. No hook and no stand-in: podman builds pasta's
 * argv, runs it, waits for it, and tears the namespace down itself.
 *
 * Theory of operation. Debian 12's glibc is too old for trixie's podman,
 * so every podman call runs in a mount namespace of its own whose root is
 * that root (pivot_root, and the old root unmounted: a chrooted process may
 * not make the user namespace rootless podman needs), where it gets the machine's /proc, /sys, /dev and /tmp
 * (the rig's directory and the readable copy of this tree live in /tmp, at
 * the same paths inside and out), the host's user database (the test
 * user and its subordinate ID ranges), an /etc/resolv.conf naming the
 * tests' loopback resolver, and this machine's node at /usr/local/bin/node
 * (the copy's bin/pasta is `#!/usr/bin/env node`). The root has no C passt
 * installed, so the only pasta podman can find is ours.
 *
 * helpers/pasta, the file helper_binaries_dir names, is a three-line
 * shell script that records podman's argv (NUL-separated, one file per
 * call, for the tests' argv checks) and execs the copy's bin/pasta: the
 * process podman waits for is passt-ts itself, with podman's stdio and
 * environment. helpers-plain/pasta is a bare symbolic link, for the test
 * that names the directory through CONTAINERS_HELPER_BINARY_DIR instead.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, RunResult, processesWith } from './env';
import { ensureSubIds, ensureUser, readableInstall } from './unpriv';
import { IMAGE, writeImageTree, writeStorageConfig, podmanEnv, importImage, cleanupRig } from './podman';

/**
 * The loopback resolver in the root's /etc/resolv.conf (pasta forwards
 * 169.254.1.1 to it); not podman.ts's, so both Podman test files can run at
 * once in one namespace.
 */
export const PODMAN5_RESOLVER = '127.0.16.54';

export const PODMAN5_ROOT = process.env.PASST_TS_PODMAN5_ROOT ?? '/var/cache/passt-ts-podman5/root';

/** What podman gave our pasta, as recorded by helpers/pasta. */
export interface PastaCall {
  argv: string[];
  /** the --netns argument (Podman's netns file) */
  netns: string;
  file: string;
}

export interface CtrOptions {
  /** `--network` value, default "pasta" */
  network?: string;
  /** `-p` mappings */
  publish?: string[];
  /** extra environment for podman (e.g. CONTAINERS_HELPER_BINARY_DIR) */
  env?: string[];
}

export interface Podman5Rig {
  dir: string;
  /** podman's version line inside the root */
  version: string;
  installDir: string;
  /** the file helper_binaries_dir points podman at (argv-recording exec of the copy's bin/pasta) */
  pasta: string;
  /** a directory whose `pasta` is a bare link to the copy's bin/pasta */
  plainHelpers: string;
  podman(args: string[], timeoutMs?: number, env?: string[]): Promise<RunResult>;
  /** `podman run --rm [opts] IMAGE sh -c SCRIPT`, with the pasta calls it made */
  runCtr(script: string, o?: CtrOptions, timeoutMs?: number): Promise<{ r: RunResult; calls: PastaCall[] }>;
  /** every pasta call recorded so far (oldest first) */
  calls(): PastaCall[];
  /** PIDs of passt-ts processes running from this rig's copy */
  pastaProcesses(): number[];
  cleanup(): Promise<void>;
}

/** null if the Podman 5 root is there and its podman runs; else why the tests cannot run. */
export function podman5Missing(): string | null {
  if (!fs.existsSync(path.join(PODMAN5_ROOT, 'usr/bin/podman')))
    return `no Podman 5 root at ${PODMAN5_ROOT}: run test/podman5/build.sh (.ci/setup.sh does)`;
  return null;
}

export async function makePodman5Rig(): Promise<Podman5Rig> {
  ensureSubIds();
  const { uid, gid } = ensureUser();
  const installDir = readableInstall();
  const dir = fs.mkdtempSync('/tmp/passt-ts-podman5-');
  const sub = (n: string) => path.join(dir, n);
  for (const d of ['home', 'run', 'storage', 'helpers', 'helpers-plain', 'calls', 'image'])
    fs.mkdirSync(sub(d), { recursive: true });
  const pasta = sub('helpers/pasta');
  fs.writeFileSync(pasta, `#!/bin/sh
f=$(mktemp ${sub('calls')}/call.XXXXXX) && printf '%s\\0' "$@" > "$f"
exec ${installDir}/bin/pasta "$@"
`, { mode: 0o755 });
  fs.symlinkSync(path.join(installDir, 'bin', 'pasta'), sub('helpers-plain/pasta'));
  writeImageTree(sub('image'));
  // helper_binaries_dir replaces podman's list: keep its own directories after ours
  fs.writeFileSync(sub('containers.conf'), `[containers]
cgroups = "disabled"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
helper_binaries_dir = ["${sub('helpers')}", "/usr/local/libexec/podman", "/usr/local/lib/podman", "/usr/libexec/podman", "/usr/lib/podman"]
`);
  writeStorageConfig(dir);
  fs.writeFileSync(sub('host-resolv.conf'), `nameserver ${PODMAN5_RESOLVER}\n`);
  spawnSync('chown', ['-R', `${uid}:${gid}`, dir]);
  spawnSync('chmod', ['-R', 'a+rX', dir]);
  fs.chmodSync(sub('run'), 0o700);

  const R = PODMAN5_ROOT;
  const binds = [['/proc', 'proc'], ['/sys', 'sys'], ['/dev', 'dev'], ['/tmp', 'tmp']];
  const files = ['passwd', 'group', 'subuid', 'subgid'];
  // pivot_root, not chroot: the kernel refuses a chrooted process a new user namespace
  fs.mkdirSync(path.join(R, '.oldroot'), { recursive: true });
  const setup = [
    `mount --bind ${R} ${R}`,
    ...binds.map(([from, to]) => `mount --rbind ${from} ${R}/${to}`),
    // crun refuses a hybrid cgroup host; with cgroups = "disabled" it needs none
    `{ umount -l ${R}/sys/fs/cgroup/unified 2>/dev/null || true; }`,
    ...files.map((f) => `{ [ -e ${R}/etc/${f} ] || touch ${R}/etc/${f}; } && mount --bind /etc/${f} ${R}/etc/${f}`),
    `mount --bind ${sub('host-resolv.conf')} ${R}/etc/resolv.conf`,
    `mount --bind ${process.execPath} ${R}/usr/local/bin/node`,
    `cd ${R}`, 'pivot_root . .oldroot', 'umount -l /.oldroot', 'cd /', 'exec "$@"',
  ].join(' && ');
  const podman = (args: string[], timeoutMs = 30000, env: string[] = []) => run('unshare', ['-m', '--propagation', 'private',
    'sh', '-c', setup, 'sh', 'setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups',
    'env', '-i', ...podmanEnv(dir, '/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'), ...env, 'podman', ...args],
  { timeoutMs, cwd: '/' });

  const calls = (): PastaCall[] => fs.readdirSync(sub('calls')).map((f) => {
    const file = sub(`calls/${f}`);
    const argv = fs.readFileSync(file, 'utf8').split('\0').slice(0, -1);
    return { argv, netns: argv[argv.indexOf('--netns') + 1] ?? '', file, mtime: fs.statSync(file).mtimeMs };
  }).sort((a, b) => a.mtime - b.mtime).map(({ argv, netns, file }) => ({ argv, netns, file }));

  const v = await podman(['--version']);
  if (v.code !== 0) throw new Error(`podman --version in ${R}: ${v.stderr}`);
  await importImage(dir, podman, uid, gid);

  const netArgs = (o: CtrOptions) => ['--network', o.network ?? 'pasta', ...(o.publish ?? []).flatMap((p) => ['-p', p])];
  return {
    dir,
    version: v.stdout.trim(),
    installDir,
    pasta,
    plainHelpers: sub('helpers-plain'),
    podman,
    calls,
    async runCtr(script, o = {}, timeoutMs = 30000) {
      const seen = new Set(calls().map((c) => c.file));
      const r = await podman(['run', '--rm', ...netArgs(o), IMAGE, 'sh', '-c', script], timeoutMs, o.env);
      return { r, calls: calls().filter((c) => !seen.has(c.file)) };
    },
    pastaProcesses: () => processesWith(installDir),
    cleanup: () => cleanupRig(dir, podman),
  };
}

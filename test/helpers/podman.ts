/**
 * Rootless Podman for the end-to-end tests: the real podman from apt, run
 * as the test user (subuid/subgid ranges from unpriv.ts) with everything it
 * keeps in one temporary directory, and passt-ts as the pasta it runs.
 *
 * Theory of operation. Debian 12's podman 4.3.1 has no `--network pasta`
 * (Podman 4.4.0 added it), so it is given one through its own extension
 * point: containers.conf `hooks_dir` names a hook (podmanPastaHook.ts) that
 * runs for containers started with `--network none --annotation
 * passt-ts.network=pasta[:OPTS]` and starts this tree's pasta (a
 * world-readable copy, readableInstall()) with Podman 5.3's argv against
 * the container's network namespace (bind-mounted under XDG_RUNTIME_DIR,
 * removed again at poststop, as Podman does). Everything else is podman's own:
 * rootless user namespace (newuidmap), crun, conmon, the container's
 * lifetime.
 *
 * The rig's directory holds containers.conf, storage.conf (vfs driver:
 * needs no fuse or overlay in a user namespace), an empty registries.conf
 * and a permissive policy.json (nothing is ever pulled: the image is a
 * `podman import` of busybox-static), HOME, XDG_RUNTIME_DIR, the hook and
 * its per-container records. Each podman call runs in a mount namespace of
 * its own where the cgroup-v2 "unified" mount of a hybrid cgroup host is
 * hidden: crun 1.8 refuses hybrid hosts outright, and with `cgroups =
 * "disabled"` it needs no cgroup at all; /etc/resolv.conf there names
 * HOST_RESOLVER (the rig's own, so no other test's resolver is in the way).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecutionContext, TestFn } from 'ava';
import { run, RunResult, processesWith, alive, sleep, waitFor } from './env';
import { ensureSubIds, ensureUser, readableInstall } from './unpriv';
import { NETWORK_ANNOTATION, NETNS_ANNOTATION, PUBLISH_ANNOTATION } from './podmanPastaHook';

/**
 * The resolver in the /etc/resolv.conf podman and pasta see: a loopback
 * address, as systemd-resolved's 127.0.0.53 on many hosts (pasta forwards
 * 169.254.1.1 to it); the tests' stand-in listens there.
 */
export const HOST_RESOLVER = '127.0.16.53';

/** The local image every test container runs. */
export const IMAGE = 'localhost/passt-ts-busybox';

/** What the hook wrote for one container. */
export interface HookRecord {
  argv: string[];
  code: number | null;
  signal: string | null;
  output: string;
  ms: number;
  pid: number;
  /** the namespace reference given to pasta (a file in the rig's run/netns, or /proc/PID/ns/net) */
  netns: string;
}

/** How one container is started: `--network pasta[:OPTS]`, `-p` mappings, a resolv.conf. */
export interface CtrNet {
  network?: string;
  publish?: string[];
  /** resolv.conf of the container; default Podman 5.3's "nameserver 169.254.1.1" */
  resolv?: string;
  /** 'proc': pasta gets /proc/PID/ns/net (Buildah's form) instead of Podman's netns file */
  netns?: 'file' | 'proc';
}

export interface PodmanRig {
  dir: string;
  /** The pasta podman runs (through the hook): a `pasta` link to the copy's bin/pasta. */
  pasta: string;
  /** The readable copy of this tree that pasta runs from. */
  installDir: string;
  /** `podman ARGS` as the test user, bounded by timeoutMs. */
  podman(args: string[], timeoutMs?: number): Promise<RunResult>;
  /** The `podman run` options that give a container pasta networking. */
  netArgs(net?: CtrNet): string[];
  /** `podman run --rm [net options] IMAGE sh -c SCRIPT`, with the hook's record. */
  runCtr(script: string, net?: CtrNet, timeoutMs?: number, extra?: string[]): Promise<{ r: RunResult; rec: HookRecord | null }>;
  /** The hook's record of a container (by ID), null if the hook did not run. */
  record(id: string): HookRecord | null;
  /** PIDs of passt-ts processes (pasta and its helper) running from this rig's copy. */
  pastaProcesses(): number[];
  cleanup(): Promise<void>;
}

/** null if podman and newuidmap are there; else why the tests cannot run. */
export async function podmanMissing(): Promise<string | null> {
  const have = () => ['podman', 'newuidmap', 'newgidmap'].every((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0);
  if (have()) return null;
  // .ci/setup.sh installs them; this only helps a machine set up before that
  const r = await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'podman', 'uidmap'], { timeoutMs: 60000 });
  if (have()) return null;
  return `podman or uidmap is not installed and apt cannot install it here (${(r.stderr || r.stdout).trim().split('\n').pop()}); run .ci/setup.sh`;
}

let serial = 0;

export async function makeRig(): Promise<PodmanRig> {
  ensureSubIds();
  const { uid, gid } = ensureUser();
  const installDir = readableInstall();
  const dir = fs.mkdtempSync('/tmp/passt-ts-podman-');
  const sub = (n: string) => path.join(dir, n);
  for (const d of ['home/.config/containers', 'run', 'storage', 'hooks', 'helpers', 'log', 'cid', 'image/bin', 'image/etc', 'image/tmp'])
    fs.mkdirSync(sub(d), { recursive: true });
  // installed as a Podman 5 user would: a helper_binaries_dir with a `pasta` link
  const pasta = sub('helpers/pasta');
  fs.symlinkSync(path.join(installDir, 'bin', 'pasta'), pasta);

  writeImageTree(sub('image'));

  fs.copyFileSync(path.join(__dirname, 'podmanPastaHook.js'), sub('hook.js'));
  for (const stage of ['createRuntime', 'poststop']) {
    fs.writeFileSync(sub(`hooks/passt-ts-pasta-${stage}.json`), JSON.stringify({
      version: '1.0.0',
      hook: {
        path: process.execPath,
        args: ['node', sub('hook.js'), stage, pasta, sub('log'), sub('run/netns')],
        env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
        timeout: 60,
      },
      when: { annotations: { [`^${NETWORK_ANNOTATION.replace('.', '\\.')}$`]: '^pasta' } },
      stages: [stage],
    }));
  }
  fs.writeFileSync(sub('containers.conf'), `[containers]
cgroups = "disabled"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
hooks_dir = ["${sub('hooks')}"]
`);
  writeStorageConfig(dir);
  spawnSync('chown', ['-R', `${uid}:${gid}`, dir]);
  fs.chmodSync(sub('run'), 0o700);
  fs.chmodSync(dir, 0o755);

  const env = podmanEnv(dir);
  fs.writeFileSync(sub('host-resolv.conf'), `nameserver ${HOST_RESOLVER}\n`);
  fs.chmodSync(sub('host-resolv.conf'), 0o644);
  const podman = (args: string[], timeoutMs = 30000) => run('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
    `umount -l /sys/fs/cgroup/unified 2>/dev/null; mount --bind ${sub('host-resolv.conf')} /etc/resolv.conf && exec "$@"`, 'sh',
    'setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', 'env', '-i', ...env, 'podman', ...args],
  { timeoutMs, cwd: dir });

  const record = (id: string): HookRecord | null => {
    try { return JSON.parse(fs.readFileSync(sub(`log/${id}.json`), 'utf8')); } catch { return null; }
  };
  const netArgs = (n: CtrNet = {}): string[] => {
    const resolv = sub(`resolv.${++serial}`);
    fs.writeFileSync(resolv, n.resolv ?? 'nameserver 169.254.1.1\n');
    fs.chmodSync(resolv, 0o644);
    // --annotation is a comma-separated list to podman: one CSV-quoted field keeps the commas
    const annotation = (k: string, v: string) => ['--annotation', `"${k}=${v.replace(/"/g, '""')}"`];
    const a = ['--network', 'none', ...annotation(NETWORK_ANNOTATION, n.network ?? 'pasta'),
      '-v', `${resolv}:/etc/resolv.conf:ro`];
    if (n.publish?.length) a.push(...annotation(PUBLISH_ANNOTATION, n.publish.join(' ')));
    if (n.netns === 'proc') a.push(...annotation(NETNS_ANNOTATION, 'proc'));
    return a;
  };

  await importImage(dir, podman, uid, gid);

  return {
    dir,
    pasta,
    installDir,
    podman,
    netArgs,
    record,
    async runCtr(script, n = {}, timeoutMs = 30000, extra = []) {
      const cid = sub(`cid/${++serial}`);
      const r = await podman(['run', '--rm', '--cidfile', cid, ...netArgs(n), ...extra, IMAGE, 'sh', '-c', script], timeoutMs);
      let rec: HookRecord | null = null;
      try { rec = record(fs.readFileSync(cid, 'utf8').trim()); } catch { /* no container */ }
      return { r, rec };
    },
    pastaProcesses: () => [...new Set([...processesWith(installDir), ...processesWith(pasta)])],
    async cleanup() {
      await cleanupRig(dir, podman);
    },
  };
}

/** The image's tree: busybox-static and its applet links (`podman import`ed, nothing is pulled). */
export function writeImageTree(root: string): void {
  for (const d of ['bin', 'etc', 'tmp']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  for (const a of ['sh', 'ip', 'nc', 'nslookup', 'tftp', 'cat', 'sleep', 'echo', 'head', 'dd', 'sha256sum', 'grep', 'true', 'wc', 'seq'])
    fs.symlinkSync('busybox', path.join(root, 'bin', a));
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
}

/** storage.conf (vfs: no fuse or overlay in a user namespace), an empty registries.conf, a permissive policy.json. */
export function writeStorageConfig(dir: string): void {
  const sub = (n: string) => path.join(dir, n);
  fs.writeFileSync(sub('storage.conf'), `[storage]
driver = "vfs"
graphroot = "${sub('storage/graph')}"
runroot = "${sub('storage/run')}"
`);
  fs.writeFileSync(sub('registries.conf'), '');
  fs.mkdirSync(sub('home/.config/containers'), { recursive: true });
  fs.writeFileSync(sub('home/.config/containers/policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
}

/** The environment every podman call of a rig gets (everything in the rig's directory). */
export function podmanEnv(dir: string, pathVar = '/usr/sbin:/usr/bin:/sbin:/bin'): string[] {
  const sub = (n: string) => path.join(dir, n);
  return [
    `PATH=${pathVar}`, `HOME=${sub('home')}`, `XDG_RUNTIME_DIR=${sub('run')}`,
    `CONTAINERS_CONF=${sub('containers.conf')}`, `CONTAINERS_STORAGE_CONF=${sub('storage.conf')}`,
    `CONTAINERS_REGISTRIES_CONF=${sub('registries.conf')}`,
  ];
}

type PodmanCall = (args: string[], timeoutMs?: number) => Promise<RunResult>;

/** `podman import` of the image tree written by writeImageTree() into dir/image. */
export async function importImage(dir: string, podman: PodmanCall, uid: number, gid: number): Promise<void> {
  const tar = await run('tar', ['-C', path.join(dir, 'image'), '-cf', path.join(dir, 'image.tar'), '.']);
  if (tar.code !== 0) throw new Error(`tar: ${tar.stderr}`);
  spawnSync('chown', [`${uid}:${gid}`, path.join(dir, 'image.tar')]);
  const imp = await podman(['import', path.join(dir, 'image.tar'), IMAGE], 60000);
  if (imp.code !== 0) throw new Error(`podman import: ${imp.stderr}`);
}

/** Removes every container, ends the rootless pause process (it keeps the user namespace) and whatever else runs from dir. */
export async function cleanupRig(dir: string, podman: PodmanCall): Promise<void> {
  await podman(['rm', '-f', '-a', '-t', '0'], 30000);
  try {
    const pause = Number(fs.readFileSync(path.join(dir, 'run/libpod/tmp/pause.pid'), 'utf8'));
    if (pause > 0 && alive(pause)) process.kill(pause, 'SIGKILL');
  } catch { /* never started */ }
  for (const pid of processesWith(dir)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  await sleep(100);
  spawnSync('rm', ['-rf', dir]);
}

/** Podman 5.3+'s argv for a container with no options and no ports (CLIENTS.md §1.2). */
export const PODMAN_DEFAULT_ARGV = (netns: string): string[] => ['--config-net', '--dns-forward', '169.254.1.1',
  '-t', 'none', '-u', 'none', '-T', 'none', '-U', 'none', '--no-map-gw', '--quiet', '--netns', netns,
  '--map-guest-addr', '169.254.1.2'];

/** Lines of `ip addr show DEV` (busybox) → "inet A/N" / "inet6 A/N" of global scope. */
export function globalAddrs(ipAddrText: string): string[] {
  return [...ipAddrText.matchAll(/^\s+(inet6?) (\S+) scope global/gm)].map((m) => `${m[1]} ${m[2]}`);
}

/** No pasta of the rig's left (waits up to ms for them to quit); the PIDs still there. */
export async function noPastaLeft(r: { pastaProcesses(): number[] }, ms = 6000): Promise<number[]> {
  await waitFor(() => r.pastaProcesses().length === 0, ms, 100);
  return r.pastaProcesses();
}

/**
 * Declares serial tests that need a rig: `e2e(title, fn)` runs fn with the
 * rig, or passes saying why there is none (`state()` is read when the test
 * runs, after the file's before hook made the rig).
 */
export function rigTests<R>(test: TestFn, inNs: boolean, state: () => { rig: R | null; skipWhy: string | null }):
  (title: string, fn: (t: ExecutionContext, rig: R) => Promise<void>) => void {
  return (title, fn) => {
    if (!inNs) return;
    test.serial(title, async (t) => {
      const { rig, skipWhy } = state();
      if (!rig) {
        t.log(`skipped: ${skipWhy}`);
        t.pass();
        return;
      }
      t.timeout(120000);
      await fn(t, rig);
    });
  };
}

/**
 * An OCI hook that gives podman 4.3.1 (Debian 12's) the pasta network set-up
 * of Podman ≥ 5.3, so the real podman can be tested against passt-ts.
 *
 * Theory of operation. podman 4.3.1 predates `--network pasta` (added in
 * 4.4.0); it has no argv builder for pasta and looks for no pasta binary.
 * What it does have is OCI hooks (containers.conf `hooks_dir`): with
 * `--network none` crun makes the container's network namespace, runs this
 * hook at `createRuntime` (the namespace exists, the command has not
 * started) with the OCI state on stdin, and waits for the hook to exit
 * before the container starts. The hook then does what c/common's
 * `pasta.Setup()` does for Podman 5.3+ (../shared/CLIENTS.md §1.2, §1.3):
 *
 *   - the argv of `createPastaArgs()`, in its order:
 *     `--config-net [CLI] [PORTS] [--dns-forward 169.254.1.1] [-t none]
 *      [-u none] [-T none] [-U none] [--no-map-gw] [--quiet] --netns NS
 *      [--map-guest-addr 169.254.1.2]`, where CLI are the options of
 *     `--network pasta:A,B,C` (annotation `passt-ts.network`, since 4.3.1
 *     has no such network mode) and PORTS the `-p` mappings (annotation
 *     `passt-ts.publish`, podman's `[IP:]HOSTPORT:CTRPORT[/PROTO]` list,
 *     since `-p` is dropped with `--network none`);
 *   - NS is what Podman gives: a bind mount of the container's namespace
 *     at `$XDG_RUNTIME_DIR/netns/netns-<random 8-4-4-4-12 hex>`, shared by
 *     every container; at `poststop` the hook does what c/common's
 *     `UnmountNS()` does (lazy unmount, then remove the file) and pasta must
 *     quit by itself on seeing its own file deleted, and only its own. With
 *     annotation `passt-ts.netns=proc` NS is `/proc/PID/ns/net` instead
 *     (Buildah's form, §2), which pasta must poll;
 *   - pasta runs the way Go's `CombinedOutput()` runs it: this hook returns
 *     only after pasta's foreground process exited AND every holder of its
 *     stdout/stderr pipe closed it, so a daemon that kept them would hang
 *     `podman run` here exactly as it hangs Podman 5;
 *   - exit status non-zero → the hook prints Podman's message, `pasta
 *     failed with exit code N:\n<output>`, and fails: crun fails the
 *     container ("error executing hook") and podman run exits non-zero.
 *
 * For the test it also writes `<logdir>/<container id>.json`: the argv, the
 * exit status, the output, and how long pasta took.
 *
 *   node podmanPastaHook.js createRuntime|poststop PASTA LOGDIR NETNSDIR
 *   (the OCI state JSON on stdin)
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Annotations the hook reads (set with `podman run --annotation K=V`). */
export const NETWORK_ANNOTATION = 'passt-ts.network';
export const PUBLISH_ANNOTATION = 'passt-ts.publish';
/** `proc`: give pasta /proc/PID/ns/net (Buildah's form) instead of a netns file. */
export const NETNS_ANNOTATION = 'passt-ts.netns';

/** One `-p` mapping, as podman parses it. */
interface PortMapping { hostIp: string; hostPort: number; ctrPort: number; range: number; protocols: string[] }

/** podman's `-p [IP:]HOSTPORT[-END]:CTRPORT[-END][/tcp,udp]` (IPv6 host IPs in brackets). */
export function parsePublish(spec: string): PortMapping {
  const [addrPorts, proto = 'tcp'] = spec.split('/');
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d+)(?:-(\d+))?:(\d+)(?:-(\d+))?$/.exec(addrPorts);
  if (!m) throw new Error(`bad port mapping: ${spec}`);
  const hostPort = Number(m[2]);
  const range = m[3] ? Number(m[3]) - hostPort + 1 : 1;
  return { hostIp: (m[1] ?? '').replace(/^\[|\]$/g, ''), hostPort, ctrPort: Number(m[4]), range, protocols: proto.split(',') };
}

/** c/common `createPastaArgs()` (v0.61+): the argv Podman 5.3+ gives pasta. */
export function podmanPastaArgs(cli: string[], ports: PortMapping[], netns: string): string[] {
  const has = (...names: string[]) => cli.some((o) => names.includes(o));
  const opts = cli.filter((o) => o !== '--map-gw');
  const args = ['--config-net', ...opts];
  let tcp = has('-t', '--tcp-ports');
  let udp = has('-u', '--udp-ports');
  for (const p of ports) {
    for (const proto of p.protocols) {
      const flag = proto === 'tcp' ? '-t' : proto === 'udp' ? '-u' : null;
      if (!flag) throw new Error(`can't forward protocol: ${proto}`);
      if (flag === '-t') tcp = true; else udp = true;
      const ip = p.hostIp ? `${p.hostIp}/` : '';
      args.push(flag, `${ip}${p.hostPort}-${p.hostPort + p.range - 1}:${p.ctrPort}-${p.ctrPort + p.range - 1}`);
    }
  }
  if (!has('--dns-forward')) args.push('--dns-forward', '169.254.1.1');
  if (!tcp) args.push('-t', 'none');
  if (!udp) args.push('-u', 'none');
  if (!has('-T', '--tcp-ns')) args.push('-T', 'none');
  if (!has('-U', '--udp-ns')) args.push('-U', 'none');
  if (!cli.includes('--map-gw')) args.push('--no-map-gw');
  if (!has('-d', '--debug', '--trace')) args.push('--quiet');
  args.push('--netns', netns);
  if (!has('--map-guest-addr')) args.push('--map-guest-addr', '169.254.1.2');
  return args;
}

interface OciState { id: string; pid: number; annotations?: Record<string, string> }

/** c/common getRandomNetnsName(): "netns-" + 16 random bytes as 8-4-4-4-12 hex. */
function randomNetnsName(): string {
  const h = crypto.randomBytes(16).toString('hex');
  return `netns-${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** createRuntime: make the namespace reference, run pasta on it, record. */
function setUp(state: OciState, pasta: string, logDir: string, netnsDir: string): void {
  const ann = state.annotations ?? {};
  const network = ann[NETWORK_ANNOTATION] ?? 'pasta';
  const cli = network.startsWith('pasta:') ? network.slice('pasta:'.length).split(',').filter(Boolean) : [];
  const ports = (ann[PUBLISH_ANNOTATION] ?? '').split(' ').filter(Boolean).map(parsePublish);
  let netns = `/proc/${state.pid}/ns/net`;
  if (ann[NETNS_ANNOTATION] !== 'proc') {
    // Podman's own form: a bind mount of the namespace in $XDG_RUNTIME_DIR/netns
    fs.mkdirSync(netnsDir, { recursive: true });
    const file = path.join(netnsDir, randomNetnsName());
    fs.writeFileSync(file, '');
    const m = spawnSync('mount', ['--bind', netns, file], { encoding: 'utf8' });
    if (m.status !== 0) {
      process.stderr.write(`mount --bind ${netns} ${file}: ${m.stderr}`);
      process.exit(1);
    }
    netns = file;
  }
  const argv = podmanPastaArgs(cli, ports, netns);
  const t0 = Date.now();
  // like CombinedOutput(): returns at exit and EOF on the shared pipe
  const r = spawnSync(pasta, argv, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 30000 });
  const output = (r.stdout ?? '') + (r.stderr ?? '');
  const record = { argv, code: r.status, signal: r.signal, output, ms: Date.now() - t0, pid: state.pid, netns };
  fs.writeFileSync(path.join(logDir, `${state.id}.json`), JSON.stringify(record));
  if (r.status !== 0) {
    process.stderr.write(`pasta failed with exit code ${r.status}:\n${output}`);
    if (netns !== `/proc/${state.pid}/ns/net`) tearDown(netns);
    process.exit(1);
  }
}

/** c/common UnmountNS(): umount2(MNT_DETACH), then remove the file (pasta sees IN_DELETE). */
function tearDown(netns: string): void {
  spawnSync('umount', ['-l', netns]);
  fs.rmSync(netns, { force: true });
}

function main(): void {
  const [stage, pasta, logDir, netnsDir] = process.argv.slice(2);
  const state = JSON.parse(fs.readFileSync(0, 'utf8')) as OciState;
  if (stage === 'createRuntime') {
    setUp(state, pasta, logDir, netnsDir);
  } else if (stage === 'poststop') {
    let rec: { netns?: string } = {};
    try { rec = JSON.parse(fs.readFileSync(path.join(logDir, `${state.id}.json`), 'utf8')); } catch { /* never set up */ }
    if (rec.netns?.startsWith(`${netnsDir}/`)) tearDown(rec.netns);
    fs.writeFileSync(path.join(logDir, `${state.id}.stopped`), String(Date.now()));
  }
}

if (require.main === module) main();

/**
 * The run-time configuration, built once by the main thread (src/main/conf.ts)
 * and handed, frozen, to every worker (structured clone through workerData).
 *
 * Addresses are canonical strings (ipaddr.js `toString()`: IPv4 dotted quad,
 * IPv6 RFC 5952 compressed form); workers turn the ones they need into bytes
 * once at start-up. `null` means "not set / not available".
 */

export type Mode = 'pasta' | 'passt';

/** One forwarded port: listen on `port`, deliver to `port + delta` (mod 65536). */
export interface ForwardPort {
  port: number;
  /** target port = (port + delta) & 0xffff; stored normalised to 0..65535 */
  delta: number;
}

/**
 * One group of forwarded ports sharing a bind address and interface.
 * A ForwardSpec holds at most one rule per (addr, ifname, bestEffort), and a
 * port appears at most once per (addr, ifname).
 */
export interface ForwardRule {
  /** Bind address (canonical IPv4 or IPv6 string), or null for all addresses. */
  addr: string | null;
  /** Bind interface (SO_BINDTODEVICE), or null. */
  ifname: string | null;
  /** Sorted by port, no duplicates. */
  ports: ForwardPort[];
  /**
   * True for `all` and exclusion-only specs: ports that cannot be bound are
   * skipped silently (fatal only if none could be bound).
   */
  bestEffort: boolean;
}

/**
 * Forwarding for one direction and protocol (-t, -u, -T, -U):
 * `none`; `auto` (pasta: follow listening sockets of the other side, no
 * rules); `all` (passt: one best-effort rule with every non-ephemeral port);
 * or `spec`, an explicit list of rules accumulated over repeated options.
 * `all` is kept apart from `spec` because the two cannot be combined
 * (src/main/portSpec.ts); consumers open listeners for the rules of both.
 */
export interface ForwardSpec {
  mode: 'none' | 'auto' | 'all' | 'spec';
  rules: ForwardRule[];
}

export interface Ip4Config {
  /** IPv4 enabled (disabled by -6, or when no usable template was found). */
  enabled: boolean;
  /** Address assigned to the guest (the host's address by default). */
  addr: string | null;
  prefixLen: number;
  /** Default gateway given to the guest; also our address on the tap link. */
  gateway: string | null;
  /** DNS servers advertised to the guest (after loopback substitution). */
  dns: string[];
  /** DNS-forward match: queries to this address:53/853 go to dnsHost. */
  dnsMatch: string | null;
  /** Resolver the DNS-forward queries are redirected to. */
  dnsHost: string | null;
  /** Guest address that maps to the host's 127.0.0.1, or null. */
  mapHostLoopback: string | null;
  /** Guest address that maps to the guest's assigned address, or null. */
  mapGuestAddr: string | null;
  /** -o: source address for outbound sockets, or null. */
  outbound: string | null;
  /** --outbound-if4: bind outbound sockets to this device, or null. */
  outboundIf: string | null;
  /** true when addr/prefix came from -a/-n rather than the host. */
  addrGiven: boolean;
  /** true when the gateway came from -g. */
  gatewayGiven: boolean;
}

export interface Ip6Config {
  enabled: boolean;
  /** Global address assigned to the guest (the host's by default). */
  addr: string | null;
  prefixLen: number;
  gateway: string | null;
  /** Our link-local address: source of NDP and DHCPv6. */
  ourLinkLocal: string;
  dns: string[];
  dnsMatch: string | null;
  dnsHost: string | null;
  mapHostLoopback: string | null;
  mapGuestAddr: string | null;
  outbound: string | null;
  outboundIf: string | null;
  addrGiven: boolean;
  gatewayGiven: boolean;
}

export type LogLevel = 'error' | 'warning' | 'info' | 'debug' | 'trace';

/** SPEC §5.1, §6: idle timeouts of UDP and ping flows (ms). */
export const UDP_TIMEOUT_MS = 180_000;
export const PING_TIMEOUT_MS = 60_000;
/** Datagrams per recvmmsg()/sendmmsg() in the UDP worker: default and most. */
export const UDP_BATCH = 32;
export const UDP_BATCH_MAX = 64;
/** Flow table entries per worker (SPEC §7: 2^17 - 1). */
export const FLOW_MAX = 131071;

/**
 * Where the pipeline's stages run, and the switches tests and benchmarks
 * turn (README "Environment variables for tests and benchmarks"). conf.ts
 * chooses one default per mode (perf/README.md has the measurements) and
 * applies the PASST_TS_* overrides, read there once; workers find it in
 * their start-up data (cfg) and read no environment of their own.
 */
export interface Tuning {
  /** The tap-RX stage runs inside TCP worker 0 (passt) instead of a worker of its own (pasta). */
  inlineRx: boolean;
  /**
   * L4 workers that write their frames to the guest themselves while
   * tap-TX holds none of theirs (link/directTx.ts). The TCP worker only in
   * passt: in pasta, tap-TX writing its frames in parallel measured faster.
   */
  directTx: { tcp: boolean; udp: boolean };
  /** How long the TCP worker polls instead of sleeping after small exchanges (µs; 0: never). */
  spinUs: number;
  /** pasta: the tap's virtio-net header with checksum and TSO offloads. */
  offload: boolean;
  /** FrameRing checks every call's contract (slow; for debugging the rings). */
  ringDebug: boolean;
  /** Test hook: lose every Nth TCP data frame towards / from the guest (0: off). */
  tcpDrop: { toGuest: number; fromGuest: number };
  /** Idle timeouts of UDP and ping flows (ms; SPEC §5.1, §6). */
  udpTimeoutMs: number;
  pingTimeoutMs: number;
  /** Datagrams per recvmmsg()/sendmmsg() in the UDP worker. */
  udpBatch: number;
  /** Test hook: flow table capacity of each TCP worker and of the UDP worker (SPEC §7: 131 071). */
  flowMax: number;
  /** Memory per instance (perf/README.md "Memory per instance"). */
  memory: MemoryTuning;
}

/**
 * V8's share of an instance's memory. Every container runs its own pasta,
 * so what an idle one holds is paid once per container.
 */
export interface MemoryTuning {
  /**
   * Threads of V8's platform pool (node --v8-pool-size; 0: Node's default,
   * 4). Process-wide, so it is given where node is launched: the daemon's
   * spawn and the re-executions into a user namespace (nodeFlags(), conf.ts).
   */
  v8PoolSize: number;
  /**
   * Upper bound of a V8 semi-space (MB; 0: V8's default, 16). The young
   * generation is three of them (two semi-spaces and its large-object
   * space), and V8 grows it towards that bound while start-up code runs
   * and data moves, then keeps it. The main thread's goes where node is
   * launched (--max-semi-space-size, nodeFlags()); each worker's into its
   * resourceLimits (supervisor.ts workerLimits()), which covers a process
   * launched without the flag.
   */
  semiSpaceMb: number;
  /** One compacting full collection in every thread once start-up is over (src/shared/heap.ts). */
  compactAfterStart: boolean;
  /**
   * The UDP worker starts on demand: on the first UDP or ICMP echo frame
   * from the guest, or when a UDP port is forwarded (supervisor.ts).
   */
  lazyUdp: boolean;
  /**
   * malloc_trim(0) once start-up is over and after a worker started on
   * demand: the free pages of the malloc arenas (every thread has one)
   * back to the kernel.
   */
  trimAfterStart: boolean;
}

export interface Config {
  mode: Mode;
  /** Program name used in messages ("pasta" or "passt"). */
  name: string;

  logLevel: LogLevel;
  foreground: boolean;
  logFile: string | null;
  logSize: number;
  runas: string | null;
  /** --no-sandbox: skip self-isolation after set-up. */
  noSandbox: boolean;
  /** --seccomp-log or PASST_TS_SECCOMP_LOG=1: calls outside the seccomp filter are logged, not fatal. */
  seccompLog: boolean;
  pcap: string | null;
  pidFile: string | null;
  /** -F/--fd: pre-opened tap (pasta) or connected socket (passt), or -1. */
  fd: number;

  /** Advertised MTU; 0 means "don't advertise". */
  mtu: number;
  /** Our MAC address (source of every frame to the guest). */
  ourMac: string;

  /** Host template interface names per family (null in local mode). */
  templateIf4: string | null;
  templateIf6: string | null;
  /** -i given. */
  ifnameGiven: string | null;
  localMode: boolean;

  ip4: Ip4Config;
  ip6: Ip6Config;

  /** Search domains to advertise. */
  searchDomains: string[];
  /** Advertise DNS servers / search list (DHCP, DHCPv6, RA). */
  advertiseDns: boolean;
  advertiseSearch: boolean;
  /** -H/--hostname: sent as DHCP option 12, or null. */
  hostname: string | null;
  /** --fqdn (trailing dots dropped): sent as DHCP option 81 and DHCPv6 option 39, or null. */
  fqdn: string | null;

  noTcp: boolean;
  noUdp: boolean;
  noIcmp: boolean;
  noDhcp: boolean;
  noNdp: boolean;
  noDhcpv6: boolean;
  noRa: boolean;
  freebind: boolean;

  /** -t / -u: host → guest. */
  tcpIn: ForwardSpec;
  udpIn: ForwardSpec;
  /** -T / -U (pasta): namespace loopback → host loopback. */
  tcpOut: ForwardSpec;
  udpOut: ForwardSpec;

  /** --control: absolute path of the control socket (src/main/control/); absent or null: none. */
  control?: string | null;

  /** passt: UNIX socket path (null: probe /tmp/passt_N.socket). */
  socketPath: string | null;
  oneOff: boolean;
  vhostUser: boolean;

  /** pasta: tap interface name in the namespace. */
  nsIfname: string;
  /** pasta: --ns-mac-addr, or null (kernel-generated). */
  nsMacAddr: string | null;
  /** pasta: --netns path (resolved from a name), or null. */
  netns: string | null;
  /** pasta: --userns path, or null. */
  userns: string | null;
  netnsOnly: boolean;
  noNetnsQuit: boolean;
  configNet: boolean;
  noCopyRoutes: boolean;
  noCopyAddrs: boolean;
  noSplice: boolean;
  hostLoToNsLo: boolean;
  /** pasta: PID given as the target, or -1. */
  targetPid: number;
  /** pasta: command to spawn, or null when attaching. */
  command: string[] | null;

  /** Stage placement and test/benchmark switches. */
  tuning: Tuning;
}

/**
 * slirp4netns-ts --help and --version. Podman and rootlesskit probe
 * `--help` for option names (--disable-host-loopback, --mtu,
 * --enable-sandbox, --enable-seccomp, --cidr, --outbound-addr,
 * --enable-ipv6, --netns-type, --api-socket) before using them, so every
 * option slirp4netns 1.2 lists is listed here too.
 */
import { VERSION } from '../logging';

/** The slirp4netns release whose command line and API this program follows. */
export const SLIRP4NETNS_COMPAT = '1.2.0';

export function slirpUsage(prog: string): string {
  return `Usage: ${prog} [OPTION]... PID|PATH TAPNAME
User-mode networking for unprivileged network namespaces (slirp4netns-compatible,
on the passt-ts pasta engine).

-c, --configure          bring up the interface (address network+100, routes, lo)
-e, --exit-fd=FD         specify the FD for terminating slirp4netns
-r, --ready-fd=FD        specify the FD to write to when the network is configured
-m, --mtu=MTU            specify MTU (default=1500, max=65521)
-6, --enable-ipv6        enable IPv6 (fd00::/64, gateway fd00::2, DNS fd00::3)
-a, --api-socket=PATH    specify API socket path (add_hostfwd, list_hostfwd, remove_hostfwd)
--cidr=CIDR              specify network address CIDR (default=10.0.2.0/24)
--disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace
--netns-type=TYPE        specify network namespace type ([path|pid], default=pid)
--userns-path=PATH       specify user namespace path
--enable-sandbox         accepted for compatibility (always isolated)
--enable-seccomp         accepted for compatibility (always filtered)
--outbound-addr=IPv4     sets outbound ipv4 address (or interface name) to bind to
--outbound-addr6=IPv6    sets outbound ipv6 address (or interface name) to bind to
--disable-dns            disables 10.0.2.3 (or configured internal ip) to host dns redirect
--macaddress=MAC         specify the MAC address of the TAP (only valid with -c)
--target-type=TYPE       specify the target type (only netns is supported)
--control=PATH           passt-ts control socket (stats, flows, ports; passt-ts-ctl)
-h, --help               show this help and exit
-v, --version            show version and exit

Addressing (network = --cidr): gateway and host network+2 (connections to it
reach the host's 127.0.0.1 unless --disable-host-loopback), DNS network+3
(forwarded to the host's first nameserver), --configure address network+100,
also handed out by DHCP. The process stays in the foreground until the
--exit-fd becomes readable or is closed, or a signal ends it.
Environment: SLIRP4NETNS_TS_DEBUG=1 logs pasta's debug messages to stderr;
SLIRP4NETNS_TS_CONTROL=PATH opens the control socket without --control (for
callers such as Podman and rootlesskit that build the command line).
`;
}

export function slirpVersion(prog: string): string {
  return `${prog} version ${SLIRP4NETNS_COMPAT} (compatible)\n` +
    `passt-ts: ${VERSION} (Node.js ${process.version})\n` +
    'libslirp: none (pasta engine)\n';
}

/**
 * Command line of passt and pasta (SPEC.md §12), parsed with commander.
 *
 * Both programs share one option table. Each row says in which mode(s) the
 * option exists and what the other mode does with its long form: refuse it
 * ("… is for … mode only"), ignore it silently, or accept it. Short options
 * exist only in their own mode(s), so `pasta -s x` and `passt -T 1` are
 * unknown options, as in the original.
 *
 * Parsing is getopt-like: grouped short flags, `--opt=value` and
 * `--opt value`, options stop at the first non-option argument (the
 * command's own options are not parsed), `--` ends options. Repeatable
 * options accumulate; for the others the last one wins. Errors use glibc's
 * getopt wording (Podman greps for "unrecognized option '--map-guest-addr").
 *
 * This module only turns argv into an ordered list of (option, value)
 * pairs plus positional arguments; meaning and validation live in conf.ts.
 */
import { Command, CommanderError, Option } from 'commander';
import type { Mode } from '../shared/config';
import { PasstError } from '../shared/errors';

type Modes = 'PA' | 'P' | 'A';
/** What the other mode does with the long form. */
type Foreign = 'refuse' | 'ignore' | 'accept';

interface OptDef {
  long: string;
  short?: string;
  arg?: string;
  modes: Modes;
  foreign?: Foreign;
  /** Further long names (aliases). */
  aliases?: string[];
  help: string;
}

/** The option table (SPEC.md §12, plus options clients pass that came later). */
export const OPTIONS: OptDef[] = [
  { long: 'debug', short: 'd', modes: 'PA', help: 'Be verbose' },
  { long: 'trace', modes: 'PA', help: 'Be extra verbose, implies --debug' },
  { long: 'quiet', short: 'q', modes: 'PA', help: "Don't print informational messages" },
  { long: 'foreground', short: 'f', modes: 'PA', help: "Don't run in background (default for pasta with a command)" },
  { long: 'stderr', short: 'e', modes: 'PA', help: 'Deprecated, no effect' },
  { long: 'log-file', short: 'l', arg: 'PATH', modes: 'PA', help: 'Log (only) to given file' },
  { long: 'log-size', arg: 'BYTES', modes: 'PA', help: 'Maximum log file size (default: 1 MiB)' },
  { long: 'runas', arg: 'UID|UID:GID', modes: 'PA', help: 'Run as given UID, GID, which can be numeric, or login and group names' },
  { long: 'no-sandbox', modes: 'PA', help: "Don't isolate the process after set-up (run-as user, capabilities, no_new_privs, empty root, seccomp): for debugging" },
  { long: 'seccomp-log', modes: 'PA', help: 'System calls outside the seccomp filter are logged by the kernel (dmesg), not fatal; also PASST_TS_SECCOMP_LOG=1' },
  { long: 'help', short: 'h', modes: 'PA', help: 'Display this help message and exit' },
  { long: 'version', modes: 'PA', help: 'Show version and exit' },
  { long: 'pcap', short: 'p', arg: 'FILE', modes: 'PA', help: 'Log tap-facing traffic to pcap file' },
  { long: 'pid', short: 'P', arg: 'FILE', modes: 'PA', help: 'Write own PID to the given file' },
  { long: 'fd', short: 'F', arg: 'FD', modes: 'PA', help: 'Use FD as pre-opened connected socket (passt) or tap (pasta)' },
  { long: 'mtu', short: 'm', arg: 'MTU', modes: 'PA', help: 'Assign MTU via DHCP/NDP (default: 65520; 0: none)' },
  { long: 'address', short: 'a', arg: 'ADDR', modes: 'PA', help: 'Assign IPv4 or IPv6 address ADDR' },
  { long: 'netmask', short: 'n', arg: 'MASK', modes: 'PA', help: 'Assign IPv4 MASK, dot-decimal or bits' },
  { long: 'mac-addr', short: 'M', arg: 'ADDR', modes: 'PA', help: 'Use source MAC address ADDR (default: 9a:55:9a:55:9a:55)' },
  { long: 'gateway', short: 'g', arg: 'ADDR', modes: 'PA', help: 'Pass IPv4 or IPv6 address as gateway' },
  { long: 'interface', short: 'i', arg: 'NAME', modes: 'PA', help: 'Interface for addresses and routes' },
  { long: 'outbound', short: 'o', arg: 'ADDR', modes: 'PA', help: 'Bind to address as outbound source' },
  { long: 'outbound-if4', arg: 'NAME', modes: 'PA', help: 'Bind to outbound interface for IPv4' },
  { long: 'outbound-if6', arg: 'NAME', modes: 'PA', help: 'Bind to outbound interface for IPv6' },
  { long: 'dns', short: 'D', arg: 'ADDR', modes: 'PA', help: "Use IPv4 or IPv6 address as DNS ('none': no DNS)" },
  { long: 'search', short: 'S', arg: 'LIST', modes: 'PA', help: "Space-separated list, search domains ('none': no search)" },
  { long: 'dns-forward', arg: 'ADDR', modes: 'PA', help: 'Forward DNS queries sent to ADDR' },
  { long: 'dns-host', arg: 'ADDR', modes: 'PA', help: 'Host nameserver to direct queries to' },
  { long: 'no-dhcp-dns', modes: 'P', help: 'No DNS list in DHCP/DHCPv6/NDP' },
  { long: 'no-dhcp-search', modes: 'P', help: 'No list in DHCP/DHCPv6/NDP' },
  { long: 'dhcp-dns', modes: 'A', help: 'Pass DNS list via DHCP/DHCPv6/NDP' },
  { long: 'dhcp-search', modes: 'A', help: 'Pass list via DHCP/DHCPv6/NDP' },
  { long: 'hostname', short: 'H', arg: 'NAME', modes: 'PA', help: 'Hostname to configure client with (DHCP option 12)' },
  { long: 'fqdn', arg: 'NAME', modes: 'PA', help: 'FQDN to configure client with (DHCP option 81, DHCPv6 option 39)' },
  { long: 'no-tcp', modes: 'PA', help: 'Disable TCP protocol handler' },
  { long: 'no-udp', modes: 'PA', help: 'Disable UDP protocol handler' },
  { long: 'no-icmp', modes: 'PA', help: 'Disable ICMP/ICMPv6 protocol handler' },
  { long: 'no-dhcp', modes: 'PA', help: 'Disable DHCP server' },
  { long: 'no-ndp', modes: 'PA', help: 'Disable NDP responses' },
  { long: 'no-dhcpv6', modes: 'PA', help: 'Disable DHCPv6 server' },
  { long: 'no-ra', modes: 'PA', help: 'Disable router advertisements' },
  { long: 'freebind', modes: 'PA', help: 'Bind to any address for forwarding' },
  { long: 'map-host-loopback', arg: 'ADDR', modes: 'PA', help: "Translate ADDR to refer to host ('none' to disable)" },
  { long: 'map-guest-addr', arg: 'ADDR', modes: 'PA', help: "Translate ADDR to guest's address ('none' to disable)" },
  { long: 'no-map-gw', modes: 'PA', help: "Don't map gateway address to host" },
  { long: 'ipv4-only', short: '4', modes: 'PA', help: 'Enable IPv4 operation only' },
  { long: 'ipv6-only', short: '6', modes: 'PA', help: 'Enable IPv6 operation only' },
  { long: 'tcp-ports', short: 't', arg: 'SPEC', modes: 'PA', help: 'TCP port forwarding to guest or namespace' },
  { long: 'udp-ports', short: 'u', arg: 'SPEC', modes: 'PA', help: 'UDP port forwarding to guest or namespace' },
  { long: 'control', arg: 'PATH', modes: 'PA', help: 'Control socket: statistics, flows, ports changed at run time (passt-ts-ctl)' },
  { long: 'print-capabilities', modes: 'P', foreign: 'accept', help: 'Print back-end capabilities in JSON format' },
  { long: 'socket', short: 's', arg: 'PATH', modes: 'P', foreign: 'ignore', aliases: ['socket-path'], help: 'UNIX domain socket path' },
  { long: 'one-off', short: '1', modes: 'P', help: 'Quit after handling one single client' },
  { long: 'vhost-user', modes: 'P', help: 'Enable vhost-user mode' },
  { long: 'ns-ifname', short: 'I', arg: 'NAME', modes: 'A', foreign: 'ignore', help: 'Namespace interface name' },
  { long: 'tcp-ns', short: 'T', arg: 'SPEC', modes: 'A', foreign: 'ignore', help: 'TCP port forwarding to init namespace' },
  { long: 'udp-ns', short: 'U', arg: 'SPEC', modes: 'A', foreign: 'ignore', help: 'UDP port forwarding to init namespace' },
  { long: 'userns', arg: 'NSPATH', modes: 'A', help: 'Target user namespace to join' },
  { long: 'netns', arg: 'PATH|NAME', modes: 'A', help: 'Target network namespace to join' },
  { long: 'netns-only', modes: 'A', help: "Don't join existing user namespace" },
  { long: 'no-netns-quit', modes: 'A', help: "Don't quit if filesystem-bound target network namespace is gone" },
  { long: 'config-net', modes: 'A', help: 'Configure tap interface in namespace' },
  { long: 'no-copy-routes', modes: 'A', help: "Don't copy all routes to namespace (deprecated)" },
  { long: 'no-copy-addrs', modes: 'A', help: "Don't copy all addresses to namespace (deprecated)" },
  { long: 'ns-mac-addr', arg: 'ADDR', modes: 'A', help: 'Set MAC address on tap interface' },
  { long: 'no-splice', modes: 'A', foreign: 'accept', help: 'Disable inbound socket splicing' },
  { long: 'host-lo-to-ns-lo', modes: 'A', help: "Translate host-loopback forwards to namespace loopback (deprecated)" },
];

/** One parsed option occurrence, in command-line order. */
export interface OptUse {
  /** Canonical long name (e.g. "tcp-ports"). */
  name: string;
  value: string | true;
  /** As the user wrote it (for messages), e.g. "-t" or "--tcp-ports". */
  spelled: string;
}

export interface ParsedArgs {
  uses: OptUse[];
  positional: string[];
}

function modeLetter(mode: Mode): 'P' | 'A' {
  return mode === 'passt' ? 'P' : 'A';
}

/**
 * Every option is declared in both modes (long forms), so that conf.ts can
 * refuse or ignore a foreign one with a clear message; short flags exist only
 * in the option's own mode(s).
 */
function declared(mode: Mode): { def: OptDef; short: string | undefined }[] {
  const m = modeLetter(mode);
  return OPTIONS.map((def) => ({ def, short: def.modes.includes(m) ? def.short : undefined }));
}

/**
 * Parses argv (without node and script) for the given mode.
 * @throws PasstError with code PASST_ERR_USAGE and glibc-style text
 */
export function parseArgs(mode: Mode, argv: string[]): ParsedArgs {
  const prog = new Command(mode);
  const uses: OptUse[] = [];
  prog.exitOverride();
  prog.configureOutput({ writeErr: () => {}, writeOut: () => {} });
  prog.helpOption(false);
  prog.allowExcessArguments(true);
  prog.passThroughOptions();
  prog.argument('[args...]');

  for (const { def, short } of declared(mode)) {
    const names = [def.long, ...(def.aliases ?? [])];
    names.forEach((long, i) => {
      const flags = `${i === 0 && short ? `-${short}, ` : ''}--${long}${def.arg ? ` <${def.arg}>` : ''}`;
      const opt = new Option(flags, def.help);
      if (def.arg) {
        opt.argParser((v: string) => {
          uses.push({ name: def.long, value: v, spelled: i === 0 && short ? `-${short}` : `--${long}` });
          return v;
        });
      }
      prog.addOption(opt);
      if (!def.arg) {
        prog.on(`option:${long}`, () => {
          uses.push({ name: def.long, value: true, spelled: i === 0 && short ? `-${short}` : `--${long}` });
        });
      }
    });
  }

  try {
    prog.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) throw usageError(mode, e, argv);
    throw e;
  }
  return { uses, positional: prog.args };
}

function usageError(mode: Mode, e: CommanderError, argv: string[]): PasstError {
  const quoted = /'([^']+)'/.exec(e.message)?.[1] ?? '';
  let text: string;
  switch (e.code) {
    case 'commander.unknownOption':
      text = quoted.startsWith('--') ? `${mode}: unrecognized option '${quoted}'`
        : `${mode}: invalid option -- '${quoted.replace(/^-/, '').charAt(0)}'`;
      break;
    case 'commander.optionMissingArgument': {
      // quoted is "-t, --tcp-ports <SPEC>" or "--netns <PATH>"
      const long = /--([a-z0-9-]+)/.exec(quoted)?.[1] ?? quoted;
      const short = /^-([^-])/.exec(quoted)?.[1];
      const usedShort = short && !argv.some((a) => a === `--${long}`);
      text = usedShort ? `${mode}: option requires an argument -- '${short}'` : `${mode}: option '--${long}' requires an argument`;
      break;
    }
    default:
      text = `${mode}: ${e.message.replace(/^error: /, '')}`;
  }
  return new PasstError('PASST_ERR_USAGE', text);
}

/** Mode rule for an option used in `mode`: null if fine, else what to do. */
export function foreignRule(mode: Mode, name: string): Foreign | null {
  const def = OPTIONS.find((d) => d.long === name);
  if (!def || def.modes.includes(modeLetter(mode))) return null;
  return def.foreign ?? 'refuse';
}

/** Usage text (to stdout for --help, to stderr after a usage error). */
export function usage(mode: Mode): string {
  const m = modeLetter(mode);
  const head = mode === 'pasta'
    ? 'Usage: pasta [OPTION]... [COMMAND] [ARGS]...\n       pasta [OPTION]... PID\n       pasta [OPTION]... --netns [PATH|NAME]\n\n' +
      'Without PID or --netns, run the given command or a default shell in a new\nnetwork and user namespace, and connect it via pasta.\n\n'
    : 'Usage: passt [OPTION]...\n\n';
  const lines: string[] = [];
  for (const def of OPTIONS) {
    if (!def.modes.includes(m)) continue;
    const flags = `${def.short ? `-${def.short}, ` : '    '}--${def.long}${def.arg ? ` ${def.arg}` : ''}`;
    lines.push(`  ${flags.padEnd(34)}${def.help}`);
  }
  const specHelp = '\n  SPEC for -t/-u' + (mode === 'pasta' ? ', -T/-U' : '') + ' is one of:\n' +
    "    none          no ports\n" +
    (mode === 'pasta' ? '    auto          forward ports that are bound on the other side (default)\n'
      : '    all           all ports not in the ephemeral range\n') +
    '    [ADDR[%IF]/]PORTS   e.g. 22, 1-1024, 8080:80, 80-90:8080-8090, ~25 (exclude)\n';
  return head + lines.join('\n') + '\n' + specHelp;
}

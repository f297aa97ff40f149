/**
 * Listening ports from /proc/net/{tcp,tcp6,udp,udp6} (SPEC.md §8.4), for
 * pasta's automatic forwarding.
 *
 * Each line after the header reads
 * `  sl: LOCALADDR:PORT REMADDR:PORT ST ...`, addresses and ports in hex
 * (IPv4: 8 digits, IPv6: 32), the state in hex. TCP sockets in LISTEN
 * (0x0A) and UDP sockets that are unconnected (0x07, TCP_CLOSE) count.
 * The text is untrusted in the sense that it may be truncated (a read that
 * raced with the kernel) or odd: a line that does not parse is skipped,
 * nothing throws.
 */

/** /proc/net/tcp* state of a listening socket (TCP_LISTEN). */
export const TCP_LISTEN = 0x0a;
/** /proc/net/udp* state of an unconnected socket (TCP_CLOSE). */
export const UDP_UNCONNECTED = 0x07;

const HEX = /^[0-9A-Fa-f]+$/;

/**
 * Adds to `into` the local port of every line of `text` whose state is
 * `state`. Call once per file (tcp and tcp6 into the same set).
 * @returns `into`
 */
export function procNetPorts(text: string, state: number, into: Set<number> = new Set()): Set<number> {
  let start = 0;
  // The first line is the header.
  const nl = text.indexOf('\n');
  start = nl < 0 ? text.length : nl + 1;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const port = parseLine(text.slice(start, end), state);
    if (port >= 0) into.add(port);
    start = end + 1;
  }
  return into;
}

/** The local port of one line if it is in `state`, else -1. */
function parseLine(line: string, state: number): number {
  const f = line.trim().split(/\s+/);
  if (f.length < 4 || !/^\d+:$/.test(f[0])) return -1;
  const local = splitAddr(f[1]);
  if (!local || !splitAddr(f[2])) return -1;
  if (f[3].length !== 2 || !HEX.test(f[3]) || parseInt(f[3], 16) !== state) return -1;
  return local.port;
}

function splitAddr(s: string): { port: number } | null {
  const colon = s.indexOf(':');
  if (colon < 0) return null;
  const addr = s.slice(0, colon);
  const port = s.slice(colon + 1);
  if ((addr.length !== 8 && addr.length !== 32) || !HEX.test(addr)) return null;
  if (port.length < 1 || port.length > 4 || !HEX.test(port)) return null;
  return { port: parseInt(port, 16) };
}

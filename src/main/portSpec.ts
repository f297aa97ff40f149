/**
 * The port-forwarding SPEC of -t, -u, -T and -U (SPEC.md §8.2):
 *
 * ```
 * SPEC  := "none" | "auto" | "all" | [BIND "/"] ITEM ("," ITEM)*
 * BIND  := ADDR | ADDR "%" IFNAME | "%" IFNAME      (ADDR may be in [ ])
 * ITEM  := RANGE [":" RANGE] | "~" RANGE
 * RANGE := PORT ["-" PORT]                         (PORT 0..65535, first <= last)
 * ```
 *
 * - BIND is split off at the first "/", IFNAME at the first "%" in it, so an
 *   unbracketed IPv6 address works as libvirt writes it
 *   (`2001:db8::1%eth0/8080`). Brackets are accepted for IPv4 too. An
 *   IPv4-mapped IPv6 address binds IPv4 (passt's `inany`). BIND is refused for
 *   -T/-U. IFNAME must be 1..15 bytes.
 * - `A-B:C-D` forwards A+i to C+i (same lengths); `A:C` one port.
 * - `~RANGE` excludes ports from every range of the same option, wherever it
 *   appears; overlapping exclusions are an error. Only exclusions: every
 *   non-ephemeral port 1..65535 except those, best effort.
 * - `all` (passt only): every non-ephemeral port 1..65535, best effort.
 *   `auto` (pasta only): follow the other side's listeners (§8.4).
 * - Repeated options accumulate; a port forwarded again gets the new mapping
 *   and a warning. `none`/`auto`/`all` combined with anything before or
 *   after is an error, with the original's wording.
 * - Ports are digits only (no sign, no spaces); leading zeros are fine.
 *
 * Every error is a PasstError with code PASST_ERR_PORT_SPEC. The message
 * starts with the original's text ("Invalid port specifier SPEC") and names
 * the offending part. "TCP/UDP forwarding requested but TCP/UDP is disabled"
 * is the caller's check (it knows --no-tcp/--no-udp).
 */
import * as fs from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import * as ipaddr from 'ipaddr.js';
import type { ForwardPort, ForwardRule, ForwardSpec, Mode } from '../shared/config';
import { PasstError } from '../shared/errors';

/** The four port-forwarding options. */
export type ForwardOpt = '-t' | '-u' | '-T' | '-U';

/** Inclusive ephemeral port range, [first, last]. */
export type EphemeralRange = readonly [number, number];

/** RFC 6335 dynamic ports: the fallback when the sysctl cannot be read. */
export const EPHEMERAL_FALLBACK: EphemeralRange = [49152, 65535];

/** Linux IFNAMSIZ: interface names are shorter than this (in bytes). */
export const IFNAMSIZ = 16;

/** Result of one option: the accumulated spec and warnings to log. */
export interface ForwardParse {
  spec: ForwardSpec;
  warnings: string[];
}

const NUM_PORTS = 65536;
const CODE = 'PASST_ERR_PORT_SPEC';

/**
 * Reads the kernel's ephemeral port range (two numbers separated by
 * whitespace); EPHEMERAL_FALLBACK if the file is missing or malformed.
 */
export function readEphemeralRange(path = '/proc/sys/net/ipv4/ip_local_port_range'): [number, number] {
  try {
    const m = /^\s*(\d{1,5})\s+(\d{1,5})\s*$/.exec(fs.readFileSync(path, 'utf8'));
    if (m) {
      const a = Number(m[1]), b = Number(m[2]);
      if (a >= 1 && a <= b && b <= 65535) return [a, b];
    }
  } catch {
    /* fall through */
  }
  return [EPHEMERAL_FALLBACK[0], EPHEMERAL_FALLBACK[1]];
}

/**
 * Applies one -t/-u/-T/-U option to the spec accumulated so far.
 * @param prev the result for earlier options of the same letter, or
 *   undefined for the first one (defaults apply only when none was given)
 * @param mode pasta accepts `auto`, passt accepts `all`
 * @param ephemeral inclusive range excluded from `all` and exclusion-only specs
 * @throws PasstError PASST_ERR_PORT_SPEC for any malformed or conflicting spec
 */
export function parseForwardOption(prev: ForwardSpec | undefined, opt: ForwardOpt, value: string, mode: Mode,
  ephemeral: EphemeralRange): ForwardParse {
  if (value === 'none' || value === 'auto' || value === 'all') {
    if (prev) throw new PasstError(CODE, `Port forwarding mode '${value}' conflicts with previous mode`);
    if (value === 'none') return { spec: { mode: 'none', rules: [] }, warnings: [] };
    if (value === 'auto') {
      if (mode !== 'pasta') throw new PasstError(CODE, "'auto' port forwarding is only allowed for pasta");
      return { spec: { mode: 'auto', rules: [] }, warnings: [] };
    }
    if (mode === 'pasta') throw new PasstError(CODE, "'all' port forwarding is only allowed for passt");
    const ports: ForwardPort[] = [];
    for (let p = 1; p < NUM_PORTS; p++) if (!isEphemeral(p, ephemeral)) ports.push({ port: p, delta: 0 });
    return { spec: { mode: 'all', rules: [{ addr: null, ifname: null, ports, bestEffort: true }] }, warnings: [] };
  }
  if (prev && prev.mode !== 'spec')
    throw new PasstError(CODE, 'Specific ports cannot be specified together with all/none/auto');

  const bad = (detail: string): never => {
    throw new PasstError(CODE, `Invalid port specifier ${value}: ${detail}`);
  };

  // BIND "/"
  let addr: string | null = null;
  let ifname: string | null = null;
  let list = value;
  const slash = value.indexOf('/');
  if (slash >= 0) {
    if (opt === '-T' || opt === '-U') bad(`a bind address or interface is only accepted for -t and -u, not ${opt}`);
    let bind = value.slice(0, slash);
    list = value.slice(slash + 1);
    const pct = bind.indexOf('%');
    if (pct >= 0) {
      ifname = bind.slice(pct + 1);
      bind = bind.slice(0, pct);
      if (ifname === '') bad("empty interface name after '%'");
      if (Buffer.byteLength(ifname) >= IFNAMSIZ) bad(`interface name '${ifname}' is longer than ${IFNAMSIZ - 1} bytes`);
    }
    if (bind !== '' || pct < 0) addr = parseBindAddr(bind, bad);
  }

  // Items: exclusions first, as they apply to every range of this option.
  const items = list.split(',');
  const excluded = new Uint8Array(NUM_PORTS);
  let excludeOnly = true;
  for (const item of items) {
    if (item === '') bad(list === '' ? 'no ports given' : `empty item in '${list}'`);
    if (item[0] !== '~') {
      excludeOnly = false;
      continue;
    }
    const r = parseRange(item, 1, bad);
    if (r.end !== item.length)
      bad(item[r.end] === ':' ? `a mapping is not allowed in an exclusion ('${item}')`
        : `unexpected '${item.slice(r.end)}' after '${item.slice(0, r.end)}'`);
    for (let p = r.first; p <= r.last; p++) {
      if (excluded[p]) bad(`overlapping excluded ranges ('${item}' excludes port ${p} again)`);
      excluded[p] = 1;
    }
  }

  // Ranges, in order; a later mapping of a port replaces an earlier one.
  const deltas = new Map<number, number>();
  const altered = new Set<number>();
  if (excludeOnly) {
    for (let p = 1; p < NUM_PORTS; p++) if (!excluded[p] && !isEphemeral(p, ephemeral)) deltas.set(p, 0);
  } else {
    for (const item of items) {
      if (item[0] === '~') continue;
      const orig = parseRange(item, 0, bad);
      let to = orig;
      let end = orig.end;
      if (item[end] === ':') {
        to = parseRange(item, end + 1, bad);
        end = to.end;
        if (to.last - to.first !== orig.last - orig.first)
          bad(`'${item.slice(0, orig.end)}' has ${count(orig.last - orig.first + 1, 'port')} but ` +
            `'${item.slice(orig.end + 1, to.end)}' has ${to.last - to.first + 1}`);
      }
      if (end !== item.length) bad(`unexpected '${item.slice(end)}' after '${item.slice(0, end)}'`);
      const delta = (to.first - orig.first) & 0xffff;
      for (let p = orig.first; p <= orig.last; p++) {
        if (excluded[p]) continue;
        if (deltas.has(p)) altered.add(p);
        deltas.set(p, delta);
      }
    }
  }

  return merge(prev, { addr, ifname, bestEffort: excludeOnly }, deltas, altered, `${opt} ${value}`);
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

function isEphemeral(port: number, eph: EphemeralRange): boolean {
  return port >= eph[0] && port <= eph[1];
}

/**
 * Parses RANGE at s[start]: digits, optionally "-" digits. Returns the
 * range and the index after it; rejects the rest through `bad`.
 */
function parseRange(s: string, start: number, bad: (d: string) => never): { first: number; last: number; end: number } {
  const first = parsePort(s, start, bad);
  let end = first.end;
  let last = first;
  if (s[end] === '-') {
    last = parsePort(s, end + 1, bad);
    end = last.end;
  }
  if (first.value > last.value)
    bad(`first port ${first.value} is above last port ${last.value} in '${s.slice(start, end)}'`);
  return { first: first.value, last: last.value, end };
}

function parsePort(s: string, start: number, bad: (d: string) => never): { value: number; end: number } {
  let end = start;
  while (end < s.length && s.charCodeAt(end) >= 0x30 && s.charCodeAt(end) <= 0x39) end++;
  if (end === start) {
    const found = start >= s.length ? 'nothing' : `'${s.slice(start)}'`;
    bad(start > 0 ? `expected a port number after '${s.slice(0, start)}', found ${found}`
      : `expected a port number, found ${found}`);
  }
  const digits = s.slice(start, end);
  const value = digits.length > 6 ? Infinity : Number(digits);
  if (value > 65535) bad(`port ${digits} is above 65535`);
  return { value, end };
}

/** Validates and canonicalises a bind address (ipaddr.js form; v4-mapped → IPv4). */
function parseBindAddr(text: string, bad: (d: string) => never): string {
  let a = text;
  if (a.length >= 2 && a[0] === '[' && a[a.length - 1] === ']') a = a.slice(1, -1);
  if (a === '') bad(text === '' ? "empty bind address before '/'" : `empty bind address '${text}'`);
  if (isIPv4(a)) return a;
  if (!isIPv6(a)) bad(`bad bind address '${text}'`);
  const v6 = ipaddr.IPv6.parse(a);
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toString();
}

/** "80, 443, 1000-1010" for a sorted list (at most 10 runs, then "..."). */
function describePorts(ports: number[]): string {
  const runs: string[] = [];
  for (let i = 0; i < ports.length && runs.length <= 10;) {
    let j = i;
    while (j + 1 < ports.length && ports[j + 1] === ports[j] + 1) j++;
    runs.push(i === j ? `${ports[i]}` : `${ports[i]}-${ports[j]}`);
    i = j + 1;
  }
  if (runs.length > 10) runs.splice(10, runs.length - 10, '...');
  return runs.join(', ');
}

/**
 * Adds this option's ports to the previous spec. A port already forwarded
 * for the same (addr, ifname) moves to the new mapping; one forwarded for
 * another bind stays there too. Either way it is reported as altered, as
 * the original does.
 */
function merge(prev: ForwardSpec | undefined, bind: { addr: string | null; ifname: string | null; bestEffort: boolean },
  deltas: Map<number, number>, altered: Set<number>, what: string): ForwardParse {
  const rules: ForwardRule[] = [];
  let target: ForwardRule | null = null;
  for (const old of prev?.rules ?? []) {
    const sameBind = old.addr === bind.addr && old.ifname === bind.ifname;
    let ports = old.ports;
    if (ports.some((fp) => deltas.has(fp.port))) {
      for (const fp of ports) if (deltas.has(fp.port)) altered.add(fp.port);
      if (sameBind) ports = ports.filter((fp) => !deltas.has(fp.port));
    }
    const rule = { ...old, ports };
    if (sameBind && old.bestEffort === bind.bestEffort) target = rule;
    rules.push(rule);
  }
  if (deltas.size) {
    const add: ForwardPort[] = [];
    let sorted = true;
    for (const [port, delta] of deltas) {
      if (add.length && port < add[add.length - 1].port) sorted = false;
      add.push({ port, delta });
    }
    if (!sorted) add.sort((a, b) => a.port - b.port);
    if (target) {
      target.ports = target.ports.length ? target.ports.concat(add).sort((a, b) => a.port - b.port) : add;
    } else {
      rules.push({ ...bind, ports: add });
    }
  }
  const warnings: string[] = [];
  if (altered.size) {
    const list = [...altered].sort((a, b) => a - b);
    warnings.push(`Altering mapping of already mapped port number${list.length > 1 ? 's' : ''} ` +
      `${describePorts(list)}: ${what}`);
  }
  return { spec: { mode: 'spec', rules: rules.filter((r) => r.ports.length) }, warnings };
}

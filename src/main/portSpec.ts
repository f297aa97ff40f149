// TEMPORARY stand-in until the port-spec grammar lands from the `ring`
// branch (it replaces this file). Accepts none/auto/all and plain port lists.
import * as fs from 'node:fs';
import type { ForwardSpec } from '../shared/config';
import { PasstError } from '../shared/errors';

export function readEphemeralRange(): [number, number] {
  try {
    const [a, b] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (a > 0 && b >= a && b < 65536) return [a, b];
  } catch { /* fall through */ }
  return [49152, 65535];
}

export function parseForwardOption(prev: ForwardSpec | undefined, opt: '-t' | '-u' | '-T' | '-U', value: string,
  _mode: 'pasta' | 'passt', _ephemeral: [number, number]): { spec: ForwardSpec; warnings: string[] } {
  if (value === 'none' || value === 'auto') {
    if (prev && prev.mode !== value) throw new PasstError('PASST_ERR_PORT_SPEC', `Port forwarding mode '${value}' conflicts with previous mode`);
    return { spec: { mode: value, rules: [] }, warnings: [] };
  }
  const ports = value.split(',').map((p) => {
    if (!/^\d+$/.test(p) || Number(p) > 65535) throw new PasstError('PASST_ERR_PORT_SPEC', `Invalid port specifier ${value} for ${opt}`);
    return { port: Number(p), delta: 0 };
  });
  const rules = prev && prev.mode === 'spec' ? prev.rules.slice() : [];
  rules.push({ addr: null, ifname: null, ports, bestEffort: false });
  return { spec: { mode: 'spec', rules }, warnings: [] };
}

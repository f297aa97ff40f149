/**
 * ICMP/ICMPv6 echo through ping sockets (SPEC.md §6) against fake sockets:
 * one socket per (guest, target, identifier), identifier mapping,
 * checksums, duplicate suppression, malformed requests and replies, the
 * 60 s timeout, and ping sockets forbidden by ping_group_range.
 */
import test from 'ava';
import { harness, push, runTap, event, frames, saStr, AF_INET, AF_INET6, GUEST4, GW4, GUEST6, GW6 } from './_harness';
import { makeConfig, eth, ipv4, ipv6, icmp6, refChecksum, concat, be16, GUEST_MAC, OUR_MAC, rd16 } from '../helpers/frames';
import { decode6 } from '../helpers/decode';
import { EpollType } from '../../src/shared/epollRef';

const cfg = (mode: 'pasta' | 'passt' = 'pasta') => makeConfig({ mode, name: mode },
  { addr: GUEST4, gateway: GW4, mapHostLoopback: GW4 },
  { addr: GUEST6, gateway: GW6, ourLinkLocal: 'fe80::1', mapHostLoopback: GW6 });

function echo4(dst: string, id: number, seq: number, payload = new Uint8Array(56), type = 8): Uint8Array {
  const m = concat([type, 0, 0, 0], be16(id), be16(seq), payload);
  const c = refChecksum(m);
  m[2] = c >> 8; m[3] = c & 0xff;
  return eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4({ src: GUEST4, dst, proto: 1 }, m));
}
function echo6(dst: string, id: number, seq: number, payload = new Uint8Array(56)): Uint8Array {
  const m = icmp6(GUEST6, dst, concat([128, 0, 0, 0], be16(id), be16(seq), payload));
  return eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6({ src: GUEST6, dst, nh: 58 }, m));
}
/** What a ping socket returns: the kernel's identifier, checksum not ours to trust. */
function reply(type: number, kid: number, seq: number, payload = new Uint8Array(56)): Uint8Array {
  return concat([type, 0, 0xde, 0xad], be16(kid), be16(seq), payload);
}
const pingSocks = (h: ReturnType<typeof harness>) => h.sys.open().filter((s) => s.proto === 1 || s.proto === 58);

test('ping the gateway: one ping socket, request to host loopback, reply with the guest\'s identifier', (t) => {
  const h = harness(cfg());
  const payload = Uint8Array.from({ length: 56 }, (_, i) => i);
  push(h, echo4(GW4, 0x1234, 1, payload));
  push(h, echo4(GW4, 0x1234, 2, payload));
  runTap(h);
  const s = pingSocks(h);
  t.is(s.length, 1);
  t.is(s[0].domain, AF_INET);
  t.is(s[0].proto, 1);
  t.is(saStr(s[0].bound), '0.0.0.0:0', 'identifier 0: the kernel chooses');
  t.is(s[0].sent.length, 2);
  t.is(saStr(s[0].sent[0].addr), '127.0.0.1:0');
  t.is(s[0].sent[0].data[0], 8);
  t.is(s[0].sent[0].data.length, 64);
  s[0].rx.push({ data: reply(0, 0x7777, 1, payload), addr: null }, { data: reply(0, 0x7777, 2, payload), addr: null });
  event(h, EpollType.PING, 0);
  const f = frames(h);
  t.is(f.length, 2);
  for (const [i, fr] of f.entries()) {
    const ip = fr.subarray(14, 34);
    t.is(ip[9], 1);
    t.is(ip[8], 255);
    t.is(`${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`, GW4, 'from the address pinged');
    const m = fr.subarray(34);
    t.is(m[0], 0);
    t.is(rd16(m, 4), 0x1234, 'guest identifier restored');
    t.is(rd16(m, 6), i + 1);
    t.is(refChecksum(m), 0, 'checksum recomputed');
    t.deepEqual(Array.from(m.subarray(8)), Array.from(payload));
  }
  t.is(h.stats.get('pingRequests'), 2);
  t.is(h.stats.get('pingReplies'), 2);
  t.is(h.stats.get('pingFlows'), 1);
});

test('ping -6: ICMPv6 ping socket, checksum with the pseudo-header', (t) => {
  const h = harness(cfg());
  push(h, echo6(GW6, 77, 5));
  runTap(h);
  const s = pingSocks(h);
  t.is(s[0].domain, AF_INET6);
  t.is(s[0].proto, 58);
  t.is(saStr(s[0].sent[0].addr), '[0:0:0:0:0:0:0:1]:0');
  s[0].rx.push({ data: reply(129, 4242, 5), addr: null });
  event(h, EpollType.PING, 0);
  const d = decode6(frames(h)[0]);
  t.is(d.nextHeader, 58);
  t.is(d.src, '20010db8000000000000000000000001');
  t.true(d.l4ChecksumOk);
  t.is(rd16(d.l4, 4), 77);
});

test('flows per identifier and per target; other addresses pass unchanged', (t) => {
  const h = harness(cfg());
  push(h, echo4(GW4, 1, 1));
  push(h, echo4(GW4, 2, 1));
  push(h, echo4('198.51.100.9', 1, 1));
  push(h, echo4(GW4, 1, 2));
  runTap(h);
  const s = pingSocks(h);
  t.is(s.length, 3);
  t.is(saStr(s[2].sent[0].addr), '198.51.100.9:0');
  t.is(s[0].sent.length, 2);
});

test('pasta drops a reply repeating the previous sequence number; passt does not', (t) => {
  for (const mode of ['pasta', 'passt'] as const) {
    const h = harness(cfg(mode));
    push(h, echo4(GW4, 9, 1));
    runTap(h);
    const s = pingSocks(h)[0];
    s.rx.push({ data: reply(0, 1, 1), addr: null }, { data: reply(0, 1, 1), addr: null }, { data: reply(0, 1, 2), addr: null });
    event(h, EpollType.PING, 0);
    t.is(frames(h).length, mode === 'pasta' ? 2 : 3);
    t.is(h.stats.get('icmpDup'), mode === 'pasta' ? 1 : 0);
  }
});

test('malformed: truncated requests, non-echo types, short or wrong replies are dropped and counted', (t) => {
  const h = harness(cfg());
  // 4 bytes of ICMP
  push(h, eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4({ src: GUEST4, dst: GW4, proto: 1 }, new Uint8Array([8, 0, 0, 0]))));
  // echo reply from the guest
  push(h, echo4(GW4, 1, 1, new Uint8Array(8), 0));
  t.is(runTap(h), 2);
  t.is(h.stats.get('truncated'), 1);
  t.is(h.stats.get('icmpNotEcho'), 1);
  t.is(pingSocks(h).length, 0);
  push(h, echo4(GW4, 1, 1));
  runTap(h);
  const s = pingSocks(h)[0];
  s.rx.push({ data: new Uint8Array([0, 0, 0]), addr: null }, { data: reply(3, 1, 1), addr: null },
    { data: reply(129, 1, 1), addr: null });
  event(h, EpollType.PING, 0);
  t.is(frames(h).length, 0);
  t.is(h.stats.get('icmpBadReply'), 3);
  t.is(h.stats.get('dropped'), 5);
});

test('ping flows close 60 s after the last request; replies do not refresh them', (t) => {
  const h = harness(cfg());
  push(h, echo4(GW4, 1, 1));
  runTap(h, 1000);
  const s = pingSocks(h)[0];
  s.rx.push({ data: reply(0, 1, 1), addr: null });
  event(h, EpollType.PING, 0, 1, 50_000);
  frames(h);
  h.core.timerHandler(60_000);
  t.false(s.closed);
  h.core.timerHandler(61_500);
  t.true(s.closed);
  t.is(h.core.table.count, 0);
  push(h, echo4(GW4, 1, 2));
  runTap(h, 62_000);
  t.is(pingSocks(h).length, 1);
  t.is(h.stats.get('pingFlows'), 2);
});

test('ping sockets forbidden (ping_group_range): one warning, every request a counted drop, no crash', (t) => {
  const h = harness(cfg());
  h.sys.failSocket = (_d, proto) => (proto === 1 || proto === 58 ? 13 : 0);
  const lines: string[] = [];
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { log } = require('../../src/shared/log') as typeof import('../../src/shared/log');
  log.configure({ sink: { write: (_l, line) => lines.push(line) } });
  push(h, echo4(GW4, 1, 1));
  push(h, echo4(GW4, 1, 2));
  push(h, echo6(GW6, 1, 1));
  runTap(h);
  t.is(h.stats.get('pingSocketErrors'), 3);
  t.is(h.core.table.count, 0);
  const warnings = lines.filter((l) => /ping_group_range/.test(l));
  t.is(warnings.length, 1);
  t.regex(warnings[0], /EACCES/);
});

test('--no-icmp and disabled families', (t) => {
  const h = harness(makeConfig({ mode: 'pasta' }, { addr: GUEST4, gateway: GW4, mapHostLoopback: GW4 }, { enabled: false }));
  push(h, echo6(GW6, 1, 1));
  runTap(h);
  t.is(h.stats.get('familyOff'), 1);
});

/**
 * UDP translation logic (SPEC.md §5, §2.6–§2.9) against fake sockets:
 * flows from the guest and from forwarded ports, the headers and checksums
 * of frames to the guest, batching, the receive layout in the ring (moves
 * and SKIP records), malformed guest datagrams, DNS forwarding, timeouts.
 */
import test from 'ava';
import {
  harness, push, runTap, event, frames, refOf, sa, saStr, bytes, AF_INET, AF_INET6, GUEST4, GW4, GUEST6, GW6,
} from './_harness';
import { makeConfig, eth, ipv4, ipv6, udp4, udp6, GUEST_MAC, OUR_MAC } from '../helpers/frames';
import { decodeUdp4, decode6 } from '../helpers/decode';
import { EpollType } from '../../src/shared/epollRef';
import { FLOW_TYPE } from '../../src/workers/udp/core';

const pastaCfg = (ip4 = {}, ip6 = {}, over = {}) => makeConfig({ mode: 'pasta', name: 'pasta', ...over },
  { addr: GUEST4, gateway: GW4, mapHostLoopback: GW4, ...ip4 },
  { addr: GUEST6, gateway: GW6, ourLinkLocal: 'fe80::1', mapHostLoopback: GW6, ...ip6 });

function g4(dst: string, sport: number, dport: number, payload: Uint8Array, src = GUEST4): Uint8Array {
  return eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4({ src, dst, proto: 17 }, udp4(src, dst, sport, dport, payload)));
}
function g6(dst: string, sport: number, dport: number, payload: Uint8Array, src = GUEST6): Uint8Array {
  return eth(OUR_MAC, GUEST_MAC, 0x86dd, ipv6({ src, dst, nh: 17 }, udp6(src, dst, sport, dport, payload)));
}
const eq = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

test('guest → gateway: reply socket on the guest source port, connected to host loopback; payload sent as is', (t) => {
  const h = harness(pastaCfg());
  const p = bytes(100);
  push(h, g4(GW4, 40000, 11000, p));
  t.is(runTap(h), 1);
  const s = h.sys.open();
  t.is(s.length, 1);
  t.is(s[0].domain, AF_INET);
  t.is(saStr(s[0].bound), '0.0.0.0:40000', 'SPEC §2.6: the guest source port is kept');
  t.is(saStr(s[0].connected), '127.0.0.1:11000', 'gateway → 127.0.0.1');
  t.true(s[0].opts.some(([l, n, v]) => l === 1 && n === 2 && v === 1), 'SO_REUSEADDR');
  t.is(s[0].sent.length, 1);
  t.true(eq(s[0].sent[0].data, p));
  t.is(s[0].sent[0].addr, null, 'connected socket: no explicit destination');
  t.true(h.sys.epoll.has(s[0].fds[0]));
  t.is(h.stats.get('flows'), 1);
  t.is(h.stats.get('toSock'), 1);
});

test('consecutive datagrams of one flow leave with one sendmmsg, boundaries kept; zero-length forwarded', (t) => {
  const h = harness(pastaCfg());
  const sizes = [1, 0, 1400, 9000, 65000, 3];
  for (const [i, n] of sizes.entries()) push(h, g4(GW4, 40000, 11000, bytes(n, i)));
  push(h, g4(GW4, 40001, 11000, bytes(10)));
  push(h, g4(GW4, 40000, 11000, bytes(11)));
  runTap(h);
  const [a, b] = h.sys.open();
  t.deepEqual(a.sendCalls, [6, 1]);
  t.deepEqual(b.sendCalls, [1]);
  t.deepEqual(a.sent.map((d) => d.data.length), [...sizes, 11]);
  for (const [i, n] of sizes.entries()) t.true(eq(a.sent[i].data, bytes(n, i)));
  t.is(h.stats.get('flows'), 2);
});

test('socket → guest over IPv4: addresses swapped back, TTL 255, checksum 0, our and guest MACs', (t) => {
  const h = harness(pastaCfg());
  push(h, g4(GW4, 40000, 11000, bytes(5)));
  runTap(h);
  const s = h.sys.open()[0];
  const reply = bytes(777, 9);
  s.rx.push({ data: reply, addr: null });
  event(h, EpollType.UDP_REPLY, refOf(h, s.fds[0]) & 0xffffff);
  const f = frames(h);
  t.is(f.length, 1);
  const d = decodeUdp4(f[0]);
  t.is(d.dstMac, GUEST_MAC);
  t.is(d.srcMac, OUR_MAC);
  t.is(d.src, GW4, 'from the address the guest sent to');
  t.is(d.dst, GUEST4);
  t.is(d.sport, 11000);
  t.is(d.dport, 40000);
  t.is(d.ttl, 255);
  t.true(d.ipChecksumOk);
  t.is(d.udpChecksum, 0, 'SPEC §1.4: UDP over IPv4 checksum 0');
  t.is(d.udpLen, 8 + 777);
  t.is(d.totalLen, 20 + 8 + 777);
  t.true(eq(d.payload, reply));
  t.is(h.stats.get('toTap'), 1);
});

test('socket → guest over IPv6: hop limit 255, valid checksum, ::1 mapped back to the gateway', (t) => {
  const h = harness(pastaCfg());
  push(h, g6(GW6, 40000, 11000, bytes(5)));
  runTap(h);
  const s = h.sys.open()[0];
  t.is(s.domain, AF_INET6);
  t.is(saStr(s.bound), '[0:0:0:0:0:0:0:0]:40000');
  t.is(saStr(s.connected), '[0:0:0:0:0:0:0:1]:11000');
  t.true(s.opts.some(([l, n, v]) => l === 41 && n === 26 && v === 1), 'IPV6_V6ONLY');
  for (const n of [0, 1, 100, 65000]) s.rx.push({ data: bytes(n, n), addr: null });
  event(h, EpollType.UDP_REPLY, refOf(h, s.fds[0]) & 0xffffff);
  const f = frames(h);
  t.is(f.length, 4);
  for (const [i, n] of [0, 1, 100, 65000].entries()) {
    const d = decode6(f[i]);
    t.is(d.hopLimit, 255);
    t.is(d.nextHeader, 17);
    t.is(d.src, '20010db8000000000000000000000001');
    t.is(d.dst, '20010db8000000000000000000000002');
    t.true(d.l4ChecksumOk, `checksum of a ${n}-byte datagram`);
    t.not((d.l4[6] << 8) | d.l4[7], 0);
    t.is(d.payloadLen, 8 + n);
    t.true(eq(d.l4.subarray(8), bytes(n, n)));
  }
});

test('receive layout: mixed sizes in one batch come out whole and in order (moves and SKIP records)', (t) => {
  for (const v6 of [false, true]) {
    const h = harness(pastaCfg());
    push(h, v6 ? g6(GW6, 40000, 11000, bytes(1)) : g4(GW4, 40000, 11000, bytes(1)));
    runTap(h);
    const s = h.sys.open()[0];
    const sizes = [1, 5000, 100, 65000, 3, 60000, 4096, 4097, 8, 9, 65000, 1472, 20000];
    for (let round = 0; round < 3; round++) {
      for (const [i, n] of sizes.entries()) s.rx.push({ data: bytes(n, i + round), addr: null });
      event(h, EpollType.UDP_REPLY, refOf(h, s.fds[0]) & 0xffffff);
      const f = frames(h);
      t.is(f.length, sizes.length);
      for (const [i, n] of sizes.entries()) {
        const l4 = v6 ? decode6(f[i]).l4 : f[i].subarray(34);
        t.is(f[i].length, 14 + (v6 ? 40 : 20) + 8 + n);
        t.true(eq(l4.subarray(8), bytes(n, i + round)), `datagram ${i} (${n} bytes) intact`);
        if (v6) t.true(decode6(f[i]).l4ChecksumOk);
      }
    }
  }
});

test('datagrams too big for a frame are dropped and counted', (t) => {
  const h = harness(pastaCfg());
  push(h, g6(GW6, 40000, 11000, bytes(1)));
  runTap(h);
  const s = h.sys.open()[0];
  s.rx.push({ data: bytes(65473), addr: null }, { data: bytes(65474), addr: null }, { data: bytes(65500), addr: null });
  event(h, EpollType.UDP_REPLY, refOf(h, s.fds[0]) & 0xffffff);
  t.is(frames(h).length, 1, 'the largest IPv6 payload fits a 65535-byte frame');
  t.is(h.stats.get('tooBig'), 2);
});

test('malformed guest datagrams are dropped and counted, no socket made', (t) => {
  const h = harness(pastaCfg());
  const good = g4(GW4, 40000, 11000, bytes(20));
  // UDP length field beyond the IP payload
  const lie = good.slice(); lie[34 + 4] = 0; lie[34 + 5] = 200;
  push(h, lie);
  // UDP length field below the header size
  const short = good.slice(); short[34 + 5] = 4; short[34 + 4] = 0;
  push(h, short);
  // IP payload shorter than a UDP header
  push(h, eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4({ src: GUEST4, dst: GW4, proto: 17 }, new Uint8Array([0x9c, 0x40, 0x2a, 0xf8]))));
  // IPv6 with a zero checksum (RFC 8200 §8.1)
  const z = g6(GW6, 40000, 11000, bytes(20)); z[54 + 6] = 0; z[54 + 7] = 0;
  push(h, z);
  // port 0
  push(h, g4(GW4, 0, 11000, bytes(1)));
  push(h, g4(GW4, 40000, 0, bytes(1)));
  // multicast and unspecified sources, unspecified destination
  push(h, g4(GW4, 40000, 11000, bytes(1), '224.0.0.1'));
  push(h, g4(GW4, 40000, 11000, bytes(1), '0.0.0.0'));
  push(h, g4('0.0.0.0', 40000, 11000, bytes(1)));
  // record offsets pointing past the record
  push(h, good, 5000);
  t.is(runTap(h), 10);
  t.is(h.sys.all.length, 0);
  t.is(h.stats.get('badLength'), 2);
  t.is(h.stats.get('truncated'), 2);
  t.is(h.stats.get('zeroChecksum'), 1);
  t.is(h.stats.get('zeroPort'), 2);
  t.is(h.stats.get('badAddr'), 3);
  t.is(h.stats.get('dropped'), 10);
  t.is(h.stats.get('frames'), 10);
});

test('a UDP length field shorter than the payload is honoured (trailing bytes ignored)', (t) => {
  const h = harness(pastaCfg());
  const f = g4(GW4, 40000, 11000, bytes(20));
  f[34 + 4] = 0; f[34 + 5] = 8 + 5;
  push(h, f);
  runTap(h);
  const s = h.sys.open()[0];
  t.true(eq(s.sent[0].data, bytes(20).subarray(0, 5)));
});

test('flow timeout: the idle flow and its socket go, a new datagram from the same port makes a new one', (t) => {
  const h = harness(pastaCfg(), { udpTimeoutMs: 180_000 });
  push(h, g4(GW4, 40000, 11000, bytes(1)));
  runTap(h, 1000);
  const first = h.sys.open()[0];
  h.core.timerHandler(1000);
  h.core.timerHandler(100_000);
  t.false(first.closed, 'not idle long enough');
  // traffic from the socket refreshes it
  first.rx.push({ data: bytes(3), addr: null });
  event(h, EpollType.UDP_REPLY, refOf(h, first.fds[0]) & 0xffffff, 1, 150_000);
  frames(h);
  h.core.timerHandler(300_000);
  t.false(first.closed, 'refreshed at 150 s by the reply');
  h.core.timerHandler(331_000);
  t.true(first.closed, '180 s after the last datagram');
  t.false(h.sys.epoll.has(first.fds[0] ?? -1));
  t.is(h.stats.get('expired'), 1);
  t.is(h.core.table.count, 0);
  push(h, g4(GW4, 40000, 11000, bytes(1)));
  runTap(h, 400_000);
  const second = h.sys.open();
  t.is(second.length, 1);
  t.not(second[0], first);
  t.is(saStr(second[0].bound), '0.0.0.0:40000');
  t.is(h.stats.get('flows'), 2);
});

test('DNS forwarding: queries to the --dns-forward address go to --dns-host, replies come from the forward address', (t) => {
  const h = harness(pastaCfg({ dnsMatch: '198.51.100.53', dnsHost: '127.0.11.53' },
    { dnsMatch: '2001:db8:1::53', dnsHost: '::1' }));
  push(h, g4('198.51.100.53', 40000, 53, bytes(30)));
  push(h, g4('198.51.100.53', 40001, 853, bytes(30)));
  push(h, g4('198.51.100.53', 40002, 5353, bytes(30)));
  push(h, g6('2001:db8:1::53', 40003, 53, bytes(30)));
  runTap(h);
  const s = h.sys.open();
  t.deepEqual(s.map((x) => saStr(x.connected)), ['127.0.11.53:53', '127.0.11.53:853', '198.51.100.53:5353',
    '[0:0:0:0:0:0:0:1]:53']);
  s[0].rx.push({ data: bytes(40), addr: null });
  event(h, EpollType.UDP_REPLY, refOf(h, s[0].fds[0]) & 0xffffff);
  s[3].rx.push({ data: bytes(41), addr: null });
  event(h, EpollType.UDP_REPLY, refOf(h, s[3].fds[0]) & 0xffffff);
  const [f4, f6] = frames(h);
  const d = decodeUdp4(f4);
  t.is(`${d.src}:${d.sport}`, '198.51.100.53:53');
  t.is(`${d.dst}:${d.dport}`, `${GUEST4}:40000`);
  const d6 = decode6(f6);
  t.is(d6.src, '20010db8000100000000000000000053');
  t.true(d6.l4ChecksumOk);
});

test('without a dns-host, no redirection; --outbound address and -4 respected', (t) => {
  const h = harness(pastaCfg({ outbound: '192.0.2.2' }, { enabled: false }));
  push(h, g4('198.51.100.53', 40000, 53, bytes(1)));
  push(h, g6(GW6, 40000, 53, bytes(1)));
  runTap(h);
  const s = h.sys.open();
  t.is(s.length, 1);
  t.is(saStr(s[0].connected), '198.51.100.53:53');
  t.is(saStr(s[0].bound), '192.0.2.2:40000');
  t.is(h.stats.get('familyOff'), 1);
});

test('bind failure (port taken on the host) drops the datagram; the next one tries again', (t) => {
  const h = harness(pastaCfg());
  h.sys.failBind = () => 98;
  push(h, g4(GW4, 40000, 11000, bytes(1)));
  runTap(h);
  t.is(h.sys.open().length, 0);
  t.is(h.stats.get('bindErrors'), 1);
  t.is(h.core.table.count, 0);
  h.sys.failBind = null;
  push(h, g4(GW4, 40000, 11000, bytes(1)));
  runTap(h);
  t.is(h.sys.open().length, 1);
});

test('full flow table: new flows are refused and counted, existing ones keep working', (t) => {
  const h = harness(pastaCfg(), { capacity: 3 });
  for (let p = 40000; p < 40005; p++) push(h, g4(GW4, p, 11000, bytes(1)));
  push(h, g4(GW4, 40000, 11000, bytes(2)));
  runTap(h);
  t.is(h.sys.open().length, 3);
  t.is(h.stats.get('tableFull'), 2);
  t.is(h.sys.open()[0].sent.length, 2);
});

test('many concurrent flows each get their own socket and their own replies', (t) => {
  const N = 200;
  const hh = harness(pastaCfg(), { capacity: N });
  for (let i = 0; i < N; i++) push(hh, g4(GW4, 20000 + i, 11000 + (i % 7), bytes(10, i)));
  runTap(hh);
  const socks = hh.sys.open();
  t.is(socks.length, N);
  for (const [i, s] of socks.entries()) s.rx.push({ data: bytes(20, i), addr: null });
  for (const s of socks) event(hh, EpollType.UDP_REPLY, refOf(hh, s.fds[0]) & 0xffffff);
  const f = frames(hh);
  t.is(f.length, N);
  for (const [i, fr] of f.entries()) {
    const d = decodeUdp4(fr);
    t.is(d.dport, 20000 + i);
    t.true(eq(d.payload, bytes(20, i)));
  }
});

test('-u listener, non-loopback source: flow to the guest, source kept; guest replies leave from the listener', (t) => {
  const h = harness(pastaCfg());
  const lfd = h.sys.add(AF_INET6);
  t.true(h.core.listen({ id: 7, fd: lfd, side: 'host', port: 11010, delta: 5 }));
  t.is(h.sys.epoll.get(lfd)?.ref, ((EpollType.UDP_LISTEN << 24) | 0) >>> 0);
  const ls = h.sys.sock(lfd);
  ls.rx.push({ data: bytes(50, 1), addr: sa('::ffff:c633:6407', 4000) });
  ls.rx.push({ data: bytes(51, 2), addr: sa('2001:db8:5::7', 4001) });
  ls.rx.push({ data: bytes(52, 3), addr: sa('::ffff:c633:6407', 4000) });
  event(h, EpollType.UDP_LISTEN, 0);
  const f = frames(h);
  t.is(f.length, 3);
  const a = decodeUdp4(f[0]);
  t.is(`${a.src}:${a.sport} → ${a.dst}:${a.dport}`, `198.51.100.7:4000 → ${GUEST4}:11015`, 'port + delta');
  t.true(eq(a.payload, bytes(50, 1)));
  const b = decode6(f[1]);
  t.is(b.src, '20010db8000500000000000000000007');
  t.true(b.l4ChecksumOk);
  t.is(decodeUdp4(f[2]).dport, 11015);
  t.is(h.stats.get('flows'), 2, 'the third datagram found its flow');
  // the guest answers: out through the listener's duplicate, to the peer
  push(h, g4('198.51.100.7', 11015, 4000, bytes(9, 4)));
  push(h, g4('198.51.100.7', 11015, 4000, bytes(9, 5)));
  runTap(h);
  t.deepEqual(ls.sendCalls, [2]);
  t.is(saStr(ls.sent[0].addr), '198.51.100.7:4000');
  t.true(eq(ls.sent[1].data, bytes(9, 5)));
  t.is(h.sys.all.length, 1, 'no reply socket for a flow whose target is the tap');
  // unlisten: the listener leaves epoll, flows keep their duplicate
  h.core.unlisten(7);
  t.false(h.sys.epoll.has(lfd));
  t.false(ls.closed);
  push(h, g4('198.51.100.7', 11015, 4000, bytes(9, 6)));
  runTap(h);
  t.is(ls.sent.length, 3);
  h.core.timerHandler(1e9);
  t.true(ls.closed, 'the last duplicate closed with the last flow');
});

test('-u listener, loopback source: IPv4 127.0.0.1 appears as the gateway in passt', (t) => {
  const h = harness(makeConfig({}, { addr: GUEST4, gateway: GW4, mapHostLoopback: GW4 }));
  const lfd = h.sys.add(AF_INET);
  h.core.listen({ id: 1, fd: lfd, side: 'host', port: 11011, delta: 0 });
  h.sys.sock(lfd).rx.push({ data: bytes(5), addr: sa('127.0.0.1', 5555) });
  h.sys.sock(lfd).rx.push({ data: bytes(5), addr: sa('192.0.2.2', 5556) });
  event(h, EpollType.UDP_LISTEN, 0);
  const f = frames(h).map(decodeUdp4);
  t.is(`${f[0].src}:${f[0].sport}`, `${GW4}:5555`);
  t.is(`${f[1].src}:${f[1].sport}`, `${GW4}:5556`, 'the guest\'s own address is unusable as a source: gateway');
});

test('-u listener in pasta, loopback source: spliced to the namespace, no Layer 2', (t) => {
  const h = harness(pastaCfg());
  const lfd = h.sys.add(AF_INET);
  h.core.listen({ id: 1, fd: lfd, side: 'host', port: 11012, delta: 1 });
  const ls = h.sys.sock(lfd);
  ls.rx.push({ data: bytes(65000, 1), addr: sa('127.0.0.1', 6000) }, { data: bytes(1, 2), addr: sa('127.0.0.1', 6000) });
  event(h, EpollType.UDP_LISTEN, 0);
  t.is(frames(h).length, 0);
  const ns = h.sys.all.find((s) => s.inNs);
  t.truthy(ns);
  t.is(saStr(ns!.bound), '0.0.0.0:6000', 'source port kept');
  t.is(saStr(ns!.connected), `${GUEST4}:11013`, 'the namespace\'s own address, port + delta');
  t.deepEqual(ns!.sendCalls, [2]);
  t.true(eq(ns!.sent[0].data, bytes(65000, 1)));
  t.is(h.stats.get('spliced'), 2);
  // reply from the namespace goes out of the listener to the original peer
  ns!.rx.push({ data: bytes(70, 3), addr: null });
  event(h, EpollType.UDP_REPLY, refOf(h, ns!.fds[0]) & 0xffffff);
  t.is(saStr(ls.sent[0].addr), '127.0.0.1:6000');
  t.true(eq(ls.sent[0].data, bytes(70, 3)));
  t.is(frames(h).length, 0);
});

test('-u listener in pasta with --host-lo-to-ns-lo, and with --splice off', (t) => {
  const h = harness(pastaCfg({}, {}, { hostLoToNsLo: true }));
  const lfd = h.sys.add(AF_INET6);
  h.core.listen({ id: 1, fd: lfd, side: 'host', port: 11013, delta: 0 });
  h.sys.sock(lfd).rx.push({ data: bytes(5), addr: sa('::1', 6000) });
  event(h, EpollType.UDP_LISTEN, 0);
  t.is(saStr(h.sys.all.find((s) => s.inNs)!.connected), '[0:0:0:0:0:0:0:1]:11013');
  const h2 = harness(pastaCfg({}, {}, { noSplice: true }));
  const l2 = h2.sys.add(AF_INET6);
  h2.core.listen({ id: 1, fd: l2, side: 'host', port: 11013, delta: 0 });
  h2.sys.sock(l2).rx.push({ data: bytes(5), addr: sa('::1', 6000) });
  event(h2, EpollType.UDP_LISTEN, 0);
  const d = decode6(frames(h2)[0]);
  t.is(d.src, '20010db8000000000000000000000001', '::1 → map-host-loopback (the gateway)');
});

test('-U listener: namespace loopback → host loopback from the same address and port; others refused', (t) => {
  const h = harness(pastaCfg());
  const lfd = h.sys.add(AF_INET);
  h.core.listen({ id: 3, fd: lfd, side: 'ns', port: 11020, delta: 2 });
  const ls = h.sys.sock(lfd);
  ls.rx.push({ data: bytes(10, 1), addr: sa('127.0.0.1', 7000) }, { data: bytes(10, 2), addr: sa('192.0.2.2', 7001) });
  event(h, EpollType.UDP_LISTEN, 0);
  const host = h.sys.all.filter((s) => s !== ls);
  t.is(host.length, 1);
  t.false(host[0].inNs);
  t.is(saStr(host[0].bound), '127.0.0.1:7000');
  t.is(saStr(host[0].connected), '127.0.0.1:11022');
  t.is(host[0].sent.length, 1);
  t.is(h.stats.get('notLoopback'), 1);
  host[0].rx.push({ data: bytes(11, 3), addr: null });
  event(h, EpollType.UDP_REPLY, refOf(h, host[0].fds[0]) & 0xffffff);
  t.is(saStr(ls.sent[0].addr), '127.0.0.1:7000');
  t.is(h.core.ftype[0], FLOW_TYPE.UDP);
});

test('ring towards tap-TX full: tap-bound sockets pause (datagrams wait in the socket) and resume; spliced ones go on', (t) => {
  const h = harness(pastaCfg(), { outRing: 140 * 1024 });
  push(h, g4(GW4, 40000, 11000, bytes(1)));
  runTap(h);
  const s = h.sys.open()[0];
  const fd = s.fds[0];
  for (let i = 0; i < 6; i++) s.rx.push({ data: bytes(60000, i), addr: null });
  event(h, EpollType.UDP_REPLY, refOf(h, fd) & 0xffffff);
  t.true(h.stats.get('toTap') < 6);
  t.is(h.stats.get('paused'), 1);
  t.is(h.sys.epoll.get(fd)?.events, 0, 'out of epoll\'s interest');
  t.true(s.rx.length > 0, 'the rest waits in the socket');
  t.false(h.core.canResume());
  const got: Uint8Array[] = [];
  for (let k = 0; k < 10 && (s.rx.length || got.length < 6); k++) {
    got.push(...frames(h)); // tap-TX drains
    if (h.core.paused.size) {
      t.true(h.core.canResume());
      t.is(h.core.resume(), 1);
      t.is(h.sys.epoll.get(fd)?.events, 1);
    }
    if (s.rx.length) event(h, EpollType.UDP_REPLY, refOf(h, fd) & 0xffffff);
  }
  got.push(...frames(h));
  t.is(got.length, 6);
  for (const [i, f] of got.entries()) t.true(eq(f.subarray(42), bytes(60000, i)));
  t.is(h.stats.get('dropped'), 0);
  t.is(h.stats.get('ringFull'), 0);

  // a spliced flow keeps moving while the ring is full
  const lfd = h.sys.add(AF_INET);
  h.core.listen({ id: 1, fd: lfd, side: 'host', port: 11012, delta: 0 });
  h.sys.sock(lfd).rx.push({ data: bytes(30000, 1), addr: sa('127.0.0.1', 6000) });
  event(h, EpollType.UDP_LISTEN, 0);
  const ns = h.sys.all.find((x) => x.inNs)!;
  t.is(ns.sent.length, 1);
  for (let i = 0; i < 6; i++) s.rx.push({ data: bytes(60000, i), addr: null });
  event(h, EpollType.UDP_REPLY, refOf(h, fd) & 0xffffff); // fills the ring again
  ns.rx.push({ data: bytes(20000, 2), addr: null });
  event(h, EpollType.UDP_REPLY, refOf(h, ns.fds[0]) & 0xffffff);
  t.is(h.sys.sock(lfd).sent.length, 1, 'namespace → host loopback through the scratch area');
  t.is(h.stats.get('spliced'), 2);
  // a paused flow that goes away leaves nothing to resume
  h.core.timerHandler(1e9);
  t.is(h.core.paused.size, 0);
});

test('batch size 1 (one datagram per recvmmsg, as the C pasta) gives the same frames', (t) => {
  const h = harness(pastaCfg(), { batch: 1 });
  push(h, g4(GW4, 40000, 11000, bytes(1)));
  runTap(h);
  const s = h.sys.open()[0];
  for (let i = 0; i < 10; i++) s.rx.push({ data: bytes(100 * i, i), addr: null });
  event(h, EpollType.UDP_REPLY, refOf(h, s.fds[0]) & 0xffffff);
  // MAX_ROUNDS calls per event: the rest waits for the next (level-triggered) event
  event(h, EpollType.UDP_REPLY, refOf(h, s.fds[0]) & 0xffffff);
  event(h, EpollType.UDP_REPLY, refOf(h, s.fds[0]) & 0xffffff);
  const f = frames(h);
  t.is(f.length, 10);
  for (const [i, fr] of f.entries()) t.true(eq(fr.subarray(42), bytes(100 * i, i)));
});

test('SPEC §5.1: a datagram to 255.255.255.255 that cannot be connected is dropped', (t) => {
  const h = harness(pastaCfg());
  const orig = h.sys.connect.bind(h.sys);
  h.sys.connect = (fd, a) => (a[4] === 255 ? -13 : orig(fd, a));
  push(h, g4('255.255.255.255', 40000, 11000, bytes(1)));
  runTap(h);
  t.is(h.stats.get('connectErrors'), 1);
  t.is(h.sys.open().length, 0);
});

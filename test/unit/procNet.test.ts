/**
 * /proc/net/{tcp,tcp6,udp,udp6} parsing: states, IPv4 and IPv6 lines, the
 * header, truncated and garbage lines, and the live files of this machine
 * with sockets we open ourselves.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as dgram from 'node:dgram';
import { procNetPorts, TCP_LISTEN, UDP_UNCONNECTED } from '../../src/main/procNet';
import { testProp, fc } from '../_lib/fcAva';

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1682 1 00000000b1955c0c 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2211 1 0000000000000000 100 0 0 10 0
   2: 0F02000A:0016 0202000A:D2F4 01 00000000:00000000 02:0009C1A2 00000000     0        0 3344 2 0000000000000000 20 4 29 10 -1
   3: 0100007F:ffff 00000000:0000 0a 00000000:00000000 00:00000000 00000000     0        0 5 1 0 100 0 0 10 0
`;

const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:0277 00000000000000000000000001000000:B0A2 01 00000000:00000000 00:00000000 00000000     0        0 8 1 0 20 4 30 10 -1
`;

const UDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 1 2 0 0
  456: 0F02000A:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2 2 0 0
  789: 0F02000A:A1B2 08080808:0035 01 00000000:00000000 00:00000000 00000000  1000        0 3 2 0 0
`;

test('TCP: LISTEN sockets of IPv4 and IPv6 files, accumulated in one set', (t) => {
  const ports = procNetPorts(TCP, TCP_LISTEN);
  t.deepEqual([...ports].sort((a, b) => a - b), [22, 8080, 65535]);
  procNetPorts(TCP6, TCP_LISTEN, ports);
  t.deepEqual([...ports].sort((a, b) => a - b), [22, 80, 8080, 65535]);
});

test('UDP: unconnected sockets only', (t) => {
  t.deepEqual([...procNetPorts(UDP, UDP_UNCONNECTED)].sort((a, b) => a - b), [53, 68]);
  t.deepEqual([...procNetPorts(UDP, TCP_LISTEN)], []);
});

test('the first line is always the header, even if it looks like an entry', (t) => {
  const body = '   0: 00000000:0016 00000000:0000 0A 0:0 0:0 0 0 0 1\n';
  t.deepEqual([...procNetPorts(body + body.replace('0016', '0017'), TCP_LISTEN)], [23]);
  t.deepEqual([...procNetPorts('', TCP_LISTEN)], []);
  t.deepEqual([...procNetPorts('header only', TCP_LISTEN)], []);
  t.deepEqual([...procNetPorts('header\n', TCP_LISTEN)], []);
});

test('truncated and garbage lines are skipped', (t) => {
  const lines = TCP.split('\n');
  const text = [
    lines[0],
    lines[1],
    '   1: 0100007F:1F90 00000000:0000', // truncated before the state
    '   2: 0100007F:1F91 00000000:0000 0', // truncated in the state
    '   3: 0100007F:1F92 0000', // truncated in the remote address
    '   4: 0100007F:1F', // truncated in the port
    'garbage',
    '   5 0100007F:1F93 00000000:0000 0A', // no colon after sl
    '   6: 0100007G:1F94 00000000:0000 0A', // bad hex address
    '   7: 0100007F:1F9500 00000000:0000 0A', // port too long
    '   8: 0100007F 00000000:0000 0A', // no port
    '   9: 01007F:1F96 00000000:0000 0A', // address of 6 digits
    '  10: 0100007F:1F97 00000000:0000 0A0', // state of 3 digits
    '',
    '\t  11: 0100007F:0050   00000000:0000 0A  trailing  ',
    '  12: 0100007F:0051 00000000:0000 0A', // ends without a newline
  ].join('\n');
  t.deepEqual([...procNetPorts(text, TCP_LISTEN)].sort((a, b) => a - b), [22, 80, 81]);
});

testProp(
  'arbitrary text never throws and yields only ports',
  [fc.oneof(fc.string({ maxLength: 400 }), fc.array(fc.constantFrom(...TCP.split(/(\s+)/), ...TCP6.split(/(\s+)/), ':', '\n'), { maxLength: 80 }).map((a) => a.join('')))],
  (t, text) => {
    const ports = procNetPorts(text, TCP_LISTEN);
    for (const p of ports) t.true(Number.isInteger(p) && p >= 0 && p <= 65535);
    t.pass();
  },
  { numRuns: 2000 },
);

function listenTcp(): Promise<net.Server> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

function bindUdp(type: 'udp4' | 'udp6', address: string): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket(type);
    s.once('error', reject);
    s.bind(0, address, () => resolve(s));
  });
}

test('live /proc/net files show the sockets we open', async (t) => {
  const tcp = await listenTcp();
  const udp4 = await bindUdp('udp4', '127.0.0.1');
  const tcpPort = (tcp.address() as net.AddressInfo).port;
  const udpPort = udp4.address().port;
  try {
    const listening = procNetPorts(fs.readFileSync('/proc/net/tcp', 'utf8'), TCP_LISTEN);
    t.true(listening.has(tcpPort), `TCP ${tcpPort} listening`);
    const unconnected = procNetPorts(fs.readFileSync('/proc/net/udp', 'utf8'), UDP_UNCONNECTED);
    t.true(unconnected.has(udpPort), `UDP ${udpPort} bound`);
    if (fs.existsSync('/proc/net/udp6')) {
      const udp6 = await bindUdp('udp6', '::1').catch(() => null);
      if (udp6) {
        const p6 = udp6.address().port;
        t.true(procNetPorts(fs.readFileSync('/proc/net/udp6', 'utf8'), UDP_UNCONNECTED).has(p6), `UDP6 ${p6}`);
        udp6.close();
      }
    }
  } finally {
    tcp.close();
    udp4.close();
  }
});

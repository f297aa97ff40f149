/**
 * A small UDP tool for end-to-end tests, run inside a namespace (usually as
 * pasta's command). Prints one JSON line on stdout.
 *
 *   node udpTool.js client ADDR PORT [--sizes 1,100,65000] [--flows N] [--bind PORT] [--rounds R]
 *       N sockets (bound to PORT, PORT+1, ... with --bind) each send every
 *       size R times to ADDR:PORT and wait for the identical echo (from
 *       ADDR:PORT); retries a lost datagram up to 5 times.
 *       → {"ok":n,"bad":[...],"lost":[...]}
 *   node udpTool.js dns ADDR [PORT]
 *       Sends a DNS query for "passt.test" and waits for the answer.
 *       → {"from":"addr:port","id":n,"answer":"a.b.c.d"}
 *   node udpTool.js echo ADDR PORT [--seconds S]
 *       Echo server (answers every datagram with the same bytes); prints
 *       {"ready":true} when bound, then {"count":n} when it ends.
 *   node udpTool.js resolver ADDR PORT [--seconds S]
 *       DNS stand-in (dns.ts): answers every query with 192.0.2.123; prints
 *       {"ready":true} when bound, then {"count":n} when it ends.
 *   node udpTool.js raw IFNAME HEX...
 *       Sends each hex string as an Ethernet frame out of IFNAME (AF_PACKET),
 *       with the interface's MAC address as the source.
 *       → {"sent":n}
 */
import * as dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { dnsAnswer } from './dns';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
}

function fill(n: number, flow: number, seq: number): Buffer {
  const b = Buffer.alloc(n);
  let x = (flow * 7919 + seq * 104729 + n) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/**
 * Sends data until its echo comes back. `answered` holds the payloads of
 * this socket's earlier exchanges: a late echo of a retried one (a loaded
 * machine) is passed over, not taken for a bad answer to this one.
 */
function exchange(sock: dgram.Socket, addr: string, port: number, data: Buffer, answered: Set<string>): Promise<'ok' | 'bad' | 'lost'> {
  return new Promise((resolve) => {
    let tries = 0;
    let timer: NodeJS.Timeout;
    const onMsg = (m: Buffer, r: dgram.RemoteInfo) => {
      if (r.port !== port) return;
      if (!m.equals(data) && answered.has(m.toString('base64'))) return;
      answered.add(data.toString('base64'));
      clearTimeout(timer);
      sock.off('message', onMsg);
      resolve(m.equals(data) ? 'ok' : 'bad');
    };
    sock.on('message', onMsg);
    const send = () => {
      if (tries++ === 6) {
        sock.off('message', onMsg);
        resolve('lost');
        return;
      }
      sock.send(data, port, addr);
      timer = setTimeout(send, 400);
    };
    send();
  });
}

async function client(addr: string, port: number): Promise<void> {
  const sizes = arg('--sizes', '1,100,1400').split(',').map(Number);
  const flows = Number(arg('--flows', '1'));
  const rounds = Number(arg('--rounds', '1'));
  const bind = Number(arg('--bind', '0'));
  const fam = addr.includes(':') ? 'udp6' : 'udp4';
  const res = { ok: 0, bad: [] as string[], lost: [] as string[], ports: [] as number[] };
  await Promise.all(Array.from({ length: flows }, async (_, f) => {
    const sock = dgram.createSocket({ type: fam, recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
    await new Promise<void>((r) => sock.bind(bind ? bind + f : 0, r));
    res.ports.push(sock.address().port);
    const answered = new Set<string>();
    for (let round = 0; round < rounds; round++) {
      for (const n of sizes) {
        const r = await exchange(sock, addr, port, fill(n, f, round), answered);
        if (r === 'ok') res.ok++;
        else res[r].push(`flow ${f} size ${n} round ${round}`);
      }
    }
    sock.close();
  }));
  console.log(JSON.stringify(res));
}

function dnsQuery(id: number): Buffer {
  const q = Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  const name = Buffer.concat(['passt', 'test'].map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])));
  return Buffer.concat([q, name, Buffer.from([0, 0, 1, 0, 1])]);
}

async function dns(addr: string, port: number): Promise<void> {
  const sock = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
  const id = 0x4242;
  const q = dnsQuery(id);
  const out = await new Promise<object>((resolve) => {
    let tries = 0;
    let timer: NodeJS.Timeout;
    sock.on('message', (m, r) => {
      clearTimeout(timer);
      const a = m.subarray(m.length - 4);
      resolve({ from: `${r.address}:${r.port}`, id: m.readUInt16BE(0), answer: Array.from(a).join('.') });
    });
    const send = () => {
      if (tries++ === 5) { resolve({ error: 'timeout' }); return; }
      sock.send(q, port, addr);
      timer = setTimeout(send, 500);
    };
    send();
  });
  sock.close();
  console.log(JSON.stringify(out));
}

async function echo(addr: string, port: number, resolver = false): Promise<void> {
  const sock = dgram.createSocket({ type: addr.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 1 << 20 });
  let count = 0;
  sock.on('message', (m, r) => {
    count++;
    const a = resolver ? dnsAnswer(m) : m;
    if (a) sock.send(a, r.port, r.address);
  });
  await new Promise<void>((r) => sock.bind(port, addr, r));
  console.log(JSON.stringify({ ready: true }));
  await new Promise((r) => setTimeout(r, Number(arg('--seconds', '20')) * 1000));
  sock.close();
  console.log(JSON.stringify({ count }));
}

function raw(ifname: string, frames: string[]): void {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { native } = require('../../src/shared/native') as typeof import('../../src/shared/native');
  const AF_PACKET = 17;
  const fd = native.socket(AF_PACKET, 3 /* SOCK_RAW */, 0);
  if (fd < 0) throw new Error(`socket: ${fd}`);
  // not /sys: it may show another namespace's devices
  const link = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', ifname], { encoding: 'utf8' }))[0];
  const ifindex = Number(link.ifindex);
  const mac = Buffer.from(String(link.address).replace(/:/g, ''), 'hex');
  let sent = 0;
  for (const h of frames) {
    const f = Uint8Array.from(Buffer.from(h, 'hex'));
    f.set(mac, 6);
    // sockaddr_ll: family, protocol (0: taken from the frame), ifindex, hatype, pkttype, halen, addr
    const sll = new Uint8Array(28);
    sll[0] = AF_PACKET;
    new DataView(sll.buffer).setInt32(4, ifindex, true);
    sll[11] = 6;
    sll.set(f.subarray(0, 6), 12);
    const r = native.sendmmsg(fd, f, Int32Array.of(0), Int32Array.of(f.length), 1, sll, 0);
    if (r === 1) sent++;
  }
  native.close(fd);
  console.log(JSON.stringify({ sent }));
}

const [mode, a1, a2] = process.argv.slice(2);
if (mode === 'client') void client(a1, Number(a2));
else if (mode === 'dns') void dns(a1, Number(a2 || 53));
else if (mode === 'echo') void echo(a1, Number(a2));
else if (mode === 'resolver') void echo(a1, Number(a2), true);
else if (mode === 'raw') raw(a1, process.argv.slice(4));
else {
  console.error('usage: udpTool.js client|dns|echo|raw ...');
  process.exit(2);
}

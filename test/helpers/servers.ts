/**
 * Servers in the test's (made host) namespace that containers and guests
 * reach: a greeting TCP server, a DNS stand-in, a one-file TFTP server and
 * a hashing TCP sink. A TestServers closes everything it opened.
 */
import * as crypto from 'node:crypto';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { dnsAnswer } from './dns';

/** What tftpServer() hands out by default. */
export const TFTP_CONTENT = 'udp-on-host\n';

export class TestServers {
  private open: { close(): void }[] = [];

  closeAll(): void {
    for (const s of this.open.splice(0)) s.close();
  }

  /** TCP server: answers every connection with "HELLO <token>" and closes. */
  helloServer(host: string, port: number, token: string): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      const s = net.createServer((c) => { c.on('error', () => {}); c.end(`HELLO ${token}\n`); });
      s.once('error', reject);
      s.listen({ host, port }, () => { this.open.push(s); resolve(s); });
    });
  }

  /** UDP DNS stand-in (dns.ts) answering `answer`; counts queries. */
  dnsServer(host: string, port: number, answer: string): Promise<{ count: number }> {
    const sock = dgram.createSocket('udp4');
    const st = { count: 0 };
    sock.on('message', (m, r) => {
      st.count++;
      const a = dnsAnswer(m, answer);
      if (a) sock.send(a, r.port, r.address);
    });
    return new Promise((resolve) => sock.bind(port, host, () => { this.open.push(sock); resolve(st); }));
  }

  /**
   * A one-file TFTP server (RFC 1350, the reply from the server's own port):
   * answers a read request with one DATA block (shorter than 512 bytes, so the
   * transfer ends there) and counts the client's ACKs.
   */
  tftpServer(port: number, content: string): Promise<{ requests: number; acks: number }> {
    const sock = dgram.createSocket('udp4');
    const st = { requests: 0, acks: 0 };
    sock.on('message', (m, r) => {
      const op = m.length >= 2 ? m.readUInt16BE(0) : 0;
      if (op === 1) {
        st.requests++;
        sock.send(Buffer.concat([Buffer.from([0, 3, 0, 1]), Buffer.from(content)]), r.port, r.address);
      } else if (op === 4) {
        st.acks++;
      }
    });
    return new Promise((resolve) => sock.bind(port, '0.0.0.0', () => { this.open.push(sock); resolve(st); }));
  }

  /** TCP sink: per connection, the byte count and sha256 of what arrived (closes after `limit` bytes). */
  sinkServer(port: number, limit: number): Promise<{ got: Promise<{ bytes: number; sha: string }> }> {
    let done!: (v: { bytes: number; sha: string }) => void;
    const got = new Promise<{ bytes: number; sha: string }>((r) => { done = r; });
    return new Promise((resolve, reject) => {
      const s = net.createServer({ allowHalfOpen: true }, (c) => {
        const h = crypto.createHash('sha256');
        let bytes = 0;
        c.on('data', (d: Buffer) => {
          h.update(d);
          bytes += d.length;
          if (bytes >= limit) c.end();
        });
        c.on('end', () => c.end());
        c.on('close', () => done({ bytes, sha: h.digest('hex') }));
        c.on('error', () => {});
      });
      s.once('error', reject);
      s.listen({ host: '0.0.0.0', port }, () => { this.open.push(s); resolve({ got }); });
    });
  }
}

/** Sends payload to host:port until one connection carries it whole (the container may still be starting). */
export async function sendWhole(host: string, port: number, payload: Buffer, deadline: number): Promise<boolean> {
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port, allowHalfOpen: true });
      let failed = false;
      s.on('error', () => { failed = true; });
      s.on('connect', () => s.end(payload));
      s.on('data', () => {});
      s.on('close', () => resolve(!failed && s.bytesWritten >= payload.length));
      s.setTimeout(20000, () => s.destroy(new Error('timeout')));
    });
    if (ok) return true;
    await new Promise((res) => setTimeout(res, 200));
  }
  return false;
}

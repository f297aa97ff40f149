/**
 * TCP peers for the spliced-path tests, usable in the test process (the
 * "host") and as a command run inside a namespace
 * (`nsenter -t PID -n node dist/test/helpers/tcpTool.js MODE ADDR PORT ...`).
 *
 * Command modes print one line per event on stdout:
 *   sink ADDR PORT [N]     listen; "READY"; per connection "RECV bytes sha256"
 *                          at its end; exit after N connections (default 1)
 *   echo ADDR PORT         listen; "READY"; echo every connection until killed
 *   replyAfterEof ADDR PORT  listen; "READY"; per connection: read to EOF,
 *                          then send "GOT <bytes> <sha256>" and close
 *   finFirst ADDR PORT     listen; "READY"; per connection: send "HELLO" and
 *                          half-close at once, keep reading, then
 *                          "RECV bytes sha256" at EOF
 *   resetOnData ADDR PORT  listen; "READY"; reset a connection on its first data
 *   source ADDR PORT BYTES [LOCALADDR]  connect (from LOCALADDR), send BYTES
 *                          of random data, half-close, "SENT bytes sha256";
 *                          at the peer's end "REPLY <what it sent>" (first
 *                          200 bytes), then exit; "ERROR <message>" on error
 *   whoami ADDR PORTS      listen on every port of the comma-separated list;
 *                          "READY"; answer each connection with
 *                          "PORT <local port>" and close
 *   probe ADDR PORTS [MS]  connect to each port, "P <port> <reply>" or
 *                          "P <port> ERR <code>"; with MS, retry failures
 *                          every 100 ms for up to MS milliseconds
 *   many ADDR PORT N BYTES N concurrent connections to an echo server, each
 *                          sending BYTES and checking the echo: "OK N" or
 *                          "FAIL <how many> <first error>"
 */
import * as net from 'node:net';
import * as crypto from 'node:crypto';

export interface Digest {
  bytes: number;
  sha: string;
}

/** Incremental byte count and SHA-256. */
export class Hasher {
  private readonly h = crypto.createHash('sha256');
  bytes = 0;
  update(b: Buffer): void {
    this.h.update(b);
    this.bytes += b.length;
  }
  digest(): Digest {
    return { bytes: this.bytes, sha: this.h.digest('hex') };
  }
}

/** Writes `total` bytes of random data on s (honouring backpressure), then ends it. */
export function sendRandom(s: net.Socket, total: number, end = true): Promise<Digest> {
  const chunk = crypto.randomBytes(1 << 20);
  const h = new Hasher();
  return new Promise((resolve, reject) => {
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        // vary the bytes per chunk so that a reordering would show
        const n = Math.min(chunk.length, total - sent);
        const b = Buffer.from(chunk.subarray(0, n));
        b.writeUInt32BE(sent >>> 0, 0);
        sent += n;
        h.update(b);
        if (!s.write(b)) {
          s.once('drain', pump);
          return;
        }
      }
      if (end) s.end();
      resolve(h.digest());
    };
    s.once('error', reject);
    pump();
  });
}

/** Reads s to its end; resolves with the count and hash. */
export function receiveAll(s: net.Socket): Promise<Digest> {
  const h = new Hasher();
  return new Promise((resolve, reject) => {
    s.on('data', (b: Buffer) => h.update(b));
    s.once('end', () => resolve(h.digest()));
    s.once('error', reject);
  });
}

/** Connects to host:port, sends data and half-closes; true when all of it went (false after ms). */
export function sendAll(host: string, port: number, data: Buffer, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.createConnection(port, host, () => c.end(data));
    const t = setTimeout(() => { c.destroy(); resolve(false); }, ms);
    c.on('close', (hadError) => { clearTimeout(t); resolve(!hadError); });
    c.on('error', () => {});
  });
}

/**
 * n concurrent connections to an echo server at host:port, each sending
 * `bytes` random bytes and checking what comes back.
 */
export async function manyEcho(host: string, port: number, n: number, bytes: number): Promise<{ ok: number; errors: string[] }> {
  const errors: string[] = [];
  const one = async (): Promise<boolean> => {
    const s = net.connect({ host, port, allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    const [sent, got] = await Promise.all([sendRandom(s, bytes), receiveAll(s)]);
    s.destroy();
    if (sent.bytes !== got.bytes || sent.sha !== got.sha) throw new Error(`echo mismatch: ${sent.bytes} sent, ${got.bytes} back`);
    return true;
  };
  const results = await Promise.all(Array.from({ length: n }, () => one().catch((e: Error) => {
    errors.push(e.message);
    return false;
  })));
  return { ok: results.filter(Boolean).length, errors };
}

/** Connects to host:port and reads what the peer sends until it closes: the text, or "ERR <code>". */
export function probe(host: string, port: number, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve('ERR TIMEOUT');
    }, timeoutMs);
    s.on('data', (b: Buffer) => { text += b.toString('latin1'); });
    s.once('end', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(text || 'ERR EMPTY');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(`ERR ${e.code ?? e.message}`);
    });
  });
}

function listen(addr: string, port: number, onConn: (s: net.Socket) => void): net.Server {
  const srv = net.createServer({ allowHalfOpen: true }, onConn);
  srv.listen({ host: addr, port, backlog: 1024 }, () => process.stdout.write('READY\n'));
  return srv;
}

function main(argv: string[]): void {
  const [mode, addr, portText, arg] = argv;
  const port = Number(portText);
  const line = (s: string): void => {
    process.stdout.write(`${s}\n`);
  };
  switch (mode) {
    case 'sink': {
      let left = Number(arg ?? 1);
      const srv = listen(addr, port, (s) => {
        receiveAll(s).then((d) => {
          line(`RECV ${d.bytes} ${d.sha}`);
          s.end();
          if (--left === 0) srv.close();
        }, (e: Error) => line(`ERROR ${e.message}`));
      });
      break;
    }
    case 'echo':
      listen(addr, port, (s) => {
        s.on('error', () => s.destroy());
        s.pipe(s);
      });
      break;
    case 'replyAfterEof':
      listen(addr, port, (s) => {
        receiveAll(s).then((d) => s.end(`GOT ${d.bytes} ${d.sha}`), () => s.destroy());
      });
      break;
    case 'finFirst':
      listen(addr, port, (s) => {
        s.end('HELLO');
        receiveAll(s).then((d) => line(`RECV ${d.bytes} ${d.sha}`), (e: Error) => line(`ERROR ${e.message}`));
      });
      break;
    case 'resetOnData':
      listen(addr, port, (s) => {
        s.on('error', () => {});
        s.once('data', () => s.resetAndDestroy());
      });
      break;
    case 'source': {
      const local = argv[4];
      const s = net.connect({ host: addr, port, allowHalfOpen: true, ...(local ? { localAddress: local } : {}) });
      s.on('error', (e) => {
        line(`ERROR ${e.message}`);
        process.exit(1);
      });
      s.on('connect', () => {
        sendRandom(s, Number(arg)).then((d) => line(`SENT ${d.bytes} ${d.sha}`), () => {});
      });
      let reply = '';
      s.on('data', (b: Buffer) => { if (reply.length < 200) reply += b.toString('latin1').slice(0, 200 - reply.length); });
      s.on('end', () => {
        line(`REPLY ${reply}`);
        s.end();
      });
      break;
    }
    case 'whoami': {
      const ports = portText.split(',').map(Number);
      let ready = 0;
      for (const p of ports) {
        const srv = net.createServer((c) => {
          c.on('error', () => {});
          c.end(`PORT ${c.localPort}`);
        });
        srv.listen({ host: addr, port: p }, () => {
          if (++ready === ports.length) line('READY');
        });
      }
      break;
    }
    case 'probe': {
      const ports = portText.split(',').map(Number);
      const until = Date.now() + Number(arg ?? 0);
      (async () => {
        for (const p of ports) {
          for (;;) {
            const r = await probe(addr, p);
            if (!r.startsWith('ERR') || Date.now() >= until) {
              line(`P ${p} ${r}`);
              break;
            }
            await new Promise((res) => setTimeout(res, 100));
          }
        }
        process.exit(0);
      })().catch(() => process.exit(1));
      break;
    }
    case 'many': {
      const n = Number(arg);
      const bytes = Number(argv[4]);
      manyEcho(addr, port, n, bytes).then(({ ok, errors }) => {
        line(ok === n ? `OK ${ok}` : `FAIL ${n - ok} ${errors[0] ?? ''}`);
        process.exit(0);
      }, () => {});
      break;
    }
    default:
      process.stderr.write(`tcpTool: unknown mode ${mode}\n`);
      process.exit(2);
  }
}

if (require.main === module) main(process.argv.slice(2));

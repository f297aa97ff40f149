/**
 * Run by listeners.test.ts under `prlimit --nofile=N`: a ListenerSet whose
 * process has no descriptor left. Prints one JSON line of observations.
 *   node _acceptChild.js PORT
 */
import { native, E } from '../../src/shared/native';
import { AF_INET, EFD_CLOEXEC, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET, SO_ERROR } from '../../src/shared/linux';
import { inanyParse } from '../../src/shared/flow/inany';
import { sockaddr } from '../../src/shared/sockaddr';
import { ACCEPT_BACKOFF_MS } from '../../src/workers/tcp/listeners';
import { listenRig } from './_listenRig';

const sleepMs = (ms: number): void => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); };

const port = Number(process.argv[2]);
const rig = listenRig(port);
const o: Record<string, unknown> = {};

// 1. accept-and-close: three clients wait, no descriptor is left
const clients = [rig.client(), rig.client(), rig.client()];
// made now, connected in part 2 (a socket needs a descriptor)
const lateSock = native.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
sleepMs(50);
const fill: number[] = [];
for (;;) {
  const f = native.eventfdCreate(0, EFD_CLOEXEC);
  if (f < 0) { o.fillErr = -f === E.EMFILE ? 'EMFILE' : native.strerror(-f); break; }
  fill.push(f);
}
o.readyBefore = rig.ready().length;
let t = 1000;
o.events1 = rig.poll(t);
o.dropped = rig.counts.acceptDropped;
o.accepted1 = rig.accepted.length;
o.readyAfterDrop = rig.ready().length;
o.clientErrors = clients.map((c) => { const e = native.getsockoptInt(c, SOL_SOCKET, SO_ERROR); return e === E.ECONNRESET ? 'ECONNRESET' : e; });

// 2. no spare either (another thread took its number): back off, don't spin
const spare = (rig.set as unknown as { spare: number }).spare;
native.close(spare);
(rig.set as unknown as { spare: number }).spare = -1;
const stolen = native.eventfdCreate(0, EFD_CLOEXEC);
o.stolen = stolen >= 0;
native.connect(lateSock, sockaddr(inanyParse('127.0.0.1'), port));
sleepMs(50);
o.readyBeforeBackoff = rig.ready().length;
t += 10;
rig.poll(t);
o.pausedAfterEmfile = rig.set.paused;
o.timeout = rig.set.timeoutMs(t);
o.readyInBackoff = rig.ready().length;
rig.set.resume(t + ACCEPT_BACKOFF_MS / 2);
o.readyHalfway = rig.ready().length;
t += ACCEPT_BACKOFF_MS;
rig.set.resume(t);
o.readyAfterBackoff = rig.ready().length;
rig.poll(t); // still no descriptor: backs off again, once
o.pausedAgain = rig.set.paused;
o.readyAgain = rig.ready().length;
// descriptors come back: the waiting connection is taken normally
for (const f of fill.splice(0, 8)) native.close(f);
t += ACCEPT_BACKOFF_MS;
rig.set.resume(t);
o.events3 = rig.poll(t);
o.accepted3 = rig.accepted.length;
o.counts = rig.counts;
o.readyEnd = rig.ready().length;
process.stdout.write(`${JSON.stringify(o)}\n`);
for (const f of fill) native.close(f);
rig.close();

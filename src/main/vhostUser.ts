/**
 * passt --vhost-user, the main thread's side (issue 14; CLIENTS.md §4.3):
 * the vhost-user connection from qemu on the same listening socket (or
 * `--fd`), its protocol, and handing the guest link to tap-RX and tap-TX.
 *
 * Theory of operation
 * - Connections are accepted as for `-netdev stream` (ClientSlot: one at a
 *   time, a second one closed at once), but the socket carries the
 *   vhost-user protocol, not frames: the main thread watches it (uv_poll,
 *   native.fdWatch), reads messages with their descriptors and applies
 *   them (link/vhostUser/protocol.ts), answering what needs an answer.
 * - Once the memory table and both queues are ready, the workers get the
 *   link with the 'tap' control message (fd: the connection, a token; vu:
 *   memory, queues, eventfds, positions). From then on frames flow without
 *   the main thread.
 * - Any later message (qemu stopping the queues for a guest reboot, a new
 *   memory table, GET_VRING_BASE) first takes the link back from the
 *   workers ('tap' fd -1) and is applied only once both acknowledged: so
 *   GET_VRING_BASE answers the positions the workers left, and no eventfd
 *   or mapping is closed while a worker may use it. Messages arriving
 *   meanwhile wait in order.
 * - qemu gone (EOF, hang-up, error) or a protocol error: the link is taken
 *   back the same way, then the device is reset (eventfds closed, guest
 *   memory unmapped) and the connection closed; passt waits for the next
 *   qemu, flows and ports kept — or exits with --one-off / --fd.
 */
import { log } from '../shared/log';
import { native } from '../shared/native';
import type { VuLink } from '../shared/messages';
import {
  MessageReader, ProtocolError, VhostUserDevice, VhostUserMsg, sendReply, FEATURE, RX_QUEUE, TX_QUEUE,
} from '../workers/link/vhostUser/protocol';
import type { Supervisor } from './supervisor';
import { ClientSlot } from './tapBackend';

/** How to start qemu against this socket (printed as the C passt does). */
export function vhostUserHints(path: string): string[] {
  return [
    `UNIX domain socket bound at ${path}`,
    'You can start qemu with:',
    `    kvm ... -m $RAM -chardev socket,id=chr0,path=${path} -netdev vhost-user,id=netdev0,chardev=chr0 -device virtio-net,netdev=netdev0 -object memory-backend-memfd,id=memfd0,share=on,size=$RAM -numa node,memdev=memfd0`,
  ];
}

export class VhostUserSlot extends ClientSlot {
  private dev = new VhostUserDevice();
  private readonly reader = new MessageReader();
  private watch = -1;
  private seqNo = 1 << 20;
  private readonly ackedBy = { tapRx: 0, tapTx: 0 };
  /** The workers hold the link. */
  private attached = false;
  /** Seq of a 'tap' -1 not yet acknowledged by both (0: none). */
  private detaching = 0;
  private readonly pending: VhostUserMsg[] = [];
  /** Why the connection ends, once it does. */
  private ending: string | null = null;

  constructor(private readonly supv: Supervisor) {
    super(supv);
    supv.onTapAck = (stage, seq) => {
      this.ackedBy[stage] = Math.max(this.ackedBy[stage], seq);
      if (this.detaching && this.ackedBy.tapRx >= this.detaching && this.ackedBy.tapTx >= this.detaching) {
        this.detaching = 0;
        this.pump();
      }
    };
    supv.onTapGone = (fd, reason) => {
      if (fd !== this.fd || fd < 0 || this.ending) return;
      this.ending = `guest link lost: ${reason}`;
      this.pump();
    };
  }

  /** A new vhost-user connection (accepted, or --fd). */
  attach(fd: number, pid: number): void {
    this.fd = fd;
    this.served++;
    this.ending = null;
    this.watch = native.fdWatch(fd, () => this.readable());
    if (this.watch < 0) {
      this.ending = `cannot watch the connection: ${native.strerror(-this.watch)}`;
      this.pump();
    }
    log.info(pid > 0 ? `Accepted vhost-user connection from PID ${pid}`
      : pid < 0 ? `Accepted vhost-user connection on fd ${fd} (the client's PID is outside our PID namespace)` : `vhost-user connection on fd ${fd}`);
  }

  private readable(): void {
    if (this.fd < 0 || this.ending) return;
    const { msgs, status } = this.reader.read(this.fd);
    this.pending.push(...msgs);
    if (status < 0) this.ending = status === -61 ? 'EOF on vhost-user connection' : `vhost-user connection: ${native.strerror(-status)}`;
    this.pump();
  }

  private send(fd: number, vu?: VuLink): number {
    const seq = ++this.seqNo;
    // tap-TX first, as for a stream client (tapBackend.ts switchTo)
    this.supv.control({ type: 'tap', fd, seq, vu }, 'tapTx');
    this.supv.control({ type: 'tap', fd, seq, vu }, 'tapRx');
    // the L4 workers' direct writes: they write only once tap-TX applied this seq (txGate.ts GEN)
    this.supv.control({ type: 'guestLink', fd, seq, vu }, 'tcp');
    this.supv.control({ type: 'guestLink', fd, seq, vu }, 'udp');
    return seq;
  }

  /** Applies what is pending, taking the link back from the workers first. */
  private pump(): void {
    if (this.fd < 0) return;
    if (this.detaching) return;
    if (this.attached && (this.pending.length || this.ending)) {
      this.attached = false;
      this.detaching = this.send(-1);
      return;
    }
    while (this.pending.length && !this.ending) {
      const m = this.pending.shift()!;
      try {
        const reply = this.dev.handle(m);
        if (reply) {
          const r = sendReply(this.fd, reply);
          if (r < 0) this.ending = `vhost-user reply: ${native.strerror(-r)}`;
        }
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        this.ending = `vhost-user protocol error: ${e.message}`;
      }
    }
    if (this.ending) {
      this.end(this.ending);
      return;
    }
    if (this.dev.ready && !this.attached) {
      const rx = this.dev.queueConfig(RX_QUEUE)!, tx = this.dev.queueConfig(TX_QUEUE)!;
      this.attached = true;
      this.send(this.fd, {
        regions: this.dev.regions.map((r) => ({ ...r })),
        queues: [rx, tx],
        pos: this.dev.pos.buffer as SharedArrayBuffer,
        mergeable: this.dev.has(FEATURE.VIRTIO_NET_F_MRG_RXBUF),
      });
      log.info('vhost-user: queues ready, guest link up');
    }
  }

  /** The workers let go of everything: closes the connection and the device's descriptors and memory. */
  private end(reason: string): void {
    for (const m of this.pending.splice(0)) for (const fd of m.fds) native.close(fd);
    if (this.watch >= 0) native.fdUnwatch(this.watch);
    this.watch = -1;
    this.reader.reset();
    this.dev.reset();
    native.close(this.fd);
    this.fd = -1;
    this.ending = null;
    this.onGone(reason);
  }

  closeAll(): void {
    super.closeAll();
    if (this.watch >= 0) native.fdUnwatch(this.watch);
    this.watch = -1;
  }
}

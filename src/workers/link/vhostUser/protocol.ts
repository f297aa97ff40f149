/**
 * The vhost-user protocol, back-end side (qemu docs/interop/vhost-user.rst):
 * messages on the UNIX socket and the device state they build.
 *
 * Theory of operation
 * - A message is a 12-byte header (request, flags, payload size, all u32
 *   little endian) and its payload; descriptors ride with it (SCM_RIGHTS).
 *   MessageReader reassembles messages from a non-blocking stream, the
 *   descriptors kept with the message whose first byte brought them.
 * - VhostUserDevice applies one message at a time and says what to answer.
 *   What it offers is what the C passt offers: features VIRTIO_F_VERSION_1,
 *   VIRTIO_NET_F_MRG_RXBUF, VHOST_USER_F_PROTOCOL_FEATURES; protocol
 *   feature REPLY_ACK (so a NEED_REPLY request is acknowledged, 0 = done);
 *   two queues (0: the guest's receive queue, 1: its transmit queue).
 * - Memory (SET_MEM_TABLE) is mapped through a GuestMapper (the addon:
 *   native.mapShared, one view per thread; munmap on replacement and on
 *   disconnection) and the descriptors closed once mapped.
 * - A queue starts when it has a size, addresses inside the memory table,
 *   and a kick descriptor; with PROTOCOL_FEATURES negotiated it also waits
 *   for SET_VRING_ENABLE (qemu enables them after set-up), without it it is
 *   enabled at once (vhost-user.rst "Starting and stopping rings").
 *   GET_VRING_BASE stops it and answers the next available index (from the
 *   positions the workers keep in shared memory); the kick and call
 *   descriptors are closed then.
 * - Anything else the front end sends that we do not know, or a payload of
 *   the wrong size, a queue index out of range, descriptors where none are
 *   due: a protocol error. The connection ends (the C passt dies; this one
 *   waits for the next front end), never a throw past handle().
 * - `generation` counts changes of what the data path uses (memory, queue
 *   addresses or state, features); the owner hands a fresh snapshot to the
 *   workers (`queueConfig`) whenever it moved.
 */
import { native } from '../../../shared/native';
import { F_GETFL, F_SETFL, O_NONBLOCK } from '../../../shared/linux';
import { GuestMemory, MemRegion, ADDR_LIMIT } from './memory';
import { QUEUE_POS, QUEUE_POS_WORDS, VringAddr } from './virtqueue';

export const VHOST_USER = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
} as const;

export const VHOST_USER_FLAG = { VERSION: 1, VERSION_MASK: 3, REPLY: 4, NEED_REPLY: 8 } as const;
export const VHOST_USER_HDR_SIZE = 12;
/** Largest payload accepted (a memory table of 8 regions is 8 + 8 * 32 bytes). */
export const VHOST_USER_MAX_PAYLOAD = 4096;
/** Most memory regions (VHOST_MEMORY_BASELINE_NREGIONS). */
export const MAX_REGIONS = 8;
export const NUM_QUEUES = 2;
export const RX_QUEUE = 0;
export const TX_QUEUE = 1;

/** Feature bits (u64 bit numbers). */
export const FEATURE = {
  VIRTIO_NET_F_MRG_RXBUF: 15,
  VHOST_USER_F_PROTOCOL_FEATURES: 30,
  VIRTIO_F_VERSION_1: 32,
} as const;
export const PROTOCOL_FEATURE = { REPLY_ACK: 3 } as const;

/** What the back end offers (GET_FEATURES), as a bigint. */
export const OFFERED_FEATURES = (1n << BigInt(FEATURE.VIRTIO_F_VERSION_1))
  | (1n << BigInt(FEATURE.VIRTIO_NET_F_MRG_RXBUF))
  | (1n << BigInt(FEATURE.VHOST_USER_F_PROTOCOL_FEATURES));
export const OFFERED_PROTOCOL_FEATURES = 1n << BigInt(PROTOCOL_FEATURE.REPLY_ACK);

const VRING_IDX_MASK = 0xff;
const VRING_NOFD_MASK = 0x100;

/** One message as read from the socket. */
export interface VhostUserMsg {
  request: number;
  flags: number;
  payload: Uint8Array;
  fds: number[];
}

/** Maps the guest's memory (the addon in the program; plain buffers in tests). */
export interface GuestMapper {
  /** Maps fd's first len bytes: a handle, or -errno. */
  map(fd: number, len: number): number;
  /** This thread's bytes [off, off+len) of a mapping. */
  view(handle: number, off: number, len: number): ArrayBuffer | null;
  unmap(handle: number): void;
}

/** The addon's mapper. */
export const nativeMapper: GuestMapper = {
  map: (fd, len) => native.mapShared(fd, len),
  view: (h, off, len) => native.mapView(h, off, len) ?? null,
  unmap: (h) => { native.mapUnmap(h); },
};

/** A region of the table, with the mapping it lives in. */
export interface RegionDesc {
  gpa: number;
  size: number;
  qva: number;
  mmapOffset: number;
  /** GuestMapper handle of the mapping (mmapOffset + size bytes). */
  handle: number;
}

/** What the data path needs of a queue. */
export interface QueueDesc {
  num: number;
  addr: VringAddr;
  kickFd: number;
  callFd: number;
}

export class VhostUserQueue {
  num = 0;
  addr: VringAddr | null = null;
  kickFd = -1;
  callFd = -1;
  errFd = -1;
  enabled = false;
  started = false;

  get ready(): boolean {
    return this.started && this.enabled && this.num > 0 && this.addr !== null;
  }
}

/** A reply to send: payload bytes (the header is added by the sender). */
export interface Reply {
  request: number;
  payload: Uint8Array;
}

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}

function closeAll(fds: number[]): void {
  for (const fd of fds) native.close(fd);
}

/** Reassembles messages (header, payload, descriptors) from a non-blocking socket. */
export class MessageReader {
  private readonly buf = new Uint8Array(VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD);
  private readonly fdBuf = new Int32Array(17);
  private have = 0;
  private fds: number[] = [];

  /**
   * Reads what is there. Returns the complete messages; status: 0 (would
   * block), -ENODATA (peer closed), -EPROTO (a payload too large), or
   * -errno. A message is complete only with its whole payload.
   */
  read(fd: number): { msgs: VhostUserMsg[]; status: number } {
    const msgs: VhostUserMsg[] = [];
    for (;;) {
      const need = this.have < VHOST_USER_HDR_SIZE ? VHOST_USER_HDR_SIZE : VHOST_USER_HDR_SIZE + this.size();
      if (need > this.buf.length) return { msgs, status: -71 /* EPROTO */ };
      const r = native.recvFds(fd, this.buf, this.have, need - this.have, this.fdBuf, 0x40 /* MSG_DONTWAIT */);
      if (r < 0) return { msgs, status: r === -11 ? 0 : r };
      for (let i = 0; i < this.fdBuf[0]; i++) this.fds.push(this.fdBuf[1 + i]);
      if (r === 0) return { msgs, status: -61 /* ENODATA */ };
      this.have += r;
      if (this.have >= VHOST_USER_HDR_SIZE && this.have === VHOST_USER_HDR_SIZE + this.size()) {
        const dv = new DataView(this.buf.buffer);
        msgs.push({
          request: dv.getUint32(0, true),
          flags: dv.getUint32(4, true),
          payload: this.buf.slice(VHOST_USER_HDR_SIZE, this.have),
          fds: this.fds,
        });
        this.fds = [];
        this.have = 0;
      }
    }
  }

  private size(): number {
    return new DataView(this.buf.buffer).getUint32(8, true);
  }

  /** Forgets a message in part, closing its descriptors. */
  reset(): void {
    closeAll(this.fds);
    this.fds = [];
    this.have = 0;
  }
}

/** Sends a reply (REPLY flag, version 1). Returns bytes sent or -errno. */
export function sendReply(fd: number, r: Reply): number {
  const b = new Uint8Array(VHOST_USER_HDR_SIZE + r.payload.length);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, r.request, true);
  dv.setUint32(4, VHOST_USER_FLAG.VERSION | VHOST_USER_FLAG.REPLY, true);
  dv.setUint32(8, r.payload.length, true);
  b.set(r.payload, VHOST_USER_HDR_SIZE);
  return native.sendFds(fd, b, 0, b.length, new Int32Array(1), 0, 0x40 /* MSG_DONTWAIT */);
}

export class ProtocolError extends Error {}

export class VhostUserDevice {
  features = 0n;
  protocolFeatures = 0n;
  regions: RegionDesc[] = [];
  readonly queues: VhostUserQueue[] = [];
  /** Positions of the queues (virtqueue.ts QUEUE_POS), shared with the workers. */
  readonly pos = new Int32Array(new SharedArrayBuffer(4 * QUEUE_POS_WORDS * NUM_QUEUES));
  generation = 0;
  private memory: GuestMemory | null = null;

  constructor(private readonly mapper: GuestMapper = nativeMapper) {
    for (let i = 0; i < NUM_QUEUES; i++) this.queues.push(new VhostUserQueue());
    this.resetPositions();
  }

  private resetPositions(): void {
    this.pos.fill(0);
    for (let i = 0; i < NUM_QUEUES; i++) this.pos[i * QUEUE_POS_WORDS + QUEUE_POS.USED_IDX] = -1;
  }

  has(bit: number): boolean {
    return (this.features & (1n << BigInt(bit))) !== 0n;
  }

  /** The guest memory as this thread sees it (null before SET_MEM_TABLE). */
  guestMemory(): GuestMemory | null {
    if (!this.memory && this.regions.length) this.memory = memoryFor(this.regions, this.mapper);
    return this.memory;
  }

  /** Both queues are usable. */
  get ready(): boolean {
    return this.regions.length > 0 && this.queues.every((q) => q.ready);
  }

  /**
   * Applies one message: the reply to send, or null. Throws ProtocolError
   * for a message that ends the connection (its descriptors are closed).
   */
  handle(m: VhostUserMsg): Reply | null {
    let fdsUsed = false;
    try {
      const r = this.apply(m, () => { fdsUsed = true; });
      if (r === null && (m.flags & VHOST_USER_FLAG.NEED_REPLY)
        && (this.protocolFeatures & OFFERED_PROTOCOL_FEATURES) !== 0n)
        return { request: m.request, payload: u64(0n) };
      return r;
    } finally {
      if (!fdsUsed) closeAll(m.fds);
    }
  }

  private payloadView(m: VhostUserMsg, min: number): DataView {
    if (m.payload.length < min) throw new ProtocolError(`request ${m.request}: payload of ${m.payload.length} bytes`);
    return new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.length);
  }

  private queueIndex(i: number): VhostUserQueue {
    if (i >= NUM_QUEUES) throw new ProtocolError(`queue index ${i}`);
    return this.queues[i];
  }

  private apply(m: VhostUserMsg, takeFds: () => void): Reply | null {
    const R = VHOST_USER;
    switch (m.request) {
      case R.GET_FEATURES:
        return { request: m.request, payload: u64(OFFERED_FEATURES) };
      case R.SET_FEATURES: {
        this.features = this.payloadView(m, 8).getBigUint64(0, true) & OFFERED_FEATURES;
        // without protocol features a ring is enabled as soon as it starts
        if (!this.has(FEATURE.VHOST_USER_F_PROTOCOL_FEATURES)) for (const q of this.queues) q.enabled = true;
        this.generation++;
        return null;
      }
      case R.GET_PROTOCOL_FEATURES:
        return { request: m.request, payload: u64(OFFERED_PROTOCOL_FEATURES) };
      case R.SET_PROTOCOL_FEATURES:
        this.protocolFeatures = this.payloadView(m, 8).getBigUint64(0, true) & OFFERED_PROTOCOL_FEATURES;
        return null;
      case R.GET_QUEUE_NUM:
        return { request: m.request, payload: u64(BigInt(NUM_QUEUES)) };
      case R.SET_OWNER:
        return null;
      case R.RESET_OWNER:
        this.reset();
        return null;
      case R.SET_MEM_TABLE:
        takeFds();
        this.setMemTable(m);
        return null;
      case R.SET_VRING_NUM: {
        const dv = this.payloadView(m, 8);
        const q = this.queueIndex(dv.getUint32(0, true));
        const num = dv.getUint32(4, true);
        if (num === 0 || num > 32768 || (num & (num - 1)) !== 0) throw new ProtocolError(`queue size ${num}`);
        q.num = num;
        this.generation++;
        return null;
      }
      case R.SET_VRING_ADDR: {
        const dv = this.payloadView(m, 40);
        const q = this.queueIndex(dv.getUint32(0, true));
        const a = (o: number): number => {
          const v = dv.getBigUint64(o, true);
          return v >= BigInt(ADDR_LIMIT) ? ADDR_LIMIT : Number(v);
        };
        q.addr = { desc: a(8), used: a(16), avail: a(24) };
        this.generation++;
        return null;
      }
      case R.SET_VRING_BASE: {
        const dv = this.payloadView(m, 8);
        const i = dv.getUint32(0, true);
        this.queueIndex(i);
        const base = i * QUEUE_POS_WORDS;
        this.pos[base + QUEUE_POS.LAST_AVAIL] = dv.getUint32(4, true) & 0xffff;
        // our used index follows the guest's used ring, read when the queue is built
        this.pos[base + QUEUE_POS.USED_IDX] = -1;
        this.pos[base + QUEUE_POS.BROKEN] = 0;
        this.generation++;
        return null;
      }
      case R.GET_VRING_BASE: {
        const dv = this.payloadView(m, 8);
        const i = dv.getUint32(0, true);
        const q = this.queueIndex(i);
        q.started = false;
        if (q.kickFd >= 0) native.close(q.kickFd);
        if (q.callFd >= 0) native.close(q.callFd);
        q.kickFd = q.callFd = -1;
        this.generation++;
        const out = new Uint8Array(8);
        const o = new DataView(out.buffer);
        o.setUint32(0, i, true);
        o.setUint32(4, this.pos[i * QUEUE_POS_WORDS + QUEUE_POS.LAST_AVAIL], true);
        return { request: m.request, payload: out };
      }
      case R.SET_VRING_KICK:
      case R.SET_VRING_CALL:
      case R.SET_VRING_ERR: {
        const v = Number(this.payloadView(m, 8).getBigUint64(0, true) & 0xffffn);
        const q = this.queueIndex(v & VRING_IDX_MASK);
        const nofd = (v & VRING_NOFD_MASK) !== 0;
        if (!nofd && m.fds.length !== 1) throw new ProtocolError(`request ${m.request}: ${m.fds.length} descriptors`);
        if (nofd && m.fds.length !== 0) throw new ProtocolError(`request ${m.request}: descriptors with NOFD`);
        takeFds();
        const fd = nofd ? -1 : m.fds[0];
        // the data path reads and writes them without blocking (qemu makes its own non-blocking too)
        if (fd >= 0) native.fcntl(fd, F_SETFL, native.fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
        if (m.request === R.SET_VRING_KICK) {
          if (q.kickFd >= 0) native.close(q.kickFd);
          q.kickFd = fd;
          // polling without a kick descriptor is not done: the queue starts with one
          q.started = fd >= 0;
        } else if (m.request === R.SET_VRING_CALL) {
          if (q.callFd >= 0) native.close(q.callFd);
          q.callFd = fd;
        } else {
          if (q.errFd >= 0) native.close(q.errFd);
          q.errFd = fd;
        }
        this.generation++;
        return null;
      }
      case R.SET_VRING_ENABLE: {
        const dv = this.payloadView(m, 8);
        const q = this.queueIndex(dv.getUint32(0, true));
        q.enabled = dv.getUint32(4, true) !== 0;
        this.generation++;
        return null;
      }
      default:
        throw new ProtocolError(`unhandled request ${m.request}`);
    }
  }

  private setMemTable(m: VhostUserMsg): void {
    const dv = this.payloadView(m, 8);
    const n = dv.getUint32(0, true);
    if (n === 0 || n > MAX_REGIONS || m.payload.length < 8 + 32 * n || m.fds.length !== n) {
      closeAll(m.fds);
      throw new ProtocolError(`memory table of ${n} regions, ${m.fds.length} descriptors`);
    }
    const table: RegionDesc[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const o = 8 + 32 * i;
        const big = (k: number): bigint => dv.getBigUint64(o + k, true);
        const [gpa, size, qva, mmapOffset] = [big(0), big(8), big(16), big(24)];
        const lim = BigInt(ADDR_LIMIT);
        if (size === 0n || gpa + size >= lim || qva + size >= lim || mmapOffset + size >= lim)
          throw new ProtocolError(`memory region ${i} out of range`);
        const h = this.mapper.map(m.fds[i], Number(mmapOffset + size));
        if (h < 0) throw new ProtocolError(`mmap of memory region ${i}: ${native.strerror(-h)}`);
        table.push({ gpa: Number(gpa), size: Number(size), qva: Number(qva), mmapOffset: Number(mmapOffset), handle: h });
      }
    } catch (e) {
      for (const r of table) this.mapper.unmap(r.handle);
      throw e;
    } finally {
      closeAll(m.fds);
    }
    this.unmapAll();
    this.regions = table;
    this.generation++;
  }

  private unmapAll(): void {
    for (const r of this.regions) this.mapper.unmap(r.handle);
    this.regions = [];
    this.memory = null;
  }

  /** What a worker needs of queue i (null unless it is ready). */
  queueConfig(i: number): QueueDesc | null {
    const q = this.queues[i];
    if (!q.ready || !q.addr) return null;
    return { num: q.num, addr: q.addr, kickFd: q.kickFd, callFd: q.callFd };
  }

  /** Back to the state of a new connection: queues stopped, descriptors closed, memory unmapped. */
  reset(): void {
    for (const q of this.queues) {
      for (const fd of [q.kickFd, q.callFd, q.errFd]) if (fd >= 0) native.close(fd);
      q.kickFd = q.callFd = q.errFd = -1;
      q.num = 0;
      q.addr = null;
      q.started = q.enabled = false;
    }
    this.resetPositions();
    this.unmapAll();
    this.features = this.protocolFeatures = 0n;
    this.generation++;
  }
}

/** Largest piece of a region one ArrayBuffer covers (Node 20: 2^32 bytes at most). */
export const REGION_PIECE = 1 << 30;
/** Bytes a piece's buffer runs on past its end, so a vring across the cut is still in one buffer. */
export const PIECE_OVERLAP = 1 << 20;

/**
 * A thread's GuestMemory over a memory table (each thread maps its own
 * views); regions larger than REGION_PIECE are cut into pieces, each in a
 * buffer of its own that reaches PIECE_OVERLAP bytes into the next.
 */
export function memoryFor(regions: readonly RegionDesc[], mapper: GuestMapper = nativeMapper): GuestMemory | null {
  const out: MemRegion[] = [];
  for (const r of regions) {
    for (let o = 0; o < r.size; o += REGION_PIECE) {
      const len = Math.min(REGION_PIECE, r.size - o);
      const reach = Math.min(len + PIECE_OVERLAP, r.size - o);
      const ab = mapper.view(r.handle, r.mmapOffset + o, reach);
      if (!ab || ab.byteLength < reach) return null;
      out.push({ gpa: r.gpa + o, size: len, qva: r.qva + o, mmapOffset: r.mmapOffset + o,
        u8: new Uint8Array(ab, 0, len), qvaEnd: r.qva + o + reach });
    }
  }
  return new GuestMemory(out);
}

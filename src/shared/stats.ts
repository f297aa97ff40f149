/**
 * Per-worker counters in a SharedArrayBuffer: written by the owning worker
 * only, read by the main thread (debug dumps, tests). Float64 so they never
 * wrap; a torn read is impossible for aligned 8-byte stores on the targets
 * Node supports.
 */

/** Counter names per worker role; the index in the block is the position. */
export const COUNTERS = {
  tapRx: [
    'frames', 'bytes', 'batches', 'tooShort', 'tooLong', 'badEthertype', 'arp', 'ipv4', 'ipv6', 'badIpv4', 'badIpv6',
    'fragments', 'loopbackAddr', 'tcp', 'udp', 'icmp', 'dhcp', 'dhcpv6', 'ndp', 'otherL4', 'serviceReplies',
    'serviceDrops', 'ringFull', 'copies', 'readErrors',
    // vhost-user: chains and frames of the transmit queue dropped for the guest's faults
    'guestDrops',
    // SYNs dropped because SYN_BACKLOG of them already wait for the TCP worker (tapReader.ts)
    'synShed',
  ],
  // guestDrops: vhost-user receive-queue chains and frames dropped for the guest's faults
  tapTx: ['frames', 'bytes', 'writes', 'eagain', 'dropped', 'pcapErrors', 'clientDrops', 'guestDrops'],
  tcp: [
    'frames', 'flows', 'dropped', 'batches', 'active', 'accepted', 'refused', 'bytesFromTap', 'bytesToTap',
    'segsToTap', 'flagsToTap', 'resetsSent', 'resetsFromTap', 'dropNoFlow', 'dropMalformed', 'dropBadSyn',
    'dropTableFull', 'dropRingFull', 'dropOutOfWindow', 'dupAcksSent', 'retransFast', 'retransTimeout',
    'windowProbes', 'keepalives', 'sendEagain', 'sendPartial', 'peekErrors', 'ringWaits', 'synPayload',
    // the spliced path (pasta): connections open now and made so far, bytes
    // moved from the accepted client to the target and back
    'spliceActive', 'spliceFlows', 'spliceBytesFromClient', 'spliceBytesToClient',
    // listeners (listeners.ts): disarmed (table full, back-off), connections
    // accepted and reset for want of descriptors, accept() failures
    'acceptPaused', 'acceptDropped', 'acceptErrors',
    // vhost-user: data segments built in place in the guest's receive buffers (of segsToTap)
    'segsInPlace',
  ],
  udp: [
    // guest frames in, flows made, total drops (the sum of the reasons below)
    'frames', 'flows', 'dropped', 'pingFlows', 'expired', 'listeners',
    // datagrams and echo messages moved: guest → socket, socket → guest, socket → socket (spliced)
    'toSock', 'toTap', 'spliced', 'pingRequests', 'pingReplies',
    // drop reasons: malformed guest frames
    'truncated', 'badLength', 'zeroChecksum', 'zeroPort', 'badAddr', 'icmpNotEcho',
    // drop reasons: flows that cannot be made or used
    'familyOff', 'tableFull', 'socketErrors', 'bindErrors', 'connectErrors', 'pingSocketErrors', 'notLoopback',
    'refused', 'sendErrors', 'recvErrors', 'tooBig', 'ringFull', 'icmpBadReply', 'icmpDup',
    // socket error queue events (ICMP errors from the network, not forwarded);
    // sockets paused for lack of room towards tap-TX (back-pressure, not a drop)
    'errQueue', 'paused',
    // flows open now, by path (tap: one side is the guest; splice: socket to
    // socket), and ping flows; payload bytes received from the guest, from
    // sockets towards the guest, and spliced (from the flow's client, back)
    'activeTap', 'activeSplice', 'activePing', 'bytesFromTap', 'bytesToTap', 'splicedFromClient', 'splicedToClient',
  ],
} as const;

export type Role = keyof typeof COUNTERS;
export type CounterName<R extends Role> = (typeof COUNTERS)[R][number];

export class Stats<R extends Role> {
  readonly v: Float64Array;
  private readonly index: Record<string, number> = {};

  constructor(readonly role: R, readonly sab: SharedArrayBuffer) {
    this.v = new Float64Array(sab);
    COUNTERS[role].forEach((n, i) => { this.index[n] = i; });
  }

  static allocate(role: Role): SharedArrayBuffer {
    return new SharedArrayBuffer(8 * COUNTERS[role].length);
  }

  /** Index of a counter, for hot paths (`stats.v[i]++`). */
  idx(name: CounterName<R>): number {
    return this.index[name];
  }

  add(name: CounterName<R>, n = 1): void {
    this.v[this.index[name]] += n;
  }

  get(name: CounterName<R>): number {
    return this.v[this.index[name]];
  }

  snapshot(): Record<string, number> {
    const o: Record<string, number> = {};
    COUNTERS[this.role].forEach((n, i) => { o[n] = this.v[i]; });
    return o;
  }
}

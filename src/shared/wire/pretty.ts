/**
 * One-line, tcpdump-style description of an Ethernet frame, for traces and
 * test failure messages (STYLE.md guideline 15).
 *
 * Theory of operation: the frame is parsed with FrameViews (so every length
 * is validated before anything is read) and described layer by layer as far
 * as it is well formed; the first malformed layer is named as such. Link
 * services get a word about their message (ARP who-has, DHCP DISCOVER, NDP
 * NS, DHCPv6 SOLICIT). It allocates strings: call it only behind
 * `log.traceOn` or in tests. It never throws, whatever the input.
 */
import { macToString, ip4ToString, ip6ToString, rangeOk } from './bytes';
import { ARP_OP } from './arp';
import { DHCP_MSG, DHCP_PORT, DhcpView, parseDhcp } from './dhcpv4';
import { DHCPV6_MSG, DHCPV6_PORT, Dhcpv6View } from './dhcpv6';
import { ETHERTYPE } from './ethernet';
import { FRAME_LAYER, FrameViews } from './frame';
import { ICMPV6_TYPE, ICMP_TYPE } from './icmp';
import { IP_PROTO } from './ipv4';
import { NdpView } from './ndp';
import { TCP_FLAG } from './tcp';
import { UdpView } from './udp';

const DHCP_NAMES: Record<number, string> = {
  [DHCP_MSG.DISCOVER]: 'DISCOVER', [DHCP_MSG.OFFER]: 'OFFER', [DHCP_MSG.REQUEST]: 'REQUEST',
  [DHCP_MSG.DECLINE]: 'DECLINE', [DHCP_MSG.ACK]: 'ACK', [DHCP_MSG.NAK]: 'NAK',
  [DHCP_MSG.RELEASE]: 'RELEASE', [DHCP_MSG.INFORM]: 'INFORM',
};
const DHCPV6_NAMES: Record<number, string> = {
  [DHCPV6_MSG.SOLICIT]: 'SOLICIT', [DHCPV6_MSG.ADVERTISE]: 'ADVERTISE', [DHCPV6_MSG.REQUEST]: 'REQUEST',
  [DHCPV6_MSG.CONFIRM]: 'CONFIRM', [DHCPV6_MSG.RENEW]: 'RENEW', [DHCPV6_MSG.REBIND]: 'REBIND',
  [DHCPV6_MSG.REPLY]: 'REPLY', [DHCPV6_MSG.RELEASE]: 'RELEASE', [DHCPV6_MSG.DECLINE]: 'DECLINE',
  [DHCPV6_MSG.RECONFIGURE]: 'RECONFIGURE', [DHCPV6_MSG.INFORMATION_REQUEST]: 'INFORMATION-REQUEST',
};
const ICMPV6_NAMES: Record<number, string> = {
  1: 'destination unreachable', 2: 'packet too big', 3: 'time exceeded', 4: 'parameter problem',
  [ICMPV6_TYPE.ECHO_REQUEST]: 'echo request', [ICMPV6_TYPE.ECHO_REPLY]: 'echo reply',
  [ICMPV6_TYPE.ROUTER_SOLICITATION]: 'RS', [ICMPV6_TYPE.ROUTER_ADVERTISEMENT]: 'RA',
  [ICMPV6_TYPE.NEIGHBOR_SOLICITATION]: 'NS', [ICMPV6_TYPE.NEIGHBOR_ADVERTISEMENT]: 'NA',
  [ICMPV6_TYPE.REDIRECT]: 'redirect',
};
const ICMP_NAMES: Record<number, string> = {
  [ICMP_TYPE.ECHO_REPLY]: 'echo reply', 3: 'destination unreachable', [ICMP_TYPE.ECHO_REQUEST]: 'echo request',
  11: 'time exceeded',
};

function tcpFlags(f: number): string {
  let s = '';
  if (f & TCP_FLAG.SYN) s += 'S';
  if (f & TCP_FLAG.FIN) s += 'F';
  if (f & TCP_FLAG.RST) s += 'R';
  if (f & TCP_FLAG.PSH) s += 'P';
  if (f & TCP_FLAG.URG) s += 'U';
  if (f & TCP_FLAG.ECE) s += 'E';
  if (f & TCP_FLAG.CWR) s += 'W';
  if (f & TCP_FLAG.ACK) s += '.';
  return s || 'none';
}

function hex(n: number, digits: number): string {
  return '0x' + n.toString(16).padStart(digits, '0');
}

function describeUdp(fv: FrameViews, udp: UdpView): string {
  let s = ` UDP len ${udp.payloadLen}`;
  const u8 = fv.u8;
  if (fv.etherType === ETHERTYPE.IPV4 && (udp.dstPort === DHCP_PORT.SERVER || udp.dstPort === DHCP_PORT.CLIENT)) {
    const d = DhcpView.check(u8, udp.payloadOff, udp.payloadLen);
    const r = d && parseDhcp(d);
    if (d && r) s += ` DHCP ${r.messageType ? DHCP_NAMES[r.messageType] ?? `type ${r.messageType}` : 'BOOTP'} xid ${hex(r.xid, 8)}`;
    else s += ' DHCP (malformed)';
  } else if (fv.etherType === ETHERTYPE.IPV6
    && (udp.dstPort === DHCPV6_PORT.SERVER || udp.dstPort === DHCPV6_PORT.CLIENT)) {
    const d = Dhcpv6View.check(u8, udp.payloadOff, udp.payloadLen);
    if (d) s += ` DHCPv6 ${DHCPV6_NAMES[d.msgType] ?? `type ${d.msgType}`} xid ${hex(d.xid, 6)}`;
    else s += ' DHCPv6 (malformed)';
  }
  return s;
}

function describeL4(fv: FrameViews, src: string, dst: string): string {
  if (fv.layer !== FRAME_LAYER.L4) return ` ${src} > ${dst} proto ${fv.l4Proto}${fv.l4Proto === IP_PROTO.UDP
    || fv.l4Proto === IP_PROTO.TCP || fv.l4Proto === IP_PROTO.ICMP || fv.l4Proto === IP_PROTO.ICMPV6 ? ' (malformed)' : ''}`;
  switch (fv.l4Proto) {
    case IP_PROTO.UDP:
      return ` ${src}.${fv.udp.srcPort} > ${dst}.${fv.udp.dstPort}:${describeUdp(fv, fv.udp)}`;
    case IP_PROTO.TCP: {
      const t = fv.tcp;
      return ` ${src}.${t.srcPort} > ${dst}.${t.dstPort}: TCP [${tcpFlags(t.flags)}] seq ${t.seqNumber}`
        + ` ack ${t.ackNumber} win ${t.window} len ${t.payloadLen}`;
    }
    case IP_PROTO.ICMP: {
      const i = fv.icmp4;
      const name = ICMP_NAMES[i.type] ?? `type ${i.type}`;
      return ` ${src} > ${dst}: ICMP ${name}${i.isEcho ? ` id ${i.identifier} seq ${i.sequenceNumber}` : ''}`;
    }
    case IP_PROTO.ICMPV6: {
      const i = fv.icmp6;
      let s = ` ${src} > ${dst}: ICMPv6 ${ICMPV6_NAMES[i.type] ?? `type ${i.type}`}`;
      if (i.isEcho) s += ` id ${i.identifier} seq ${i.sequenceNumber}`;
      const t = i.type;
      if (t === ICMPV6_TYPE.NEIGHBOR_SOLICITATION || t === ICMPV6_TYPE.NEIGHBOR_ADVERTISEMENT) {
        const n = NdpView.check(fv.u8, i.off, i.len);
        s += n ? ` ${t === ICMPV6_TYPE.NEIGHBOR_SOLICITATION ? 'who-has' : 'tgt'} ${ip6ToString(fv.u8, n.targetOff)}` : ' (malformed)';
      }
      return s;
    }
    default:
      return ` ${src} > ${dst} proto ${fv.l4Proto}`;
  }
}

/** Describes the frame at u8[off, off+len) in one line; never throws. */
export function prettyFrame(u8: Uint8Array, off = 0, len = u8.length - off): string {
  try {
    if (!rangeOk(u8, off, len)) return `bad range (off ${off}, len ${len})`;
    const fv = new FrameViews(u8);
    const layer = fv.parse(off, len);
    if (layer === FRAME_LAYER.NONE) return `not a frame (${len} bytes)`;
    let s = `${macToString(u8, fv.eth.srcOff)} > ${macToString(u8, fv.eth.dstOff)}`;
    const et = fv.etherType;
    if (et === ETHERTYPE.ARP) {
      if (layer === FRAME_LAYER.L2) return `${s} ARP (malformed), length ${len}`;
      const a = fv.arp;
      if (!a.isEthIp4) return `${s} ARP htype ${a.htype} ptype ${hex(a.ptype, 4)} op ${a.oper}`;
      const spa = ip4ToString(u8, a.spaOff);
      const tpa = ip4ToString(u8, a.tpaOff);
      if (a.oper === ARP_OP.REQUEST) return `${s} ARP who-has ${tpa} tell ${spa}`;
      if (a.oper === ARP_OP.REPLY) return `${s} ARP reply ${spa} is-at ${macToString(u8, a.shaOff)}`;
      return `${s} ARP op ${a.oper} ${spa} > ${tpa}`;
    }
    if (et === ETHERTYPE.IPV4) {
      s += ' IPv4';
      if (layer === FRAME_LAYER.L2) return `${s} (malformed), length ${len}`;
      const ip = fv.ip4;
      if (ip.isFragment) s += ` frag off ${ip.fragOffset * 8}${ip.moreFrags ? '+' : ''}`;
      return s + describeL4(fv, ip4ToString(u8, ip.srcOff), ip4ToString(u8, ip.dstOff)) + `, ttl ${ip.ttl}`;
    }
    if (et === ETHERTYPE.IPV6) {
      s += ' IPv6';
      if (layer === FRAME_LAYER.L2) return `${s} (malformed), length ${len}`;
      const ip = fv.ip6;
      if (ip.isFragment) s += ' frag';
      return s + describeL4(fv, ip6ToString(u8, ip.srcOff), ip6ToString(u8, ip.dstOff)) + `, hlim ${ip.hopLimit}`;
    }
    return `${s} ethertype ${hex(et, 4)}, length ${len}`;
  } catch (e) {
    return `unprintable frame (${len} bytes): ${(e as Error)?.message ?? String(e)}`;
  }
}

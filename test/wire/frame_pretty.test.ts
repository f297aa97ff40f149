import test from 'ava';
import { FRAME_LAYER, FrameViews } from '../../src/shared/wire/frame';
import { prettyFrame } from '../../src/shared/wire/pretty';
import {
  ARP_REQUEST, DHCP_DISCOVER, DHCPV6_SOLICIT, NDP_NS, NDP_RS, TCP_SYN, dhcpDiscoverPayload, dhcpFrame,
} from '../helpers/fixtures';
import { concat, eth, GUEST_MAC, hex, ipv4, ipv6 } from '../helpers/frames';

test('FrameViews parses every fixture to its L4 (or L3 for ARP)', (t) => {
  const fv = new FrameViews(concat(ARP_REQUEST));
  t.is(fv.parse(0, ARP_REQUEST.length), FRAME_LAYER.L3);
  for (const [f, proto] of [[DHCP_DISCOVER, 17], [DHCPV6_SOLICIT, 17], [NDP_NS, 58], [NDP_RS, 58], [TCP_SYN, 6]] as const) {
    const v = new FrameViews(f);
    t.is(v.parse(0, f.length), FRAME_LAYER.L4);
    t.is(v.l4Proto, proto);
  }
});

test('FrameViews stops at the first malformed layer', (t) => {
  const fv = new FrameViews(TCP_SYN);
  t.is(fv.parse(0, 10), FRAME_LAYER.NONE);
  t.is(fv.parse(0, 40), FRAME_LAYER.L2, 'IPv4 total length beyond the frame');
  const other = eth('ff:ff:ff:ff:ff:ff', GUEST_MAC, 0x88cc, new Uint8Array(10));
  t.is(new FrameViews(other).parse(0, other.length), FRAME_LAYER.L2);
  const igmp = eth('01:00:5e:00:00:01', GUEST_MAC, 0x0800, ipv4({ src: '10.0.0.1', dst: '224.0.0.1', proto: 2 }, new Uint8Array(8)));
  const v = new FrameViews(igmp);
  t.is(v.parse(0, igmp.length), FRAME_LAYER.L3);
  t.is(v.l4Proto, 2);
  const icmpOver6 = eth('33:33:00:00:00:01', GUEST_MAC, 0x86dd, ipv6({ src: 'fe80::2', dst: 'ff02::1', nh: 1 }, new Uint8Array(8)));
  t.is(new FrameViews(icmpOver6).parse(0, icmpOver6.length), FRAME_LAYER.L3, 'ICMPv4 inside IPv6 is not L4');
  t.is(FrameViews.forBuffer(fv, TCP_SYN), fv);
  t.not(FrameViews.forBuffer(fv, igmp), fv);
});

test('pretty: one line per fixture', (t) => {
  t.is(prettyFrame(ARP_REQUEST), '52:54:00:12:34:56 > ff:ff:ff:ff:ff:ff ARP who-has 10.0.2.2 tell 10.0.2.15');
  t.is(prettyFrame(DHCP_DISCOVER),
    '52:54:00:12:34:56 > ff:ff:ff:ff:ff:ff IPv4 0.0.0.0.68 > 255.255.255.255.67: UDP len 300 DHCP DISCOVER xid 0x3903f326, ttl 64');
  t.is(prettyFrame(TCP_SYN),
    '52:54:00:12:34:56 > 9a:55:9a:55:9a:55 IPv4 10.0.2.15.45678 > 93.184.216.34.80: TCP [S] seq 2050760448 ack 0 win 64240 len 0, ttl 64');
  t.is(prettyFrame(DHCPV6_SOLICIT),
    '52:54:00:12:34:56 > 33:33:00:01:00:02 IPv6 fe80::5054:ff:fe12:3456.546 > ff02::1:2.547: UDP len 48 DHCPv6 SOLICIT xid 0x0a1b2c, hlim 1');
  t.is(prettyFrame(NDP_NS), '52:54:00:12:34:56 > 33:33:ff:00:00:01 IPv6 fe80::5054:ff:fe12:3456 > ff02::1:ff00:1: ICMPv6 NS who-has fe80::1, hlim 255');
  t.is(prettyFrame(NDP_RS), '52:54:00:12:34:56 > 33:33:00:00:00:02 IPv6 fe80::5054:ff:fe12:3456 > ff02::2: ICMPv6 RS, hlim 255');
  t.regex(prettyFrame(dhcpFrame(dhcpDiscoverPayload({ msgType: null }))), /DHCP BOOTP/);
});

test('pretty: malformed and odd input never throws', (t) => {
  t.is(prettyFrame(new Uint8Array(5)), 'not a frame (5 bytes)');
  t.is(prettyFrame(TCP_SYN, 0, 40), '52:54:00:12:34:56 > 9a:55:9a:55:9a:55 IPv4 (malformed), length 40');
  t.is(prettyFrame(TCP_SYN, -3, 4), 'bad range (off -3, len 4)');
  t.is(prettyFrame(TCP_SYN, 0, 1e9), 'bad range (off 0, len 1000000000)');
  t.regex(prettyFrame(ARP_REQUEST, 0, 30), /ARP \(malformed\)/);
  const lldp = eth('01:80:c2:00:00:0e', GUEST_MAC, 0x88cc, hex('0000'));
  t.regex(prettyFrame(lldp), /ethertype 0x88cc/);
  const badUdp = concat(DHCP_DISCOVER);
  badUdp[38] = 0xff; // UDP length
  t.regex(prettyFrame(badUdp), /proto 17 \(malformed\)/);
});

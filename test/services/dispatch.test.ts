import test from 'ava';
import { serviceContextFromConfig } from '../../src/shared/services/context';
import { LINK_REPLY_MAX, LINK_SERVICE, linkHandle, linkServiceFor } from '../../src/shared/services/dispatch';
import { FrameViews } from '../../src/shared/wire/frame';
import { ARP_REQUEST, DHCP_DISCOVER, DHCPV6_SOLICIT, NDP_NS, NDP_RS, TCP_SYN, dhcpDiscoverPayload } from '../helpers/fixtures';
import { eth, GUEST_MAC, icmp6, ipv4, ipv6, makeConfig, START_MS, udp4, udp6 } from '../helpers/frames';

const svc = (f: Uint8Array) => { const fv = new FrameViews(f); fv.parse(0, f.length); return linkServiceFor(fv); };

test('SPEC §3.1 interception rules', (t) => {
  t.is(svc(ARP_REQUEST), LINK_SERVICE.ARP);
  t.is(svc(ARP_REQUEST.subarray(0, 20)), LINK_SERVICE.ARP, 'ARP is never forwarded, even malformed');
  t.is(svc(DHCP_DISCOVER), LINK_SERVICE.DHCP);
  const unicast67 = eth('9a:55:9a:55:9a:55', GUEST_MAC, 0x0800,
    ipv4({ src: '10.0.0.2', dst: '8.8.8.8', proto: 17 }, udp4('10.0.0.2', '8.8.8.8', 1234, 67, dhcpDiscoverPayload())));
  t.is(svc(unicast67), LINK_SERVICE.DHCP, 'port 67 whatever the destination');
  t.is(svc(NDP_NS), LINK_SERVICE.NDP);
  t.is(svc(NDP_RS), LINK_SERVICE.NDP);
  t.is(svc(DHCPV6_SOLICIT), LINK_SERVICE.DHCPV6);
  t.is(svc(TCP_SYN), LINK_SERVICE.NONE);
  const dns = eth('9a:55:9a:55:9a:55', GUEST_MAC, 0x86dd,
    ipv6({ src: 'fe80::2', dst: 'fe80::1', nh: 17 }, udp6('fe80::2', 'fe80::1', 5353, 53, new Uint8Array(12))));
  t.is(svc(dns), LINK_SERVICE.NONE);
  const echo = eth('9a:55:9a:55:9a:55', GUEST_MAC, 0x86dd,
    ipv6({ src: 'fe80::2', dst: 'fe80::1', nh: 58 }, icmp6('fe80::2', 'fe80::1', Uint8Array.of(128, 0, 0, 0, 0, 1, 0, 1))));
  t.is(svc(echo), LINK_SERVICE.NONE);
  t.is(svc(new Uint8Array(5)), LINK_SERVICE.NONE);
});

test('linkHandle runs the service', (t) => {
  const ctx = serviceContextFromConfig(makeConfig({}, { addr: '10.0.2.15', gateway: '10.0.2.2' }), START_MS);
  const out = new Uint8Array(LINK_REPLY_MAX);
  t.is(LINK_REPLY_MAX, 1500);
  t.is(linkHandle(ctx, LINK_SERVICE.ARP, ARP_REQUEST, 0, 42, out, 0), 42);
  t.true(linkHandle(ctx, LINK_SERVICE.DHCP, DHCP_DISCOVER, 0, DHCP_DISCOVER.length, out, 0) > 300);
  t.is(linkHandle(ctx, LINK_SERVICE.NDP, NDP_NS, 0, NDP_NS.length, out, 0), 86);
  t.true(linkHandle(ctx, LINK_SERVICE.DHCPV6, DHCPV6_SOLICIT, 0, DHCPV6_SOLICIT.length, out, 0) > 100);
  t.is(linkHandle(ctx, LINK_SERVICE.NONE, TCP_SYN, 0, TCP_SYN.length, out, 0), 0);
});

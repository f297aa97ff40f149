#!/bin/sh
# Makes the current network namespace (made by the caller) play the host:
# lo up, and a veth uplink "eth0" with documentation addresses
# (192.0.2.2/24 via 192.0.2.1, 2001:db8::2/64 via 2001:db8::1) whose far
# end, uplink0, goes nowhere: nothing sent through it can leave the machine.
# Used by test/run.sh, the perf/ scripts and the nested namespaces of
# test/e2e/udp.test.ts.
set -e
ip link set lo up
ip link add eth0 type veth peer name uplink0
ip link set uplink0 up
ip link set eth0 up mtu 1500
ip addr add 192.0.2.2/24 dev eth0
ip route add default via 192.0.2.1
ip -6 addr add 2001:db8::2/64 dev eth0 nodad
ip -6 route add default via 2001:db8::1

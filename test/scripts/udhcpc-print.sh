#!/bin/sh
# busybox udhcpc script for tests: prints what the server offered, as
# key=value pairs on one line, instead of configuring anything.
echo "udhcpc event=$1 ip=$ip subnet=$subnet router=$router dns=$dns mtu=$mtu lease=$lease serverid=$serverid search=$search hostname=$hostname opt81=$opt81"

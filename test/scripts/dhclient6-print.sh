#!/bin/sh
# dhclient -6 script for tests: prints the lease instead of configuring it.
echo "dhclient6 reason=$reason addr=$new_ip6_address/$new_ip6_prefixlen dns=$new_dhcp6_name_servers search=$new_dhcp6_domain_search fqdn=$new_fqdn_fqdn"

/**
 * The real-guest test over vhost-user (issue 14): the same checks as over
 * `-netdev stream` (test/guest/suite.ts), with passt --vhost-user and qemu's
 * `-netdev vhost-user` on a shared memfd as the guest's memory
 * (CLIENTS.md §4.3).
 */
import { guestSuite } from '../guest/suite';

guestSuite({ vhostUser: true, portOffset: 50 });

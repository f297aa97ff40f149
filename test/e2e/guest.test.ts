/**
 * The project's own real-guest test (issue: passt mode) over qemu's
 * `-netdev stream`: the checks are in test/guest/suite.ts (the vhost-user
 * run is guestVhostUser.test.ts).
 */
import { guestSuite } from '../guest/suite';

guestSuite({});

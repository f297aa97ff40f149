/** UDP and ICMP worker (SPEC.md §5, §6). Until they land, frames are counted. */
import { CountingL4Worker } from '../l4stub';

new CountingL4Worker().run();

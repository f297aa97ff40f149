/** TCP worker (SPEC.md §4). Until TCP translation lands, frames are counted. */
import { CountingL4Worker } from '../l4stub';

new CountingL4Worker().run();

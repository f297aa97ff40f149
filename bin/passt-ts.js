#!/usr/bin/env node
// passt-ts entry point: run as "pasta", "passt" or "slirp4netns-ts" (the mode comes from the name).
'use strict';
require('../dist/src/main/index.js').main();

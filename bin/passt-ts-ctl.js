#!/usr/bin/env node
// passt-ts-ctl: talks to the control socket of a running pasta or passt (--control PATH).
'use strict';
require('../dist/src/main/control/ctl.js').main();

#!/usr/bin/env node
// Summary of the strace files of test/scripts/syscalls.sh: the system calls
// made by threads after their isolation step (their own
// prctl(PR_SET_NO_NEW_PRIVS, 1) in isolate.cc), and by every task such a
// thread made afterwards, counted over all runs; then what the seccomp
// policy (dist/src/main/seccompPolicy.js) lacks, and what it allows that no
// run made.
//   node test/scripts/syscalls-summary.js RAWDIR...
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const files = process.argv.slice(2).flatMap((d) => fs.readdirSync(d).sort().map((f) => path.join(d, f)));
const counts = new Map();   // name -> calls
const runsOf = new Map();   // name -> runs that made it
const notes = [];
let runs = 0, isolatedRuns = 0, tasks = 0, laterTasks = 0;
const LINE = /^(\d+)\s+[\d.]+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()/;
const SPAWN = /^(\d+)\s+[\d.]+\s+(?:<\.\.\. (clone3?|fork|vfork) resumed>.*|(clone3?|fork|vfork)\(.*)\)\s+=\s+(\d+)/;
for (const file of files) {
  const f = path.basename(path.dirname(path.dirname(file))) + '/' + path.basename(file);
  runs++;
  const isolated = new Set();
  const seen = new Map();  // tid -> names called since its isolation step
  const started = new Map();  // tid -> the start of its unfinished call
  let any = false;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = LINE.exec(line);
    if (!m) {
      if (/\+\+\+ killed by SIGSYS/.test(line)) notes.push(`${f}: killed by SIGSYS: ${line}`);
      continue;
    }
    const tid = m[1];
    const name = m[2] ?? m[3];
    if (!isolated.has(tid)) {
      if (name === 'prctl' && /^\S+\s+\S+\s+prctl\(PR_SET_NO_NEW_PRIVS, 1/.test(line)) {
        isolated.add(tid);
        seen.set(tid, []);
        any = true;
      }
      continue;
    }
    // the thread that installs the filter checked the others first: what
    // it did before the filter need not be allowed
    if (m[3] === 'seccomp') {
      seen.set(tid, []);
      continue;
    }
    if (m[3] !== undefined) seen.get(tid).push(name);  // a resumed call was counted at its start
    // a call's start (with clone3's flags) and its end may be apart
    if (/<unfinished \.\.\.>$/.test(line)) started.set(tid, line);
    const s = SPAWN.exec(line);
    if (s && Number(s[4]) > 0) {
      const whole = (m[2] !== undefined ? started.get(tid) ?? '' : '') + line;
      isolated.add(s[4]);
      seen.set(s[4], []);
      laterTasks++;
      if (!/CLONE_THREAD/.test(whole)) notes.push(`${f}: a process made after isolation: ${whole.slice(0, 300)}`);
    }
    if (name === 'execve') notes.push(`${f}: execve after isolation: ${line.slice(0, 200)}`);
  }
  for (const names of seen.values()) {
    for (const name of names) {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      if (!runsOf.has(name)) runsOf.set(name, new Set());
      runsOf.get(name).add(f);
    }
  }
  if (any) isolatedRuns++;
  tasks += isolated.size;
}

let policy = null;
try {
  policy = require(path.join(__dirname, '..', '..', 'dist', 'src', 'main', 'seccompPolicy.js'));
} catch { /* not built */ }
const allowed = new Set(policy ? policy.allowedNames() : []);
const rows = [...counts.entries()].sort((a, b) => b[1] - a[1]);
console.log(`# ${runs} runs traced, ${isolatedRuns} isolated; ${tasks} isolated tasks (${laterTasks} made after isolation)`);
console.log('# calls after isolation: name, calls, runs that made it');
for (const [n, c] of rows) console.log(`${n.padEnd(24)} ${String(c).padStart(10)} ${String(runsOf.get(n).size).padStart(6)}${policy && !allowed.has(n) ? '   NOT IN POLICY' : ''}`);
if (policy) {
  const unseen = [...allowed].filter((n) => !counts.has(n)).sort();
  console.log(`# in the policy, not seen in these runs: ${unseen.join(' ') || '-'}`);
  const missing = rows.filter(([n]) => !allowed.has(n)).map(([n]) => n);
  console.log(`# seen, not in the policy: ${missing.join(' ') || '-'}`);
}
for (const n of notes.slice(0, 50)) console.log(`# ${n}`);

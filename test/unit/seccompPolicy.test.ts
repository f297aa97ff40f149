/**
 * The seccomp allow-list (src/main/seccompPolicy.ts): every name has the
 * number the system's header gives it, none is listed twice or denied, and
 * what every process needs to run and to end is there. The filter itself
 * is end to end (test/e2e/sandbox.test.ts).
 */
import test from 'ava';
import * as fs from 'node:fs';
import { ALLOWED, DENIED, X86_64, allowedNames, allowedNumbers } from '../../src/main/seccompPolicy';

const HEADER = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';

function header(): Map<string, number> | null {
  let text: string;
  try {
    text = fs.readFileSync(HEADER, 'utf8');
  } catch {
    return null;
  }
  const m = new Map<string, number>();
  for (const x of text.matchAll(/^#define __NR_(\w+) (\d+)$/gm)) m.set(x[1], Number(x[2]));
  return m;
}

test('every number is the one asm/unistd_64.h gives the name', (t) => {
  const h = header();
  if (!h) {
    t.pass(`${HEADER} not installed`);
    return;
  }
  for (const [name, nr] of Object.entries(X86_64)) t.is(h.get(name), nr, name);
  t.true(Object.keys(X86_64).length >= allowedNames().length + DENIED.length);
});

test('no call is allowed twice or both allowed and denied; every group says why', (t) => {
  const names = allowedNames();
  t.is(new Set(names).size, names.length, 'no duplicates');
  for (const d of DENIED) t.false(names.includes(d), `${d} is denied`);
  for (const g of ALLOWED) t.true(g.calls.length > 0, g.name);
  const src = fs.readFileSync(`${__dirname}/../../../src/main/seccompPolicy.ts`, 'utf8');
  for (const g of ALLOWED) t.regex(src, new RegExp(`name: '${g.name}',\\n\\s+// \\S`), `group ${g.name} has a reason`);
  const nrs = allowedNumbers();
  t.is(nrs.length, names.length);
  t.is(new Set(nrs).size, nrs.length);
});

test('what every thread needs to run, take signals and end is allowed; what set-up alone needs is not', (t) => {
  const names = new Set(allowedNames());
  for (const n of ['exit', 'exit_group', 'rt_sigreturn', 'futex', 'epoll_wait', 'epoll_pwait', 'mmap', 'munmap', 'mprotect', 'madvise',
    'read', 'write', 'close', 'clone3', 'set_robust_list', 'rseq', 'setns', 'recvmmsg', 'sendmmsg', 'splice', 'ioctl'])
    t.true(names.has(n), n);
  for (const n of ['execve', 'execveat', 'ptrace', 'mount', 'pivot_root', 'umount2', 'init_module', 'finit_module', 'bpf', 'kexec_load',
    'setresuid', 'setgroups', 'capset', 'unshare', 'io_uring_setup', 'clone', 'fork', 'vfork', 'process_vm_readv'])
    t.false(names.has(n), n);
});

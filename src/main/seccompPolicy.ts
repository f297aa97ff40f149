/**
 * The seccomp allow-list of pasta, passt and slirp4netns-ts (issue #12,
 * SPEC.md §11): the system calls a process may make once it is isolated
 * (isolation.ts; the filter itself: native/src/isolate.cc). Anything else
 * kills the process (SECCOMP_RET_KILL_PROCESS: SIGSYS, status 159 to its
 * parent), or, with --seccomp-log or PASST_TS_SECCOMP_LOG=1, is logged by
 * the kernel (dmesg or the audit log: `type=1326 ... syscall=NR`) and runs.
 *
 * The list is derived by measurement, not copied from the C original (whose
 * list is too short for Node.js): test/scripts/syscalls.sh runs the test
 * suite or the benchmarks with every pasta, passt and slirp4netns-ts run
 * under `strace -f`, and counts the calls each thread makes after its own
 * isolation step; with the filter in log mode, the kernel log lists what the
 * filter lacks. A group below may hold calls no recorded run made, where a
 * code path makes them lazily and a missing one would kill the process (the
 * reason says which); the last recording is summarised in perf/README.md
 * ("System calls after isolation").
 *
 * Numbers are those of x86_64 (asm/unistd_64.h; test/unit/seccompPolicy.test.ts
 * checks them against the system's header). The filter is installed on
 * x86_64 only; elsewhere the process runs without one, and says so.
 *
 * Never allowed, though set-up makes some of them (DENIED: the unit test
 * checks that no group lists one): nothing runs a program after isolation
 * (pasta-helper and the spawned command are started before, the daemon
 * before that), and nothing mounts, traces, loads modules or programs, or
 * changes credentials again. io_uring is among them: libuv in Node 20 uses
 * it only when UV_USE_IO_URING asks for it, and isolation.ts refuses to
 * isolate a process started so.
 */

export interface SyscallGroup {
  name: string;
  calls: readonly string[];
}

/** The allow-list, grouped; each group says why its calls are needed after isolation. */
export const ALLOWED: readonly SyscallGroup[] = [
  {
    name: 'memory',
    // V8's heap, its JIT code pages (write/execute flips), glibc's allocator and the
    // workers' buffers map, protect, grow and release memory all run long. mremap,
    // not recorded: glibc's realloc() of a large (mapped) block
    calls: ['mmap', 'munmap', 'mprotect', 'madvise', 'brk', 'mremap'],
  },
  {
    name: 'threads',
    // futex under every lock and condition variable (libuv, V8, our rings' waits).
    // Threads are made after isolation: the short-lived native thread that makes a
    // socket inside pasta's namespace (ns.cc: pthread_create, so clone3; recorded 102
    // times in one run), and libuv's pool on its first use; glibc registers each one
    // (set_robust_list, rseq) and ends it with exit. clone, fork and vfork stay out:
    // glibc makes threads with clone3
    calls: ['futex', 'clone3', 'set_robust_list', 'rseq', 'exit', 'sched_yield', 'gettid', 'getpid'],
  },
  {
    name: 'event loop',
    // the epoll loops of the main thread and of every worker (libuv's and the
    // addon's: both epoll_wait and epoll_pwait were recorded). poll and ppoll, not
    // recorded: libuv's and Node's waits for a descriptor outside the loop (a full
    // pipe written synchronously, such as the log's to the foreground). eventfd2: the
    // TCP worker's spare descriptor, closed to accept (and reset) a connection when
    // none is left, is made again at run time (listeners.ts; the full suite's
    // RLIMIT_NOFILE test was killed without it)
    calls: ['epoll_wait', 'epoll_pwait', 'epoll_ctl', 'poll', 'ppoll', 'eventfd2'],
  },
  {
    name: 'descriptor I/O',
    // the tap, the eventfd wakers, pipes, inotify, the log and pcap files (written
    // and rotated: ftruncate, lseek, pwrite64; pread64: /proc/net files of `auto`
    // re-read through their descriptors), splice() between spliced connections'
    // pipes, made per connection (pipe2); writev: Node's streams (the control socket)
    calls: ['read', 'write', 'writev', 'pread64', 'pwrite64', 'lseek', 'close', 'dup', 'fcntl', 'fstat', 'newfstatat', 'statx',
      'ftruncate', 'pipe2', 'splice'],
  },
  {
    name: 'files through kept descriptors',
    // the quit watch's netns directory in timer mode (openat of the name, getdents64 of
    // the directory); files removed at exit (unlinkat in their directory: removable.ts);
    // unlink: libuv removes the path a UNIX socket server bound when it closes (the
    // control socket's, at exit), which in the empty root finds nothing (ENOENT);
    // inotify_rm_watch: the quit watch (fs.watch on the netns directory) is closed
    // when the namespace goes (the full suite found 74 daemons killed without it)
    calls: ['openat', 'getdents64', 'unlinkat', 'unlink', 'inotify_rm_watch'],
  },
  {
    name: 'sockets',
    // every flow: TCP and UDP sockets on both sides, the passt and vhost-user client
    // sockets (descriptors of guest memory and eventfds come as SCM_RIGHTS), the
    // control and slirp4netns API sockets, netlink for `auto`, batched datagrams.
    // sendto, not recorded: glibc's send()
    calls: ['socket', 'bind', 'listen', 'accept4', 'connect', 'shutdown', 'getsockopt', 'setsockopt', 'sendto', 'recvfrom',
      'sendmsg', 'recvmsg', 'sendmmsg', 'recvmmsg'],
  },
  {
    name: 'ioctl',
    // allowed whatever the request: libuv sets FIONBIO/FIOCLEX, the TCP worker reads
    // SIOCOUTQ/SIOCINQ, and the tap's were set up before; filtering the request would
    // need an argument check, which the kernel's per-number cache (isolate.cc) cannot take
    calls: ['ioctl'],
  },
  {
    name: 'namespaces',
    // pasta: the native thread that makes sockets inside the target network
    // namespace enters it (ns.cc); CAP_SYS_ADMIN is kept for it (isolation.ts)
    calls: ['setns'],
  },
  {
    name: 'time',
    // sleeps (clock_nanosleep); clock_gettime, clock_getres, gettimeofday and time
    // are answered by the vDSO without a system call, and were not recorded, but
    // fall back to one where the clock source has no vDSO support (some VMs)
    calls: ['clock_nanosleep', 'clock_gettime', 'clock_getres', 'gettimeofday', 'time'],
  },
  {
    name: 'signals',
    // delivery and return (rt_sigreturn), handlers and masks (Node's, libuv's,
    // the inspector's watchdog), SIGCHLD and the reaping of pasta-helper (wait4),
    // the late signal 32 of isolate.cc (a no-op once the filter is in).
    // restart_syscall, not recorded: the kernel's restart of a sleep a signal
    // interrupted; tgkill, not recorded after isolation: raise() and abort(), so
    // that a fatal error still ends the process with SIGABRT, not SIGSYS
    calls: ['rt_sigreturn', 'rt_sigaction', 'rt_sigprocmask', 'wait4', 'restart_syscall', 'tgkill'],
  },
  {
    name: 'a worker started after isolation',
    // the UDP worker starts on demand, at the first datagram or echo request
    // (supervisor.ts, PASST_TS_LAZY_UDP), that is after the filter is in:
    // Node's worker bootstrap reads the credentials and capabilities
    // (getuid ... capget), the memory and CPU sizes V8 and libuv size
    // themselves by (sysinfo, sched_getaffinity), its executable's path
    // (readlink of /proc/self/exe, which the empty root answers with ENOENT),
    // the working directory (getcwd: module resolution of the worker's
    // in-memory image), the kernel's name (uname: os.release() and V8's
    // platform checks) and makes the worker's epoll set. Recorded with --seccomp-log by the
    // udp tests and strace of a worker's start after the merge of the
    // on-demand worker
    calls: ['getuid', 'getgid', 'geteuid', 'getegid', 'capget', 'sysinfo', 'sched_getaffinity', 'readlink', 'getcwd', 'uname', 'epoll_create1'],
  },
  {
    name: 'process',
    // exit_group ends the process. getrandom, not recorded: OpenSSL's and V8's
    // reseeding of their generators
    calls: ['exit_group', 'getrandom'],
  },
];

/** Calls no group may list. */
export const DENIED: readonly string[] = [
  'execve', 'execveat', 'ptrace', 'mount', 'umount2', 'pivot_root', 'chroot', 'init_module',
  'finit_module', 'delete_module', 'bpf', 'kexec_load', 'kexec_file_load', 'reboot', 'swapon',
  'swapoff', 'setuid', 'setgid', 'setreuid', 'setregid', 'setresuid', 'setresgid', 'setgroups',
  'capset', 'unshare', 'process_vm_readv', 'process_vm_writev', 'perf_event_open', 'keyctl',
  'add_key', 'request_key', 'userfaultfd', 'io_uring_setup', 'io_uring_enter', 'io_uring_register',
  'open_by_handle_at', 'name_to_handle_at', 'fork', 'vfork', 'clone', 'personality', 'acct',
  'settimeofday', 'clock_settime', 'adjtimex', 'quotactl', 'syslog', 'iopl', 'ioperm', 'mknod',
  'mknodat', 'fsopen', 'fsmount', 'fsconfig', 'move_mount', 'open_tree', 'pidfd_getfd', 'kcmp',
  'seccomp', 'prctl',
];

/** x86_64 system call numbers (asm/unistd_64.h) of every name above. */
export const X86_64: Readonly<Record<string, number>> = {
  read: 0,
  write: 1,
  close: 3,
  fstat: 5,
  poll: 7,
  lseek: 8,
  mmap: 9,
  mprotect: 10,
  munmap: 11,
  brk: 12,
  rt_sigaction: 13,
  rt_sigprocmask: 14,
  rt_sigreturn: 15,
  ioctl: 16,
  pread64: 17,
  pwrite64: 18,
  readv: 19,
  writev: 20,
  sched_yield: 24,
  mremap: 25,
  madvise: 28,
  dup: 32,
  dup2: 33,
  nanosleep: 35,
  getpid: 39,
  socket: 41,
  connect: 42,
  accept: 43,
  sendto: 44,
  recvfrom: 45,
  sendmsg: 46,
  recvmsg: 47,
  shutdown: 48,
  bind: 49,
  listen: 50,
  getsockname: 51,
  getpeername: 52,
  socketpair: 53,
  setsockopt: 54,
  getsockopt: 55,
  clone: 56,
  fork: 57,
  vfork: 58,
  execve: 59,
  exit: 60,
  wait4: 61,
  kill: 62,
  uname: 63,
  fcntl: 72,
  fsync: 74,
  fdatasync: 75,
  ftruncate: 77,
  getcwd: 79,
  unlink: 87,
  readlink: 89,
  gettimeofday: 96,
  getrusage: 98,
  sysinfo: 99,
  ptrace: 101,
  getuid: 102,
  syslog: 103,
  getgid: 104,
  setuid: 105,
  setgid: 106,
  geteuid: 107,
  getegid: 108,
  setreuid: 113,
  setregid: 114,
  setgroups: 116,
  setresuid: 117,
  setresgid: 119,
  capget: 125,
  capset: 126,
  sigaltstack: 131,
  mknod: 133,
  personality: 135,
  fstatfs: 138,
  pivot_root: 155,
  prctl: 157,
  adjtimex: 159,
  chroot: 161,
  acct: 163,
  settimeofday: 164,
  mount: 165,
  umount2: 166,
  swapon: 167,
  swapoff: 168,
  reboot: 169,
  iopl: 172,
  ioperm: 173,
  init_module: 175,
  delete_module: 176,
  quotactl: 179,
  gettid: 186,
  time: 201,
  futex: 202,
  sched_getaffinity: 204,
  getdents64: 217,
  restart_syscall: 219,
  clock_settime: 227,
  clock_gettime: 228,
  clock_getres: 229,
  clock_nanosleep: 230,
  exit_group: 231,
  epoll_wait: 232,
  epoll_ctl: 233,
  tgkill: 234,
  kexec_load: 246,
  waitid: 247,
  add_key: 248,
  request_key: 249,
  keyctl: 250,
  inotify_rm_watch: 255,
  openat: 257,
  mknodat: 259,
  newfstatat: 262,
  unlinkat: 263,
  readlinkat: 267,
  ppoll: 271,
  unshare: 272,
  set_robust_list: 273,
  splice: 275,
  epoll_pwait: 281,
  timerfd_create: 283,
  timerfd_settime: 286,
  timerfd_gettime: 287,
  accept4: 288,
  eventfd2: 290,
  epoll_create1: 291,
  dup3: 292,
  pipe2: 293,
  preadv: 295,
  pwritev: 296,
  perf_event_open: 298,
  recvmmsg: 299,
  prlimit64: 302,
  name_to_handle_at: 303,
  open_by_handle_at: 304,
  sendmmsg: 307,
  setns: 308,
  process_vm_readv: 310,
  process_vm_writev: 311,
  kcmp: 312,
  finit_module: 313,
  seccomp: 317,
  getrandom: 318,
  kexec_file_load: 320,
  bpf: 321,
  execveat: 322,
  userfaultfd: 323,
  membarrier: 324,
  statx: 332,
  rseq: 334,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  clone3: 435,
  pidfd_getfd: 438,
  epoll_pwait2: 441,
};

/** Every allowed name, in group order. */
export function allowedNames(): string[] {
  return ALLOWED.flatMap((g) => [...g.calls]);
}

/** The allow-list as x86_64 numbers, for native.seccompFilter(). */
export function allowedNumbers(): Int32Array {
  return Int32Array.from(allowedNames().map((n) => {
    const nr = X86_64[n];
    if (nr === undefined) throw new Error(`seccomp policy: no number for ${n}`);
    return nr;
  }));
}

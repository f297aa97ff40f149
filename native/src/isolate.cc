// Self-isolation of the running process, in every one of its threads
// (SPEC.md §11; the C original's isolation.c, stages isolate_user() and
// isolate_prefork(), taken at the end of set-up).
//
// Theory of operation
//
// Credentials are per thread in Linux: capset(), PR_CAPBSET_DROP,
// PR_CAP_AMBIENT, PR_SET_NO_NEW_PRIVS and the raw setresuid()/setgroups()
// system calls change only the calling thread. glibc makes setuid() and
// friends process-wide by signalling every thread (SIGSETXID), but it does
// nothing of the kind for capabilities. By the time set-up is complete a
// Node process has the main thread, libuv's thread pool, V8's platform
// threads, the inspector's SIGUSR1 watchdog and our workers, so the whole
// step is broadcast:
//
// 1. The calling (main) thread applies the step to itself.
// 2. Every other task in /proc/self/task is sent signal 32 with tgkill();
//    its handler applies the same step with raw system calls
//    (async-signal-safe) and records the result in a slot.
// 3. Every task's /proc/self/task/TID/status is compared with the main
//    thread's (Uid, Gid, Groups, Cap*, NoNewPrivs); a task that differs and
//    has not answered yet is signalled again (a thread made meanwhile by a
//    thread that had not been handled yet inherited the old credentials;
//    one made by a handled thread inherited the new ones). Rounds repeat
//    until every task matches, or the step fails.
//
// Why signal 32: glibc's sigprocmask() never blocks its two internal
// signals (32, SIGCANCEL, and 33, SIGSETXID), and Node's inspector
// watchdog thread blocks every other signal for its whole life, so a
// normal real-time signal would never reach it. Signal 32 is only used by
// pthread_cancel() and SIGEV_THREAD timers, which neither Node, V8, libuv
// nor we use; glibc's sigaction() refuses it, so the handler is installed
// with the raw rt_sigaction system call (with the restorer glibc itself
// uses, read back from a scratch signal). It stays installed afterwards:
// signal 32 is a queued real-time signal, so a second one sent to a slow
// thread may still arrive after the broadcast, and its default action
// would end the process; applying the step again changes nothing.
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

namespace passt {
namespace {

// What a thread does (flags of isolateThreads()).
enum : uint32_t {
  kSetGroups = 1,  // setgroups(0, NULL); EPERM tolerated (no CAP_SETGID, or setgroups "deny")
  kSetIds = 2,     // setresgid(gid), setresuid(uid), keeping the permitted capabilities
  kClamp = 4,      // empty the bounding (EPERM tolerated without CAP_SETPCAP), inheritable, ambient sets
  kCaps = 8,       // effective = permitted = permitted & keep
  kNoNewPrivs = 16,
  kDetach = 32,  // new mount, IPC, UTS namespaces; root: an empty read-only tmpfs (main thread: DetachFs())
};

struct Step {
  uint32_t flags = 0;
  uint32_t uid = 0, gid = 0;
  uint64_t keep = 0;
  // kDetach: the namespaces the main thread made, which the others join
  int mntfd = -1, ipcfd = -1, utsfd = -1;
};

Step g_step;

constexpr int kMaxAcks = 1024;
struct Ack {
  std::atomic<int> tid{0};
  std::atomic<int> err{0};
};
Ack g_acks[kMaxAcks];
std::atomic<int> g_nacks{0};

// Applies the step to the calling thread; returns 0 or an errno value.
// Only raw system calls: this runs in a signal handler.
int Apply(const Step& s, bool main_thread) {
  if ((s.flags & kDetach) && !main_thread) {
    // the thread's own root and working directory first (setns() into a
    // mount namespace wants an fs_struct nobody else shares), then the
    // main thread's namespaces: root and cwd become the empty tmpfs
    if (syscall(SYS_unshare, CLONE_FS) < 0) return errno;
    if (syscall(SYS_setns, s.mntfd, CLONE_NEWNS) < 0) return errno;
    if (syscall(SYS_setns, s.ipcfd, CLONE_NEWIPC) < 0) return errno;
    if (syscall(SYS_setns, s.utsfd, CLONE_NEWUTS) < 0) return errno;
  }
  if (s.flags & kClamp) {
    for (int i = 0; i < 64; i++) {
      // EINVAL: not a capability of this kernel; EPERM: no CAP_SETPCAP
      // (a normal user's passt, whose bounding set stays as it was)
      if (syscall(SYS_prctl, PR_CAPBSET_DROP, i, 0, 0, 0) < 0 && errno != EINVAL && errno != EPERM) return errno;
    }
    if (syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return errno;
  }
  if (s.flags & kSetGroups) {
    if (syscall(SYS_setgroups, 0, nullptr) < 0 && errno != EPERM) return errno;
  }
  if (s.flags & kSetIds) {
    // PR_SET_KEEPCAPS: a UID change away from 0 keeps the permitted set
    // (the effective set is emptied all the same; kCaps sets it again)
    if (syscall(SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return errno;
    if (syscall(SYS_setresgid, s.gid, s.gid, s.gid) < 0) return errno;
    if (syscall(SYS_setresuid, s.uid, s.uid, s.uid) < 0) return errno;
    if (syscall(SYS_prctl, PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) return errno;
  }
  if (s.flags & (kCaps | kClamp)) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    if (syscall(SYS_capget, &hdr, data) < 0) return errno;
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
      uint32_t mask = static_cast<uint32_t>(s.keep >> (32 * i));
      if (s.flags & kClamp) data[i].inheritable = 0;
      if (s.flags & kCaps) {
        data[i].permitted &= mask;
        data[i].effective = data[i].permitted;
      }
    }
    if (syscall(SYS_capset, &hdr, data) < 0) return errno;
  }
  if (s.flags & kNoNewPrivs) {
    if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return errno;
  }
  return 0;
}

// Set once the seccomp filter is in: a late signal 32 (see the top) must
// then make no system call the filter does not allow, so the handler does
// nothing (the step was applied, and checked, before the filter).
std::atomic<bool> g_sealed{false};

void Handler(int) {
  if (g_sealed.load()) return;
  int saved = errno;
  int err = Apply(g_step, false);
  int i = g_nacks.fetch_add(1);
  if (i < kMaxAcks) {
    g_acks[i].err.store(err);
    g_acks[i].tid.store(static_cast<int>(syscall(SYS_gettid)));
  }
  errno = saved;
}

// The kernel's struct sigaction on x86_64 and arm64.
struct KernelSigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)(void);
  uint64_t mask;
};

constexpr int kSignal = 32;

// Installs Handler on kSignal; the previous action goes to *old.
int InstallHandler(KernelSigaction* old) {
#if defined(__x86_64__) || defined(__aarch64__)
  // glibc fills in SA_RESTORER and its restorer: let it, on a scratch
  // signal, and copy what it gave the kernel
  const int scratch = SIGRTMAX;
  KernelSigaction saved, k;
  if (syscall(SYS_rt_sigaction, scratch, nullptr, &saved, sizeof(uint64_t)) < 0) return errno;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = Handler;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  if (sigaction(scratch, &sa, nullptr) < 0) return errno;
  int r = static_cast<int>(syscall(SYS_rt_sigaction, scratch, nullptr, &k, sizeof(uint64_t)));
  int e = errno;
  syscall(SYS_rt_sigaction, scratch, &saved, nullptr, sizeof(uint64_t));
  if (r < 0) return e;
  k.mask = ~0ULL;  // nothing else interrupts the handler
  if (syscall(SYS_rt_sigaction, kSignal, &k, old, sizeof(uint64_t)) < 0) return errno;
  return 0;
#else
  return ENOSYS;
#endif
}

// The main thread's half of kDetach (the original's isolate_prefork()):
// new mount, IPC and UTS namespaces, / made recursively unbindable (nothing
// we mount propagates to the host), an empty read-only tmpfs (2 inodes, no
// blocks) mounted on /tmp, pivot_root() into it and the old root detached.
// The namespaces' descriptors go to s->*fd for the other threads. Returns 0
// or an errno value; *what names the failed step.
int DetachFs(Step* s, const char** what) {
  *what = "unshare";
  if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) < 0) return errno;
  *what = "open namespaces";
  s->mntfd = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
  s->ipcfd = open("/proc/thread-self/ns/ipc", O_RDONLY | O_CLOEXEC);
  s->utsfd = open("/proc/thread-self/ns/uts", O_RDONLY | O_CLOEXEC);
  if (s->mntfd < 0 || s->ipcfd < 0 || s->utsfd < 0) return errno;
  *what = "remount /";
  if (mount("", "/", "", MS_UNBINDABLE | MS_REC, nullptr) < 0) return errno;
  *what = "mount empty tmpfs";
  if (mount("", "/tmp", "tmpfs", MS_NODEV | MS_NOEXEC | MS_NOSUID | MS_RDONLY, "nr_inodes=2,nr_blocks=0") < 0)
    return errno;
  *what = "chdir";
  if (chdir("/tmp") < 0) return errno;
  *what = "pivot_root";
  if (syscall(SYS_pivot_root, ".", ".") < 0) return errno;
  *what = "umount old root";
  if (umount2(".", MNT_DETACH | UMOUNT_NOFOLLOW) < 0) return errno;
  return 0;
}

// The lines of a status file that the step changes, in file order.
bool StatusKey(const char* line) {
  static const char* const keys[] = {"Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:",
                                     "CapBnd:", "CapAmb:", "NoNewPrivs:"};
  for (const char* k : keys)
    if (!strncmp(line, k, strlen(k))) return true;
  return false;
}

// What /proc/self/task/NAME tells of a thread: the lines of its status file
// that the step changes, its namespaces, and its TID in our own PID
// namespace (NAME is its TID in the PID namespace of /proc, which may be an
// outer one: pasta as PID 1 of `unshare --pid --fork` without --mount-proc;
// tgkill() and gettid() use ours). creds is "" if the thread is gone.
struct TaskState {
  std::string creds;
  int tid = -1;
};

TaskState ReadTask(int taskdir, const std::string& name) {
  TaskState ts;
  int fd = openat(taskdir, (name + "/status").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ts;
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
  close(fd);
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    if (StatusKey(line.c_str())) out += line + "\n";
    if (!strncmp(line.c_str(), "NSpid:", 6)) {
      size_t sp = line.find_last_of(" \t");
      if (sp != std::string::npos) ts.tid = atoi(line.c_str() + sp + 1);
    }
    pos = nl + 1;
  }
  if (ts.tid < 0) ts.tid = atoi(name.c_str());  // kernels without NSpid
  // and the namespaces kDetach changes
  for (const char* ns : {"mnt", "ipc", "uts"}) {
    char link[64];
    ssize_t l = readlinkat(taskdir, (name + "/ns/" + ns).c_str(), link, sizeof(link) - 1);
    if (l < 0) return TaskState();
    out += std::string(link, static_cast<size_t>(l)) + "\n";
  }
  ts.creds = out;
  return ts;
}

std::vector<std::string> Tasks(int taskdir) {
  std::vector<std::string> out;
  int fd = dup(taskdir);
  if (fd < 0) return out;
  DIR* d = fdopendir(fd);
  if (!d) {
    close(fd);
    return out;
  }
  rewinddir(d);
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    out.push_back(e->d_name);
  }
  closedir(d);
  return out;
}

// The calling thread's state, found by its TID.
TaskState SelfTask(int taskdir, int self) {
  for (const std::string& name : Tasks(taskdir)) {
    TaskState ts = ReadTask(taskdir, name);
    if (ts.tid == self && !ts.creds.empty()) return ts;
  }
  return TaskState();
}

void SleepMs(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, nullptr);
}

// Signals every task that does not match `want` yet, then checks them all.
// Returns the number of tasks, or -errno (err_tid[0] names a failed task).
long Broadcast(int taskdir, const std::string& want, int self, int32_t* err_tid) {
  for (int round = 0; round < 50; round++) {
    std::vector<std::string> tasks = Tasks(taskdir);
    if (tasks.empty()) return -EIO;
    std::vector<int> pending;
    for (const std::string& name : tasks) {
      TaskState ts = ReadTask(taskdir, name);
      if (ts.creds.empty() || ts.tid == self || ts.creds == want) continue;  // gone, us, or done
      // a thread that answered but differs failed: report it
      int n = std::min(g_nacks.load(), kMaxAcks);
      for (int i = 0; i < n; i++) {
        if (g_acks[i].tid.load() == ts.tid && g_acks[i].err.load()) {
          err_tid[0] = ts.tid;
          return -g_acks[i].err.load();
        }
      }
      pending.push_back(ts.tid);
    }
    if (pending.empty()) return static_cast<long>(tasks.size());
    int before = g_nacks.load();
    int sent = 0;
    for (int tid : pending) {
      if (syscall(SYS_tgkill, getpid(), tid, kSignal) == 0) sent++;
    }
    // wait for the answers (a thread that exited meanwhile never answers)
    for (int i = 0; i < 200 && g_nacks.load() - before < sent; i++) SleepMs(1);
  }
  return -ETIMEDOUT;
}

// isolateThreads(flags, uid, gid, keepLo, keepHi, errTid: Int32Array(1))
//   -> number of threads now isolated, or -errno (errTid[0]: the failing
//   thread, 0 for the calling one, -1 if its kDetach step failed). See the
//   top of this file.
Napi::Value IsolateThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Ints err_tid = GetInts(env, info[5]);
  if (!err_tid.ok || err_tid.count < 1) return Num(env, -EINVAL);
  err_tid.data[0] = 0;
  Step s;
  s.flags = static_cast<uint32_t>(Int(info, 0));
  s.uid = static_cast<uint32_t>(Int(info, 1));
  s.gid = static_cast<uint32_t>(Int(info, 2));
  s.keep = (static_cast<uint64_t>(static_cast<uint32_t>(Int(info, 4))) << 32) | static_cast<uint32_t>(Int(info, 3));

  // opened before this thread changes anything: /proc/self stays readable
  int taskdir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (taskdir < 0) return Num(env, -errno);
  int self = static_cast<int>(syscall(SYS_gettid));

  static bool installed = false;
  if (!installed) {
    KernelSigaction old;
    int e = InstallHandler(&old);
    if (e) {
      close(taskdir);
      return Num(env, -e);
    }
    installed = true;
  }
  g_step = s;
  g_nacks.store(0);
  for (auto& a : g_acks) {
    a.tid.store(0);
    a.err.store(0);
  }

  long r;
  int e = 0;
  const char* what = "";  // for a debugger: the failed step of DetachFs()
  if (s.flags & kDetach) {
    e = DetachFs(&s, &what);
    g_step = s;
    if (e) err_tid.data[0] = -1;  // "the main thread, detaching"
  }
  if (!e) e = Apply(s, true);
  if (e) {
    r = -e;
  } else {
    std::string want = SelfTask(taskdir, self).creds;
    r = want.empty() ? -EIO : Broadcast(taskdir, want, self, err_tid.data);
  }
  // the namespace descriptors stay open: a late signal may still use them
  close(taskdir);
  return Num(env, static_cast<double>(r));
}

// The seccomp allow-list filter, the last isolation step (the list and the
// reasons: src/main/seccompPolicy.ts). Its program:
//   arch != AUDIT_ARCH_X86_64          -> kill the process
//   nr >= __X32_SYSCALL_BIT (x32 ABI)  -> kill the process
//   nr == allowed[i]                   -> allow
//   anything else                      -> kill the process, or log (and
//                                         allow) with log_mode
// The caller has no_new_privs (isolateThreads() set it in every thread);
// SECCOMP_FILTER_FLAG_TSYNC installs the filter in every thread at once
// (and threads made later inherit it), failing with the TID of a thread
// that could not take it.
constexpr size_t kMaxAllowed = 1000;

long InstallFilter(const int32_t* nrs, size_t count, bool log_mode) {
#if defined(__x86_64__)
  if (count > kMaxAllowed) return -E2BIG;
  const uint32_t deny = log_mode ? SECCOMP_RET_LOG : SECCOMP_RET_KILL_PROCESS;
  std::vector<struct sock_filter> f;
  f.reserve(2 * count + 8);
  auto stmt = [&f](uint16_t code, uint32_t k) { f.push_back(BPF_STMT(code, k)); };
  auto jump = [&f](uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) { f.push_back(BPF_JUMP(code, k, jt, jf)); };
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u /* __X32_SYSCALL_BIT */, 0, 1);
  stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  // allowed[i]: a match returns at once. The kernel (5.11 and later) sees
  // that the result depends on the number alone and caches "allow" per
  // number: allowed calls then run no filter at all
  for (size_t i = 0; i < count; i++) {
    if (nrs[i] < 0 || nrs[i] >= 0x40000000) return -EINVAL;
    jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nrs[i]), 0, 1);
    stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  }
  stmt(BPF_RET | BPF_K, deny);
  struct sock_fprog prog = {static_cast<unsigned short>(f.size()), f.data()};
  // from here on a late signal 32 does nothing (Handler)
  g_sealed.store(true);
  long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  if (r < 0) return -errno;
  if (r > 0) return -ESRCH;  // thread r could not be synchronised
  return 0;
#else
  return -ENOSYS;
#endif
}

// seccompFilter(allowed: Int32Array, logMode: boolean) -> 0 or -errno
Napi::Value SeccompFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Ints nrs = GetInts(env, info[0]);
  if (!nrs.ok) return Num(env, -EINVAL);
  bool log_mode = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  return Num(env, static_cast<double>(InstallFilter(nrs.data, nrs.count, log_mode)));
}

// forbiddenSyscall(nr) -> the result of system call nr with arguments that
// make it fail harmlessly if it runs at all (null pointers, an invalid
// request), or -errno: the test hook PASST_TS_TEST_FORBIDDEN_SYSCALL
// (isolation.ts), which shows that the filter kills the process, or logs.
Napi::Value ForbiddenSyscall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  long nr = static_cast<long>(Int(info, 0, -1));
  if (nr < 0) return Num(env, -EINVAL);
  long r = syscall(nr, -1L, 0L, 0L, 0L, 0L, 0L);
  return Ret(env, r);
}

// newPidNamespaceForChildren() -> 0 or -errno: unshare(CLONE_NEWPID), so
// that the next child of the calling thread is PID 1 of a new PID
// namespace (daemon.ts: the daemon). The caller itself stays where it is,
// and may no longer make threads (the kernel refuses CLONE_THREAD while the
// two differ).
Napi::Value NewPidNamespaceForChildren(const Napi::CallbackInfo& info) {
  return Ret(info.Env(), unshare(CLONE_NEWPID));
}

}  // namespace

void InitIsolate(Napi::Env env, Napi::Object exports) {
  exports["isolateThreads"] = Napi::Function::New(env, IsolateThreads, "isolateThreads");
  exports["seccompFilter"] = Napi::Function::New(env, SeccompFilter, "seccompFilter");
  exports["forbiddenSyscall"] = Napi::Function::New(env, ForbiddenSyscall, "forbiddenSyscall");
  exports["newPidNamespaceForChildren"] = Napi::Function::New(env, NewPidNamespaceForChildren, "newPidNamespaceForChildren");
}

}  // namespace passt

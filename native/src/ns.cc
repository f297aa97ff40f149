// Network-namespace helpers.
//
// A Node process is multithreaded, and setns(CLONE_NEWNET) moves only the
// calling thread. Descriptors that must live in the target namespace (the
// tap, sockets for spliced connections and namespace-side listeners, netlink,
// /proc/thread-self/net/* files) are therefore created by a short-lived
// native thread that enters the namespace, creates them, and exits; a socket
// keeps its namespace for life, whichever thread uses it afterwards.
#include "common.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>

namespace passt {
namespace {

struct Job {
  int nsfd;
  std::function<long()> fn;
  long result = -1;
  int err = 0;
};

void* JobThread(void* arg) {
  Job* job = static_cast<Job*>(arg);
  if (setns(job->nsfd, CLONE_NEWNET) < 0) {
    job->result = -1;
    job->err = errno;
    return nullptr;
  }
  errno = 0;
  job->result = job->fn();
  job->err = errno;
  return nullptr;
}

// Runs fn on a new thread inside the network namespace nsfd. Returns fn's
// result, or -errno if the thread could not be started or enter the namespace.
long RunInNs(int nsfd, std::function<long()> fn) {
  Job job;
  job.nsfd = nsfd;
  job.fn = std::move(fn);
  pthread_t t;
  int rc = pthread_create(&t, nullptr, JobThread, &job);
  if (rc) return -rc;
  pthread_join(t, nullptr);
  if (job.result < 0) return -(job.err ? job.err : EIO);
  return job.result;
}

// nsSockets(nsfd, domain, type, proto, count, out: Int32Array) -> number of
// sockets created inside the namespace (fds in out[0..n)), or -errno.
Napi::Value NsSockets(const Napi::CallbackInfo& info) {
  Ints out = GetInts(info.Env(), info[5]);
  int64_t count = Int(info, 4);
  if (!out.ok || count <= 0 || static_cast<size_t>(count) > out.count) return Num(info.Env(), -EINVAL);
  int domain = static_cast<int>(Int(info, 1)), type = static_cast<int>(Int(info, 2)),
      proto = static_cast<int>(Int(info, 3));
  int32_t* fds = out.data;
  long r = RunInNs(static_cast<int>(Int(info, 0)), [=]() -> long {
    long n = 0;
    for (; n < count; n++) {
      int fd = socket(domain, type, proto);
      if (fd < 0) return n ? n : -1;
      fds[n] = fd;
    }
    return n;
  });
  return Num(info.Env(), r);
}

// nsOpen(nsfd, path, flags) -> fd opened by a thread inside the namespace
// (use /proc/thread-self/net/... for per-namespace proc files), or -errno.
Napi::Value NsOpen(const Napi::CallbackInfo& info) {
  if (!info[1].IsString()) return Num(info.Env(), -EINVAL);
  std::string path = info[1].As<Napi::String>().Utf8Value();
  int flags = static_cast<int>(Int(info, 2));
  long r = RunInNs(static_cast<int>(Int(info, 0)), [&]() -> long { return open(path.c_str(), flags); });
  return Num(info.Env(), r);
}

// nsTun(nsfd, name, ifrFlags, outName: Uint8Array(16)) -> fd of a new tap
// device in the namespace (opened non-blocking, close-on-exec, then
// TUNSETIFF), or -errno. An empty name lets the kernel choose; the actual
// name is written NUL-terminated into outName.
Napi::Value NsTun(const Napi::CallbackInfo& info) {
  if (!info[1].IsString()) return Num(info.Env(), -EINVAL);
  std::string name = info[1].As<Napi::String>().Utf8Value();
  Bytes outName = GetBytes(info.Env(), info[3]);
  if (name.size() >= IFNAMSIZ || !outName.ok || outName.len < IFNAMSIZ) return Num(info.Env(), -EINVAL);
  int flags = static_cast<int>(Int(info, 2));
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = static_cast<short>(flags);
  long r = RunInNs(static_cast<int>(Int(info, 0)), [&]() -> long {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    return fd;
  });
  if (r >= 0) {
    memset(outName.data, 0, IFNAMSIZ);
    memcpy(outName.data, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ - 1));
  }
  return Num(info.Env(), r);
}

// threadNetnsCheck(nsfd) -> 0 if a thread can enter the namespace, or -errno.
Napi::Value NsCheck(const Napi::CallbackInfo& info) {
  return Num(info.Env(), RunInNs(static_cast<int>(Int(info, 0)), []() -> long { return 0; }));
}

}  // namespace

void InitNs(Napi::Env env, Napi::Object exports) {
  exports["nsSockets"] = Napi::Function::New(env, NsSockets, "nsSockets");
  exports["nsOpen"] = Napi::Function::New(env, NsOpen, "nsOpen");
  exports["nsTun"] = Napi::Function::New(env, NsTun, "nsTun");
  exports["nsCheck"] = Napi::Function::New(env, NsCheck, "nsCheck");
}

}  // namespace passt

// File-descriptor I/O: epoll, eventfd, read/write of frame batches, scatter
// and gather socket I/O, pipes and splice, and the few process-level calls
// (open, fstatfs, execve) that Node does not expose.
//
// Data-path calls return a count or -errno and never throw or allocate on the
// JavaScript heap (apart from the returned number).
#include "common.h"

#include <sys/stat.h>
#include <dirent.h>

#include <fcntl.h>
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace passt {
namespace {

constexpr int kMaxIov = 1024;

// --- epoll -----------------------------------------------------------------

Napi::Value EpollCreate(const Napi::CallbackInfo& info) {
  return Ret(info.Env(), epoll_create1(EPOLL_CLOEXEC));
}

// epollCtl(epfd, op, fd, events, ref): ref is an unsigned 32-bit tag returned
// by epollWait with the event.
Napi::Value EpollCtl(const Napi::CallbackInfo& info) {
  struct epoll_event ev = {};
  ev.events = static_cast<uint32_t>(Int(info, 3));
  ev.data.u64 = static_cast<uint32_t>(Int(info, 4));
  return Ret(info.Env(), epoll_ctl(static_cast<int>(Int(info, 0)), static_cast<int>(Int(info, 1)),
                                   static_cast<int>(Int(info, 2)), &ev));
}

// epollWait(epfd, out: Int32Array, maxEvents, timeoutMs): out receives
// [events, ref] pairs. Returns the number of events, 0 on timeout or EINTR.
Napi::Value EpollWait(const Napi::CallbackInfo& info) {
  Ints out = GetInts(info.Env(), info[1]);
  int max = static_cast<int>(Int(info, 2));
  if (!out.ok || max <= 0 || static_cast<size_t>(max) * 2 > out.count || max > 1024)
    return Num(info.Env(), -EINVAL);
  struct epoll_event evs[1024];
  int n = epoll_wait(static_cast<int>(Int(info, 0)), evs, max, static_cast<int>(Int(info, 3)));
  if (n < 0) return Num(info.Env(), errno == EINTR ? 0 : -errno);
  for (int i = 0; i < n; i++) {
    out.data[2 * i] = static_cast<int32_t>(evs[i].events);
    out.data[2 * i + 1] = static_cast<int32_t>(static_cast<uint32_t>(evs[i].data.u64));
  }
  return Num(info.Env(), n);
}

// --- eventfd ---------------------------------------------------------------

Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  return Ret(info.Env(), eventfd(static_cast<unsigned>(Int(info, 0)), static_cast<int>(Int(info, 1))));
}

Napi::Value EventfdWrite(const Napi::CallbackInfo& info) {
  uint64_t v = static_cast<uint64_t>(Int(info, 1, 1));
  ssize_t r;
  do r = write(static_cast<int>(Int(info, 0)), &v, sizeof(v)); while (r < 0 && errno == EINTR);
  return Ret(info.Env(), r < 0 ? -1 : 0);
}

Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  uint64_t v = 0;
  ssize_t r;
  do r = read(static_cast<int>(Int(info, 0)), &v, sizeof(v)); while (r < 0 && errno == EINTR);
  if (r < 0) return Num(info.Env(), -errno);
  return Num(info.Env(), static_cast<double>(v));
}

// --- plain fd calls --------------------------------------------------------

Napi::Value Close(const Napi::CallbackInfo& info) {
  return Ret(info.Env(), close(static_cast<int>(Int(info, 0))));
}

// read(fd, u8, off, len)
Napi::Value Read(const Napi::CallbackInfo& info) {
  Bytes b = GetBytes(info.Env(), info[1]);
  int64_t off = Int(info, 2), len = Int(info, 3);
  if (!InRange(b, off, len)) return Num(info.Env(), -EINVAL);
  ssize_t r;
  do r = read(static_cast<int>(Int(info, 0)), b.data + off, len); while (r < 0 && errno == EINTR);
  return Ret(info.Env(), r);
}

// write(fd, u8, off, len)
Napi::Value Write(const Napi::CallbackInfo& info) {
  Bytes b = GetBytes(info.Env(), info[1]);
  int64_t off = Int(info, 2), len = Int(info, 3);
  if (!InRange(b, off, len)) return Num(info.Env(), -EINVAL);
  ssize_t r;
  do r = write(static_cast<int>(Int(info, 0)), b.data + off, len); while (r < 0 && errno == EINTR);
  return Ret(info.Env(), r);
}

// readFrames(fd, u8, off, len, hdrRoom, lens: Int32Array, maxFrames, minFree)
//
// Reads one frame per read() (tap semantics), packed into u8[off, off+len):
// frame i is stored at cursor + hdrRoom, and the cursor then moves to the
// next 8-byte boundary after the frame. Reading stops at EAGAIN, after
// maxFrames, or when fewer than hdrRoom + minFree bytes remain. lens[i] gets
// each frame's length; lens[n] gets the stop status: 0 (EAGAIN or budget),
// -errno, or -ENODATA for end of file. Returns n.
Napi::Value ReadFrames(const Napi::CallbackInfo& info) {
  Bytes b = GetBytes(info.Env(), info[1]);
  int64_t off = Int(info, 2), len = Int(info, 3), room = Int(info, 4);
  Ints lens = GetInts(info.Env(), info[5]);
  int64_t max = Int(info, 6), minFree = Int(info, 7);
  if (!InRange(b, off, len) || !lens.ok || max < 0 || static_cast<size_t>(max) + 1 > lens.count ||
      room < 0 || minFree <= 0)
    return Num(info.Env(), -EINVAL);
  int fd = static_cast<int>(Int(info, 0));
  int64_t cursor = off, end = off + len;
  int n = 0;
  int status = 0;
  while (n < max && end - cursor >= room + minFree) {
    ssize_t r = read(fd, b.data + cursor + room, end - cursor - room);
    if (r < 0) {
      if (errno == EINTR) continue;
      status = (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
      break;
    }
    if (r == 0) {
      status = -ENODATA;
      break;
    }
    lens.data[n++] = static_cast<int32_t>(r);
    cursor = (cursor + room + r + 7) & ~static_cast<int64_t>(7);
  }
  lens.data[n] = status;
  return Num(info.Env(), n);
}

// writeFrames(fd, u8, offs: Int32Array, lens: Int32Array, count): one write()
// per frame (tap semantics). Returns frames written; -errno if the first
// write failed. Stops at the first failure.
Napi::Value WriteFrames(const Napi::CallbackInfo& info) {
  Bytes b = GetBytes(info.Env(), info[1]);
  Ints offs = GetInts(info.Env(), info[2]);
  Ints lens = GetInts(info.Env(), info[3]);
  int64_t count = Int(info, 4);
  if (!b.ok || !offs.ok || !lens.ok || count < 0 || static_cast<size_t>(count) > offs.count ||
      static_cast<size_t>(count) > lens.count)
    return Num(info.Env(), -EINVAL);
  int fd = static_cast<int>(Int(info, 0));
  int n = 0;
  for (; n < count; n++) {
    if (!InRange(b, offs.data[n], lens.data[n])) return Num(info.Env(), n ? n : -EINVAL);
    ssize_t r;
    do r = write(fd, b.data + offs.data[n], lens.data[n]); while (r < 0 && errno == EINTR);
    if (r < 0) return Num(info.Env(), n ? n : -errno);
  }
  return Num(info.Env(), n);
}

// Build an iovec array from (u8, offs, lens, count). Returns the count, or -1.
int BuildIov(const Napi::CallbackInfo& info, size_t base, struct iovec* iov) {
  Bytes b = GetBytes(info.Env(), info[base]);
  Ints offs = GetInts(info.Env(), info[base + 1]);
  Ints lens = GetInts(info.Env(), info[base + 2]);
  int64_t count = Int(info, base + 3);
  if (!b.ok || !offs.ok || !lens.ok || count < 0 || count > kMaxIov ||
      static_cast<size_t>(count) > offs.count || static_cast<size_t>(count) > lens.count)
    return -1;
  for (int64_t i = 0; i < count; i++) {
    if (!InRange(b, offs.data[i], lens.data[i])) return -1;
    iov[i].iov_base = b.data + offs.data[i];
    iov[i].iov_len = lens.data[i];
  }
  return static_cast<int>(count);
}

// recvIov(fd, u8, offs, lens, count, flags): recvmsg() scattering into the
// given ranges. Returns bytes, or -errno.
Napi::Value RecvIov(const Napi::CallbackInfo& info) {
  struct iovec iov[kMaxIov];
  int cnt = BuildIov(info, 1, iov);
  if (cnt < 0) return Num(info.Env(), -EINVAL);
  struct msghdr mh = {};
  mh.msg_iov = iov;
  mh.msg_iovlen = cnt;
  ssize_t r;
  do r = recvmsg(static_cast<int>(Int(info, 0)), &mh, static_cast<int>(Int(info, 5))); while (r < 0 && errno == EINTR);
  return Ret(info.Env(), r);
}

// sendIov(fd, u8, offs, lens, count, flags): sendmsg() gathering the given
// ranges. Returns bytes, or -errno.
Napi::Value SendIov(const Napi::CallbackInfo& info) {
  struct iovec iov[kMaxIov];
  int cnt = BuildIov(info, 1, iov);
  if (cnt < 0) return Num(info.Env(), -EINVAL);
  struct msghdr mh = {};
  mh.msg_iov = iov;
  mh.msg_iovlen = cnt;
  ssize_t r;
  do r = sendmsg(static_cast<int>(Int(info, 0)), &mh, static_cast<int>(Int(info, 5))); while (r < 0 && errno == EINTR);
  return Ret(info.Env(), r);
}

// writev(fd, u8, offs, lens, count): gathering write (files, pipes, tap).
// Returns bytes, or -errno.
Napi::Value Writev(const Napi::CallbackInfo& info) {
  struct iovec iov[kMaxIov];
  int cnt = BuildIov(info, 1, iov);
  if (cnt < 0) return Num(info.Env(), -EINVAL);
  ssize_t r;
  do r = writev(static_cast<int>(Int(info, 0)), iov, cnt); while (r < 0 && errno == EINTR);
  return Ret(info.Env(), r);
}

// recvDiscard(fd, n, flags): drop up to n bytes from a stream socket's
// receive queue without copying (recv(NULL, n, MSG_TRUNC | flags)).
Napi::Value RecvDiscard(const Napi::CallbackInfo& info) {
  ssize_t r;
  do r = recv(static_cast<int>(Int(info, 0)), nullptr, static_cast<size_t>(Int(info, 1)),
              MSG_TRUNC | static_cast<int>(Int(info, 2)));
  while (r < 0 && errno == EINTR);
  return Ret(info.Env(), r);
}

// --- pipes and splice -------------------------------------------------------

// pipe2(out: Int32Array(2), flags)
Napi::Value Pipe2(const Napi::CallbackInfo& info) {
  Ints out = GetInts(info.Env(), info[0]);
  if (!out.ok || out.count < 2) return Num(info.Env(), -EINVAL);
  int fds[2];
  if (pipe2(fds, static_cast<int>(Int(info, 1))) < 0) return Num(info.Env(), -errno);
  out.data[0] = fds[0];
  out.data[1] = fds[1];
  return Num(info.Env(), 0);
}

// splice(fdIn, fdOut, len, flags) -> bytes moved, or -errno.
Napi::Value Splice(const Napi::CallbackInfo& info) {
  ssize_t r;
  do r = splice(static_cast<int>(Int(info, 0)), nullptr, static_cast<int>(Int(info, 1)), nullptr,
                static_cast<size_t>(Int(info, 2)), static_cast<unsigned>(Int(info, 3)));
  while (r < 0 && errno == EINTR);
  return Ret(info.Env(), r);
}

// fcntl(fd, cmd, arg) with an integer argument (F_GETFL, F_SETFL, F_DUPFD_CLOEXEC,
// F_SETPIPE_SZ, F_GETPIPE_SZ, F_SETFD, ...).
Napi::Value Fcntl(const Napi::CallbackInfo& info) {
  return Ret(info.Env(), fcntl(static_cast<int>(Int(info, 0)), static_cast<int>(Int(info, 1)),
                               static_cast<long>(Int(info, 2))));
}

// ioctlInt(fd, req, value): ioctl with an integer passed by value.
Napi::Value IoctlInt(const Napi::CallbackInfo& info) {
  return Ret(info.Env(), ioctl(static_cast<int>(Int(info, 0)), static_cast<unsigned long>(Int(info, 1)),
                               static_cast<unsigned long>(Int(info, 2))));
}

// ioctlIntPtr(fd, req, value): ioctl with a pointer to an int.
Napi::Value IoctlIntPtr(const Napi::CallbackInfo& info) {
  int v = static_cast<int>(Int(info, 2));
  return Ret(info.Env(), ioctl(static_cast<int>(Int(info, 0)), static_cast<unsigned long>(Int(info, 1)), &v));
}

// --- files and processes ------------------------------------------------------

// open(path, flags, mode)
Napi::Value Open(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) return Num(info.Env(), -EINVAL);
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return Ret(info.Env(), open(path.c_str(), static_cast<int>(Int(info, 1)), static_cast<mode_t>(Int(info, 2))));
}

// openat(dirfd, path, flags, mode)
Napi::Value Openat(const Napi::CallbackInfo& info) {
  if (!info[1].IsString()) return Num(info.Env(), -EINVAL);
  std::string path = info[1].As<Napi::String>().Utf8Value();
  return Ret(info.Env(), openat(static_cast<int>(Int(info, 0)), path.c_str(), static_cast<int>(Int(info, 2)),
                                static_cast<mode_t>(Int(info, 3))));
}

// unlinkat(dirfd, path, flags) -> 0 or -errno.
Napi::Value Unlinkat(const Napi::CallbackInfo& info) {
  if (!info[1].IsString()) return Num(info.Env(), -EINVAL);
  std::string path = info[1].As<Napi::String>().Utf8Value();
  return Ret(info.Env(), unlinkat(static_cast<int>(Int(info, 0)), path.c_str(), static_cast<int>(Int(info, 2))));
}

// listDir(dirfd) -> the names in the directory behind dirfd (read through
// the descriptor: no path, and no search permission, is needed now), or
// -errno.
Napi::Value ListDir(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = dup(static_cast<int>(Int(info, 0)));
  if (fd < 0) return Num(env, -errno);
  DIR* d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    return Num(env, -e);
  }
  rewinddir(d);
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  errno = 0;
  while (struct dirent* e = readdir(d)) out.Set(i++, Napi::String::New(env, e->d_name));
  int e = errno;
  closedir(d);
  if (e) return Num(env, -e);
  return out;
}

// inodeAt(dirfd, path) -> inode number of path (not followed), or -errno.
Napi::Value InodeAt(const Napi::CallbackInfo& info) {
  if (!info[1].IsString()) return Num(info.Env(), -EINVAL);
  std::string path = info[1].As<Napi::String>().Utf8Value();
  struct stat st;
  if (fstatat(static_cast<int>(Int(info, 0)), path.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return Num(info.Env(), -errno);
  return Num(info.Env(), static_cast<double>(st.st_ino));
}

// fstatfs(fd) -> f_type of the filesystem, or -errno.
Napi::Value Fstatfs(const Napi::CallbackInfo& info) {
  struct statfs s;
  if (fstatfs(static_cast<int>(Int(info, 0)), &s) < 0) return Num(info.Env(), -errno);
  return Num(info.Env(), static_cast<double>(static_cast<uint32_t>(s.f_type)));
}

std::vector<std::string> Strings(const Napi::Value& v) {
  std::vector<std::string> out;
  if (!v.IsArray()) return out;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (e.IsString()) out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

// execve(path, argv[], envp[]): replaces the process (all threads). Returns
// -errno only on failure. Node marks fds 0-2 close-on-exec at start-up
// (uv_disable_stdio_inheritance), so that flag is cleared on them first:
// the new program keeps the caller's stdin, stdout and stderr.
Napi::Value Execve(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) return Num(info.Env(), -EINVAL);
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::vector<std::string> args = Strings(info[1]), envs = Strings(info[2]);
  std::vector<char*> argv, envp;
  for (auto& s : args) argv.push_back(&s[0]);
  argv.push_back(nullptr);
  for (auto& s : envs) envp.push_back(&s[0]);
  envp.push_back(nullptr);
  for (int fd = 0; fd <= 2; fd++) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0 && (fl & FD_CLOEXEC)) fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
  }
  execve(path.c_str(), argv.data(), envp.data());
  return Num(info.Env(), -errno);
}

// raiseNofile() -> raises the soft RLIMIT_NOFILE to the hard limit; returns
// the new soft limit, or -errno.
// mallocTrim(): malloc_trim(0), glibc's free pages of every arena (the
// main heap's top and the free pages inside each) given back to the
// kernel; 1 if memory was released, else 0 (perf/README.md "Memory per
// instance": a worker's start-up leaves freed chunks in its arena).
Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), malloc_trim(0));
}

Napi::Value RaiseNofile(const Napi::CallbackInfo& info) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return Num(info.Env(), -errno);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) return Num(info.Env(), -errno);
  }
  return Num(info.Env(), static_cast<double>(rl.rlim_cur));
}

// strerror(errno) -> message text.
Napi::Value Strerror(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), strerror(static_cast<int>(Int(info, 0))));
}

}  // namespace

void InitIo(Napi::Env env, Napi::Object exports) {
  exports["epollCreate"] = Napi::Function::New(env, EpollCreate, "epollCreate");
  exports["epollCtl"] = Napi::Function::New(env, EpollCtl, "epollCtl");
  exports["epollWait"] = Napi::Function::New(env, EpollWait, "epollWait");
  exports["eventfdCreate"] = Napi::Function::New(env, EventfdCreate, "eventfdCreate");
  exports["eventfdWrite"] = Napi::Function::New(env, EventfdWrite, "eventfdWrite");
  exports["eventfdRead"] = Napi::Function::New(env, EventfdRead, "eventfdRead");
  exports["close"] = Napi::Function::New(env, Close, "close");
  exports["read"] = Napi::Function::New(env, Read, "read");
  exports["write"] = Napi::Function::New(env, Write, "write");
  exports["readFrames"] = Napi::Function::New(env, ReadFrames, "readFrames");
  exports["writeFrames"] = Napi::Function::New(env, WriteFrames, "writeFrames");
  exports["recvIov"] = Napi::Function::New(env, RecvIov, "recvIov");
  exports["sendIov"] = Napi::Function::New(env, SendIov, "sendIov");
  exports["writev"] = Napi::Function::New(env, Writev, "writev");
  exports["recvDiscard"] = Napi::Function::New(env, RecvDiscard, "recvDiscard");
  exports["pipe2"] = Napi::Function::New(env, Pipe2, "pipe2");
  exports["splice"] = Napi::Function::New(env, Splice, "splice");
  exports["fcntl"] = Napi::Function::New(env, Fcntl, "fcntl");
  exports["ioctlInt"] = Napi::Function::New(env, IoctlInt, "ioctlInt");
  exports["ioctlIntPtr"] = Napi::Function::New(env, IoctlIntPtr, "ioctlIntPtr");
  exports["open"] = Napi::Function::New(env, Open, "open");
  exports["openat"] = Napi::Function::New(env, Openat, "openat");
  exports["fstatfs"] = Napi::Function::New(env, Fstatfs, "fstatfs");
  exports["unlinkat"] = Napi::Function::New(env, Unlinkat, "unlinkat");
  exports["inodeAt"] = Napi::Function::New(env, InodeAt, "inodeAt");
  exports["listDir"] = Napi::Function::New(env, ListDir, "listDir");
  exports["execve"] = Napi::Function::New(env, Execve, "execve");
  exports["strerror"] = Napi::Function::New(env, Strerror, "strerror");
  exports["mallocTrim"] = Napi::Function::New(env, MallocTrim, "mallocTrim");
  exports["raiseNofile"] = Napi::Function::New(env, RaiseNofile, "raiseNofile");
}

}  // namespace passt

// What vhost-user needs from the kernel (issue 14): guest memory regions
// mapped from the descriptors qemu passes, seen from JavaScript as external
// ArrayBuffers; descriptors passed over the UNIX socket (SCM_RIGHTS); and
// memfd_create/ftruncate, with which the tests play qemu.
//
// Mappings live in a process-wide table, so that every thread (tap-TX, each
// direct writer, tap-RX) can ask for its own ArrayBuffer over the same
// memory: an external ArrayBuffer belongs to the thread that made it.
// Unmapping is safe against views still alive: mapUnmap() at once replaces
// the guest's pages with anonymous zero pages at the same address (the memfd
// is let go, a stale view reads zeros, nothing faults), and the address
// range itself is munmap'd when the last view is collected.
#include "common.h"

#include <uv.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <mutex>
#include <string>
#include <vector>

namespace passt {
namespace {

struct Mapping {
  void* addr = nullptr;
  size_t len = 0;
  int views = 0;        // live ArrayBuffers over it
  bool released = true; // mapUnmap() called (or slot free)
};

std::mutex g_lock;
std::vector<Mapping> g_maps;

// Most descriptors one message may carry (VHOST_MEMORY_BASELINE_NREGIONS is 8).
constexpr int kMaxFds = 16;

// mapShared(fd, len): mmap(MAP_SHARED|MAP_NORESERVE, RW) of fd from offset 0.
// Returns a handle >= 0, or -errno.
Napi::Value MapShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(Int(info, 0, -1));
  double dlen = IsInt(info, 1) ? info[1].As<Napi::Number>().DoubleValue() : -1;
  if (fd < 0 || !(dlen > 0) || dlen > 9007199254740991.0) return Num(env, -EINVAL);
  size_t len = static_cast<size_t>(dlen);
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED) return Num(env, -errno);
  std::lock_guard<std::mutex> g(g_lock);
  size_t i = 0;
  while (i < g_maps.size() && !(g_maps[i].released && g_maps[i].views == 0 && !g_maps[i].addr)) i++;
  if (i == g_maps.size()) g_maps.emplace_back();
  g_maps[i] = Mapping{p, len, 0, false};
  return Num(env, static_cast<double>(i));
}

void ViewFinalize(napi_env, void*, void* hint) {
  size_t i = reinterpret_cast<size_t>(hint);
  std::lock_guard<std::mutex> g(g_lock);
  if (i >= g_maps.size()) return;
  Mapping& m = g_maps[i];
  if (--m.views == 0 && m.released && m.addr) {
    munmap(m.addr, m.len);
    m.addr = nullptr;
    m.len = 0;
  }
}

// mapView(handle, off, len): a new ArrayBuffer of this thread over bytes
// [off, off+len) of the mapping (all of it without off/len), or undefined
// for a bad or released handle or range. An ArrayBuffer holds at most 2^32
// bytes in Node 20: larger mappings are seen in windows.
Napi::Value MapView(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t h = Int(info, 0, -1);
  double doff = IsInt(info, 1) ? info[1].As<Napi::Number>().DoubleValue() : 0;
  uint8_t* addr;
  size_t len;
  {
    std::lock_guard<std::mutex> g(g_lock);
    if (h < 0 || static_cast<size_t>(h) >= g_maps.size() || g_maps[h].released || !g_maps[h].addr)
      return env.Undefined();
    const Mapping& m = g_maps[h];
    double dlen = IsInt(info, 2) ? info[2].As<Napi::Number>().DoubleValue() : static_cast<double>(m.len) - doff;
    if (!(doff >= 0) || !(dlen > 0) || doff + dlen > static_cast<double>(m.len)) return env.Undefined();
    g_maps[h].views++;
    addr = static_cast<uint8_t*>(m.addr) + static_cast<size_t>(doff);
    len = static_cast<size_t>(dlen);
  }
  napi_value ab;
  if (napi_create_external_arraybuffer(env, addr, len, ViewFinalize, reinterpret_cast<void*>(h), &ab) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
    }
    std::lock_guard<std::mutex> g(g_lock);
    g_maps[h].views--;
    return env.Undefined();
  }
  return Napi::Value(env, ab);
}

// mapUnmap(handle): lets go of the guest's memory now (see the top).
Napi::Value MapUnmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t h = Int(info, 0, -1);
  std::lock_guard<std::mutex> g(g_lock);
  if (h < 0 || static_cast<size_t>(h) >= g_maps.size() || g_maps[h].released || !g_maps[h].addr)
    return Num(env, -EINVAL);
  Mapping& m = g_maps[h];
  m.released = true;
  if (m.views == 0) {
    int r = munmap(m.addr, m.len);
    m.addr = nullptr;
    m.len = 0;
    return Ret(env, r);
  }
  void* p = mmap(m.addr, m.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  return Num(env, p == MAP_FAILED ? -errno : 0);
}

// mapCount(): live mappings (released or not) — for tests.
Napi::Value MapCount(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> g(g_lock);
  int n = 0;
  for (const Mapping& m : g_maps) if (m.addr && !m.released) n++;
  return Num(info.Env(), n);
}

// recvFds(fd, u8, off, len, fds: Int32Array, flags): recvmsg() into
// u8[off, off+len); fds[0] = descriptors received, fds[1..] the descriptors
// (close-on-exec; any beyond fds' room are closed). Returns bytes or -errno;
// a truncated control message closes what came and returns -EMSGSIZE.
Napi::Value RecvFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes b = GetBytes(env, info[1]);
  int64_t off = Int(info, 2), len = Int(info, 3);
  Ints fds = GetInts(env, info[4]);
  if (!InRange(b, off, len) || !fds.ok || fds.count < 1) return Num(env, -EINVAL);
  struct iovec iov = {b.data + off, static_cast<size_t>(len)};
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof(cbuf);
  ssize_t r;
  do r = recvmsg(static_cast<int>(Int(info, 0)), &mh, static_cast<int>(Int(info, 5)) | MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r < 0) return Num(env, -errno);
  size_t n = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* p = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t j = 0; j < k; j++) {
      if (n + 1 < fds.count && !(mh.msg_flags & MSG_CTRUNC)) fds.data[1 + n++] = p[j];
      else close(p[j]);
    }
  }
  if (mh.msg_flags & MSG_CTRUNC) {
    for (size_t j = 0; j < n; j++) close(fds.data[1 + j]);
    fds.data[0] = 0;
    return Num(env, -EMSGSIZE);
  }
  fds.data[0] = static_cast<int32_t>(n);
  return Num(env, static_cast<double>(r));
}

// sendFds(fd, u8, off, len, fds: Int32Array, count, flags): sendmsg() of
// u8[off, off+len) with count descriptors. Returns bytes or -errno.
Napi::Value SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes b = GetBytes(env, info[1]);
  int64_t off = Int(info, 2), len = Int(info, 3);
  Ints fds = GetInts(env, info[4]);
  int64_t count = Int(info, 5);
  if (!InRange(b, off, len) || !fds.ok || count < 0 || count > kMaxFds || static_cast<size_t>(count) > fds.count)
    return Num(env, -EINVAL);
  struct iovec iov = {b.data + off, static_cast<size_t>(len)};
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (count > 0) {
    mh.msg_control = cbuf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * count);
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * count);
    memcpy(CMSG_DATA(c), fds.data, sizeof(int) * count);
  }
  ssize_t r;
  do r = sendmsg(static_cast<int>(Int(info, 0)), &mh, static_cast<int>(Int(info, 6)) | MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return Ret(env, r);
}

Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return Num(env, -EINVAL);
  std::string name = info[0].As<Napi::String>().Utf8Value();
  return Ret(env, memfd_create(name.c_str(), static_cast<unsigned>(Int(info, 1))));
}

Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  double len = IsInt(info, 1) ? info[1].As<Napi::Number>().DoubleValue() : -1;
  if (len < 0) return Num(info.Env(), -EINVAL);
  return Ret(info.Env(), ftruncate(static_cast<int>(Int(info, 0, -1)), static_cast<off_t>(len)));
}

// --- watching a descriptor from the main thread's event loop ----------------
// The main thread owns the vhost-user connection (like passt's client
// socket) but must not block: libuv watches the descriptor (uv_poll) and
// calls back on readability; the callback does the non-blocking reads.

struct Watch {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
};

void WatchClosed(uv_handle_t* h) {
  delete static_cast<Watch*>(h->data);
}

void WatchEvent(uv_poll_t* p, int status, int events) {
  Watch* w = static_cast<Watch*>(p->data);
  napi_handle_scope scope;
  if (napi_open_handle_scope(w->env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[2], result;
  napi_get_reference_value(w->env, w->cb, &cb);
  napi_get_global(w->env, &recv);
  napi_create_int32(w->env, status, &argv[0]);
  napi_create_int32(w->env, events, &argv[1]);
  // MakeCallback: process.nextTick and promise jobs run after it, as for any I/O callback
  if (napi_make_callback(w->env, w->ctx, recv, cb, 2, argv, &result) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(w->env, &pending);
    if (pending) {
      napi_value e;
      napi_get_and_clear_last_exception(w->env, &e);
      napi_fatal_exception(w->env, e);
    }
  }
  napi_close_handle_scope(w->env, scope);
}

std::vector<Watch*> g_watches;

// fdWatch(fd, cb(status, events)): calls cb whenever fd is readable (or on
// hang-up/error); returns a watch id >= 0, or -errno. Main thread only.
Napi::Value FdWatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(Int(info, 0, -1));
  if (fd < 0 || info.Length() < 2 || !info[1].IsFunction()) return Num(env, -EINVAL);
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) return Num(env, -EINVAL);
  Watch* w = new Watch();
  w->env = env;
  if (uv_poll_init(loop, &w->poll, fd) != 0) {
    delete w;
    return Num(env, -EINVAL);
  }
  w->poll.data = w;
  napi_create_reference(env, info[1], 1, &w->cb);
  napi_value name;
  napi_create_string_utf8(env, "passt-ts:fdWatch", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, nullptr, name, &w->ctx);
  uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, WatchEvent);
  size_t i = 0;
  while (i < g_watches.size() && g_watches[i]) i++;
  if (i == g_watches.size()) g_watches.push_back(nullptr);
  g_watches[i] = w;
  return Num(env, static_cast<double>(i));
}

// fdUnwatch(id): stops a watch (before its descriptor is closed).
Napi::Value FdUnwatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t i = Int(info, 0, -1);
  if (i < 0 || static_cast<size_t>(i) >= g_watches.size() || !g_watches[i]) return Num(env, -EINVAL);
  Watch* w = g_watches[i];
  g_watches[i] = nullptr;
  uv_poll_stop(&w->poll);
  napi_delete_reference(env, w->cb);
  napi_async_destroy(env, w->ctx);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), WatchClosed);
  return Num(env, 0);
}


// vuCopy(toSegs, u8, u8Off, len, skip, regions: Uint8Array[], reg: Int32Array,
//        off: Float64Array, segLen: Int32Array, first, count): the bytes of a
// frame between a linear buffer (a ring's, often a SharedArrayBuffer, where
// a TypedArray set() is V8's word-by-word relaxed_memmove) and the guest's
// buffers of a descriptor chain (virtqueue.ts Element: segment s is bytes
// [off[s], off[s]+segLen[s]) of regions[reg[s]]), with one memcpy per
// segment. toSegs: u8[u8Off, u8Off+len) into the segments from byte `skip`
// of them on, as far as they hold; else the segments' bytes from `skip` on
// into u8 at u8Off, at most len of them. Returns the bytes copied, or
// -EINVAL when a segment or the buffer range is not inside its array
// (nothing is ever read or written outside them: the checks are redone
// here, whatever the caller checked).
constexpr size_t kCopyRegions = 64;

// The segments of a descriptor chain as JavaScript lists them (virtqueue.ts
// Element): segment s is bytes [off[s], off[s]+segLen[s]) of
// regions[reg[s]]. At(s) is the address of its first byte, or nullptr when
// it is not all inside its region (any index, offset or length the guest
// could have made up is refused here, whatever JavaScript checked).
struct Segs {
  Napi::Env env;
  Napi::Array regions;
  const int32_t* reg;
  const double* off;
  const int32_t* segLen;
  uint32_t nRegions;
  Bytes cache[kCopyRegions];

  Segs(Napi::Env e, Napi::Array rs, const int32_t* rg, const double* of, const int32_t* ln)
      : env(e), regions(rs), reg(rg), off(of), segLen(ln), nRegions(rs.Length()) {}

  uint8_t* At(int64_t s) {
    int32_t r = reg[s];
    int32_t sl = segLen[s];
    double so = off[s];
    if (r < 0 || static_cast<uint32_t>(r) >= nRegions || sl < 0 || !(so >= 0) || so > 9007199254740991.0)
      return nullptr;
    Bytes rb;
    if (static_cast<size_t>(r) < kCopyRegions) {
      if (!cache[r].ok) cache[r] = GetBytes(env, regions.Get(static_cast<uint32_t>(r)));
      rb = cache[r];
    } else {
      rb = GetBytes(env, regions.Get(static_cast<uint32_t>(r)));
    }
    size_t o = static_cast<size_t>(so), l = static_cast<size_t>(sl);
    if (!rb.ok || o > rb.len || l > rb.len - o) return nullptr;
    return rb.data + o;
  }
};

Napi::Value VuCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool toSegs = info.Length() > 0 && info[0].ToBoolean().Value();
  Bytes b = GetBytes(env, info[1]);
  int64_t u8Off = Int(info, 2, -1), len = Int(info, 3, -1), skip = Int(info, 4, -1);
  if (!InRange(b, u8Off, len) || skip < 0 || info.Length() < 11 || !info[5].IsArray()) return Num(env, -EINVAL);
  Napi::Array regions = info[5].As<Napi::Array>();
  Ints reg = GetInts(env, info[6]);
  Bytes offB = GetBytes(env, info[7]);
  Ints segLen = GetInts(env, info[8]);
  int64_t first = Int(info, 9, -1), count = Int(info, 10, -1);
  if (!reg.ok || !offB.ok || !segLen.ok || (reinterpret_cast<uintptr_t>(offB.data) & 7) || first < 0 || count < 0)
    return Num(env, -EINVAL);
  size_t nOff = offB.len / 8;
  if (static_cast<uint64_t>(first + count) > reg.count || static_cast<uint64_t>(first + count) > nOff ||
      static_cast<uint64_t>(first + count) > segLen.count)
    return Num(env, -EINVAL);
  Segs segs(env, regions, reg.data, reinterpret_cast<const double*>(offB.data), segLen.data);
  uint8_t* p = b.data + u8Off;
  size_t left = static_cast<size_t>(len), done = 0;
  size_t sk = static_cast<size_t>(skip);
  for (int64_t s = first; s < first + count && left > 0; s++) {
    uint8_t* base = segs.At(s);
    if (!base) return Num(env, -EINVAL);
    size_t o = 0, l = static_cast<size_t>(segLen.data[s]);
    if (sk >= l) {
      sk -= l;
      continue;
    }
    o += sk;
    l -= sk;
    sk = 0;
    size_t take = l < left ? l : left;
    if (toSegs) memmove(base + o, p + done, take);
    else memmove(p + done, base + o, take);
    done += take;
    left -= take;
  }
  return Num(env, static_cast<double>(done));
}


// vuRecv(fd, regions: Uint8Array[], reg: Int32Array, off: Float64Array,
//        segLen: Int32Array, count, flags): recvmsg() straight into guest
// buffers, segments 0 … count-1 as in vuCopy (at most kIovMax). Returns
// bytes or -errno; -EINVAL when a segment is not inside its region (checked
// before anything is received).
constexpr size_t kIovMax = 1024;

Napi::Value VuRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(Int(info, 0, -1));
  if (fd < 0 || info.Length() < 7 || !info[1].IsArray()) return Num(env, -EINVAL);
  Napi::Array regions = info[1].As<Napi::Array>();
  Ints reg = GetInts(env, info[2]);
  Bytes offB = GetBytes(env, info[3]);
  Ints segLen = GetInts(env, info[4]);
  int64_t count = Int(info, 5, -1);
  int flags = static_cast<int>(Int(info, 6));
  if (!reg.ok || !offB.ok || !segLen.ok || (reinterpret_cast<uintptr_t>(offB.data) & 7) || count < 1 ||
      static_cast<uint64_t>(count) > kIovMax || static_cast<uint64_t>(count) > reg.count ||
      static_cast<uint64_t>(count) > offB.len / 8 || static_cast<uint64_t>(count) > segLen.count)
    return Num(env, -EINVAL);
  Segs segs(env, regions, reg.data, reinterpret_cast<const double*>(offB.data), segLen.data);
  struct iovec iov[kIovMax];
  for (int64_t s = 0; s < count; s++) {
    uint8_t* base = segs.At(s);
    if (!base) return Num(env, -EINVAL);
    iov[s].iov_base = base;
    iov[s].iov_len = static_cast<size_t>(segLen.data[s]);
  }
  struct msghdr mh = {};
  mh.msg_iov = iov;
  mh.msg_iovlen = static_cast<size_t>(count);
  ssize_t n;
  do n = recvmsg(fd, &mh, flags);
  while (n < 0 && errno == EINTR);
  return Ret(env, n);
}

}  // namespace

void InitVu(Napi::Env env, Napi::Object exports) {
  exports["mapShared"] = Napi::Function::New(env, MapShared, "mapShared");
  exports["mapView"] = Napi::Function::New(env, MapView, "mapView");
  exports["mapUnmap"] = Napi::Function::New(env, MapUnmap, "mapUnmap");
  exports["vuCopy"] = Napi::Function::New(env, VuCopy, "vuCopy");
  exports["vuRecv"] = Napi::Function::New(env, VuRecv, "vuRecv");
  exports["mapCount"] = Napi::Function::New(env, MapCount, "mapCount");
  exports["recvFds"] = Napi::Function::New(env, RecvFds, "recvFds");
  exports["sendFds"] = Napi::Function::New(env, SendFds, "sendFds");
  exports["memfdCreate"] = Napi::Function::New(env, MemfdCreate, "memfdCreate");
  exports["ftruncate"] = Napi::Function::New(env, Ftruncate, "ftruncate");
  exports["fdWatch"] = Napi::Function::New(env, FdWatch, "fdWatch");
  exports["fdUnwatch"] = Napi::Function::New(env, FdUnwatch, "fdUnwatch");
}

}  // namespace passt

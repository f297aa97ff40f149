// Sockets: creation, addressing, options, and batched datagram I/O.
//
// Socket addresses cross the boundary as raw `struct sockaddr` bytes built and
// parsed in TypeScript (src/shared/sockaddr.ts): the family field in host byte
// order, port and address in network order.
#include "common.h"

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace passt {
namespace {

constexpr int kMaxMsgs = 1024;
constexpr size_t kSockaddrSlot = 28;  // sizeof(struct sockaddr_in6)

socklen_t SaLen(const uint8_t* sa) {
  sa_family_t fam;
  memcpy(&fam, sa, sizeof(fam));
  return fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

Napi::Value Socket(const Napi::CallbackInfo& info) {
  return Ret(info.Env(), socket(static_cast<int>(Int(info, 0)), static_cast<int>(Int(info, 1)),
                                static_cast<int>(Int(info, 2))));
}

// socketpair(domain, type, proto, out: Int32Array(2)) -> 0 or -errno.
Napi::Value Socketpair(const Napi::CallbackInfo& info) {
  Ints out = GetInts(info.Env(), info[3]);
  if (!out.ok || out.count < 2) return Num(info.Env(), -EINVAL);
  int fds[2];
  if (socketpair(static_cast<int>(Int(info, 0)), static_cast<int>(Int(info, 1)), static_cast<int>(Int(info, 2)), fds) < 0)
    return Num(info.Env(), -errno);
  out.data[0] = fds[0];
  out.data[1] = fds[1];
  return Num(info.Env(), 0);
}

// bind(fd, sockaddr: Uint8Array)
Napi::Value Bind(const Napi::CallbackInfo& info) {
  Bytes sa = GetBytes(info.Env(), info[1]);
  if (!sa.ok || sa.len < 2) return Num(info.Env(), -EINVAL);
  return Ret(info.Env(), bind(static_cast<int>(Int(info, 0)), reinterpret_cast<sockaddr*>(sa.data), sa.len));
}

// connect(fd, sockaddr: Uint8Array)
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Bytes sa = GetBytes(info.Env(), info[1]);
  if (!sa.ok || sa.len < 2) return Num(info.Env(), -EINVAL);
  int r;
  do r = connect(static_cast<int>(Int(info, 0)), reinterpret_cast<sockaddr*>(sa.data), sa.len);
  while (r < 0 && errno == EINTR);
  return Ret(info.Env(), r);
}

Napi::Value Listen(const Napi::CallbackInfo& info) {
  return Ret(info.Env(), listen(static_cast<int>(Int(info, 0)), static_cast<int>(Int(info, 1))));
}

// accept4(fd, flags, peer: Uint8Array | undefined) -> new fd, or -errno. The
// peer address bytes are written into `peer` when given (zero-filled first).
Napi::Value Accept4(const Napi::CallbackInfo& info) {
  Bytes sa = GetBytes(info.Env(), info[2]);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  int r;
  do r = accept4(static_cast<int>(Int(info, 0)), reinterpret_cast<sockaddr*>(&ss), &sl, static_cast<int>(Int(info, 1)));
  while (r < 0 && errno == EINTR);
  if (r >= 0 && sa.ok) {
    memset(sa.data, 0, sa.len);
    memcpy(sa.data, &ss, sl < sa.len ? sl : sa.len);
  }
  return Ret(info.Env(), r);
}

Napi::Value NameCall(const Napi::CallbackInfo& info, bool peer) {
  Bytes sa = GetBytes(info.Env(), info[1]);
  if (!sa.ok) return Num(info.Env(), -EINVAL);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  int fd = static_cast<int>(Int(info, 0));
  int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &sl)
               : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl);
  if (r < 0) return Num(info.Env(), -errno);
  memset(sa.data, 0, sa.len);
  memcpy(sa.data, &ss, sl < sa.len ? sl : sa.len);
  return Num(info.Env(), sl);
}

Napi::Value Getsockname(const Napi::CallbackInfo& info) { return NameCall(info, false); }
Napi::Value Getpeername(const Napi::CallbackInfo& info) { return NameCall(info, true); }

Napi::Value SetsockoptInt(const Napi::CallbackInfo& info) {
  int v = static_cast<int>(Int(info, 3));
  return Ret(info.Env(), setsockopt(static_cast<int>(Int(info, 0)), static_cast<int>(Int(info, 1)),
                                    static_cast<int>(Int(info, 2)), &v, sizeof(v)));
}

Napi::Value SetsockoptBytes(const Napi::CallbackInfo& info) {
  Bytes b = GetBytes(info.Env(), info[3]);
  if (!b.ok) return Num(info.Env(), -EINVAL);
  return Ret(info.Env(), setsockopt(static_cast<int>(Int(info, 0)), static_cast<int>(Int(info, 1)),
                                    static_cast<int>(Int(info, 2)), b.data, b.len));
}

// getsockoptInt(fd, level, name) -> value (>= 0), or -errno.
Napi::Value GetsockoptInt(const Napi::CallbackInfo& info) {
  int v = 0;
  socklen_t sl = sizeof(v);
  if (getsockopt(static_cast<int>(Int(info, 0)), static_cast<int>(Int(info, 1)), static_cast<int>(Int(info, 2)),
                 &v, &sl) < 0)
    return Num(info.Env(), -errno);
  return Num(info.Env(), v);
}

// getsockoptBytes(fd, level, name, out: Uint8Array) -> bytes written, or -errno.
Napi::Value GetsockoptBytes(const Napi::CallbackInfo& info) {
  Bytes b = GetBytes(info.Env(), info[3]);
  if (!b.ok) return Num(info.Env(), -EINVAL);
  socklen_t sl = b.len;
  if (getsockopt(static_cast<int>(Int(info, 0)), static_cast<int>(Int(info, 1)), static_cast<int>(Int(info, 2)),
                 b.data, &sl) < 0)
    return Num(info.Env(), -errno);
  return Num(info.Env(), sl);
}

Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  return Ret(info.Env(), shutdown(static_cast<int>(Int(info, 0)), static_cast<int>(Int(info, 1))));
}

// recvmmsg(fd, u8, offs, lens, count, addrs: Uint8Array | null, outLens, flags)
//
// Receives up to `count` datagrams, datagram i into u8[offs[i], offs[i]+lens[i]).
// outLens[i] gets its length (or -1 if it was truncated). With `addrs`, the
// source address of datagram i is written at addrs[28*i] (sockaddr_in or
// sockaddr_in6, zero-padded). Returns the number of datagrams, or -errno.
Napi::Value Recvmmsg(const Napi::CallbackInfo& info) {
  Bytes b = GetBytes(info.Env(), info[1]);
  Ints offs = GetInts(info.Env(), info[2]);
  Ints lens = GetInts(info.Env(), info[3]);
  int64_t count = Int(info, 4);
  Bytes addrs = GetBytes(info.Env(), info[5]);
  Ints outLens = GetInts(info.Env(), info[6]);
  if (!b.ok || !offs.ok || !lens.ok || !outLens.ok || count <= 0 || count > kMaxMsgs ||
      static_cast<size_t>(count) > offs.count || static_cast<size_t>(count) > lens.count ||
      static_cast<size_t>(count) > outLens.count || (addrs.ok && addrs.len < count * kSockaddrSlot))
    return Num(info.Env(), -EINVAL);
  struct mmsghdr msgs[kMaxMsgs];
  struct iovec iov[kMaxMsgs];
  for (int64_t i = 0; i < count; i++) {
    if (!InRange(b, offs.data[i], lens.data[i])) return Num(info.Env(), -EINVAL);
    iov[i].iov_base = b.data + offs.data[i];
    iov[i].iov_len = lens.data[i];
    memset(&msgs[i], 0, sizeof(msgs[i]));
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    if (addrs.ok) {
      memset(addrs.data + i * kSockaddrSlot, 0, kSockaddrSlot);
      msgs[i].msg_hdr.msg_name = addrs.data + i * kSockaddrSlot;
      msgs[i].msg_hdr.msg_namelen = kSockaddrSlot;
    }
  }
  int n;
  do n = recvmmsg(static_cast<int>(Int(info, 0)), msgs, count, static_cast<int>(Int(info, 7)), nullptr);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Num(info.Env(), -errno);
  for (int i = 0; i < n; i++)
    outLens.data[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : static_cast<int32_t>(msgs[i].msg_len);
  return Num(info.Env(), n);
}

// sendmmsg(fd, u8, offs, lens, count, addrs: Uint8Array | null, flags)
//
// Sends `count` datagrams; with `addrs`, datagram i goes to the sockaddr at
// addrs[28*i]. Returns the number sent, or -errno.
Napi::Value Sendmmsg(const Napi::CallbackInfo& info) {
  Bytes b = GetBytes(info.Env(), info[1]);
  Ints offs = GetInts(info.Env(), info[2]);
  Ints lens = GetInts(info.Env(), info[3]);
  int64_t count = Int(info, 4);
  Bytes addrs = GetBytes(info.Env(), info[5]);
  if (!b.ok || !offs.ok || !lens.ok || count <= 0 || count > kMaxMsgs ||
      static_cast<size_t>(count) > offs.count || static_cast<size_t>(count) > lens.count ||
      (addrs.ok && addrs.len < count * kSockaddrSlot))
    return Num(info.Env(), -EINVAL);
  struct mmsghdr msgs[kMaxMsgs];
  struct iovec iov[kMaxMsgs];
  for (int64_t i = 0; i < count; i++) {
    if (!InRange(b, offs.data[i], lens.data[i])) return Num(info.Env(), -EINVAL);
    iov[i].iov_base = b.data + offs.data[i];
    iov[i].iov_len = lens.data[i];
    memset(&msgs[i], 0, sizeof(msgs[i]));
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    if (addrs.ok) {
      msgs[i].msg_hdr.msg_name = addrs.data + i * kSockaddrSlot;
      msgs[i].msg_hdr.msg_namelen = SaLen(addrs.data + i * kSockaddrSlot);
    }
  }
  int n;
  do n = sendmmsg(static_cast<int>(Int(info, 0)), msgs, count, static_cast<int>(Int(info, 6)));
  while (n < 0 && errno == EINTR);
  return Ret(info.Env(), n);
}

// drainErrQueue(fd): reads the socket error queue (IP_RECVERR) until empty.
// Returns the errno of the last queued error (0 if none), or -errno.
Napi::Value DrainErrQueue(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(Int(info, 0));
  int last = 0;
  for (int i = 0; i < 1024; i++) {
    char data[64], ctl[512];
    struct iovec iov = {data, sizeof(data)};
    struct msghdr mh = {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl;
    mh.msg_controllen = sizeof(ctl);
    ssize_t r = recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return Num(info.Env(), -errno);
    }
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
          (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR)) {
        struct sock_extended_err ee;
        memcpy(&ee, CMSG_DATA(c), sizeof(ee));
        last = static_cast<int>(ee.ee_errno);
      }
    }
  }
  return Num(info.Env(), last);
}

}  // namespace

void InitSock(Napi::Env env, Napi::Object exports) {
  exports["socket"] = Napi::Function::New(env, Socket, "socket");
  exports["socketpair"] = Napi::Function::New(env, Socketpair, "socketpair");
  exports["bind"] = Napi::Function::New(env, Bind, "bind");
  exports["connect"] = Napi::Function::New(env, Connect, "connect");
  exports["listen"] = Napi::Function::New(env, Listen, "listen");
  exports["accept4"] = Napi::Function::New(env, Accept4, "accept4");
  exports["getsockname"] = Napi::Function::New(env, Getsockname, "getsockname");
  exports["getpeername"] = Napi::Function::New(env, Getpeername, "getpeername");
  exports["setsockoptInt"] = Napi::Function::New(env, SetsockoptInt, "setsockoptInt");
  exports["setsockoptBytes"] = Napi::Function::New(env, SetsockoptBytes, "setsockoptBytes");
  exports["getsockoptInt"] = Napi::Function::New(env, GetsockoptInt, "getsockoptInt");
  exports["getsockoptBytes"] = Napi::Function::New(env, GetsockoptBytes, "getsockoptBytes");
  exports["shutdown"] = Napi::Function::New(env, Shutdown, "shutdown");
  exports["recvmmsg"] = Napi::Function::New(env, Recvmmsg, "recvmmsg");
  exports["sendmmsg"] = Napi::Function::New(env, Sendmmsg, "sendmmsg");
  exports["drainErrQueue"] = Napi::Function::New(env, DrainErrQueue, "drainErrQueue");
}

}  // namespace passt

// Internet checksum (RFC 1071) over large payloads.
//
// Header checksums stay in TypeScript; the sum over a payload of up to 64 KiB
// costs ~16 us in JavaScript and well under 2 us here (perf/checksum.bench).
#include "common.h"

namespace passt {
namespace {

// Sum of big-endian 16-bit words of [p, p+len), folded to 16 bits, not
// complemented. An odd trailing byte is the high byte of a final word.
uint32_t Sum16(const uint8_t* p, size_t len) {
  uint64_t acc = 0;
  while (len >= 32) {
    uint64_t w[4];
    memcpy(w, p, 32);
    for (int i = 0; i < 4; i++) {
      acc += w[i] & 0xffffffffu;
      acc += w[i] >> 32;
    }
    p += 32;
    len -= 32;
  }
  while (len >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    acc += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    acc += w;
    p += 2;
    len -= 2;
  }
  if (len) acc += *p;  // little-endian: the low byte of the native word
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  uint16_t s = static_cast<uint16_t>(acc);
  return static_cast<uint16_t>((s >> 8) | (s << 8));  // native (LE) sum to network order
}

// csum(u8, off, len) -> 16-bit one's-complement sum (not complemented) of the
// range, or -EINVAL.
Napi::Value Csum(const Napi::CallbackInfo& info) {
  Bytes b = GetBytes(info.Env(), info[0]);
  int64_t off = Int(info, 1), len = Int(info, 2);
  if (!InRange(b, off, len)) return Num(info.Env(), -EINVAL);
  return Num(info.Env(), Sum16(b.data + off, len));
}

}  // namespace

void InitCsum(Napi::Env env, Napi::Object exports) {
  exports["csum"] = Napi::Function::New(env, Csum, "csum");
}

}  // namespace passt

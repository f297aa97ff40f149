// Shared helpers of the passt-ts addon: argument access without exceptions.
//
// The addon is a thin syscall layer (DESIGN.md "Native addon"). Every
// function returns a number: a result >= 0 or a negative errno. Arguments are
// validated in TypeScript (src/shared/native.ts); here we only check types and
// bounds, and a bad argument returns -EINVAL instead of throwing.
#pragma once

#include <napi.h>
#include <errno.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>

namespace passt {

// A byte range inside a typed array (Uint8Array, Int32Array, ... over an
// ArrayBuffer or a SharedArrayBuffer).
struct Bytes {
  uint8_t* data = nullptr;
  size_t len = 0;  // in bytes
  bool ok = false;
};

inline Bytes GetBytes(const Napi::Env& env, const Napi::Value& v) {
  Bytes b;
  if (!v.IsTypedArray()) return b;
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &off) != napi_ok) return b;
  size_t esz = 1;
  switch (type) {
    case napi_int16_array: case napi_uint16_array: esz = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: esz = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: esz = 8; break;
    default: esz = 1;
  }
  b.data = static_cast<uint8_t*>(data);
  b.len = length * esz;
  b.ok = true;
  return b;
}

// Int32 view of a typed array argument (for offset/length/result vectors).
struct Ints {
  int32_t* data = nullptr;
  size_t count = 0;
  bool ok = false;
};

inline Ints GetInts(const Napi::Env& env, const Napi::Value& v) {
  Ints r;
  Bytes b = GetBytes(env, v);
  if (!b.ok || (reinterpret_cast<uintptr_t>(b.data) & 3)) return r;
  r.data = reinterpret_cast<int32_t*>(b.data);
  r.count = b.len / 4;
  r.ok = true;
  return r;
}

inline int64_t Int(const Napi::CallbackInfo& info, size_t i, int64_t dflt = 0) {
  if (i >= info.Length() || !info[i].IsNumber()) return dflt;
  return info[i].As<Napi::Number>().Int64Value();
}

inline bool IsInt(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && info[i].IsNumber();
}

inline Napi::Value Num(const Napi::Env& env, double v) { return Napi::Number::New(env, v); }

// Result of a syscall: the value, or -errno.
inline Napi::Value Ret(const Napi::Env& env, long r) {
  return Napi::Number::New(env, r < 0 ? -static_cast<double>(errno) : static_cast<double>(r));
}

// Range check of [off, off+len) inside b.
inline bool InRange(const Bytes& b, int64_t off, int64_t len) {
  return b.ok && off >= 0 && len >= 0 && static_cast<uint64_t>(off) + static_cast<uint64_t>(len) <= b.len;
}

void InitIo(Napi::Env env, Napi::Object exports);
void InitSock(Napi::Env env, Napi::Object exports);
void InitNs(Napi::Env env, Napi::Object exports);
void InitCsum(Napi::Env env, Napi::Object exports);
void InitIsolate(Napi::Env env, Napi::Object exports);
void InitVu(Napi::Env env, Napi::Object exports);

}  // namespace passt

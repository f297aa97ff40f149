// Entry point of the passt-ts native addon: a thin, batched syscall layer
// (DESIGN.md). The whole surface is declared in src/shared/native.ts.
#include "common.h"

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  passt::InitIo(env, exports);
  passt::InitSock(env, exports);
  passt::InitNs(env, exports);
  passt::InitCsum(env, exports);
  passt::InitIsolate(env, exports);
  passt::InitVu(env, exports);
  return exports;
}

NODE_API_MODULE(passt_native, InitAddon)

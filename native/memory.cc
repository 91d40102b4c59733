// Memory mechanisms for src/memory.ts, which decides what to give back and when:
// madvise over one address range (two pieces of advice), and glibc's malloc_trim.
#include <napi.h>
#include <malloc.h>
#include <sys/mman.h>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21  // Linux 5.4
#endif

namespace tallow {

// advise(start, length, advice): madvise over one address range, for the two pieces of advice
// src/memory.ts gives: MADV_PAGEOUT (take the pages back now) and MADV_RANDOM (read back only the
// page used, not the pages around it). Returns 0, or the errno madvise set (EINVAL: a kernel
// before 5.4 for MADV_PAGEOUT; ENOMEM: the range is no longer mapped). The kernel skips pages other
// processes map too and never changes their contents: clean file pages are dropped and read back
// from the file when used again.
static Napi::Value Advise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsString())
    throw Napi::TypeError::New(env, "advise takes a start address, a length and 'pageout' or 'random'");
  double start = info[0].As<Napi::Number>().DoubleValue();
  double length = info[1].As<Napi::Number>().DoubleValue();
  std::string what = info[2].As<Napi::String>().Utf8Value();
  int advice;
  if (what == "pageout") advice = MADV_PAGEOUT;
  else if (what == "random") advice = MADV_RANDOM;
  else throw Napi::TypeError::New(env, "advise: 'pageout' or 'random'");
  // Addresses below 2^53 are exact in a double (user space on x86-64 and arm64 ends at 2^48 or 2^52).
  if (!(start >= 0 && length > 0 && start + length <= 9007199254740992.0))
    throw Napi::RangeError::New(env, "advise: address range out of bounds");
  void* addr = reinterpret_cast<void*>(static_cast<uintptr_t>(start));
  int r = madvise(addr, static_cast<size_t>(length), advice);
  return Napi::Number::New(env, r == 0 ? 0 : errno);
}

// trimHeap(): gives the C heap's free memory back to the kernel; true if any was.
static Napi::Value TrimHeap(const Napi::CallbackInfo& info) {
#ifdef __GLIBC__
  return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("advise", Napi::Function::New<Advise>(env, "advise"));
  exports.Set("trimHeap", Napi::Function::New<TrimHeap>(env, "trimHeap"));
}

}  // namespace tallow

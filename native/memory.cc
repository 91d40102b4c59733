// Memory mechanisms for src/memory.ts, which decides what to give back and when:
// madvise(MADV_PAGEOUT) over one address range, and glibc's malloc_trim.
#include <napi.h>
#include <malloc.h>
#include <sys/mman.h>
#include <cerrno>
#include <cstdint>
#include <cstring>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21  // Linux 5.4
#endif

namespace tallow {

// pageOut(start, length): madvise(MADV_PAGEOUT) over one address range: 0, or the errno madvise
// set (EINVAL: a kernel before 5.4; ENOMEM: the range is no longer mapped). The kernel skips pages
// other processes map too and never changes their contents: clean file pages are dropped and
// read back from the file when used again.
static Napi::Value PageOut(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "pageOut takes a start address and a length");
  double start = info[0].As<Napi::Number>().DoubleValue();
  double length = info[1].As<Napi::Number>().DoubleValue();
  // Addresses below 2^53 are exact in a double (user space on x86-64 and arm64 ends at 2^48 or 2^52).
  if (!(start >= 0 && length > 0 && start + length <= 9007199254740992.0))
    throw Napi::RangeError::New(env, "pageOut: address range out of bounds");
  void* addr = reinterpret_cast<void*>(static_cast<uintptr_t>(start));
  int r = madvise(addr, static_cast<size_t>(length), MADV_PAGEOUT);
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
  exports.Set("pageOut", Napi::Function::New<PageOut>(env, "pageOut"));
  exports.Set("trimHeap", Napi::Function::New<TrimHeap>(env, "trimHeap"));
}

}  // namespace tallow

// Per-environment (main thread or worker) bookkeeping: the objects still open (journals, rule
// watches) and the libuv handles still closing, so environment teardown can close everything and wait
// for the handles' close callbacks before the loop is closed (a worker exiting must not crash).
#pragma once
#include <napi.h>
#include <unordered_set>

namespace tallow {

// What environment teardown closes: an open journal or rule watch.
struct Closable {
  virtual void Close() = 0;
  virtual ~Closable() = default;
};

struct EnvState {
  std::unordered_set<Closable*> open;
  napi_async_cleanup_hook_handle hook = nullptr;
  size_t closing_handles = 0;
  bool tearing_down = false;

  void HandleClosed() {
    if (--closing_handles == 0) MaybeFinishTeardown();
  }
  void MaybeFinishTeardown() {
    if (tearing_down && closing_handles == 0 && hook != nullptr) {
      napi_async_cleanup_hook_handle h = hook;
      hook = nullptr;
      napi_remove_async_cleanup_hook(h);
    }
  }
};

}  // namespace tallow

// Per-environment (main thread or worker) bookkeeping: the journals still open and the
// libuv handles still closing, so environment teardown can close everything and wait
// for the handles' close callbacks before the loop is closed (a worker exiting must not crash).
#pragma once
#include <napi.h>
#include <unordered_set>

namespace tallow {

class JournalWrap;

struct EnvState {
  std::unordered_set<JournalWrap*> journals;
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

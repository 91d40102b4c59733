// tallow's N-API addon: sd-journal reading (journal.cc), sd-daemon services (systemd.cc),
// nftables change notifications (rulewatch.cc), giving memory back (memory.cc) and dup2 for the
// log file's reopening (stdio.cc).
#include <napi.h>
#include <vector>

#include "env_state.h"
#include "journal.h"
#include "rulewatch.h"

namespace tallow {
void InitSystemd(Napi::Env env, Napi::Object exports);
void InitMemory(Napi::Env env, Napi::Object exports);
void InitStdio(Napi::Env env, Napi::Object exports);

// Environment teardown (process exit, a worker thread ending): close every journal and rule
// watch still open, then let Node wait until the libuv handles have run their close callbacks.
static void OnEnvTeardown(napi_async_cleanup_hook_handle handle, void* arg) {
  EnvState* state = static_cast<EnvState*>(arg);
  state->hook = handle;
  state->tearing_down = true;
  std::vector<Closable*> open(state->open.begin(), state->open.end());
  for (Closable* c : open) c->Close();
  state->MaybeFinishTeardown();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  EnvState* state = new EnvState();
  env.SetInstanceData<EnvState>(state);
  napi_async_cleanup_hook_handle ignored;
  napi_add_async_cleanup_hook(env, OnEnvTeardown, state, &ignored);
  exports.Set("Journal", JournalWrap::Define(env));
  exports.Set("RuleWatch", RuleWatchWrap::Define(env));
  InitSystemd(env, exports);
  InitMemory(env, exports);
  InitStdio(env, exports);
  return exports;
}

}  // namespace tallow

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return tallow::Init(env, exports); }
NODE_API_MODULE(tallow, InitAddon)

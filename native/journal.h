// The sd_journal object exposed to JS. Mechanisms only (open, match, seek, read a batch,
// watch, close); where to start and how to drain is decided in src/journal.ts.
#pragma once
#include <napi.h>
#include <systemd/sd-journal.h>
#include <uv.h>
#include <memory>
#include <string>
#include <vector>
#include "env_state.h"

namespace tallow {

struct Watch;

class JournalWrap : public Napi::ObjectWrap<JournalWrap>, public Closable {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit JournalWrap(const Napi::CallbackInfo& info);
  ~JournalWrap() override;

  // Idempotent: stops watching and closes the journal. Safe from close(), the
  // finalizer and the environment cleanup hook.
  void Close() override;
  // Called from the libuv poll/timer callbacks on the JS thread.
  void Wake();

 private:
  void RequireOpen(Napi::Env env) const;
  void StopWatch();
  void ArmTimer();

  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value SetFields(const Napi::CallbackInfo& info);
  Napi::Value SetMaxFieldSize(const Napi::CallbackInfo& info);
  Napi::Value AddMatch(const Napi::CallbackInfo& info);
  Napi::Value AddDisjunction(const Napi::CallbackInfo& info);
  Napi::Value SeekHead(const Napi::CallbackInfo& info);
  Napi::Value SeekTail(const Napi::CallbackInfo& info);
  Napi::Value SeekCursor(const Napi::CallbackInfo& info);
  Napi::Value SeekRealtime(const Napi::CallbackInfo& info);
  Napi::Value Next(const Napi::CallbackInfo& info);
  Napi::Value Previous(const Napi::CallbackInfo& info);
  Napi::Value TestCursor(const Napi::CallbackInfo& info);
  Napi::Value ReadBatch(const Napi::CallbackInfo& info);
  Napi::Value Process(const Napi::CallbackInfo& info);
  Napi::Value StartWatch(const Napi::CallbackInfo& info);
  Napi::Value StopWatch(const Napi::CallbackInfo& info);

  sd_journal* j_ = nullptr;
  EnvState* state_;
  uv_loop_t* loop_ = nullptr;
  std::vector<std::string> fields_;
  size_t max_field_size_ = 64 * 1024;
  Watch* watch_ = nullptr;
  Napi::FunctionReference callback_;
  // shared: Wake keeps its copy alive if the callback closes the journal.
  std::shared_ptr<Napi::AsyncContext> async_context_;
};

}  // namespace tallow

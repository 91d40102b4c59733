// Notifications of nftables changes (the kernel's NFNLGRP_NFTABLES netlink group): what `nft
// monitor` listens to, without a process. Mechanism only: src/firewall/monitor.ts says which
// message types matter and what to do.
#pragma once
#include <napi.h>
#include <uv.h>
#include <memory>
#include <vector>
#include "env_state.h"

namespace tallow {

struct RulePoll;

class RuleWatchWrap : public Napi::ObjectWrap<RuleWatchWrap>, public Closable {
 public:
  static Napi::Function Define(Napi::Env env);
  // new RuleWatch(types: number[], callback(count)): callback runs with the number of nftables
  // messages of those types received since the last call (-1: the kernel dropped some, the
  // receive buffer was full). Does not keep the process alive.
  explicit RuleWatchWrap(const Napi::CallbackInfo& info);
  ~RuleWatchWrap() override;

  // Idempotent; from close(), the finalizer and the environment cleanup hook.
  void Close() override;
  // From the poll callback on the JS thread.
  void Readable();

 private:
  Napi::Value Close(const Napi::CallbackInfo& info);

  int fd_ = -1;
  EnvState* state_;
  RulePoll* poll_ = nullptr;
  std::vector<bool> wanted_;
  std::vector<char> buf_;
  Napi::FunctionReference callback_;
  std::shared_ptr<Napi::AsyncContext> async_context_;
};

}  // namespace tallow

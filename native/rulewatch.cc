#include "rulewatch.h"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <string>

#include "errors.h"

namespace tallow {

// Freed in its close callback, which libuv runs later on the loop.
struct RulePoll {
  RuleWatchWrap* owner;
  EnvState* state;
  uv_poll_t poll;
};

static void OnPollClosed(uv_handle_t* handle) {
  RulePoll* p = static_cast<RulePoll*>(handle->data);
  EnvState* state = p->state;
  delete p;
  state->HandleClosed();
}

static void OnReadable(uv_poll_t* handle, int /*status*/, int /*events*/) {
  RulePoll* p = static_cast<RulePoll*>(handle->data);
  if (p->owner != nullptr) p->owner->Readable();
}

Napi::Function RuleWatchWrap::Define(Napi::Env env) {
  return DefineClass(env, "RuleWatch", {InstanceMethod<&RuleWatchWrap::Close>("close")});
}

RuleWatchWrap::RuleWatchWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RuleWatchWrap>(info) {
  Napi::Env env = info.Env();
  state_ = env.GetInstanceData<EnvState>();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsFunction())
    throw Napi::TypeError::New(env, "new RuleWatch(types, callback): an array of nftables message types and a function");
  Napi::Array types = info[0].As<Napi::Array>();
  wanted_.assign(256, false);
  for (uint32_t i = 0; i < types.Length(); i++) {
    Napi::Value v = types.Get(i);
    int t = v.IsNumber() ? v.As<Napi::Number>().Int32Value() : -1;
    if (t < 0 || t > 255) throw Napi::RangeError::New(env, "RuleWatch: message types are 0 to 255");
    wanted_[t] = true;
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no libuv loop");

  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
  if (fd_ < 0) ThrowErrno(env, "socket(AF_NETLINK, NETLINK_NETFILTER)", errno);
  struct sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  int group = NFNLGRP_NFTABLES;
  int rcvbuf = 1 << 20;  // a flush of thousands of rules comes as one burst
  if (bind(fd_, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0 ||
      setsockopt(fd_, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
    int e = errno;
    close(fd_);
    fd_ = -1;
    ThrowErrno(env, "netlink NFNLGRP_NFTABLES", e);
  }
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);  // best effort: capped by rmem_max

  RulePoll* p = new RulePoll{this, state_, {}};
  int r = uv_poll_init(loop, &p->poll, fd_);
  if (r != 0) {
    delete p;
    close(fd_);
    fd_ = -1;
    throw Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(r));
  }
  p->poll.data = p;
  poll_ = p;
  buf_.resize(64 * 1024);
  callback_ = Napi::Persistent(info[1].As<Napi::Function>());
  async_context_ = std::make_shared<Napi::AsyncContext>(env, "tallow.RuleWatch", Value());
  // Registered and referenced before the poll starts, so that Close() on a failed start undoes
  // exactly this (its Unref() needs the Ref()).
  state_->open.insert(this);
  Ref();
  r = uv_poll_start(&p->poll, UV_READABLE, OnReadable);
  if (r != 0) {
    Close();
    throw Napi::Error::New(env, std::string("uv_poll_start: ") + uv_strerror(r));
  }
  // A watcher never keeps the process alive by itself.
  uv_unref(reinterpret_cast<uv_handle_t*>(&p->poll));
}

RuleWatchWrap::~RuleWatchWrap() {
  Close();
}

void RuleWatchWrap::Close() {
  if (poll_ != nullptr) {
    RulePoll* p = poll_;
    poll_ = nullptr;
    p->owner = nullptr;
    // Closing the poll handle takes the fd out of epoll at once; the fd can be closed after.
    state_->closing_handles += 1;
    uv_close(reinterpret_cast<uv_handle_t*>(&p->poll), OnPollClosed);
    callback_.Reset();
    async_context_.reset();
    Unref();
  }
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  state_->open.erase(this);
}

Napi::Value RuleWatchWrap::Close(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

void RuleWatchWrap::Readable() {
  if (fd_ < 0) return;
  int count = 0;
  bool overrun = false;
  for (;;) {
    ssize_t n = recv(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {  // messages were dropped: whatever they said, something changed
        overrun = true;
        continue;
      }
      break;  // EAGAIN: drained
    }
    if (n == 0) break;
    int len = static_cast<int>(n);
    for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(buf_.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (NFNL_SUBSYS_ID(h->nlmsg_type) == NFNL_SUBSYS_NFTABLES && wanted_[NFNL_MSG_TYPE(h->nlmsg_type)]) count++;
    }
  }
  if (count == 0 && !overrun) return;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  std::shared_ptr<Napi::AsyncContext> context = async_context_;
  Napi::Function callback = callback_.Value();
  try {
    callback.MakeCallback(Value(), {Napi::Number::New(env, overrun ? -1 : count)}, *context);
  } catch (const Napi::Error& err) {
    napi_fatal_exception(env, err.Value());
  }
}

}  // namespace tallow

#include "journal.h"

#include <poll.h>
#include <time.h>
#include <cstdint>
#include <cstdlib>
#include <algorithm>
#include <cstring>

#include "errors.h"

namespace tallow {

// The poll and timer handles outlive the JournalWrap when it closes: they are freed in
// their close callbacks, which libuv runs later on the loop.
struct Watch {
  JournalWrap* owner;
  EnvState* state;
  uv_poll_t poll;
  uv_timer_t timer;
  int open_handles = 0;
};

static void OnHandleClosed(uv_handle_t* handle) {
  Watch* w = static_cast<Watch*>(handle->data);
  EnvState* state = w->state;
  if (--w->open_handles == 0) delete w;
  state->HandleClosed();
}

static void OnPoll(uv_poll_t* handle, int /*status*/, int /*events*/) {
  Watch* w = static_cast<Watch*>(handle->data);
  if (w->owner != nullptr) w->owner->Wake();
}

static void OnTimer(uv_timer_t* handle) {
  Watch* w = static_cast<Watch*>(handle->data);
  if (w->owner != nullptr) w->owner->Wake();
}

static bool IsAscii(const char* s, size_t len) {
  size_t i = 0;
  uint64_t acc = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    acc |= w;
  }
  for (; i < len; i++) acc |= static_cast<unsigned char>(s[i]);
  return (acc & 0x8080808080808080ULL) == 0;
}

static std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Function JournalWrap::Define(Napi::Env env) {
  return DefineClass(env, "Journal", {
      InstanceMethod<&JournalWrap::Close>("close"),
      InstanceMethod<&JournalWrap::SetFields>("setFields"),
      InstanceMethod<&JournalWrap::SetMaxFieldSize>("setMaxFieldSize"),
      InstanceMethod<&JournalWrap::AddMatch>("addMatch"),
      InstanceMethod<&JournalWrap::AddDisjunction>("addDisjunction"),
      InstanceMethod<&JournalWrap::SeekHead>("seekHead"),
      InstanceMethod<&JournalWrap::SeekTail>("seekTail"),
      InstanceMethod<&JournalWrap::SeekCursor>("seekCursor"),
      InstanceMethod<&JournalWrap::SeekRealtime>("seekRealtime"),
      InstanceMethod<&JournalWrap::Next>("next"),
      InstanceMethod<&JournalWrap::Previous>("previous"),
      InstanceMethod<&JournalWrap::TestCursor>("testCursor"),
      InstanceMethod<&JournalWrap::ReadBatch>("readBatch"),
      InstanceMethod<&JournalWrap::Process>("process"),
      InstanceMethod<&JournalWrap::StartWatch>("watch"),
      InstanceMethod<&JournalWrap::StopWatch>("unwatch"),
  });
}

// new Journal({ directory?: string, files?: string[] }); neither: the local system journal.
JournalWrap::JournalWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JournalWrap>(info) {
  Napi::Env env = info.Env();
  state_ = env.GetInstanceData<EnvState>();
  if (napi_get_uv_event_loop(env, &loop_) != napi_ok) throw Napi::Error::New(env, "no libuv loop");
  Napi::Object opts = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
  Napi::Value dir = opts.Get("directory");
  Napi::Value files = opts.Get("files");
  int r;
  if (dir.IsString()) {
    std::string path = dir.As<Napi::String>().Utf8Value();
    r = sd_journal_open_directory(&j_, path.c_str(), 0);
    if (r < 0) ThrowErrno(env, "sd_journal_open_directory", r, path);
  } else if (files.IsArray()) {
    Napi::Array arr = files.As<Napi::Array>();
    std::vector<std::string> paths;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsString()) throw Napi::TypeError::New(env, "files must be strings");
      paths.push_back(v.As<Napi::String>().Utf8Value());
    }
    std::vector<const char*> ptrs;
    for (auto& p : paths) ptrs.push_back(p.c_str());
    ptrs.push_back(nullptr);
    r = sd_journal_open_files(&j_, ptrs.data(), 0);
    if (r < 0) {
      std::string all;
      for (auto& p : paths) all += (all.empty() ? "" : ", ") + p;
      ThrowErrno(env, "sd_journal_open_files", r, all);
    }
  } else {
    r = sd_journal_open(&j_, SD_JOURNAL_LOCAL_ONLY);
    if (r < 0) ThrowErrno(env, "sd_journal_open", r);
  }
  // Ask for the inotify fd at once: sd-journal only watches directories and files for
  // changes from then on, and entries written between open and a later watch() would
  // otherwise be noticed late.
  r = sd_journal_get_fd(j_);
  if (r < 0) {
    sd_journal_close(j_);
    j_ = nullptr;
    ThrowErrno(env, "sd_journal_get_fd", r);
  }
  r = sd_journal_set_data_threshold(j_, max_field_size_ + 256);
  state_->open.insert(this);
}

JournalWrap::~JournalWrap() {
  Close();
}

void JournalWrap::Close() {
  StopWatch();
  if (j_ != nullptr) {
    sd_journal_close(j_);
    j_ = nullptr;
  }
  state_->open.erase(this);
}

void JournalWrap::RequireOpen(Napi::Env env) const {
  if (j_ == nullptr) throw Napi::Error::New(env, "journal is closed");
}

void JournalWrap::StopWatch() {
  if (watch_ == nullptr) return;
  Watch* w = watch_;
  watch_ = nullptr;
  w->owner = nullptr;
  // Closing the poll handle removes the fd from epoll at once, so sd_journal_close may
  // close the inotify fd right after.
  state_->closing_handles += 2;
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->timer), OnHandleClosed);
  callback_.Reset();
  async_context_.reset();
  Unref();
}

Napi::Value JournalWrap::Close(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

Napi::Value JournalWrap::SetFields(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "fields must be an array");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<std::string> fields;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsString()) throw Napi::TypeError::New(env, "field names must be strings");
    fields.push_back(v.As<Napi::String>().Utf8Value());
  }
  fields_ = std::move(fields);
  return env.Undefined();
}

Napi::Value JournalWrap::SetMaxFieldSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  int64_t n = info[0].As<Napi::Number>().Int64Value();
  if (n < 1) throw Napi::RangeError::New(env, "maxFieldSize must be at least 1");
  max_field_size_ = static_cast<size_t>(n);
  // The threshold counts "FIELD=" too; the exact cap is applied when reading.
  int r = sd_journal_set_data_threshold(j_, max_field_size_ + 256);
  if (r < 0) ThrowErrno(env, "sd_journal_set_data_threshold", r);
  return env.Undefined();
}

Napi::Value JournalWrap::AddMatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  std::string term = StringArg(info, 0, "match");
  int r = sd_journal_add_match(j_, term.data(), term.size());
  if (r < 0) ThrowErrno(env, "sd_journal_add_match", r, term);
  return env.Undefined();
}

Napi::Value JournalWrap::AddDisjunction(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env());
  int r = sd_journal_add_disjunction(j_);
  if (r < 0) ThrowErrno(info.Env(), "sd_journal_add_disjunction", r);
  return info.Env().Undefined();
}

Napi::Value JournalWrap::SeekHead(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env());
  int r = sd_journal_seek_head(j_);
  if (r < 0) ThrowErrno(info.Env(), "sd_journal_seek_head", r);
  return info.Env().Undefined();
}

Napi::Value JournalWrap::SeekTail(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env());
  int r = sd_journal_seek_tail(j_);
  if (r < 0) ThrowErrno(info.Env(), "sd_journal_seek_tail", r);
  return info.Env().Undefined();
}

Napi::Value JournalWrap::SeekCursor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  std::string cursor = StringArg(info, 0, "cursor");
  int r = sd_journal_seek_cursor(j_, cursor.c_str());
  if (r < 0) ThrowErrno(env, "sd_journal_seek_cursor", r, cursor);
  return env.Undefined();
}

Napi::Value JournalWrap::SeekRealtime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  double usec = info[0].As<Napi::Number>().DoubleValue();
  if (!(usec >= 0)) throw Napi::RangeError::New(env, "realtime must be a non-negative number of microseconds");
  int r = sd_journal_seek_realtime_usec(j_, static_cast<uint64_t>(usec));
  if (r < 0) ThrowErrno(env, "sd_journal_seek_realtime_usec", r);
  return env.Undefined();
}

Napi::Value JournalWrap::Next(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env());
  int r = sd_journal_next(j_);
  if (r < 0) ThrowErrno(info.Env(), "sd_journal_next", r);
  return Napi::Number::New(info.Env(), r);
}

Napi::Value JournalWrap::Previous(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env());
  int r = sd_journal_previous(j_);
  if (r < 0) ThrowErrno(info.Env(), "sd_journal_previous", r);
  return Napi::Number::New(info.Env(), r);
}

Napi::Value JournalWrap::TestCursor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  std::string cursor = StringArg(info, 0, "cursor");
  int r = sd_journal_test_cursor(j_, cursor.c_str());
  if (r < 0) ThrowErrno(env, "sd_journal_test_cursor", r, cursor);
  return Napi::Boolean::New(env, r > 0);
}

// readBatch(max, includeCurrent, sink) -> number of entries read. Per entry the values are
// cursor, realtime, then one value per field given to setFields (undefined when absent);
// they reach JS as the arguments of sink(...values), many entries per call: one call into JS
// per chunk costs far less than an N-API object or array store per value. src/journal.ts
// builds the entry objects. includeCurrent: the journal already stands on an unread entry
// (see seek to cursor).
Napi::Value JournalWrap::ReadBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  if (info.Length() < 3 || !info[2].IsFunction()) throw Napi::TypeError::New(env, "readBatch(max, includeCurrent, sink)");
  uint32_t max = info[0].As<Napi::Number>().Uint32Value();
  bool include_current = info[1].ToBoolean().Value();
  napi_value sink = info[2];
  napi_env e = env;
  napi_value undef, v;
  napi_get_undefined(e, &undef);
  const size_t stride = 2 + fields_.size();
  // Arguments per call stay well below V8's limits on a call's argument count.
  const size_t chunk_entries = std::max<size_t>(1, 1024 / stride);
  std::vector<napi_value> args;
  args.reserve(chunk_entries * stride);
  auto flush = [&]() {
    if (args.empty()) return;
    napi_status st = napi_call_function(e, undef, sink, args.size(), args.data(), nullptr);
    args.clear();
    if (st != napi_ok) throw Napi::Error::New(env);  // the sink threw: rethrow it
  };
  uint32_t n = 0;
  for (; n < max; n++) {
    int r;
    if (!(include_current && n == 0)) {
      r = sd_journal_next(j_);
      if (r < 0) {
        if (n == 0) ThrowErrno(env, "sd_journal_next", r);
        break;  // return what we have; the error comes back on the next call
      }
      if (r == 0) break;
    }
    char* cursor = nullptr;
    r = sd_journal_get_cursor(j_, &cursor);
    if (r < 0) ThrowErrno(env, "sd_journal_get_cursor", r);
    // Cursors are ASCII: latin1 skips UTF-8 decoding.
    napi_status st = napi_create_string_latin1(e, cursor, NAPI_AUTO_LENGTH, &v);
    free(cursor);
    if (st != napi_ok) throw Napi::Error::New(env, "napi_create_string_latin1 failed");
    args.push_back(v);
    uint64_t realtime = 0;
    r = sd_journal_get_realtime_usec(j_, &realtime);
    if (r < 0) ThrowErrno(env, "sd_journal_get_realtime_usec", r);
    napi_create_double(e, static_cast<double>(realtime), &v);
    args.push_back(v);
    for (const std::string& f : fields_) {
      const void* data;
      size_t len;
      r = sd_journal_get_data(j_, f.c_str(), &data, &len);
      // ENOENT: field absent; EBADMSG & co: a damaged field, read as absent.
      if (r < 0 || len < f.size() + 1) {
        args.push_back(undef);
        continue;
      }
      const char* s = static_cast<const char*>(data) + f.size() + 1;
      len -= f.size() + 1;
      if (len > max_field_size_) {
        len = max_field_size_;
        // Do not cut a UTF-8 sequence in two (at most 3 continuation bytes to step over).
        for (int k = 0; k < 3 && len > 0 && (static_cast<unsigned char>(s[len]) & 0xC0) == 0x80; k++) len--;
      }
      // ASCII (the common case) is made as latin1, cheaper than UTF-8 decoding. Otherwise
      // invalid UTF-8 becomes U+FFFD; NUL bytes are kept (explicit length).
      if (IsAscii(s, len)) napi_create_string_latin1(e, s, len, &v);
      else napi_create_string_utf8(e, s, len, &v);
      args.push_back(v);
    }
    if (args.size() >= chunk_entries * stride) flush();
  }
  flush();
  return Napi::Number::New(env, n);
}

Napi::Value JournalWrap::Process(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env());
  int r = sd_journal_process(j_);
  if (r < 0) ThrowErrno(info.Env(), "sd_journal_process", r);
  return Napi::Number::New(info.Env(), r);
}

// watch(callback): callback(processResult) runs on the JS thread whenever sd-journal's
// fd becomes readable or its timeout expires, after sd_journal_process(). The object is
// kept alive while watching.
Napi::Value JournalWrap::StartWatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env);
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "watch callback must be a function");
  if (watch_ != nullptr) throw Napi::Error::New(env, "journal is already being watched");
  int fd = sd_journal_get_fd(j_);
  if (fd < 0) ThrowErrno(env, "sd_journal_get_fd", fd);
  Watch* w = new Watch();
  w->owner = this;
  w->state = state_;
  int r = uv_poll_init(loop_, &w->poll, fd);
  if (r != 0) {
    delete w;
    throw Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(r));
  }
  w->poll.data = w;
  w->open_handles = 1;
  uv_timer_init(loop_, &w->timer);
  w->timer.data = w;
  w->open_handles = 2;
  watch_ = w;
  callback_ = Napi::Persistent(info[0].As<Napi::Function>());
  async_context_ = std::make_shared<Napi::AsyncContext>(env, "tallow.JournalWatch", Value());
  Ref();
  int events = sd_journal_get_events(j_);
  r = uv_poll_start(&w->poll, (events & POLLOUT) ? UV_READABLE | UV_WRITABLE : UV_READABLE, OnPoll);
  if (r != 0) {
    StopWatch();
    throw Napi::Error::New(env, std::string("uv_poll_start: ") + uv_strerror(r));
  }
  ArmTimer();
  return env.Undefined();
}

Napi::Value JournalWrap::StopWatch(const Napi::CallbackInfo& info) {
  StopWatch();
  return info.Env().Undefined();
}

void JournalWrap::ArmTimer() {
  if (watch_ == nullptr || j_ == nullptr) return;
  uint64_t deadline = UINT64_MAX;
  int r = sd_journal_get_timeout(j_, &deadline);
  if (r < 0 || deadline == UINT64_MAX) {
    uv_timer_stop(&watch_->timer);
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = static_cast<uint64_t>(ts.tv_sec) * 1000000ULL + static_cast<uint64_t>(ts.tv_nsec) / 1000;
  uint64_t ms = deadline > now ? (deadline - now + 999) / 1000 : 0;
  uv_timer_start(&watch_->timer, OnTimer, ms, 0);
}

void JournalWrap::Wake() {
  if (j_ == nullptr || watch_ == nullptr) return;
  int r = sd_journal_process(j_);
  ArmTimer();
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  std::shared_ptr<Napi::AsyncContext> context = async_context_;
  Napi::Function callback = callback_.Value();
  try {
    callback.MakeCallback(Value(), {Napi::Number::New(env, r)}, *context);
  } catch (const Napi::Error& err) {
    // Thrown by the JS callback: report it like any uncaught exception.
    napi_fatal_exception(env, err.Value());
  }
}

}  // namespace tallow

// libsystemd services for the daemon other than reading: sd_notify, the watchdog
// interval, structured journal entries, and whether stdout/stderr is the journal.
#include <napi.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <vector>

#include "errors.h"

namespace tallow {

static Napi::Value Notify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "notify state must be a string");
  std::string state = info[0].As<Napi::String>().Utf8Value();
  int r = sd_notify(0, state.c_str());
  if (r < 0) ThrowErrno(env, "sd_notify", r);
  return Napi::Boolean::New(env, r > 0);
}

static Napi::Value WatchdogUsec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t usec = 0;
  int r = sd_watchdog_enabled(0, &usec);
  if (r < 0) ThrowErrno(env, "sd_watchdog_enabled", r);
  return Napi::Number::New(env, r > 0 ? static_cast<double>(usec) : 0);
}

// journalSend([ "FIELD=value", ... ]): the field names are checked in src/systemd.ts.
static Napi::Value JournalSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "journalSend takes an array of FIELD=value");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<std::string> items;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsString()) throw Napi::TypeError::New(env, "journalSend items must be strings");
    items.push_back(v.As<Napi::String>().Utf8Value());
  }
  std::vector<struct iovec> iov;
  for (auto& s : items) iov.push_back({const_cast<char*>(s.data()), s.size()});
  int r = sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
  if (r < 0) ThrowErrno(env, "sd_journal_sendv", r);
  return env.Undefined();
}

// systemd sets JOURNAL_STREAM=dev:ino for a service whose stdout/stderr is a journal
// stream; it only counts while that fd is still the same file.
static Napi::Value UnderJournal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* s = getenv("JOURNAL_STREAM");
  if (s == nullptr) return Napi::Boolean::New(env, false);
  unsigned long long dev = 0, ino = 0;
  char tail;
  if (sscanf(s, "%llu:%llu%c", &dev, &ino, &tail) != 2) return Napi::Boolean::New(env, false);
  for (int fd : {1, 2}) {
    struct stat st;
    if (fstat(fd, &st) == 0 && static_cast<unsigned long long>(st.st_dev) == dev &&
        static_cast<unsigned long long>(st.st_ino) == ino)
      return Napi::Boolean::New(env, true);
  }
  return Napi::Boolean::New(env, false);
}

void InitSystemd(Napi::Env env, Napi::Object exports) {
  exports.Set("notify", Napi::Function::New<Notify>(env, "notify"));
  exports.Set("watchdogUsec", Napi::Function::New<WatchdogUsec>(env, "watchdogUsec"));
  exports.Set("journalSend", Napi::Function::New<JournalSend>(env, "journalSend"));
  exports.Set("underJournal", Napi::Function::New<UnderJournal>(env, "underJournal"));
}

}  // namespace tallow

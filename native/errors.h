// Turns a negative errno from libsystemd into a JS exception naming the call,
// e.g. "sd_journal_open_directory: ENOENT (No such file or directory): /nope".
#pragma once
#include <napi.h>
#include <cstring>
#include <string>

namespace tallow {

inline Napi::Error ErrnoError(Napi::Env env, const char* call, int r, const std::string& detail = "") {
  int e = r < 0 ? -r : r;
  const char* name = strerrorname_np(e);
  std::string msg = std::string(call) + ": " + (name ? name : "errno " + std::to_string(e)) +
                    " (" + std::strerror(e) + ")";
  if (!detail.empty()) msg += ": " + detail;
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("errno", Napi::Number::New(env, e));
  if (name) err.Set("code", Napi::String::New(env, name));
  err.Set("syscall", Napi::String::New(env, call));
  return err;
}

[[noreturn]] inline void ThrowErrno(Napi::Env env, const char* call, int r, const std::string& detail = "") {
  throw ErrnoError(env, call, r, detail);
}

}  // namespace tallow

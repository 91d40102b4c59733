// dupOnto(fd, target): dup2(2), for src/log.ts: after logrotate renamed the log file that
// stdout and stderr were opened on, they are pointed at the new file too, so that what the
// process writes to them itself (a crash's trace, node's warnings) lands there and the rotated
// file is let go. Returns 0 or the errno.
#include <napi.h>
#include <unistd.h>
#include <cerrno>

namespace tallow {

static Napi::Value DupOnto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "dupOnto takes two file descriptors");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int target = info[1].As<Napi::Number>().Int32Value();
  if (fd < 0 || target < 0) throw Napi::RangeError::New(env, "dupOnto: file descriptors are not negative");
  int r;
  do r = dup2(fd, target);
  while (r < 0 && errno == EINTR);
  return Napi::Number::New(env, r < 0 ? errno : 0);
}

void InitStdio(Napi::Env env, Napi::Object exports) {
  exports.Set("dupOnto", Napi::Function::New<DupOnto>(env, "dupOnto"));
}

}  // namespace tallow

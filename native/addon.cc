// Placeholder: the sd-journal addon is written under issue 2.
#include <napi.h>
static Napi::Object Init(Napi::Env env, Napi::Object exports) { return exports; }
NODE_API_MODULE(tallow, Init)

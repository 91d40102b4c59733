{
  "targets": [
    {
      "target_name": "tallow",
      "sources": ["native/addon.cc", "native/journal.cc", "native/systemd.cc", "native/memory.cc", "native/rulewatch.cc", "native/stdio.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags libsystemd)"],
      "libraries": ["<!@(pkg-config --libs libsystemd)"]
    }
  ]
}

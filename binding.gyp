{
  "targets": [
    {
      "target_name": "tallow",
      "sources": ["native/addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "<!@(pkg-config --cflags libsystemd)"],
      "libraries": ["<!@(pkg-config --libs libsystemd)"]
    }
  ]
}

{
  "targets": [
    {
      "target_name": "passt_native",
      "sources": [
        "src/addon.cc",
        "src/io.cc",
        "src/sock.cc",
        "src/ns.cc",
        "src/csum.cc",
        "src/isolate.cc",
        "src/vu.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"],
      "libraries": ["-lpthread"]
    },
    {
      "target_name": "pasta-helper",
      "type": "executable",
      "sources": ["src/helper.cc"],
      "defines": ["_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror"]
    }
  ]
}

#include "common/http_module.h"

#include <dlfcn.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace zb {
namespace {

constexpr const char* kModuleFile = "libzbatch_http.so";

struct Loaded {
  void* handle = nullptr;
  std::string error;
};

std::vector<std::filesystem::path> candidates() {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(exe.parent_path() / kModuleFile);
    out.push_back(exe.parent_path() / ".." / "lib" / "zbatch" / kModuleFile);
  }
#ifdef ZBATCH_HTTP_MODULE_BUILT
  // Programs of the build tree that are not the zbatch binary (tests, examples).
  out.push_back(ZBATCH_HTTP_MODULE_BUILT);
#endif
  return out;
}

const Loaded& module() {
  static const Loaded loaded = [] {
    Loaded l;
    std::string tried;
    for (const auto& path : candidates()) {
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) {
        tried += (tried.empty() ? "" : ", ") + path.string();
        continue;
      }
      l.handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (l.handle) return l;
      const char* why = dlerror();
      l.error = "cannot load " + path.string() + ": " + (why ? why : "unknown error");
      return l;
    }
    l.error = std::string("the HTTP module ") + kModuleFile + " is not installed (looked for " + tried + ")";
    return l;
  }();
  return loaded;
}

}  // namespace

Result<void*> http_module_symbol(const char* name) {
  const Loaded& m = module();
  if (!m.handle) return Status(Code::kUnavailable, m.error);
  static std::mutex mu;  // dlerror() is per thread, dlsym itself is thread-safe; keep the pair together
  std::lock_guard lock(mu);
  dlerror();
  void* address = dlsym(m.handle, name);
  if (!address) {
    const char* why = dlerror();
    return Status(Code::kUnavailable, std::string("the HTTP module has no ") + name + ": " + (why ? why : "null symbol"));
  }
  return address;
}

}  // namespace zb

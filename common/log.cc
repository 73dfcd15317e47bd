#include "common/log.h"

#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace zb {

Status init_logging(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off")
    return Status(Code::kBadRequest, "log level must be trace|debug|info|warn|error|off, got '" +
                                         std::string(level) + "'");
  // stderr, so that a command's output (ids, results, JSON) stays alone on stdout.
  static const bool to_stderr = [] {
    spdlog::set_default_logger(spdlog::stderr_color_mt("zbatch"));
    return true;
  }();
  (void)to_stderr;
  spdlog::set_level(parsed);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e level=%l %v");
  return Status::ok();
}

}  // namespace zb

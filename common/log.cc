#include "common/log.h"

#include <string>

namespace zb {

Status init_logging(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off")
    return Status(Code::kBadRequest, "log level must be trace|debug|info|warn|error|off, got '" +
                                         std::string(level) + "'");
  spdlog::set_level(parsed);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e level=%l %v");
  return Status::ok();
}

}  // namespace zb

// Logging: spdlog, one line per event with key=value fields, to stderr. The default level is
// info; nothing is logged per task at info. The level comes from --log-level or ZBATCH_LOG_LEVEL.
#pragma once

#include <string_view>

#include <spdlog/spdlog.h>

#include "common/status.h"

namespace zb {

// trace|debug|info|warn|error|off. Sets the process-wide level and pattern.
Status init_logging(std::string_view level);

}  // namespace zb

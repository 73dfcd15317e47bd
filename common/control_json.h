// The JSON view of the router's control replies (common/protocol.h, ControlResult): what the
// HTTP API answers for inspection and control (docs/openapi.yaml) and what the command line's
// `--json` prints, so a script reads the same fields from either. router/router.h lists the
// fields of each operation's reply.
//
// Text from peers (worker names, errors) goes in as it is; write the JSON with json_text()
// (common/text.h), which replaces bytes that are not UTF-8.
#pragma once

#include <nlohmann/json.hpp>

#include "common/protocol.h"

namespace zb {

// The reply's object; null for an empty (monostate) reply.
nlohmann::json control_json(const proto::ControlResult& reply);

}  // namespace zb

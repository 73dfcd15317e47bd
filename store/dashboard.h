// The dashboard (internal to store/): static files compiled in from store/dashboard/, and the
// endpoints it browses with. See docs/DASHBOARD.md.
#pragma once

#include <string_view>
#include <vector>

#include <httplib.h>

#include "store/http_api.h"
#include "store/status_db.h"

namespace zb::store {

struct Asset {
  std::string_view path;          // relative to store/dashboard/, e.g. "app.js"
  std::string_view content_type;
  std::string_view data;
};
// Generated at build time (store/dashboard/embed.cmake).
const std::vector<Asset>& dashboard_assets();

void install_dashboard(HttpServer& server, StatusDb& db);

}  // namespace zb::store

#include "store/routes.h"

#include <algorithm>

namespace zb::store {
namespace {

// The table. Patterns are exactly those installed by batch_routes.cc, export_routes.cc, task_routes.cc,
// control_routes.cc, metrics_routes.cc, dashboard.cc, event_stream.cc and task_output.cc (tests/python/role_matrix_test.py reads this list and calls each route
// with each role).
constexpr RouteSpec kRoutes[] = {
    // Probes: open, whatever the authentication.
    {"GET", "/healthz", Role::kNone},
    {"GET", "/readyz", Role::kNone},
    // Reading: status, inspection, events, metrics, the dashboard.
    {"GET", "/", Role::kRead},
    {"GET", "/dashboard/*", Role::kRead},
    {"GET", "/batch/celery/task/([^/]+)", Role::kRead},
    {"GET", "/batch/celery/group/([^/]+)", Role::kRead},
    {"GET", "/batch/task/([^/]+)", Role::kRead},
    {"GET", "/batch/group/([^/]+)", Role::kRead},
    {"GET", "/api/v1/tasks", Role::kRead},
    {"GET", "/api/v1/tasks/([^/]+)", Role::kRead},
    {"GET", "/api/v1/tasks/([^/]+)/events", Role::kRead},
    {"GET", "/api/v1/groups", Role::kRead},
    {"GET", "/api/v1/webhooks/deliveries", Role::kRead},
    {"GET", "/api/v1/groups/([^/]+)", Role::kRead},
    {"GET", "/api/v1/groups/([^/]+)/export", Role::kRead, /*streams=*/true},
    {"GET", "/api/v1/dead", Role::kRead},
    {"GET", "/api/v1/workers", Role::kRead},
    {"GET", "/api/v1/queues", Role::kRead},
    {"GET", "/api/v1/ping", Role::kRead},
    {"GET", "/api/v1/inspect/([^/]+)", Role::kRead},
    {"GET", "/api/v1/stats", Role::kRead},
    {"GET", "/api/v1/series", Role::kRead},
    {"GET", "/api/v1/schedules", Role::kRead},
    {"GET", "/api/v1/schedules/([^/]+)", Role::kRead},
    {"GET", "/api/v1/events", Role::kRead, /*streams=*/true},
    {"GET", "/api/v1/tasks/([^/]+)/stream", Role::kRead, /*streams=*/true},
    {"GET", "/metrics", Role::kRead},
    // Submitting.
    {"POST", "/batch/celery/agent-tasks", Role::kSubmit},
    {"POST", "/batch/celery/validation", Role::kSubmit},
    {"POST", "/batch/celery/tests", Role::kSubmit},
    {"POST", "/batch/celery/mcp-operations", Role::kSubmit},
    {"POST", "/batch/agent-tasks", Role::kSubmit},
    {"POST", "/batch/validation", Role::kSubmit},
    {"POST", "/batch/tests", Role::kSubmit},
    {"POST", "/batch/mcp-operations", Role::kSubmit},
    {"POST", "/api/v1/tasks", Role::kSubmit},
    // Administering.
    {"POST", "/api/v1/purge", Role::kAdmin},
    {"POST", "/api/v1/dead/retry", Role::kAdmin},
    {"POST", "/api/v1/tasks/([^/]+)/revoke", Role::kAdmin},
    {"POST", "/api/v1/tasks/([^/]+)/retry", Role::kAdmin},
    {"POST", "/api/v1/groups/([^/]+)/revoke", Role::kAdmin},
    {"POST", "/api/v1/workers/([^/]+)/shutdown", Role::kAdmin},
    {"POST", "/api/v1/workers/([^/]+)/pool", Role::kAdmin},
    {"POST", "/api/v1/schedules", Role::kAdmin},
    {"POST", "/api/v1/schedules/([^/]+)/pause", Role::kAdmin},
    {"POST", "/api/v1/schedules/([^/]+)/resume", Role::kAdmin},
    {"POST", "/api/v1/schedules/([^/]+)/run", Role::kAdmin},
    {"POST", "/api/v1/schedules/([^/]+)/delete", Role::kAdmin},
};

bool covers(const RouteSpec& spec, std::string_view method, std::string_view pattern) {
  if (spec.method != method) return false;
  if (spec.pattern.ends_with('*')) return pattern.starts_with(spec.pattern.substr(0, spec.pattern.size() - 1));
  return spec.pattern == pattern;
}

// HEAD is answered by the GET routes.
std::string_view routing_method(const std::string& method) {
  if (method == "HEAD") return "GET";
  return method;
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::kNone: return "none";
    case Role::kRead: return "read";
    case Role::kSubmit: return "submit";
    case Role::kAdmin: return "admin";
  }
  return "none";
}

std::optional<Role> parse_role(std::string_view name) {
  if (name == "read") return Role::kRead;
  if (name == "submit") return Role::kSubmit;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

std::span<const RouteSpec> route_specs() { return kRoutes; }

const RouteSpec* RouteTable::install(std::string_view method, const std::string& pattern) {
  const auto it = std::find_if(std::begin(kRoutes), std::end(kRoutes),
                               [&](const RouteSpec& spec) { return covers(spec, method, pattern); });
  if (it == std::end(kRoutes)) {
    unknown_.push_back(std::string(method) + " " + pattern);
    return nullptr;
  }
  installed_.push_back({std::string(method), std::regex(pattern), &*it});
  used_.insert(&*it);
  return &*it;
}

Role RouteTable::role_for(const std::string& method, const std::string& path) const {
  const std::string_view m = routing_method(method);
  for (const auto& r : installed_)
    if (r.method == m && std::regex_match(path, r.pattern)) return r.spec->role;
  return Role::kRead;
}

bool RouteTable::streams(const std::string& method, const std::string& path) const {
  const std::string_view m = routing_method(method);
  for (const auto& r : installed_)
    if (r.spec->streams && r.method == m && std::regex_match(path, r.pattern)) return true;
  return false;
}

Status RouteTable::complete() const {
  std::string problems;
  for (const auto& u : unknown_) problems += (problems.empty() ? "" : "; ") + u + " has no entry in the route table";
  for (const auto& spec : kRoutes)
    if (!used_.count(&spec))
      problems += (problems.empty() ? "" : "; ") + std::string(spec.method) + " " + std::string(spec.pattern) +
                  " is in the route table but not installed";
  if (!problems.empty()) return Status(Code::kInternal, "store routes (store/routes.cc): " + problems);
  return Status::ok();
}

}  // namespace zb::store

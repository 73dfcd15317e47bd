// Every route the store serves and what it takes to be served (internal to store/): the role
// a credential must have, and whether the answer is an endless stream, which runs on a thread
// of its own instead of the request pool.
//
// The table (route_specs(), in routes.cc) is the one place this lives. A route installed
// without an entry, or an entry that nothing installs, stops the store at start-up
// (RouteTable::complete), so no route can be served without a role.
#pragma once

#include <optional>
#include <regex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace zb::store {

// Each role includes the ones before it: submit can read, admin can submit.
enum class Role : unsigned char {
  kNone,    // open to everyone, even with authentication on (the probes)
  kRead,    // status, inspection, events, the dashboard's pages
  kSubmit,  // read + submissions
  kAdmin,   // submit + purge, revoke, retry, dead-letter retry, worker pool and shutdown
};
const char* role_name(Role role);
// "read", "submit" or "admin".
std::optional<Role> parse_role(std::string_view name);

struct RouteSpec {
  std::string_view method;   // "GET" (which answers HEAD too) or "POST"
  std::string_view pattern;  // as installed; one ending in '*' covers every pattern with that prefix
  Role role;
  bool streams = false;      // Server-Sent Events: served on a stream thread
};
std::span<const RouteSpec> route_specs();

// The routes installed on a server, in the order it matches them. Not thread-safe while
// routes are installed; read-only (and so thread-safe) once the server runs.
class RouteTable {
 public:
  // The table's entry for the pattern; nullptr (and remembered for complete()) when none.
  const RouteSpec* install(std::string_view method, const std::string& pattern);
  // The role a request needs: that of the first installed route matching it. A path no route
  // serves needs kRead: credentials first, then the 404.
  Role role_for(const std::string& method, const std::string& path) const;
  // Whether the request goes to a streaming route.
  bool streams(const std::string& method, const std::string& path) const;
  // Every installed route has an entry, and every entry was installed.
  Status complete() const;

 private:
  struct Installed {
    std::string method;
    std::regex pattern;
    const RouteSpec* spec;
  };
  std::vector<Installed> installed_;
  std::vector<std::string> unknown_;
  std::set<const RouteSpec*> used_;
};

}  // namespace zb::store

// How the command line prints the router's control replies for people (--json prints them
// as they are). Pure functions of the reply, so that their wording is testable alone.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace zb::cli {

// The text `zbatch inspect <what>` prints for `reply`. A list the router capped carries its
// exact size in "total" beside it: "3689 task(s), showing 1000"; without "total", the list's
// own size. Fields of unexpected types print as they are, never throw; messages (errors) are
// printed whole, each long one on its own line.
std::string format_inspect(const std::string& what, const nlohmann::json& reply);

// "3 task(s)" when `total` tasks are all shown, else "3689 task(s), showing 1000".
std::string task_count(uint64_t total, size_t shown);

}  // namespace zb::cli

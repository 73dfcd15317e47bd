// The command line on its own (no cluster): help pages, the version, global options, the
// configuration file and its example, and how inspect replies are printed.
#include <gtest/gtest.h>
#include <toml++/toml.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/format.h"
#include "tests/support/harness.h"

namespace zb::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

CommandResult zbatch(std::vector<std::string> args, std::map<std::string, std::string> env = {},
                     const std::string& input = {}) {
  std::vector<std::string> argv = {ZBATCH_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, 30s, input, std::move(env));
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string l; std::getline(ss, l);) out.push_back(l);
  return out;
}

// The sub-commands `zbatch help` lists under "Subcommands:".
std::vector<std::string> listed_commands(const std::string& help) {
  std::vector<std::string> out;
  bool in_list = false;
  for (const auto& l : lines(help)) {
    if (l == "Subcommands:") {
      in_list = true;
    } else if (in_list) {
      if (l.find_first_not_of(' ') == std::string::npos) break;
      std::istringstream words(l);
      std::string name;
      words >> name;
      out.push_back(name);
    }
  }
  return out;
}

const std::vector<std::string> kCommands = {"router", "worker", "store", "up",     "config", "submit",
                                            "status", "group",  "wait",  "inspect", "purge", "revoke",
                                            "retry",  "ping",   "schedule", "keygen", "bench", "help"};

TEST(CliHelp, HelpListsEveryCommandAndExitsZero) {
  auto r = zbatch({"help"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(listed_commands(r.out), kCommands) << r.out;
  EXPECT_NE(r.out.find("Examples:"), std::string::npos) << r.out;
}

TEST(CliHelp, BareZbatchListsTheCommandsWithTheUsageExitCode) {
  auto r = zbatch({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(listed_commands(r.err), kCommands) << r.err;
}

TEST(CliHelp, HelpOfOneCommandIsItsPage) {
  auto r = zbatch({"help", "submit"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Usage: zbatch submit"), std::string::npos) << r.out;
  auto unknown = zbatch({"help", "sumbit"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("no command 'sumbit'"), std::string::npos) << unknown.err;
}

TEST(CliHelp, ACommandsOwnNotesStayBeforeItsExamples) {
  auto r = zbatch({"config", "--help"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t notes = r.out.find("flags and ZBATCH_* environment variables are not applied");
  ASSERT_NE(notes, std::string::npos) << r.out;
  EXPECT_LT(notes, r.out.find("Examples:\n  zbatch config")) << r.out;
}

TEST(CliHelp, VersionIsTheProjectVersion) {
  auto r = zbatch({"--version"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "zbatch " ZBATCH_VERSION "\n");
}

// Every option that takes a value shows its default: CLI11's "=value" after the type, or the
// description says what happens without it ("default: ..."). Flags are off unless given.
TEST(CliHelp, EveryHelpPageShowsDefaultsAndAnExample) {
  for (const auto& command : kCommands) {
    auto r = zbatch({command, "--help"});
    ASSERT_EQ(r.exit_code, 0) << command << ": " << r.err;
    EXPECT_NE(r.out.find("Examples:\n  zbatch " + command), std::string::npos) << r.out;
    // Entries: a line indented by two spaces, then its description lines (indented deeper).
    std::vector<std::string> entries;
    bool in_section = false;
    for (const auto& l : lines(r.out)) {
      if (l == "Options:" || l == "Positionals:") {
        in_section = true;
      } else if (l.empty()) {
        in_section = false;
      } else if (in_section && l.rfind("   ", 0) == 0 && !entries.empty()) {
        entries.back() += "\n" + l;
      } else if (in_section && l.rfind("  ", 0) == 0) {
        entries.push_back(l);
      }
    }
    ASSERT_FALSE(entries.empty()) << command << ":\n" << r.out;
    static const std::regex kTakesValue(R"(^ +\S+ (TEXT|INT|UINT|FLOAT))");
    for (const auto& e : entries) {
      const std::string signature = e.substr(0, e.find('\n'));
      if (!std::regex_search(signature, kTakesValue) || signature.find("REQUIRED") != std::string::npos) continue;
      const std::string before_env = signature.substr(0, signature.find("(Env:"));
      std::string lower = e;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      EXPECT_TRUE(before_env.find('=') != std::string::npos || lower.find("default") != std::string::npos)
          << "zbatch " << command << " --help does not show the default of:\n" << e;
    }
  }
}

TEST(CliOptions, LogLevelTakesOursAndCeleryNamesBeforeOrAfterTheCommand) {
  // `config --defaults` needs no router: the exit code says whether the option was accepted.
  for (std::vector<std::string> args :
       {std::vector<std::string>{"--log-level", "debug", "config", "--defaults"},
        {"config", "--defaults", "--log-level", "warn"},
        {"config", "--defaults", "--loglevel", "WARNING"},
        {"config", "--defaults", "-l", "CRITICAL"},
        {"-l", "Info", "config", "--defaults"},
        {"config", "--defaults", "--loglevel=ERROR"},
        {"config", "--defaults", "-l", "fatal"},
        {"config", "--defaults", "-l", "off"}}) {
    auto r = zbatch(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.exit_code, 0) << joined << ": " << r.err;
  }
  auto bad = zbatch({"config", "--defaults", "--loglevel", "chatty"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("got 'chatty'"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("WARNING"), std::string::npos) << bad.err;
  auto env = zbatch({"config", "--defaults"}, {{"ZBATCH_LOG_LEVEL", "WARNING"}});
  EXPECT_EQ(env.exit_code, 0) << env.err;
}

TEST(CliOptions, GlobalOptionsRefuseCommandsTheyDoNotApplyTo) {
  auto json_up = zbatch({"up", "--json"});
  EXPECT_EQ(json_up.exit_code, 2);
  EXPECT_NE(json_up.err.find("--json does not apply to `zbatch up`"), std::string::npos) << json_up.err;
  auto config_ping = zbatch({"--config", "z.toml", "ping"});
  EXPECT_EQ(config_ping.exit_code, 2);
  EXPECT_NE(config_ping.err.find("--config does not apply to `zbatch ping`"), std::string::npos) << config_ping.err;
}

// ---------------------------------------------------------------------------------------------
// The configuration file and its example.

std::string example_path() { return std::string(ZBATCH_SOURCE_DIR) + "/zbatch.example.toml"; }

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The example with its commented-out tables switched on: a line "#[table]" starts one, and
// each following line that starts with '#' belongs to it (the '#' is dropped) until a line
// that does not.
std::string with_examples_enabled(const std::string& text) {
  std::string out;
  bool in_table = false;
  for (const auto& l : lines(text)) {
    if (l.rfind("#[", 0) == 0) in_table = true;
    else if (l.empty() || l[0] != '#') in_table = false;
    out += (in_table ? l.substr(1) : l) + "\n";
  }
  return out;
}

json config_of(const std::vector<std::string>& args) {
  auto r = zbatch(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

TEST(CliConfig, TheExampleLoadsAsTheBuiltInDefaults) {
  const json defaults = config_of({"config", "--defaults"});
  const json example = config_of({"config", example_path()});
  EXPECT_EQ(example, defaults) << "zbatch.example.toml changes the configuration:\n"
                               << json::diff(defaults, example).dump(2);
  // The output is the whole configuration: every section, the seed's queues and kinds.
  for (const char* section : {"router", "worker", "store", "up", "queues", "handlers", "ollama", "validation",
                              "test_profiles", "mcp_servers", "schedules"})
    EXPECT_TRUE(defaults.contains(section)) << section;
  EXPECT_EQ(defaults["router"]["frontend"], "tcp://127.0.0.1:5555");
  EXPECT_EQ(defaults["worker"]["router"], "tcp://127.0.0.1:5556");
  EXPECT_EQ(defaults["worker"]["prefetch_multiplier"], 0);
  EXPECT_EQ(defaults["store"]["http"], "127.0.0.1:8000");
  EXPECT_EQ(defaults["up"]["workers"], 1);
  ASSERT_EQ(defaults["queues"].size(), 7u);
  std::map<std::string, std::string> kinds;
  for (const auto& q : defaults["queues"]) kinds[q["name"]] = q["handler"];
  EXPECT_EQ(kinds["agent_tasks"], "agent");
  EXPECT_EQ(kinds["validation"], "validate");
  EXPECT_EQ(kinds["tests"], "test");
  EXPECT_EQ(kinds["mcp_operations"], "mcp");
  EXPECT_TRUE(defaults["handlers"].empty());
}

TEST(CliConfig, TheConfigurationShowsWhatAFileChanges) {
  TempDir dir;
  const std::string path = dir.str() + "/z.toml";
  std::ofstream(path) << "[worker]\nprefetch_multiplier = 1\nqueues = \"agent_tasks\"\n"
                         "[up]\nworkers = 3\n[router]\ndurability = \"nosync\"\n"
                         "[[queue]]\nname = \"agent_tasks\"\nretry_on = [\"*\"]\nrate_limit = \"600/m\"\n"
                         "[ollama]\nmodel = \"qwen2.5\"\n";
  const json defaults = config_of({"config", "--defaults"});
  const json changed = config_of({"config", path});
  json expected = defaults;
  expected["worker"]["prefetch_multiplier"] = 1;
  expected["worker"]["queues"] = "agent_tasks";
  expected["up"]["workers"] = 3;
  expected["router"]["durability"] = "nosync";
  expected["ollama"]["model"] = "qwen2.5";
  for (auto& q : expected["queues"])
    if (q["name"] == "agent_tasks") {
      q["retry_on"] = json::array({"*"});
      q["rate_limit"] = 10.0;
    }
  EXPECT_EQ(changed, expected) << json::diff(expected, changed).dump(2);
  auto none = zbatch({"config"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("--defaults"), std::string::npos) << none.err;
}

TEST(CliConfig, AScheduleIsACronOrAnIntervalAndBadOnesAreRefusedByName) {
  TempDir dir;
  const std::string path = dir.str() + "/z.toml";
  std::ofstream(path) << "[[schedule]]\nname = \"n\"\ncron = \"@hourly\"\ntimezone = \"America/New_York\"\n"
                         "payload = '{\"a\": [1, 2]}'\nqueue = \"low_priority\"\n";
  const json schedules = config_of({"config", path})["schedules"];
  ASSERT_EQ(schedules.size(), 1u);
  EXPECT_EQ(schedules[0]["timezone"], "America/New_York");
  EXPECT_EQ(schedules[0]["task"]["payload"], json::parse(R"({"a": [1, 2]})"));
  auto refused = [&](const std::string& table, const std::string& message) {
    std::ofstream(path) << table;
    auto r = zbatch({"config", path});
    EXPECT_EQ(r.exit_code, 2) << table;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  };
  refused("[[schedule]]\nname = \"a\"\nevery = 5\ncron = \"* * * * *\"\n", "give either cron or every");
  refused("[[schedule]]\nname = \"a\"\n", "give either cron or every");
  refused("[[schedule]]\nname = \"a\"\ncron = \"*/0 * * * *\"\n", "minute: step 0 must be 1..59");
  refused("[[schedule]]\nname = \"a\"\ncron = \"61 * * * *\"\n", "minute: 61 is out of range");
  refused("[[schedule]]\nname = \"a\"\nevery = 0.5\n", "[[schedule]] 'a' every must be seconds");
  refused("[[schedule]]\nname = \"a\"\nevery = 5\ncatch_up = \"some\"\n", "catch_up must be one, all or none");
  refused("[[schedule]]\nname = \"a\"\nevery = 5\nevry = 5\n", "evry is not a known key");
  refused("[[schedule]]\nname = \"a\"\nevery = 5\npayload = \"{not json\"\n", "payload must be JSON text or a table");
  refused("[[schedule]]\nname = \"a/b\"\nevery = 5\n", "a schedule name holds only");
  refused("[[schedule]]\nevery = 5\n", "[[schedule]] needs a name");
  refused("[[schedule]]\nname = \"a\"\nevery = 5\n[[schedule]]\nname = \"a\"\nevery = 6\n", "'a' is declared twice");
  refused("schedule = 5\n", "[[schedule]] must be an array of tables");
}

TEST(CliConfig, AnMcpServerIsAProgramOrAUrl) {
  TempDir dir;
  const std::string path = dir.str() + "/z.toml";
  std::ofstream(path) << "[[mcp_server]]\nname = \"remote\"\nurl = \"https://mcp.example.com:8443/mcp\"\n"
                         "connect_timeout = 2.5\ncall_timeout = 90\n";
  const json servers = config_of({"config", path})["mcp_servers"];
  ASSERT_EQ(servers.size(), 1u);
  EXPECT_EQ(servers[0]["url"], "https://mcp.example.com:8443/mcp");
  EXPECT_EQ(servers[0]["argv"], json::array());
  EXPECT_EQ(servers[0]["connect_timeout_ms"], 2500);
  EXPECT_EQ(servers[0]["call_timeout_ms"], 90000);
  auto refused = [&](const std::string& table, const std::string& message) {
    std::ofstream(path) << "[[mcp_server]]\nname = \"m\"\n" << table;
    auto r = zbatch({"config", path});
    EXPECT_EQ(r.exit_code, 2) << table;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  };
  refused("", "[[mcp_server]] needs a name, and argv (a server over stdio) or url (over HTTP)");
  refused("argv = [\"srv\"]\nurl = \"http://127.0.0.1:1/mcp\"\n", "[[mcp_server]] 'm' has argv and url: give one");
  for (const char* url : {"ftp://host/mcp", "http:///mcp", "http://:80/mcp", "http://host/a b", "127.0.0.1:3001/mcp"})
    refused("url = \"" + std::string(url) + "\"\n", "[[mcp_server]] url must be an http:// or https:// URL");
  refused("url = \"http://h/mcp\"\nconnect_timeout = 0\n", "[[mcp_server]] connect_timeout must be seconds");
}

TEST(CliConfig, AModelPoolNamesItsServersAndItsQueuesAreChecked) {
  TempDir dir;
  const std::string path = dir.str() + "/z.toml";
  std::ofstream(path) << "[[pool]]\nname = \"coder\"\nmodel = \"m\"\nhosts = [\"gpu1\", \"http://gpu2:8080/\"]\nparallel = 3\n"
                         "[[queue]]\nname = \"agent_tasks\"\npool = \"coder\"\n";
  const json c = config_of({"config", path});
  ASSERT_EQ(c["pools"].size(), 1u);
  EXPECT_EQ(c["pools"][0]["hosts"], json::array({"http://gpu1:11434", "http://gpu2:8080"})) << "one form for each server";
  EXPECT_EQ(c["pools"][0]["parallel"], 3);
  for (const auto& q : c["queues"]) {
    if (q["name"] != "agent_tasks") continue;
    EXPECT_EQ(q["pool"], "coder");
    EXPECT_EQ(q["fair"], true) << "the seed's agent queue takes batches in turns";
  }
  auto refused = [&](const std::string& text, const std::string& message) {
    std::ofstream(path) << text;
    auto r = zbatch({"config", path});
    EXPECT_EQ(r.exit_code, 2) << text;
    EXPECT_NE(r.err.find(message), std::string::npos) << text << r.err;
  };
  const std::string pool = "[[pool]]\nname = \"p\"\nmodel = \"m\"\n";
  refused(pool, "pool 'p': needs 1 to 64 hosts");
  refused("[[pool]]\nname = \"p\"\nhosts = [\"a\"]\n", "pool 'p': needs a model");
  refused(pool + "hosts = [\"a\", \"http://a:11434\"]\n", "pool 'p': names a host twice");
  refused(pool + "hosts = [\"a b\"]\n", "[[pool]] 'p' hosts must be an array of Ollama addresses");
  refused(pool + "hosts = [\"\"]\n", "[[pool]] 'p' hosts must be an array of Ollama addresses");
  refused(pool + "hosts = \"a\"\n", "[[pool]] 'p' hosts must be an array of 1 to 64 Ollama addresses");
  refused(pool + "hosts = [\"a\"]\nparallel = 0\n", "[[pool]] 'p' parallel must be an integer 1..1024");
  refused(pool + "hosts = [\"a\"]\nparalel = 2\n", "paralel is not a known key");
  refused(pool + "hosts = [\"a\"]\n" + pool + "hosts = [\"b\"]\n", "pool 'p': is declared twice");
  refused("[[pool]]\nmodel = \"m\"\nhosts = [\"a\"]\n", "[[pool]] needs a name");
  refused("pool = 5\n", "[[pool]] must be an array of tables");
  refused("[[queue]]\nname = \"q\"\npool = \"nowhere\"\n", "queue 'q': pool 'nowhere' is not declared");
  refused("[[queue]]\nname = \"q\"\nfair = 1\n", "[[queue]] fair must be true or false");
}

TEST(CliConfig, TheExampleNamesEveryKeyTheParserAccepts) {
  // The examples it keeps in comments are valid too, and declare queues and handlers of their own.
  TempDir dir;
  const std::string enabled = dir.str() + "/enabled.toml";
  std::ofstream(enabled) << with_examples_enabled(read(example_path()));
  const json on = config_of({"config", enabled});
  std::set<std::string> queues, handlers;
  for (const auto& q : on["queues"]) queues.insert(q["name"]);
  for (const auto& h : on["handlers"]) handlers.insert(h["kind"]);
  EXPECT_TRUE(queues.count("example_exec") && queues.count("example_pool")) << on["queues"].dump();
  EXPECT_EQ(handlers, (std::set<std::string>{"example_exec", "example_pool"}));
  EXPECT_FALSE(on["test_profiles"].empty());
  EXPECT_FALSE(on["mcp_servers"].empty());
  ASSERT_EQ(on["schedules"].size(), 2u) << on["schedules"].dump();
  EXPECT_EQ(on["schedules"][0]["cron"], "30 3 * * *");
  EXPECT_EQ(on["schedules"][0]["task"]["payload"], json({{"scope", "all"}}));
  EXPECT_EQ(on["schedules"][1]["every_ms"], 30000);

  // Keys of the example (both its set values and its enabled examples), per section.
  std::map<std::string, std::set<std::string>> in_example;
  toml::table root;
  try {
    root = toml::parse(with_examples_enabled(read(example_path())));
  } catch (const toml::parse_error& e) {
    FAIL() << "the example with its examples enabled is not TOML: " << e.description();
  }
  for (const auto& [section, node] : root) {
    auto& keys = in_example[std::string(section.str())];
    auto add = [&](const toml::table& t) {
      for (const auto& [k, v] : t) keys.insert(std::string(k.str()));
    };
    if (auto t = node.as_table()) add(*t);
    if (auto arr = node.as_array())
      for (const auto& item : *arr)
        if (auto t = item.as_table()) add(*t);
  }
  const json accepted = config_of({"config", "--keys"});
  std::map<std::string, std::set<std::string>> parser;
  for (const auto& [section, keys] : accepted.items())
    for (const auto& k : keys) parser[section].insert(k.get<std::string>());
  EXPECT_EQ(parser.size(), 13u);  // router, worker, store, up, the six tables, log, schedule, pool
  for (const auto& [section, keys] : parser) {
    for (const auto& k : keys)
      EXPECT_TRUE(in_example[section].count(k)) << "zbatch.example.toml lacks [" << section << "] " << k;
    for (const auto& k : in_example[section])
      EXPECT_TRUE(keys.count(k)) << "zbatch.example.toml has [" << section << "] " << k << ", which the parser refuses";
  }
  for (const auto& [section, keys] : in_example)
    EXPECT_TRUE(parser.count(section)) << "zbatch.example.toml has a section the parser refuses: " << section;
}

// ---------------------------------------------------------------------------------------------
// How inspect replies are printed (cli/format.h).

TEST(CliFormat, InspectQueuesShowsEachModelPoolOnceWithItsServers) {
  const json hosts = json::array({{{"host", "http://a:1"}, {"parallel", 2}, {"running", 1}, {"cooling_ms", 1500}},
                                  {{"host", "http://b:1"}, {"parallel", 2}, {"running", 2}, {"cooling_ms", 0}}});
  json queues = json::array();
  for (const char* name : {"agents", "agents_low"})
    queues.push_back({{"name", name}, {"priority", 5}, {"depth", 0}, {"scheduled", 0}, {"running", 1},
                      {"pool", "coder"}, {"model", "m"}, {"hosts", hosts}});
  const std::string out = cli::format_inspect("queues", {{"queues", queues}});
  EXPECT_EQ(out.find("pool coder (model m):"), out.rfind("pool coder (model m):")) << out;
  EXPECT_NE(out.find("  http://a:1  1/2 running, cooling down 1 s\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  http://b:1  2/2 running\n"), std::string::npos) << out;
}

TEST(CliFormat, ExactTotalsBesideACappedList) {
  json tasks = json::array();
  for (int i = 0; i < 3; ++i) tasks.push_back({{"id", "t" + std::to_string(i)}, {"queue", "default"}, {"kind", "sleep"}});
  EXPECT_EQ(cli::format_inspect("scheduled", {{"tasks", tasks}, {"total", 3689}}).substr(0, 28),
            "3689 task(s), showing 3\n  t0");
  // Without a total, the list's own size.
  EXPECT_EQ(cli::format_inspect("reserved", {{"tasks", tasks}}).substr(0, 11), "3 task(s)\n ");
  // Per worker, each with its own total, and the sum.
  json workers = json::array({{{"name", "w1@a"}, {"tasks", tasks}, {"total", 1500}},
                              {{"name", "w2@b"}, {"tasks", json::array()}}});
  const std::string text = cli::format_inspect("active", {{"workers", workers}});
  EXPECT_EQ(lines(text).at(0), "1500 task(s), showing 3 on 2 worker(s)") << text;
  EXPECT_EQ(lines(text).at(1), "w1@a: 1500 task(s), showing 3") << text;
  EXPECT_NE(text.find("\nw2@b: 0 task(s)\n"), std::string::npos) << text;
  EXPECT_EQ(cli::format_inspect("active", {{"workers", workers}, {"total", 2000}}).substr(0, 24),
            "2000 task(s), showing 3 ");
}

TEST(CliFormat, ErrorsAndLongNamesArePrintedWhole) {
  const std::string error = "OllamaUnavailable: 127.0.0.1:11434: " + std::string(300, 'x') + " the end";
  json failed = {{"total", 1}, {"tasks", json::array({{{"id", "t1"}, {"queue", "agent_tasks"}, {"kind", "agent"},
                                                        {"attempt", 4}, {"error", error}}})}};
  const std::string text = cli::format_inspect("failed", failed);
  EXPECT_NE(text.find("    error: " + error + "\n"), std::string::npos) << text;
  const std::string name(60, 'q');
  json queues = {{"queues", json::array({{{"name", name}, {"priority", 5}, {"depth", 12345678901ull}, {"scheduled", 0},
                                          {"running", 2}}})}};
  const auto rows = lines(cli::format_inspect("queues", queues));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].substr(0, name.size() + 2), name + "  ");
  EXPECT_NE(rows[1].find("12345678901"), std::string::npos);
}

TEST(CliFormat, UnexpectedShapesPrintInsteadOfThrowing) {
  EXPECT_NO_THROW(cli::format_inspect("active", json::array()));
  EXPECT_NO_THROW(cli::format_inspect("stats", {{"router", nullptr}, {"workers", 3}}));
  EXPECT_EQ(cli::format_inspect("scheduled", {{"tasks", json::array({{{"id", 7}, {"queue", nullptr}}})}}),
            "1 task(s)\n  7\n");
}

}  // namespace
}  // namespace zb::testing

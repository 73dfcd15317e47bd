// What an idle deployed process costs: resource ceilings, not timings.
#include "tests/e2e_support.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace zb::testing {
namespace {

// A field of /proc/PID/status in kB (VmRSS, RssAnon, RssFile), or -1.
long status_kb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
  return -1;
}

std::string maps(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The idle worker's figure in docs/BENCHMARKS.md (scripts/measure-worker-rss.sh): 8.9-9.1 MB,
// of which under 1 MB is its own; the rest are pages of the shared libraries it maps. The
// ceiling leaves room for the file pages' variation between runs, not for another library:
// the HTTP side (cpp-httplib, OpenSSL) alone adds more than 3.5 MB.
constexpr long kWorkerIdleRssCeilingKb = 9728;

TEST(Resources, IdleWorkerStaysUnderItsMemoryCeilingAndMapsNoHttpLibraries) {
  if (std::getenv("ZBATCH_SANITIZED")) GTEST_SKIP() << "a sanitizer's shadow memory is not the worker's";
  Cluster cluster;
  cluster.start_router();
  Process& worker = cluster.start_worker(2);
  ASSERT_TRUE(cluster.ready(1)) << cluster.logs();
  const std::string mapped = maps(worker.pid());
  for (const char* library : {"libcrypto", "libssl", "libcpp-httplib", "libzbatch_http"})
    EXPECT_EQ(mapped.find(library), std::string::npos) << library << " is mapped by an idle worker:\n" << mapped;
  const long rss = status_kb(worker.pid(), "VmRSS");
  ASSERT_GT(rss, 0);
  EXPECT_LE(rss, kWorkerIdleRssCeilingKb) << "VmRSS " << rss << " kB (RssAnon " << status_kb(worker.pid(), "RssAnon")
                                          << " kB, RssFile " << status_kb(worker.pid(), "RssFile") << " kB)";
}

}  // namespace
}  // namespace zb::testing

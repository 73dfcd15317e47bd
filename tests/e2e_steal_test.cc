// Work stealing and the adaptive credit window with real processes: with no option set, no
// short task waits behind a long one while another worker has a free slot.
#include "tests/e2e_support.h"

namespace zb::testing {
namespace {

using namespace std::chrono_literals;

// Tasks running on a slot now, over every worker (inspect.active: Started, not just leased).
int running_tasks(Cluster& cluster) {
  auto r = cluster.client()->inspect_active();
  if (!r) return -1;
  int n = 0;
  for (const auto& w : r->workers) n += static_cast<int>(w.tasks.size());
  return n;
}

// The issue's case: two workers with one slot each, a long task, then 200 short ones. The
// worker running the long task holds short ones behind it (its window opened on the warm-up's
// short tasks); the other worker finishes its share, then takes those over.
TEST(Stealing, NoShortTaskWaitsBehindALongOneWithDefaultOptions) {
  Cluster cluster;
  cluster.start_router();
  cluster.start_worker(1);
  cluster.start_worker(1);
  ASSERT_TRUE(cluster.ready(2)) << cluster.logs();
  auto c = cluster.client();
  auto warm = c->submit_group(std::vector<proto::TaskSpec>(400, task("noop", "{}")));
  ASSERT_TRUE(warm) << warm.status().to_string();
  finish(*c, warm->tasks, 20s);

  auto long_id = c->submit(task("sleep", R"({"seconds":4})"));
  ASSERT_TRUE(long_id) << long_id.status().to_string();
  ASSERT_TRUE(wait_until([&] { return running_tasks(cluster) == 1; }, 5s)) << cluster.logs();
  auto shorts = c->submit_group(std::vector<proto::TaskSpec>(200, task("noop", "{}")));
  ASSERT_TRUE(shorts) << shorts.status().to_string();
  auto done = finish(*c, shorts->tasks, 3s);
  ASSERT_EQ(done.size(), 200u) << cluster.logs();

  auto long_task = c->status(*long_id);
  ASSERT_TRUE(long_task);
  EXPECT_EQ(long_task->state, TaskState::kStarted) << "every short task finished while the long one ran";
  for (const auto& r : done) {
    EXPECT_EQ(r.state, TaskState::kSucceeded);
    EXPECT_LE(r.finished_ms - r.created_ms, 1500u) << "a short task waited " << r.finished_ms - r.created_ms << " ms";
    EXPECT_NE(r.worker, long_task->worker) << "none ran behind the long task";
    EXPECT_EQ(r.retries, 0u) << "a recalled task is not a failed attempt";
  }
  EXPECT_EQ(finish_one(*c, *long_id, 10s).attempt, 1u) << "the long task ran once";
}

}  // namespace
}  // namespace zb::testing

// Per-second history of the cluster's work, kept in the store's LMDB (internal to store/): for
// each second, each queue's received/started/succeeded/failed/retried/revoked counts, and
// histograms of queue wait (first attempts) and run time, from which any range's percentiles
// are read. The store's charts show the real past from it — whoever opened the page, however
// long ago — and it survives a store restart with the rest of the status DB.
//
// Layout: the `series` DBI, unix second (8 B BE, the router's event time) → msgpack
// SeriesPoint. Only seconds with events are written. StatusDb::apply gathers a batch's events
// in a SeriesBatch and merges it in the same transaction that advances "applied", so a replay
// never counts an event twice; seconds older than kSeriesRetentionS behind the newest event
// are pruned as new ones come (bounded deletes per batch). Size: about 100 B + 30 B per active
// queue per active second, so at most ~25 MB for a day of every second busy on a few queues.
//
// Histogram buckets are logarithmic (x1.25 from 0.1 ms to ~2.5 h): a percentile read from them
// is the upper edge of its bucket, at most 25 % above the true value.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "common/lmdb.h"
#include "common/status.h"

namespace zb::store {

inline constexpr uint64_t kSeriesRetentionS = 25 * 3600;  // a full day's window, with an hour to spare
inline constexpr size_t kSeriesMaxPoints = 3600;           // points per answer at most (step raised)

struct SeriesCounts {
  uint32_t received = 0, started = 0, succeeded = 0, failed = 0, retried = 0, revoked = 0;
  MSGPACK_DEFINE(received, started, succeeded, failed, retried, revoked);
  void add(const SeriesCounts& o);
};

// Sparse histogram: bucket index → count.
using SeriesHistogram = std::map<uint8_t, uint32_t>;

struct SeriesPoint {
  std::map<std::string, SeriesCounts> queues;
  SeriesHistogram wait_ms, run_ms;
  MSGPACK_DEFINE(queues, wait_ms, run_ms);
  void add(const SeriesPoint& o);
};

enum class SeriesEvent { kReceived, kStarted, kSucceeded, kFailed, kRetried, kRevoked };

// The bucket a duration falls in, and a bucket's upper edge (ms).
uint8_t series_bucket(double ms);
double series_bucket_edge_ms(uint8_t bucket);
// The q-quantile (0 < q <= 1) of a histogram; negative when it is empty.
double series_quantile(const SeriesHistogram& h, double q);

// One apply() batch's events, by second.
class SeriesBatch {
 public:
  void count(uint64_t ts_ms, const std::string& queue, SeriesEvent event);
  void wait(uint64_t ts_ms, double ms);
  void run(uint64_t ts_ms, double ms);
  bool empty() const { return points_.empty(); }
  // Adds the batch to what `dbi` holds, then deletes at most `max_deletes` seconds older than
  // kSeriesRetentionS behind the newest second written.
  Status merge(lmdb::Txn& txn, lmdb::Dbi dbi, size_t max_deletes);

 private:
  std::map<uint64_t, SeriesPoint> points_;
};

// A range read: one entry per step from from_s (aligned down to the step) to until_s, zeros
// where nothing happened.
struct SeriesRange {
  uint64_t from_s = 0, step_s = 1;
  std::vector<SeriesCounts> total;
  std::map<std::string, std::vector<SeriesCounts>> queues;
  std::vector<SeriesHistogram> wait_ms, run_ms;
};
// until_s >= from_s; step_s >= 1 is raised so that at most kSeriesMaxPoints come back.
Result<SeriesRange> read_series(lmdb::Txn& txn, lmdb::Dbi dbi, uint64_t from_s, uint64_t until_s, uint64_t step_s);

}  // namespace zb::store

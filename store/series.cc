#include "store/series.h"

#include <algorithm>
#include <cmath>

#include "common/log.h"

namespace zb::store {
namespace {

constexpr double kFirstEdgeMs = 0.1;
constexpr double kGrowth = 1.25;
constexpr uint8_t kBuckets = 84;  // the last edge is ~2.7 h; longer durations count in it

Result<SeriesPoint> unpack_point(std::string_view bytes) {
  try {
    msgpack::unpack_limit limits(1u << 16, 1u << 16, 1u << 16, 1u << 20, 1u << 16, 8);
    auto h = msgpack::unpack(bytes.data(), bytes.size(), nullptr, nullptr, limits);
    return h.get().as<SeriesPoint>();
  } catch (const std::exception& e) {
    return Status(Code::kIo, std::string("corrupt series point: ") + e.what());
  }
}

std::string pack_point(const SeriesPoint& p) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, p);
  return std::string(buf.data(), buf.size());
}

void add_histogram(SeriesHistogram& into, const SeriesHistogram& from) {
  for (const auto& [b, n] : from) into[b] += n;
}

}  // namespace

void SeriesCounts::add(const SeriesCounts& o) {
  received += o.received;
  started += o.started;
  succeeded += o.succeeded;
  failed += o.failed;
  retried += o.retried;
  revoked += o.revoked;
}

void SeriesPoint::add(const SeriesPoint& o) {
  for (const auto& [name, c] : o.queues) queues[name].add(c);
  add_histogram(wait_ms, o.wait_ms);
  add_histogram(run_ms, o.run_ms);
}

uint8_t series_bucket(double ms) {
  if (!(ms > kFirstEdgeMs)) return 0;  // also NaN
  const double i = std::ceil(std::log(ms / kFirstEdgeMs) / std::log(kGrowth) - 1e-9);
  return static_cast<uint8_t>(std::min<double>(i, kBuckets - 1));
}

double series_bucket_edge_ms(uint8_t bucket) { return kFirstEdgeMs * std::pow(kGrowth, bucket); }

double series_quantile(const SeriesHistogram& h, double q) {
  uint64_t total = 0;
  for (const auto& [b, n] : h) total += n;
  if (total == 0) return -1;
  const double rank = std::max(1.0, std::ceil(q * static_cast<double>(total)));
  uint64_t seen = 0;
  for (const auto& [b, n] : h) {
    seen += n;
    if (static_cast<double>(seen) >= rank) return series_bucket_edge_ms(b);
  }
  return series_bucket_edge_ms(h.rbegin()->first);
}

void SeriesBatch::count(uint64_t ts_ms, const std::string& queue, SeriesEvent event) {
  SeriesCounts& c = points_[ts_ms / 1000].queues[queue];
  switch (event) {
    case SeriesEvent::kReceived: ++c.received; break;
    case SeriesEvent::kStarted: ++c.started; break;
    case SeriesEvent::kSucceeded: ++c.succeeded; break;
    case SeriesEvent::kFailed: ++c.failed; break;
    case SeriesEvent::kRetried: ++c.retried; break;
    case SeriesEvent::kRevoked: ++c.revoked; break;
  }
}

void SeriesBatch::wait(uint64_t ts_ms, double ms) { ++points_[ts_ms / 1000].wait_ms[series_bucket(ms)]; }
void SeriesBatch::run(uint64_t ts_ms, double ms) { ++points_[ts_ms / 1000].run_ms[series_bucket(ms)]; }

Status SeriesBatch::merge(lmdb::Txn& txn, lmdb::Dbi dbi, size_t max_deletes) {
  if (points_.empty()) return Status::ok();
  for (auto& [second, point] : points_) {
    const std::string key = lmdb::be64(second);
    auto old = txn.get(dbi, key);
    if (!old) return old.status();
    if (old->has_value()) {
      auto stored = unpack_point(**old);
      if (stored) point.add(*stored);
      else spdlog::warn("store series point replaced second={} reason=\"{}\"", second, stored.status().message());
    }
    if (Status s = txn.put(dbi, key, pack_point(point)); !s) return s;
  }
  const uint64_t newest = points_.rbegin()->first;
  points_.clear();
  if (newest <= kSeriesRetentionS) return Status::ok();
  const std::string keep_from = lmdb::be64(newest - kSeriesRetentionS);
  std::vector<std::string> old_keys;
  {
    auto c = lmdb::Cursor::open(txn, dbi);
    if (!c) return c.status();
    for (bool ok = c->first(); ok && old_keys.size() < max_deletes && c->key() < keep_from; ok = c->next())
      old_keys.emplace_back(c->key());
  }
  for (const auto& k : old_keys)
    if (Status s = txn.del(dbi, k); !s) return s;
  return Status::ok();
}

Result<SeriesRange> read_series(lmdb::Txn& txn, lmdb::Dbi dbi, uint64_t from_s, uint64_t until_s, uint64_t step_s) {
  SeriesRange out;
  step_s = std::max<uint64_t>(1, step_s);
  const uint64_t span = until_s - from_s + 1;
  if (span / step_s >= kSeriesMaxPoints) step_s = span / kSeriesMaxPoints + 1;
  out.step_s = step_s;
  out.from_s = from_s / step_s * step_s;
  const size_t n = static_cast<size_t>((until_s - out.from_s) / step_s + 1);
  out.total.resize(n);
  out.wait_ms.resize(n);
  out.run_ms.resize(n);
  auto c = lmdb::Cursor::open(txn, dbi);
  if (!c) return c.status();
  for (bool ok = c->seek(lmdb::be64(out.from_s)); ok; ok = c->next()) {
    if (c->key().size() != 8) return Status(Code::kIo, "corrupt series key");
    const uint64_t second = lmdb::from_be64(c->key());
    if (second > until_s) break;
    auto p = unpack_point(c->value());
    if (!p) {
      spdlog::warn("store series point skipped second={} reason=\"{}\"", second, p.status().message());
      continue;
    }
    const size_t i = static_cast<size_t>((second - out.from_s) / step_s);
    for (const auto& [name, counts] : p->queues) {
      out.total[i].add(counts);
      auto& q = out.queues[name];
      if (q.empty()) q.resize(n);
      q[i].add(counts);
    }
    add_histogram(out.wait_ms[i], p->wait_ms);
    add_histogram(out.run_ms[i], p->run_ms);
  }
  return out;
}

}  // namespace zb::store

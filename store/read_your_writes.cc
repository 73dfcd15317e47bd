#include "store/read_your_writes.h"

#include <algorithm>

namespace zb::store {

void ReadYourWrites::acknowledged(uint64_t seq) {
  const uint64_t log = db_.resets();
  std::lock_guard lock(mu_);
  if (log != log_) {
    log_ = log;
    seq_ = 0;
  }
  seq_ = std::max(seq_, seq);
}

uint64_t ReadYourWrites::target() const {
  const uint64_t log = db_.resets();
  uint64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    if (log == log_) seq = seq_;
  }
  return std::max(seq, follower_.head_seq());
}

bool ReadYourWrites::catch_up(std::chrono::milliseconds timeout) const {
  const uint64_t target = this->target();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (db_.applied() < target) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    follower_.wait_applied(target, std::min(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now),
                                            std::chrono::milliseconds(50)));
  }
  return db_.applied() >= target;
}

}  // namespace zb::store

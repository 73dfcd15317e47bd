#include "worker/slots.h"

#include <algorithm>
#include <exception>

#include "common/clock.h"
#include "common/log.h"

namespace zb::worker {
namespace {

// How long past its hard limit an in-process handler may keep its slot.
constexpr auto kAbandonGrace = std::chrono::milliseconds(1000);

}  // namespace
}  // namespace zb::worker

namespace zb {

HandlerResult invoke_handler(const Handler& handler, const TaskContext& ctx) {
  HandlerResult r;
  try {
    r = handler(ctx);
  } catch (const std::exception& e) {
    r = HandlerResult::fail(std::string("HandlerError: handler threw: ") + e.what());
  } catch (...) {
    r = HandlerResult::fail("HandlerError: handler threw a non-standard exception");
  }
  if (r.status == proto::OutcomeStatus::kSucceeded && r.result.empty()) r.result = "null";
  return r;
}

}  // namespace zb

namespace zb::worker {

struct Slots::Shared : std::enable_shared_from_this<Shared> {
  struct Running {
    uint32_t attempt;
    std::shared_ptr<std::atomic<bool>> cancelled;
    bool dropped = false;
    bool started = false;
    bool soft_hit = false;
    Clock::time_point soft_at = Clock::time_point::max();
    Clock::time_point abandon_at = Clock::time_point::max();
    uint32_t soft_limit_ms = 0, hard_limit_ms = 0;
    uint32_t output_seq = 0;  // live output chunks numbered so far
  };

  Shared(const Handlers& h, std::function<void()> w) : handlers(h), wake(std::move(w)) {}

  const Handlers handlers;  // a copy: a thread left behind at stop may outlive the worker
  const std::function<void()> wake;
  mutable std::mutex mu;
  std::condition_variable cv;         // slot threads wait here for work
  std::condition_variable exited_cv;  // the destructor waits here for threads to end
  std::deque<proto::Assignment> queue;
  std::unordered_map<Id, Running, IdHash> running;  // started or queued, by task
  std::vector<proto::Outcome> done;
  std::vector<proto::Claim> started;    // began to run since the last collect()
  std::vector<proto::Claim> abandoned;  // stuck past the hard limit, already failed
  std::vector<proto::OutputChunk> output;  // live output not yet collected
  size_t output_bytes = 0;
  // The earliest soft or abandon time of any started task (steady clock ticks): enforce()
  // does nothing before it.
  std::atomic<Clock::rep> earliest_due{Clock::time_point::max().time_since_epoch().count()};
  size_t busy = 0;
  uint32_t live = 0;    // threads serving (not retiring, not abandoned)
  uint32_t target = 0;
  bool stopping = false;
  bool held = false;
  bool wake_pending = false;
  uint64_t next_thread = 0;
  std::unordered_map<uint64_t, std::thread> threads;  // every thread not yet joined
  std::vector<uint64_t> exited;                       // threads that returned: join them

  void spawn_locked() {
    ++live;
    const uint64_t id = next_thread++;
    threads.emplace(id, std::thread([self = shared_from_this(), id] { self->run_slot(id); }));
  }

  void join_exited_locked() {
    for (uint64_t id : exited) {
      auto t = threads.find(id);
      if (t == threads.end()) continue;
      t->second.join();  // it has returned from run_slot: join does not wait
      threads.erase(t);
    }
    exited.clear();
  }

  void push_done_locked(proto::Outcome outcome) {
    done.push_back(std::move(outcome));
    wake_locked();
  }
  // One wake-up per burst: the loop collects everything that piled up meanwhile.
  void wake_locked() {
    if (!wake_pending) {
      wake_pending = true;
      wake();
    }
  }

  void note_deadline_locked(Clock::time_point at) {
    auto current = earliest_due.load(std::memory_order_relaxed);
    while (at.time_since_epoch().count() < current &&
           !earliest_due.compare_exchange_weak(current, at.time_since_epoch().count(), std::memory_order_release)) {
    }
  }

  void run_slot(uint64_t self_id);

  void write_output(const Id& task, uint32_t attempt, proto::OutputType type, std::string_view text) {
    std::lock_guard lock(mu);
    auto r = running.find(task);
    if (r == running.end() || r->second.dropped || r->second.attempt != attempt) return;
    const auto t = static_cast<uint8_t>(type);
    // Texts and logs join the chunk before them while it is this task's, of the same type,
    // and small; steps stay one per chunk.
    if (!output.empty() && type != proto::OutputType::kStep) {
      auto& last = output.back();
      if (last.task == task && last.attempt == attempt && last.type == t && last.seq == r->second.output_seq &&
          last.text.size() + text.size() <= kJoinBytes) {
        if (output_bytes + text.size() > kMaxPendingOutput) return void(++r->second.output_seq);
        last.text.append(text);
        output_bytes += text.size();
        return;
      }
    }
    const uint32_t seq = ++r->second.output_seq;
    if (output_bytes + text.size() > kMaxPendingOutput) return;  // lost: the seq shows it
    output.push_back({task, attempt, seq, t, std::string(text.substr(0, proto::kMaxOutputChunkBytes)), now_unix_ms()});
    output_bytes += output.back().text.size();
  }

  static constexpr size_t kJoinBytes = 4096;
  static constexpr size_t kMaxPendingOutput = 1u << 20;

  // A running task's OutputSink.
  class Output final : public OutputSink {
   public:
    Output(Shared& shared, const Id& task, uint32_t attempt) : shared_(shared), task_(task), attempt_(attempt) {}
    void write(proto::OutputType type, std::string_view text) override {
      while (!text.empty()) {  // in pieces a chunk can hold
        const size_t n = std::min(text.size(), proto::kMaxOutputChunkBytes);
        shared_.write_output(task_, attempt_, type, text.substr(0, n));
        text.remove_prefix(n);
      }
    }

   private:
    Shared& shared_;
    Id task_;
    uint32_t attempt_;
  };
};

Slots::Slots(uint32_t concurrency, const Handlers& handlers, std::function<void()> wake)
    : s_(std::make_shared<Shared>(handlers, std::move(wake))) {
  std::lock_guard lock(s_->mu);
  s_->target = concurrency;
  for (uint32_t i = 0; i < concurrency; ++i) s_->spawn_locked();
}

Slots::~Slots() {
  std::unique_lock lock(s_->mu);
  s_->stopping = true;
  for (auto& [id, r] : s_->running) r.cancelled->store(true);
  s_->cv.notify_all();
  s_->exited_cv.wait_for(lock, kStopGrace, [&] { return s_->exited.size() == s_->threads.size(); });
  s_->join_exited_locked();
  if (!s_->threads.empty()) {
    spdlog::warn("worker stopping with handlers that ignore cancellation threads={}", s_->threads.size());
    for (auto& [id, t] : s_->threads) t.detach();
    s_->threads.clear();
  }
}

void Slots::hold(bool on) {
  std::lock_guard lock(s_->mu);
  if (s_->held == on) return;
  s_->held = on;
  if (!on) s_->cv.notify_all();
}

void Slots::set_target(uint32_t threads) {
  {
    std::lock_guard lock(s_->mu);
    s_->target = threads;
    while (s_->live < s_->target) s_->spawn_locked();
  }
  s_->cv.notify_all();  // surplus idle threads notice and retire
}

uint32_t Slots::target() const {
  std::lock_guard lock(s_->mu);
  return s_->target;
}

size_t Slots::threads() const {
  std::lock_guard lock(s_->mu);
  return s_->threads.size() - s_->exited.size();
}

void Slots::add(std::vector<proto::Assignment> tasks) {
  {
    std::lock_guard lock(s_->mu);
    for (auto& t : tasks) {
      if (s_->running.count(t.task)) continue;  // never run one task twice at once
      Shared::Running r{t.attempt, std::make_shared<std::atomic<bool>>(false)};
      r.soft_limit_ms = t.soft_limit_ms;
      r.hard_limit_ms = t.hard_limit_ms;
      s_->running.emplace(t.task, std::move(r));
      s_->queue.push_back(std::move(t));
    }
  }
  s_->cv.notify_all();
}

std::vector<proto::Outcome> Slots::collect(std::vector<proto::Claim>* started) {
  std::lock_guard lock(s_->mu);
  s_->wake_pending = false;
  if (!s_->exited.empty()) s_->join_exited_locked();
  if (started) {
    started->insert(started->end(), s_->started.begin(), s_->started.end());
  }
  s_->started.clear();
  return std::exchange(s_->done, {});
}

std::vector<proto::OutputChunk> Slots::collect_output() {
  std::lock_guard lock(s_->mu);
  s_->output_bytes = 0;
  return std::exchange(s_->output, {});
}

std::vector<proto::Claim> Slots::started_claims() const {
  std::lock_guard lock(s_->mu);
  std::vector<proto::Claim> out;
  for (const auto& [id, r] : s_->running)
    if (r.started && !r.dropped) out.push_back({id, r.attempt});
  return out;
}

std::vector<proto::Claim> Slots::claims() const {
  std::lock_guard lock(s_->mu);
  std::vector<proto::Claim> out;
  for (const auto& [id, r] : s_->running)
    if (!r.dropped) out.push_back({id, r.attempt});
  // Finished but not collected yet: neither running nor in the caller's unacknowledged
  // results, and still this worker's to report.
  for (const auto& o : s_->done) out.push_back({o.task, o.attempt});
  return out;
}

std::vector<proto::Assignment> Slots::take_queued() {
  std::lock_guard lock(s_->mu);
  std::vector<proto::Assignment> out(std::make_move_iterator(s_->queue.begin()),
                                     std::make_move_iterator(s_->queue.end()));
  s_->queue.clear();
  for (const auto& a : out) s_->running.erase(a.task);
  return out;
}

std::vector<proto::Assignment> Slots::take_queued(const std::vector<proto::Claim>& claims) {
  std::lock_guard lock(s_->mu);
  std::vector<proto::Assignment> out;
  for (const auto& c : claims) {
    auto r = s_->running.find(c.task);
    if (r == s_->running.end() || r->second.attempt != c.attempt || r->second.started || r->second.dropped) continue;
    auto q = std::find_if(s_->queue.begin(), s_->queue.end(), [&](const proto::Assignment& a) { return a.task == c.task; });
    if (q == s_->queue.end()) continue;
    out.push_back(std::move(*q));
    s_->queue.erase(q);
    s_->running.erase(r);
  }
  return out;
}

void Slots::drop(const std::vector<proto::Claim>& claims) {
  std::lock_guard lock(s_->mu);
  for (const auto& c : claims) {
    auto it = s_->running.find(c.task);
    if (it == s_->running.end() || it->second.attempt != c.attempt) continue;
    if (!it->second.started) {
      // Reserved, not begun: it never runs here (the router gave it, or will give it, to
      // another worker), and no outcome is owed.
      auto q = std::find_if(s_->queue.begin(), s_->queue.end(), [&](const proto::Assignment& a) { return a.task == c.task; });
      if (q != s_->queue.end()) {
        s_->queue.erase(q);
        s_->running.erase(it);
        continue;
      }
    }
    it->second.dropped = true;
    it->second.cancelled->store(true);
  }
}

std::vector<proto::Claim> Slots::cancel_running() {
  std::lock_guard lock(s_->mu);
  std::vector<proto::Claim> out;
  for (auto& [id, r] : s_->running) {
    r.cancelled->store(true);
    if (!r.dropped) out.push_back({id, r.attempt});
    r.dropped = true;  // the caller returns these; a late outcome would contradict it
  }
  return out;
}

Slots::Clock::time_point Slots::enforce(Clock::time_point now) {
  // Nothing falls due before the earliest deadline of any started task: no lock, no scan.
  const auto due = Clock::time_point(Clock::duration(s_->earliest_due.load(std::memory_order_acquire)));
  if (now < due) return due;
  std::vector<proto::Outcome> abandoned;
  Clock::time_point next = Clock::time_point::max();
  {
    std::lock_guard lock(s_->mu);
    for (auto it = s_->running.begin(); it != s_->running.end();) {
      auto& [id, r] = *it;
      if (!r.started || r.dropped) {
        ++it;
        continue;
      }
      if (!r.soft_hit && now >= r.soft_at) {
        r.soft_hit = true;
        r.cancelled->store(true);
      }
      if (now >= r.abandon_at) {
        r.cancelled->store(true);
        s_->abandoned.push_back({id, r.attempt});
        abandoned.push_back({id, r.attempt, proto::OutcomeStatus::kFailed, {},
                             "TimeLimitExceeded: hard time limit of " + std::to_string(r.hard_limit_ms) +
                                 " ms exceeded; the handler did not return and its slot was replaced",
                             static_cast<uint64_t>(r.hard_limit_ms) * 1000});
        // The stuck thread no longer counts; a fresh one keeps the slot count. The stuck one
        // is joined once its handler returns.
        --s_->live;
        --s_->busy;
        if (s_->live < s_->target) s_->spawn_locked();
        it = s_->running.erase(it);
        continue;
      }
      if (!r.soft_hit) next = std::min(next, r.soft_at);
      next = std::min(next, r.abandon_at);
      ++it;
    }
    for (auto& o : abandoned) s_->push_done_locked(std::move(o));
    s_->earliest_due.store(next.time_since_epoch().count(), std::memory_order_release);
  }
  return next;
}

size_t Slots::busy() const {
  std::lock_guard lock(s_->mu);
  return s_->busy;
}

size_t Slots::queued() const {
  std::lock_guard lock(s_->mu);
  return s_->queue.size();
}

size_t Slots::pending() const {
  std::lock_guard lock(s_->mu);
  return s_->running.size();
}

void Slots::Shared::run_slot(uint64_t self_id) {
  std::unique_lock lock(mu);
  // However this thread ends, it says so, so that it is joined (never leaked).
  struct Exit {
    Shared& s;
    uint64_t id;
    ~Exit() {
      s.exited.push_back(id);
      s.exited_cv.notify_all();
    }
  } exit{*this, self_id};
  for (;;) {
    cv.wait(lock, [&] { return stopping || (!held && !queue.empty()) || live > target; });
    if (stopping) return;
    if (live > target) {  // shrink: retire
      --live;
      return;
    }
    proto::Assignment task = std::move(queue.front());
    queue.pop_front();
    auto& entry = running.at(task.task);
    auto cancelled = entry.cancelled;
    const auto start = Clock::now();
    entry.started = true;
    if (task.soft_limit_ms) entry.soft_at = start + std::chrono::milliseconds(task.soft_limit_ms);
    if (task.hard_limit_ms) entry.abandon_at = start + std::chrono::milliseconds(task.hard_limit_ms) + kAbandonGrace;
    note_deadline_locked(std::min(entry.soft_at, entry.abandon_at));  // the loop looks at least every 100 ms
    ++busy;
    started.push_back({task.task, task.attempt});
    wake_locked();
    lock.unlock();

    proto::Outcome outcome{task.task, task.attempt, proto::OutcomeStatus::kSucceeded, {}, {}, 0, 0, 0};
    auto handler = handlers.find(task.kind);
    if (handler == handlers.end()) {
      outcome.status = proto::OutcomeStatus::kFailed;
      outcome.error = "UnknownKind: no handler for kind '" + task.kind + "' on this worker";
    } else {
      Output output(*this, task.task, task.attempt);
      TaskContext ctx{task.task, task.attempt, task.group, task.ref, task.queue, task.kind,
                      task.payload, cancelled.get(), task.soft_limit_ms, task.hard_limit_ms, start,
                      task.trace, task.inputs, &output, task.endpoint, task.model};
      // A traced task is logged with its trace, so that the worker's log joins the trace.
      if (!task.trace.empty())
        spdlog::info("worker task={} attempt={} kind={} started traceparent={}", task.task.to_string(), task.attempt,
                     task.kind, task.trace);
      HandlerResult r = invoke_handler(handler->second, ctx);
      if (!task.trace.empty())
        spdlog::info("worker task={} attempt={} ended outcome={} traceparent={}", task.task.to_string(), task.attempt,
                     r.status == proto::OutcomeStatus::kSucceeded ? "succeeded"
                     : r.status == proto::OutcomeStatus::kRetry  ? "retry"
                     : r.status == proto::OutcomeStatus::kFailed ? "failed"
                                                                 : "returned",
                     task.trace);
      outcome.status = r.status;
      outcome.result = std::move(r.result);
      outcome.error = std::move(r.error);
      if (r.status == proto::OutcomeStatus::kRetry) {
        outcome.retry_after_ms = r.retry_after_ms;
        outcome.host_cooldown_ms = r.host_cooldown_ms;
      }
      outcome.tokens = r.tokens;
    }
    outcome.runtime_us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());

    lock.lock();
    if (auto a = std::find(abandoned.begin(), abandoned.end(), proto::Claim{task.task, task.attempt});
        a != abandoned.end()) {
      abandoned.erase(a);  // failed at the hard limit and replaced: the result is dropped
      return;
    }
    --busy;
    auto it = running.find(task.task);
    bool dropped = it == running.end() || it->second.dropped;
    if (!dropped && it->second.soft_hit && outcome.status != proto::OutcomeStatus::kSucceeded &&
        outcome.error.rfind("SoftTimeLimitExceeded", 0) != 0 && outcome.error.rfind("TimeLimitExceeded", 0) != 0)
      outcome.error = "SoftTimeLimitExceeded: soft time limit of " + std::to_string(task.soft_limit_ms) +
                      " ms exceeded (" + outcome.error + ")";
    if (it != running.end() && it->second.attempt == task.attempt) running.erase(it);
    if (stopping) return;  // the worker is gone or going: nobody collects this
    if (!dropped) push_done_locked(std::move(outcome));
  }
}

}  // namespace zb::worker

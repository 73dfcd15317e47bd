#include "store/follower.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/wire.h"

namespace zb::store {
namespace {

constexpr uint32_t kReplayPage = 10000;
constexpr uint64_t kConfirmEveryMs = 200;
constexpr uint64_t kRouterSilentMs = 3000;  // three missed HUGZ

}  // namespace

Follower::Follower(StatusDb& db, EventHub& hub, zmq::context_t& context, std::string router, std::string events,
                   curve::ClientKeys curve)
    : db_(db), hub_(hub), context_(context), router_(std::move(router)), events_(std::move(events)), curve_(std::move(curve)) {
  ClientOptions o;
  o.router = router_;
  o.curve = curve_;
  o.insecure_plaintext = true;  // the store checked its endpoints at start-up
  o.timeout = std::chrono::milliseconds(2000);
  client_ = std::move(Client::connect(o, &context_).value());
}

bool Follower::sync() {
  for (;;) {
    auto page = client_->replay(db_.applied(), kReplayPage);
    if (!page) {
      caught_up_ = false;
      return false;
    }
    if (db_.log_id() != page->log_id && (db_.applied() > 0 || !db_.log_id().is_nil())) {
      spdlog::warn("store router log changed: starting over log_id={}", page->log_id.to_string());
      if (Status s = db_.reset(page->log_id); !s) spdlog::error("store reset failed reason=\"{}\"", s.message());
      hub_.clear();
      continue;
    }
    head_ = page->head_seq;
    if (!page->events.empty() && page->events.front().seq > db_.applied() + 1)
      spdlog::warn("store events trimmed before they were applied: from={} to={}", db_.applied() + 1,
                   page->events.front().seq - 1);
    if (!page->events.empty()) {
      const uint64_t before = db_.applied();
      // The streams see what the DB holds: a batch with a gap inside is applied only up to
      // the gap (StatusDb::apply), and the rest comes again with the replay.
      std::vector<StreamEntry> entries;
      if (Status s = db_.apply(page->log_id, page->events, &entries); !s) {
        spdlog::error("store apply failed reason=\"{}\"", s.message());
        return false;
      }
      hub_.publish(std::move(entries));
      if (db_.applied() == before) return false;  // nothing new in a non-empty page: try again later
    }
    if (page->events.empty() || db_.applied() >= page->head_seq) {
      caught_up_ = db_.applied() >= page->head_seq;
      if (caught_up_) {
        confirm(true);
        return true;
      }
      return false;
    }
  }
}

void Follower::confirm(bool force) {
  const uint64_t now = now_steady_ms();
  if (db_.applied() == confirmed_ || (!force && now - last_confirm_ms_ < kConfirmEveryMs)) return;
  if (client_->confirm(db_.applied())) {
    confirmed_ = db_.applied();
    last_confirm_ms_ = now;
  }
}

void Follower::run(const std::atomic<bool>& stopping) {
  zmq::socket_t sub(context_, zmq::socket_type::sub);
  wire::configure(sub, zmq::socket_type::sub);
  curve::apply_client(sub, curve_);
  sub.set(zmq::sockopt::rcvhwm, 100000);
  sub.set(zmq::sockopt::subscribe, "");
  sub.connect(events_);
  bool need_sync = true;
  uint64_t last_heard = now_steady_ms();
  while (!stopping.load()) {
    if (need_sync) {
      // Live events that arrive meanwhile wait in the SUB queue; those already applied are
      // skipped by sequence afterwards.
      need_sync = !sync();
      last_heard = now_steady_ms();
      if (need_sync) {
        zmq::pollitem_t idle{nullptr, -1, 0, 0};
        wire::poll(&idle, 0, std::chrono::milliseconds(200));  // router away: retry shortly
        continue;
      }
    }
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    wire::poll(&item, 1, std::chrono::milliseconds(100));
    for (int i = 0; i < 1000 && !need_sync; ++i) {
      auto in = wire::recv(sub, false);
      if (!in) break;
      last_heard = now_steady_ms();
      if (!in->message) {
        spdlog::warn("store bad event message reason=\"{}\"", in->message.status().message());
        continue;
      }
      if (auto* batch = std::get_if<proto::EventBatch>(&*in->message)) {
        if (batch->events.empty()) continue;
        if (batch->log_id != db_.log_id() || batch->events.front().seq > db_.applied() + 1) {
          spdlog::info("store replaying reason=sequence-gap applied={} received={}", db_.applied(),
                       batch->events.front().seq);
          need_sync = true;  // a gap (or a new log): replay what we missed
          break;
        }
        std::vector<StreamEntry> entries;
        if (Status s = db_.apply(batch->log_id, batch->events, &entries); !s) {
          spdlog::error("store apply failed reason=\"{}\"", s.message());
          need_sync = true;
        } else {
          hub_.publish(std::move(entries));
          if (db_.applied() < batch->events.back().seq) {
            spdlog::info("store replaying reason=gap-in-batch applied={} last={}", db_.applied(),
                         batch->events.back().seq);
            need_sync = true;
          }
        }
        head_ = std::max(head_.load(), batch->events.back().seq);
      } else if (auto* output = std::get_if<proto::Output>(&*in->message)) {
        if (output_) output_->add(std::move(output->chunks));  // live output: no sequence, no replay
      } else if (auto* hugz = std::get_if<proto::Hugz>(&*in->message)) {
        head_ = hugz->head_seq;
        if (hugz->log_id != db_.log_id() || hugz->head_seq > db_.applied()) {
          spdlog::info("store replaying reason=behind-heartbeat applied={} head={}", db_.applied(), hugz->head_seq);
          need_sync = true;
        }
      }
    }
    if (!need_sync && now_steady_ms() - last_heard > kRouterSilentMs) {
      spdlog::info("store replaying reason=router-silent silent_ms={}", now_steady_ms() - last_heard);
      need_sync = true;
    }
    caught_up_ = !need_sync && db_.applied() >= head_.load();
    confirm(false);
  }
}

}  // namespace zb::store

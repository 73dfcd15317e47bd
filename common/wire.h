// Moving protocol messages over ZeroMQ sockets. The codec (protocol.h) knows nothing of
// sockets; this file knows nothing of message meaning.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "common/curve.h"
#include "common/protocol.h"

namespace zb::wire {

// The ZeroMQ context a component uses: borrowed from the embedding process (inproc endpoints
// only connect within one context, as in `zbatch up`) or owned when none is given.
class ContextRef {
 public:
  ContextRef() = default;
  explicit ContextRef(zmq::context_t* shared)
      : own_(shared ? nullptr : std::make_unique<zmq::context_t>(1)), ctx_(shared ? shared : own_.get()) {}
  zmq::context_t& get() const { return *ctx_; }

 private:
  std::unique_ptr<zmq::context_t> own_;
  zmq::context_t* ctx_ = nullptr;
};

// Socket options every zbatch socket gets: LINGER 0, MAXMSGSIZE, and for ROUTERs
// ROUTER_MANDATORY (so an unroutable send is an error, not a silent drop).
void configure(zmq::socket_t& socket, zmq::socket_type type);

// Sends [routing_id][header][body] (routing id only when non-empty) without blocking.
// Returns false when the peer is gone or at its high-water mark.
bool send(zmq::socket_t& socket, const proto::Message& message, std::string_view routing_id = {});
// Same, for a message already encoded (the router's event batches, packed with its log).
bool send_encoded(zmq::socket_t& socket, const proto::Frames& frames, std::string_view routing_id = {});
// Same, with a blocking bound: waits up to `timeout` for room.
bool send_blocking(zmq::socket_t& socket, const proto::Message& message,
                   std::chrono::milliseconds timeout);

struct Incoming {
  std::string routing_id;           // empty on non-ROUTER sockets
  Result<proto::Message> message;   // the decode error when the frames were bad
  // The sender's CURVE role (its User-Id from the router's ZAP handler); nullopt when it did
  // not authenticate: a plaintext socket, or an inproc peer in this process.
  std::optional<curve::Role> role;
};

// zmq::poll that a signal cannot break: an interrupted wait (EINTR) returns 0 (nothing ready)
// instead of throwing, so every loop treats a signal like a timeout and looks at its stop flag.
// Returns the number of ready items.
int poll(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout);
inline int poll(std::vector<zmq::pollitem_t>& items, std::chrono::milliseconds timeout) {
  return poll(items.data(), items.size(), timeout);
}

// Receives one whole multi-part message without blocking; nullopt when none is waiting.
// `routed` says the socket is a ROUTER (first frame is the routing id). Frame-count errors
// (too many, too few) come back as a decode error, after all frames are drained.
std::optional<Incoming> recv(zmq::socket_t& socket, bool routed);

// What recv() makes of the frames of one message, without a socket: `frames` holds its first
// frames (recv keeps at most 3), `total` how many it had (recv says 4 for "more than 3").
// A wrong count is a decode error; frames beyond `total` are ignored.
Incoming decode_frames(std::span<const std::string_view> frames, size_t total, bool routed);

}  // namespace zb::wire

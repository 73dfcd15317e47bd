#include "common/wire.h"

#include <cerrno>

namespace zb::wire {
namespace {

// Most frames a well-formed message has: routing id + header + body.
constexpr size_t kMaxFrames = 3;

bool send_frames(zmq::socket_t& socket, const proto::Frames& frames, std::string_view routing_id,
                 zmq::send_flags last_flags) {
  auto more = last_flags | zmq::send_flags::sndmore;
  try {
    if (!routing_id.empty() && !socket.send(zmq::buffer(routing_id.data(), routing_id.size()), more))
      return false;
    if (!socket.send(zmq::buffer(frames.header), more)) return false;
    return socket.send(zmq::buffer(frames.body), last_flags).has_value();
  } catch (const zmq::error_t&) {
    return false;  // EHOSTUNREACH: the peer is gone
  }
}

}  // namespace

void configure(zmq::socket_t& socket, zmq::socket_type type) {
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(proto::kMaxBodyBytes + 64));
  if (type == zmq::socket_type::router) socket.set(zmq::sockopt::router_mandatory, 1);
}

bool send(zmq::socket_t& socket, const proto::Message& message, std::string_view routing_id) {
  return send_frames(socket, proto::encode(message), routing_id, zmq::send_flags::dontwait);
}

bool send_encoded(zmq::socket_t& socket, const proto::Frames& frames, std::string_view routing_id) {
  return send_frames(socket, frames, routing_id, zmq::send_flags::dontwait);
}

bool send_blocking(zmq::socket_t& socket, const proto::Message& message,
                   std::chrono::milliseconds timeout) {
  socket.set(zmq::sockopt::sndtimeo, static_cast<int>(timeout.count()));
  bool sent = send_frames(socket, proto::encode(message), {}, zmq::send_flags::none);
  socket.set(zmq::sockopt::sndtimeo, -1);
  return sent;
}

int poll(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout) {
  const int rc = zmq_poll(items, static_cast<int>(count), static_cast<long>(timeout.count()));
  if (rc >= 0) return rc;
  if (zmq_errno() == EINTR) {
    for (size_t i = 0; i < count; ++i) items[i].revents = 0;
    return 0;
  }
  throw zmq::error_t();
}

std::optional<Incoming> recv(zmq::socket_t& socket, bool routed) {
  zmq::message_t frames[kMaxFrames];
  size_t count = 0;
  bool too_many = false;
  zmq::message_t overflow;
  for (;;) {
    zmq::message_t& into = count < kMaxFrames ? frames[count] : overflow;
    zmq::recv_result_t got;
    try {
      got = socket.recv(into, count == 0 ? zmq::recv_flags::dontwait : zmq::recv_flags::none);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      if (count == 0) return std::nullopt;  // interrupted before anything arrived: nothing waiting
      continue;                             // the rest of a message is already here: read it again
    }
    if (!got) return std::nullopt;  // nothing waiting (only possible on the first frame)
    if (count < kMaxFrames) ++count; else too_many = true;
    if (!into.more()) break;
  }
  std::string_view kept[kMaxFrames];
  for (size_t i = 0; i < count; ++i) kept[i] = frames[i].to_string_view();
  Incoming in = decode_frames(std::span<const std::string_view>(kept, count), too_many ? kMaxFrames + 1 : count, routed);
  // The sender's role is a property of the header frame (its User-Id from the ZAP handler).
  const size_t header = routed ? 1 : 0;
  if (!too_many && count == header + 2) in.role = curve::sender_role(frames[header]);
  return in;
}

Incoming decode_frames(std::span<const std::string_view> frames, size_t total, bool routed) {
  Incoming in{.routing_id = {}, .message = Status(Code::kBadRequest, "no frames"), .role = std::nullopt};
  if (frames.size() > total) frames = frames.first(total);
  size_t first = 0;
  if (routed) {
    if (frames.empty()) return in;
    in.routing_id = std::string(frames[0]);
    first = 1;
  }
  if (total != first + 2 || frames.size() < first + 2) {
    in.message = Status(Code::kBadRequest, "expected 2 frames (header, body), got " +
                                               (total > kMaxFrames ? std::string("more than 3")
                                                                   : std::to_string(total - first)));
    return in;
  }
  in.message = proto::decode(frames[first], frames[first + 1]);
  return in;
}

}  // namespace zb::wire

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
  Incoming in{.routing_id = {}, .message = Status(Code::kBadRequest, "no frames"), .role = std::nullopt};
  size_t first = 0;
  if (routed) {
    in.routing_id = frames[0].to_string();
    first = 1;
  }
  if (too_many || count - first != 2) {
    in.message = Status(Code::kBadRequest, "expected 2 frames (header, body), got " +
                                               (too_many ? std::string("more than 3")
                                                         : std::to_string(count - first)));
    return in;
  }
  in.role = curve::sender_role(frames[first]);
  in.message = proto::decode(frames[first].to_string_view(), frames[first + 1].to_string_view());
  return in;
}

}  // namespace zb::wire

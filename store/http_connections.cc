#include "common/text.h"
#include "store/http_connections.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "store/http_streams.h"

namespace zb::store {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kWakeId = 1;
constexpr uint64_t kListenId = 2;
constexpr uint64_t kFirstConnectionId = 16;
constexpr auto kSweepEvery = std::chrono::milliseconds(100);  // how often deadlines are looked at
constexpr auto kLinger = std::chrono::seconds(2);             // reading what a refused client still sends
constexpr auto kStopGrace = std::chrono::seconds(5);          // answers under way at stop
constexpr auto kRefusalLogEvery = std::chrono::seconds(10);
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kAcceptsPerTurn = 1024;
constexpr size_t kChunksPerTurn = 16;  // reads of kReadChunk from one connection per event
// Stream threads beyond max_streams: they only answer refusals (401, 400, the handler's 503),
// so a full house of streams still tells a client why.
constexpr size_t kStreamOverflow = 16;
constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
// Requests this small are read even when max_buffered_bytes is reached.
constexpr size_t kAlwaysAdmitted = 16 * 1024;
const Refusal kBusy{503, "unavailable", "the server holds too many request bytes at the moment; retry shortly"};
constexpr char kRetrySoon[] = "Retry-After: 1\r\n";

thread_local bool tls_on_stream_thread = false;

const char* reason_phrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

// A whole answer, sent by the connection thread itself; the connection closes after it.
std::string refusal_answer(const Refusal& r, const char* extra_headers = "") {
  const std::string body =
      json_text(nlohmann::json{{"error", {{"code", r.code}, {"message", r.message}}}});
  return "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n" + extra_headers + "\r\n" + body;
}

Peer peer_of(int fd, const sockaddr_storage& remote) {
  Peer p;
  p.ip = address_text(reinterpret_cast<const sockaddr*>(&remote));
  p.port = address_port(reinterpret_cast<const sockaddr*>(&remote));
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
    p.local_ip = address_text(reinterpret_cast<sockaddr*>(&local));
    p.local_port = address_port(reinterpret_cast<sockaddr*>(&local));
  }
  p.client = client_key(p.ip);
  return p;
}

struct Connection {
  enum class State {
    kTlsStart,   // TLS port, nothing read yet: is it a TLS client at all?
    kHandshake,
    kReading,    // the request so far in `in`
    kAnswering,  // on a request thread; not watched
    kWriting,    // `out` being sent
    kLingering,  // answered and shut down for writing; reading what the client still sends
    kClosed,
  };
  Connection(uint64_t id, int fd, Peer peer, const FramingLimits& limits)
      : id(id), fd(fd), peer(std::move(peer)), framer(limits) {}

  uint64_t id;
  int fd;
  Peer peer;
  std::unique_ptr<TlsSession> tls;
  State state = State::kReading;
  RequestFramer framer;
  std::string in;
  std::string out;
  size_t out_sent = 0;
  bool close_after = false;      // close once `out` is sent
  bool request_started = false;  // a byte of the current request has arrived
  bool continue_sent = false;
  size_t charged = 0;            // bytes counted in max_buffered_bytes
  size_t requests = 0;
  uint32_t events = 0;           // what epoll watches; 0 = not registered
  Clock::time_point deadline;
};

struct Job {
  uint64_t connection;
  std::string request;
  Peer peer;
  bool close;
};

// What request and stream threads hand back to the connection thread.
struct Done {
  uint64_t connection;
  std::string answer;
  bool close = false;
  bool stream_ended = false;
  std::string client;  // of an ended stream
};

}  // namespace

bool on_stream_thread() { return tls_on_stream_thread; }

struct HttpConnections::Impl {
  Impl(const HttpServerOptions& o, Listener l, const TlsContext* t, Answer a, Streams s)
      : options(o), listener(std::move(l)), tls(t), answer(std::move(a)), streams(std::move(s)),
        epoll(::epoll_create1(EPOLL_CLOEXEC)), wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
        spare_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {
    if (epoll < 0 || wake < 0) {
      const int e = errno;
      close_handles();
      throw std::system_error(e, std::generic_category(), "epoll");
    }
    try {
      for (size_t i = 0; i < options.request_threads; ++i) workers.emplace_back([this] { work(); });
    } catch (...) {
      end_workers();
      close_handles();
      throw;
    }
  }
  ~Impl() {
    end_workers();
    close_handles();
  }
  void close_handles() {
    for (int fd : {spare_fd, wake, epoll})
      if (fd >= 0) ::close(fd);
  }
  void end_workers() {
    {
      std::lock_guard lock(jobs_mu);
      jobs_closed = true;
      jobs.clear();  // what the stop's grace period did not reach is not answered
    }
    jobs_cv.notify_all();
    for (auto& t : workers)
      if (t.joinable()) t.join();
  }

  const HttpServerOptions options;
  std::optional<Listener> listener;
  const TlsContext* tls;
  Answer answer;
  Streams streams;

  const int epoll;
  const int wake;
  int spare_fd;  // given up to accept (and close) a connection when out of descriptors
  bool accept_paused = false;
  std::atomic<bool> stop_requested{false};
  bool stopping = false;
  Clock::time_point stop_deadline;

  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections;
  std::vector<uint64_t> closed;  // erased after each turn
  std::unordered_map<std::string, size_t> per_client;
  uint64_t next_id = kFirstConnectionId;
  size_t buffered = 0;

  std::mutex jobs_mu;
  std::condition_variable jobs_cv;
  std::deque<Job> jobs;
  bool jobs_closed = false;
  std::vector<std::thread> workers;

  std::mutex done_mu;
  std::vector<Done> done;

  std::unordered_map<uint64_t, std::thread> stream_threads;
  size_t streams_open = 0;
  std::mutex stream_fds_mu;  // guards stream_fds: a stream thread closes its socket under it
  std::unordered_map<uint64_t, int> stream_fds;

  Clock::time_point last_refusal_log{};
  size_t refused_unlogged = 0;

  // --- the loop ---------------------------------------------------------------------------
  void run();
  void begin_stop();
  void accept_all();
  void refuse_connection(int fd, const char* why, const std::string& client);
  void on_event(Connection& c, uint32_t ev);
  void sweep();
  void take_done();

  // --- one connection -----------------------------------------------------------------------
  void watch(Connection& c, uint32_t events);
  void unwatch(Connection& c);
  void close(Connection& c);
  void account(Connection& c);
  void tls_start(Connection& c);
  void handshake(Connection& c);
  void read_request(Connection& c);
  void frame(Connection& c, bool eof);
  void dispatch(Connection& c);
  void start_stream(Connection& c, std::string request);
  void refuse(Connection& c, const Refusal& r, const char* extra_headers = "");
  void flush(Connection& c);
  void next_request(Connection& c);
  void linger(Connection& c);
  void discard(Connection& c);

  // --- other threads -----------------------------------------------------------------------
  void work();
  void stream(std::unique_ptr<Connection> c, std::string request);
  void post(Done d);
};

HttpConnections::HttpConnections(const HttpServerOptions& options, Listener listener, const TlsContext* tls,
                                 Answer answer, Streams streams)
    : impl_(std::make_unique<Impl>(options, std::move(listener), tls, std::move(answer), std::move(streams))) {}

HttpConnections::~HttpConnections() = default;

void HttpConnections::run() { impl_->run(); }

void HttpConnections::stop() {
  impl_->stop_requested.store(true);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(impl_->wake, &one, sizeof one);
}

void HttpConnections::Impl::post(Done d) {
  {
    std::lock_guard lock(done_mu);
    done.push_back(std::move(d));
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake, &one, sizeof one);
}

void HttpConnections::Impl::run() {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  ::epoll_ctl(epoll, EPOLL_CTL_ADD, wake, &ev);
  ev.data.u64 = kListenId;
  ::epoll_ctl(epoll, EPOLL_CTL_ADD, listener->fd(), &ev);

  auto next_sweep = Clock::now() + kSweepEvery;
  std::vector<epoll_event> events(512);
  for (;;) {
    if (stop_requested.load() && !stopping) begin_stop();
    if (stopping && (connections.empty() || Clock::now() >= stop_deadline)) break;
    const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(next_sweep - Clock::now()).count();
    const int n = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()),
                               static_cast<int>(std::max<int64_t>(0, wait_ms)));
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == kWakeId) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wake, &count, sizeof count);
        take_done();
      } else if (id == kListenId) {
        accept_all();
      } else if (auto it = connections.find(id); it != connections.end() && it->second->state != Connection::State::kClosed) {
        on_event(*it->second, events[i].events);
      }
    }
    if (Clock::now() >= next_sweep) {
      sweep();
      next_sweep = Clock::now() + kSweepEvery;
    }
    for (uint64_t id : closed) connections.erase(id);
    closed.clear();
  }

  for (auto& [id, c] : connections) close(*c);
  connections.clear();
  end_workers();
  {
    std::lock_guard lock(stream_fds_mu);
    for (auto& [id, fd] : stream_fds) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& [id, t] : stream_threads) t.join();
}

void HttpConnections::Impl::begin_stop() {
  stopping = true;
  stop_deadline = Clock::now() + kStopGrace;
  ::epoll_ctl(epoll, EPOLL_CTL_DEL, listener->fd(), nullptr);
  listener.reset();  // new connections are refused from now on
  for (auto& [id, c] : connections) {
    if (c->state == Connection::State::kAnswering) continue;
    if (c->state == Connection::State::kWriting) {
      c->close_after = true;
      continue;
    }
    close(*c);
  }
  // Event streams end too: their handlers see the store stopping; a client that does not
  // read is cut off here instead of holding the stop for a write timeout.
  std::lock_guard lock(stream_fds_mu);
  for (auto& [id, fd] : stream_fds) ::shutdown(fd, SHUT_RDWR);
}

void HttpConnections::Impl::refuse_connection(int fd, const char* why, const std::string& client) {
  ::close(fd);
  ++refused_unlogged;
  const auto now = Clock::now();
  if (now - last_refusal_log < kRefusalLogEvery) return;
  spdlog::warn("store http connections refused count={} reason=\"{}\" last_client={} open={} max_connections={} "
               "max_connections_per_client={}",
               refused_unlogged, why, client, connections.size() + streams_open, options.max_connections,
               options.max_connections_per_client);
  refused_unlogged = 0;
  last_refusal_log = now;
}

void HttpConnections::Impl::accept_all() {
  for (size_t i = 0; i < kAcceptsPerTurn; ++i) {
    sockaddr_storage remote{};
    socklen_t len = sizeof remote;
    const int fd = ::accept4(listener->fd(), reinterpret_cast<sockaddr*>(&remote), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
        // Out of descriptors: take the connection with the spare one and close it, rather than
        // leave it in the backlog, where it would wake this loop forever.
        ::close(spare_fd);
        spare_fd = -1;
        const int extra = ::accept4(listener->fd(), nullptr, nullptr, SOCK_CLOEXEC);
        if (extra >= 0) refuse_connection(extra, "the process has no file descriptor left", "");
        spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (extra >= 0) continue;
      }
      if (errno == EMFILE || errno == ENFILE) {
        // Not even the spare: stop watching the backlog until the next sweep, or it would
        // wake this loop without end.
        ::epoll_ctl(epoll, EPOLL_CTL_DEL, listener->fd(), nullptr);
        accept_paused = true;
      }
      return;
    }
    Peer peer = peer_of(fd, remote);
    if (connections.size() + streams_open >= options.max_connections) {
      refuse_connection(fd, "max_connections", peer.client);
      continue;
    }
    size_t& mine = per_client[peer.client];
    if (mine >= options.max_connections_per_client) {
      refuse_connection(fd, "max_connections_per_client", peer.client);
      continue;
    }
    ++mine;
    int yes = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);  // answers are written whole
    const uint64_t id = next_id++;
    auto c = std::make_unique<Connection>(id, fd, std::move(peer), options.framing);
    c->state = tls ? Connection::State::kTlsStart : Connection::State::kReading;
    c->deadline = Clock::now() + options.idle_timeout;
    Connection& ref = *c;
    connections.emplace(id, std::move(c));
    watch(ref, EPOLLIN | EPOLLRDHUP);
  }
}

void HttpConnections::Impl::watch(Connection& c, uint32_t events) {
  if (c.events == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = c.id;
  ::epoll_ctl(epoll, c.events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd, &ev);
  c.events = events;
}

void HttpConnections::Impl::unwatch(Connection& c) {
  if (c.events == 0) return;
  ::epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nullptr);
  c.events = 0;
}

void HttpConnections::Impl::account(Connection& c) {
  buffered = buffered - c.charged + c.in.size();
  c.charged = c.in.size();
}

void HttpConnections::Impl::close(Connection& c) {
  if (c.state == Connection::State::kClosed) return;
  if (c.tls && c.state != Connection::State::kHandshake) c.tls->close_notify();
  c.tls.reset();
  ::close(c.fd);  // also takes it out of epoll
  c.events = 0;
  buffered -= c.charged;
  c.charged = 0;
  c.in.clear();
  c.out.clear();
  if (auto it = per_client.find(c.peer.client); it != per_client.end() && --it->second == 0) per_client.erase(it);
  c.state = Connection::State::kClosed;
  closed.push_back(c.id);
}

void HttpConnections::Impl::on_event(Connection& c, uint32_t ev) {
  using S = Connection::State;
  if (ev & EPOLLERR) return close(c);
  switch (c.state) {
    case S::kTlsStart: return tls_start(c);
    case S::kHandshake: return handshake(c);
    case S::kReading:
      if (!c.out.empty()) flush(c);  // a 100 Continue
      if (c.state == S::kReading) read_request(c);
      return;
    case S::kWriting: return flush(c);
    case S::kLingering: return discard(c);
    case S::kAnswering:
    case S::kClosed: return;
  }
}

void HttpConnections::Impl::tls_start(Connection& c) {
  unsigned char first = 0;
  const ssize_t n = ::recv(c.fd, &first, 1, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) return close(c);
  c.deadline = Clock::now() + options.request_timeout;
  if (first != 0x16) {  // not a TLS handshake record: most likely http:// to an https:// port
    c.state = Connection::State::kReading;
    c.request_started = true;
    return refuse(c, {400, "bad_request", "this address speaks HTTPS: use https://"});
  }
  c.tls = std::make_unique<TlsSession>(*tls, c.fd);
  c.state = Connection::State::kHandshake;
  handshake(c);
}

void HttpConnections::Impl::handshake(Connection& c) {
  switch (c.tls->handshake()) {
    case TlsSession::Io::kOk: return next_request(c);
    case TlsSession::Io::kWantRead: return watch(c, EPOLLIN | EPOLLRDHUP);
    case TlsSession::Io::kWantWrite: return watch(c, EPOLLOUT);
    default:
      spdlog::debug("store http tls handshake failed client={} reason=\"{}\"", c.peer.ip, c.tls->error());
      return close(c);
  }
}

void HttpConnections::Impl::read_request(Connection& c) {
  char buf[kReadChunk];
  bool eof = false;
  bool wants_write = false;
  for (size_t chunks = 0;; ++chunks) {
    // The head is framed as it arrives, so that reading stops where the request ends.
    if (c.framer.head().head_bytes == 0 && !c.in.empty() &&
        c.framer.feed(c.in) == RequestFramer::State::kRefused)
      return refuse(c, c.framer.refusal());
    const size_t wanted = c.framer.head().head_bytes ? c.framer.head().total() : options.framing.max_head_bytes + 1;
    if (c.in.size() >= wanted) break;
    // A fast sender does not hold this thread: epoll reports the rest on the next turn. (Not
    // for TLS: bytes already decrypted inside OpenSSL would not wake epoll.)
    if (!c.tls && chunks == kChunksPerTurn) break;
    const size_t room = std::min(sizeof buf, wanted - c.in.size());
    size_t got = 0;
    if (c.tls) {
      const auto io = c.tls->read(buf, room, &got);
      if (io == TlsSession::Io::kWantRead) break;
      if (io == TlsSession::Io::kWantWrite) {
        wants_write = true;
        break;
      }
      if (io == TlsSession::Io::kClosed) {
        eof = true;
        break;
      }
      if (io == TlsSession::Io::kFailed) return close(c);
    } else {
      const ssize_t n = ::recv(c.fd, buf, room, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return close(c);
      }
      if (n == 0) {
        eof = true;
        break;
      }
      got = static_cast<size_t>(n);
    }
    if (!c.request_started) {
      // The whole request must arrive within request_timeout of its first byte.
      c.request_started = true;
      c.deadline = Clock::now() + options.request_timeout;
    }
    c.in.append(buf, got);
    account(c);
    if (buffered > options.max_buffered_bytes && c.in.size() > kAlwaysAdmitted) return refuse(c, kBusy, kRetrySoon);
  }
  if (c.out.empty()) watch(c, wants_write ? EPOLLOUT : EPOLLIN | EPOLLRDHUP);
  frame(c, eof);
}

void HttpConnections::Impl::frame(Connection& c, bool eof) {
  if (c.in.empty()) {
    if (eof) close(c);
    return;
  }
  switch (c.framer.feed(c.in)) {
    case RequestFramer::State::kRefused: return refuse(c, c.framer.refusal());
    case RequestFramer::State::kNeedMore:
      if (eof) close(c);  // the client stopped half way through a request
      return;
    case RequestFramer::State::kHead: break;
  }
  const RequestHead& head = c.framer.head();
  if (buffered - c.charged + head.total() > options.max_buffered_bytes && head.total() > kAlwaysAdmitted)
    return refuse(c, kBusy, kRetrySoon);
  if (c.in.size() >= head.total()) return dispatch(c);
  if (eof) return close(c);
  if (head.expect_continue && !c.continue_sent) {
    c.continue_sent = true;
    c.out = kContinue;
    flush(c);
  }
}

void HttpConnections::Impl::dispatch(Connection& c) {
  const RequestHead head = c.framer.head();
  std::string request;
  if (c.in.size() == head.total()) {
    request = std::move(c.in);
    c.in.clear();
  } else {
    request = c.in.substr(0, head.total());
    c.in.erase(0, head.total());
  }
  ++c.requests;
  const bool close_connection = stopping || c.requests >= options.max_requests_per_connection;
  if (streams(head.method, head.path)) return start_stream(c, std::move(request));
  c.state = Connection::State::kAnswering;
  unwatch(c);
  {
    std::lock_guard lock(jobs_mu);
    jobs.push_back({c.id, std::move(request), c.peer, close_connection});
  }
  jobs_cv.notify_one();
}

void HttpConnections::Impl::start_stream(Connection& c, std::string request) {
  if (streams_open >= options.max_streams + kStreamOverflow)
    return refuse(c, {503, "unavailable", "too many event streams open"});
  unwatch(c);
  account(c);
  buffered -= c.charged;  // the stream thread owns the connection's bytes now
  c.charged = 0;
  auto it = connections.find(c.id);
  std::unique_ptr<Connection> owned = std::move(it->second);
  connections.erase(it);
  const uint64_t id = owned->id;
  const int fd = owned->fd;
  const std::string client = owned->peer.client;
  {
    std::lock_guard lock(stream_fds_mu);
    stream_fds.emplace(id, fd);
  }
  ++streams_open;
  try {
    stream_threads.emplace(id, std::thread([this, owned = std::move(owned), request = std::move(request)]() mutable {
                             stream(std::move(owned), std::move(request));
                           }));
  } catch (const std::system_error& e) {  // no thread to be had: this stream is not served
    spdlog::error("store http event stream not started client={} reason=\"{}\"", client, e.what());
    {
      std::lock_guard lock(stream_fds_mu);
      stream_fds.erase(id);
    }
    ::close(fd);
    --streams_open;
    if (auto it = per_client.find(client); it != per_client.end() && --it->second == 0) per_client.erase(it);
  }
}

void HttpConnections::Impl::refuse(Connection& c, const Refusal& r, const char* extra_headers) {
  spdlog::debug("store http refused client={} status={} reason=\"{}\"", c.peer.ip, r.status, r.message);
  c.out = refusal_answer(r, extra_headers);
  c.out_sent = 0;
  c.close_after = true;
  c.state = Connection::State::kWriting;
  c.deadline = Clock::now() + kLinger;
  flush(c);
}

void HttpConnections::Impl::flush(Connection& c) {
  while (c.out_sent < c.out.size()) {
    const char* p = c.out.data() + c.out_sent;
    const size_t left = c.out.size() - c.out_sent;
    size_t put = 0;
    if (c.tls) {
      switch (c.tls->write(p, left, &put)) {
        case TlsSession::Io::kOk: break;
        case TlsSession::Io::kWantWrite: return watch(c, EPOLLOUT);
        case TlsSession::Io::kWantRead: return watch(c, EPOLLIN | EPOLLRDHUP);
        default: return close(c);
      }
    } else {
      const ssize_t n = ::send(c.fd, p, left, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return watch(c, EPOLLOUT);
        return close(c);
      }
      put = static_cast<size_t>(n);
    }
    c.out_sent += put;
  }
  c.out.clear();
  c.out_sent = 0;
  if (c.state == Connection::State::kReading) return watch(c, EPOLLIN | EPOLLRDHUP);  // the 100 Continue went out
  if (c.close_after) return stopping ? close(c) : linger(c);
  next_request(c);
}

void HttpConnections::Impl::next_request(Connection& c) {
  if (stopping) return close(c);
  c.state = Connection::State::kReading;
  c.framer.reset();
  c.continue_sent = false;
  c.request_started = !c.in.empty();  // pipelined bytes of the next request
  c.deadline = Clock::now() + (c.request_started ? options.request_timeout : options.idle_timeout);
  watch(c, EPOLLIN | EPOLLRDHUP);
  read_request(c);  // TLS may hold bytes epoll cannot see
}

void HttpConnections::Impl::linger(Connection& c) {
  // Closing with unread bytes would reset the connection, and the client could lose the
  // answer before reading it: shut down writing, read until the client closes (or kLinger).
  if (c.tls) c.tls->close_notify();
  ::shutdown(c.fd, SHUT_WR);
  c.state = Connection::State::kLingering;
  c.deadline = Clock::now() + kLinger;
  buffered -= c.charged;
  c.charged = 0;
  c.in.clear();
  watch(c, EPOLLIN | EPOLLRDHUP);
  discard(c);
}

void HttpConnections::Impl::discard(Connection& c) {
  char buf[kReadChunk];
  for (int i = 0; i < 16; ++i) {
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    return close(c);
  }
}

void HttpConnections::Impl::sweep() {
  using S = Connection::State;
  const auto now = Clock::now();
  if (accept_paused && listener) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenId;
    ::epoll_ctl(epoll, EPOLL_CTL_ADD, listener->fd(), &ev);
    accept_paused = false;
    if (spare_fd < 0) spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  for (auto& [id, cp] : connections) {
    Connection& c = *cp;
    if (c.state == S::kAnswering || c.state == S::kClosed || now < c.deadline) continue;
    if (c.state == S::kReading && c.request_started) {
      // One attempt to say why, then the connection goes: a client this slow gets no linger.
      const std::string answer = refusal_answer(
          {408, "request_timeout",
           fmt::format("the request was not received whole within {:g} s of its first byte",
                       static_cast<double>(options.request_timeout.count()) / 1000)});
      if (c.tls) {
        size_t put = 0;
        c.tls->write(answer.data(), answer.size(), &put);
      } else {
        [[maybe_unused]] ssize_t n = ::send(c.fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      spdlog::debug("store http request timed out client={} received_bytes={}", c.peer.ip, c.in.size());
    }
    close(c);
  }
}

void HttpConnections::Impl::take_done() {
  std::vector<Done> batch;
  {
    std::lock_guard lock(done_mu);
    batch.swap(done);
  }
  for (Done& d : batch) {
    if (d.stream_ended) {
      if (auto t = stream_threads.find(d.connection); t != stream_threads.end()) {
        t->second.join();
        stream_threads.erase(t);
      }
      --streams_open;
      if (auto it = per_client.find(d.client); it != per_client.end() && --it->second == 0) per_client.erase(it);
      continue;
    }
    auto it = connections.find(d.connection);
    if (it == connections.end() || it->second->state != Connection::State::kAnswering) continue;
    Connection& c = *it->second;
    account(c);  // the request's bytes are gone with the request thread
    if (d.answer.empty()) {
      close(c);
      continue;
    }
    c.out = std::move(d.answer);
    c.out_sent = 0;
    c.close_after = d.close || stopping;
    c.state = Connection::State::kWriting;
    c.deadline = Clock::now() + options.request_timeout;
    flush(c);
  }
}

void HttpConnections::Impl::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(jobs_mu);
      jobs_cv.wait(lock, [&] { return !jobs.empty() || jobs_closed; });
      if (jobs.empty()) return;
      job = std::move(jobs.front());
      jobs.pop_front();
    }
    BufferedStream strm(std::move(job.request), job.peer);
    bool closed_by_client = false;
    bool ok = false;
    try {
      ok = answer(strm, job.close, closed_by_client);
    } catch (const std::exception& e) {
      spdlog::error("store http request failed client={} reason=\"{}\"", job.peer.ip, e.what());
    }
    post({job.connection, strm.take_answer(), !ok || closed_by_client || job.close, false, {}});
  }
}

void HttpConnections::Impl::stream(std::unique_ptr<Connection> c, std::string request) {
  tls_on_stream_thread = true;
  {
    DirectStream strm(c->fd, c->tls.get(), std::move(request), c->peer, options.request_timeout);
    bool closed_by_client = false;
    try {
      answer(strm, /*close_connection=*/true, closed_by_client);  // a stream's connection ends with it
    } catch (const std::exception& e) {
      spdlog::error("store http event stream failed client={} reason=\"{}\"", c->peer.ip, e.what());
    }
  }
  if (c->tls) c->tls->close_notify();
  {
    std::lock_guard lock(stream_fds_mu);
    stream_fds.erase(c->id);
    ::close(c->fd);
  }
  post({c->id, {}, true, /*stream_ended=*/true, c->peer.client});
}

}  // namespace zb::store

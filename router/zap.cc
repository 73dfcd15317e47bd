#include "router/zap.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "common/wire.h"

namespace zb::router {
namespace {

constexpr size_t kMaxZapFrames = 16;
constexpr int kLogsPerSecond = 5;

int64_t mtime_ns(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
}

std::string folder_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string z85_of(const std::string& raw) {
  if (raw.size() != 32) return "(a " + std::to_string(raw.size()) + "-byte credential)";
  char text[41] = {};
  zmq_z85_encode(text, reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  return text;
}

}  // namespace

Result<std::map<std::string, AllowedKey>> parse_allow_list(const std::string& text, const std::string& base_dir) {
  std::map<std::string, AllowedKey> out;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    // Comments are whole lines: '#' is a Z85 character, so it may appear inside a key.
    if (const size_t first = line.find_first_not_of(" \t"); first == std::string::npos || line[first] == '#') continue;
    std::istringstream fields(line);
    std::string role_text, key, name, extra;
    if (!(fields >> role_text)) continue;  // blank
    const std::string where = "line " + std::to_string(number) + ": ";
    if (!(fields >> key)) return Status(Code::kBadRequest, where + "needs ROLE KEY [NAME]");
    fields >> name;
    if (fields >> extra) return Status(Code::kBadRequest, where + "unexpected '" + extra + "' after the name");
    auto role = curve::parse_role(role_text);
    if (!role) return Status(Code::kBadRequest, where + "role must be worker, read, submit, admin or store, got '" + role_text + "'");
    // A certificate file when one is there (a 40-character path can also read as Z85), else
    // the key itself.
    const std::string file = key.front() == '/' ? key : base_dir + "/" + key;
    if (struct stat st {}; ::stat(file.c_str(), &st) == 0 || !curve::valid_key(key)) {
      auto cert = curve::public_key_of(file);
      if (!cert) return Status(Code::kBadRequest, where + cert.status().message());
      key = *cert;
    }
    if (!out.emplace(key, AllowedKey{*role, name}).second)
      return Status(Code::kBadRequest, where + "the key is listed twice");
  }
  return out;
}

ZapHandler::ZapHandler(zmq::context_t& context, std::string allow_file)
    : socket_(context, zmq::socket_type::rep), allow_file_(std::move(allow_file)) {}

Result<std::unique_ptr<ZapHandler>> ZapHandler::start(zmq::context_t& context, std::string allow_file) {
  if (allow_file.empty()) return Status(Code::kBadRequest, "CURVE needs an allow-list of peers' keys (--curve-allow FILE)");
  std::unique_ptr<ZapHandler> zap(new ZapHandler(context, std::move(allow_file)));
  zap->socket_.set(zmq::sockopt::linger, 0);
  try {
    zap->socket_.bind("inproc://zeromq.zap.01");
  } catch (const zmq::error_t& e) {
    return Status(Code::kIo, std::string("cannot start the ZAP handler (one per process): ") + e.what());
  }
  std::ifstream in(zap->allow_file_);
  if (!in) return Status(Code::kIo, "cannot read the allow-list " + zap->allow_file_);
  std::stringstream text;
  text << in.rdbuf();
  auto list = parse_allow_list(text.str(), folder_of(zap->allow_file_));
  if (!list) return Status(Code::kBadRequest, zap->allow_file_ + ": " + list.status().message());
  zap->allowed_ = std::move(*list);
  zap->mtime_ns_ = mtime_ns(zap->allow_file_);
  spdlog::info("router curve allow-list file={} keys={}", zap->allow_file_, zap->allowed_.size());
  zap->thread_ = std::thread([p = zap.get()] { p->run(); });
  return zap;
}

ZapHandler::~ZapHandler() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

bool ZapHandler::reload() {
  const int64_t now = mtime_ns(allow_file_);
  if (now == mtime_ns_) return false;
  mtime_ns_ = now;
  std::ifstream in(allow_file_);
  std::stringstream text;
  text << in.rdbuf();
  auto list = in ? parse_allow_list(text.str(), folder_of(allow_file_))
                 : Result<std::map<std::string, AllowedKey>>(Status(Code::kIo, "cannot read it"));
  if (!list) {
    spdlog::error("router curve allow-list file={} not reloaded, the previous one stays reason=\"{}\"", allow_file_,
                  list.status().message());
    return false;
  }
  allowed_ = std::move(*list);
  spdlog::info("router curve allow-list reloaded file={} keys={}", allow_file_, allowed_.size());
  return true;
}

std::string ZapHandler::answer(const std::string& domain, const std::string& mechanism, const std::string& key,
                               const std::string& address, std::string* user_id) {
  std::string reason;
  if (mechanism != "CURVE") {
    reason = "mechanism " + mechanism.substr(0, 16) + " is not accepted";
  } else if (auto it = allowed_.find(key); it == allowed_.end()) {
    reason = "unknown key";
  } else {
    const curve::Role role = it->second.role;
    const bool fits = domain == "backend" ? role == curve::Role::kWorker
                      : domain == "frontend" || domain == "events" ? role != curve::Role::kWorker
                                                                   : false;
    if (fits) {
      *user_id = std::string(curve::role_name(role));
      return "200";
    }
    reason = "role " + std::string(curve::role_name(role)) + " may not use the " + domain.substr(0, 32) + " socket";
  }
  refused_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t now = now_steady_ms();
  if (now - log_window_ms_ >= 1000) {
    log_window_ms_ = now;
    logged_in_window_ = 0;
  }
  if (++logged_in_window_ <= kLogsPerSecond)
    spdlog::warn("router refused connection key={} domain={} address={} reason=\"{}\"", key, domain.substr(0, 32),
                 address.substr(0, 64), reason);
  return "400";
}

void ZapHandler::run() {
  uint64_t next_check = now_steady_ms() + 1000;
  while (!stop_.load()) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    wire::poll(&item, 1, std::chrono::milliseconds(100));
    if (now_steady_ms() >= next_check) {
      next_check = now_steady_ms() + 1000;
      reload();
    }
    if (!(item.revents & ZMQ_POLLIN)) continue;
    std::vector<zmq::message_t> frames;
    for (;;) {
      zmq::message_t frame;
      zmq::recv_result_t got;
      try {
        got = socket_.recv(frame, zmq::recv_flags::dontwait);
      } catch (const zmq::error_t&) {
        got = std::nullopt;
      }
      if (!got) break;
      const bool more = frame.more();
      if (frames.size() < kMaxZapFrames) frames.push_back(std::move(frame));
      if (!more) break;
    }
    if (frames.empty()) continue;
    // version, request id, domain, address, identity, mechanism, credentials...
    std::string status = "400", text = "malformed ZAP request", user_id;
    const std::string request_id = frames.size() > 1 ? frames[1].to_string() : std::string();
    if (frames.size() >= 6 && frames[0].to_string_view() == "1.0") {
      const std::string key = frames.size() >= 7 ? z85_of(frames[6].to_string()) : std::string("(none)");
      status = answer(frames[2].to_string(), frames[5].to_string(), key, frames[3].to_string(), &user_id);
      text = status == "200" ? "OK" : "not allowed";
    }
    try {
      socket_.send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(status), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(text), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(user_id), zmq::send_flags::sndmore);
      socket_.send(zmq::str_buffer(""), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      spdlog::error("router ZAP reply failed reason=\"{}\"", e.what());
    }
  }
}

}  // namespace zb::router

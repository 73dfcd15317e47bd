#include "common/curve.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

namespace zb::curve {
namespace {

std::string today() {
  char buf[32];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

Status write_file(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return Status(Code::kIo, "cannot create " + path + ": " + std::strerror(errno));
  ::fchmod(fd, mode);  // whatever the umask
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      return Status(Code::kIo, "cannot write " + path + ": " + why);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return Status(Code::kIo, "cannot write " + path + ": " + std::strerror(errno));
  return Status::ok();
}

// `name = "value"` inside a ZPL file, or empty.
std::string zpl_value(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    if (line.compare(start, name.size(), name) != 0) continue;
    size_t eq = line.find('=', start + name.size());
    if (eq == std::string::npos || line.find_first_not_of(" \t", start + name.size()) != eq) continue;
    const size_t open = line.find('"', eq);
    const size_t close = open == std::string::npos ? std::string::npos : line.find('"', open + 1);
    if (close == std::string::npos) continue;
    return line.substr(open + 1, close - open - 1);
  }
  return {};
}

}  // namespace

bool is_loopback(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return in6->sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kWorker: return "worker";
    case Role::kRead: return "read";
    case Role::kSubmit: return "submit";
    case Role::kAdmin: return "admin";
    case Role::kStore: return "store";
  }
  return "unknown";
}

std::optional<Role> parse_role(std::string_view name) {
  for (Role r : {Role::kWorker, Role::kRead, Role::kSubmit, Role::kAdmin, Role::kStore})
    if (role_name(r) == name) return r;
  return std::nullopt;
}

KeyPair generate() {
  char pub[41] = {}, sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0) return {};
  return {pub, sec};
}

bool valid_key(std::string_view z85) {
  if (z85.size() != 40) return false;
  uint8_t raw[32];
  const std::string copy(z85);
  return zmq_z85_decode(raw, copy.c_str()) != nullptr;
}

Status write_certificate(const std::string& dir, const std::string& name, const KeyPair& keys) {
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.')
    return Status(Code::kBadRequest, "a key's name must be a plain file name, got '" + name + "'");
  if (!valid_key(keys.public_key) || !valid_key(keys.secret_key))
    return Status(Code::kInternal, "key generation failed (libzmq without CURVE support?)");
  const std::string base = dir.empty() ? name : dir + "/" + name;
  const std::string header = "#   ****  Generated on " + today() + " by zbatch  ****\n";
  const std::string pub = header +
      "#   ZeroMQ CURVE Public Certificate\n"
      "#   Exchange securely, or use a secure mechanism to verify the contents\n"
      "#   of this file after exchange.\n\n"
      "metadata\ncurve\n    public-key = \"" + keys.public_key + "\"\n";
  const std::string sec = header +
      "#   ZeroMQ CURVE **Secret** Certificate\n"
      "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
      "metadata\ncurve\n    public-key = \"" + keys.public_key + "\"\n    secret-key = \"" +
      keys.secret_key + "\"\n";
  if (Status s = write_file(base + ".key_secret", sec, 0600); !s) return s;
  return write_file(base + ".key", pub, 0644);
}

Result<KeyPair> read_certificate(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status(Code::kIo, "cannot read key file " + path + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().size() > 65536) return Status(Code::kBadRequest, path + " is not a key file (too large)");
  KeyPair keys{zpl_value(text.str(), "public-key"), zpl_value(text.str(), "secret-key")};
  if (!valid_key(keys.public_key))
    return Status(Code::kBadRequest, path + " holds no valid public-key (40 characters of Z85)");
  if (!keys.secret_key.empty() && !valid_key(keys.secret_key))
    return Status(Code::kBadRequest, path + " holds an invalid secret-key");
  if (!keys.secret_key.empty()) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077))
      return Status(Code::kBadRequest, "secret key file " + path + " is readable by others (chmod 600 it)");
  }
  return keys;
}

Result<std::string> public_key_of(const std::string& key_or_path) {
  // A file when one is there: a 40-character path can also read as Z85.
  struct stat st {};
  if (valid_key(key_or_path) && ::stat(key_or_path.c_str(), &st) != 0) return key_or_path;
  auto cert = read_certificate(key_or_path);
  if (!cert) return cert.status();
  return cert->public_key;
}

Result<ClientKeys> client_keys(const std::string& server_key, const std::string& secret_file) {
  ClientKeys keys;
  if (server_key.empty() && secret_file.empty()) return keys;
  if (server_key.empty()) return Status(Code::kBadRequest, "a CURVE secret key needs the router's public key too (--curve-server-key)");
  if (secret_file.empty()) return Status(Code::kBadRequest, "the router's public key needs this process's own key too (--curve-secret)");
  auto server = public_key_of(server_key);
  if (!server) return server.status();
  auto own = read_certificate(secret_file);
  if (!own) return own.status();
  if (own->secret_key.empty()) return Status(Code::kBadRequest, secret_file + " is a public certificate: give the .key_secret file");
  keys.server_public = *server;
  keys.own = *own;
  return keys;
}

void apply_client(zmq::socket_t& socket, const ClientKeys& keys) {
  if (!keys.enabled()) return;
  socket.set(zmq::sockopt::curve_serverkey, keys.server_public);
  socket.set(zmq::sockopt::curve_publickey, keys.own.public_key);
  socket.set(zmq::sockopt::curve_secretkey, keys.own.secret_key);
}

void apply_server(zmq::socket_t& socket, const KeyPair& server, std::string_view zap_domain) {
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, server.secret_key);
  socket.set(zmq::sockopt::zap_domain, std::string(zap_domain));
  // ZMQ_ZAP_ENFORCE_DOMAIN (a draft option in the 4.3 headers, honoured by the library): with
  // no ZAP handler answering, refuse every peer instead of admitting any key.
  const int enforce = 1;
  zmq_setsockopt(socket.handle(), 93, &enforce, sizeof enforce);
}

std::optional<Role> sender_role(const zmq::message_t& frame) {
  const char* user = zmq_msg_gets(const_cast<zmq_msg_t*>(frame.handle()), "User-Id");
  if (!user) return std::nullopt;
  return parse_role(user);
}

bool is_local_endpoint(const std::string& endpoint) {
  if (endpoint.rfind("inproc://", 0) == 0 || endpoint.rfind("ipc://", 0) == 0) return true;
  if (endpoint.rfind("tcp://", 0) != 0) return false;  // pgm, udp, ...: network transports
  std::string rest = endpoint.substr(6);
  if (const size_t semi = rest.find(';'); semi != std::string::npos) rest = rest.substr(semi + 1);  // source;destination
  const size_t colon = rest.rfind(':');
  std::string host = colon == std::string::npos ? rest : rest.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "*") return false;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || !found) return false;
  bool all = true;
  for (addrinfo* a = found; a; a = a->ai_next) all = all && is_loopback(a->ai_addr);
  ::freeaddrinfo(found);
  return all;
}

Status check_endpoints(const std::string& endpoints, bool curve_on, bool insecure_plaintext, const std::string& what) {
  if (curve_on || insecure_plaintext) return Status::ok();
  std::stringstream list(endpoints);
  std::string ep;
  while (std::getline(list, ep, ',')) {
    if (ep.empty() || is_local_endpoint(ep)) continue;
    return Status(Code::kBadRequest, what + " " + ep +
                                         " is not a loopback address: ZeroMQ links off loopback need CURVE keys "
                                         "(zbatch keygen; --curve-secret and the router's key), or "
                                         "--insecure-plaintext to accept anyone on the network");
  }
  return Status::ok();
}

}  // namespace zb::curve

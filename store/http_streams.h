// The two ways a request is answered through cpp-httplib's Stream (internal to store/). Both
// read a request the connection thread has already received whole, so parsing never waits on
// the network:
// - BufferedStream collects the answer in memory; the connection thread sends it. A request
//   thread is busy only while the handler runs.
// - DirectStream writes the answer to the socket as it is produced, for event streams on
//   their own threads; each write waits at most `write_timeout` for the client to take it.
#pragma once

#include <chrono>
#include <string>

#include <httplib.h>

namespace zb::store {

class TlsSession;

struct Peer {
  std::string ip;
  int port = 0;
  std::string local_ip;
  int local_port = 0;
  std::string client;  // client_key(ip): what per-client limits count by
};

class BufferedStream : public httplib::Stream {
 public:
  BufferedStream(std::string request, const Peer& peer) : request_(std::move(request)), peer_(peer) {}
  bool is_readable() const override { return read_ < request_.size(); }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return INVALID_SOCKET; }
  std::string take_answer() { return std::move(answer_); }

 private:
  std::string request_;
  size_t read_ = 0;
  const Peer& peer_;
  std::string answer_;
};

class DirectStream : public httplib::Stream {
 public:
  DirectStream(int fd, TlsSession* tls, std::string request, const Peer& peer, std::chrono::milliseconds write_timeout)
      : fd_(fd), tls_(tls), request_(std::move(request)), peer_(peer), write_timeout_(write_timeout) {}
  bool is_readable() const override { return read_ < request_.size(); }
  // False once the client hung up, or has not taken what was sent within write_timeout.
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return fd_; }

 private:
  bool wait(short events) const;
  int fd_;
  TlsSession* tls_;
  std::string request_;
  size_t read_ = 0;
  const Peer& peer_;
  std::chrono::milliseconds write_timeout_;
};

}  // namespace zb::store

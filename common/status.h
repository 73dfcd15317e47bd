// Errors as values. Every fallible operation that crosses a component boundary returns a
// Status or a Result<T>; exceptions thrown by third-party libraries (msgpack, toml++,
// nlohmann::json, cppzmq) are caught at the parse or I/O boundary and turned into one.
//
// The codes mirror HTTP where one exists, so the store can answer with the router's code.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace zb {

enum class Code : int {
  kOk = 0,
  kBadRequest = 400,      // malformed input: bytes, JSON, frames, arguments
  kForbidden = 403,       // authenticated, but the role may not do this
  kNotFound = 404,
  kConflict = 409,        // state does not allow the operation
  kTooLarge = 413,        // message, body or batch above a limit
  kUnprocessable = 422,   // well-formed but meaningless: unknown queue or kind
  kInternal = 500,
  kUnavailable = 503,     // peer not answering, shutting down
  kTimeout = 504,
  kBadVersion = 505,      // protocol version we do not speak
  kStorageFull = 507,     // LMDB map at its configured maximum
  kIo = 600,              // local I/O: files, LMDB, sockets
  // A submission that may or may not have been accepted: it was sent, and no answer came
  // before its deadline. Retrying with the same idempotency key is safe (HTTP 504). A
  // submission refused for sure (never runs) is kUnavailable or another error instead.
  kOutcomeUnknown = 601,
};

// Short stable name of a code ("bad_request"), used in logs and JSON errors.
const char* code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "not_found: no task 1234"
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                      // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).is_ok()); }  // NOLINT

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  Status status() const { return is_ok() ? Status::ok() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace zb

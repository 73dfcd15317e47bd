// What the routes share: the checks before routing, the error answers, the client pool, and
// the answers to a submission. The routes themselves are in the files named in http_api.h.
#include "store/http_api.h"

#include <cstdlib>
#include <optional>

#include "common/log.h"
#include "store/http_json.h"

namespace zb::store {

using nlohmann::json;

Result<std::string> submission_key(const httplib::Request& req, const json& body) {
  std::optional<std::string> header, field;
  if (req.has_header("Idempotency-Key")) header = req.get_header_value("Idempotency-Key");
  if (auto it = body.find("idempotency_key"); it != body.end()) {
    if (!it->is_string()) return Status(Code::kBadRequest, "idempotency_key: must be a string");
    field = it->get<std::string>();
  }
  if ((header && header->empty()) || (field && field->empty()))
    return Status(Code::kBadRequest, "an idempotency key must not be empty (leave it out to have one assigned)");
  if (header && field && *header != *field)
    return Status(Code::kBadRequest, "the Idempotency-Key header and idempotency_key differ");
  std::string key = header ? *header : field.value_or("");
  if (key.size() > 200) return Status(Code::kBadRequest, "an idempotency key has at most 200 bytes");
  if (key.empty()) key = "http-" + Id::random().to_string();
  return key;
}

void send_submitted(httplib::Response& res, int status, json body, const std::string& key) {
  res.set_header("Idempotency-Key", key);
  body["idempotency_key"] = key;
  send_json(res, status, body);
}

void send_submission_error(httplib::Response& res, const Status& s, const std::string& key) {
  std::string message = s.message();
  if (s.code() == Code::kOutcomeUnknown)
    message = "the batch may or may not have been accepted (" + s.message() +
              "); repeating the request with header Idempotency-Key: " + key +
              " is safe: if it was accepted, the repeat answers its ids and runs nothing twice";
  else if (s.code() == Code::kUnavailable)
    message = "nothing was accepted (" + s.message() + "); repeating the request is safe";
  res.set_header("Idempotency-Key", key);
  send_json(res, http_status(s.code()),
            json{{"error", {{"code", code_name(s.code())}, {"message", message}, {"idempotency_key", key}}}});
}

std::unique_ptr<Client> ClientPool::take() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  ClientOptions o;
  o.router = router_;
  o.timeout = timeout_;
  o.curve = curve_;
  o.insecure_plaintext = true;  // the store checked its endpoints at start-up
  return std::move(Client::connect(o, &context_).value());
}

void ClientPool::give(std::unique_ptr<Client> c) {
  std::lock_guard lock(mu_);
  idle_.push_back(std::move(c));
}

ClusterView::ClusterView(ClientPool& pool)
    : ClusterView(Ask([&pool](proto::ControlOp op) {
        return pool.with([&](Client& c) { return c.control(op, proto::default_control_args(op)); });
      })) {}

void install_routes(HttpServer& server, StatusDb& db, Follower& follower, ClientPool& pool,
                    const HttpLimits& limits, const Authenticator& auth, Webhooks& webhooks) {
  // Bodies are checked before they are read: cpp-httplib enforces its payload limit only for
  // Content-Length bodies, so chunked or length-less uploads are refused here.
  server.set_payload_max_length(limits.max_body_bytes);
  server.set_pre_routing_handler([limits, &auth](const httplib::Request& req, httplib::Response& res) {
    if (!auth.admit(req, res)) return httplib::Server::HandlerResponse::Handled;
    if (req.method == "POST" || req.method == "PUT") {
      if (req.has_header("Transfer-Encoding")) {
        send_error(res, Status(Code::kBadRequest, "chunked request bodies are not accepted; send Content-Length"));
        return httplib::Server::HandlerResponse::Handled;
      }
      const std::string len = req.get_header_value("Content-Length");
      if (!len.empty() && std::strtoull(len.c_str(), nullptr, 10) > limits.max_body_bytes) {
        send_error(res, Status(Code::kTooLarge, "request body exceeds " + std::to_string(limits.max_body_bytes) + " bytes"));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) send_error(res, Status(Code::kNotFound, "no route " + req.method + " " + req.path));
    else if (res.status == 413) send_error(res, Status(Code::kTooLarge, "request body too large"));
    else send_error(res, Status(res.status == 400 ? Code::kBadRequest : Code::kInternal,
                                "HTTP " + std::to_string(res.status) + " for " + req.method + " " + req.path));
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("store http handler failed reason=\"{}\"", what);
    send_error(res, Status(Code::kInternal, what));
  });

  const Api api{db, follower, pool, limits, std::make_shared<ClusterView>(pool),
                std::make_shared<ReadYourWrites>(db, follower), webhooks};
  install_batch_routes(server, api);
  install_export_routes(server, api);
  install_task_routes(server, api);
  install_control_routes(server, pool);
  install_metrics_routes(server, api);
  install_webhook_routes(server, api);
}

}  // namespace zb::store

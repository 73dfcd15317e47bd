// Webhook URLs and signatures (store/webhooks.h): what a submission may name, hostile URLs
// refused with a reason, the signature a receiver recomputes, and hooks kept across a reopen.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "store/webhooks.h"
#include "tests/support/harness.h"

namespace zb::store {
namespace {

TEST(WebhookUrl, TakesHttpAndHttpsUrlsApart) {
  auto u = parse_webhook_url("HTTPS://Hooks.Example:8443/a/b?x=1#frag");
  ASSERT_TRUE(u) << u.status().message();
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "hooks.example");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->path, "/a/b?x=1");
  EXPECT_EQ(u->origin(), "https://hooks.example:8443");
  auto v6 = parse_webhook_url("http://[::1]/h");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 80);
  EXPECT_EQ(v6->origin(), "http://[::1]:80");
  auto bare = parse_webhook_url("http://h?q");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->path, "/?q");
}

TEST(WebhookUrl, RefusesWhatIsNotAnHttpUrlWithAReason) {
  const std::vector<std::string> bads = {"", "ftp://h/", "file:///etc/passwd", "gopher://h", "h/x", "http://", "http:///x",
                          "http://h:/", "http://h:0/", "http://h:65536/", "http://h:12a/", "http://u:p@h/",
                          "http://[::1/", "http://[::1]x/", "http://h/a b", std::string("http://h/\0x", 10),
                          "http://h/\x7f", "http://h/\xc3\xa9", std::string("http://h/") + std::string(3000, 'a')};
  for (const std::string& bad : bads) {
    auto u = parse_webhook_url(bad);
    EXPECT_FALSE(u) << bad;
    if (!u) {
      EXPECT_EQ(u.status().code(), Code::kBadRequest);
      EXPECT_NE(u.status().message().find("webhook.url"), std::string::npos) << u.status().message();
    }
  }
}

TEST(WebhookField, AcceptsOnlyAnObjectWithAUrl) {
  using nlohmann::json;
  EXPECT_TRUE(parse_webhook(json{{"url", "http://h/x"}}));
  for (const json& bad : {json(nullptr), json("http://h/"), json(1), json::array(), json::object(),
                          json{{"url", 1}}, json{{"url", nullptr}}, json{{"url", json::object()}},
                          json{{"url", "http://h/"}, {"secret", "s"}}})
    EXPECT_FALSE(parse_webhook(bad)) << bad.dump();
}

TEST(WebhookSignature, IsHmacSha256OfTimestampDotBody) {
  // Python: hmac.new(b"0123456789abcdef", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
  EXPECT_EQ(webhook_signature("0123456789abcdef", "1700000000", R"({"a":1})"),
            "sha256=9eb18f493f8ec135d9eb2dad817c369bb4e9cbfa818657897a7437c1cd8c3a23");
}

TEST(Webhooks, KeepsHooksAndTheSecretAcrossAReopen) {
  zb::testing::TempDir dir;
  const Id task = Id::random();
  auto never = [](HookKind, const Id&) { return std::optional<std::string>(); };
  {
    auto w = Webhooks::open(dir.str(), {}, never);
    ASSERT_TRUE(w) << w.status().message();
    ASSERT_TRUE((*w)->add(HookKind::kTask, task, "http://127.0.0.1:9/a"));
    ASSERT_TRUE((*w)->add(HookKind::kTask, task, "http://127.0.0.1:9/second"));  // the first one stands
  }
  auto secret = [&] {
    std::ifstream in(dir.str() + "/webhook_secret");
    std::string line;
    std::getline(in, line);
    return line;
  };
  const std::string first = secret();
  EXPECT_EQ(first.size(), 64u);
  auto w = Webhooks::open(dir.str(), {}, never);
  ASSERT_TRUE(w) << w.status().message();
  EXPECT_EQ(secret(), first);
  auto h = (*w)->find(HookKind::kTask, task);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->url, "http://127.0.0.1:9/a");
  EXPECT_EQ(h->state, HookState::kWaiting);
  EXPECT_FALSE((*w)->find(HookKind::kGroup, task));
  auto listed = (*w)->list(10);
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 1u);
}

TEST(Webhooks, AllowListTakesNamesAddressesAndCidrs) {
  zb::testing::TempDir dir;
  WebhookOptions o;
  o.allow = {"", "hooks.example, 10.0.0.0/8", "::1"};  // as flags and the configuration give them
  auto w = Webhooks::open(dir.str(), o, [](HookKind, const Id&) { return std::optional<std::string>(); });
  ASSERT_TRUE(w) << w.status().message();
  EXPECT_TRUE((*w)->allowed("https://HOOKS.example/x"));
  EXPECT_TRUE((*w)->allowed("http://10.20.30.40:8080/x"));
  EXPECT_TRUE((*w)->allowed("http://[::1]/x"));
  EXPECT_FALSE((*w)->allowed("http://11.0.0.1/x"));
  EXPECT_FALSE((*w)->allowed("http://127.0.0.1/x"));
  EXPECT_FALSE((*w)->allowed("http://other.example/x"));
  WebhookOptions none;
  none.allow = {""};  // the configuration's default: any host
  auto any = Webhooks::open(dir.str() + "/any", none, [](HookKind, const Id&) { return std::optional<std::string>(); });
  ASSERT_TRUE(any) << any.status().message();
  EXPECT_TRUE((*any)->allowed("http://127.0.0.1/x"));
  WebhookOptions bad;
  bad.allow = {"10.0.0.0/33"};
  EXPECT_FALSE(Webhooks::open(dir.str() + "/b", bad, [](HookKind, const Id&) { return std::optional<std::string>(); }));
}

}  // namespace
}  // namespace zb::store

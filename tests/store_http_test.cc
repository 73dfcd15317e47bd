// The HTTP server's decisions that need no socket: where a request ends and what is refused
// before a thread sees it, which bound addresses are loopback, what per-client limits count by,
// failed-login lockouts, and the route table.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

#include "store/http_framing.h"
#include "store/login_throttle.h"
#include "store/net_address.h"
#include "store/routes.h"

namespace zb::store {
namespace {

using State = RequestFramer::State;

FramingLimits small_limits() {
  FramingLimits l;
  l.max_request_line_bytes = 64;
  l.max_header_line_bytes = 64;
  l.max_headers = 4;
  l.max_head_bytes = 256;
  l.max_body_bytes = 100;
  return l;
}

TEST(RequestFramer, FindsTheHeadAndTheBodyLength) {
  RequestFramer f(small_limits());
  const std::string req = "POST /api/v1/tasks?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
  ASSERT_EQ(f.feed(req), State::kHead);
  EXPECT_EQ(f.head().method, "POST");
  EXPECT_EQ(f.head().path, "/api/v1/tasks");
  EXPECT_EQ(f.head().body_bytes, 5u);
  EXPECT_EQ(f.head().total(), req.size());
}

TEST(RequestFramer, ReadsAHeadArrivingAByteAtATime) {
  RequestFramer f(small_limits());
  const std::string req = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
  for (size_t n = 1; n < req.size(); ++n) ASSERT_EQ(f.feed(std::string_view(req).substr(0, n)), State::kNeedMore) << n;
  ASSERT_EQ(f.feed(req), State::kHead);
  EXPECT_EQ(f.head().total(), req.size());
}

TEST(RequestFramer, SeesThePathAsTheRouterWill) {
  RequestFramer f(small_limits());
  ASSERT_EQ(f.feed("GET  /api/v1/%65vents#frag HTTP/1.1\r\n\r\n"), State::kHead);
  EXPECT_EQ(f.head().path, "/api/v1/events");
}

TEST(RequestFramer, RefusesALongRequestLineWith414BeforeItEnds) {
  RequestFramer f(small_limits());
  ASSERT_EQ(f.feed("GET /" + std::string(100, 'a')), State::kRefused);
  EXPECT_EQ(f.refusal().status, 414);
  EXPECT_EQ(f.refusal().code, "uri_too_long");
}

TEST(RequestFramer, RefusesTooManyHeadersWith431BeforeTheHeadEnds) {
  RequestFramer f(small_limits());
  std::string req = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 5; ++i) req += "X-" + std::to_string(i) + ": v\r\n";
  ASSERT_EQ(f.feed(req), State::kRefused);
  EXPECT_EQ(f.refusal().status, 431);
  EXPECT_NE(f.refusal().message.find("4 headers"), std::string::npos) << f.refusal().message;
}

TEST(RequestFramer, AcceptsExactlyTheMaximumOfHeaders) {
  RequestFramer f(small_limits());
  std::string req = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 4; ++i) req += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(f.feed(req + "\r\n"), State::kHead);
}

TEST(RequestFramer, RefusesALongHeaderLineAndALargeHeadWith431) {
  {
    RequestFramer f(small_limits());
    EXPECT_EQ(f.feed("GET / HTTP/1.1\r\nX: " + std::string(80, 'v')), State::kRefused);
    EXPECT_EQ(f.refusal().status, 431);
  }
  FramingLimits l = small_limits();
  l.max_header_line_bytes = 200;
  RequestFramer f(l);
  std::string req = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 3; ++i) req += "X: " + std::string(90, 'v') + "\r\n";
  EXPECT_EQ(f.feed(req), State::kRefused);
  EXPECT_EQ(f.refusal().status, 431);
  EXPECT_NE(f.refusal().message.find("256 bytes"), std::string::npos) << f.refusal().message;
}

TEST(RequestFramer, RefusesBodiesItWouldHaveToDecode) {
  struct Case {
    std::string header;
    int status;
  };
  for (const auto& c : {Case{"Transfer-Encoding: chunked", 400}, Case{"Content-Encoding: gzip", 415},
                        Case{"Content-Length: 101", 413}, Case{"Content-Length: -1", 400},
                        Case{"Content-Length: 5\r\nContent-Length: 6", 400}}) {
    RequestFramer f(small_limits());
    ASSERT_EQ(f.feed("POST /api/v1/tasks HTTP/1.1\r\n" + c.header + "\r\n\r\n"), State::kRefused) << c.header;
    EXPECT_EQ(f.refusal().status, c.status) << c.header;
  }
}

TEST(RequestFramer, ReadsContentLengthAsTheParserWill) {
  // cpp-httplib percent-decodes header values: the length it would read is the one used here.
  RequestFramer f(small_limits());
  ASSERT_EQ(f.feed("POST / HTTP/1.1\r\ncontent-length: %31%30\r\n\r\n"), State::kHead);
  EXPECT_EQ(f.head().body_bytes, 10u);
}

TEST(RequestFramer, RefusesBareLineFeeds) {
  RequestFramer f(small_limits());
  EXPECT_EQ(f.feed("GET / HTTP/1.1\n\n"), State::kRefused);
  EXPECT_EQ(f.refusal().status, 400);
}

TEST(RequestFramer, NotesExpectContinueAndStartsAfreshAfterReset) {
  RequestFramer f(small_limits());
  ASSERT_EQ(f.feed("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"), State::kHead);
  EXPECT_TRUE(f.head().expect_continue);
  f.reset();
  ASSERT_EQ(f.feed("GET /x HTTP/1.1\r\n\r\n"), State::kHead);
  EXPECT_EQ(f.head().path, "/x");
  EXPECT_FALSE(f.head().expect_continue);
}

sockaddr_storage v4(const char* ip) {
  sockaddr_storage s{};
  auto* in = reinterpret_cast<sockaddr_in*>(&s);
  in->sin_family = AF_INET;
  inet_pton(AF_INET, ip, &in->sin_addr);
  return s;
}

sockaddr_storage v6(const char* ip) {
  sockaddr_storage s{};
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&s);
  in6->sin6_family = AF_INET6;
  inet_pton(AF_INET6, ip, &in6->sin6_addr);
  return s;
}

TEST(Loopback, IsDecidedOnTheAddress) {
  for (const char* ip : {"127.0.0.1", "127.1.2.3", "127.255.255.255"}) {
    auto a = v4(ip);
    EXPECT_TRUE(is_loopback(reinterpret_cast<sockaddr*>(&a))) << ip;
  }
  for (const char* ip : {"0.0.0.0", "10.0.0.1", "192.0.2.2", "128.0.0.1", "126.255.255.255"}) {
    auto a = v4(ip);
    EXPECT_FALSE(is_loopback(reinterpret_cast<sockaddr*>(&a))) << ip;
  }
  for (const char* ip : {"::1", "::ffff:127.0.0.1"}) {
    auto a = v6(ip);
    EXPECT_TRUE(is_loopback(reinterpret_cast<sockaddr*>(&a))) << ip;
  }
  for (const char* ip : {"::", "fd00::2", "::ffff:192.0.2.2", "::2"}) {
    auto a = v6(ip);
    EXPECT_FALSE(is_loopback(reinterpret_cast<sockaddr*>(&a))) << ip;
  }
}

TEST(Loopback, NamesAndShorthandsAreResolvedBeforeDeciding) {
  // Bound to see where they land: "127.1" is 127.0.0.1, "0" is 0.0.0.0.
  for (const auto& [host, loopback] : {std::pair{"127.1", true}, {"localhost", true}, {"0", false}, {"0.0.0.0", false}}) {
    auto l = Listener::open({host, 0});
    ASSERT_TRUE(l) << host << ": " << l.status().message();
    EXPECT_EQ(l->loopback(), loopback) << host << " bound " << l->bound();
  }
  auto missing = Listener::open({"127.lan.example", 0});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.status().message().find("cannot resolve"), std::string::npos) << missing.status().message();
}

TEST(HostPort, ParsesNamesAddressesAndBrackets) {
  auto a = parse_host_port("[::1]:8000");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 8000);
  EXPECT_FALSE(parse_host_port("127.0.0.1"));
  EXPECT_FALSE(parse_host_port("127.0.0.1:0"));
  EXPECT_FALSE(parse_host_port("127.0.0.1:65536"));
  EXPECT_FALSE(parse_host_port("127.0.0.1:8x"));
}

TEST(ClientKey, CountsIpv6ByItsSlash64) {
  EXPECT_EQ(client_key("192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(client_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(client_key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
  EXPECT_NE(client_key("2001:db8:1:3::1"), client_key("2001:db8:1:2::1"));
}

TEST(LoginThrottle, LocksAClientOutAfterMaxFailuresAndOnlyThatClient) {
  LoginThrottle t(3, std::chrono::seconds(60));
  const auto t0 = LoginThrottle::Clock::now();
  EXPECT_FALSE(t.fail("a", t0).locked);
  EXPECT_FALSE(t.fail("a", t0).locked);
  EXPECT_EQ(t.locked_for("a", t0), 0u);
  const auto third = t.fail("a", t0);
  EXPECT_TRUE(third.locked);
  EXPECT_EQ(third.failures, 3u);
  EXPECT_EQ(t.locked_for("a", t0), 60u);
  EXPECT_EQ(t.locked_for("b", t0), 0u);
  EXPECT_EQ(t.locked_for("a", t0 + std::chrono::seconds(59)), 1u);
  EXPECT_EQ(t.locked_for("a", t0 + std::chrono::seconds(60)), 0u);
}

TEST(LoginThrottle, CountsFailuresWithinTheWindowOnly) {
  LoginThrottle t(3, std::chrono::seconds(10));
  const auto t0 = LoginThrottle::Clock::now();
  t.fail("a", t0);
  t.fail("a", t0 + std::chrono::seconds(5));
  EXPECT_EQ(t.fail("a", t0 + std::chrono::seconds(11)).failures, 1u);  // a new window
}

TEST(LoginThrottle, StaysBoundedWithManyClients) {
  LoginThrottle t(2, std::chrono::seconds(10), 100);
  const auto t0 = LoginThrottle::Clock::now();
  for (int i = 0; i < 1000; ++i) t.fail("c" + std::to_string(i), t0);
  EXPECT_EQ(t.remembered(), 100u);
  EXPECT_TRUE(t.fail("c999", t0).locked);  // the newest is remembered: its second failure locks it
  // Once their windows and lockouts are over, the old entries make room again.
  t.fail("late", t0 + std::chrono::seconds(11));
  EXPECT_EQ(t.remembered(), 1u);
}

TEST(RouteTable, KnowsEveryInstalledRouteAndRefusesStrangers) {
  RouteTable table;
  for (const auto& spec : route_specs()) {
    const std::string pattern(spec.pattern.ends_with('*') ? std::string(spec.pattern.substr(0, spec.pattern.size() - 1)) + "app.js"
                                                          : spec.pattern);
    ASSERT_NE(table.install(spec.method, pattern), nullptr) << spec.pattern;
  }
  EXPECT_TRUE(table.complete()) << table.complete().message();
  EXPECT_EQ(table.role_for("GET", "/healthz"), Role::kNone);
  EXPECT_EQ(table.role_for("HEAD", "/api/v1/stats"), Role::kRead);
  EXPECT_EQ(table.role_for("POST", "/batch/celery/tests"), Role::kSubmit);
  EXPECT_EQ(table.role_for("POST", "/api/v1/tasks/x/revoke"), Role::kAdmin);
  EXPECT_EQ(table.role_for("DELETE", "/anything"), Role::kRead);
  EXPECT_TRUE(table.streams("GET", "/api/v1/events"));
  EXPECT_FALSE(table.streams("GET", "/api/v1/stats"));

  EXPECT_EQ(table.install("GET", "/not/in/the/table"), nullptr);
  const Status s = table.complete();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("GET /not/in/the/table has no entry"), std::string::npos) << s.message();

  RouteTable partial;
  partial.install("GET", "/healthz");
  EXPECT_NE(partial.complete().message().find("POST /api/v1/purge is in the route table but not installed"),
            std::string::npos);
}

}  // namespace
}  // namespace zb::store

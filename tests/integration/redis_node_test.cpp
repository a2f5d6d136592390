// The built-in Redis node against real redis-server processes: transports, TLS, AUTH/ACL,
// SELECT, scripts, pipelining, binary safety, and failures (kill, pause, down node, close).
#include <gtest/gtest.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "internal/resp.hpp"
#include "redlock/endpoint.hpp"
#include "redlock/error.hpp"
#include "redlock/redis_node.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::connection_options;
using redlock::endpoint;
using redlock::errc;
using redlock::redis_node;
using redlock::reply;
using redlock::test::certs;
using redlock::test::redis_server;
using redlock::test::redis_server_options;
using redlock::test::wait_for;

struct outcome {
  std::error_code ec;
  reply r;
};

using pending = std::shared_ptr<std::promise<outcome>>;

std::future<outcome> exec(redis_node& n, std::vector<std::string> argv) {
  auto p = std::make_shared<std::promise<outcome>>();
  auto f = p->get_future();
  n.async_exec(std::move(argv), [p](std::error_code ec, reply r) {
    p->set_value({ec, std::move(r)});
  });
  return f;
}

std::future<outcome> eval(redis_node& n, const redlock::script& s, std::vector<std::string> keys,
                          std::vector<std::string> args) {
  auto p = std::make_shared<std::promise<outcome>>();
  auto f = p->get_future();
  n.async_eval(s, keys, args, [p](std::error_code ec, reply r) {
    p->set_value({ec, std::move(r)});
  });
  return f;
}

// Waits for a completion under a deadline; a missing completion fails the test.
outcome get(std::future<outcome>& f, std::chrono::milliseconds deadline = 10s) {
  if (f.wait_for(deadline) != std::future_status::ready)
    throw std::runtime_error("no completion within " + std::to_string(deadline.count()) + " ms");
  return f.get();
}

outcome run(redis_node& n, std::vector<std::string> argv) {
  auto f = exec(n, std::move(argv));
  return get(f);
}

// Timeouts far above what a loaded CI machine (sanitizers, parallel ctest) needs, so that
// only the tests about timeouts see them; those set their own bounds.
connection_options generous() {
  connection_options o;
  o.connect_timeout = 10s;
  o.request_timeout = 10s;
  return o;
}

// Options built by assignment (designated initializers trip -Wmissing-field-initializers).
template <class F>
redis_server_options options(F set) {
  redis_server_options o;
  set(o);
  return o;
}

endpoint ep_of(const std::string& url) {
  return redlock::parse_endpoint(url);
}

// Resumes a paused server whatever happens in the test.
struct resume_guard {
  redis_server& s;
  ~resume_guard() { s.resume(); }
};

class RedisNode : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i)
      threads_.emplace_back([this] { io_.run(); });
  }

  void TearDown() override { drain(); }

  // Once every node is closed and destroyed the io_context must run out of work (no
  // operation left hanging). Joins the I/O threads; idempotent.
  void drain() {
    if (threads_.empty())
      return;
    guard_.reset();
    const bool drained = wait_for([&] { return io_.stopped(); }, 10s);
    EXPECT_TRUE(drained) << "io_context still has work after every node was destroyed";
    if (!drained)
      io_.stop();
    for (auto& t : threads_)
      t.join();
    threads_.clear();
  }

  std::unique_ptr<redis_node> make(const endpoint& ep, connection_options opts = generous()) {
    return std::make_unique<redis_node>(io_.get_executor(), ep, opts);
  }
  std::unique_ptr<redis_node> make(const std::string& url, connection_options opts = generous()) {
    return make(ep_of(url), opts);
  }

  // A script and a command issued while the handshake is under way (the server is paused
  // until both are queued, so that neither arrives after the failure, when the backoff would
  // answer it) must fail with the handshake's error and the server's message, and neither
  // may run: no key in any db of `server`, no script call, as any user.
  void expect_handshake_refuses_unsent(redis_server& server, const endpoint& ep, errc code,
                                       const std::string& message) {
    auto node = make(ep);
    server.pause();
    resume_guard resume{server};
    redlock::script s("return redis.call('SET', KEYS[1], ARGV[1])");
    auto by_script = eval(*node, s, {"from-script"}, {"v"});
    auto by_command = exec(*node, {"SET", "from-command", "v"});
    server.resume();
    for (auto* f : {&by_script, &by_command}) {
      auto r = get(*f);
      EXPECT_EQ(r.ec, code) << r.ec.message() << ": " << r.r.str;
      EXPECT_NE(r.r.str.find(message), std::string::npos) << r.r.str;
    }
    node.reset();
    EXPECT_EQ(server.all_keys(), std::vector<std::string>{});
    EXPECT_EQ(server.command_calls("eval"), 0);
    EXPECT_EQ(server.command_calls("evalsha"), 0);
    EXPECT_EQ(server.command_calls("set"), 0);
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{io_.get_executor()};
  std::vector<std::thread> threads_;
};

// ---- transports ---------------------------------------------------------------------------

TEST_F(RedisNode, PlainTcpSetAndGetRoundTrip) {
  redis_server server;
  auto node = make(server.url());
  auto set = run(*node, {"SET", "k", "v"});
  ASSERT_FALSE(set.ec) << set.r.str;
  EXPECT_EQ(set.r.kind, reply::type::status);
  EXPECT_EQ(set.r.str, "OK");
  auto got = run(*node, {"GET", "k"});
  ASSERT_FALSE(got.ec);
  EXPECT_EQ(got.r.kind, reply::type::string);
  EXPECT_EQ(got.r.str, "v");
  EXPECT_EQ(server.command({"GET", "k"}).str, "v");
}

TEST_F(RedisNode, UnixSocketRoundTrip) {
  redis_server server(options([](redis_server_options& o) { o.unix_socket = true; }));
  auto node = make(server.unix_url());
  auto set = run(*node, {"SET", "via-unix", "1"});
  ASSERT_FALSE(set.ec) << set.r.str;
  EXPECT_EQ(server.command({"GET", "via-unix"}).str, "1");
}

TEST_F(RedisNode, HostNameIsResolved) {
  redis_server server;
  endpoint ep;
  ep.host = "localhost";
  ep.port = server.port();
  auto node = make(ep);
  auto r = run(*node, {"PING"});
  ASSERT_FALSE(r.ec) << r.r.str;
  EXPECT_EQ(r.r.str, "PONG");
}

TEST_F(RedisNode, Ipv6LiteralHostConnects) {
  redis_server server(options([](redis_server_options& o) { o.bind = "127.0.0.1 ::1"; }));
  auto node = make("redis://[::1]:" + std::to_string(server.port()));
  auto r = run(*node, {"PING"});
  ASSERT_FALSE(r.ec) << r.r.str;
  EXPECT_EQ(r.r.str, "PONG");
}

TEST_F(RedisNode, EmptyCommandIsInvalidArgument) {
  redis_server server;
  auto node = make(server.url());
  auto r = run(*node, {});
  EXPECT_EQ(r.ec, errc::invalid_argument);
}

TEST_F(RedisNode, ErrorReplyKeepsServerMessage) {
  redis_server server;
  auto node = make(server.url());
  auto r = run(*node, {"NOSUCHCOMMAND", "x"});
  EXPECT_EQ(r.ec, errc::server_error);
  EXPECT_TRUE(r.r.is_error());
  EXPECT_NE(r.r.str.find("unknown command"), std::string::npos) << r.r.str;
  // The connection is still usable after an error reply.
  EXPECT_FALSE(run(*node, {"PING"}).ec);
}

TEST_F(RedisNode, IdIsTheRedactedUrl) {
  redis_server server(options([](redis_server_options& o) { o.requirepass = "s3cret-pw"; }));
  auto node = make(server.url());
  EXPECT_EQ(node->id().find("s3cret-pw"), std::string::npos) << node->id();
  EXPECT_NE(node->id().find(std::to_string(server.port())), std::string::npos) << node->id();
}

// ---- TLS ----------------------------------------------------------------------------------

endpoint tls_ep(const redis_server& s) {
  endpoint ep = ep_of(s.tls_url());
  ep.tls.ca_file = certs().ca_cert;
  return ep;
}

TEST_F(RedisNode, TlsWithCaFileVerifiesServer) {
  redis_server server(options([](redis_server_options& o) { o.tls = true; }));
  auto node = make(tls_ep(server));
  auto r = run(*node, {"SET", "tls", "yes"});
  ASSERT_FALSE(r.ec) << r.r.str;
  EXPECT_EQ(server.command({"GET", "tls"}).str, "yes");
}

TEST_F(RedisNode, TlsWithHashedCaDirectoryVerifiesServer) {
  redis_server server(options([](redis_server_options& o) { o.tls = true; }));
  endpoint ep = ep_of(server.tls_url());
  ep.tls.ca_dir = certs().ca_dir;
  auto node = make(ep);
  auto r = run(*node, {"PING"});
  ASSERT_FALSE(r.ec) << r.r.str;
  EXPECT_EQ(r.r.str, "PONG");
}

TEST_F(RedisNode, TlsServerNameIsUsedForSniAndVerification) {
  redis_server server(options([](redis_server_options& o) { o.tls = true; }));
  endpoint ep = tls_ep(server);
  ep.tls.server_name = "localhost";  // connect to 127.0.0.1, verify the DNS name
  auto node = make(ep);
  auto r = run(*node, {"PING"});
  ASSERT_FALSE(r.ec) << r.r.str;
}

TEST_F(RedisNode, TlsServerNameMismatchFailsVerification) {
  redis_server server(options([](redis_server_options& o) { o.tls = true; }));
  endpoint ep = tls_ep(server);
  ep.tls.server_name = "not-the-server.example";
  auto node = make(ep);
  auto r = run(*node, {"PING"});
  EXPECT_EQ(r.ec, errc::tls_failed) << r.r.str;
}

TEST_F(RedisNode, TlsClientCertificateAcceptedWhenServerRequiresOne) {
  redis_server server(options([](redis_server_options& o) {
    o.tls = true;
    o.tls_auth_clients = true;
  }));
  endpoint ep = tls_ep(server);
  ep.tls.cert_file = certs().client_cert;
  ep.tls.key_file = certs().client_key;
  auto node = make(ep);
  auto r = run(*node, {"PING"});
  ASSERT_FALSE(r.ec) << r.r.str;
  EXPECT_EQ(r.r.str, "PONG");
}

TEST_F(RedisNode, TlsWithoutClientCertificateIsRejectedWhenServerRequiresOne) {
  redis_server server(options([](redis_server_options& o) {
    o.tls = true;
    o.tls_auth_clients = true;
  }));
  auto node = make(tls_ep(server));
  // The server rejects the connection after the TLS 1.3 handshake (alert "certificate
  // required"), so the error surfaces on the first read.
  auto r = run(*node, {"PING"});
  EXPECT_TRUE(r.ec == errc::tls_failed || r.ec == errc::connection_lost ||
              r.ec == errc::connect_failed)
      << r.ec.message() << ": " << r.r.str;
}

TEST_F(RedisNode, TlsWithWrongCaFailsWithTlsFailed) {
  redis_server server(options([](redis_server_options& o) { o.tls = true; }));
  endpoint ep = ep_of(server.tls_url());
  ep.tls.ca_file = certs().other_ca_cert;
  auto node = make(ep);
  auto r = run(*node, {"PING"});
  EXPECT_EQ(r.ec, errc::tls_failed) << r.r.str;
  EXPECT_NE(r.r.str.find("verify"), std::string::npos) << r.r.str;
}

TEST_F(RedisNode, TlsInsecureSkipVerifyConnectsDespiteUnknownCa) {
  redis_server server(options([](redis_server_options& o) { o.tls = true; }));
  endpoint ep = ep_of(server.tls_url());
  ep.tls.ca_file = certs().other_ca_cert;
  ep.tls.insecure_skip_verify = true;
  auto node = make(ep);
  auto r = run(*node, {"PING"});
  ASSERT_FALSE(r.ec) << r.r.str;
}

TEST_F(RedisNode, TlsToPlainPortFailsWithoutHanging) {
  redis_server server;
  endpoint ep = ep_of(server.url());
  ep.tls.enabled = true;
  ep.tls.ca_file = certs().ca_cert;
  connection_options opts = generous();
  opts.connect_timeout = 1000ms;
  auto node = make(ep, opts);
  const auto start = std::chrono::steady_clock::now();
  auto r = run(*node, {"PING"});
  EXPECT_TRUE(r.ec) << r.r.str;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5 * opts.connect_timeout);
}

TEST_F(RedisNode, PlainToTlsPortFailsWithoutHanging) {
  redis_server server(options([](redis_server_options& o) { o.tls = true; }));
  endpoint ep = ep_of(server.tls_url());
  ep.tls.enabled = false;
  connection_options opts = generous();
  opts.request_timeout = 500ms;
  auto node = make(ep, opts);
  const auto start = std::chrono::steady_clock::now();
  auto r = run(*node, {"PING"});
  EXPECT_TRUE(r.ec) << r.r.str;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5 * opts.request_timeout);
}

// A port of the other kind: the error says what is likely wrong, not just "timed out".

TEST_F(RedisNode, TlsToPlainPortSaysItMayBeAPlainPort) {
  redis_server server;
  endpoint ep = ep_of(server.url());
  ep.tls.enabled = true;
  ep.tls.ca_file = certs().ca_cert;
  const std::string hint = "is this a plain (non-TLS) port?";
  {
    connection_options opts = generous();
    opts.connect_timeout = 500ms;  // the connect timeout ends it
    auto node = make(ep, opts);
    auto r = run(*node, {"PING"});
    EXPECT_EQ(r.ec, errc::timeout) << r.r.str;
    EXPECT_NE(r.r.str.find(hint), std::string::npos) << r.r.str;
  }
  {
    connection_options opts = generous();
    opts.request_timeout = 300ms;  // the request's own deadline ends it
    auto node = make(ep, opts);
    auto r = run(*node, {"PING"});
    EXPECT_EQ(r.ec, errc::timeout) << r.r.str;
    EXPECT_NE(r.r.str.find(hint), std::string::npos) << r.r.str;
  }
}

TEST_F(RedisNode, TlsToAServerAnsweringInPlainTextSaysItMayBeAPlainPort) {
  // Not Redis (which stays silent, see above) but a plain-text server that answers at once,
  // as a plain Redis does when the ClientHello happens to hold a newline.
  asio::io_context fake_io;
  asio::ip::tcp::acceptor acceptor(fake_io,
                                   asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::ip::tcp::socket peer(fake_io);
  const std::string answer = "-ERR unknown command\r\n";
  acceptor.async_accept(peer, [&](asio::error_code ec) {
    if (!ec)
      asio::async_write(peer, asio::buffer(answer), [](asio::error_code, std::size_t) {});
  });
  std::thread fake([&] { fake_io.run_for(10s); });
  endpoint ep;
  ep.host = "127.0.0.1";
  ep.port = acceptor.local_endpoint().port();
  ep.tls.enabled = true;
  ep.tls.ca_file = certs().ca_cert;
  auto node = make(ep);
  auto r = run(*node, {"PING"});
  fake_io.stop();
  fake.join();
  EXPECT_EQ(r.ec, errc::tls_failed) << r.r.str;
  EXPECT_NE(r.r.str.find("is this a plain (non-TLS) port?"), std::string::npos) << r.r.str;
}

TEST_F(RedisNode, PlainToTlsPortSaysItMayBeATlsPort) {
  redis_server server(options([](redis_server_options& o) { o.tls = true; }));
  endpoint ep = ep_of(server.tls_url());
  ep.tls.enabled = false;
  const std::string hint = "is this a TLS port (use rediss://)?";
  {
    auto node = make(ep);  // no handshake: the PING itself is refused
    auto r = run(*node, {"PING"});
    EXPECT_TRUE(r.ec) << r.r.str;
    EXPECT_NE(r.r.str.find(hint), std::string::npos) << r.ec.message() << ": " << r.r.str;
  }
  {
    ep.password = "pw";  // the AUTH is refused
    auto node = make(ep);
    auto r = run(*node, {"PING"});
    EXPECT_TRUE(r.ec) << r.r.str;
    EXPECT_NE(r.r.str.find(hint), std::string::npos) << r.ec.message() << ": " << r.r.str;
  }
}

TEST_F(RedisNode, TlsHandshakeToPausedServerHitsConnectTimeout) {
  redis_server server(options([](redis_server_options& o) { o.tls = true; }));
  connection_options opts = generous();
  opts.connect_timeout = 300ms;
  opts.request_timeout = 5000ms;
  auto node = make(tls_ep(server), opts);
  server.pause();
  resume_guard resume{server};
  const auto start = std::chrono::steady_clock::now();
  auto r = run(*node, {"PING"});
  EXPECT_EQ(r.ec, errc::timeout) << r.r.str;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5 * opts.connect_timeout);
}

// ---- AUTH, ACL, SELECT --------------------------------------------------------------------

TEST_F(RedisNode, AuthWithRequirepassSucceeds) {
  redis_server server(options([](redis_server_options& o) { o.requirepass = "pa ss:w@rd"; }));
  auto node = make(server.url());
  auto r = run(*node, {"SET", "authed", "1"});
  ASSERT_FALSE(r.ec) << r.r.str;
  EXPECT_EQ(server.command({"GET", "authed"}).str, "1");
}

TEST_F(RedisNode, WrongPasswordFailsWithAuthFailed) {
  redis_server server(options([](redis_server_options& o) { o.requirepass = "right"; }));
  endpoint ep = ep_of(server.url());
  ep.password = "wrong";
  auto node = make(ep);
  auto r = run(*node, {"PING"});
  EXPECT_EQ(r.ec, errc::auth_failed) << r.r.str;
  EXPECT_NE(r.r.str.find("WRONGPASS"), std::string::npos) << r.r.str;
}

TEST_F(RedisNode, UnknownAclUserFailsWithAuthFailed) {
  redis_server server;
  endpoint ep = ep_of(server.url());
  ep.username = "nobody";
  ep.password = "x";
  auto node = make(ep);
  auto r = run(*node, {"PING"});
  EXPECT_EQ(r.ec, errc::auth_failed) << r.r.str;
}

TEST_F(RedisNode, MissingPasswordFailsWithAuthRequired) {
  redis_server server(options([](redis_server_options& o) { o.requirepass = "needed"; }));
  endpoint ep = ep_of(server.url());
  ep.password.clear();
  auto node = make(ep);
  auto r = run(*node, {"GET", "k"});
  EXPECT_EQ(r.ec, errc::auth_required) << r.r.str;
  EXPECT_NE(r.r.str.find("NOAUTH"), std::string::npos) << r.r.str;
}

TEST_F(RedisNode, PasswordToUnprotectedServerFailsWithAuthNotConfigured) {
  redis_server server;
  endpoint ep = ep_of(server.url());
  ep.password = "unneeded";
  auto node = make(ep);
  auto r = run(*node, {"PING"});
  EXPECT_EQ(r.ec, errc::auth_not_configured) << r.r.str;
}

TEST_F(RedisNode, AclUserWithoutPermissionGetsNoPermissionWithServerMessage) {
  redis_server server(options(
      [](redis_server_options& o) { o.extra_config = {"user app on >app-secret ~* +get +set"}; }));
  endpoint ep = ep_of(server.url());
  ep.username = "app";
  ep.password = "app-secret";
  auto node = make(ep);
  auto ok = run(*node, {"SET", "k", "v"});
  ASSERT_FALSE(ok.ec) << ok.r.str;
  redlock::script s("return 1");
  auto f = eval(*node, s, {"k"}, {});
  auto r = get(f);
  EXPECT_EQ(r.ec, errc::no_permission) << r.r.str;
  EXPECT_NE(r.r.str.find("NOPERM"), std::string::npos) << r.r.str;
}

TEST_F(RedisNode, SelectsConfiguredDatabase) {
  redis_server server;
  auto node = make(server.url() + "/3");
  ASSERT_FALSE(run(*node, {"SET", "in-db3", "x"}).ec);
  EXPECT_EQ(server.command({"EXISTS", "in-db3"}).integer, 0);  // not in db 0
  auto in3 = server.command(
      {"EVAL", "redis.call('SELECT', 3) return redis.call('GET', KEYS[1])", "1", "in-db3"});
  EXPECT_EQ(in3.str, "x");
}

TEST_F(RedisNode, SelectOfMissingDatabaseFailsWithServerError) {
  redis_server server;
  endpoint ep = ep_of(server.url());
  ep.db = 999;
  auto node = make(ep);
  auto r = run(*node, {"PING"});
  EXPECT_EQ(r.ec, errc::server_error) << r.r.str;
  EXPECT_NE(r.r.str.find("DB index"), std::string::npos) << r.r.str;
}

// Nothing but AUTH/SELECT is written until the handshake has succeeded: queued requests
// pipelined behind a failed AUTH would run as `default`, behind a failed SELECT in db 0.

TEST_F(RedisNode, MissingDatabaseRunsNothingAndFailsQueuedRequestsWithTheServersError) {
  redis_server server;
  expect_handshake_refuses_unsent(server, ep_of(server.url() + "/99"), errc::server_error,
                                  "DB index is out of range");
}

TEST_F(RedisNode, WrongAclPasswordRunsNothingAsTheOpenDefaultUser) {
  redis_server server(
      options([](redis_server_options& o) { o.extra_config = {"user app on >right ~* +@all"}; }));
  endpoint ep = ep_of(server.url());
  ep.username = "app";
  ep.password = "wrong";
  expect_handshake_refuses_unsent(server, ep, errc::auth_failed, "WRONGPASS");
}

TEST_F(RedisNode, PasswordToServerWithoutOneRunsNothing) {
  redis_server server;
  endpoint ep = ep_of(server.url());
  ep.password = "unneeded";
  expect_handshake_refuses_unsent(server, ep, errc::auth_not_configured, "AUTH");
}

TEST_F(RedisNode, AclUserWithoutSelectPermissionRunsNothingInDbZero) {
  redis_server server(options([](redis_server_options& o) {
    o.extra_config = {"user app on >pw ~* +eval +evalsha +get +set +del +pexpire +pttl"};
  }));
  endpoint ep = ep_of(server.url() + "/3");
  ep.username = "app";
  ep.password = "pw";
  expect_handshake_refuses_unsent(server, ep, errc::no_permission, "NOPERM");
}

TEST_F(RedisNode, RequestIssuedDuringHandshakeWaitsForItAndExpiresUnsent) {
  redis_server server(options([](redis_server_options& o) { o.requirepass = "pw"; }));
  connection_options opts = generous();
  opts.request_timeout = 1000ms;  // the handshake stalls past it; the connect timeout is 10 s
  auto node = make(server.url(), opts);
  server.pause();  // TCP connects (kernel backlog), AUTH gets no reply
  resume_guard resume{server};
  auto early = exec(*node, {"INCR", "early"});
  auto r1 = get(early, 5s);
  EXPECT_EQ(r1.ec, errc::timeout) << r1.r.str;
  // Still the same connect attempt: a request issued now waits for the same handshake.
  auto later = exec(*node, {"INCR", "later"});
  server.resume();
  auto r2 = get(later, 5s);
  EXPECT_FALSE(r2.ec) << r2.r.str;
  EXPECT_TRUE(r2.r.is_integer(1));
  EXPECT_EQ(server.all_keys(), std::vector<std::string>{"0:later"});  // `early` never ran
}

// ---- scripts ------------------------------------------------------------------------------

TEST_F(RedisNode, ScriptIsLoadedWithEvalThenSentWithEvalsha) {
  redis_server server;
  auto node = make(server.url());
  redlock::script s("return redis.call('INCR', KEYS[1])");
  for (int i = 1; i <= 3; ++i) {
    auto f = eval(*node, s, {"n"}, {});
    auto r = get(f);
    ASSERT_FALSE(r.ec) << r.r.str;
    EXPECT_TRUE(r.r.is_integer(i));
  }
  EXPECT_EQ(server.command_calls("eval"), 1);
  EXPECT_EQ(server.command_calls("evalsha"), 2);
}

TEST_F(RedisNode, NoscriptAfterScriptFlushFallsBackToEval) {
  redis_server server;
  auto node = make(server.url());
  redlock::script s("return ARGV[1] .. KEYS[1]");
  auto f1 = eval(*node, s, {"key"}, {"arg-"});
  auto r1 = get(f1);
  ASSERT_FALSE(r1.ec) << r1.r.str;
  EXPECT_EQ(r1.r.str, "arg-key");

  ASSERT_EQ(server.command({"SCRIPT", "FLUSH"}).str, "OK");
  auto f2 = eval(*node, s, {"key2"}, {"x-"});
  auto r2 = get(f2);
  ASSERT_FALSE(r2.ec) << r2.r.str;
  EXPECT_EQ(r2.r.str, "x-key2");
  EXPECT_EQ(server.command_calls("eval"), 2);  // the first use and the fallback

  auto f3 = eval(*node, s, {"key3"}, {"y-"});
  auto r3 = get(f3);
  ASSERT_FALSE(r3.ec) << r3.r.str;
  EXPECT_EQ(r3.r.str, "y-key3");
}

TEST_F(RedisNode, ScriptLoadOfARequestDroppedWhileConnectingIsHandedOnInOrder) {
  redis_server server(options([](redis_server_options& o) { o.tls = true; }));
  connection_options opts = generous();
  opts.request_timeout = 2000ms;
  auto node = make(tls_ep(server), opts);
  redlock::script push("return redis.call('RPUSH', KEYS[1], ARGV[1])");
  server.pause();  // TCP connects (kernel backlog), the TLS handshake stalls
  resume_guard resume{server};
  const auto start = std::chrono::steady_clock::now();
  auto first = eval(*node, push, {"list"}, {"first"});  // the EVAL that would load the script
  ASSERT_TRUE(wait_for([&] { return std::chrono::steady_clock::now() - start >= 1000ms; }, 3s));
  auto second = eval(*node, push, {"list"}, {"second"});
  auto third = exec(*node, {"RPUSH", "list", "third"});
  auto r1 = get(first, 5s);  // expires unsent, half a timeout before the others
  EXPECT_EQ(r1.ec, errc::timeout) << r1.r.str;
  server.resume();
  auto r2 = get(second, 5s);
  EXPECT_FALSE(r2.ec) << r2.r.str;
  auto r3 = get(third, 5s);
  EXPECT_FALSE(r3.ec) << r3.r.str;
  // `second` carried the EVAL: no NOSCRIPT, so no resend behind `third`.
  auto list = server.command({"LRANGE", "list", "0", "-1"});
  ASSERT_EQ(list.elements.size(), 2u);
  EXPECT_EQ(list.elements[0].str, "second");
  EXPECT_EQ(list.elements[1].str, "third");
  EXPECT_EQ(server.command_calls("eval"), 1);
  EXPECT_EQ(server.command_calls("evalsha"), 0);
  // Later requests on the connection use EVALSHA.
  auto fourth = eval(*node, push, {"list"}, {"fourth"});
  EXPECT_FALSE(get(fourth, 5s).ec);
  EXPECT_EQ(server.command_calls("evalsha"), 1);
}

TEST_F(RedisNode, ManyKeysAndArgsAreSentToScripts) {
  redis_server server;
  auto node = make(server.url());
  redlock::script s("return #KEYS + #ARGV");
  std::vector<std::string> keys, args;
  for (int i = 0; i < 40; ++i)
    keys.push_back("k" + std::to_string(i));
  for (int i = 0; i < 25; ++i)
    args.push_back("a" + std::to_string(i));
  auto f = eval(*node, s, keys, args);
  auto r = get(f);
  ASSERT_FALSE(r.ec) << r.r.str;
  EXPECT_TRUE(r.r.is_integer(65));
}

// ---- pipelining and binary safety ---------------------------------------------------------

TEST_F(RedisNode, TenThousandPipelinedRequestsAnsweredInOrder) {
  redis_server server;
  connection_options opts = generous();
  opts.request_timeout = 10s;
  auto node = make(server.url(), opts);
  constexpr int n = 10000;
  std::vector<std::int64_t> seen(n, -1);
  std::vector<int> errors(n, 0);
  std::atomic<int> done{0};
  for (int i = 0; i < n; ++i) {
    node->async_exec({"INCR", "counter"}, [&, i](std::error_code ec, reply r) {
      if (ec)
        errors[i] = 1;
      seen[i] = r.integer;
      done.fetch_add(1, std::memory_order_release);
    });
  }
  ASSERT_TRUE(wait_for([&] { return done.load(std::memory_order_acquire) == n; }, 30s));
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(errors[i], 0) << i;
    ASSERT_EQ(seen[i], i + 1) << "reply " << i << " out of order";
  }
  EXPECT_EQ(server.command({"GET", "counter"}).str, std::to_string(n));
}

TEST_F(RedisNode, BinaryKeysAndValuesRoundTrip) {
  redis_server server;
  auto node = make(server.url());
  const std::string key = std::string("a\r\nb\0c\r\n", 8) + " \xff\xfe";
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 7 + (i >> 9));
  ASSERT_FALSE(run(*node, {"SET", key, big}).ec);
  auto got = run(*node, {"GET", key});
  ASSERT_FALSE(got.ec);
  EXPECT_EQ(got.r.str.size(), big.size());
  EXPECT_TRUE(got.r.str == big);
  EXPECT_TRUE(server.command({"GET", key}).str == big);

  const std::string big_key(1 << 20, '\n');
  ASSERT_FALSE(run(*node, {"SET", big_key, "v"}).ec);
  EXPECT_EQ(server.command({"GET", big_key}).str, "v");
  redlock::script s("return redis.call('GET', KEYS[1])");
  auto f = eval(*node, s, {key}, {});
  auto r = get(f);
  ASSERT_FALSE(r.ec) << r.r.str;
  EXPECT_TRUE(r.r.str == big);
}

TEST_F(RedisNode, ReplyLargerThanLimitIsProtocolErrorAndNodeRecovers) {
  redis_server server;
  connection_options opts = generous();
  opts.max_reply_bytes = 1024;
  auto node = make(server.url(), opts);
  ASSERT_FALSE(run(*node, {"SET", "big", std::string(4096, 'x')}).ec);
  auto r = run(*node, {"GET", "big"});
  EXPECT_EQ(r.ec, errc::protocol_error) << r.r.str;
  auto after = run(*node, {"PING"});
  EXPECT_FALSE(after.ec) << after.r.str;
}

// ---- failures -----------------------------------------------------------------------------

TEST_F(RedisNode, ServerKilledWithRequestsInFlightFailsThemPromptly) {
  redis_server server;
  connection_options opts = generous();
  opts.request_timeout = 20s;  // failures must come from the lost connection, not a timeout
  auto node = make(server.url(), opts);
  ASSERT_FALSE(run(*node, {"PING"}).ec);

  server.pause();  // requests stay in flight
  std::vector<std::future<outcome>> fs;
  for (int i = 0; i < 20; ++i)
    fs.push_back(exec(*node, {"INCR", "x"}));
  const auto start = std::chrono::steady_clock::now();
  server.kill9();
  for (auto& f : fs) {
    auto r = get(f, 5s);
    EXPECT_EQ(r.ec, errc::connection_lost) << r.r.str;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);

  server.start();
  // The next request reconnects (no backoff after a lost connection).
  auto r = run(*node, {"PING"});
  EXPECT_FALSE(r.ec) << r.r.str;
}

TEST_F(RedisNode, ConnectionKilledByServerFailsInFlightAndNextRequestReconnects) {
  redis_server server;
  auto node = make(server.url());
  ASSERT_FALSE(run(*node, {"CLIENT", "SETNAME", "victim"}).ec);
  server.command({"CLIENT", "KILL", "SKIPME", "no", "TYPE", "normal"});
  // Whether the request after the kill sees the closed socket or reconnects first depends
  // on timing; a bounded number of attempts must get through.
  bool ok = false;
  for (int i = 0; i < 5 && !ok; ++i)
    ok = !run(*node, {"PING"}).ec;
  EXPECT_TRUE(ok);
}

TEST_F(RedisNode, PausedServerRequestTimesOutWithinBound) {
  redis_server server;
  connection_options opts = generous();
  opts.request_timeout = 1000ms;
  auto node = make(server.url(), opts);
  ASSERT_FALSE(run(*node, {"PING"}).ec);

  server.pause();
  resume_guard resume{server};
  const auto start = std::chrono::steady_clock::now();
  auto first = exec(*node, {"GET", "a"});
  // Issued half a timeout later: when the first times out the connection is reset and this
  // one fails with connection_lost well before its own deadline.
  ASSERT_TRUE(wait_for([&] { return std::chrono::steady_clock::now() - start >= 500ms; }, 2s));
  auto second = exec(*node, {"GET", "b"});
  auto r1 = get(first, 5s);
  EXPECT_EQ(r1.ec, errc::timeout) << r1.r.str;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5 * opts.request_timeout);
  auto r2 = get(second, 5s);
  EXPECT_EQ(r2.ec, errc::connection_lost) << r2.r.str;

  server.resume();
  bool ok = wait_for([&] { return !run(*node, {"PING"}).ec; }, 5s);
  EXPECT_TRUE(ok);
}

TEST_F(RedisNode, TimeoutResetBacksOffBeforeReconnecting) {
  redis_server server;
  connection_options opts = generous();
  opts.request_timeout = 300ms;
  opts.backoff_initial = 60000ms;  // stays in backoff for the whole test
  opts.backoff_max = 60000ms;
  auto node = make(server.url(), opts);
  ASSERT_FALSE(run(*node, {"PING"}).ec);
  server.pause();
  resume_guard resume{server};
  auto r1 = run(*node, {"GET", "a"});
  EXPECT_EQ(r1.ec, errc::timeout) << r1.r.str;
  // No new connection to the stalled server: the next request fails at once.
  auto r2 = run(*node, {"GET", "b"});
  EXPECT_EQ(r2.ec, errc::connect_failed) << r2.ec.message() << ": " << r2.r.str;
  EXPECT_NE(r2.r.str.find("reset after a request timed out"), std::string::npos) << r2.r.str;
  EXPECT_NE(r2.r.str.find("next attempt in"), std::string::npos) << r2.r.str;
}

// The delay announced by a request refused during the backoff ("next attempt in N ms").
long announced_delay_ms(const std::string& msg) {
  const std::string tag = "next attempt in ";
  const auto pos = msg.find(tag);
  if (pos == std::string::npos)
    throw std::runtime_error("no backoff delay in: " + msg);
  return std::stol(msg.substr(pos + tag.size()));
}

TEST_F(RedisNode, BackoffAfterATimeoutResetStartsOverOnceTheServerAnswered) {
  redis_server server;
  connection_options opts = generous();
  opts.request_timeout = 300ms;
  opts.backoff_initial = 1000ms;  // jitter: the first delay is in [500, 1000] ms
  opts.backoff_max = 60000ms;
  auto node = make(server.url(), opts);
  ASSERT_FALSE(run(*node, {"PING"}).ec);
  for (int incident = 0; incident < 2; ++incident) {
    server.pause();
    {
      resume_guard resume{server};
      EXPECT_EQ(run(*node, {"GET", "a"}).ec, errc::timeout);
    }
    auto refused = run(*node, {"PING"});
    ASSERT_EQ(refused.ec, errc::connect_failed) << refused.r.str;
    // Each incident starts from backoff_initial: the server answered in between. Doubled,
    // the second delay would be in [1000, 2000] ms.
    EXPECT_LE(announced_delay_ms(refused.r.str), 1000) << "incident " << incident;
    // Reconnects after the backoff, and the server answers.
    EXPECT_TRUE(wait_for([&] { return !run(*node, {"PING"}).ec; }, 5s));
  }
}

TEST_F(RedisNode, DownNodeFailsFastDuringBackoff) {
  redis_server server;
  const std::string url = server.url();
  server.stop();
  connection_options opts = generous();
  opts.backoff_initial = 60000ms;  // stays in backoff for the whole test
  opts.backoff_max = 60000ms;
  auto node = make(url, opts);
  auto first = run(*node, {"PING"});
  EXPECT_EQ(first.ec, errc::connect_failed) << first.r.str;
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto r = run(*node, {"PING"});
    EXPECT_EQ(r.ec, errc::connect_failed);
    EXPECT_NE(r.r.str.find("next attempt in"), std::string::npos) << r.r.str;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  }
}

TEST_F(RedisNode, NodeReconnectsAfterBackoffOnceServerIsBack) {
  redis_server server;
  const std::string url = server.url();
  server.stop();
  connection_options opts = generous();
  opts.backoff_initial = 20ms;
  opts.backoff_max = 100ms;
  auto node = make(url, opts);
  EXPECT_EQ(run(*node, {"PING"}).ec, errc::connect_failed);
  server.start();
  int attempts = 0;
  bool ok = wait_for(
      [&] {
        ++attempts;
        return !run(*node, {"PING"}).ec;
      },
      5s);
  EXPECT_TRUE(ok) << attempts << " attempts";
}

TEST_F(RedisNode, CloseFailsInFlightRequestsWithClosed) {
  redis_server server;
  auto node = make(server.url());
  ASSERT_FALSE(run(*node, {"PING"}).ec);
  server.pause();
  resume_guard resume{server};
  std::vector<std::future<outcome>> fs;
  for (int i = 0; i < 5; ++i)
    fs.push_back(exec(*node, {"GET", "x"}));
  node->close();
  for (auto& f : fs)
    EXPECT_EQ(get(f, 5s).ec, errc::closed);
  EXPECT_EQ(run(*node, {"PING"}).ec, errc::closed);
  node->close();  // idempotent
}

TEST_F(RedisNode, DestructorWithRequestsInFlightRunsEachHandlerOnce) {
  redis_server server;
  constexpr int n = 50;
  std::atomic<int> calls{0};
  std::atomic<int> closed{0};
  {
    auto node = make(server.url());
    ASSERT_FALSE(run(*node, {"PING"}).ec);
    server.pause();
    for (int i = 0; i < n; ++i) {
      node->async_exec({"GET", "x"}, [&](std::error_code ec, reply) {
        calls.fetch_add(1);
        if (ec == errc::closed)
          closed.fetch_add(1);
      });
    }
  }  // destroyed with everything in flight
  EXPECT_TRUE(wait_for([&] { return calls.load() == n; }, 5s));
  server.resume();
  // Drain the io_context, then check that no handler ran twice.
  drain();
  EXPECT_EQ(calls.load(), n);
  EXPECT_EQ(closed.load(), n);
}

TEST_F(RedisNode, RequestDeadlineAppliesWhileConnecting) {
  redis_server server(options([](redis_server_options& o) { o.tls = true; }));
  connection_options opts = generous();
  opts.connect_timeout = 3000ms;
  opts.request_timeout = 150ms;
  auto node = make(tls_ep(server), opts);
  server.pause();  // TCP connects (kernel backlog), the TLS handshake stalls
  resume_guard resume{server};
  const auto start = std::chrono::steady_clock::now();
  auto r = run(*node, {"PING"});
  EXPECT_EQ(r.ec, errc::timeout) << r.r.str;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5 * opts.request_timeout);
}

// ---- server identity ----------------------------------------------------------------------

struct identity {
  std::error_code ec;
  std::vector<std::string> ids;
};

identity identify(redis_node& n) {
  auto p = std::make_shared<std::promise<identity>>();
  auto f = p->get_future();
  n.async_identify([p](std::error_code ec, std::vector<std::string> ids) {
    p->set_value({ec, std::move(ids)});
  });
  if (f.wait_for(10s) != std::future_status::ready)
    throw std::runtime_error("no identity within 10 s");
  return f.get();
}

TEST_F(RedisNode, IdentityIsTheServersRunIdWhateverItsName) {
  redis_server server;
  redis_server other;
  auto by_name = make("redis://localhost:" + std::to_string(server.port()));
  auto by_address = make("redis://127.0.0.1:" + std::to_string(server.port()) + "/2");
  auto elsewhere = make(other.url());
  const identity a = identify(*by_name);
  const identity b = identify(*by_address);
  const identity c = identify(*elsewhere);
  ASSERT_FALSE(a.ec) << a.ec.message();
  ASSERT_FALSE(b.ec) << b.ec.message();
  ASSERT_FALSE(c.ec) << c.ec.message();
  const std::string info = server.command({"INFO", "server"}).str;
  const std::string run_id(redlock::detail::info_field(info, "run_id"));
  ASSERT_EQ(run_id.size(), 40u) << info;
  EXPECT_EQ(a.ids, std::vector<std::string>{"run_id:" + run_id});
  EXPECT_EQ(b.ids, a.ids);
  ASSERT_EQ(c.ids.size(), 1u);
  EXPECT_NE(c.ids, a.ids);
}

TEST_F(RedisNode, IdentityWaitsForTheHandshake) {
  redis_server server(options([](redis_server_options& o) { o.requirepass = "pw"; }));
  auto node = make(server.url());
  const identity a = identify(*node);
  ASSERT_FALSE(a.ec) << a.ec.message();
  ASSERT_EQ(a.ids.size(), 1u);
  EXPECT_EQ(a.ids[0].rfind("run_id:", 0), 0u) << a.ids[0];
}

TEST_F(RedisNode, IdentityOfAnUnreachableOrRefusingServerIsAnErrorAndNoIdentity) {
  redis_server server(options([](redis_server_options& o) { o.requirepass = "pw"; }));
  endpoint wrong = ep_of(server.url());
  wrong.password = "wrong";
  auto refused = make(wrong);
  const identity a = identify(*refused);
  EXPECT_EQ(a.ec, errc::auth_failed) << a.ec.message();
  EXPECT_TRUE(a.ids.empty());

  const std::string url = server.url();
  server.stop();
  auto down = make(url);
  const identity b = identify(*down);
  EXPECT_EQ(b.ec, errc::connect_failed) << b.ec.message();
  EXPECT_TRUE(b.ids.empty());
}

TEST(RedisNodeCompletion, HandlerNeverRunsInsideTheInitiatingCall) {
  redis_server server;
  asio::io_context io;  // not running: nothing can complete until run() below
  std::atomic<int> calls{0};
  {
    redis_node node(io.get_executor(), ep_of(server.url()));
    node.async_exec({"PING"}, [&](std::error_code, reply) { ++calls; });
    node.close();
    node.async_exec({"PING"}, [&](std::error_code ec, reply) {
      EXPECT_EQ(ec, errc::closed);
      ++calls;
    });
    redlock::script s("return 1");
    node.async_eval(s, {}, {}, [&](std::error_code ec, reply) {
      EXPECT_EQ(ec, errc::closed);
      ++calls;
    });
    EXPECT_EQ(calls.load(), 0);
  }
  io.run_for(10s);
  EXPECT_EQ(calls.load(), 3);
}

TEST_F(RedisNode, RequestsQueuedDuringConnectAreSentAfterAuthAndSelect) {
  redis_server server(options([](redis_server_options& o) { o.requirepass = "pw"; }));
  auto node = make(server.url() + "/2");
  std::vector<std::future<outcome>> fs;
  for (int i = 0; i < 100; ++i)
    fs.push_back(exec(*node, {"INCR", "q"}));
  for (int i = 0; i < 100; ++i) {
    auto r = get(fs[i]);
    ASSERT_FALSE(r.ec) << r.r.str;
    EXPECT_TRUE(r.r.is_integer(i + 1));
  }
}

TEST_F(RedisNode, ConcurrentCallersFromManyThreadsAllComplete) {
  redis_server server;
  auto node = make(server.url());
  redlock::script s("return redis.call('INCR', KEYS[1])");
  constexpr int per_thread = 500;
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        std::vector<std::string> keys{"c" + std::to_string(t)};
        auto h = [&](std::error_code ec, reply) {
          if (!ec)
            ok.fetch_add(1);
          done.fetch_add(1);
        };
        if (i % 2)
          node->async_eval(s, keys, {}, h);
        else
          node->async_exec({"INCR", keys[0]}, h);
      }
    });
  }
  for (auto& c : callers)
    c.join();
  ASSERT_TRUE(wait_for([&] { return done.load() == 4 * per_thread; }, 30s));
  EXPECT_EQ(ok.load(), 4 * per_thread);
  for (int t = 0; t < 4; ++t)
    EXPECT_EQ(server.command({"GET", "c" + std::to_string(t)}).str, std::to_string(per_thread));
}

}  // namespace

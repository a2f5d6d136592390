// The full path of a misconfigured connection: a lock manager built from URLs whose AUTH or
// SELECT fails. The acquire must fail with the handshake's error on every node, and nothing
// may run on any server: no key in any db (as any user), no script call. Before the fix the
// lock script was pipelined behind the failed handshake and ran as `default` or in db 0,
// leaving the key for the whole TTL while the caller was told "not acquired".
#include <gtest/gtest.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "redlock/error.hpp"
#include "redlock/lock_manager.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::vote;
using redlock::test::redis_server;
using redlock::test::redis_server_options;
using redlock::test::wait_for;

constexpr std::size_t servers_per_test = 3;

redlock::manager_options test_settings() {
  redlock::manager_options s;
  // Far above what a loaded machine needs: the failures here come from the handshake.
  s.request_timeout = 5s;
  s.connect_timeout = 5s;
  s.retry_count = 0;
  s.retry_delay = 30ms;
  s.retry_jitter = 10ms;
  return s;
}

template <class F>
redis_server_options options(F set) {
  redis_server_options o;
  set(o);
  return o;
}

class HandshakeThroughLockManager : public ::testing::Test {
 protected:
  void TearDown() override {
    work_.reset();
    thread_.join();
  }

  std::pair<std::error_code, redlock::lock> lock(redlock::lock_manager& m,
                                                 redlock::call_options o) {
    auto p = std::make_shared<std::promise<std::pair<std::error_code, redlock::lock>>>();
    auto f = p->get_future();
    m.async_lock({"hs:resource"}, 10s, o, [p](std::error_code ec, redlock::lock l) {
      p->set_value({ec, std::move(l)});
    });
    if (f.wait_for(20s) != std::future_status::ready) {
      ADD_FAILURE() << "acquire did not complete within 20 s";
      return {make_error_code(errc::timeout), redlock::lock{}};
    }
    return f.get();
  }

  void quit(redlock::lock_manager& m) {
    auto p = std::make_shared<std::promise<void>>();
    m.async_quit([p](std::error_code) { p->set_value(); });
    EXPECT_EQ(p->get_future().wait_for(20s), std::future_status::ready);
  }

  // Acquires once without retries (every node must report `code` with the server's
  // `message`), then once with retries (each retry reconnects or meets the backoff), and
  // checks that nothing reached any server.
  void expect_refused_leaving_nothing(const std::vector<std::unique_ptr<redis_server>>& servers,
                                      const std::vector<std::string>& urls, errc code,
                                      const std::string& message) {
    redlock::lock_manager m(io_.get_executor(), urls, test_settings());
    auto [ec, l] = lock(m, {});
    EXPECT_TRUE(ec) << l.report().to_string();
    EXPECT_FALSE(l.acquired());
    ASSERT_EQ(l.report().nodes.size(), servers.size());
    // Decided once a quorum can no longer be reached: the last node may be undecided.
    EXPECT_GE(l.report().count(vote::error), servers.size() - m.quorum() + 1)
        << l.report().to_string();
    for (const auto& n : l.report().nodes) {
      if (n.outcome == vote::pending)
        continue;
      EXPECT_EQ(n.outcome, vote::error) << n.node;
      EXPECT_EQ(n.ec, code) << n.node << ": " << n.ec.message() << ": " << n.message;
      EXPECT_NE(n.message.find(message), std::string::npos) << n.node << ": " << n.message;
    }
    redlock::call_options retries;
    retries.retry_count = 3;
    auto [ec2, l2] = lock(m, retries);
    EXPECT_TRUE(ec2) << l2.report().to_string();
    EXPECT_FALSE(l2.acquired());
    quit(m);
    for (const auto& s : servers) {
      EXPECT_EQ(s->all_keys(), std::vector<std::string>{}) << s->url();
      EXPECT_EQ(s->command_calls("eval"), 0) << s->url();
      EXPECT_EQ(s->command_calls("evalsha"), 0) << s->url();
    }
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread thread_{[this] { io_.run(); }};
};

std::vector<std::string> with_suffix(const std::vector<std::unique_ptr<redis_server>>& servers,
                                     const std::string& suffix) {
  std::vector<std::string> urls;
  for (const auto& s : servers)
    urls.push_back(s->url() + suffix);
  return urls;
}

// "redis://user:password@127.0.0.1:<port>" for each server.
std::vector<std::string> as_user(const std::vector<std::unique_ptr<redis_server>>& servers,
                                 const std::string& userinfo, const std::string& suffix = "") {
  std::vector<std::string> urls;
  for (const auto& s : servers)
    urls.push_back("redis://" + userinfo + "@127.0.0.1:" + std::to_string(s->port()) + suffix);
  return urls;
}

TEST_F(HandshakeThroughLockManager, MissingDatabaseFailsTheAcquireAndWritesNothingInDbZero) {
  auto servers = redlock::test::start_servers(servers_per_test);
  expect_refused_leaving_nothing(servers, with_suffix(servers, "/99"), errc::server_error,
                                 "DB index is out of range");
}

TEST_F(HandshakeThroughLockManager, WrongAclPasswordFailsTheAcquireAndRunsNothingAsDefault) {
  auto servers = redlock::test::start_servers(
      servers_per_test,
      options([](redis_server_options& o) { o.extra_config = {"user app on >right ~* +@all"}; }));
  expect_refused_leaving_nothing(servers, as_user(servers, "app:wrong"), errc::auth_failed,
                                 "WRONGPASS");
}

TEST_F(HandshakeThroughLockManager, PasswordToServersWithoutOneFailsTheAcquireAndRunsNothing) {
  auto servers = redlock::test::start_servers(servers_per_test);
  expect_refused_leaving_nothing(servers, as_user(servers, ":unneeded"), errc::auth_not_configured,
                                 "AUTH");
}

TEST_F(HandshakeThroughLockManager, AclUserWithoutSelectFailsTheAcquireAndWritesNothing) {
  // The README's ACL line before it gained +select.
  auto servers = redlock::test::start_servers(
      servers_per_test, options([](redis_server_options& o) {
        o.extra_config = {"user app on >pw ~* +eval +evalsha +get +set +del +pexpire +pttl"};
      }));
  expect_refused_leaving_nothing(servers, as_user(servers, "app:pw", "/2"), errc::no_permission,
                                 "NOPERM");
}

TEST_F(HandshakeThroughLockManager, ReadmeAclExampleWithADatabaseLocksAndUnlocks) {
  // The README's example user, with a database in the URL: the handshake and the scripts
  // are all permitted.
  auto servers = redlock::test::start_servers(
      servers_per_test, options([](redis_server_options& o) {
        o.extra_config = {
            "user app on >secret ~locks:* +eval +evalsha +get +set +del +pexpire +pttl +select "
            "+info"};
      }));
  redlock::lock_manager m(io_.get_executor(), as_user(servers, "app:secret", "/2"),
                          test_settings());
  auto p = std::make_shared<std::promise<std::pair<std::error_code, redlock::lock>>>();
  auto f = p->get_future();
  m.async_lock({"locks:readme"}, 10s, [p](std::error_code ec, redlock::lock l) {
    p->set_value({ec, std::move(l)});
  });
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  auto [ec, l] = f.get();
  ASSERT_FALSE(ec) << ec.message() << "\n" << l.report().to_string();
  // Decided at a quorum: the last server may answer a little later.
  for (const auto& s : servers) {
    EXPECT_TRUE(wait_for([&] {
      return s->all_keys() == std::vector<std::string>{"2:locks:readme"};
    })) << s->url();
  }
  auto u = std::make_shared<std::promise<std::error_code>>();
  auto uf = u->get_future();
  m.async_unlock(l, [u](std::error_code uec, redlock::unlock_result) { u->set_value(uec); });
  ASSERT_EQ(uf.wait_for(20s), std::future_status::ready);
  EXPECT_FALSE(uf.get());
  quit(m);
  for (const auto& s : servers)
    EXPECT_TRUE(wait_for([&] { return s->all_keys().empty(); })) << s->url();
}

}  // namespace

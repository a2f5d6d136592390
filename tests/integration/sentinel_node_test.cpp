// A sentinel_node against a real master, replica and sentinel on loopback.
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include "redlock/error.hpp"
#include "redlock/sentinel_node.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::test::redis_server;
using redlock::test::redis_server_options;
using redlock::test::wait_for;

struct result {
  std::error_code ec;
  redlock::reply r;
};

class SentinelNode : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    work_.reset();
    io_.stop();
    thread_.join();
  }

  // One request, waited for under a deadline so that a hang fails the test instead.
  result eval(redlock::sentinel_node& n, const std::string& key, const std::string& value) {
    static const redlock::script set_script("return redis.call('SET', KEYS[1], ARGV[1])");
    auto p = std::make_shared<std::promise<result>>();
    auto f = p->get_future();
    std::vector<std::string> keys{key};
    std::vector<std::string> args{value};
    n.async_eval(set_script, keys, args, [p](std::error_code ec, redlock::reply r) {
      p->set_value({ec, std::move(r)});
    });
    if (f.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "request did not complete within 10 s";
      return {redlock::errc::timeout, {}};
    }
    return f.get();
  }

  static redis_server_options sentinel_options(const redis_server& master) {
    redis_server_options o;
    o.extra_config = {"sentinel monitor mymaster 127.0.0.1 " + std::to_string(master.port()) + " 1",
                      "sentinel down-after-milliseconds mymaster 500",
                      "sentinel failover-timeout mymaster 5000"};
    o.extra_args = {"--sentinel"};
    return o;
  }

  static std::string url_of(const redis_server& sentinel, const std::string& name = "mymaster") {
    return "redis+sentinel://127.0.0.1:" + std::to_string(sentinel.port()) + "/" + name;
  }

  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::thread thread_;
};

TEST_F(SentinelNode, ResolvesTheMasterAndRunsScriptsThere) {
  redis_server master;
  redis_server sentinel(sentinel_options(master));
  redlock::sentinel_node node(io_.get_executor(), redlock::parse_sentinel_url(url_of(sentinel)));

  auto res = eval(node, "k", "v1");
  ASSERT_FALSE(res.ec) << res.ec.message() << " " << res.r.str;
  EXPECT_EQ(res.r.str, "OK");
  EXPECT_EQ(master.command({"GET", "k"}).str, "v1");
  EXPECT_EQ(node.current_master(), "127.0.0.1:" + std::to_string(master.port()));
  EXPECT_EQ(node.id(),
            "redis+sentinel://127.0.0.1:" + std::to_string(sentinel.port()) + "/mymaster");
}

TEST_F(SentinelNode, FollowsAFailoverToThePromotedReplica) {
  redis_server master;
  redis_server_options ro;
  ro.extra_config = {"replicaof 127.0.0.1 " + std::to_string(master.port())};
  redis_server replica(ro);
  redis_server sentinel(sentinel_options(master));
  ASSERT_TRUE(wait_for(
      [&] {
        auto r = replica.command({"INFO", "replication"});
        return r.str.find("master_link_status:up") != std::string::npos;
      },
      15s));
  // The sentinel learns about replicas from the master's INFO.
  ASSERT_TRUE(wait_for(
      [&] {
        return !sentinel.command({"SENTINEL", "replicas", "mymaster"}).elements.empty();
      },
      15s));

  redlock::sentinel_node node(io_.get_executor(), redlock::parse_sentinel_url(url_of(sentinel)));
  ASSERT_FALSE(eval(node, "before", "1").ec);
  ASSERT_EQ(node.current_master(), "127.0.0.1:" + std::to_string(master.port()));

  auto r = sentinel.command({"SENTINEL", "FAILOVER", "mymaster"});
  ASSERT_FALSE(r.is_error()) << r.str;

  // Requests fail (READONLY or a reset) until the node has asked the sentinel again; bounded.
  const std::string promoted = "127.0.0.1:" + std::to_string(replica.port());
  int attempts = 0;
  EXPECT_TRUE(wait_for(
      [&] {
        ++attempts;
        auto res = eval(node, "after", "2");
        return !res.ec && node.current_master() == promoted;
      },
      30s))
      << "attempts: " << attempts << ", current master: " << node.current_master();
  EXPECT_EQ(replica.command({"GET", "after"}).str, "2");
}

TEST_F(SentinelNode, FailsFastWhenNoSentinelAnswers) {
  const auto port = redlock::test::free_port();
  redlock::sentinel_config cfg =
      redlock::parse_sentinel_url("redis+sentinel://127.0.0.1:" + std::to_string(port) + "/m");
  cfg.options.connect_timeout = 300ms;
  redlock::sentinel_node node(io_.get_executor(), cfg);
  const auto t0 = std::chrono::steady_clock::now();
  auto res = eval(node, "k", "v");
  EXPECT_EQ(res.ec, redlock::errc::connect_failed);
  EXPECT_NE(res.r.str.find("'m'"), std::string::npos) << res.r.str;
  // No hang: bounded by the connect timeout, with a generous margin.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(SentinelNode, UnknownMasterNameIsAClearError) {
  redis_server master;
  redis_server sentinel(sentinel_options(master));
  redlock::sentinel_node node(io_.get_executor(),
                              redlock::parse_sentinel_url(url_of(sentinel, "nosuchmaster")));
  auto res = eval(node, "k", "v");
  EXPECT_EQ(res.ec, redlock::errc::connect_failed);
  EXPECT_NE(res.r.str.find("unknown master"), std::string::npos) << res.r.str;
  EXPECT_EQ(master.command({"EXISTS", "k"}).integer, 0);
}

TEST_F(SentinelNode, FallsBackToTheNextSentinel) {
  redis_server master;
  redis_server sentinel(sentinel_options(master));
  const auto dead = redlock::test::free_port();
  redlock::sentinel_config cfg =
      redlock::parse_sentinel_url("redis+sentinel://127.0.0.1:" + std::to_string(dead) +
                                  ",127.0.0.1:" + std::to_string(sentinel.port()) + "/mymaster");
  redlock::sentinel_node node(io_.get_executor(), cfg);
  auto res = eval(node, "k", "v");
  ASSERT_FALSE(res.ec) << res.r.str;
  EXPECT_EQ(master.command({"GET", "k"}).str, "v");
}

TEST_F(SentinelNode, CloseFailsLaterRequestsWithClosed) {
  redis_server master;
  redis_server sentinel(sentinel_options(master));
  redlock::sentinel_node node(io_.get_executor(), redlock::parse_sentinel_url(url_of(sentinel)));
  ASSERT_FALSE(eval(node, "k", "v").ec);
  node.close();
  EXPECT_EQ(eval(node, "k", "v").ec, redlock::errc::closed);
}

}  // namespace

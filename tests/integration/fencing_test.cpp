// Fencing tokens on real redis-servers: the Lua of both phases step by step, tokens over many
// sequential acquisitions by several clients, extensions, and Sentinel and Cluster nodes.

#include <gtest/gtest.h>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "internal/scripts.hpp"
#include "redlock/lock_manager.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::test::redis_server;
using redlock::test::wait_for;

// Runs `s` with EVAL on `server`: KEYS = key then its counter key.
long long eval(const redis_server& server, const redlock::script& s, const std::string& key,
               const std::string& arg1, const std::string& arg2) {
  auto r = server.command(
      {"EVAL", s.text(), "2", key, redlock::detail::fencing_counter_key(key), arg1, arg2});
  EXPECT_FALSE(r.is_error()) << r.str;
  return r.integer;
}

TEST(FencingScripts, Phase1IncrementsTheDurableCounterOnlyWhenItGrants) {
  redis_server s;
  const auto& p1 = redlock::detail::fenced_acquire_script();
  const std::string counter = redlock::detail::fencing_counter_key("r");
  EXPECT_EQ(eval(s, p1, "r", "v1", "10000"), 1);
  EXPECT_EQ(s.command({"GET", "r"}).str, "v1");
  EXPECT_GT(s.command({"PTTL", "r"}).integer, 9000);
  EXPECT_EQ(s.command({"PTTL", counter}).integer, -1);  // never expires
  // Our own value again (a retry of the same lock): granted, counted again.
  EXPECT_EQ(eval(s, p1, "r", "v1", "10000"), 2);
  // Another value: denied (-1 - the holder's PTTL, about 10 s), nothing changes.
  const auto denied = eval(s, p1, "r", "v2", "10000");
  EXPECT_LT(denied, -9000);
  EXPECT_GE(denied, -10001);
  EXPECT_EQ(s.command({"GET", counter}).str, "2");
  EXPECT_EQ(s.command({"GET", "r"}).str, "v1");
}

TEST(FencingScripts, ConfirmNeedsOurKeyAndNoCounterPastTheCandidate) {
  redis_server s;
  const auto& p1 = redlock::detail::fenced_acquire_script();
  const auto& p2 = redlock::detail::fence_confirm_script();
  const std::string counter = redlock::detail::fencing_counter_key("r");
  s.command({"SET", counter, "41"});
  ASSERT_EQ(eval(s, p1, "r", "v1", "10000"), 42);
  EXPECT_EQ(eval(s, p2, "r", "v2", "42"), 0);   // the key is not that value's
  EXPECT_EQ(eval(s, p2, "r", "v1", "41"), -1);  // our key, but the counter moved past t
  EXPECT_EQ(s.command({"GET", counter}).str, "42");
  EXPECT_EQ(eval(s, p2, "r", "v1", "50"), 1);  // raised to the candidate from another node
  EXPECT_EQ(s.command({"GET", counter}).str, "50");
  EXPECT_EQ(eval(s, p2, "r", "v1", "50"), 1);  // idempotent
  s.command({"DEL", "r"});
  EXPECT_EQ(eval(s, p2, "r", "v1", "60"), 0);  // expired or released: no confirm
  EXPECT_EQ(s.command({"GET", counter}).str, "50");
}

// The design note's late-delivery counterexample, on one server: a phase 1 of ours that timed
// out runs late, after someone else's lock came and went, and re-creates our key. The key
// alone would confirm our old candidate; the counter shows that a later phase 1 ran.
TEST(FencingScripts, ALatePhase1ThatRecreatesOurKeyCannotConfirmAStaleCandidate) {
  redis_server s;
  const auto& p1 = redlock::detail::fenced_acquire_script();
  const auto& p2 = redlock::detail::fence_confirm_script();
  ASSERT_EQ(eval(s, p1, "r", "a", "10000"), 1);  // A's phase 1: candidate 1 (say)
  s.command({"DEL", "r"});                       // A's key expires (A paused)
  ASSERT_EQ(eval(s, p1, "r", "b", "10000"), 2);  // B acquires, confirms 2, releases
  ASSERT_EQ(eval(s, p2, "r", "b", "2"), 1);
  s.command({"DEL", "r"});
  ASSERT_EQ(eval(s, p1, "r", "a", "10000"), 3);  // A's retried phase 1 arrives late
  EXPECT_EQ(eval(s, p2, "r", "a", "1"), -1);     // A's stale confirm of t = 1 is refused
}

class FencedLocks : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    work_.reset();
    thread_.join();
  }
  static redlock::manager_options options() {
    redlock::manager_options o;
    o.fencing = true;
    o.retry_count = 200;
    o.retry_delay = 5ms;
    o.retry_jitter = 5ms;
    return o;
  }
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::thread thread_;
};

TEST_F(FencedLocks, TokensStrictlyIncreaseOverAThousandSequentialAcquisitionsByFourClients) {
  auto servers = redlock::test::start_servers(3);
  std::vector<std::unique_ptr<redlock::lock_manager>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<redlock::lock_manager>(
        io_.get_executor(), redlock::test::urls_of(servers), options()));
  }
  std::uint64_t last = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (int i = 0; i < 1000 && std::chrono::steady_clock::now() < deadline; ++i) {
    auto& m = *clients[static_cast<std::size_t>(i) % clients.size()];
    auto l = m.async_lock("fence:seq", 5s, asio::use_future).get();
    ASSERT_TRUE(l.acquired());
    ASSERT_GT(l.fencing_token(), last) << "acquisition " << i;
    last = l.fencing_token();
    if (i % 100 == 0) {
      auto e = m.async_extend(l, 5s, asio::use_future).get();
      EXPECT_EQ(e.fencing_token(), l.fencing_token());
      l = e;
    }
    m.async_unlock(l, asio::use_future).get();
  }
  EXPECT_GE(last, 1000u);
  for (auto& c : clients)
    c->async_quit(asio::use_future).get();
  // The counters are durable: no TTL, and at least the last token on a quorum.
  int at_least_last = 0;
  for (auto& s : servers) {
    EXPECT_EQ(s->command({"PTTL", "{fence:seq}:redlock-fencing"}).integer, -1);
    if (std::stoull(s->command({"GET", "{fence:seq}:redlock-fencing"}).str) >= last)
      ++at_least_last;
  }
  EXPECT_GE(at_least_last, 2);
}

TEST_F(FencedLocks, ConcurrentClientsNeverShareAToken) {
  auto servers = redlock::test::start_servers(3);
  constexpr int clients = 4;
  constexpr int rounds = 50;
  std::vector<std::unique_ptr<redlock::lock_manager>> managers;
  for (int i = 0; i < clients; ++i) {
    managers.push_back(std::make_unique<redlock::lock_manager>(
        io_.get_executor(), redlock::test::urls_of(servers), options()));
  }
  std::mutex mu;
  std::vector<std::uint64_t> tokens;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto& m = *managers[static_cast<std::size_t>(c)];
      for (int i = 0; i < rounds; ++i) {
        auto l = m.async_lock("fence:race", 5s, asio::use_future).get();
        {
          std::lock_guard<std::mutex> g(mu);
          tokens.push_back(l.fencing_token());
        }
        m.async_unlock(l, asio::use_future).get();
      }
    });
  }
  for (auto& t : threads)
    t.join();
  ASSERT_EQ(tokens.size(), static_cast<std::size_t>(clients * rounds));
  std::set<std::uint64_t> unique(tokens.begin(), tokens.end());
  EXPECT_EQ(unique.size(), tokens.size());
  for (auto& m : managers)
    m->async_quit(asio::use_future).get();
}

TEST_F(FencedLocks, WorkOnSentinelAndClusterNodes) {
  redis_server plain;
  redis_server sentinel_master;
  redis_server sentinel(redlock::test::sentinel_options(sentinel_master));
  auto cluster = redlock::test::start_cluster(3);
  auto o = options();
  o.retry_count = 3;
  o.retry_delay = 50ms;
  redlock::lock_manager m(
      io_.get_executor(),
      {plain.url(), "redis+sentinel://127.0.0.1:" + std::to_string(sentinel.port()) + "/mymaster",
       "redis+cluster://127.0.0.1:" + std::to_string(cluster[1]->port())},
      o);
  // Untagged, tagged and multi-resource (one slot) names: the counters share the lock keys'
  // slots, so the cluster node runs every script without CROSSSLOT.
  const std::vector<std::vector<std::string>> cases = {
      {"fence:plain"}, {"{fence}:tagged"}, {"{fence}:a", "{fence}:b"}};
  for (const auto& resources : cases) {
    std::uint64_t last = 0;
    for (int i = 0; i < 3; ++i) {
      auto l = m.async_lock(resources, 10s, asio::use_future).get();
      ASSERT_TRUE(l.acquired());
      // Every node confirmed: the cluster's answer is part of the quorum of confirms.
      EXPECT_GT(l.fencing_token(), last) << resources[0];
      last = l.fencing_token();
      auto e = m.async_extend(l, 10s, asio::use_future).get();
      EXPECT_EQ(e.fencing_token(), last);
      m.async_unlock(e, asio::use_future).get();
    }
    const auto counter = redlock::detail::fencing_counter_key(resources[0]);
    EXPECT_TRUE(wait_for([&] {
      return plain.command({"GET", counter}).str == std::to_string(last) ||
             sentinel_master.command({"GET", counter}).str == std::to_string(last);
    }));
    int cluster_counters = 0;
    for (auto& c : cluster) {
      auto r = c->command({"GET", counter});
      if (!r.is_error() && r.kind == redlock::reply::type::string)
        ++cluster_counters;
    }
    EXPECT_EQ(cluster_counters, 1) << counter;  // on the master of the lock key's slot
  }
  m.async_quit(asio::use_future).get();
}

}  // namespace

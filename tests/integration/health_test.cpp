// Node health against real redis-servers: killed, paused (SIGSTOP/SIGCONT by PID) and
// restarted, each reports exactly one "down" and one "up" (back), node_states() agrees, and
// the health probe reports "back" with no traffic.
#include <gtest/gtest.h>

#include <asio/use_future.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "redlock/asio_compat.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/observer.hpp"
#include "support/io_thread.hpp"
#include "support/options.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::health_state;
using redlock::test::redis_server;
using redlock::test::wait_for;

// Every state change, as on_node_state reported it (from the manager's strand).
struct recorder {
  std::mutex mu;
  std::vector<redlock::node_state_change> changes;
  void add(const redlock::node_state_change& c) {
    std::lock_guard g(mu);
    changes.push_back(c);
  }
  int count(std::size_t node, health_state to) {
    std::lock_guard g(mu);
    int n = 0;
    for (const auto& c : changes)
      n += c.index == node && c.to == to ? 1 : 0;
    return n;
  }
  std::size_t size() {
    std::lock_guard g(mu);
    return changes.size();
  }
};

class HealthIntegration : public ::testing::Test {
 public:
  std::vector<std::unique_ptr<redis_server>> servers = redlock::test::start_servers(3);
  redlock::test::io_thread io;
  recorder rec;

  static redlock::manager_options opts() {
    auto s = redlock::test::fast_options();
    s.connect_timeout = 200ms;
    s.retry_count = 0;
    s.health_probe_interval = 100ms;
    return s;
  }

  std::unique_ptr<redlock::lock_manager> make() {
    auto m = std::make_unique<redlock::lock_manager>(io.executor(), redlock::test::urls_of(servers),
                                                     opts());
    m->on_node_state([this](const redlock::node_state_change& c) { rec.add(c); });
    return m;
  }

  // `n` lock/unlock cycles (a quorum of 2 of 3 keeps them succeeding).
  void traffic(redlock::lock_manager& m, int n) {
    for (int k = 0; k < n; ++k) {
      auto f = m.async_lock("health:" + std::to_string(k), 5s, asio::use_future);
      auto l = redlock::test::get_within(f, 10s);
      ASSERT_TRUE(l.acquired()) << l.report().detail;
      auto u = m.async_unlock(l, asio::use_future);
      (void)redlock::test::get_within(u, 10s);
    }
  }

  bool state_is(redlock::lock_manager& m, std::size_t i, health_state s,
                std::chrono::milliseconds within = 15s) {
    return wait_for([&] { return m.node_states()[i].state == s; }, within);
  }

  // The node went down and came back exactly once, and node_states() says up.
  void expect_one_down_one_back(redlock::lock_manager& m, std::size_t i) {
    EXPECT_EQ(rec.count(i, health_state::down), 1);
    EXPECT_EQ(rec.count(i, health_state::up), 2);  // unknown -> up, then back
    EXPECT_EQ(m.node_states()[i].state, health_state::up);
    for (std::size_t j = 0; j < servers.size(); ++j) {
      if (j != i) {
        EXPECT_EQ(rec.count(j, health_state::down), 0) << j;
      }
    }
  }
};

TEST_F(HealthIntegration, AKilledAndRestartedServerReportsDownOnceAndBackOnce) {
  auto m = make();
  traffic(*m, 1);
  ASSERT_TRUE(wait_for([&] { return rec.size() == 3; }));  // every node unknown -> up
  servers[1]->kill9();
  traffic(*m, 30);
  ASSERT_TRUE(state_is(*m, 1, health_state::down));
  EXPECT_EQ(rec.count(1, health_state::down), 1);
  const auto down = m->node_states()[1];
  EXPECT_TRUE(down.reason == redlock::errc::connect_failed ||
              down.reason == redlock::errc::connection_lost)
      << down.reason.message();
  EXPECT_FALSE(down.message.empty());

  // Restarted, with no traffic: only the probe can tell.
  servers[1]->start();
  ASSERT_TRUE(state_is(*m, 1, health_state::up));
  traffic(*m, 10);
  expect_one_down_one_back(*m, 1);
  io.stop(*m);
}

TEST_F(HealthIntegration, APausedServerReportsDownOnceAndBackOnceAfterItResumes) {
  auto m = make();
  traffic(*m, 1);
  ASSERT_TRUE(wait_for([&] { return rec.size() == 3; }));
  servers[2]->pause();
  traffic(*m, 20);
  ASSERT_TRUE(state_is(*m, 2, health_state::down));
  EXPECT_EQ(rec.count(2, health_state::down), 1);
  // The reason is the first failure the manager sees: a request's timeout, or the reset of
  // the connection that the timeout causes, which fails the requests queued behind it with
  // connection_lost (a CI run under load reported that one).
  const auto down = m->node_states()[2];
  EXPECT_TRUE(down.reason == redlock::errc::timeout ||
              down.reason == redlock::errc::connection_lost)
      << down.reason.message();
  EXPECT_FALSE(down.message.empty());

  servers[2]->resume();
  ASSERT_TRUE(state_is(*m, 2, health_state::up));
  traffic(*m, 10);
  expect_one_down_one_back(*m, 2);
  io.stop(*m);
}

TEST_F(HealthIntegration, AServerThatStaysDownIsProbedUntilQuitWithoutMoreEvents) {
  auto m = make();
  traffic(*m, 1);
  ASSERT_TRUE(wait_for([&] { return rec.size() == 3; }));
  servers[0]->kill9();
  traffic(*m, 5);
  ASSERT_TRUE(state_is(*m, 0, health_state::down));
  // Probes keep failing (every 100 ms) and report nothing new.
  const auto since = m->node_states()[0].since;
  EXPECT_FALSE(wait_for([&] { return rec.count(0, health_state::down) > 1; }, 1s));
  EXPECT_EQ(m->node_states()[0].since, since);
  EXPECT_EQ(rec.count(0, health_state::down), 1);
  io.stop(*m);  // the probe stops with quit: the io thread runs out and joins
}

}  // namespace

// The lock manager's metrics (observer, stats()) and node health (on_node_state,
// node_states(), the probe), against the testing kit's fake deployment: counted against
// known workloads.
#include <gtest/gtest.h>

#include <asio/io_context.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "redlock/blocking.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/mutex.hpp"
#include "redlock/observer.hpp"
#include "redlock/testing.hpp"
#include "support/io_thread.hpp"
#include "support/options.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::health_state;
using redlock::operation;

// Counts everything it is told (all calls come on the manager's strand; the mutex is for the
// test thread's reads only).
struct counting_observer : redlock::observer {
  std::mutex mu;
  std::map<std::pair<operation, std::error_code>, int> done;
  std::vector<redlock::operation_event> events;
  int released = 0;
  int lost = 0;
  std::chrono::nanoseconds held_total{0};
  std::size_t requests = 0;
  std::size_t request_errors = 0;
  std::vector<redlock::node_state_change> changes;

  void operation_done(const redlock::operation_event& e) override {
    std::lock_guard g(mu);
    ++done[{e.op, e.ec}];
    events.push_back(e);
  }
  void lock_ended(std::chrono::nanoseconds held, bool was_lost) override {
    std::lock_guard g(mu);
    (was_lost ? lost : released) += 1;
    held_total += held;
  }
  void node_request(const redlock::node_request_event& e) override {
    std::lock_guard g(mu);
    ++requests;
    request_errors += e.ec ? 1 : 0;
    EXPECT_NE(e.node, nullptr);
    EXPECT_GE(e.round_trip.count(), 0);
  }
  void node_state_changed(const redlock::node_state_change& c) override {
    std::lock_guard g(mu);
    changes.push_back(c);
  }
  int count(operation op, std::error_code ec = {}) {
    std::lock_guard g(mu);
    return done[{op, ec}];
  }
  int transitions(std::size_t node, health_state to) {
    std::lock_guard g(mu);
    int n = 0;
    for (const auto& c : changes)
      n += c.index == node && c.to == to ? 1 : 0;
    return n;
  }
};

class ObserverTest : public ::testing::Test {
 public:
  asio::io_context io;
  redlock::testing::fake_deployment d{io.get_executor(), 3};

  static redlock::manager_options opts() {
    auto s = redlock::test::fast_options();
    s.retry_count = 0;
    s.request_timeout = 50ms;
    s.health_probe_interval = 20ms;
    return s;
  }

  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds limit = 10s) {
    return redlock::test::run_until(io, std::move(pred), limit);
  }

  struct lock_out {
    bool done = false;
    std::error_code ec;
    redlock::lock l;
  };
  std::shared_ptr<lock_out> lock(redlock::lock_manager& m, std::string r,
                                 redlock::call_options o = {}) {
    auto out = std::make_shared<lock_out>();
    m.async_lock(std::move(r), 10s, o, [out](std::error_code ec, redlock::lock l) {
      *out = {true, ec, std::move(l)};
    });
    return out;
  }
  redlock::lock locked(redlock::lock_manager& m, std::string r) {
    auto out = lock(m, std::move(r));
    EXPECT_TRUE(run_until([&] { return out->done; }));
    EXPECT_FALSE(out->ec) << out->ec.message();
    return out->l;
  }
  std::error_code unlocked(redlock::lock_manager& m, const redlock::lock& l) {
    bool done = false;
    std::error_code got;
    m.async_unlock(l, [&](std::error_code ec, redlock::unlock_result) {
      done = true;
      got = ec;
    });
    EXPECT_TRUE(run_until([&] { return done; }));
    return got;
  }
  std::pair<std::error_code, redlock::lock> extended(redlock::lock_manager& m,
                                                     const redlock::lock& l) {
    bool done = false;
    std::pair<std::error_code, redlock::lock> got;
    m.async_extend(l, 10s, [&](std::error_code ec, redlock::lock nl) {
      done = true;
      got = {ec, std::move(nl)};
    });
    EXPECT_TRUE(run_until([&] { return done; }));
    return got;
  }
  std::size_t requests_served() {
    std::size_t n = 0;
    for (std::size_t i = 0; i < d.size(); ++i)
      n += d[i].calls().size();
    return n;
  }
  void quit(redlock::lock_manager& m) {
    bool done = false;
    m.async_quit([&](std::error_code) { done = true; });
    ASSERT_TRUE(run_until([&] { return done; }));
  }
};

TEST_F(ObserverTest, CountsAKnownWorkload) {
  redlock::lock_manager m(io.get_executor(), d.nodes(), opts());
  auto obs = std::make_shared<counting_observer>();
  m.set_observer(obs);

  // 5 locks.
  std::vector<redlock::lock> held;
  for (int k = 0; k < 5; ++k)
    held.push_back(locked(m, "r" + std::to_string(k)));
  EXPECT_EQ(obs->count(operation::lock), 5);
  EXPECT_EQ(m.stats().locks_held, 5U);

  // 2 denials: a try_lock and a lock (one attempt) of held resources.
  bool tried = false;
  m.async_try_lock("r0", 10s, [&](std::error_code ec, redlock::lock l) {
    EXPECT_FALSE(ec);
    EXPECT_FALSE(l.acquired());
    tried = true;
  });
  ASSERT_TRUE(run_until([&] { return tried; }));
  auto denied = lock(m, "r1");
  ASSERT_TRUE(run_until([&] { return denied->done; }));
  EXPECT_EQ(denied->ec, errc::resource_locked);
  EXPECT_EQ(obs->count(operation::try_lock, make_error_code(errc::resource_locked)), 1);
  EXPECT_EQ(obs->count(operation::lock, make_error_code(errc::resource_locked)), 1);

  // 2 extends of one lock: still 5 held.
  auto e1 = extended(m, held[2]);
  ASSERT_FALSE(e1.first);
  auto e2 = extended(m, e1.second);
  ASSERT_FALSE(e2.first);
  EXPECT_EQ(obs->count(operation::extend), 2);
  EXPECT_EQ(m.stats().locks_held, 5U);

  // 2 unlocks: 2 releases ended, 3 held.
  EXPECT_FALSE(unlocked(m, held[3]));
  EXPECT_FALSE(unlocked(m, e2.second));
  EXPECT_EQ(obs->count(operation::unlock), 2);
  EXPECT_EQ(m.stats().locks_held, 3U);

  // A lost extend: the servers' keys expire (virtual clock), the holder's extend finds them
  // gone.
  d.clock().advance(11s);
  auto lost = extended(m, held[0]);
  EXPECT_EQ(lost.first, errc::lock_lost);
  EXPECT_EQ(obs->count(operation::extend, make_error_code(errc::lock_lost)), 1);
  EXPECT_EQ(m.stats().locks_held, 2U);

  {
    std::lock_guard g(obs->mu);
    EXPECT_EQ(obs->released, 2);
    EXPECT_EQ(obs->lost, 1);
    EXPECT_GT(obs->held_total.count(), 0);
    EXPECT_EQ(obs->events.size(), 12U);
    for (const auto& e : obs->events) {
      EXPECT_EQ(e.attempts, 1);
      EXPECT_GT(e.duration.count(), 0);
      EXPECT_GT(e.last_attempt.count(), 0);
      EXPECT_LE(e.last_attempt, e.duration);
    }
    // Nothing failed on the node level.
    EXPECT_EQ(obs->request_errors, 0U);
  }
  // Every request a server received was reported once (the denials' cleanup releases too,
  // which may still be on their way).
  EXPECT_TRUE(run_until([&] {
    std::lock_guard g(obs->mu);
    return obs->requests == requests_served();
  }));
  quit(m);
  std::lock_guard g(obs->mu);
  EXPECT_EQ(obs->requests, requests_served());
  EXPECT_TRUE(obs->changes.size() == 3U);  // unknown -> up, once per node
}

TEST_F(ObserverTest, CountsWaitingLockOperations) {
  redlock::lock_manager m(io.get_executor(), d.nodes(), opts());
  m.set_observer(std::make_shared<counting_observer>());
  auto first = locked(m, "job");
  redlock::call_options wait;
  wait.retry_count = -1;
  auto second = lock(m, "job", wait);
  ASSERT_TRUE(run_until([&] { return d[0].count(redlock::testing::script_kind::acquire) >= 2; }));
  EXPECT_EQ(m.stats().operations_waiting, 1U);
  EXPECT_EQ(m.stats().locks_held, 1U);
  EXPECT_FALSE(unlocked(m, first));
  ASSERT_TRUE(run_until([&] { return second->done; }));
  EXPECT_FALSE(second->ec);
  const auto st = m.stats();
  EXPECT_EQ(st.operations_waiting, 0U);
  EXPECT_EQ(st.locks_held, 1U);
  EXPECT_EQ(st.nodes.size(), 3U);
  EXPECT_FALSE(unlocked(m, second->l));
}

TEST_F(ObserverTest, WithoutAnObserverNothingIsCounted) {
  redlock::lock_manager m(io.get_executor(), d.nodes(), opts());
  auto l = locked(m, "job");
  const auto st = m.stats();
  EXPECT_EQ(st.locks_held, 0U);
  EXPECT_EQ(st.operations_waiting, 0U);
  // Health is kept all the same.
  ASSERT_EQ(st.nodes.size(), 3U);
  for (const auto& n : st.nodes)
    EXPECT_EQ(n.state, health_state::up);
  EXPECT_FALSE(unlocked(m, l));
}

TEST_F(ObserverTest, ALockThatRanOutIsNoLongerHeld) {
  auto s = opts();
  redlock::lock_manager m(io.get_executor(), d.nodes(), s);
  m.set_observer(std::make_shared<counting_observer>());
  bool done = false;
  m.async_lock("short", 100ms, [&](std::error_code ec, redlock::lock) {
    EXPECT_FALSE(ec);
    done = true;
  });
  ASSERT_TRUE(run_until([&] { return done; }));
  EXPECT_EQ(m.stats().locks_held, 1U);
  EXPECT_TRUE(run_until([&] { return m.stats().locks_held == 0; }, 2s));
}

TEST_F(ObserverTest, ANodeDownReportsDownOnceAndTheProbeReportsItBack) {
  redlock::lock_manager m(io.get_executor(), d.nodes(), opts());
  auto obs = std::make_shared<counting_observer>();
  m.set_observer(obs);
  std::vector<redlock::node_state_change> hooked;
  m.on_node_state([&](const redlock::node_state_change& c) { hooked.push_back(c); });
  int node_errors = 0;
  m.on_node_error([&](const redlock::node_error&) { ++node_errors; });

  auto l = locked(m, "warm-up");
  d[1].go_down();
  for (int k = 0; k < 20; ++k) {
    auto x = locked(m, "r" + std::to_string(k));  // a quorum of 2 still answers
    (void)x;
  }
  EXPECT_GE(node_errors, 20);  // per request
  EXPECT_EQ(obs->transitions(1, health_state::down), 1);
  auto states = m.node_states();
  ASSERT_EQ(states.size(), 3U);
  EXPECT_EQ(states[1].state, health_state::down);
  EXPECT_EQ(states[1].reason, errc::connect_failed);
  EXPECT_FALSE(states[1].message.empty());
  EXPECT_EQ(states[1].node, "fake1");
  EXPECT_EQ(states[0].state, health_state::up);

  // Back with no traffic: only the probe can see it.
  const auto served = d[1].calls().size();
  d[1].recover();
  ASSERT_TRUE(run_until([&] { return m.node_states()[1].state == health_state::up; }));
  EXPECT_GT(d[1].calls().size(), served);               // the probe's requests
  EXPECT_EQ(obs->transitions(1, health_state::up), 2);  // the first answer, and back
  EXPECT_EQ(obs->transitions(1, health_state::down), 1);
  ASSERT_EQ(hooked.size(), 5U);  // 3 unknown -> up, down, back
  EXPECT_EQ(hooked[3].from, health_state::up);
  EXPECT_EQ(hooked[3].to, health_state::down);
  EXPECT_EQ(hooked[3].reason, errc::connect_failed);
  EXPECT_EQ(hooked[4].from, health_state::down);
  EXPECT_EQ(hooked[4].to, health_state::up);
  EXPECT_EQ(hooked[4].node, "fake1");

  // No probe while every node is up.
  const auto after = d[1].calls().size();
  ASSERT_TRUE(run_until([&, t = std::chrono::steady_clock::now()] {
    return std::chrono::steady_clock::now() - t > 100ms;
  }));
  EXPECT_EQ(d[1].calls().size(), after);
  quit(m);
}

TEST_F(ObserverTest, TheProbeStopsAtQuitAndLeavesNothingBehind) {
  redlock::lock_manager m(io.get_executor(), d.nodes(), opts());
  d[2].go_down();
  auto l = locked(m, "job");
  ASSERT_TRUE(run_until([&] { return m.node_states()[2].state == health_state::down; }));
  ASSERT_TRUE(run_until([&] { return d[2].calls().size() >= 3; }));  // probed
  quit(m);
  // Nothing is left on the io_context: run() returns by itself.
  io.restart();
  const auto t = std::chrono::steady_clock::now();
  io.run_for(5s);
  EXPECT_LT(std::chrono::steady_clock::now() - t, 4s);
}

TEST_F(ObserverTest, TheProbeCanBeTurnedOff) {
  auto s = opts();
  s.health_probe_interval = 0ms;
  redlock::lock_manager m(io.get_executor(), d.nodes(), s);
  d[2].go_down();
  auto l = locked(m, "job");
  ASSERT_TRUE(run_until([&] { return m.node_states()[2].state == health_state::down; }));
  const auto served = d[2].calls().size();
  ASSERT_TRUE(run_until([&, t = std::chrono::steady_clock::now()] {
    return std::chrono::steady_clock::now() - t > 100ms;
  }));
  EXPECT_EQ(d[2].calls().size(), served);
  quit(m);
}

TEST_F(ObserverTest, ANegativeProbeIntervalIsRefused) {
  auto s = opts();
  s.health_probe_interval = -1ms;
  try {
    redlock::lock_manager m(io.get_executor(), d.nodes(), s);
    FAIL() << "accepted";
  } catch (const redlock::lock_error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("health_probe_interval"), std::string::npos);
  }
}

// The blocking facade and distributed_mutex run on the manager underneath: measured too.
TEST(ObserverFacades, BlockingCallsAndTheMutexAreMeasured) {
  redlock::test::io_thread io;  // the fakes' executor; outlives the deployment and manager
  redlock::testing::fake_deployment d(io.executor(), 3);
  auto s = redlock::test::fast_options();
  s.retry_count = 0;
  redlock::blocking_lock_manager bm(d.nodes(), s);
  auto obs = std::make_shared<counting_observer>();
  bm.async().set_observer(obs);

  auto l = bm.lock({"facade"}, 10s);
  auto l2 = bm.extend(l, 10s);
  auto t = bm.try_lock({"facade"}, 10s);
  EXPECT_FALSE(t.acquired());
  bm.unlock(l2);
  {
    redlock::distributed_mutex mu(bm, "mutex");
    mu.lock();
    EXPECT_EQ(bm.async().stats().locks_held, 1U);
    mu.unlock();
  }
  EXPECT_EQ(obs->count(operation::lock), 2);
  EXPECT_EQ(obs->count(operation::extend), 1);
  EXPECT_EQ(obs->count(operation::try_lock, make_error_code(errc::resource_locked)), 1);
  // The mutex releases in the background once unlocked.
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (obs->count(operation::unlock) < 2 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(2ms);
  EXPECT_EQ(obs->count(operation::unlock), 2);
  EXPECT_EQ(bm.async().stats().locks_held, 0U);
  std::lock_guard g(obs->mu);
  EXPECT_EQ(obs->released, 2);
  EXPECT_EQ(obs->lost, 0);
}

}  // namespace

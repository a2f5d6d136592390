// Try-lock over fake nodes: "taken" is an outcome, failures are errors, and it is one attempt.
// distributed_mutex's timed calls (TimedLockable) over fake deployments (redlock::testing).
#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <asio/use_future.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "internal/scripts.hpp"
#include "redlock/blocking.hpp"
#include "redlock/error.hpp"
#include "redlock/mutex.hpp"
#include "redlock/testing.hpp"
#include "support/fake_node.hpp"
#include "support/io_thread.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::test::fake_node;
using kind = fake_node::script_kind;

class TryLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto nodes = redlock::test::make_fake_nodes(io_.executor(), 3, fakes_);
    redlock::manager_options s;
    s.retry_count = 5;  // try-lock must ignore it
    s.retry_delay = 1ms;
    s.retry_jitter = 0ms;
    s.request_timeout = 100ms;
    manager_ = std::make_unique<redlock::lock_manager>(io_.executor(), nodes, s);
  }
  void TearDown() override { io_.stop(*manager_); }
  std::pair<std::error_code, redlock::lock> try_lock(std::string key) {
    std::promise<std::pair<std::error_code, redlock::lock>> p;
    auto f = p.get_future();
    std::vector<std::string> res{std::move(key)};
    manager_->async_try_lock(res, 1000ms, [&p](std::error_code ec, redlock::lock l) {
      p.set_value({ec, std::move(l)});
    });
    return redlock::test::get_within(f);
  }
  std::size_t acquire_calls() {
    std::size_t n = 0;
    for (auto& f : fakes_)
      n += f->count(kind::acquire);
    return n;
  }

  redlock::test::io_thread io_;  // before manager_: outlives it
  std::vector<std::shared_ptr<fake_node>> fakes_;
  std::unique_ptr<redlock::lock_manager> manager_;
};

TEST_F(TryLockTest, TakenByAnotherOwnerIsNotAcquiredWithAnEmptyErrorAfterOneAttempt) {
  for (auto& f : fakes_)
    f->set_key("k", "someone-else");
  auto [ec, l] = try_lock("k");
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_FALSE(l.acquired());
  EXPECT_EQ(l.attempts(), 1);
  EXPECT_LE(acquire_calls(), 3u) << "no retries";
  for (auto& f : fakes_)
    EXPECT_EQ(f->store().at("k"), "someone-else");
}

TEST_F(TryLockTest, FreeResourceIsAcquired) {
  auto [ec, l] = try_lock("k");
  EXPECT_FALSE(ec);
  EXPECT_TRUE(l.acquired());
  EXPECT_EQ(l.resources(), std::vector<std::string>{"k"});
}

TEST_F(TryLockTest, FailingNodesAreAnErrorNotATakenResource) {
  for (auto& f : fakes_) {
    f->set_fallback(kind::acquire, fake_node::step::error(make_error_code(errc::connect_failed)));
  }
  auto [ec, l] = try_lock("k");
  EXPECT_EQ(ec, errc::quorum_unreachable);
  EXPECT_FALSE(l.acquired());
  EXPECT_LE(acquire_calls(), 3u);
}

TEST_F(TryLockTest, InvalidArgumentsAreStillErrors) {
  std::promise<std::error_code> p;
  auto f = p.get_future();
  manager_->async_try_lock(std::vector<std::string>{}, 1000ms,
                           [&p](std::error_code ec, redlock::lock) { p.set_value(ec); });
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), errc::invalid_argument);
}

}  // namespace

// --- distributed_mutex as a TimedLockable, over fake deployments -------------------------

namespace {

namespace rt = redlock::testing;
using clock_type = std::chrono::steady_clock;

class TimedMutexTest : public ::testing::Test {
 protected:
  static redlock::manager_options settings(std::chrono::milliseconds retry_delay = 20ms) {
    redlock::manager_options s;
    s.retry_count = 0;  // the timed calls must not depend on it: the time bounds them
    s.retry_delay = retry_delay;
    s.retry_jitter = 0ms;
    s.request_timeout = 100ms;
    return s;
  }
  std::unique_ptr<redlock::blocking_lock_manager> make_manager(
      std::chrono::milliseconds retry_delay = 20ms) {
    return std::make_unique<redlock::blocking_lock_manager>(d_.nodes(), settings(retry_delay));
  }
  void hold_elsewhere(const std::string& key) {
    for (std::size_t i = 0; i < d_.size(); ++i)
      d_[i].set_key(key, "someone-else");  // no TTL: held for good
  }
  std::size_t acquires(std::size_t server = 0) {
    return d_[server].count(rt::script_kind::acquire);
  }
  std::size_t subscribed(const std::string& resource) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < d_.size(); ++i)
      n += d_[i].subscribers(redlock::detail::release_channel(resource));
    return n;
  }
  template <class Pred>
  static bool eventually(Pred pred, std::chrono::milliseconds limit = 5s) {
    const auto until = clock_type::now() + limit;
    while (!pred()) {
      if (clock_type::now() >= until)
        return false;
      std::this_thread::sleep_for(2ms);
    }
    return true;
  }

  redlock::test::io_thread io_;  // the fakes' executor; outlives the deployment and managers
  rt::fake_deployment d_{io_.executor(), 3};
};

static_assert(redlock::detail::timed_lockable<redlock::distributed_mutex>);

TEST_F(TimedMutexTest, TryLockForAResourceHeldElsewhereIsFalseAfterTheBudgetAndRetriesWithinIt) {
  auto m = make_manager();
  redlock::distributed_mutex mu(*m, "r");
  hold_elsewhere("r");
  const auto t = clock_type::now();
  EXPECT_FALSE(mu.try_lock_for(200ms));
  const auto took = clock_type::now() - t;
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 2s);
  // One lock call that kept trying (20 ms apart), not a single try; manager retry_count 0.
  EXPECT_GT(acquires(), 3u);
  EXPECT_EQ(d_.count_holding("r", "someone-else"), 3u);
  EXPECT_FALSE(mu.current_lock().acquired());
}

TEST_F(TimedMutexTest, TryLockUntilADeadlineOfTheSteadyOrTheSystemClockIsFalseAtIt) {
  auto m = make_manager();
  redlock::distributed_mutex mu(*m, "r");
  hold_elsewhere("r");
  const auto t = clock_type::now();
  EXPECT_FALSE(mu.try_lock_until(t + 150ms));
  EXPECT_GE(clock_type::now() - t, 150ms);
  const auto t2 = clock_type::now();
  EXPECT_FALSE(mu.try_lock_until(std::chrono::system_clock::now() + 150ms));
  // Converted to a steady budget at the call: within a millisecond of rounding.
  EXPECT_GE(clock_type::now() - t2, 149ms);
  EXPECT_LT(clock_type::now() - t, 3s);
}

TEST_F(TimedMutexTest, AFreeResourceIsAcquiredAndReleasedOnUnlock) {
  auto m = make_manager();
  redlock::distributed_mutex mu(*m, "r");
  ASSERT_TRUE(mu.try_lock_for(5s));
  const auto l = mu.current_lock();
  ASSERT_TRUE(l.acquired());
  EXPECT_EQ(d_.count_holding("r", l.value()), 3u);
  mu.unlock();
  EXPECT_TRUE(eventually([&] { return d_.count_holding("r", l.value()) == 0; }));
  // Released: the next timed call on the object succeeds (it waits for the release locally).
  ASSERT_TRUE(mu.try_lock_until(clock_type::now() + 5s));
  mu.unlock();
}

TEST_F(TimedMutexTest, AReleaseByTheHolderWakesTheWaiterLongBeforeItsRetryDelay) {
  auto holder_m = make_manager();
  // A 30 s retry delay: a poll would come far too late; only the announced release can
  // wake the waiter in time.
  auto waiter_m = make_manager(30s);
  redlock::distributed_mutex holder(*holder_m, "r");
  redlock::distributed_mutex waiter(*waiter_m, "r");
  holder.lock();
  auto w = std::async(std::launch::async, [&] { return waiter.try_lock_for(20s); });
  // Waiting on the servers: subscribed to the resource's releases on every node.
  ASSERT_TRUE(eventually([&] { return subscribed("r") == 3; }));
  const auto released = clock_type::now();
  holder.unlock();
  ASSERT_EQ(w.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(w.get());
  EXPECT_LT(clock_type::now() - released, 2s);
  EXPECT_TRUE(waiter.current_lock().acquired());
  waiter.unlock();
  EXPECT_TRUE(eventually([&] { return subscribed("r") == 0; }));
}

TEST_F(TimedMutexTest, ZeroNegativeOrPastTimesMakeOneAttempt) {
  auto m = make_manager();
  redlock::distributed_mutex mu(*m, "r");
  hold_elsewhere("r");
  EXPECT_FALSE(mu.try_lock_for(0ms));
  EXPECT_EQ(acquires(), 1u);
  EXPECT_FALSE(mu.try_lock_for(-5s));
  EXPECT_EQ(acquires(), 2u);
  EXPECT_FALSE(mu.try_lock_for(std::chrono::duration<double>(-0.5)));
  EXPECT_EQ(acquires(), 3u);
  EXPECT_FALSE(mu.try_lock_until(clock_type::now() - 1s));
  EXPECT_EQ(acquires(), 4u);
  EXPECT_FALSE(mu.try_lock_until(std::chrono::system_clock::time_point{}));  // 1970
  EXPECT_EQ(acquires(), 5u);
  // Free: that one attempt acquires.
  for (std::size_t i = 0; i < d_.size(); ++i)
    d_[i].lose_keys();
  EXPECT_TRUE(mu.try_lock_for(-1ms));
  mu.unlock();
}

TEST_F(TimedMutexTest, TheLongestDurationsAndTimePointsDoNotOverflow) {
  auto m = make_manager();
  redlock::distributed_mutex mu(*m, "r");
  ASSERT_TRUE(mu.try_lock_for(std::chrono::nanoseconds::max()));
  mu.unlock();
  ASSERT_TRUE(mu.try_lock_for(std::chrono::hours::max()));
  mu.unlock();
  ASSERT_TRUE(mu.try_lock_until(clock_type::time_point::max()));
  mu.unlock();
  ASSERT_TRUE(mu.try_lock_until(std::chrono::system_clock::time_point::max()));
  mu.unlock();
}

TEST_F(TimedMutexTest, ALocalHolderOfTheSameObjectMakesItWaitWithoutContactingTheServers) {
  auto m = make_manager();
  redlock::distributed_mutex mu(*m, "r");
  mu.lock();
  const auto before = acquires();
  auto w = std::async(std::launch::async, [&] {
    const auto t = clock_type::now();
    const bool got = mu.try_lock_for(150ms);
    return std::pair(got, clock_type::now() - t);
  });
  ASSERT_EQ(w.wait_for(10s), std::future_status::ready);
  const auto [got, took] = w.get();
  EXPECT_FALSE(got);
  EXPECT_GE(took, 150ms);
  EXPECT_EQ(acquires(), before) << "queued locally, not on the servers";
  // Unlocked by the local holder during the wait: acquired.
  auto w2 = std::async(std::launch::async, [&] { return mu.try_lock_for(20s); });
  mu.unlock();
  ASSERT_EQ(w2.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(w2.get());
  mu.unlock();
}

TEST_F(TimedMutexTest, FailingServersAreAnErrorNotAFalse) {
  auto m = make_manager();
  redlock::distributed_mutex mu(*m, "r");
  for (std::size_t i = 0; i < d_.size(); ++i)
    d_[i].go_down();
  try {
    (void)mu.try_lock_for(100ms);
    ADD_FAILURE() << "no exception";
  } catch (const redlock::lock_error& e) {
    EXPECT_EQ(e.code(), errc::quorum_unreachable);
  }
  // The object is not left claimed: it works once the servers are back.
  for (std::size_t i = 0; i < d_.size(); ++i)
    d_[i].recover();
  EXPECT_TRUE(mu.try_lock_for(5s));
  mu.unlock();
}

TEST_F(TimedMutexTest, UniqueLocksTimedConstructorsWork) {
  auto m = make_manager();
  redlock::distributed_mutex mu(*m, "r");
  {
    std::unique_lock<redlock::distributed_mutex> lk(mu, 200ms);
    ASSERT_TRUE(lk.owns_lock());
  }
  {
    std::unique_lock<redlock::distributed_mutex> lk(mu, std::chrono::system_clock::now() + 2s);
    ASSERT_TRUE(lk.owns_lock());
    lk.unlock();
    EXPECT_TRUE(lk.try_lock_for(2s));
  }
  hold_elsewhere("other");
  redlock::distributed_mutex busy(*m, "other");
  std::unique_lock<redlock::distributed_mutex> lk(busy, clock_type::now() + 100ms);
  EXPECT_FALSE(lk.owns_lock());
}

}  // namespace

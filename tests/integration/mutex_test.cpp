// Try-lock and distributed_mutex against real redis-server processes. The many-threads test
// also runs under ThreadSanitizer in CI.
#include <gtest/gtest.h>

#include <asio/use_future.hpp>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "redlock/blocking.hpp"
#include "redlock/error.hpp"
#include "redlock/mutex.hpp"
#include "support/options.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::test::redis_server;
using redlock::test::wait_for;

redlock::manager_options fast_settings() {
  auto s = redlock::test::fast_options();
  // The waits below are bounded in retries of 10 ms ± 5 ms.
  s.retry_delay = 10ms;
  s.retry_jitter = 5ms;
  return s;
}

class MutexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    servers_ = redlock::test::start_servers(3);
    urls_ = redlock::test::urls_of(servers_);
  }
  std::unique_ptr<redlock::blocking_lock_manager> make_manager() {
    return std::make_unique<redlock::blocking_lock_manager>(urls_, fast_settings());
  }
  long long exists(std::size_t server, const std::string& key) {
    return servers_[server]->command({"EXISTS", key}).integer;
  }
  bool absent_everywhere(const std::string& key) {
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (servers_[i]->running() && exists(i, key) != 0)
        return false;
    }
    return true;
  }
  std::vector<std::unique_ptr<redis_server>> servers_;
  std::vector<std::string> urls_;
};

TEST_F(MutexTest, TryLockReportsAForeignHolderAsNotAcquiredWithoutError) {
  auto m = make_manager();
  for (auto& s : servers_)
    s->command({"SET", "mutex:foreign", "someone-else", "PX", "10000"});
  std::error_code ec;
  auto l = m->try_lock({"mutex:foreign"}, 1000ms, ec);
  EXPECT_FALSE(ec);
  EXPECT_FALSE(l.acquired());
  EXPECT_GE(l.report().count(redlock::vote::denied), 2u);  // decided once a quorum is impossible
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    EXPECT_EQ(servers_[i]->command({"GET", "mutex:foreign"}).str, "someone-else");
  }
}

TEST_F(MutexTest, TryLockAcquiresAFreeResourceWithOneAttempt) {
  auto m = make_manager();
  std::vector<std::string> res{"mutex:free"};
  auto f = m->async().async_try_lock(res, 1000ms, asio::use_future);
  auto l = f.get();
  EXPECT_TRUE(l.acquired());
  EXPECT_EQ(l.attempts(), 1);
  m->unlock(l);
}

TEST_F(MutexTest, TryLockWithAMajorityDownIsARealError) {
  auto m = make_manager();
  servers_[0]->kill9();
  servers_[1]->kill9();
  std::error_code ec;
  auto l = m->try_lock({"mutex:down"}, 1000ms, ec);
  EXPECT_EQ(ec, errc::quorum_unreachable);
  EXPECT_FALSE(l.acquired());
  EXPECT_THROW(m->try_lock({"mutex:down"}, 1000ms), redlock::lock_error);
}

TEST_F(MutexTest, LockGuardAcquiresAndReleasesOnScopeExit) {
  auto m = make_manager();
  redlock::distributed_mutex mu(*m, "mutex:guard");
  {
    std::lock_guard g(mu);
    for (std::size_t i = 0; i < servers_.size(); ++i)
      EXPECT_EQ(exists(i, "mutex:guard"), 1);
    EXPECT_TRUE(mu.current_lock().acquired());
  }
  EXPECT_TRUE(wait_for([&] { return absent_everywhere("mutex:guard"); }, 5s));
  EXPECT_FALSE(mu.current_lock().acquired());
}

TEST_F(MutexTest, HeldMutexIsExtendedPastItsTtl) {
  auto m = make_manager();
  redlock::mutex_options o;
  o.ttl = 300ms;
  redlock::distributed_mutex mu(*m, "mutex:extend", o);
  std::unique_lock g(mu);
  // Past two TTLs the key is still ours and the mutex was never lost.
  auto until = std::chrono::steady_clock::now() + 700ms;
  wait_for([&] { return std::chrono::steady_clock::now() >= until; }, 2s);
  EXPECT_FALSE(mu.lost());
  EXPECT_FALSE(mu.loss_token().stop_requested());
  for (std::size_t i = 0; i < servers_.size(); ++i)
    EXPECT_EQ(exists(i, "mutex:extend"), 1);
  g.unlock();
  EXPECT_TRUE(wait_for([&] { return absent_everywhere("mutex:extend"); }, 5s));
}

TEST_F(MutexTest, TryLockOfAnotherObjectFailsWhileHeldAndSucceedsAfterUnlock) {
  auto m1 = make_manager();
  auto m2 = make_manager();
  redlock::distributed_mutex a(*m1, "mutex:two");
  redlock::distributed_mutex b(*m2, "mutex:two");
  std::unique_lock ga(a);
  EXPECT_FALSE(b.try_lock());
  ga.unlock();
  EXPECT_TRUE(wait_for([&] { return absent_everywhere("mutex:two"); }, 5s));
  std::unique_lock gb(b, std::try_to_lock);
  EXPECT_TRUE(gb.owns_lock());
}

TEST_F(MutexTest, ManyThreadsOverTwoProcessesNeverOverlapAndNoUpdateIsLost) {
  // Two managers stand for two processes; each has one distributed_mutex shared by its
  // threads. `inside` detects overlap across both; `local` is a plain counter per object
  // that only that object's mutex protects (a data race on it would show under TSan).
  constexpr int threads_per_object = 4;
  constexpr int rounds = 8;
  redlock::mutex_options o;
  o.ttl = 2000ms;
  o.lock_retry_count = 2000;  // bounded: about 20 s of waiting at 10 ms ± 5 ms
  auto m1 = make_manager();
  auto m2 = make_manager();
  redlock::distributed_mutex a(*m1, "mutex:counter", o);
  redlock::distributed_mutex b(*m2, "mutex:counter", o);
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> total{0};
  int local_a = 0;
  int local_b = 0;
  auto worker = [&](redlock::distributed_mutex& mu, int& local, bool scoped) {
    for (int i = 0; i < rounds; ++i) {
      auto body = [&] {
        if (inside.fetch_add(1) != 0)
          ++overlaps;
        int v = local;
        std::this_thread::yield();
        local = v + 1;
        ++total;
        inside.fetch_sub(1);
      };
      if (scoped) {
        std::scoped_lock g(mu);
        body();
      } else {
        std::unique_lock g(mu);
        body();
      }
    }
  };
  std::vector<std::thread> ts;
  for (int t = 0; t < threads_per_object; ++t) {
    ts.emplace_back(worker, std::ref(a), std::ref(local_a), t % 2 == 0);
    ts.emplace_back(worker, std::ref(b), std::ref(local_b), t % 2 == 1);
  }
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(total.load(), 2 * threads_per_object * rounds);
  EXPECT_EQ(local_a, threads_per_object * rounds);
  EXPECT_EQ(local_b, threads_per_object * rounds);
  EXPECT_TRUE(wait_for([&] { return absent_everywhere("mutex:counter"); }, 5s));
}

TEST_F(MutexTest, ScopedLockOfTwoMutexesInOppositeOrdersDoesNotDeadlock) {
  auto m = make_manager();
  redlock::mutex_options o;
  o.lock_retry_count = 2000;
  redlock::distributed_mutex x(*m, "mutex:x", o);
  redlock::distributed_mutex y(*m, "mutex:y", o);
  std::atomic<int> done{0};
  std::thread t1([&] {
    for (int i = 0; i < 5; ++i) {
      std::scoped_lock g(x, y);
      ++done;
    }
  });
  std::thread t2([&] {
    for (int i = 0; i < 5; ++i) {
      std::scoped_lock g(y, x);
      ++done;
    }
  });
  t1.join();
  t2.join();
  EXPECT_EQ(done.load(), 10);
}

TEST_F(MutexTest, UnlockWithAMajorityDownDoesNotThrowAndReportsToTheHook) {
  // Declared before the manager, so that they outlive its thread, which calls the hook.
  std::mutex hook_mu;
  std::vector<redlock::node_error> seen;
  auto m = make_manager();
  m->async().on_node_error([&](const redlock::node_error& e) {
    std::lock_guard g(hook_mu);
    seen.push_back(e);
  });
  redlock::distributed_mutex mu(*m, "mutex:down-unlock");
  mu.lock();
  servers_[0]->kill9();
  servers_[1]->kill9();
  mu.unlock();  // noexcept: a failure cannot escape
  EXPECT_TRUE(wait_for(
      [&] {
        std::lock_guard g(hook_mu);
        for (const auto& e : seen) {
          if (e.node.empty() && e.message.find("mutex:down-unlock") != std::string::npos) {
            return true;
          }
        }
        return false;
      },
      5s));
  // The object is usable again locally: try_lock fails only on the servers, with an error.
  EXPECT_THROW((void)mu.try_lock(), redlock::lock_error);
}

TEST_F(MutexTest, LossOfAHeldMutexIsVisibleThroughLostAndTheCallback) {
  auto m = make_manager();
  std::atomic<int> losses{0};
  redlock::mutex_options o;
  o.ttl = 400ms;
  o.on_loss = [&](redlock::loss_reason r, std::error_code) {
    if (r == redlock::loss_reason::lost)
      ++losses;
  };
  redlock::distributed_mutex mu(*m, "mutex:lost", o);
  std::unique_lock g(mu);
  for (auto& s : servers_)
    s->command({"DEL", "mutex:lost"});
  EXPECT_TRUE(wait_for([&] { return mu.lost(); }, 5s));
  EXPECT_TRUE(mu.loss_token().stop_requested());
  EXPECT_EQ(losses.load(), 1);
  g.unlock();
}

// --- timed calls (TimedLockable) ---------------------------------------------------------

TEST_F(MutexTest, TryLockForAForeignHolderIsFalseAfterTheBudgetAndTouchesNothing) {
  auto m = make_manager();
  for (auto& s : servers_)
    s->command({"SET", "mutex:timed-held", "someone-else", "PX", "60000"});
  redlock::distributed_mutex mu(*m, "mutex:timed-held");
  const auto t = std::chrono::steady_clock::now();
  EXPECT_FALSE(mu.try_lock_for(300ms));
  const auto took = std::chrono::steady_clock::now() - t;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 5s);
  for (auto& s : servers_)
    EXPECT_EQ(s->command({"GET", "mutex:timed-held"}).str, "someone-else");
  // A deadline of the wall clock, already past: one attempt, also false.
  EXPECT_FALSE(mu.try_lock_until(std::chrono::system_clock::now() - 1s));
}

TEST_F(MutexTest, TryLockForSucceedsWhenTheOtherObjectUnlocksDuringTheWait) {
  auto m1 = make_manager();
  auto m2 = make_manager();
  redlock::distributed_mutex a(*m1, "mutex:timed-handoff");
  redlock::distributed_mutex b(*m2, "mutex:timed-handoff");
  a.lock();
  const auto t = std::chrono::steady_clock::now();
  auto w = std::async(std::launch::async, [&] { return b.try_lock_for(20s); });
  // a unlocks ~300 ms into b's wait (b acquires whenever it tries after that).
  wait_for([&] { return std::chrono::steady_clock::now() >= t + 300ms; }, 2s);
  a.unlock();
  ASSERT_EQ(w.wait_for(15s), std::future_status::ready);
  EXPECT_TRUE(w.get());
  EXPECT_LT(std::chrono::steady_clock::now() - t, 10s) << "well before the 20 s budget";
  ASSERT_TRUE(b.current_lock().acquired());
  // A quorum: a's unlock completes once a quorum released, so b, woken by it, may reach the
  // last server before a's release does and be refused there.
  std::size_t holding = 0;
  for (std::size_t i = 0; i < servers_.size(); ++i)
    holding += servers_[i]->command({"GET", "mutex:timed-handoff"}).str == b.current_lock().value();
  EXPECT_GE(holding, servers_.size() / 2 + 1);
  b.unlock();
  EXPECT_TRUE(wait_for([&] { return absent_everywhere("mutex:timed-handoff"); }, 5s));
}

TEST_F(MutexTest, UniqueLockWithATimeoutOrADeadlineAcquiresAFreeResource) {
  auto m = make_manager();
  redlock::distributed_mutex mu(*m, "mutex:timed-free");
  {
    std::unique_lock<redlock::distributed_mutex> lk(mu, 200ms);
    ASSERT_TRUE(lk.owns_lock());
    for (std::size_t i = 0; i < servers_.size(); ++i)
      EXPECT_EQ(exists(i, "mutex:timed-free"), 1);
  }
  std::unique_lock<redlock::distributed_mutex> lk(mu, std::chrono::system_clock::now() + 2s);
  EXPECT_TRUE(lk.owns_lock());
  lk.unlock();
  EXPECT_TRUE(wait_for([&] { return absent_everywhere("mutex:timed-free"); }, 5s));
}

}  // namespace

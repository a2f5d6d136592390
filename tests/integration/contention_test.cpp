// Mutual exclusion under contention: 16 threads, each with its own manager (like separate
// processes), increment a counter in a separate Redis with a non-atomic read–sleep–write.
// With the lock no update is lost; without it, updates are lost (so the check can fail).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "redlock/blocking.hpp"
#include "redlock/error.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::test::redis_server;

constexpr int threads = 16;
constexpr int increments_per_thread = 8;
constexpr auto run_deadline = 90s;  // bounds every loop below in time as well as in count

struct counter_store {
  redis_server counter;  // separate from the lock servers

  long long read(const std::string& k) {
    auto r = counter.command({"GET", k});
    return r.kind == redlock::reply::type::string ? std::stoll(r.str) : 0;
  }
  void write(const std::string& k, long long v) { counter.command({"SET", k, std::to_string(v)}); }

  // The unsafe increment: another writer between read and write loses an update.
  void increment(const std::string& k) {
    const auto v = read(k);
    std::this_thread::sleep_for(2ms);
    write(k, v + 1);
  }
};

TEST(Contention, SixteenClientsWithTheLockLoseNoUpdates) {
  const auto servers = redlock::test::start_servers(3);
  const auto urls = redlock::test::urls_of(servers);
  counter_store store;
  const std::string key = "counter:locked";

  const auto until = std::chrono::steady_clock::now() + run_deadline;
  std::atomic<int> done{0};
  std::atomic<int> failures{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> inside{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      redlock::manager_options s;
      s.retry_count = 2000;  // bounded; contention may take many attempts
      s.retry_delay = 5ms;
      s.retry_jitter = 5ms;
      s.request_timeout = 500ms;
      redlock::blocking_lock_manager m(urls, s);
      for (int i = 0; i < increments_per_thread; ++i) {
        if (std::chrono::steady_clock::now() > until)
          return;
        std::error_code ec;
        auto l = m.lock({"contended-resource"}, 10s, {}, ec);
        if (ec) {
          ++failures;
          continue;
        }
        if (inside.fetch_add(1) != 0)
          ++overlaps;
        store.increment(key);
        inside.fetch_sub(1);
        m.unlock(l, {}, ec);
        ++done;
      }
    });
  }
  for (auto& t : pool)
    t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(done.load(), threads * increments_per_thread) << "ran out of time";
  EXPECT_EQ(store.read(key), done.load()) << "lost updates under the lock";
}

TEST(Contention, WithoutTheLockTheSameWorkLosesUpdates) {
  // The control run: proves the counter check detects a broken exclusion.
  counter_store store;
  const std::string key = "counter:unlocked";
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = 0; i < increments_per_thread; ++i)
        store.increment(key);
    });
  }
  for (auto& t : pool)
    t.join();
  EXPECT_LT(store.read(key), threads * increments_per_thread);
}

}  // namespace

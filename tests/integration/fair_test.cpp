// Fair mode on real redis-servers: the queue scripts themselves, then managers served in the
// order their waiters began, a crashed waiter's entry, and a cancelled waiter leaving at once.
#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "internal/scripts.hpp"
#include "redlock/lock_manager.hpp"
#include "support/blocking_client.hpp"
#include "support/options.hpp"
#include "support/redis_server.hpp"
#include "support/waiting.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using redlock::reply;
using redlock::test::blocking_client;
using redlock::test::redis_server;
using redlock::test::wait_for;
namespace d = redlock::detail;

std::vector<std::string> fair_keys(const std::string& r) {
  return {r, d::fair_queue_key(r), d::fair_lease_key(r)};
}

reply eval(const redis_server& s, const redlock::script& sc, const std::vector<std::string>& keys,
           const std::vector<std::string>& args) {
  std::vector<std::string> argv{"EVAL", sc.text(), std::to_string(keys.size())};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return s.command(argv);
}

long long fair_acquire(const redis_server& s, const std::string& r, const std::string& v,
                       const std::string& ticket, const std::string& lease = "10000") {
  return eval(s, d::fair_acquire_script(), fair_keys(r), {v, "10000", ticket, lease}).integer;
}

std::vector<std::string> queue(const redis_server& s, const std::string& r) {
  std::vector<std::string> out;
  for (const auto& e : s.command({"ZRANGE", d::fair_queue_key(r), "0", "-1"}).elements)
    out.push_back(e.str);
  return out;
}

TEST(FairScripts, OnlyTheHeadOfTheLiveQueueIsGrantedAndReleasesNameTheNewHead) {
  redis_server s;
  s.command({"SET", "r", "holder", "PX", "10000"});
  // Two waiters queue behind the holder; their order is their tickets', not their arrival's.
  EXPECT_LT(fair_acquire(s, "r", "late", "200"), -9000);  // denied, with the holder's TTL
  EXPECT_LT(fair_acquire(s, "r", "early", "100"), -9000);
  EXPECT_EQ(queue(s, "r"), (std::vector<std::string>{"early", "late"}));
  // The queue keys expire as a whole once nobody refreshes them.
  EXPECT_GT(s.command({"PTTL", d::fair_queue_key("r")}).integer, 0);
  EXPECT_GT(s.command({"PTTL", d::fair_lease_key("r")}).integer, 0);
  // The holder goes: "late" asks first but is not the head.
  s.command({"DEL", "r"});
  EXPECT_EQ(fair_acquire(s, "r", "late", "200"), 0);
  EXPECT_EQ(s.command({"EXISTS", "r"}).integer, 0);
  // The head is granted and keeps its entry (its attempt may still fail on other nodes),
  // leased only as long as its key lives.
  blocking_client sub("127.0.0.1", s.port(), 5s);
  sub.command({"SSUBSCRIBE", d::release_channel("r")});
  EXPECT_EQ(
      eval(s, d::fair_acquire_script(), fair_keys("r"), {"early", "3000", "100", "10000"}).integer,
      1);
  EXPECT_EQ(queue(s, "r"), (std::vector<std::string>{"early", "late"}));
  const auto lease_end = std::stoll(s.command({"ZSCORE", d::fair_lease_key("r"), "early"}).str);
  const auto server_ms = std::stoll(s.command({"TIME"}).elements[0].str) * 1000;
  EXPECT_LE(lease_end - server_ms, 4000);  // cut from 10 s to the 3 s TTL (+ TIME's rounding)
  // Its release names the new head (the SHA1 of its value) and wakes only it.
  EXPECT_EQ(eval(s, d::fair_release_script(), fair_keys("r"), {"early", "leave", "10000"}).integer,
            1);
  auto msg = sub.command({"PING"});  // answered after the message pushed before it
  ASSERT_TRUE(msg && msg->elements.size() == 3);
  EXPECT_EQ(msg->elements[0].str, "smessage");
  EXPECT_EQ(msg->elements[2].str, "head:" + redlock::script("late").sha1());
  sub.command({"PING"});  // the PING's own answer
  EXPECT_EQ(fair_acquire(s, "r", "late", "200"), 1);
  EXPECT_EQ(queue(s, "r"), (std::vector<std::string>{"late"}));
  EXPECT_EQ(eval(s, d::fair_release_script(), fair_keys("r"), {"late", "leave", "10000"}).integer,
            1);
  EXPECT_TRUE(queue(s, "r").empty());
}

TEST(FairScripts, StayKeepsTheEntryAndLeaveRemovesItAndWakesTheNextWhenTheHeadLeaves) {
  redis_server s;
  s.command({"SET", "r", "holder", "PX", "10000"});
  fair_acquire(s, "r", "a", "1");
  fair_acquire(s, "r", "b", "2");
  // "a" retries after a failed attempt: its release keeps its place.
  EXPECT_EQ(eval(s, d::fair_release_script(), fair_keys("r"), {"a", "stay", "10000"}).integer, 0);
  EXPECT_EQ(queue(s, "r"), (std::vector<std::string>{"a", "b"}));
  // "a" gives up: it leaves, and "b" (now the head) is told although no key was freed.
  blocking_client sub("127.0.0.1", s.port(), 5s);
  sub.command({"SSUBSCRIBE", d::release_channel("r")});
  EXPECT_EQ(eval(s, d::fair_release_script(), fair_keys("r"), {"a", "leave", "10000"}).integer, 0);
  EXPECT_EQ(queue(s, "r"), (std::vector<std::string>{"b"}));
  auto msg = sub.command({"PING"});
  ASSERT_TRUE(msg && msg->elements.size() == 3);
  EXPECT_EQ(msg->elements[2].str, "head:" + redlock::script("b").sha1());
  EXPECT_EQ(s.command({"GET", "r"}).str, "holder");  // someone else's key untouched
}

TEST(FairScripts, ALateAcquireOfAWaiterThatLeftDoesNotQueueItAgain) {
  // Found by the fair soak: a request sent into a partition, retransmitted after the heal,
  // ran after its waiter had left the queue, and queued it again at the head for a lease.
  redis_server s;
  s.command({"SET", "r", "holder", "PX", "10000"});
  fair_acquire(s, "r", "gone", "1");
  fair_acquire(s, "r", "next", "2");
  ASSERT_EQ(eval(s, d::fair_release_script(), fair_keys("r"), {"gone", "leave", "10000"}).integer,
            0);
  EXPECT_EQ(queue(s, "r"), (std::vector<std::string>{"next"}));
  EXPECT_EQ(fair_acquire(s, "r", "gone", "1"), 0);  // the late request
  EXPECT_EQ(queue(s, "r"), (std::vector<std::string>{"next"}));
  s.command({"DEL", "r"});
  EXPECT_EQ(fair_acquire(s, "r", "next", "2"), 1);
  // The tombstone lives one lease and then goes with the lease key.
  EXPECT_GT(s.command({"PTTL", d::fair_lease_key("r")}).integer, 0);
}

TEST(FairScripts, AnEntryWhoseLeaseRanOutIsDropped) {
  redis_server s;
  s.command({"SET", "r", "holder", "PX", "10000"});
  fair_acquire(s, "r", "crashed", "1", "150");  // leased for 150 ms, never refreshed
  fair_acquire(s, "r", "alive", "2");
  s.command({"DEL", "r"});
  EXPECT_EQ(fair_acquire(s, "r", "alive", "2"), 0);  // still behind the crashed waiter
  ASSERT_TRUE(wait_for([&] { return fair_acquire(s, "r", "alive", "2") == 1; }, 5s));
  EXPECT_EQ(queue(s, "r"), (std::vector<std::string>{"alive"}));  // the holder's own entry
}

class FairManagers : public ::testing::Test {
 protected:
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread{[this] { io.run(); }};

  void TearDown() override {
    work.reset();
    thread.join();
  }

  static redlock::manager_options fair() {
    auto s = redlock::test::fast_options();
    s.connect_timeout = 500ms;
    s.fair = true;
    return s;
  }
};

TEST_F(FairManagers, WaitersInDifferentManagersAreServedInTheOrderTheyBegan) {
  auto servers = redlock::test::start_servers(3);
  const auto urls = redlock::test::urls_of(servers);
  constexpr std::size_t n = 4;
  std::vector<std::unique_ptr<redlock::lock_manager>> m;
  for (std::size_t i = 0; i <= n; ++i)
    m.push_back(std::make_unique<redlock::lock_manager>(io.get_executor(), urls, fair()));
  auto h = redlock::test::start_lock(*m[0], "q");
  auto held = redlock::test::await_lock(h);
  ASSERT_FALSE(held.ec) << held.ec.message();
  std::vector<std::future<redlock::test::lock_outcome>> w;
  for (std::size_t i = 1; i <= n; ++i) {
    w.push_back(redlock::test::start_lock(*m[i], "q", redlock::test::patient()));
    ASSERT_TRUE(wait_for(
        [&] {
          for (const auto& s : servers) {
            if (queue(*s, "q").size() != i)
              return false;
          }
          return true;
        },
        10s));
  }
  redlock::lock prev = held.l;
  redlock::lock_manager* prev_m = m[0].get();
  for (std::size_t i = 0; i < n; ++i) {
    const auto released = clock_type::now();
    redlock::test::unlock_and_wait(*prev_m, prev);
    auto got = redlock::test::await_lock(w[i]);
    ASSERT_FALSE(got.ec) << "waiter " << i << ": " << got.ec.message();
    EXPECT_LT(got.at - released, 2s) << "waiter " << i << " was not woken";
    for (std::size_t j = i + 1; j < n; ++j)
      EXPECT_EQ(w[j].wait_for(0s), std::future_status::timeout) << j << " overtook " << i;
    prev = got.l;
    prev_m = m[i + 1].get();
  }
  redlock::test::unlock_and_wait(*prev_m, prev);
  for (const auto& s : servers) {
    EXPECT_TRUE(queue(*s, "q").empty());
    EXPECT_TRUE(wait_for(
        [&] {
          return s->command({"PUBSUB", "SHARDNUMSUB", d::release_channel("q")})
                     .elements[1]
                     .integer == 0;
        },
        5s));
  }
  for (auto& x : m)
    redlock::test::quit_and_wait(*x);
}

TEST_F(FairManagers, ACancelledWaiterLeavesEveryQueueAtOnce) {
  auto servers = redlock::test::start_servers(3);
  const auto urls = redlock::test::urls_of(servers);
  for (const auto& s : servers)
    s->command({"SET", "c", "someone", "PX", "60000"});
  redlock::lock_manager m(io.get_executor(), urls, fair());
  asio::cancellation_signal cancel;
  auto w = redlock::test::start_lock(m, "c", redlock::test::patient(), cancel.slot());
  ASSERT_TRUE(wait_for(
      [&] {
        for (const auto& s : servers) {
          if (queue(*s, "c").size() != 1)
            return false;
        }
        return true;
      },
      10s));
  asio::post(io, [&] { cancel.emit(asio::cancellation_type::terminal); });
  auto got = redlock::test::await_lock(w);
  EXPECT_EQ(got.ec, redlock::errc::cancelled);
  // Not after the entry's lease (2 s): at once, by the cancelled acquire's release.
  EXPECT_TRUE(wait_for(
      [&] {
        for (const auto& s : servers) {
          if (!queue(*s, "c").empty())
            return false;
        }
        return true;
      },
      1s));
  redlock::test::quit_and_wait(m);
}

}  // namespace

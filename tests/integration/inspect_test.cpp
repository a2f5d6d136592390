// Inspection against real redis-server processes: our own lock, partial holds, foreign
// holders, resource sets, unreachable nodes, and that nothing is written.
#include <gtest/gtest.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "redlock/blocking.hpp"
#include "redlock/error.hpp"
#include "redlock/inspect.hpp"
#include "redlock/lock_manager.hpp"
#include "support/options.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::lock_status;
using redlock::steady_clock;
using redlock::test::redis_server;

using redlock::test::fast_options;

class InspectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    servers_ = redlock::test::start_servers(3);
    const auto urls = redlock::test::urls_of(servers_);
    manager_ = std::make_unique<redlock::blocking_lock_manager>(urls, fast_options());
  }
  void set(std::size_t server, const std::string& key, const std::string& value,
           std::chrono::milliseconds ttl = 10000ms) {
    servers_[server]->command({"SET", key, value, "PX", std::to_string(ttl.count())});
  }
  redlock::inspection inspect(std::vector<std::string> keys) {
    return redlock::inspect(*manager_, keys);
  }
  std::vector<std::unique_ptr<redis_server>> servers_;
  std::unique_ptr<redlock::blocking_lock_manager> manager_;
};

TEST_F(InspectTest, OurLockIsHeldByItsValueWithValidityWithinTheTtl) {
  auto before = steady_clock::now();
  auto l = manager_->lock({"insp:own"}, 5000ms);
  auto in = inspect({"insp:own"});
  EXPECT_EQ(in.status, lock_status::held);
  EXPECT_TRUE(in.held_by(l));
  EXPECT_EQ(in.holding_nodes, 3u);
  ASSERT_EQ(in.nodes.size(), 3u);
  for (const auto& n : in.nodes) {
    ASSERT_TRUE(n.answered()) << n.ec.message();
    ASSERT_EQ(n.keys.size(), 1u);
    EXPECT_EQ(n.keys[0].value, l.value());
    EXPECT_GT(n.keys[0].ttl, 0ms);
    EXPECT_LE(n.keys[0].ttl, 5000ms);
  }
  EXPECT_GT(in.remaining(), 0ms);
  EXPECT_LE(in.validity_deadline, before + 5000ms + 1s);  // never beyond the TTL (slack: clock)
  manager_->unlock(l);
  EXPECT_EQ(inspect({"insp:own"}).status, lock_status::free);
}

TEST_F(InspectTest, ForeignHolderOnAQuorumIsHeldButNotByUs) {
  auto mine = manager_->lock({"insp:mine"}, 5000ms);
  set(0, "insp:foreign", "other-client");
  set(1, "insp:foreign", "other-client");
  auto in = inspect({"insp:foreign"});
  EXPECT_EQ(in.status, lock_status::held);
  EXPECT_EQ(in.holder, "other-client");
  EXPECT_FALSE(in.held_by(mine));
  EXPECT_EQ(in.holding_nodes, 2u);
  EXPECT_EQ(in.free_nodes, 1u);
  manager_->unlock(mine);
}

TEST_F(InspectTest, MinorityHoldIsIndeterminateOnlyWhenTheRestIsNotFree) {
  set(0, "insp:partial", "v");
  auto one = inspect({"insp:partial"});
  EXPECT_EQ(one.status, lock_status::free) << "two of three nodes are free";
  set(1, "insp:partial", "w");
  auto split = inspect({"insp:partial"});
  EXPECT_EQ(split.status, lock_status::indeterminate);
  EXPECT_EQ(split.free_nodes, 1u);
}

TEST_F(InspectTest, ResourceSetIsHeldOnlyWhereTheSameValueHoldsEveryKey) {
  for (std::size_t i = 0; i < 3; ++i)
    set(i, "insp:set:a", "v");
  set(0, "insp:set:b", "v");
  auto in = inspect({"insp:set:a", "insp:set:b"});
  EXPECT_EQ(in.status, lock_status::indeterminate);
  EXPECT_EQ(in.free_nodes, 0u);
  set(1, "insp:set:b", "v");
  auto held = inspect({"insp:set:a", "insp:set:b"});
  EXPECT_EQ(held.status, lock_status::held);
  EXPECT_EQ(held.holding_nodes, 2u);
}

TEST_F(InspectTest, ShortestTtlOnTheQuorumBoundsTheValidity) {
  set(0, "insp:ttl", "v", 9000ms);
  set(1, "insp:ttl", "v", 1000ms);
  set(2, "insp:ttl", "v", 8000ms);
  auto before = steady_clock::now();
  auto in = inspect({"insp:ttl"});
  ASSERT_EQ(in.status, lock_status::held);
  // quorum-th (2nd) largest is about 8000 ms, minus drift round(9000 × 0.01) + 2 = 92 ms
  EXPECT_LE(in.validity_deadline, before + 8000ms - 92ms + 500ms);
  EXPECT_GE(in.validity_deadline, before + 8000ms - 92ms - 2000ms);
}

TEST_F(InspectTest, KeyWithoutExpiryAndNonStringKeysAreReported) {
  servers_[0]->command({"SET", "insp:plain", "forever"});
  servers_[1]->command({"HSET", "insp:plain", "f", "1"});
  auto in = inspect({"insp:plain"});
  ASSERT_TRUE(in.nodes[0].answered());
  EXPECT_EQ(in.nodes[0].keys[0].value, std::optional<std::string>("forever"));
  EXPECT_EQ(in.nodes[0].keys[0].ttl, -1ms);
  ASSERT_TRUE(in.nodes[1].answered());
  EXPECT_TRUE(in.nodes[1].keys[0].present);
  EXPECT_FALSE(in.nodes[1].keys[0].value.has_value());
  EXPECT_FALSE(in.nodes[2].keys[0].present);
  EXPECT_EQ(in.status, lock_status::indeterminate);
}

TEST_F(InspectTest, DownNodeAppearsWithAnErrorAndAMinorityDownStillGivesAVerdict) {
  auto l = manager_->lock({"insp:down"}, 5000ms);
  servers_[2]->kill9();
  auto in = inspect({"insp:down"});
  EXPECT_FALSE(in.nodes[2].answered());
  EXPECT_TRUE(in.nodes[2].ec);
  EXPECT_TRUE(in.held_by(l));
  servers_[1]->kill9();
  auto two_down = inspect({"insp:down"});
  EXPECT_EQ(two_down.status, lock_status::indeterminate);
}

TEST_F(InspectTest, InspectionWritesNothing) {
  set(0, "insp:ro", "v", 5000ms);
  auto before = servers_[0]->command({"DBSIZE"}).integer;
  (void)inspect({"insp:ro", "insp:ro:missing"});
  EXPECT_EQ(servers_[0]->command({"DBSIZE"}).integer, before);
  EXPECT_EQ(servers_[1]->command({"DBSIZE"}).integer, 0);
}

TEST_F(InspectTest, FencedLockShowsEachServersCounterAndAPlainLockNone) {
  auto plain = manager_->lock({"insp:fence:plain"}, 5000ms);
  auto none = inspect({"insp:fence:plain"});
  for (const auto& n : none.nodes)
    EXPECT_EQ(n.fencing_counter, std::nullopt) << n.node;
  manager_->unlock(plain);

  auto options = fast_options();
  options.fencing = true;
  redlock::blocking_lock_manager fenced(redlock::test::urls_of(servers_), options);
  // The lock completes once a quorum confirmed; the third server's first round trip may
  // still be on its way, so it may show the previous counter (or none) for a moment.
  auto servers_showing = [](const redlock::inspection& in, std::uint64_t token) {
    std::size_t n = 0;
    for (const auto& ns : in.nodes) {
      EXPECT_TRUE(ns.answered()) << ns.ec.message();
      EXPECT_LE(ns.fencing_counter.value_or(0), token) << ns.node;
      n += ns.fencing_counter == token ? 1 : 0;
    }
    return n;
  };
  auto first = fenced.lock({"insp:fence"}, 5000ms);
  ASSERT_GT(first.fencing_token(), 0u);
  auto in = inspect({"insp:fence"});
  EXPECT_TRUE(in.held_by(first));
  EXPECT_GE(servers_showing(in, first.fencing_token()), in.quorum);
  ASSERT_EQ(in.nodes[0].keys.size(), 1u) << "the counter is not a resource key";
  fenced.unlock(first);

  // The counter outlives the lock and grows with the next fenced acquire.
  auto after = inspect({"insp:fence"});
  EXPECT_EQ(after.status, lock_status::free);
  EXPECT_GE(servers_showing(after, first.fencing_token()), after.quorum);
  auto second = fenced.lock({"insp:fence"}, 5000ms);
  EXPECT_GT(second.fencing_token(), first.fencing_token());
  EXPECT_GE(servers_showing(inspect({"insp:fence"}), second.fencing_token()), in.quorum);
  fenced.unlock(second);
}

TEST_F(InspectTest, ForSeveralResourcesEachServerShowsTheLargestCounter) {
  // The counter keys as the fenced acquire names them (see fencing_counter_key).
  for (auto& s : servers_) {
    s->command({"SET", "{insp:many:a}:redlock-fencing", "4"});
    s->command({"SET", "{insp:many:b}:redlock-fencing", "9"});
  }
  servers_[2]->command({"DEL", "{insp:many:b}:redlock-fencing"});
  auto in = inspect({"insp:many:a", "insp:many:b"});
  EXPECT_EQ(in.status, lock_status::free) << "a counter is not a lock";
  EXPECT_EQ(in.nodes[0].fencing_counter, std::optional<std::uint64_t>(9));
  EXPECT_EQ(in.nodes[1].fencing_counter, std::optional<std::uint64_t>(9));
  EXPECT_EQ(in.nodes[2].fencing_counter, std::optional<std::uint64_t>(4));
}

TEST_F(InspectTest, ACounterKeyOfAnotherTypeIsIgnored) {
  servers_[0]->command({"HSET", "{insp:odd}:redlock-fencing", "f", "1"});
  servers_[1]->command({"SET", "{insp:odd}:redlock-fencing", "not-a-number"});
  auto in = inspect({"insp:odd"});
  EXPECT_EQ(in.status, lock_status::free);
  for (const auto& n : in.nodes) {
    EXPECT_TRUE(n.answered()) << n.ec.message();
    EXPECT_EQ(n.fencing_counter, std::nullopt) << n.node;
  }
}

TEST_F(InspectTest, RejectsEmptyAndDuplicateResources) {
  std::error_code ec;
  (void)redlock::inspect(*manager_, {}, ec);
  EXPECT_EQ(ec, errc::invalid_argument);
  (void)redlock::inspect(*manager_, {"a", "a"}, ec);
  EXPECT_EQ(ec, errc::invalid_argument);
  EXPECT_THROW(redlock::inspect(*manager_, {}), redlock::lock_error);
}

TEST(InspectAsync, CompletesThroughUseFutureAndFailsAfterQuit) {
  redis_server server;
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::vector<std::string> urls{server.url()};
  redlock::lock_manager m(io.get_executor(), urls, fast_options());
  std::thread t([&] { io.run(); });
  std::vector<std::string> keys{"insp:async"};
  auto f = redlock::async_inspect(m, keys, asio::use_future);
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get().status, lock_status::free);
  auto q = m.async_quit(asio::use_future);
  ASSERT_EQ(q.wait_for(10s), std::future_status::ready);
  // The error comes through a plain callback, not use_future: an exception_ptr handed across
  // threads trips a ThreadSanitizer false positive (libstdc++'s refcount is not instrumented).
  std::promise<std::error_code> closed;
  redlock::async_inspect(
      m, keys, [&closed](std::error_code ec, redlock::inspection) { closed.set_value(ec); });
  auto after = closed.get_future();
  ASSERT_EQ(after.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(after.get(), errc::closed);
  work.reset();
  t.join();
}

}  // namespace

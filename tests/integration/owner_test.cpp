// Owner metadata, the key prefix and force release against real redis-server processes:
// the record is written with the lock, extended with it, removed on unlock, expires with it
// and is left alone when another value holds the key; keys carry the prefix; a Cluster
// deployment keeps each lock's keys in one slot; force release deletes any holder and
// announces the release.
#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <asio/use_future.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "internal/scripts.hpp"
#include "redlock/blocking.hpp"
#include "redlock/cluster_node.hpp"
#include "redlock/error.hpp"
#include "redlock/inspect.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/owner.hpp"
#include "support/blocking_client.hpp"
#include "support/options.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::reply;
using redlock::test::redis_server;

template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds limit = 5s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until)
      return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

redlock::owner_info tester() {
  redlock::owner_info o;
  o.host = "test-host";
  o.pid = 31337;
  o.program = "owner_test";
  o.label = "integration";
  return o;
}

class OwnerOnServers : public ::testing::Test {
 protected:
  void SetUp() override { servers_ = redlock::test::start_servers(3); }

  std::unique_ptr<redlock::blocking_lock_manager> manager(bool owner, std::string prefix = {}) {
    auto o = redlock::test::fast_options();
    if (owner)
      o.owner = tester();
    o.key_prefix = std::move(prefix);
    return std::make_unique<redlock::blocking_lock_manager>(redlock::test::urls_of(servers_), o);
  }
  reply cmd(std::size_t i, const std::vector<std::string>& argv) {
    return servers_[i]->command(argv);
  }

  std::vector<std::unique_ptr<redis_server>> servers_;
};

TEST_F(OwnerOnServers, TheRecordIsWrittenWithTheLockOnEveryServerAndExtendedWithIt) {
  auto m = manager(true);
  auto l = m->lock({"own:a"}, 5000ms);
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    EXPECT_EQ(cmd(i, {"GET", "own:a"}).str, l.value());
    auto rec = redlock::decode_owner(cmd(i, {"GET", "{own:a}:redlock-owner"}).str);
    ASSERT_TRUE(rec) << "server " << i;
    EXPECT_EQ(rec->value, l.value());
    EXPECT_EQ(rec->who.pid, 31337);
    EXPECT_EQ(rec->who.label, "integration");
    const auto pttl = cmd(i, {"PTTL", "{own:a}:redlock-owner"}).integer;
    EXPECT_GT(pttl, 4000);
    EXPECT_LE(pttl, 5000);
  }
  auto e = m->extend(l, 60000ms);
  for (std::size_t i = 0; i < servers_.size(); ++i)
    EXPECT_GT(cmd(i, {"PTTL", "{own:a}:redlock-owner"}).integer, 50000) << "server " << i;
  m->unlock(e);
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    EXPECT_TRUE(wait_for([&] { return cmd(i, {"DBSIZE"}).integer == 0; })) << "server " << i;
  }
}

TEST_F(OwnerOnServers, TheRecordExpiresWithTheLock) {
  auto m = manager(true);
  auto l = m->lock({"own:short"}, 300ms);
  ASSERT_TRUE(l.acquired());
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    EXPECT_LE(cmd(i, {"PTTL", "{own:short}:redlock-owner"}).integer,
              cmd(i, {"PTTL", "own:short"}).integer + 5);
    EXPECT_TRUE(wait_for([&] { return cmd(i, {"DBSIZE"}).integer == 0; }, 3s))
        << "server " << i << " kept something after the TTL";
  }
}

TEST_F(OwnerOnServers, ARecordOfAnotherValueIsLeftAlone) {
  auto m = manager(true);
  const auto foreign = redlock::encode_owner("other", 1, tester());
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    cmd(i, {"SET", "own:held", "other", "PX", "10000"});
    cmd(i, {"SET", "{own:held}:redlock-owner", foreign, "PX", "10000"});
  }
  std::error_code ec;
  redlock::call_options once;
  once.retry_count = 0;
  auto l = m->lock({"own:held"}, 5000ms, once, ec);
  EXPECT_EQ(ec, errc::resource_locked);
  // A release of another value (a stale handle of ours) deletes neither key nor record.
  auto stale = m->async().adopt({"own:held"}, "0123456789abcdef0123456789abcdef", 5000ms,
                                redlock::steady_clock::now() + 5s);
  m->unlock(stale, {}, ec);
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    EXPECT_EQ(cmd(i, {"GET", "own:held"}).str, "other");
    EXPECT_EQ(cmd(i, {"GET", "{own:held}:redlock-owner"}).str, foreign);
  }
}

TEST_F(OwnerOnServers, AWrongTypeRecordKeyChangesNoOutcome) {
  auto m = manager(true);
  cmd(0, {"HSET", "{own:t}:redlock-owner", "f", "v"});
  auto l = m->lock({"own:t"}, 5000ms);
  EXPECT_TRUE(l.acquired());
  m->unlock(l);
  EXPECT_EQ(cmd(0, {"EXISTS", "own:t"}).integer, 0);
}

TEST_F(OwnerOnServers, WithoutMetadataNothingButTheLockKeyIsWritten) {
  auto m = manager(false);
  auto l = m->lock({"own:off"}, 5000ms);
  for (std::size_t i = 0; i < servers_.size(); ++i)
    EXPECT_EQ(cmd(i, {"DBSIZE"}).integer, 1) << "server " << i;
  m->unlock(l);
}

TEST_F(OwnerOnServers, InspectionShowsTheHoldersOwner) {
  auto m = manager(true, "ns:");
  auto l = m->lock({"job"}, 5000ms);
  auto other = manager(false, "ns:");  // another process, without metadata of its own
  auto in = redlock::inspect(*other, {"job"});
  ASSERT_TRUE(in.held_by(l)) << in.to_string();
  ASSERT_TRUE(in.owner);
  EXPECT_EQ(in.owner->who.host, "test-host");
  for (const auto& n : in.nodes)
    EXPECT_TRUE(n.keys.at(0).owner) << n.node;
  EXPECT_NE(in.to_string().find("pid 31337 on test-host"), std::string::npos) << in.to_string();
  m->unlock(l);
}

TEST_F(OwnerOnServers, ThePrefixIsPartOfEveryKey) {
  auto m = manager(true, "app1:");
  auto l = m->lock({"deploy"}, 5000ms);
  EXPECT_EQ(l.resources(), std::vector<std::string>{"deploy"});
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    EXPECT_EQ(cmd(i, {"GET", "app1:deploy"}).str, l.value());
    EXPECT_EQ(cmd(i, {"EXISTS", "deploy"}).integer, 0);
    EXPECT_EQ(cmd(i, {"EXISTS", "{app1:deploy}:redlock-owner"}).integer, 1);
  }
  // The same resource in another namespace is another lock.
  auto other = manager(true, "app2:");
  auto l2 = other->lock({"deploy"}, 5000ms);
  EXPECT_TRUE(l2.acquired());
  other->unlock(l2);
  m->unlock(l);
  for (std::size_t i = 0; i < servers_.size(); ++i)
    EXPECT_TRUE(wait_for([&] { return cmd(i, {"DBSIZE"}).integer == 0; }));
}

TEST_F(OwnerOnServers, ForceReleaseDeletesAnyHolderReportsItsOwnerAndWakesWaiters) {
  auto holder = manager(true);
  auto l = holder->lock({"own:stuck"}, 30000ms);
  // A waiter that would otherwise retry only after 20 s (or the holder's 30 s TTL).
  auto o = redlock::test::fast_options();
  o.retry_delay = 20s;
  o.retry_jitter = 0ms;
  o.retry_count = 1;
  redlock::blocking_lock_manager waiter(redlock::test::urls_of(servers_), o);
  auto waited = std::async(std::launch::async, [&] {
    const auto start = std::chrono::steady_clock::now();
    std::error_code ec;
    auto w = waiter.lock({"own:stuck"}, 5000ms, {}, ec);
    return std::make_pair(w, std::chrono::steady_clock::now() - start);
  });
  // The waiter has subscribed once its first attempt was denied.
  ASSERT_TRUE(wait_for([&] {
    auto r = cmd(0, {"PUBSUB", "SHARDNUMSUB", redlock::detail::release_channel("own:stuck")});
    return r.elements.size() == 2 && r.elements[1].integer > 0;
  }));
  auto op = manager(false);
  auto r = redlock::force_release(*op, {"own:stuck"});
  ASSERT_EQ(r.nodes.size(), 3u);
  EXPECT_EQ(r.removed_nodes(), 3u);
  for (const auto& n : r.nodes) {
    ASSERT_TRUE(n.answered()) << n.node << ": " << n.ec.message();
    EXPECT_EQ(n.values.at(0), l.value());
    ASSERT_TRUE(n.owners.at(0));
    EXPECT_EQ(n.owners[0]->who.pid, 31337);
  }
  ASSERT_EQ(waited.wait_for(10s), std::future_status::ready);
  auto [w, took] = waited.get();
  EXPECT_TRUE(w.acquired());
  EXPECT_LT(took, 10s) << "woken by the announced release, not by the retry delay";
  waiter.unlock(w);
  // The old holder's unlock finds nothing of its own.
  EXPECT_EQ(holder->unlock(l).released, 0u);
}

TEST_F(OwnerOnServers, ForceReleaseLeavesKeysOfOtherTypes) {
  cmd(1, {"HSET", "own:hash", "f", "v"});
  auto op = manager(false);
  auto r = redlock::force_release(*op, {"own:hash"});
  EXPECT_EQ(r.removed_nodes(), 0u);
  EXPECT_EQ(cmd(1, {"EXISTS", "own:hash"}).integer, 1);
}

TEST(OwnerOnCluster, EachLocksKeysStayInOneSlot) {
  auto cluster = redlock::test::start_cluster(3);
  asio::io_context io;
  auto o = redlock::test::fast_options();
  o.owner = tester();
  o.key_prefix = "pfx:";
  o.retry_count = 3;
  o.retry_delay = 50ms;
  std::thread t;
  {
    auto work = asio::make_work_guard(io);
    t = std::thread([&] { io.run(); });
    redlock::lock_manager m(io.get_executor(),
                            {"redis+cluster://127.0.0.1:" + std::to_string(cluster[1]->port())}, o);
    const std::vector<std::vector<std::string>> cases = {
        {"plain"}, {"{tag}:one"}, {"{tag}:a", "{tag}:b"}};
    for (const auto& resources : cases) {
      auto l = m.async_lock(resources, 10s, asio::use_future).get();
      ASSERT_TRUE(l.acquired()) << resources[0];
      const auto key = "pfx:" + resources[0];
      const auto record = redlock::detail::owner_key(key);
      EXPECT_EQ(redlock::cluster_key_slot(record), redlock::cluster_key_slot(key));
      int found = 0;
      for (auto& c : cluster) {
        auto r = c->command({"GET", record});
        if (!r.is_error() && r.kind == reply::type::string) {
          ++found;
          EXPECT_EQ(c->command({"GET", key}).str, l.value());  // on the same master
        }
      }
      EXPECT_EQ(found, 1) << record;
      auto e = m.async_extend(l, 10s, asio::use_future).get();
      ASSERT_TRUE(e.acquired());
      auto u = m.async_unlock(e, asio::use_future).get();
      EXPECT_EQ(u.released, 1u);
      for (auto& c : cluster) {
        auto r = c->command({"EXISTS", record});
        EXPECT_TRUE(r.is_error() || r.integer == 0) << record;
      }
    }
    m.async_quit(asio::use_future).get();
    work.reset();
  }
  t.join();
}

}  // namespace

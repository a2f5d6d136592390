// Wake-up end to end on real redis-servers: a waiter whose retry delay is 30 s acquires
// within 2 s of a release (woken, not polled), subscriptions end with the waiters, and the
// subscriber's connection killed, a server restarted or a Sentinel failover do not strand a
// waiter.
#include <gtest/gtest.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "internal/scripts.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/sentinel_node.hpp"
#include "support/options.hpp"
#include "support/redis_server.hpp"
#include "support/waiting.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using redlock::test::redis_server;
using redlock::test::redis_server_options;
using redlock::test::wait_for;

class Wake : public ::testing::Test {
 protected:
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread{[this] { io.run(); }};

  void TearDown() override {
    work.reset();
    thread.join();
  }

  static std::string key() {
    return std::string("wake:") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  static redlock::manager_options settings() {
    auto s = redlock::test::fast_options();
    s.connect_timeout = 500ms;
    return s;
  }

  // PUBSUB SHARDNUMSUB of the resource's release channel on one server.
  static long long subscribers(const redis_server& s, const std::string& resource) {
    auto r = s.command({"PUBSUB", "SHARDNUMSUB", redlock::detail::release_channel(resource)});
    return r.elements.size() == 2 ? r.elements[1].integer : -1;
  }

  // The test's waiter is waiting: subscribed on `servers` and denied at least twice (its
  // first attempt and the one after the confirmed subscriptions), with nothing granted.
  static bool waiting(const std::vector<std::unique_ptr<redis_server>>& servers,
                      const std::string& k, std::future<redlock::test::lock_outcome>& f) {
    for (const auto& s : servers) {
      if (subscribers(*s, k) != 1)
        return false;
    }
    return f.wait_for(0s) != std::future_status::ready;
  }
};

TEST_F(Wake, AWaiterWithA30sRetryDelayAcquiresWithin2sOfTheRelease) {
  auto servers = redlock::test::start_servers(3);
  const auto k = key();
  redlock::lock_manager holder(io.get_executor(), redlock::test::urls_of(servers), settings());
  redlock::lock_manager waiter(io.get_executor(), redlock::test::urls_of(servers), settings());
  auto h = redlock::test::start_lock(holder, k);
  auto held = redlock::test::await_lock(h);
  ASSERT_FALSE(held.ec) << held.ec.message();
  auto w = redlock::test::start_lock(waiter, k, redlock::test::patient());
  ASSERT_TRUE(wait_for([&] { return waiting(servers, k, w); }, 10s));
  const auto released = clock_type::now();
  redlock::test::unlock_and_wait(holder, held.l);
  auto got = redlock::test::await_lock(w, 10s);
  ASSERT_FALSE(got.ec) << got.ec.message();
  EXPECT_LT(got.at - released, 2s);
  EXPECT_GE(got.l.attempts(), 2);
  // Every waiter is done: no subscription is left on any server.
  EXPECT_TRUE(wait_for(
      [&] {
        for (const auto& s : servers) {
          if (subscribers(*s, k) != 0)
            return false;
        }
        return true;
      },
      5s));
  redlock::test::unlock_and_wait(waiter, got.l);
  redlock::test::quit_and_wait(holder);
  redlock::test::quit_and_wait(waiter);
}

TEST_F(Wake, ASubscriberConnectionKilledMidWaitIsReplacedAndStillWakes) {
  auto servers = redlock::test::start_servers(1);
  const auto k = key();
  redlock::lock_manager holder(io.get_executor(), redlock::test::urls_of(servers), settings());
  redlock::lock_manager waiter(io.get_executor(), redlock::test::urls_of(servers), settings());
  auto h = redlock::test::start_lock(holder, k);
  auto held = redlock::test::await_lock(h);
  ASSERT_FALSE(held.ec) << held.ec.message();
  auto w = redlock::test::start_lock(waiter, k, redlock::test::patient());
  ASSERT_TRUE(wait_for([&] { return waiting(servers, k, w); }, 10s));
  auto killed = servers[0]->command({"CLIENT", "KILL", "TYPE", "pubsub"});
  ASSERT_EQ(killed.integer, 1);
  EXPECT_EQ(subscribers(*servers[0], k), 0);
  // Reconnected and resubscribed by itself.
  ASSERT_TRUE(wait_for([&] { return subscribers(*servers[0], k) == 1; }, 10s));
  const auto released = clock_type::now();
  redlock::test::unlock_and_wait(holder, held.l);
  auto got = redlock::test::await_lock(w, 10s);
  ASSERT_FALSE(got.ec) << got.ec.message();
  EXPECT_LT(got.at - released, 2s);
  redlock::test::quit_and_wait(holder);
  redlock::test::quit_and_wait(waiter);
}

TEST_F(Wake, AServerRestartedMidWaitIsResubscribedAndTheWaiterAcquires) {
  auto servers = redlock::test::start_servers(1);
  const auto k = key();
  // A holder that never releases (another client's key); the restart loses it (no
  // persistence), and only the resubscription's wake can tell the waiter before 30 s.
  servers[0]->command({"SET", k, "someone-else", "PX", "60000"});
  redlock::lock_manager waiter(io.get_executor(), redlock::test::urls_of(servers), settings());
  auto w = redlock::test::start_lock(waiter, k, redlock::test::patient());
  ASSERT_TRUE(wait_for([&] { return waiting(servers, k, w); }, 10s));
  const auto restarted = clock_type::now();
  servers[0]->restart();
  auto got = redlock::test::await_lock(w, 15s);
  ASSERT_FALSE(got.ec) << got.ec.message();
  EXPECT_LT(got.at - restarted, 10s);
  redlock::test::quit_and_wait(waiter);
}

TEST_F(Wake, AWaiterOnASentinelNodeIsWokenAfterAFailover) {
  redis_server master;
  redis_server_options ro;
  ro.extra_config = {"replicaof 127.0.0.1 " + std::to_string(master.port())};
  redis_server replica(ro);
  auto so = redlock::test::sentinel_options(master);
  so.extra_config.push_back("sentinel failover-timeout mymaster 5000");
  redis_server sentinel(so);
  ASSERT_TRUE(wait_for(
      [&] {
        return replica.command({"INFO", "replication"}).str.find("master_link_status:up") !=
               std::string::npos;
      },
      15s));
  ASSERT_TRUE(wait_for(
      [&] {
        return !sentinel.command({"SENTINEL", "replicas", "mymaster"}).elements.empty();
      },
      15s));
  const std::string url =
      "redis+sentinel://127.0.0.1:" + std::to_string(sentinel.port()) + "/mymaster";
  const auto k = key();
  redlock::lock_manager holder(io.get_executor(), std::vector<std::string>{url}, settings());
  redlock::lock_manager waiter(io.get_executor(), std::vector<std::string>{url}, settings());
  auto h = redlock::test::start_lock(holder, k);
  auto held = redlock::test::await_lock(h);
  ASSERT_FALSE(held.ec) << held.ec.message();
  auto w = redlock::test::start_lock(waiter, k, redlock::test::patient());
  ASSERT_TRUE(wait_for([&] { return subscribers(master, k) == 1; }, 10s));
  ASSERT_TRUE(wait_for(
      [&] {
        return replica.command({"GET", k}).str == held.l.value();  // replicated before failover
      },
      10s));
  auto r = sentinel.command({"SENTINEL", "FAILOVER", "mymaster"});
  ASSERT_FALSE(r.is_error()) << r.str;
  // The waiter's subscription follows the master to the promoted replica. The sentinel
  // kills the promoted server's normal clients (CLIENT KILL TYPE normal) while it
  // reconfigures it, our probe's connection among them: a reset probe is "not yet".
  ASSERT_TRUE(wait_for(
      [&] { return redlock::test::unless_killed([&] { return subscribers(replica, k) == 1; }); },
      30s));
  ASSERT_EQ(w.wait_for(0s), std::future_status::timeout);
  // Until the sentinel has turned the old master into a replica, both accept writes: an
  // unlock sent to the old one lands there (and its announcement with it), while the key
  // lives on in the new master until its TTL. Wait until that window is closed.
  ASSERT_TRUE(wait_for(
      [&] {
        try {
          return master.command({"INFO", "replication"}).str.find("role:slave") !=
                 std::string::npos;
        } catch (const std::exception&) {
          return false;  // the server may reset connections while it is reconfigured
        }
      },
      30s));
  const auto released = clock_type::now();
  redlock::test::unlock_and_wait(holder, held.l);
  auto got = redlock::test::await_lock(w, 30s);
  ASSERT_FALSE(got.ec) << got.ec.message();
  // The holder's unlock may itself have to find the new master first; the waiter is woken
  // by the announcement on it, not by its 30 s poll.
  EXPECT_LT(got.at - released, 10s);
  redlock::test::quit_and_wait(holder);
  redlock::test::quit_and_wait(waiter);
}

}  // namespace

// One lock manager whose three nodes are three kinds of deployment: a plain server, a
// Sentinel-monitored master and a Redis Cluster, all built from URLs.

#include <gtest/gtest.h>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include "redlock/lock_manager.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::test::redis_server;
using redlock::test::wait_for;

TEST(MixedDeployments, LockExtendAndUnlockAcrossPlainSentinelAndClusterNodes) {
  redis_server plain;

  redis_server sentinel_master;
  redis_server sentinel(redlock::test::sentinel_options(sentinel_master));

  auto cluster = redlock::test::start_cluster(3);

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread t([&] { io.run(); });
  {
    redlock::manager_options s;
    s.retry_count = 3;
    s.retry_delay = 50ms;
    redlock::lock_manager m(
        io.get_executor(),
        {plain.url(), "redis+sentinel://127.0.0.1:" + std::to_string(sentinel.port()) + "/mymaster",
         "redis+cluster://127.0.0.1:" + std::to_string(cluster[1]->port())},
        s);
    ASSERT_EQ(m.quorum(), 2u);

    auto l = m.async_lock("mixed:resource", 10000ms, asio::use_future).get();
    ASSERT_TRUE(l.acquired());
    // The manager completes as soon as a quorum granted; the third write is still on its way.
    EXPECT_GE(l.report().count(redlock::vote::granted), 2u) << l.report().to_string();
    auto cluster_holders = [&](const std::string& value) {
      int n = 0;
      for (auto& c : cluster) {
        auto r = c->command({"GET", "mixed:resource"});
        if (!r.is_error() && r.str == value)
          ++n;
      }
      return n;
    };
    EXPECT_TRUE(wait_for([&] {
      return plain.command({"GET", "mixed:resource"}).str == l.value() &&
             sentinel_master.command({"GET", "mixed:resource"}).str == l.value() &&
             cluster_holders(l.value()) == 1;
    }));

    auto l2 = m.async_extend(l, 20000ms, asio::use_future).get();
    EXPECT_TRUE(l2.acquired());
    EXPECT_GT(plain.command({"PTTL", "mixed:resource"}).integer, 10000);

    auto u = m.async_unlock(l2, asio::use_future).get();
    EXPECT_GE(u.released, 2u);
    EXPECT_TRUE(wait_for([&] {
      return plain.command({"EXISTS", "mixed:resource"}).integer == 0 &&
             sentinel_master.command({"EXISTS", "mixed:resource"}).integer == 0 &&
             cluster_holders(l.value()) == 0;
    }));
    m.async_quit(asio::use_future).get();
  }
  work.reset();
  t.join();
}

}  // namespace

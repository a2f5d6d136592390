// Server and network faults under the lock manager: crashes, pauses, partitions, lost replies,
// latency and resets (test-catalogue.md, "Servers and network", rows marked F).
#include <atomic>
#include <thread>

#include "fault_common.hpp"
#include "support/tcp_proxy.hpp"

namespace redlock::test {
namespace {

// Generous bound for "prompt": a few per-node timeouts (300 ms each), far below a hang.
constexpr auto prompt = 2500ms;

void expect_granted(const lock_client::outcome& o, const char* what) {
  EXPECT_FALSE(o.ec) << what << ": " << o.ec.message() << "\n" << o.held.report().to_string();
  EXPECT_TRUE(o.held.acquired()) << what;
}

// --- kill -9 ------------------------------------------------------------------------------

TEST(Crash, KilledMinorityStillLetsLockExtendAndUnlockSucceed) {
  cluster c(5);
  lock_client client(c.ports());
  warm_up(client, c, "crash-minority");
  crash(c[1]);
  crash(c[3]);
  auto o = client.acquire("crash-minority", 5000ms);
  expect_granted(o, "lock");
  EXPECT_EQ(votes(o, vote::granted), 3u);
  EXPECT_EQ(c.holding("crash-minority", o.held.value()), 3u);
  auto e = client.extend(o.held, 8000ms);
  expect_granted(e, "extend");
  EXPECT_GT(c[0].command({"PTTL", "crash-minority"}).integer, 5000);
  auto u = client.unlock(e.held);
  EXPECT_FALSE(u.ec) << u.ec.message();
  EXPECT_EQ(u.result.released, 3u);
  EXPECT_EQ(c.holding("crash-minority"), 0u);
}

TEST(Crash, KilledMajorityFailsPromptlyWithReasonsAndLeavesNothingOnTheSurvivor) {
  cluster c(3);
  lock_client client(c.ports());
  warm_up(client, c, "crash-majority");
  crash(c[0]);
  crash(c[2]);
  auto o = client.acquire("crash-majority", 10000ms);
  EXPECT_EQ(o.ec, make_error_code(errc::quorum_unreachable)) << o.ec.message();
  EXPECT_FALSE(o.held.acquired());
  EXPECT_LT(o.took, prompt);
  const auto& nodes = o.held.report().nodes;
  ASSERT_EQ(nodes.size(), 3u);
  for (std::size_t i : {0u, 2u}) {
    EXPECT_TRUE(nodes[i].outcome == vote::error || nodes[i].outcome == vote::timeout)
        << nodes[i].node << ": " << to_string(nodes[i].outcome);
    EXPECT_TRUE(nodes[i].ec) << "a failure vote carries its reason";
  }
  // The survivor granted, then the failed attempt released it there.
  EXPECT_TRUE(wait_for([&] { return c.holding("crash-majority") == 0; }, 2000ms));
}

// --- pauses -------------------------------------------------------------------------------

TEST(Pause, StoppedNodeDoesNotDelayTheDecisionAndItsLateReplyIsHarmless) {
  cluster c(3);
  auto s = fault_settings();
  s.request_timeout = 2000ms;
  lock_client client(c.ports(), s);
  warm_up(client, c, "pause-minority");
  pause(c[2]);
  auto o = client.acquire("pause-minority", 10000ms);
  c[2].resume();
  expect_granted(o, "lock with one node stopped");
  EXPECT_LT(o.took, 1000ms) << "the stopped node must not be waited for";
  EXPECT_EQ(o.held.report().nodes[2].outcome, vote::pending);
  // The stopped node now executes the queued acquire and its late reply arrives; the unlock
  // that follows on the same connection must still leave nothing behind.
  expect_unlocked_everywhere(client, c, o.held, "pause-minority");
}

TEST(Pause, StoppedMajorityFailsWithinThePerNodeTimeoutAndTheLockIsFreeAfterTtl) {
  cluster c(3);
  lock_client client(c.ports());
  warm_up(client, c, "pause-majority");
  pause(c[0]);
  pause(c[1]);
  auto o = client.acquire("pause-majority", 1500ms);
  EXPECT_EQ(o.ec, make_error_code(errc::quorum_unreachable)) << o.ec.message();
  EXPECT_LT(o.took, prompt) << "bounded by the per-node timeout";
  // Each stopped node votes timeout, or connection_lost when an earlier request on its
  // connection timed out first and reset it (both are "failed within the per-node timeout").
  std::size_t stopped_failed = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& nr = o.held.report().nodes[i];
    if (nr.outcome == vote::timeout || nr.ec == errc::connection_lost)
      ++stopped_failed;
  }
  EXPECT_EQ(stopped_failed, 2u) << o.held.report().to_string();
  c[0].resume();
  c[1].resume();
  // Requests queued while stopped may still execute after the resume; whatever they left
  // expires with the TTL, so another client gets the lock within TTL + a margin.
  lock_client other(c.ports());
  const auto t0 = std::chrono::steady_clock::now();
  call_options retry;
  retry.retry_count = 40;
  retry.retry_delay = 100ms;
  auto o2 = other.acquire("pause-majority", 5000ms, retry);
  expect_granted(o2, "lock after resume");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms + prompt);
}

TEST(Pause, ClientPauseOnOneNodeDoesNotBlockTheLock) {
  cluster c(3);
  auto s = fault_settings();
  s.request_timeout = 2000ms;
  lock_client client(c.ports(), s);
  warm_up(client, c, "client-pause");
  c[0].command({"CLIENT", "PAUSE", "1500", "WRITE"});
  count_fault("client-pause");
  auto o = client.acquire("client-pause", 10000ms);
  expect_granted(o, "lock with one node in CLIENT PAUSE");
  EXPECT_LT(o.took, 1000ms);
  c[0].command({"CLIENT", "UNPAUSE"});
  expect_unlocked_everywhere(client, c, o.held, "client-pause");
}

TEST(Pause, SlowLuaScriptOnOneNodeCountsAsBusyErrorVoteAndDoesNotBlockTheLock) {
  cluster c(3);
  lock_client client(c.ports());
  warm_up(client, c, "slow-lua");
  c[0].command({"CONFIG", "SET", "busy-reply-threshold", "100"});
  // A script that spins for 1.5 s of server time.
  std::thread spinner([port = c[0].port()] {
    raw_client slow(port, 5000ms);
    slow.command({"EVAL",
                  "local t=redis.call('TIME') local s=t[1]*1000000+t[2] "
                  "while true do local n=redis.call('TIME') "
                  "if (n[1]*1000000+n[2])-s > 1500000 then break end end return 1",
                  "0"});
  });
  count_fault("slow-lua");
  ASSERT_TRUE(wait_for(
      [&] {
        raw_client probe(c[0].port(), 300ms);
        auto r = probe.command({"PING"});
        return r && r->rfind("(error) BUSY", 0) == 0;
      },
      3000ms));
  auto o = client.acquire("slow-lua", 10000ms);
  spinner.join();
  expect_granted(o, "lock with one node running a slow script");
  const auto& n0 = o.held.report().nodes[0];
  EXPECT_TRUE(n0.outcome == vote::error || n0.outcome == vote::pending) << to_string(n0.outcome);
  if (n0.outcome == vote::error) {
    EXPECT_NE(n0.message.find("BUSY"), std::string::npos);
  }
  EXPECT_FALSE(client.unlock(o.held).ec);
}

// --- partitions ---------------------------------------------------------------------------

TEST(Partition, MinorityCutOffStillSucceedsAndRejoinsAfterHeal) {
  cluster c(3);
  lock_client client(c.ports());
  warm_up(client, c, "part-minority");
  {
    auto cut = partition(c[2].port(), partition_mode::drop);
    auto o = client.acquire("part-minority", 5000ms);
    expect_granted(o, "lock with a minority partitioned");
    EXPECT_LT(o.took, 1000ms);
    EXPECT_FALSE(client.unlock(o.held).ec);
  }
  // After the heal the node stores our value again (the decision need not wait for it, so
  // look at the server). Bounded: it may be in its reconnect backoff.
  call_options retry;
  retry.retry_count = 10;
  retry.retry_delay = 100ms;
  auto o = client.acquire("part-minority", 5000ms, retry);
  expect_granted(o, "lock after heal");
  EXPECT_TRUE(wait_for(
      [&] {
        return c[2].command({"GET", "part-minority"}) ==
               reply{reply::type::string, 0, o.held.value(), {}};
      },
      3000ms))
      << "the healed node never took part again";
  client.unlock(o.held);
}

TEST(Partition, MajorityCutOffFailsPromptlyAndLockIsAcquirableWithinTtlAfterHeal) {
  for (auto mode : {partition_mode::drop, partition_mode::reject}) {
    SCOPED_TRACE(mode == partition_mode::drop ? "DROP" : "REJECT");
    cluster c(3);
    lock_client client(c.ports());
    warm_up(client, c, "part-majority");
    const auto ttl = 2000ms;
    {
      auto cut1 = partition(c[0].port(), mode);
      auto cut2 = partition(c[1].port(), mode);
      auto o = client.acquire("part-majority", ttl);
      EXPECT_EQ(o.ec, make_error_code(errc::quorum_unreachable)) << o.ec.message();
      EXPECT_LT(o.took, prompt);
    }
    const auto healed = std::chrono::steady_clock::now();
    call_options retry;
    retry.retry_count = 50;
    retry.retry_delay = 100ms;
    auto o = client.acquire("part-majority", ttl, retry);
    expect_granted(o, "lock after heal");
    EXPECT_LT(std::chrono::steady_clock::now() - healed, ttl + 1000ms);
    client.unlock(o.held);
  }
}

// --- lost replies -------------------------------------------------------------------------

TEST(LostReplies, NodeWhoseReplyIsLostIsReleasedAndKeepsNoKeyWithOurValue) {
  cluster c(3);
  lock_client client(c.ports());
  warm_up(client, c, "lost-minority");
  std::string value;
  {
    auto lost = lose_replies(c[2].port());
    auto o = client.acquire("lost-minority", 20000ms);
    expect_granted(o, "lock with one node's reply lost");
    value = o.held.value();
    // Release while node 2's replies are still lost: the release must still be sent there.
    client.unlock(o.held);
  }
  // Long before the 20 s TTL: the release, not expiry, removed it.
  EXPECT_TRUE(wait_for([&] { return c.holding("lost-minority", value) == 0; }, 3000ms))
      << "a key with our value was left behind";
}

TEST(LostReplies, MajorityRepliesLostFailsAndReleaseRemovesWhatExecuted) {
  cluster c(3);
  lock_client client(c.ports());
  warm_up(client, c, "lost-majority");
  lock_client::outcome o;
  {
    auto lost1 = lose_replies(c[0].port());
    auto lost2 = lose_replies(c[1].port());
    o = client.acquire("lost-majority", 20000ms);
    EXPECT_TRUE(o.ec) << "no quorum of answers, so no lock";
    EXPECT_FALSE(o.held.acquired());
    EXPECT_LT(o.took, prompt);
  }
  const std::string value = o.held.value();
  // The failed attempt must have sent its release to the silent nodes too.
  EXPECT_TRUE(wait_for([&] { return c.holding("lost-majority") == 0; }, 3000ms))
      << "keys left: " << c.holding("lost-majority") << " (value " << value << ")";
}

// --- latency and resets (TCP proxy) --------------------------------------------------------

TEST(Latency, SlowNodeDoesNotSetTheLatency) {
  cluster c(3);
  tcp_proxy slow(c[2].port(), {.delay = 1500ms});
  auto s = fault_settings();
  s.request_timeout = 5000ms;
  lock_client client({c[0].port(), c[1].port(), slow.port()}, s);
  warm_up(client, c, "latency");
  count_fault("latency");
  auto o = client.acquire("latency", 10000ms);
  expect_granted(o, "lock with one slow node");
  EXPECT_LT(o.took, 750ms) << "decided on the fast quorum";
  EXPECT_FALSE(client.unlock(o.held).ec);
}

TEST(Latency, AttemptSlowerThanTheTtlFailsAndHandsOutNoExpiredLock) {
  cluster c(3);
  std::vector<std::unique_ptr<tcp_proxy>> proxies;
  std::vector<std::uint16_t> ports;
  for (auto p : c.ports()) {
    proxies.push_back(std::make_unique<tcp_proxy>(p));
    ports.push_back(proxies.back()->port());
  }
  auto s = fault_settings();
  s.request_timeout = 2000ms;
  s.drift_factor = 0.2;  // drift margin 82 ms on a 400 ms TTL
  lock_client client(ports, s);
  warm_up(client, c, "too-slow");
  // Every answer takes >= 350 ms: a quorum answers within the TTL, but too late to leave any
  // validity. (Under heavy load an answer may miss the per-node timeout, min(request
  // timeout, TTL) = 400 ms, instead: also a failure that hands out nothing.)
  for (auto& p : proxies) {
    p->set_delay(350ms, 0ms);
  }
  count_fault("latency");
  call_options two;
  two.retry_count = 1;
  auto o = client.acquire("too-slow", 400ms, two);
  EXPECT_TRUE(o.ec == make_error_code(errc::validity_exhausted) ||
              o.ec == make_error_code(errc::quorum_unreachable))
      << o.ec.message();
  std::printf("attempt slower than the TTL: %s\n", o.ec.message().c_str());
  EXPECT_FALSE(o.held.acquired());
  EXPECT_LE(o.held.remaining().count(), 0) << "nothing handed out";
  for (auto& p : proxies)
    p->set_delay(0ms, 0ms);
  EXPECT_TRUE(wait_for([&] { return c.holding("too-slow") == 0; }, 3000ms));
}

TEST(Reset, ConnectionResetMidFlightFailsFastAndTheNextOperationReconnects) {
  redis_server server;
  tcp_proxy p(server.port());
  auto s = fault_settings();
  s.request_timeout = 5000ms;
  lock_client client({p.port()}, s);
  {
    // Warm-up; with one node the unlock has waited for its only release.
    auto w = client.acquire("reset", 5000ms);
    ASSERT_FALSE(w.ec) << w.held.report().to_string();
    ASSERT_FALSE(client.unlock(w.held).ec);
  }
  p.set_delay(3000ms, 0ms);
  std::atomic<bool> started{false};
  std::thread resetter([&] {
    wait_for([&] { return started.load(); }, 5000ms);
    std::this_thread::sleep_for(100ms);  // let the request be written and in flight
    p.reset_all();
    count_fault("reset");
  });
  started = true;
  auto o = client.acquire("reset", 10000ms);
  resetter.join();
  EXPECT_TRUE(o.ec);
  EXPECT_LT(o.took, 2000ms) << "the reset must fail the request, not its 5 s timeout";
  EXPECT_EQ(o.held.report().nodes.at(0).outcome, vote::error);
  p.set_delay(0ms, 0ms);
  // The in-flight acquire may still execute on the server; its key carries the failed
  // attempt's value, which was released. The next operation reconnects and succeeds.
  auto o2 = client.acquire("reset-next", 5000ms);
  expect_granted(o2, "operation after the reset");
}

TEST(Reset, ClientKillOnOneNodeIsSurvivedAndTheNodeVotesAgain) {
  cluster c(3);
  lock_client client(c.ports());
  warm_up(client, c, "client-kill");
  c[0].command({"CLIENT", "KILL", "TYPE", "normal"});
  count_fault("client-kill");
  auto o = client.acquire("client-kill", 5000ms);
  expect_granted(o, "lock right after CLIENT KILL");
  client.unlock(o.held);
  auto o2 = client.acquire("client-kill", 5000ms);
  expect_granted(o2, "next lock");
  EXPECT_TRUE(wait_for(
      [&] {
        return c[0].command({"GET", "client-kill"}) ==
               reply{reply::type::string, 0, o2.held.value(), {}};
      },
      3000ms))
      << "the killed connection was not re-established";
  client.unlock(o2.held);
}

}  // namespace
}  // namespace redlock::test

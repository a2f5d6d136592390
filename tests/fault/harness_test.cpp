// The fault harness tested on its own, against plain redis-servers and a raw client: each
// fault must do what the lock-level tests rely on it doing.
#include <dirent.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>

#include "fault_common.hpp"
#include "support/fault_checker.hpp"
#include "support/fault_clock.hpp"
#include "support/fault_fencing.hpp"
#include "support/tcp_proxy.hpp"

namespace redlock::test {
namespace {

std::set<std::string> network_interfaces() {
  std::set<std::string> names;
  if (DIR* d = opendir("/sys/class/net")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.')
        names.insert(e->d_name);
    closedir(d);
  }
  return names;
}

TEST(Harness, RunsInsideAPrivateNamespaceWithOnlyLoopback) {
  EXPECT_TRUE(in_private_netns());
  EXPECT_EQ(network_interfaces(), std::set<std::string>{"lo"});
}

TEST(Harness, DropPartitionMakesConnectsAndRequestsTimeOutUntilHealed) {
  redis_server s;
  raw_client before(s.port(), 300ms);
  ASSERT_TRUE(before.connected()) << before.error();
  {
    auto cut = partition(s.port(), partition_mode::drop);
    EXPECT_FALSE(before.command({"PING"}).has_value()) << "an open connection must stall";
    raw_client during(s.port(), 300ms);
    EXPECT_FALSE(during.connected()) << "a new connection must not get through";
  }
  raw_client after(s.port(), 1000ms);
  ASSERT_TRUE(after.connected()) << after.error();
  EXPECT_EQ(after.command({"PING"}), "PONG");
}

TEST(Harness, RejectPartitionRefusesConnectionsAtOnce) {
  redis_server s;
  auto cut = partition(s.port(), partition_mode::reject);
  const auto t0 = std::chrono::steady_clock::now();
  raw_client c(s.port(), 2000ms);
  EXPECT_FALSE(c.connected());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms) << "a reset is not a timeout";
  cut.heal();
  raw_client after(s.port(), 1000ms);
  EXPECT_EQ(after.command({"PING"}), "PONG");
}

TEST(Harness, LostRepliesRuleExecutesTheCommandButLosesTheReply) {
  redis_server s;
  raw_client c(s.port(), 300ms);
  ASSERT_TRUE(c.connected());
  {
    auto lost = lose_replies(s.port());
    EXPECT_FALSE(c.command({"SET", "k", "v"}).has_value()) << "the reply must not arrive";
  }
  EXPECT_EQ(str(s.command({"GET", "k"})), "v") << "the command must have executed";
}

TEST(Harness, ClockShimRunsTheServerClockTwiceAsFast) {
  server_clock clk(REDLOCK_CLOCK_SHIM);
  redis_server_options o;
  o.env = clk.env();
  redis_server s(o);
  clk.set_rate(2.0);
  s.command({"SET", "k", "v", "PX", "20000"});
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(500ms);  // the quantity under test is elapsed time itself
  const auto real_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  const long long used = 20000 - pttl(s, "k");
  // Generous bounds: 2x within scheduling noise.
  EXPECT_GT(used, real_ms * 17 / 10) << "server time used " << used << " ms in " << real_ms;
  EXPECT_LT(used, real_ms * 23 / 10 + 50) << "server time used " << used << " ms in " << real_ms;
}

TEST(Harness, ClockShimJumpForwardExpiresKeys) {
  server_clock clk(REDLOCK_CLOCK_SHIM);
  redis_server_options o;
  o.env = clk.env();
  redis_server s(o);
  s.command({"SET", "k", "v", "PX", "30000"});
  clk.jump(60s);
  EXPECT_TRUE(wait_for([&] { return s.command({"EXISTS", "k"}).integer == 0; }, 2000ms));
}

TEST(Harness, KillWithoutPersistenceLosesKeysAndAppendfsyncAlwaysKeepsThem) {
  redis_server plain;
  redis_server_options o;
  o.appendonly = true;
  o.appendfsync = "always";
  redis_server durable(o);
  for (auto* s : {&plain, &durable}) {
    s->command({"SET", "k", "v", "PX", "60000"});
    crash_and_restart(*s);
  }
  EXPECT_EQ(plain.command({"EXISTS", "k"}).integer, 0);
  EXPECT_EQ(durable.command({"EXISTS", "k"}).integer, 1);
  EXPECT_GT(pttl(durable, "k"), 0) << "the TTL survives the restart";
}

TEST(Harness, PausedServerAnswersOnlyAfterResume) {
  redis_server s;
  raw_client c(s.port(), 300ms);
  ASSERT_TRUE(c.connected());
  pause(s);
  EXPECT_FALSE(c.command({"PING"}).has_value());
  s.resume();
  raw_client c2(s.port(), 1000ms);
  EXPECT_EQ(c2.command({"PING"}), "PONG");
}

TEST(Harness, ProxyForwardsAddsLatencyAndCanDropReplies) {
  redis_server s;
  tcp_proxy p(s.port(), {.delay = 150ms});
  raw_client c(p.port(), 2000ms);
  ASSERT_TRUE(c.connected()) << c.error();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(c.command({"PING"}), "PONG");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
  p.set_delay(0ms, 0ms);
  p.set_drop_replies(true);
  raw_client c2(p.port(), 300ms);
  EXPECT_FALSE(c2.command({"SET", "k", "v"}).has_value());
  EXPECT_EQ(str(s.command({"GET", "k"})), "v");
  p.set_drop_replies(false);
  p.set_blackhole(true);
  raw_client c3(p.port(), 300ms);
  EXPECT_FALSE(c3.command({"SET", "k2", "v"}).has_value());
  EXPECT_EQ(s.command({"EXISTS", "k2"}).integer, 0) << "a blackhole forwards nothing";
  EXPECT_GE(p.accepted(), 3u);
}

TEST(Harness, ProxyResetFailsOpenConnections) {
  redis_server s;
  tcp_proxy p(s.port());
  raw_client c(p.port(), 1000ms);
  ASSERT_EQ(c.command({"PING"}), "PONG");
  p.reset_all();
  EXPECT_FALSE(c.command({"PING"}).has_value());
  p.set_refuse(true);
  raw_client c2(p.port(), 1000ms);
  EXPECT_FALSE(c2.command({"PING"}).has_value());
  p.set_refuse(false);
  raw_client c3(p.port(), 1000ms);
  EXPECT_EQ(c3.command({"PING"}), "PONG");
}

TEST(Harness, CheckerSeesOverlapsAndLostUpdates) {
  std::vector<critical_section> clean{{0, 0, 10, 0, 1}, {1, 10, 20, 1, 2}, {0, 25, 30, 2, 3}};
  EXPECT_TRUE(check_sections(clean, 3).ok());
  std::vector<critical_section> overlapping{{0, 0, 10, 0, 1}, {1, 5, 20, 0, 1}};
  auto r = check_sections(overlapping, 1);
  EXPECT_EQ(r.overlaps, 1u);
  EXPECT_GE(r.lost_updates, 1u);
  EXPECT_FALSE(r.first_problem.empty());
}

// A section for the fencing checker: started at `start`, token `token`, and a write sent at
// `start + 1` and answered at `start + 2` (`highest`: the store's answer).
fenced_section fenced(int client, std::int64_t start, std::uint64_t token, fenced_write w,
                      std::uint64_t highest = 0) {
  fenced_section s;
  s.section = {client, start, start + 3, -1, -1};
  s.token = token;
  s.write = w;
  s.write_begin_ns = start + 1;
  s.write_end_ns = start + 2;
  s.highest = highest ? highest : token;
  return s;
}

TEST(Harness, FencingCheckerSeesFallingAndRepeatedTokensAndStaleWrites) {
  using w = fenced_write;
  std::vector<fenced_section> clean{fenced(0, 0, 3, w::accepted), fenced(1, 10, 5, w::none),
                                    fenced(0, 20, 7, w::accepted)};
  auto ok = check_fencing(clean, 7);
  EXPECT_TRUE(ok.ok()) << ok.first_problem;
  EXPECT_EQ(ok.tokens_checked, 3u);
  EXPECT_EQ(ok.max_token, 7u);
  EXPECT_FALSE(check_fencing(clean, 3).ok()) << "the store must end with the highest token";

  auto falling = check_fencing({fenced(0, 0, 4, w::none), fenced(1, 10, 2, w::none)});
  EXPECT_EQ(falling.not_increasing, 1u);
  EXPECT_EQ(falling.repeated, 0u);
  auto again = check_fencing({fenced(0, 0, 4, w::none), fenced(1, 10, 4, w::none)});
  EXPECT_EQ(again.not_increasing, 1u);
  EXPECT_EQ(again.repeated, 1u);
  EXPECT_EQ(check_fencing({fenced(0, 0, 0, w::none)}).unfenced, 1u);

  // Token 2 written after token 5 had been accepted: stale. Refused instead, it is fencing
  // working, provided a write of the token named in the refusal had been sent before.
  auto stale = check_fencing({fenced(1, 10, 5, w::accepted), fenced(0, 20, 2, w::accepted)});
  EXPECT_EQ(stale.stale_accepted, 1u);
  auto refused = check_fencing({fenced(1, 10, 5, w::accepted), fenced(0, 20, 2, w::refused, 5)});
  EXPECT_EQ(refused.stale_accepted, 0u);
  EXPECT_EQ(refused.refused, 1u);
  EXPECT_EQ(refused.unexplained_refusals, 0u);
  EXPECT_EQ(check_fencing({fenced(0, 20, 2, w::refused, 5)}).unexplained_refusals, 1u);
  // Writes in flight together have no order: no verdict.
  auto a = fenced(1, 10, 5, w::accepted);
  auto b = fenced(0, 10, 2, w::accepted);
  EXPECT_EQ(check_fencing({a, b}).stale_accepted, 0u);

  auto line = to_line(fenced(2, 100, 9, w::refused, 11));
  auto back = parse_fenced_line(line);
  ASSERT_TRUE(back.has_value()) << line;
  EXPECT_EQ(to_line(*back), line);
  EXPECT_FALSE(parse_fenced_line("2 100 103 -1 -1 9 x 101 102 11").has_value());
}

}  // namespace
}  // namespace redlock::test

// Server clocks that run fast or jump (test-catalogue.md, "Clocks and pauses").
//
// Client A takes the lock on three servers; nodes 0 and 1 (a majority) run a skewed clock
// through the LD_PRELOAD shim, so their copies of A's key may expire early. Client B keeps
// trying. With a 2x clock or a forward jump B wins while A's validity still runs -- the
// documented limit, which the checker must see. With a rate error inside drift_factor the
// validity margin absorbs it and the checker must see nothing.
#include "fault_common.hpp"
#include "support/fault_clock.hpp"

namespace redlock::test {
namespace {

struct skewed_cluster {
  server_clock clock0{REDLOCK_CLOCK_SHIM};
  server_clock clock1{REDLOCK_CLOCK_SHIM};
  cluster c{0};
  skewed_cluster() {
    redis_server_options o0, o1;
    o0.env = clock0.env();
    o1.env = clock1.env();
    c.servers.push_back(std::make_unique<redis_server>(o0));
    c.servers.push_back(std::make_unique<redis_server>(o1));
    c.servers.push_back(std::make_unique<redis_server>());
  }
};

// A and B race for one lock. The clients are declared before the outcomes: lock handles must
// not outlive their client's io_context.
struct race_run {
  std::unique_ptr<lock_client> a_client;
  std::unique_ptr<lock_client> b_client;
  lock_client::outcome a;
  lock_client::outcome b;
  check_result check;
};

race_run race(skewed_cluster& k, std::chrono::milliseconds ttl,
              const std::function<void()>& after_a) {
  race_run run;
  run.a_client = std::make_unique<lock_client>(k.c.ports());
  run.b_client = std::make_unique<lock_client>(k.c.ports());
  auto& a = run.a;
  auto& b = run.b;
  a = run.a_client->acquire("clock", ttl);
  EXPECT_FALSE(a.ec) << a.held.report().to_string();
  after_a();
  if (::testing::Test::HasFatalFailure())
    return run;
  call_options retry;
  retry.retry_count = static_cast<int>(ttl / 50ms) + 40;
  retry.retry_delay = 50ms;
  retry.retry_jitter = 10ms;
  b = run.b_client->acquire("clock", ttl, retry);
  EXPECT_FALSE(b.ec) << "B never got the lock: " << b.held.report().to_string();
  std::vector<critical_section> sections{held_section(0, a), held_section(1, b)};
  run.check = check_sections(sections);
  // Said whatever the verdict, so that a failure shows how B got in.
  std::printf(
      "B: %d attempts in %lld ms; last attempt: %s\n", b.held.attempts(),
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(b.took).count()),
      b.held.report().to_string().c_str());
  return run;
}

TEST(ServerClock, TwiceFastClockOnAMajorityLetsTwoClientsHoldTheLock) {
  skewed_cluster k;
  k.clock0.set_rate(2.0);
  k.clock1.set_rate(2.0);
  auto run = race(k, 4000ms, [] {});
  const auto& r = run.check;
  // The documented limit: passes when the overlap is seen.
  EXPECT_GE(r.overlaps, 1u) << "a 2x server clock should have expired A's keys early";
  std::printf("documented limit detected: %s\n", r.first_problem.c_str());
}

TEST(ServerClock, ForwardJumpOnAMajorityLetsTwoClientsHoldTheLock) {
  skewed_cluster k;
  auto run = race(k, 10000ms, [&] {
    k.clock0.jump(20s);
    k.clock1.jump(20s);
    // The premise, checked before B starts: both jumped servers have dropped A's key. The shim
    // applies a change within milliseconds; if this fails, the clock did not jump, and B's
    // verdict below would say nothing about the library.
    for (std::size_t i : {0u, 1u}) {
      ASSERT_TRUE(wait_for([&] { return pttl(*k.c.servers[i], "clock") == -2; }, 3000ms))
          << "server " << i << " still holds A's key 3 s after a 20 s jump of its clock (PTTL "
          << pttl(*k.c.servers[i], "clock") << " ms)";
    }
    EXPECT_GT(pttl(*k.c.servers[2], "clock"), 5000)
        << "the server with the real clock keeps A's key";
  });
  const auto& r = run.check;
  EXPECT_GE(r.overlaps, 1u) << "a forward jump should have expired A's keys at once";
  std::printf("documented limit detected: %s\n", r.first_problem.c_str());
}

TEST(ServerClock, RateErrorWithinTheDriftFactorKeepsMutualExclusion) {
  skewed_cluster k;
  // drift_factor is 0.01 by default: 0.9 % fast stays inside it.
  k.clock0.set_rate(1.009);
  k.clock1.set_rate(1.009);
  auto run = race(k, 3000ms, [] {});
  EXPECT_EQ(run.check.overlaps, 0u) << run.check.first_problem;
  EXPECT_GT(run.b.held.attempts(), 1) << "B had to wait for A's lock to expire";
}

}  // namespace
}  // namespace redlock::test

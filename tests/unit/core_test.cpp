// The decision core, step by step with literal time points and scripted votes.
#include <limits>

#include <gtest/gtest.h>

#include <type_traits>

#include "internal/core.hpp"
#include "redlock/error.hpp"
#include "unit/core_steps.hpp"

namespace {

using namespace redlock::detail::core;
using namespace std::chrono_literals;
using redlock::errc;
using redlock::vote;
using atype = action::type;

using namespace core_steps;

std::uint64_t mid_random() {
  return 100'000;
}  // with jitter 100 ms: offset exactly 0

bool has(const std::vector<action>& as, atype k) {
  for (const auto& a : as) {
    if (a.kind == k)
      return true;
  }
  return false;
}

const action* find(const std::vector<action>& as, atype k) {
  for (const auto& a : as) {
    if (a.kind == k)
      return &a;
  }
  return nullptr;
}

answer answer_for(vote v) {
  switch (v) {
    case vote::granted:
      return answer::ok;
    case vote::denied:
      return answer::foreign;
    case vote::timeout:
      return answer::timeout;
    default:
      return answer::error;
  }
}

// --- arithmetic -------------------------------------------------------------------------

TEST(Validity, DriftIsRoundedTtlTimesFactorPlusTwoMilliseconds) {
  EXPECT_EQ(drift_margin(10s, 0.01), 102ms);
  EXPECT_EQ(drift_margin(1000ms, 0.01), 12ms);
  EXPECT_EQ(drift_margin(150ms, 0.01), 4ms);  // 1.5 rounds to 2
  EXPECT_EQ(drift_margin(149ms, 0.01), 3ms);  // 1.49 rounds to 1
  EXPECT_EQ(drift_margin(1000ms, 0.0), 2ms);
}

TEST(Validity, IsTtlMinusElapsedMinusDrift) {
  EXPECT_EQ(validity(10s, 0.01, t0, t0 + 50ms), 10000ms - 50ms - 102ms);
  EXPECT_EQ(validity(10s, 0.01, t0, t0), 9898ms);
  EXPECT_EQ(validity_deadline(10s, 0.01, t0), t0 + 9898ms);
  EXPECT_LT(validity(1000ms, 0.01, t0, t0 + 988ms), duration::zero() + 1ns);
  EXPECT_EQ(validity(1000ms, 0.01, t0, t0 + 988ms), duration::zero());
}

TEST(Validity, TakesOnlySteadyClockTimePointsSoWallClockJumpsCannotMatter) {
  // Only steady-clock points are inputs: a system_clock point (which jumps with the wall
  // clock) does not even compile as an argument.
  static_assert(!std::is_convertible_v<std::chrono::system_clock::time_point, time_point>);
  static_assert(std::is_same_v<time_point::clock, std::chrono::steady_clock>);
  // A wall clock jump of ±30 s between start and now leaves steady points unaffected, so the
  // validity depends on the steady elapsed time alone.
  const auto elapsed = 40ms;
  EXPECT_EQ(validity(10s, 0.01, t0, t0 + elapsed),
            validity(10s, 0.01, t0 + 30s, t0 + 30s + elapsed));
}

TEST(Jitter, StaysWithinDelayPlusOrMinusJitter) {
  EXPECT_EQ(jittered_delay(200ms, 100ms, 0), duration(100ms));
  EXPECT_EQ(jittered_delay(200ms, 100ms, 200'000), duration(300ms));  // 2 * jitter in us
  EXPECT_EQ(jittered_delay(200ms, 100ms, 100'000), duration(200ms));
  EXPECT_EQ(jittered_delay(200ms, 0ms, 12345), duration(200ms));
  std::uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 10000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const auto d = jittered_delay(200ms, 100ms, x);
    ASSERT_GE(d, duration(100ms));
    ASSERT_LE(d, duration(300ms));
  }
}

TEST(Jitter, NeverNegative) {
  for (std::uint64_t r = 0; r < 1000; r += 7) {
    EXPECT_GE(jittered_delay(10ms, 100ms, r), duration::zero());
  }
  EXPECT_EQ(jittered_delay(10ms, 100ms, 0), duration::zero());
}

TEST(Tally, DecidesAsSoonAsCertain) {
  tally t(5);
  EXPECT_EQ(t.quorum(), 3u);
  t.grant();
  t.grant();
  EXPECT_EQ(t.state(), decision::pending);
  t.grant();
  EXPECT_EQ(t.state(), decision::reached);
  tally u(5);
  u.reject();
  u.reject();
  EXPECT_EQ(u.state(), decision::pending);
  u.reject();
  EXPECT_EQ(u.state(), decision::impossible);
  tally even(4);  // quorum 3: two against already make it impossible
  even.reject();
  even.reject();
  EXPECT_EQ(even.state(), decision::impossible);
}

TEST(Interpret, NodeVotesForOnlyWhenReplyEqualsKeyCount) {
  std::error_code ec;
  redlock::reply r;
  r.kind = redlock::reply::type::integer;
  r.integer = 2;
  EXPECT_EQ(interpret(op_kind::acquire, {}, r, 2, ec), answer::ok);
  EXPECT_EQ(interpret(op_kind::acquire, {}, r, 3, ec), answer::error);
  EXPECT_EQ(ec, errc::protocol_error);
  r.integer = 0;
  EXPECT_EQ(interpret(op_kind::acquire, {}, r, 2, ec), answer::foreign);
  EXPECT_EQ(interpret(op_kind::extend, {}, r, 2, ec), answer::foreign);
  EXPECT_EQ(interpret(op_kind::release, {}, r, 2, ec), answer::absent);
  r.integer = -1;
  EXPECT_EQ(interpret(op_kind::extend, {}, r, 2, ec), answer::missing);
  // A negative acquire answer is a denial that carries the holder's TTL (-1 - PTTL).
  EXPECT_EQ(interpret(op_kind::acquire, {}, r, 2, ec), answer::foreign);
  std::uint64_t counter = 0;
  milliseconds holder{};
  r.integer = -1501;
  EXPECT_EQ(interpret(op_kind::acquire, false, {}, r, 2, ec, counter, &holder), answer::foreign);
  EXPECT_EQ(holder, 1500ms);
  r.integer = 0;  // denied, TTL unknown (a key without expiry)
  EXPECT_EQ(interpret(op_kind::acquire, false, {}, r, 2, ec, counter, &holder), answer::foreign);
  EXPECT_EQ(holder, -1ms);
  r.integer = 2;
  EXPECT_EQ(interpret(op_kind::acquire, false, {}, r, 2, ec, counter, &holder), answer::ok);
  EXPECT_EQ(holder, -1ms);
  r.integer = std::numeric_limits<std::int64_t>::min();
  EXPECT_EQ(interpret(op_kind::acquire, false, {}, r, 2, ec, counter, &holder), answer::foreign);
  EXPECT_EQ(holder, max_ttl);
  r.integer = -1;
  r.integer = 1;
  EXPECT_EQ(interpret(op_kind::release, {}, r, 2, ec), answer::ok);
  EXPECT_EQ(interpret(op_kind::release, make_error_code(errc::timeout), r, 2, ec), answer::timeout);
  EXPECT_EQ(interpret(op_kind::release, make_error_code(errc::server_error), r, 2, ec),
            answer::error);
  EXPECT_EQ(ec, errc::server_error);
  redlock::reply s;
  s.kind = redlock::reply::type::string;
  s.str = "2";
  EXPECT_EQ(interpret(op_kind::acquire, {}, s, 2, ec), answer::error);
}

// --- acquire: every combination of outcomes -----------------------------------------------

// Drives one attempt (retry_count 0) where node i answers `votes[i]`, in index order; timeout
// nodes never answer and the attempt timer fires at the end if still undecided.
void check_combination(const std::vector<vote>& votes) {
  const auto n = votes.size();
  quorum_machine m(acquire_config(n), &zero_random);
  auto first = drain(m, m.resume(event::start(t0)));
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(first[0].kind, atype::send);
  for (const auto& s : m.nodes())
    ASSERT_TRUE(s.in_round);

  std::size_t granted = 0;
  for (auto v : votes)
    granted += v == vote::granted ? 1 : 0;
  const bool should_succeed = granted >= quorum_of(n);

  std::vector<action> acts;
  for (std::size_t i = 0; i < n && !m.finished(); ++i) {
    if (votes[i] == vote::timeout)
      continue;
    std::error_code ec;
    if (votes[i] == vote::error)
      ec = errc::server_error;
    auto as =
        drain(m, m.resume(event::reply(i, m.attempt_id(), answer_for(votes[i]), ec, t0 + 1ms)));
    acts.insert(acts.end(), as.begin(), as.end());
  }
  if (!m.finished()) {
    auto as = drain(m, m.resume(event::attempt_timeout(t0 + 200ms)));
    acts.insert(acts.end(), as.begin(), as.end());
  }
  ASSERT_TRUE(m.finished());
  const auto* done = find(acts, atype::complete);
  ASSERT_NE(done, nullptr);
  if (should_succeed) {
    EXPECT_FALSE(done->ec);
    EXPECT_FALSE(has(acts, atype::release_all));
    EXPECT_EQ(m.deadline(), t0 + 9898ms);
  } else {
    EXPECT_TRUE(done->ec == errc::resource_locked || done->ec == errc::quorum_unreachable)
        << done->ec.message();
    // After any failure, release goes to all N nodes, before completion.
    ASSERT_TRUE(has(acts, atype::release_all));
    std::size_t denied = 0;
    std::size_t failed = 0;
    for (auto v : votes) {
      denied += v == vote::denied ? 1 : 0;
      failed += (v == vote::error || v == vote::timeout) ? 1 : 0;
    }
    if (failed == 0) {
      EXPECT_EQ(done->ec, errc::resource_locked);
    }
    if (denied == 0) {
      EXPECT_EQ(done->ec, errc::quorum_unreachable);
    }
  }
  // Nothing but release and complete after the send.
  for (const auto& a : acts) {
    EXPECT_TRUE(a.kind == atype::release_all || a.kind == atype::complete);
  }
}

void for_each_combination(std::size_t n) {
  const vote kinds[] = {vote::granted, vote::denied, vote::timeout, vote::error};
  std::size_t total = 1;
  for (std::size_t i = 0; i < n; ++i)
    total *= 4;
  for (std::size_t c = 0; c < total; ++c) {
    std::vector<vote> votes;
    auto x = c;
    for (std::size_t i = 0; i < n; ++i) {
      votes.push_back(kinds[x % 4]);
      x /= 4;
    }
    SCOPED_TRACE(::testing::Message() << "combination " << c);
    check_combination(votes);
    if (::testing::Test::HasFatalFailure())
      return;
  }
}

TEST(AcquireMachine, EveryOutcomeCombinationOfThreeNodesDecidesByQuorum) {
  for_each_combination(3);
}

TEST(AcquireMachine, EveryOutcomeCombinationOfFiveNodesDecidesByQuorum) {
  for_each_combination(5);
}

TEST(AcquireMachine, DecidesOnQuorumWithoutWaitingForTheSlowestNodes) {
  quorum_machine m(acquire_config(5), &zero_random);
  drain(m, m.resume(event::start(t0)));
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(drain(m, m.resume(event::reply(i, 1, answer::ok, {}, t0 + 1ms))).empty());
  }
  auto as = drain(m, m.resume(event::reply(2, 1, answer::ok, {}, t0 + 2ms)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].kind, atype::complete);
  EXPECT_FALSE(as[0].ec);
  EXPECT_EQ(m.nodes()[3].outcome, vote::pending);
  // Late replies after the decision change nothing.
  EXPECT_TRUE(drain(m, m.resume(event::reply(3, 1, answer::foreign, {}, t0 + 3ms))).empty());
  EXPECT_TRUE(drain(m, m.resume(event::attempt_timeout(t0 + 200ms))).empty());
}

TEST(AcquireMachine, FailsEarlyWhenTooManyDeniedAndReleasesEverywhere) {
  quorum_machine m(acquire_config(5), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(event::reply(0, 1, answer::foreign, {}, t0 + 1ms)));
  drain(m, m.resume(event::reply(1, 1, answer::foreign, {}, t0 + 1ms)));
  auto as = drain(m, m.resume(event::reply(2, 1, answer::foreign, {}, t0 + 1ms)));
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(as[0].kind, atype::release_all);
  EXPECT_EQ(as[1].kind, atype::complete);
  EXPECT_EQ(as[1].ec, errc::resource_locked);
}

TEST(AcquireMachine, QuorumAfterTheValidityRanOutIsAFailureNotAnExpiredLock) {
  auto c = acquire_config(3);
  c.ttl = 100ms;  // drift 3 ms: validity ends at t0 + 97 ms
  quorum_machine m(c, &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(event::reply(0, 1, answer::ok, {}, t0 + 50ms)));
  auto as = drain(m, m.resume(event::reply(1, 1, answer::ok, {}, t0 + 97ms)));
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(as[0].kind, atype::release_all);
  EXPECT_EQ(as[1].ec, errc::validity_exhausted);
}

TEST(AcquireMachine, ValidityIsMeasuredFromTheStartOfTheWinningAttempt) {
  quorum_machine m(acquire_config(3, 3), &mid_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(event::reply(0, 1, answer::foreign, {}, t0 + 1ms)));
  auto as = drain(m, m.resume(event::reply(1, 1, answer::foreign, {}, t0 + 1ms)));
  ASSERT_TRUE(has(as, atype::wait));
  EXPECT_EQ(find(as, atype::wait)->delay, duration(200ms));
  const auto t1 = t0 + 5s;
  as = drain(m, m.resume(event::retry_timer(t1)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].kind, atype::send);
  drain(m, m.resume(event::reply(0, 2, answer::ok, {}, t1 + 1ms)));
  as = drain(m, m.resume(event::reply(1, 2, answer::ok, {}, t1 + 2ms)));
  ASSERT_EQ(as.back().kind, atype::complete);
  EXPECT_FALSE(as.back().ec);
  EXPECT_EQ(m.deadline(), t1 + 9898ms);
  EXPECT_EQ(m.attempts(), 2);
}

TEST(AcquireMachine, RepliesFromAnEarlierAttemptAreIgnored) {
  quorum_machine m(acquire_config(3, 1), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(event::attempt_timeout(t0 + 200ms)));
  drain(m, m.resume(event::retry_timer(t0 + 300ms)));
  EXPECT_TRUE(drain(m, m.resume(event::reply(0, 1, answer::ok, {}, t0 + 301ms))).empty());
  EXPECT_EQ(m.nodes()[0].outcome, vote::pending);
}

int attempts_until_done(int retry_count) {
  quorum_machine m(acquire_config(3, retry_count), &zero_random);
  auto now = t0;
  auto as = drain(m, m.resume(event::start(now)));
  for (int guard = 0; guard < 100; ++guard) {
    for (std::size_t i = 0; i < 3; ++i) {
      auto more = drain(m, m.resume(event::reply(i, m.attempt_id(), answer::foreign, {}, now)));
      as.insert(as.end(), more.begin(), more.end());
    }
    if (m.finished())
      return m.attempts();
    now += 1s;
    as = drain(m, m.resume(event::retry_timer(now)));
  }
  return -1;
}

TEST(AcquireMachine, RetryCountZeroMeansExactlyOneAttempt) {
  EXPECT_EQ(attempts_until_done(0), 1);
}

TEST(AcquireMachine, RetryCountThreeMeansFourAttempts) {
  EXPECT_EQ(attempts_until_done(3), 4);
}

TEST(AcquireMachine, UnlimitedRetriesKeepBoundedMemoryOverTenThousandFailedAttempts) {
  quorum_machine m(acquire_config(5, -1), &zero_random);
  auto now = t0;
  drain(m, m.resume(event::start(now)));
  std::size_t capacity = 0;
  std::vector<std::size_t> message_capacity;
  for (int attempt = 1; attempt <= 10'000; ++attempt) {
    std::vector<action> as;
    for (std::size_t i = 0; i < 5; ++i) {
      auto e =
          event::reply(i, m.attempt_id(), answer::error, make_error_code(errc::server_error), now);
      e.message = "ERR something failed on this node";
      auto more = drain(m, m.resume(e));
      as.insert(as.end(), more.begin(), more.end());
    }
    ASSERT_FALSE(m.finished()) << "retry_count -1 stopped at attempt " << attempt;
    ASSERT_TRUE(has(as, atype::release_all));
    ASSERT_TRUE(has(as, atype::wait));
    if (attempt == 1) {
      capacity = m.nodes().capacity();
      for (const auto& s : m.nodes())
        message_capacity.push_back(s.message.capacity());
    }
    now += 300ms;
    drain(m, m.resume(event::retry_timer(now)));
  }
  EXPECT_EQ(m.attempts(), 10'001);
  EXPECT_EQ(m.nodes().size(), 5u);
  EXPECT_EQ(m.nodes().capacity(), capacity);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(m.nodes()[i].message.capacity(), message_capacity[i]);
  }
  // A cancel still ends it.
  auto as = drain(m, m.resume(event::cancel(make_error_code(errc::cancelled), now)));
  ASSERT_EQ(as.back().kind, atype::complete);
  EXPECT_EQ(as.back().ec, errc::cancelled);
}

TEST(AcquireMachine, CancelDuringAnAttemptReleasesAndCompletes) {
  quorum_machine m(acquire_config(3, 5), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(event::reply(0, 1, answer::ok, {}, t0 + 1ms)));
  auto as = drain(m, m.resume(event::cancel(make_error_code(errc::cancelled), t0 + 2ms)));
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(as[0].kind, atype::release_all);
  EXPECT_EQ(as[1].ec, errc::cancelled);
  EXPECT_TRUE(drain(m, m.resume(event::reply(1, 1, answer::ok, {}, t0 + 3ms))).empty());
}

TEST(AcquireMachine, CancelWhileWaitingDoesNotReleaseTwice) {
  quorum_machine m(acquire_config(3, 5), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(event::attempt_timeout(t0 + 200ms)));
  auto as = drain(m, m.resume(event::cancel(make_error_code(errc::cancelled), t0 + 250ms)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].ec, errc::cancelled);
  EXPECT_TRUE(drain(m, m.resume(event::retry_timer(t0 + 400ms))).empty());
}

// --- extend -----------------------------------------------------------------------------

op_config extend_config(std::size_t n, time_point lock_deadline, int retry_count = 0) {
  auto c = acquire_config(n, retry_count);
  c.kind = op_kind::extend;
  c.lock_deadline = lock_deadline;
  return c;
}

TEST(ExtendMachine, ExpiredLockFailsAtOnceAndSendsNothing) {
  quorum_machine m(extend_config(3, t0), &zero_random);
  auto as = drain(m, m.resume(event::start(t0)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].kind, atype::complete);
  EXPECT_EQ(as[0].ec, errc::lock_expired);
}

TEST(ExtendMachine, NewValidityIsComputedFromTheExtendStart) {
  quorum_machine m(extend_config(3, t0 + 5s), &zero_random);
  const auto start = t0 + 1s;
  drain(m, m.resume(event::start(start)));
  drain(m, m.resume(event::reply(0, 1, answer::ok, {}, start + 3ms)));
  auto as = drain(m, m.resume(event::reply(1, 1, answer::ok, {}, start + 4ms)));
  ASSERT_EQ(as.back().kind, atype::complete);
  EXPECT_FALSE(as.back().ec);
  EXPECT_EQ(m.deadline(), start + 9898ms);
}

TEST(ExtendMachine, FailureNeverReleasesAndSaysLockLostWhenDenied) {
  quorum_machine m(extend_config(3, t0 + 5s), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(event::reply(0, 1, answer::foreign, {}, t0 + 1ms)));
  auto as = drain(m, m.resume(event::reply(1, 1, answer::missing, {}, t0 + 1ms)));
  EXPECT_FALSE(has(as, atype::release_all));
  ASSERT_EQ(as.back().kind, atype::complete);
  EXPECT_EQ(as.back().ec, errc::lock_lost);
}

TEST(ExtendMachine, FailureByUnreachableNodesSaysQuorumUnreachable) {
  quorum_machine m(extend_config(3, t0 + 5s), &zero_random);
  drain(m, m.resume(event::start(t0)));
  auto as = drain(m, m.resume(event::attempt_timeout(t0 + 200ms)));
  EXPECT_FALSE(has(as, atype::release_all));
  EXPECT_EQ(as.back().ec, errc::quorum_unreachable);
}

TEST(ExtendMachine, RetriesOnlyWhileTheLockIsStillValid) {
  // Deadline 1 s away, retry delay 200 ms: retries happen, and stop once a retry would
  // start after the deadline.
  quorum_machine m(extend_config(3, t0 + 1s, -1), &mid_random);
  auto now = t0;
  drain(m, m.resume(event::start(now)));
  int rounds = 0;
  for (; rounds < 100 && !m.finished(); ++rounds) {
    auto as = drain(m, m.resume(event::attempt_timeout(now + 200ms)));
    EXPECT_FALSE(has(as, atype::release_all));
    if (m.finished())
      break;
    now += 400ms;
    drain(m, m.resume(event::retry_timer(now)));
  }
  EXPECT_TRUE(m.finished());
  EXPECT_LT(rounds, 5);
  EXPECT_GE(m.attempts(), 2);
}

TEST(ExtendMachine, ResyncsNodesThatLostTheKeysWhenAQuorumStillHoldsThem) {
  quorum_machine m(extend_config(5, t0 + 5s), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(event::reply(0, 1, answer::missing, {}, t0 + 1ms)));
  drain(m, m.resume(event::reply(1, 1, answer::ok, {}, t0 + 1ms)));
  drain(m, m.resume(event::reply(2, 1, answer::ok, {}, t0 + 1ms)));
  auto as = drain(m, m.resume(event::reply(3, 1, answer::ok, {}, t0 + 2ms)));
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(as[0].kind, atype::resync);
  EXPECT_EQ(as[0].node, 0u);
  EXPECT_EQ(as[1].kind, atype::complete);
  EXPECT_FALSE(as[1].ec);
  // Node 4 answers late that its keys are missing: it is re-set too, while still valid.
  as = drain(m, m.resume(event::reply(4, 1, answer::missing, {}, t0 + 3ms)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].kind, atype::resync);
  EXPECT_EQ(as[0].node, 4u);
}

TEST(ExtendMachine, NeverRecreatesAnExpiredLock) {
  // A late "missing" reply after the new validity ran out: no resync.
  quorum_machine m(extend_config(5, t0 + 5s), &zero_random);
  drain(m, m.resume(event::start(t0)));
  for (std::size_t i = 0; i < 3; ++i) {
    drain(m, m.resume(event::reply(i, 1, answer::ok, {}, t0 + 1ms)));
  }
  ASSERT_TRUE(m.finished());
  EXPECT_TRUE(drain(m, m.resume(event::reply(3, 1, answer::missing, {}, t0 + 9898ms))).empty());
  // Without a quorum nothing is re-set either, however much validity is left.
  quorum_machine f(extend_config(3, t0 + 5s), &zero_random);
  drain(f, f.resume(event::start(t0)));
  drain(f, f.resume(event::reply(0, 1, answer::missing, {}, t0 + 1ms)));
  auto as = drain(f, f.resume(event::reply(1, 1, answer::missing, {}, t0 + 1ms)));
  EXPECT_FALSE(has(as, atype::resync));
  EXPECT_EQ(as.back().ec, errc::lock_lost);
  // And an extend that starts after the lock expired sends nothing at all.
  quorum_machine e(extend_config(3, t0), &zero_random);
  as = drain(e, e.resume(event::start(t0 + 1ms)));
  EXPECT_FALSE(has(as, atype::send));
  EXPECT_FALSE(has(as, atype::resync));
}

TEST(ExtendMachine, NoResyncAfterALaterOperationOnTheValueStarted) {
  // Issue 10, defect 3: a slow node's late "missing" answer to a successful extend came after
  // the caller unlocked, and the re-sync brought the released key back for a full TTL.
  quorum_machine m(extend_config(5, t0 + 5s), &zero_random);
  drain(m, m.resume(event::start(t0)));
  for (std::size_t i = 0; i < 3; ++i)
    drain(m, m.resume(event::reply(i, 1, answer::ok, {}, t0 + 1ms)));
  ASSERT_TRUE(m.finished());
  m.stop_resyncs();  // the unlock of this value started
  EXPECT_TRUE(drain(m, m.resume(event::reply(3, 1, answer::missing, {}, t0 + 3ms))).empty());
  // Also the re-syncs queued at completion are dropped once stopped.
  quorum_machine q(extend_config(5, t0 + 5s), &zero_random);
  drain(q, q.resume(event::start(t0)));
  drain(q, q.resume(event::reply(0, 1, answer::missing, {}, t0 + 1ms)));
  drain(q, q.resume(event::reply(1, 1, answer::ok, {}, t0 + 1ms)));
  drain(q, q.resume(event::reply(2, 1, answer::ok, {}, t0 + 1ms)));
  auto first = q.resume(event::reply(3, 1, answer::ok, {}, t0 + 1ms));
  ASSERT_EQ(first.kind, atype::resync);
  q.stop_resyncs();
  auto rest = drain(q, q.resume(event::next()));
  EXPECT_FALSE(has(rest, atype::resync));
  EXPECT_TRUE(has(rest, atype::complete));
}

// --- release ----------------------------------------------------------------------------

op_config release_config(std::size_t n, time_point lock_deadline, int retry_count) {
  auto c = acquire_config(n, retry_count);
  c.kind = op_kind::release;
  c.lock_deadline = lock_deadline;
  return c;
}

TEST(ReleaseMachine, SucceedsWhenAQuorumNoLongerHoldsOurValue) {
  quorum_machine m(release_config(3, t0 + 5s, 3), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(event::reply(0, 1, answer::ok, {}, t0 + 1ms)));
  auto as = drain(m, m.resume(event::reply(1, 1, answer::absent, {}, t0 + 1ms)));
  ASSERT_EQ(as.back().kind, atype::complete);
  EXPECT_FALSE(as.back().ec);
  EXPECT_EQ(m.released(), 1u);
  EXPECT_EQ(m.absent(), 1u);
}

TEST(ReleaseMachine, RetriesOnlyTheNodesThatFailed) {
  quorum_machine m(release_config(3, t0 + 5s, 3), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(event::reply(0, 1, answer::ok, {}, t0 + 1ms)));
  drain(m, m.resume(event::reply(1, 1, answer::error, make_error_code(errc::server_error), t0)));
  auto as = drain(m, m.resume(event::attempt_timeout(t0 + 200ms)));
  ASSERT_TRUE(has(as, atype::wait));
  as = drain(m, m.resume(event::retry_timer(t0 + 400ms)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].kind, atype::send);
  EXPECT_FALSE(m.nodes()[0].in_round);
  EXPECT_TRUE(m.nodes()[1].in_round);
  EXPECT_TRUE(m.nodes()[2].in_round);
  as = drain(m, m.resume(event::reply(2, 2, answer::ok, {}, t0 + 401ms)));
  ASSERT_EQ(as.back().kind, atype::complete);
  EXPECT_FALSE(as.back().ec);
  EXPECT_EQ(m.released(), 2u);
  EXPECT_EQ(m.attempts(), 2);
}

TEST(ReleaseMachine, ExpiredLockGetsOneRoundThenLockExpiredEvenWithUnlimitedRetries) {
  quorum_machine m(release_config(3, t0, -1), &zero_random);
  auto as = drain(m, m.resume(event::start(t0 + 1ms)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].kind, atype::send);
  drain(m, m.resume(event::reply(0, 1, answer::ok, {}, t0 + 2ms)));
  drain(m, m.resume(event::reply(1, 1, answer::absent, {}, t0 + 2ms)));
  as = drain(m, m.resume(event::attempt_timeout(t0 + 200ms)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].kind, atype::complete);
  EXPECT_EQ(as[0].ec, errc::lock_expired);
  EXPECT_EQ(m.attempts(), 1);
  EXPECT_EQ(m.released(), 1u);
}

TEST(ReleaseMachine, GivesUpWhenTheLockWouldExpireBeforeTheRetry) {
  quorum_machine m(release_config(3, t0 + 250ms, -1), &mid_random);
  drain(m, m.resume(event::start(t0)));
  auto as = drain(m, m.resume(event::attempt_timeout(t0 + 200ms)));
  ASSERT_EQ(as.back().kind, atype::complete);
  EXPECT_EQ(as.back().ec, errc::quorum_unreachable);
}

TEST(ReleaseMachine, WaitAllDecidesOnlyOnceEveryNodeAnswered) {
  auto c = release_config(3, t0 + 5s, 0);
  c.wait_all = true;
  quorum_machine m(c, &zero_random);
  drain(m, m.resume(event::start(t0)));
  EXPECT_TRUE(drain(m, m.resume(event::reply(0, 1, answer::ok, {}, t0 + 1ms))).empty());
  EXPECT_TRUE(drain(m, m.resume(event::reply(1, 1, answer::absent, {}, t0 + 1ms))).empty())
      << "a quorum no longer holds the value, but node 2 has not answered yet";
  auto as = drain(m, m.resume(event::reply(2, 1, answer::ok, {}, t0 + 2ms)));
  ASSERT_FALSE(as.empty());
  EXPECT_EQ(as.back().kind, atype::complete);
  EXPECT_FALSE(as.back().ec);
  EXPECT_EQ(m.released(), 2u);
  EXPECT_EQ(m.absent(), 1u);
  // Bounded by the attempt deadline: a node that never answers times out.
  quorum_machine t(c, &zero_random);
  drain(t, t.resume(event::start(t0)));
  drain(t, t.resume(event::reply(0, 1, answer::ok, {}, t0 + 1ms)));
  drain(t, t.resume(event::reply(1, 1, answer::ok, {}, t0 + 1ms)));
  as = drain(t, t.resume(event::attempt_timeout(t0 + 200ms)));
  ASSERT_FALSE(as.empty());
  EXPECT_FALSE(as.back().ec);
}

// ---- routing one request to one node ------------------------------------------------------

TEST(Route, ReleasesGoOnlyToNodesThatMayHoldTheValueAndAreNeverHeldBackForLagging) {
  for (auto p : {purpose::release, purpose::cleanup}) {
    EXPECT_EQ(route_request(op_kind::acquire, p, true, true), route::send);
    EXPECT_EQ(route_request(op_kind::acquire, p, false, false), route::answer_absent);
  }
  EXPECT_EQ(route_request(op_kind::release, purpose::primary, true, true), route::send);
  EXPECT_EQ(route_request(op_kind::release, purpose::primary, false, true), route::answer_absent);
}

TEST(Route, AcquiresAndExtendsToALaggingNodeAreAnsweredLaggingWithoutSending) {
  for (auto op : {op_kind::acquire, op_kind::extend}) {
    EXPECT_EQ(route_request(op, purpose::primary, true, false), route::send);
    EXPECT_EQ(route_request(op, purpose::primary, false, false), route::send);
    EXPECT_EQ(route_request(op, purpose::primary, true, true), route::answer_lagging);
  }
}

TEST(Route, AResyncGoesOnlyWhereAnAcquireOnceWent) {
  EXPECT_EQ(route_request(op_kind::extend, purpose::resync, false, false), route::skip);
  EXPECT_EQ(route_request(op_kind::extend, purpose::resync, true, false), route::send);
  EXPECT_EQ(route_request(op_kind::extend, purpose::resync, true, true), route::answer_lagging);
}

TEST(Route, EachPurposeRunsTheScriptThatMatchesIt) {
  EXPECT_EQ(script_of(op_kind::extend, purpose::primary), op_kind::extend);
  EXPECT_EQ(script_of(op_kind::extend, purpose::resync), op_kind::acquire);
  EXPECT_EQ(script_of(op_kind::acquire, purpose::release), op_kind::release);
  EXPECT_EQ(script_of(op_kind::release, purpose::cleanup), op_kind::release);
  EXPECT_TRUE(may_store(op_kind::acquire, purpose::primary));
  EXPECT_TRUE(may_store(op_kind::extend, purpose::resync));
  EXPECT_FALSE(may_store(op_kind::extend, purpose::primary));
  EXPECT_FALSE(may_store(op_kind::acquire, purpose::release));
}

TEST(WrittenSet, MarksNodesBelow64AndCountsEveryNodeFrom64OnAsWritten) {
  auto w = written_set::none();
  EXPECT_FALSE(w.may_hold(0));
  w.mark(3);
  w.mark(70);  // not tracked
  EXPECT_TRUE(w.may_hold(3));
  EXPECT_FALSE(w.may_hold(4));
  EXPECT_TRUE(w.may_hold(64));
  EXPECT_EQ(w.bits(), std::uint64_t{1} << 3);
  EXPECT_TRUE(written_set::all().may_hold(63));
}

TEST(Backlog, TheOldestUnansweredRequestDecidesWhetherANodeLags) {
  backlog b;
  EXPECT_FALSE(b.lagging(t0 + 10s, 100ms)) << "an empty backlog never lags";
  const auto first = b.sent(t0);
  const auto second = b.sent(t0 + 50ms);
  const auto third = b.sent(t0 + 120ms);
  EXPECT_EQ(b.size(), 3u);
  EXPECT_FALSE(b.lagging(t0 + 100ms, 100ms)) << "exactly at the limit is not beyond it";
  EXPECT_TRUE(b.lagging(t0 + 101ms, 100ms));
  // Answered out of order: the oldest still pending keeps deciding.
  b.answered(second, t0 + 101ms);
  EXPECT_EQ(b.size(), 3u);
  EXPECT_TRUE(b.lagging(t0 + 101ms, 100ms));
  b.answered(first, t0 + 101ms);
  EXPECT_EQ(b.size(), 1u) << "both answered entries at the front are dropped";
  EXPECT_FALSE(b.lagging(t0 + 220ms, 100ms));
  EXPECT_TRUE(b.lagging(t0 + 221ms, 100ms));
  b.answered(third, t0 + 221ms);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_FALSE(b.lagging(t0 + 1h, 100ms));
}

TEST(Backlog, UnknownAndRepeatedTicketsAreIgnored) {
  backlog b;
  const auto t = b.sent(t0);
  b.answered(t + 5, t0 + 1ms);  // never issued
  EXPECT_EQ(b.size(), 1u);
  b.answered(t, t0 + 1ms);
  b.answered(t, t0 + 1ms);  // twice
  EXPECT_EQ(b.size(), 0u);
  const auto u = b.sent(t0 + 1s);
  EXPECT_EQ(u, t + 1) << "tickets keep counting after the backlog emptied";
  b.answered(t, t0 + 1s);  // an old ticket again
  EXPECT_EQ(b.size(), 1u);
  EXPECT_TRUE(b.lagging(t0 + 2s, 100ms));
}

TEST(Backlog, TheLagLimitFollowsTheObservedRoundTripWithinFloorAndCap) {
  backlog b;
  EXPECT_EQ(b.limit(100ms, 200ms), 200ms)
      << "before any answer nothing is known: only the request timeout bounds the wait";
  // A node 150 ms away (issue 10, defect 7): after its first answers the limit covers it.
  for (int k = 0; k < 5; ++k) {
    const auto sent_at = t0 + k * 1s;
    b.answered(b.sent(sent_at), sent_at + 150ms);
  }
  EXPECT_EQ(b.limit(100ms, 200ms), 200ms) << "SRTT 150 ms is above the floor; capped";
  EXPECT_GE(b.limit(100ms, 10s), 150ms) << "never below what the node has been seen to need";
  // An overlapping operation 120 ms after the first is not refused.
  const auto base = t0 + 10s;
  b.sent(base);
  EXPECT_FALSE(b.lagging(base + 120ms, b.limit(100ms, 200ms)));

  backlog near;  // a node on loopback keeps the floor
  for (int k = 0; k < 5; ++k) {
    const auto sent_at = t0 + k * 1s;
    near.answered(near.sent(sent_at), sent_at + 200us);
  }
  EXPECT_EQ(near.limit(100ms, 200ms), 100ms);
}

TEST(Backlog, AnswersThatAreNoSampleLeaveTheEstimateAlone) {
  backlog b;
  b.answered(b.sent(t0), t0 + 1ms);
  const auto before = b.limit(10ms, 1s);
  b.answered(b.sent(t0 + 1s), t0 + 1s + 900ms, /*sample=*/false);  // e.g. connection lost
  EXPECT_EQ(b.limit(10ms, 1s), before);
}

TEST(Cleanup, RetriesAFailedReleaseWithBackoffUntilConfirmed) {
  using redlock::detail::core::cleanup;
  cleanup c(3, {50ms, 400ms});
  EXPECT_TRUE(c.active());
  c.in_flight(0, t0 + 30s);
  c.due(1, t0 + 30s, t0);
  EXPECT_EQ(c.unconfirmed(t0), 2u);
  EXPECT_EQ(c.next_due(t0), 1u);
  c.sent(1);
  EXPECT_EQ(c.next_due(t0), 3u) << "nothing else due";
  // Node 0's release was lost with its connection: next try after [25, 50] ms.
  c.answered(0, cleanup::release_answer::failed, t0 + 1ms, 0);
  EXPECT_EQ(c.next_due(t0 + 1ms), 3u);
  EXPECT_EQ(c.next_wakeup(), t0 + 1ms + 25ms);
  EXPECT_EQ(c.next_due(t0 + 26ms), 0u);
  c.sent(0);
  c.answered(0, cleanup::release_answer::failed, t0 + 30ms,
             ~std::uint64_t{0});  // backoff doubled to 100 ms
  EXPECT_LE(c.next_wakeup(), t0 + 30ms + 100ms);
  EXPECT_GE(c.next_wakeup(), t0 + 30ms + 50ms);
  c.answered(1, cleanup::release_answer::absent, t0 + 2ms, 0);
  EXPECT_EQ(c.unconfirmed(t0 + 40ms), 1u);
  EXPECT_FALSE(c.settled(t0 + 40ms));
  c.sent(0);
  c.answered(0, cleanup::release_answer::released, t0 + 200ms, 0);
  EXPECT_TRUE(c.settled(t0 + 200ms));
  EXPECT_EQ(c.releases_sent(), 3u);
}

TEST(Cleanup, GivesUpOnceTheKeysHaveExpiredOrTheNodeIsAbandoned) {
  using redlock::detail::core::cleanup;
  cleanup c(2, {50ms, 1s});
  c.due(0, t0 + 100ms, t0);
  c.in_flight(1, t0 + 100ms);
  EXPECT_EQ(c.next_wakeup(), t0) << "node 0 is due now";
  c.sent(0);
  EXPECT_EQ(c.next_wakeup(), t0 + 100ms) << "in flight: only the expiry matters";
  c.answered(0, cleanup::release_answer::failed, t0 + 90ms, 0);
  EXPECT_EQ(c.next_due(t0 + 100ms), 2u) << "past `until` nothing is sent";
  EXPECT_EQ(c.unconfirmed(t0 + 100ms), 0u);
  EXPECT_TRUE(c.settled(t0 + 100ms))
      << "the keys have expired: an unanswered release no longer matters";
  cleanup d(1, {50ms, 1s});
  d.in_flight(0, t0 + 1h);
  d.abandon(0);
  EXPECT_TRUE(d.settled(t0));
}

TEST(Cleanup, AbsentIsNoProofWhileAWriteThereHasAnUnknownFate) {
  // Found by the soak: an acquire that timed out on a paused server ran after its release
  // (sent on a new connection) had answered "absent", and left the key for its TTL.
  using redlock::detail::core::cleanup;
  using ra = cleanup::release_answer;
  cleanup c(2, {50ms, 200ms});
  c.due(0, t0 + 2s, t0);
  c.due(1, t0 + 2s, t0);
  c.uncertain(0);
  c.sent(0);
  c.sent(1);
  c.answered(1, ra::absent, t0 + 1ms, 0);
  c.answered(0, ra::absent, t0 + 1ms, 0);
  EXPECT_EQ(c.unconfirmed(t0 + 1ms), 1u) << "node 0's acquire may still run";
  EXPECT_GT(c.next_wakeup(), t0 + 1ms);
  EXPECT_LE(c.next_wakeup(), t0 + 51ms);
  c.sent(0);
  c.answered(0, ra::absent, t0 + 60ms, 0);
  EXPECT_FALSE(c.settled(t0 + 60ms)) << "still absent: keep going until the keys would expire";
  c.sent(0);
  c.answered(0, ra::released, t0 + 300ms, 0);
  EXPECT_TRUE(c.settled(t0 + 300ms)) << "deleted: the late write landed and is gone";
  cleanup d(1, {50ms, 200ms});
  d.due(0, t0 + 1s, t0);
  d.uncertain(0);
  d.sent(0);
  d.answered(0, ra::absent, t0 + 999ms, 0);
  EXPECT_TRUE(d.settled(t0 + 1s)) << "bounded: past `until` the keys have expired anyway";
}

TEST(Identity, TheFirstPairOfNodesSharingAnIdentityIsADuplicate) {
  using redlock::detail::core::find_duplicate;
  EXPECT_FALSE(find_duplicate({{"run_id:a"}, {"run_id:b"}, {}}));
  EXPECT_FALSE(find_duplicate({{}, {}})) << "unknown identities never conflict";
  auto d = find_duplicate({{"run_id:a"}, {"run_id:b"}, {"run_id:a"}});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->first, 0u);
  EXPECT_EQ(d->second, 2u);
  EXPECT_EQ(d->identity, "run_id:a");
  // Two seeds of one cluster share a member id; a cluster and one of its masters a run_id.
  d = find_duplicate({{"cluster_node:x", "cluster_node:y", "run_id:m1"},
                      {"run_id:z"},
                      {"cluster_node:y", "cluster_node:x"}});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->first, 0u);
  EXPECT_EQ(d->second, 2u);
  EXPECT_FALSE(find_duplicate({{"run_id:a", "run_id:a"}}))
      << "one node never conflicts with itself";
}

}  // namespace

// ---- the inspection verdict -------------------------------------------------------------

namespace {

inspected_node holding(std::string_view v, std::optional<milliseconds> ttl) {
  inspected_node n;
  n.answered = true;
  n.holder = v;
  n.shortest_ttl = ttl;
  return n;
}

inspected_node empty_node() {
  inspected_node n;
  n.answered = true;
  n.free = true;
  return n;
}

}  // namespace

TEST(InspectionVerdict, AQuorumOfOneValueIsHeldUntilTheQuorumThLargestTtlLessDrift) {
  const std::vector<inspected_node> nodes = {holding("v", 900ms), holding("v", 800ms),
                                             holding("v", 100ms), inspected_node{}, empty_node()};
  const auto v = judge_inspection(nodes, 0.01, t0);
  EXPECT_EQ(v.status, inspection_status::held);
  EXPECT_EQ(v.holder, "v");
  EXPECT_EQ(v.holding_nodes, 3U);
  EXPECT_EQ(v.quorum, 3U);
  EXPECT_EQ(v.free_nodes, 1U);
  // quorum 3 of 5: the 3rd largest TTL (100 ms) − drift_margin(900 ms) = 100 − 11 ms
  EXPECT_EQ(v.validity_deadline, t0 + 100ms - drift_margin(900ms, 0.01));
}

TEST(InspectionVerdict, KeysWithoutExpiryOnAQuorumHoldForever) {
  const std::vector<inspected_node> nodes = {holding("v", std::nullopt), holding("v", std::nullopt),
                                             holding("v", 50ms)};
  EXPECT_EQ(judge_inspection(nodes, 0.01, t0).validity_deadline, time_point::max());
}

TEST(InspectionVerdict, SplitValuesAreIndeterminateAndAFreeQuorumIsFree) {
  const std::vector<inspected_node> split = {holding("a", 1s), holding("b", 1s), empty_node()};
  EXPECT_EQ(judge_inspection(split, 0.01, t0).status, inspection_status::indeterminate);
  const std::vector<inspected_node> free = {empty_node(), empty_node(), holding("a", 1s)};
  const auto v = judge_inspection(free, 0.01, t0);
  EXPECT_EQ(v.status, inspection_status::free);
  EXPECT_EQ(v.validity_deadline, time_point{});
  const std::vector<inspected_node> none = {inspected_node{}, inspected_node{}, empty_node()};
  EXPECT_EQ(judge_inspection(none, 0.01, t0).status, inspection_status::indeterminate);
}

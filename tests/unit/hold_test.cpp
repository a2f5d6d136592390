// The hold decisions (detail::hold_machine) driven with literal time points: extension
// timing, retries within validity, the loss signal and the hold cap.
#include <gtest/gtest.h>

#include <chrono>

#include "redlock/error.hpp"
#include "redlock/hold.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::loss_reason;
using redlock::detail::hold_machine;
using kind = hold_machine::kind;
using tp = hold_machine::time_point;

const tp t0 = tp{} + 1000s;  // an arbitrary instant of the fake clock

hold_machine::timing timing_for(std::chrono::milliseconds ttl, redlock::hold_options o = {}) {
  return hold_machine::make_timing(ttl, o);
}

// A lock acquired at t0 with a 1 s TTL and 990 ms validity; extend at half the TTL left.
hold_machine fresh(redlock::hold_options o = {}) {
  return hold_machine(timing_for(1000ms, o), t0, t0 + 990ms);
}

TEST(HoldTiming, DefaultThresholdIsHalfTheTtlAndRetryDelayATenth) {
  auto t = timing_for(1000ms);
  EXPECT_EQ(t.threshold, 500ms);
  EXPECT_EQ(t.retry_delay, 100ms);
  EXPECT_FALSE(t.max_hold.has_value());
}

TEST(HoldTiming, AutomaticRetryDelayIsClampedBetween10msAnd1s) {
  EXPECT_EQ(timing_for(50ms).retry_delay, 10ms);
  EXPECT_EQ(timing_for(60s).retry_delay, 1s);
  redlock::hold_options o;
  o.extend_retry_delay = 37ms;
  EXPECT_EQ(timing_for(60s, o).retry_delay, 37ms);
}

TEST(HoldTiming, RejectsThresholdOutsideOpenUnitIntervalAndNonPositiveDurations) {
  for (double bad : {0.0, 1.0, -0.5, 1.5}) {
    redlock::hold_options o;
    o.extend_threshold = bad;
    EXPECT_THROW(timing_for(1000ms, o), redlock::lock_error) << bad;
  }
  redlock::hold_options cap;
  cap.max_hold = 0ms;
  EXPECT_THROW(timing_for(1000ms, cap), redlock::lock_error);
  EXPECT_THROW(timing_for(0ms), redlock::lock_error);
}

TEST(HoldMachine, WaitsUntilRemainingValidityReachesTheThresholdThenExtends) {
  auto m = fresh();
  auto a = m.resume(t0);
  ASSERT_EQ(a.what, kind::wait);
  EXPECT_EQ(a.until, t0 + 490ms);  // deadline 990 ms − threshold 500 ms
  EXPECT_EQ(m.resume(t0 + 489ms).what, kind::wait);
  EXPECT_EQ(m.resume(t0 + 490ms).what, kind::extend);
  EXPECT_TRUE(m.extending());
}

TEST(HoldMachine, NeverStartsASecondExtensionWhileOneIsInFlight) {
  auto m = fresh();
  ASSERT_EQ(m.resume(t0 + 600ms).what, kind::extend);
  auto a = m.resume(t0 + 610ms);
  EXPECT_EQ(a.what, kind::wait);
  EXPECT_EQ(a.until, t0 + 990ms);  // only the deadline can end this wait
}

TEST(HoldMachine, SuccessfulExtensionMovesTheNextExtensionPoint) {
  auto m = fresh();
  ASSERT_EQ(m.resume(t0 + 490ms).what, kind::extend);
  m.on_extended(t0 + 1480ms);
  EXPECT_EQ(m.extensions(), 1);
  EXPECT_EQ(m.deadline(), t0 + 1480ms);
  auto a = m.resume(t0 + 500ms);
  ASSERT_EQ(a.what, kind::wait);
  EXPECT_EQ(a.until, t0 + 980ms);
}

TEST(HoldMachine, FailedExtensionIsRetriedAfterTheRetryDelayWhileValidityRemains) {
  auto m = fresh();
  ASSERT_EQ(m.resume(t0 + 490ms).what, kind::extend);
  m.on_extend_failed(redlock::errc::quorum_unreachable, t0 + 500ms);
  EXPECT_EQ(m.reason(), loss_reason::none);
  auto a = m.resume(t0 + 500ms);
  ASSERT_EQ(a.what, kind::wait);
  EXPECT_EQ(a.until, t0 + 600ms);
  EXPECT_EQ(m.resume(t0 + 600ms).what, kind::extend);
  m.on_extend_failed(redlock::errc::quorum_unreachable, t0 + 610ms);
  EXPECT_EQ(m.resume(t0 + 700ms).what, kind::wait);
  EXPECT_EQ(m.resume(t0 + 710ms).what, kind::extend);
  m.on_extended(t0 + 1700ms);
  EXPECT_EQ(m.reason(), loss_reason::none);
  EXPECT_FALSE(m.error());
}

TEST(HoldMachine, RetriesNeverWaitPastTheDeadline) {
  redlock::hold_options o;
  o.extend_retry_delay = 400ms;
  auto m = fresh(o);
  ASSERT_EQ(m.resume(t0 + 800ms).what, kind::extend);
  m.on_extend_failed(redlock::errc::timeout, t0 + 810ms);
  auto a = m.resume(t0 + 810ms);
  ASSERT_EQ(a.what, kind::wait);
  EXPECT_EQ(a.until, t0 + 990ms);  // the retry at 1210 ms would come after the deadline
}

TEST(HoldMachine, SignalsExpiredExactlyOnceAtTheDeadlineWhenExtensionsKeepFailing) {
  auto m = fresh();
  ASSERT_EQ(m.resume(t0 + 490ms).what, kind::extend);
  m.on_extend_failed(redlock::errc::quorum_unreachable, t0 + 495ms);
  EXPECT_EQ(m.resume(t0 + 989ms).what, kind::extend);
  auto a = m.resume(t0 + 990ms);  // still in flight at the deadline
  ASSERT_EQ(a.what, kind::signal);
  EXPECT_EQ(a.reason, loss_reason::expired);
  EXPECT_EQ(m.reason(), loss_reason::expired);
  EXPECT_EQ(m.resume(t0 + 991ms).what, kind::idle);
  EXPECT_EQ(m.resume(t0 + 5s).what, kind::idle);
}

TEST(HoldMachine, LateSuccessAfterExpiryDoesNotReviveTheHold) {
  auto m = fresh();
  ASSERT_EQ(m.resume(t0 + 490ms).what, kind::extend);
  ASSERT_EQ(m.resume(t0 + 990ms).what, kind::signal);
  m.on_extended(t0 + 1980ms);
  EXPECT_EQ(m.reason(), loss_reason::expired);
  EXPECT_EQ(m.extensions(), 0);
  EXPECT_EQ(m.deadline(), t0 + 990ms);
  EXPECT_EQ(m.resume(t0 + 1000ms).what, kind::idle);
}

TEST(HoldMachine, LockLostEndsTheHoldImmediatelyWithTheError) {
  auto m = fresh();
  ASSERT_EQ(m.resume(t0 + 490ms).what, kind::extend);
  m.on_extend_failed(redlock::errc::lock_lost, t0 + 500ms);
  auto a = m.resume(t0 + 500ms);
  ASSERT_EQ(a.what, kind::signal);
  EXPECT_EQ(a.reason, loss_reason::lost);
  EXPECT_EQ(m.error(), redlock::errc::lock_lost);
  EXPECT_EQ(m.resume(t0 + 600ms).what, kind::idle);
}

TEST(HoldMachine, ManagerClosedAndLockExpiredErrorsEndTheHold) {
  auto closed = fresh();
  ASSERT_EQ(closed.resume(t0 + 490ms).what, kind::extend);
  closed.on_extend_failed(redlock::errc::closed, t0 + 491ms);
  EXPECT_EQ(closed.resume(t0 + 491ms).reason, loss_reason::closed);

  auto expired = fresh();
  ASSERT_EQ(expired.resume(t0 + 490ms).what, kind::extend);
  expired.on_extend_failed(redlock::errc::lock_expired, t0 + 491ms);
  EXPECT_EQ(expired.resume(t0 + 491ms).reason, loss_reason::expired);
}

TEST(HoldMachine, CapSignalsMaxHoldWhileTheLockIsStillValidAndStopsExtending) {
  redlock::hold_options o;
  o.max_hold = 1200ms;
  auto m = fresh(o);
  ASSERT_EQ(m.resume(t0 + 490ms).what, kind::extend);
  m.on_extended(t0 + 1480ms);
  auto a = m.resume(t0 + 500ms);
  ASSERT_EQ(a.what, kind::wait);
  EXPECT_EQ(a.until, t0 + 980ms);
  ASSERT_EQ(m.resume(t0 + 980ms).what, kind::extend);
  m.on_extended(t0 + 1970ms);
  a = m.resume(t0 + 990ms);
  ASSERT_EQ(a.what, kind::wait);
  EXPECT_EQ(a.until, t0 + 1200ms);  // the cap comes before the next extension point
  a = m.resume(t0 + 1200ms);
  ASSERT_EQ(a.what, kind::signal);
  EXPECT_EQ(a.reason, loss_reason::max_hold);
  EXPECT_FALSE(m.error());
  EXPECT_EQ(m.resume(t0 + 1500ms).what, kind::idle);  // no extension after the cap
}

TEST(HoldMachine, CapWinsOverExpiryWhenBothHavePassed) {
  redlock::hold_options o;
  o.max_hold = 500ms;
  auto m = fresh(o);
  EXPECT_EQ(m.resume(t0 + 2s).reason, loss_reason::max_hold);
}

TEST(HoldMachine, StoppedMachineDoesNothingMore) {
  auto m = fresh();
  m.stop();
  EXPECT_EQ(m.resume(t0 + 490ms).what, kind::idle);
  EXPECT_EQ(m.resume(t0 + 5s).what, kind::idle);
  EXPECT_EQ(m.reason(), loss_reason::none);
}

TEST(HoldMachine, ExtendsAtOnceWhenAcquiredWithLessValidityThanTheThreshold) {
  auto m = hold_machine(timing_for(1000ms), t0, t0 + 300ms);
  EXPECT_EQ(m.resume(t0).what, kind::extend);
}

TEST(LossReason, HasReadableNames) {
  EXPECT_STREQ(redlock::to_string(loss_reason::none), "none");
  EXPECT_STREQ(redlock::to_string(loss_reason::lost), "lost");
  EXPECT_STREQ(redlock::to_string(loss_reason::expired), "expired");
  EXPECT_STREQ(redlock::to_string(loss_reason::max_hold), "max_hold");
  EXPECT_STREQ(redlock::to_string(loss_reason::closed), "closed");
}

}  // namespace

// detail::backoff: the node's reconnect schedule, with literal time points and a scripted
// jitter source.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "internal/backoff.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::detail::backoff;
using ms = std::chrono::milliseconds;

const backoff::time_point t0 = backoff::time_point() + std::chrono::hours(1);

// Jitter that always picks the upper (or lower) bound, recording the bounds it was given.
struct scripted_jitter {
  bool upper = true;
  std::vector<std::pair<std::int64_t, std::int64_t>>* bounds;
  std::int64_t operator()(std::int64_t lo, std::int64_t hi) const {
    bounds->emplace_back(lo, hi);
    return upper ? hi : lo;
  }
};

TEST(Backoff, DoublesFromInitialUpToMax) {
  std::vector<std::pair<std::int64_t, std::int64_t>> bounds;
  backoff b(50ms, 300ms, scripted_jitter{true, &bounds});
  EXPECT_EQ(b.fail(t0), 50ms);
  EXPECT_EQ(b.fail(t0), 100ms);
  EXPECT_EQ(b.fail(t0), 200ms);
  EXPECT_EQ(b.fail(t0), 300ms);
  EXPECT_EQ(b.fail(t0), 300ms);
  const std::vector<std::pair<std::int64_t, std::int64_t>> expected{
      {25, 50}, {50, 100}, {100, 200}, {150, 300}, {150, 300}};
  EXPECT_EQ(bounds, expected);
}

TEST(Backoff, JitterPicksWithinTheLowerHalf) {
  std::vector<std::pair<std::int64_t, std::int64_t>> bounds;
  backoff b(80ms, 1000ms, scripted_jitter{false, &bounds});
  EXPECT_EQ(b.fail(t0), 40ms);
  EXPECT_EQ(b.fail(t0), 80ms);
  EXPECT_EQ(b.current(), 160ms);
}

TEST(Backoff, AJitterSourceOutOfBoundsIsClamped) {
  backoff high(100ms, 1000ms, [](std::int64_t, std::int64_t) { return std::int64_t{1} << 40; });
  EXPECT_EQ(high.fail(t0), 100ms);
  backoff low(100ms, 1000ms, [](std::int64_t, std::int64_t) { return std::int64_t{-5}; });
  EXPECT_EQ(low.fail(t0), 50ms);
}

TEST(Backoff, WaitsUntilTheDelayHasPassed) {
  backoff b(100ms, 1000ms, [](std::int64_t, std::int64_t hi) { return hi; });
  EXPECT_FALSE(b.waiting(t0));  // never failed
  EXPECT_EQ(b.remaining(t0), 0ms);
  b.fail(t0);
  EXPECT_EQ(b.next_attempt(), t0 + 100ms);
  EXPECT_TRUE(b.waiting(t0));
  EXPECT_TRUE(b.waiting(t0 + 99ms));
  EXPECT_FALSE(b.waiting(t0 + 100ms));
  // Rounded up: a request 0.5 ms before the end is told "1 ms", never "0 ms".
  EXPECT_EQ(b.remaining(t0 + 99500us), 1ms);
  EXPECT_EQ(b.remaining(t0 + 40ms), 60ms);
  EXPECT_EQ(b.remaining(t0 + 150ms), 0ms);
}

TEST(Backoff, ResetStartsOverFromInitial) {
  backoff b(50ms, 2000ms, [](std::int64_t, std::int64_t hi) { return hi; });
  b.fail(t0);
  b.fail(t0);
  EXPECT_EQ(b.fail(t0), 200ms);
  b.reset();
  EXPECT_EQ(b.current(), 0ms);
  EXPECT_EQ(b.fail(t0 + 1s), 50ms);
  EXPECT_EQ(b.next_attempt(), t0 + 1s + 50ms);
}

TEST(Backoff, TheDefaultJitterStaysWithinBounds) {
  backoff b(64ms, 64ms);
  for (int i = 0; i < 200; ++i) {
    const ms d = b.fail(t0);
    EXPECT_GE(d, 32ms);
    EXPECT_LE(d, 64ms);
  }
}

}  // namespace

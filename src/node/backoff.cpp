#include "internal/backoff.hpp"

#include <algorithm>
#include <memory>
#include <random>
#include <utility>

namespace redlock::detail {

namespace {

backoff::jitter_source default_jitter() {
  // Shared by copies of the source; a backoff is used on one strand only.
  auto rng = std::make_shared<std::minstd_rand>(std::random_device{}());
  return [rng](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(*rng);
  };
}

}  // namespace

backoff::backoff(duration initial, duration max) : backoff(initial, max, default_jitter()) {}

backoff::backoff(duration initial, duration max, jitter_source jitter)
    : initial_(initial), max_(max), jitter_(std::move(jitter)) {}

backoff::duration backoff::fail(time_point now) {
  current_ = current_.count() == 0 ? initial_ : std::min(current_ * 2, max_);
  const std::int64_t lo = current_.count() / 2;
  const std::int64_t hi = std::max<std::int64_t>(lo, current_.count());
  // A jitter source outside [lo, hi] is clamped: the schedule stays within its bounds.
  const duration delay(std::clamp(jitter_(lo, hi), lo, hi));
  next_attempt_ = now + delay;
  return delay;
}

backoff::duration backoff::remaining(time_point now) const noexcept {
  if (now >= next_attempt_)
    return duration(0);
  return std::chrono::ceil<duration>(next_attempt_ - now);
}

}  // namespace redlock::detail

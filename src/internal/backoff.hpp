// Private: the reconnect backoff of a node, with no I/O. Time is an input and the jitter
// source is injectable, so the schedule is unit-tested with literal time points.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace redlock::detail {

/// Capped exponential backoff with jitter. Each failure doubles the backoff from `initial`
/// up to `max` (the first failure uses `initial`); the delay before the next attempt is drawn
/// uniformly from [backoff/2, backoff] by the jitter source. reset() starts over (the server
/// has answered). Distinct objects: safe. Shared objects: unsafe.
class backoff {
 public:
  using clock_type = std::chrono::steady_clock;
  using time_point = clock_type::time_point;
  using duration = std::chrono::milliseconds;
  /// Returns a value in [lo, hi] (both in milliseconds, lo <= hi).
  using jitter_source = std::function<std::int64_t(std::int64_t lo, std::int64_t hi)>;

  /// Jitter from a std::minstd_rand seeded by std::random_device.
  backoff(duration initial, duration max);
  backoff(duration initial, duration max, jitter_source jitter);

  /// Records a failure at `now`: returns the delay until the next attempt may start.
  duration fail(time_point now);
  /// The server answered: the next failure starts from `initial` again.
  void reset() noexcept { current_ = duration(0); }
  /// Another server (a failover's new master): an attempt may start at once, and the next
  /// failure starts from `initial`.
  void restart() noexcept {
    current_ = duration(0);
    next_attempt_ = time_point{};
  }

  /// True while no new attempt may start.
  bool waiting(time_point now) const noexcept { return now < next_attempt_; }
  /// Time left until the next attempt may start, rounded up to whole milliseconds (zero
  /// when an attempt may start now).
  duration remaining(time_point now) const noexcept;
  /// The current backoff before jitter (zero after reset()).
  duration current() const noexcept { return current_; }
  time_point next_attempt() const noexcept { return next_attempt_; }

 private:
  duration initial_;
  duration max_;
  jitter_source jitter_;
  duration current_{0};
  time_point next_attempt_{};
};

}  // namespace redlock::detail

// The sans-I/O decisions of a hold (private: the holding layer drives it, tests step it).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <system_error>

#include "redlock/hold_options.hpp"

namespace redlock::detail {

using steady_clock = std::chrono::steady_clock;

/// The sans-I/O decisions of a hold. Feed it events with the current time; resume(now)
/// says what to do next. No clock is read inside, so tests drive it with literal instants.
class extension_machine {
 public:
  using time_point = steady_clock::time_point;
  using duration = steady_clock::duration;

  struct timing {
    duration ttl{};                    ///< TTL used for each extension
    duration threshold{};              ///< extend when deadline - now <= threshold
    duration retry_delay{};            ///< pause after a failed extension round
    std::optional<duration> max_hold;  ///< cap, counted from `acquired_at`
  };
  /// Derives the timing from options (auto retry delay, threshold = ttl × fraction).
  static timing make_timing(std::chrono::milliseconds ttl, const hold_options& o);

  /// What the driver must do now (spelled like core::action: `kind` of `action::type`).
  struct action {
    enum class type : std::uint8_t {
      wait,    ///< nothing to do until `until` (or until the next event)
      extend,  ///< start one extension round now; report on_extended / on_extend_failed
      signal,  ///< tell the routine: the hold ended for `reason` (returned exactly once)
      idle,    ///< nothing more will happen (signalled or stopped)
    };
    type kind = type::idle;
    time_point until{};
    loss_reason reason = loss_reason::none;
  };

  extension_machine(timing t, time_point acquired_at, time_point deadline);

  action resume(time_point now);
  /// An extension round succeeded; the lock is now valid until `new_deadline`.
  void on_extended(time_point new_deadline);
  /// An extension round failed with `ec`. lock_lost / lock_expired / closed end the hold at
  /// the next resume; anything else is retried after retry_delay while validity remains.
  void on_extend_failed(std::error_code ec, time_point now);
  /// The routine is done (release follows): no more extensions or signals.
  void stop() noexcept { stopped_ = true; }

  bool extending() const noexcept { return in_flight_; }
  loss_reason reason() const noexcept { return reason_; }
  std::error_code error() const noexcept { return error_; }
  int extensions() const noexcept { return extensions_; }
  time_point deadline() const noexcept { return deadline_; }
  const timing& get_timing() const noexcept { return timing_; }

 private:
  void end(loss_reason r) noexcept;
  timing timing_;
  time_point acquired_at_;
  time_point deadline_;
  time_point retry_at_{};
  bool in_flight_ = false;
  bool stopped_ = false;
  bool signalled_ = false;
  loss_reason reason_ = loss_reason::none;
  std::error_code error_;
  int extensions_ = 0;
};

}  // namespace redlock::detail

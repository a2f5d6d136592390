// How a hold is kept alive and why it can end: no Asio here, so the sans-I/O hold decisions
// (src/internal/extension_machine.hpp) and the CLI's option parsing can use it.
#pragma once

#include <chrono>
#include <optional>

#include "redlock/options.hpp"

namespace redlock {

/// Why a hold stopped being a guaranteed hold.
enum class loss_reason {
  none,      ///< held throughout (so far)
  lost,      ///< an extension found our value on fewer than a quorum of nodes (errc::lock_lost):
             ///< the keys expired or were deleted, and someone else may hold them now
  expired,   ///< the validity deadline passed before an extension succeeded (nodes down,
             ///< unreachable or too slow); mutual exclusion is no longer guaranteed
  max_hold,  ///< hold_options::max_hold was reached: extension stopped on purpose; the lock
             ///< stays valid until its current deadline, then ends
  closed,    ///< the lock manager was closed (quit) while holding
};

/// "none", "lost", "expired", "max_hold", "closed".
const char* to_string(loss_reason r) noexcept;

/// How a hold is kept alive. Plain aggregate; defaults documented at each field.
struct hold_options {
  /// Extend when the remaining validity drops to this fraction of the TTL; in (0, 1).
  /// Default 0.5: one extension round per half TTL, and a failing extension has half the
  /// TTL to be retried (a node restart, a short partition) before the lock can be lost.
  /// Lower values send fewer requests but leave less room for retries; node-redlock's
  /// fixed 500 ms leaves almost none with long TTLs, Redisson extends at 2/3 left.
  double extend_threshold = 0.5;
  /// Pause between failed extension rounds. Each round is one request to every node
  /// (bounded by manager_options::request_timeout); rounds stop when validity runs out.
  /// 0 (default) = ttl / 10, clamped to [10 ms, 1 s].
  std::chrono::milliseconds extend_retry_delay{0};
  /// Cap on the total hold time, counted from acquisition. When reached the routine is
  /// signalled (loss_reason::max_hold) and extension stops; if the routine does not return,
  /// the lock ends at most one TTL later by itself. nullopt (default) = no cap.
  std::optional<std::chrono::milliseconds> max_hold;
  /// Retry options of the initial acquire in async_hold / hold (how long to wait for the
  /// resources). Unset fields use the manager's settings.
  call_options locking;
};

}  // namespace redlock

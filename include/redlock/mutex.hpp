// distributed_mutex: a std Lockable adapter, extended automatically while held.
#pragma once

#include <chrono>
#include <concepts>
#include <functional>
#include <memory>
#include <mutex>  // std::scoped_lock, std::unique_lock: what this adapter is for
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <vector>

#include <asio/async_result.hpp>

#include "redlock/blocking.hpp"
#include "redlock/detail/unique_function.hpp"
#include "redlock/hold.hpp"
#include "redlock/lock_manager.hpp"

namespace redlock {

/// Options of a distributed_mutex. Plain aggregate; defaults at each field.
struct mutex_options {
  /// TTL of each acquisition and extension. Default 10 s: a crashed holder blocks others
  /// for at most about this long.
  std::chrono::milliseconds ttl{10000};
  /// Retries of lock() while the resource is held elsewhere (manager's retry_delay ±
  /// jitter apart). nullopt (default) = the manager's manager_options::retry_count; -1 = until
  /// acquired. When exhausted, lock() throws lock_error(errc::resource_locked).
  std::optional<int> lock_retry_count;
  /// Extension timing and optional cap while held (hold_options::locking is ignored).
  hold_options hold;
  /// Called (on the manager's thread, must not block) when a held lock is lost, expires or
  /// reaches the cap. The mutex stays "locked" locally until unlock().
  std::function<void(loss_reason, std::error_code)> on_loss;
};

namespace detail {
/// The longest wait the timed calls of distributed_mutex honour; longer ones (up to
/// duration::max()) are cut to it. Far beyond any real wait, and small enough that the steady
/// clock's now() plus it cannot overflow.
inline constexpr std::chrono::hours max_mutex_wait{24 * 365 * 100};

/// `d` as a steady-clock budget: rounded up, zero for negative (or NaN) durations, at most
/// max_mutex_wait. Compared in floating point first, so that no duration type overflows.
template <class Rep, class Period>
std::chrono::steady_clock::duration mutex_wait_budget(const std::chrono::duration<Rep, Period>& d) {
  using seconds_f = std::chrono::duration<double>;
  const seconds_f f = std::chrono::duration_cast<seconds_f>(d);
  if (!(f > seconds_f::zero()))
    return std::chrono::steady_clock::duration::zero();
  if (f >= seconds_f(max_mutex_wait))
    return max_mutex_wait;
  return std::chrono::ceil<std::chrono::steady_clock::duration>(d);
}
}  // namespace detail

/// A distributed lock on `resources` meeting the standard TimedLockable requirements (as
/// std::timed_mutex), for std::unique_lock, std::scoped_lock and std::lock_guard:
///
///     redlock::distributed_mutex m(manager, "orders:42");
///     { std::scoped_lock g(m); ... }  // acquired, extended in the background, released
///     std::unique_lock lk(m, 200ms);  // waits at most 200 ms; check lk.owns_lock()
///
/// Ownership is per object, not per thread (like std::mutex, but unlock() may come from a
/// different thread than lock()). Threads of this process that share one object queue
/// locally (only one of them contends on the network); separate objects (or processes)
/// exclude each other through the servers.
///
/// While held the lock is extended on the blocking manager's io thread (see hold_options).
/// Losing it cannot interrupt the critical section: check lost() / loss_token() or set
/// mutex_options::on_loss. The guarantees and assumptions are those of any Redlock hold.
///
/// Thread safety: distinct objects safe; shared objects safe (lock/try_lock/unlock and the
/// observers may be called from any thread, except the manager's own io thread). The
/// manager must outlive the mutex.
class distributed_mutex {
 public:
  distributed_mutex(blocking_lock_manager& m, std::string resource, mutex_options opts = {});
  distributed_mutex(blocking_lock_manager& m, std::vector<std::string> resources,
                    mutex_options opts = {});
  /// Precondition (like std::mutex): not locked. If it still is, extension stops and the
  /// lock is released in the background. Never throws or blocks.
  ~distributed_mutex();
  distributed_mutex(const distributed_mutex&) = delete;
  distributed_mutex& operator=(const distributed_mutex&) = delete;

  /// Blocks until acquired: first behind other local users of this object, then retrying on
  /// the servers (mutex_options::lock_retry_count). Throws lock_error when the retries are
  /// exhausted (resource_locked) or on real failures (quorum_unreachable, closed...).
  void lock();
  /// One attempt without waiting: false when another local user or another owner holds it.
  /// Throws lock_error on real failures (quorum_unreachable, closed...).
  bool try_lock();
  /// Waits at most `rel_time` for the lock (as std::timed_mutex::try_lock_for): first behind
  /// other local users of this object, then on the servers as one lock call whose total
  /// wait budget (call_options::max_wait) is what is left of `rel_time`, so that a release
  /// announced by the holder wakes it (manager_options::wakeup) instead of it waiting for
  /// its next retry. mutex_options::lock_retry_count does not apply: the time bounds the
  /// attempts. rel_time <= 0: one attempt, as try_lock(). Returns false when the time ran
  /// out with the lock held by another local user or another owner. Throws lock_error on
  /// real failures (the last attempt's error: quorum_unreachable, validity_exhausted,
  /// closed...), as try_lock(). An attempt that started in time may end up to one request
  /// timeout after `rel_time`.
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& rel_time) {
    return try_lock_within(detail::mutex_wait_budget(rel_time));
  }
  /// As try_lock_for(abs_time - Clock::now()): a time point of any clock is turned into a
  /// steady budget at the call (later adjustments of a wall clock do not move it). A
  /// deadline already past: one attempt, as try_lock().
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& abs_time) {
    // In floating point: a far time point (time_point::max()) minus now must not overflow.
    using seconds_f = std::chrono::duration<double>;
    const auto now = Clock::now();
    return try_lock_for(std::chrono::duration_cast<seconds_f>(abs_time.time_since_epoch()) -
                        std::chrono::duration_cast<seconds_f>(now.time_since_epoch()));
  }
  /// Stops extending and releases. Returns without waiting for the network; the next local
  /// lock()/try_lock() on this object waits until the release has finished. Never throws:
  /// a failed release is reported to the manager's node-error hook (node_error::node empty,
  /// message naming the resources). Calling it when not locked does nothing.
  void unlock() noexcept;

  /// While locked: true once the lock was lost, expired or reached the cap.
  bool lost() const noexcept;
  /// While locked: requested when lost(); a fresh token per acquisition.
  std::stop_token loss_token() const noexcept;
  /// While locked: the current (extended) handle; empty otherwise.
  redlock::lock current_lock() const;
  const std::vector<std::string>& resources() const noexcept;

 private:
  /// try_lock_for's work once the time is a steady budget (>= 0).
  bool try_lock_within(std::chrono::steady_clock::duration budget);

  struct state;
  std::shared_ptr<state> state_;
};

namespace detail {
/// The standard's TimedLockable requirements (those std::unique_lock's timed constructors
/// and members use), for a steady and a wall clock.
template <class M>
concept timed_lockable = requires(M& m, std::chrono::milliseconds d,
                                  std::chrono::steady_clock::time_point t,
                                  std::chrono::system_clock::time_point w) {
  m.lock();
  m.unlock();
  { m.try_lock() } -> std::convertible_to<bool>;
  { m.try_lock_for(d) } -> std::convertible_to<bool>;
  { m.try_lock_until(t) } -> std::convertible_to<bool>;
  { m.try_lock_until(w) } -> std::convertible_to<bool>;
};
}  // namespace detail
static_assert(detail::timed_lockable<distributed_mutex>);

}  // namespace redlock

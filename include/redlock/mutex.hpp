// distributed_mutex: a std Lockable adapter, extended automatically while held.
#pragma once

#include <chrono>
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

/// A distributed lock on `resources` meeting the standard Lockable requirements, for
/// std::unique_lock, std::scoped_lock and std::lock_guard:
///
///     redlock::distributed_mutex m(manager, "orders:42");
///     { std::scoped_lock g(m); ... }  // acquired, extended in the background, released
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
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace redlock

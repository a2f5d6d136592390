// A blocking facade over lock_manager for programs without an event loop.
#pragma once

#include <chrono>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "redlock/lock_manager.hpp"

namespace redlock {

/// Owns a background io_context thread and a lock_manager on it; every call blocks until
/// its operation completes. Throwing overloads throw lock_error whose what() includes the
/// per-node report; the error_code overloads never throw for operation failures.
/// Thread safety: distinct objects safe; shared objects safe (calls may come from many
/// threads at once). Do not call from a handler running on this object's own thread.
class blocking_lock_manager {
 public:
  explicit blocking_lock_manager(const std::vector<std::string>& urls, manager_options s = {});
  /// As above, for a braced list of URLs: `blocking_lock_manager({"redis://a", "redis://b"})`.
  /// (Without it two URLs are ambiguous: std::vector's two-iterator constructor makes both
  /// vector overloads viable.)
  explicit blocking_lock_manager(std::initializer_list<std::string_view> urls,
                                 manager_options s = {})
      : blocking_lock_manager(std::vector<std::string>(urls.begin(), urls.end()), s) {}
  explicit blocking_lock_manager(std::vector<std::shared_ptr<node>> nodes, manager_options s = {});
  /// Quits (waiting for operations in flight) and joins the thread. Never throws.
  ~blocking_lock_manager();

  blocking_lock_manager(const blocking_lock_manager&) = delete;
  blocking_lock_manager& operator=(const blocking_lock_manager&) = delete;

  // `redlock::lock` is spelled out below: inside this class the member lock() hides the type.

  /// Acquires all `resources` for `ttl`, retrying per the manager's settings and `opts`
  /// (see lock_manager::async_lock). Throws lock_error (what() includes the report).
  redlock::lock lock(const std::vector<std::string>& resources, std::chrono::milliseconds ttl,
                     call_options opts = {});
  /// As above; failures set `ec` and return an empty handle that carries the report.
  redlock::lock lock(const std::vector<std::string>& resources, std::chrono::milliseconds ttl,
                     call_options opts, std::error_code& ec);
  /// One attempt, no retries (see lock_manager::async_try_lock): another owner holding a
  /// resource returns a handle with acquired() == false; throws lock_error only for real
  /// failures (quorum_unreachable, validity_exhausted, invalid_argument, closed).
  redlock::lock try_lock(const std::vector<std::string>& resources, std::chrono::milliseconds ttl);
  /// As above; real failures set `ec`.
  redlock::lock try_lock(const std::vector<std::string>& resources, std::chrono::milliseconds ttl,
                         std::error_code& ec);
  /// See lock_manager::async_extend. Throws lock_error.
  redlock::lock extend(const redlock::lock& l, std::chrono::milliseconds ttl,
                       call_options opts = {});
  redlock::lock extend(const redlock::lock& l, std::chrono::milliseconds ttl, call_options opts,
                       std::error_code& ec);
  /// See lock_manager::async_unlock. Throws lock_error.
  unlock_result unlock(const redlock::lock& l, call_options opts = {});
  unlock_result unlock(const redlock::lock& l, call_options opts, std::error_code& ec);
  /// Waits for operations in flight and closes the connections. Idempotent.
  void quit();

  /// The asynchronous manager underneath, for mixing styles.
  lock_manager& async() noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace redlock

// A blocking facade over lock_manager for programs without an event loop.
#pragma once

#include <chrono>
#include <memory>
#include <string>
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
  explicit blocking_lock_manager(const std::vector<std::string>& urls, settings s = {});
  explicit blocking_lock_manager(std::vector<std::shared_ptr<node>> nodes, settings s = {});
  /// Quits (waiting for operations in flight) and joins the thread. Never throws.
  ~blocking_lock_manager();

  blocking_lock_manager(const blocking_lock_manager&) = delete;
  blocking_lock_manager& operator=(const blocking_lock_manager&) = delete;

  lock acquire(const std::vector<std::string>& resources, std::chrono::milliseconds ttl,
               call_options opts = {});
  lock acquire(const std::vector<std::string>& resources, std::chrono::milliseconds ttl,
               call_options opts, std::error_code& ec);
  lock extend(const lock& l, std::chrono::milliseconds ttl, call_options opts = {});
  lock extend(const lock& l, std::chrono::milliseconds ttl, call_options opts, std::error_code& ec);
  unlock_result unlock(const lock& l, call_options opts = {});
  unlock_result unlock(const lock& l, call_options opts, std::error_code& ec);
  /// Waits for operations in flight and closes the connections. Idempotent.
  void quit();

  /// The asynchronous manager underneath, for mixing styles.
  lock_manager& async() noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace redlock

// The Redlock lock manager and the lock handle.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>

#include "redlock/detail/manager_impl.hpp"
#include "redlock/error.hpp"
#include "redlock/node.hpp"
#include "redlock/options.hpp"
#include "redlock/report.hpp"

namespace redlock {

using steady_clock = std::chrono::steady_clock;

/// Told about every node-level failure (error reply, timeout, connection problem) as it
/// happens, like node-redlock's `clientError` event.
struct node_error {
  std::string node;  ///< the node's id(), never with a password
  std::error_code ec;
  std::string message;  ///< server message or a description of the failure
};

/// A held lock (or, after a failed operation, an empty one that still carries the report).
/// A value type: copies refer to the same distributed lock. Holding a `lock` object does not
/// keep anything alive on the servers; the lock ends at its validity deadline unless extended.
/// It does not keep its manager alive either: a handle (and its report) may be kept, read and
/// destroyed anywhere, also after its manager and io_context are gone; async_unlock and
/// async_extend on it then complete with errc::closed.
/// Distinct objects: safe. Shared objects: safe for const use.
class lock {
 public:
  lock() = default;

  /// True when this handle came from a successful lock or extend.
  bool acquired() const noexcept { return !value_.empty(); }
  explicit operator bool() const noexcept { return acquired(); }

  const std::vector<std::string>& resources() const noexcept { return resources_; }
  /// The random value stored under every key (32 lowercase hex characters).
  const std::string& value() const noexcept { return value_; }
  std::chrono::milliseconds ttl() const noexcept { return ttl_; }
  /// Steady-clock instant until which the lock is guaranteed (under the documented
  /// assumptions) to be ours.
  steady_clock::time_point validity_deadline() const noexcept { return deadline_; }
  /// Time left until the validity deadline (negative once expired). No network.
  steady_clock::duration remaining(
      steady_clock::time_point now = steady_clock::now()) const noexcept {
    return deadline_ - now;
  }
  bool expired(steady_clock::time_point now = steady_clock::now()) const noexcept {
    return !acquired() || now >= deadline_;
  }
  /// Attempts used by the operation that produced this handle.
  int attempts() const noexcept { return report_.attempts; }
  const redlock::report& report() const noexcept { return report_; }

  /// Releases the lock through its manager. Completion: void(std::error_code, unlock_result).
  template <class CompletionToken>
  auto async_unlock(CompletionToken&& token) const;
  /// Extends the lock to `ttl` from now through its manager.
  /// Completion: void(std::error_code, lock).
  template <class CompletionToken>
  auto async_extend(std::chrono::milliseconds ttl, CompletionToken&& token) const;

  // Used by the implementation to build handles.
  struct parts {
    std::shared_ptr<detail::manager_impl> manager;
    std::vector<std::string> resources;
    std::string value;
    std::chrono::milliseconds ttl{0};
    steady_clock::time_point deadline{};
    redlock::report report;
    /// Bit i set: an acquire of this value was sent to node i at some point, so only those
    /// nodes can hold it and need a release (extend re-syncs only these nodes, so the set
    /// never grows after the acquire). Nodes from index 64 on always count as written; the
    /// default (all set) is right for handles of unknown history (adopt()).
    std::uint64_t written = ~std::uint64_t{0};
    /// Bit i set: a write of this value to node i has an unknown fate (it timed out, was lost
    /// with its connection, or had not been answered when the lock was granted), so it may
    /// still run there later; an unlock then keeps releasing on node i until a release
    /// deletes the keys or the lock's validity (plus drift) has passed, "absent" being no
    /// proof. Nodes from index 64 on are not tracked.
    std::uint64_t uncertain = 0;
  };
  explicit lock(parts p)
      : manager_(std::move(p.manager)),
        resources_(std::move(p.resources)),
        value_(std::move(p.value)),
        ttl_(p.ttl),
        deadline_(p.deadline),
        report_(std::move(p.report)),
        written_(p.written),
        uncertain_(p.uncertain) {}
  /// The manager that made this handle, or null once it is gone (or for an empty handle).
  std::shared_ptr<detail::manager_impl> manager() const noexcept { return manager_.lock(); }
  std::uint64_t written_nodes() const noexcept { return written_; }
  std::uint64_t uncertain_nodes() const noexcept { return uncertain_; }

 private:
  // Weak: a handle kept after its manager (and the io_context the manager's strand, timers
  // and nodes belong to) was destroyed must not be what destroys them.
  std::weak_ptr<detail::manager_impl> manager_;
  std::vector<std::string> resources_;
  std::string value_;
  std::chrono::milliseconds ttl_{0};
  steady_clock::time_point deadline_{};
  redlock::report report_;
  std::uint64_t written_ = ~std::uint64_t{0};
  std::uint64_t uncertain_ = 0;
};

/// Result of an unlock: how many nodes no longer hold our value. The counts cover the answers
/// received by the time the outcome was decided (a quorum is enough; slower nodes still get
/// the release, their answers are not waited for).
struct unlock_result {
  std::size_t released = 0;  ///< nodes where our value was deleted by this call
  std::size_t absent = 0;    ///< nodes that answered but no longer had our value
  std::size_t nodes = 0;     ///< nodes in the manager
  redlock::report report;
};

class lock_manager;
namespace detail {
const std::shared_ptr<manager_impl>& impl_of(const lock_manager& m) noexcept;
}  // namespace detail

/// The Redlock lock manager over N independent nodes (quorum N/2 + 1).
///
/// Every operation is an Asio initiating function: `async_<verb>(..., token)` works with
/// callbacks, asio::use_future and asio::use_awaitable. Handlers run on their associated
/// executor (default: the manager's), never from inside the initiating call.
/// Thread safety: distinct objects safe; shared objects safe (operations may be started
/// from any thread).
class lock_manager {
 public:
  using executor_type = asio::any_io_executor;

  /// Builds redis_nodes from URLs (see parse_endpoint). Throws lock_error with
  /// errc::invalid_url (message says which URL and why) or errc::invalid_argument (no
  /// servers, the same server twice, bad settings).
  lock_manager(executor_type ex, const std::vector<std::string>& urls, manager_options s = {});
  /// Uses the given nodes. Throws lock_error(errc::invalid_argument) for none, duplicates
  /// (same object or same id()) or bad settings.
  lock_manager(executor_type ex, std::vector<std::shared_ptr<node>> nodes, manager_options s = {});
  /// Closes the nodes without waiting. Never throws or blocks.
  ~lock_manager();

  lock_manager(const lock_manager&) = delete;
  lock_manager& operator=(const lock_manager&) = delete;
  lock_manager(lock_manager&&) noexcept = default;
  /// Closes this manager's nodes without waiting (as the destructor does), then takes over
  /// `other`'s.
  lock_manager& operator=(lock_manager&& other) noexcept;

  executor_type get_executor() const noexcept { return detail::executor_of(*impl_); }
  std::size_t size() const noexcept;
  std::size_t quorum() const noexcept;
  const redlock::manager_options& options() const noexcept;

  /// Rebuilds a handle for a lock acquired elsewhere (another process, an earlier run of this
  /// one) from its resources and value, so that it can be extended or released here. No
  /// network. The local validity is unknown to this process, so the caller states it:
  /// `deadline` should come from evidence (e.g. async_inspect's conservative validity
  /// deadline); extend refuses once it has passed, and release deletes only `value`.
  /// Returns an empty handle (acquired() == false) when resources or value are empty.
  lock adopt(std::vector<std::string> resources, std::string value, std::chrono::milliseconds ttl,
             steady_clock::time_point deadline) const {
    if (resources.empty() || value.empty())
      return lock{};
    lock::parts p;
    p.manager = impl_;
    p.resources = std::move(resources);
    p.value = std::move(value);
    p.ttl = ttl;
    p.deadline = deadline;
    p.report.quorum = quorum();
    return lock(std::move(p));
  }

  /// Called for every node error (per request: a node that is down answers every request of
  /// every operation with an error, so this can fire hundreds of times a second). Every call,
  /// also those from inspection and distributed_mutex, runs on the manager's strand, so calls
  /// never overlap. Set it before the first operation. The hook must not throw or block.
  void on_node_error(std::function<void(const node_error&)> hook);

  /// Acquires all `resources` (atomically per node) for `ttl`.
  /// Completion: void(std::error_code, lock). Errors: resource_locked, quorum_unreachable,
  /// validity_exhausted, invalid_argument, closed, cancelled. The lock carries the report
  /// in both cases.
  /// Cancellation (the handler's associated slot): terminal, partial and total all stop the
  /// operation, release anything taken on every node and complete with errc::cancelled.
  template <class CompletionToken>
  auto async_lock(std::vector<std::string> resources, std::chrono::milliseconds ttl,
                  call_options opts, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, lock)>(
        [m = impl_](auto handler, std::vector<std::string> r, std::chrono::milliseconds t,
                    call_options o) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          detail::start_lock(
              m, std::move(r), t, o, slot,
              detail::bind_cancellable_handler<decltype(handler), std::error_code, lock>(
                  std::move(handler), slot, detail::fallback_executor(m.get())));
        },
        token, std::move(resources), ttl, opts);
  }
  template <class CompletionToken>
  auto async_lock(std::vector<std::string> resources, std::chrono::milliseconds ttl,
                  CompletionToken&& token) {
    return async_lock(std::move(resources), ttl, call_options{},
                      std::forward<CompletionToken>(token));
  }
  /// One resource. (A template so that a braced list like {"a"} picks the vector overload.)
  template <class String, class CompletionToken>
  requires std::is_convertible_v<String&&, std::string_view>
  auto async_lock(String&& resource, std::chrono::milliseconds ttl, CompletionToken&& token) {
    std::vector<std::string> r;
    r.emplace_back(std::string_view(resource));
    return async_lock(std::move(r), ttl, call_options{}, std::forward<CompletionToken>(token));
  }

  /// One attempt (no retries). Another owner holding a resource is a normal outcome: the
  /// completion then has an empty error code and a lock with acquired() == false (its report()
  /// says which nodes denied).
  /// Completion: void(std::error_code, lock). Errors (real failures only): quorum_unreachable,
  /// validity_exhausted, invalid_argument, closed. Cancellation: none (one attempt, bounded by
  /// request_timeout).
  template <class CompletionToken>
  auto async_try_lock(std::vector<std::string> resources, std::chrono::milliseconds ttl,
                      CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, lock)>(
        [m = impl_](auto handler, std::vector<std::string> r, std::chrono::milliseconds t) {
          detail::start_try_lock(m, std::move(r), t,
                                 detail::bind_handler<decltype(handler), std::error_code, lock>(
                                     std::move(handler), detail::fallback_executor(m.get())));
        },
        token, std::move(resources), ttl);
  }

  /// Extends `l` so that it expires `ttl` from now (a `ttl` shorter than the time left
  /// shortens the lock: the keys' TTL is reset to `ttl`). Only while the lock's local validity
  /// remains (else lock_expired at once, nothing sent); only where our value is still
  /// present; never deletes anything. The new validity counts from the extend's start.
  /// Retries (per the retry settings) only while the old validity remains. When a quorum
  /// extended, nodes that lost our keys (e.g. restarted) get them set again, only if absent,
  /// while the new validity remains; an expired lock is never recreated.
  /// Completion: void(std::error_code, lock) with the new validity deadline; on failure an
  /// empty handle carrying the report.
  /// Errors: lock_expired, lock_lost (too many nodes deny), quorum_unreachable,
  /// validity_exhausted, invalid_argument, closed.
  template <class CompletionToken>
  auto async_extend(const lock& l, std::chrono::milliseconds ttl, call_options opts,
                    CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, lock)>(
        [m = impl_](auto handler, lock l2, std::chrono::milliseconds t, call_options o) {
          detail::start_extend(m, l2, t, o,
                               detail::bind_handler<decltype(handler), std::error_code, lock>(
                                   std::move(handler), detail::executor_of(*m)));
        },
        token, l, ttl, opts);
  }
  template <class CompletionToken>
  auto async_extend(const lock& l, std::chrono::milliseconds ttl, CompletionToken&& token) {
    return async_extend(l, ttl, call_options{}, std::forward<CompletionToken>(token));
  }

  /// Deletes our value on every node (only where it is ours).
  /// Completion: void(std::error_code, unlock_result). Succeeds when a quorum no longer
  /// holds our value. Retries ask only the nodes that failed, while the lock is still valid.
  /// An already expired lock completes promptly with errc::lock_expired after one
  /// best-effort release round, whatever the retry count. Errors: quorum_unreachable,
  /// lock_expired, invalid_argument (empty handle), closed.
  template <class CompletionToken>
  auto async_unlock(const lock& l, call_options opts, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, unlock_result)>(
        [m = impl_](auto handler, lock l2, call_options o) {
          detail::start_unlock(
              m, l2, o,
              detail::bind_handler<decltype(handler), std::error_code, unlock_result>(
                  std::move(handler), detail::executor_of(*m)));
        },
        token, l, opts);
  }
  template <class CompletionToken>
  auto async_unlock(const lock& l, CompletionToken&& token) {
    return async_unlock(l, call_options{}, std::forward<CompletionToken>(token));
  }

  /// Stops accepting operations, waits for those in flight, and for their cleanup (releases
  /// being retried after a failure, cancel or unlock) for at most manager_options::quit_timeout,
  /// then closes every node. Later operations fail with errc::closed. Completion:
  /// void(std::error_code): success when every cleanup settled; errc::timeout when the bound passed
  /// with releases still unconfirmed (those keys expire with their TTL).
  template <class CompletionToken>
  auto async_quit(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [m = impl_](auto handler) {
          detail::start_quit(m, detail::bind_handler<decltype(handler), std::error_code>(
                                    std::move(handler), detail::executor_of(*m)));
        },
        token);
  }

 private:
  friend const std::shared_ptr<detail::manager_impl>& detail::impl_of(
      const lock_manager& m) noexcept;
  std::shared_ptr<detail::manager_impl> impl_;
};

namespace detail {
/// The core of a manager, for operations built outside it (inspection, holding).
inline const std::shared_ptr<manager_impl>& impl_of(const lock_manager& m) noexcept {
  return m.impl_;
}
}  // namespace detail

template <class CompletionToken>
auto lock::async_unlock(CompletionToken&& token) const {
  return asio::async_initiate<CompletionToken, void(std::error_code, unlock_result)>(
      [](auto handler, lock l) {
        auto m = l.manager();  // null: invalid_argument (empty handle) or closed (manager gone)
        detail::start_unlock(
            m, l, call_options{},
            detail::bind_handler<decltype(handler), std::error_code, unlock_result>(
                std::move(handler), detail::fallback_executor(m.get())));
      },
      token, *this);
}

template <class CompletionToken>
auto lock::async_extend(std::chrono::milliseconds ttl, CompletionToken&& token) const {
  return asio::async_initiate<CompletionToken, void(std::error_code, lock)>(
      [](auto handler, lock l, std::chrono::milliseconds t) {
        auto m = l.manager();  // null: invalid_argument (empty handle) or closed (manager gone)
        detail::start_extend(m, l, t, call_options{},
                             detail::bind_handler<decltype(handler), std::error_code, lock>(
                                 std::move(handler), detail::fallback_executor(m.get())));
      },
      token, *this, ttl);
}

}  // namespace redlock

// The Redlock lock manager and the lock handle.
//
// Every initiating function (`async_<verb>`) here and in hold.hpp and inspect.hpp is
// documented with one template, as Asio's are: a summary; Completion signature; Errors;
// Cancellation (which cancellation types of the handler's associated slot are supported and
// what they do); Handler (where the completion handler runs); then notes. Each takes its
// completion token last, constrained with asio::completion_token_for<Signature> and defaulted
// with asio::default_completion_token_t<executor_type> (in Asio 1.22 that default is `void` for
// asio::any_io_executor, so a token must be given; newer Asio default to asio::deferred), and
// none calls its handler from inside the initiating call.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
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
#include "redlock/observer.hpp"
#include "redlock/options.hpp"
#include "redlock/report.hpp"
#include "redlock/resource_list.hpp"

namespace redlock {

using steady_clock = std::chrono::steady_clock;

/// Told about every node-level failure (error reply, timeout, connection problem) as it
/// happens, like node-redlock's `clientError` event.
struct node_error {
  std::string node;  ///< the node's id(), never with a password
  std::error_code ec;
  std::string message;  ///< server message or a description of the failure
};

namespace detail {
struct lock_access;

/// Written by the operation that acquired a lock, read by later operations on its handle:
/// bit i is set once every write of that acquire to node i has been answered (none timed out
/// or was lost), so no write of ours can land there any more. Shared, so that an answer that
/// comes after the handle was made still counts.
struct write_fates {
  std::atomic<std::uint64_t> settled{0};
};

/// What a lock handle is made of (and holds); the library builds handles from it
/// (detail::lock_access).
struct lock_parts {
  /// Weak: a handle kept after its manager (and the io_context the manager's strand, timers
  /// and nodes belong to) was destroyed must not be what destroys them.
  std::weak_ptr<manager_impl> manager;
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
  /// The fencing token (0: acquired without fencing).
  std::uint64_t fencing_token = 0;
  /// Bits of `uncertain` that only the acquire's writes made uncertain: once `fates` settles
  /// such a node, an "absent" release answer there is proof again.
  std::uint64_t absolvable = 0;
  std::shared_ptr<const write_fates> fates;
  /// Acquired in fair mode: its releases also leave the wait queues (and name the new head).
  bool fair = false;
  /// Owner metadata (manager_options::owner): the record written with the lock, which an
  /// extend writes again where a node lost it. Null: none (or unknown, e.g. adopted). Shared:
  /// handles are copied often, and the record never changes.
  std::shared_ptr<const std::string> owner;
};
}  // namespace detail

/// A held lock (or, after a failed operation, an empty one that still carries the report).
/// A value type: copies refer to the same distributed lock. Holding a `lock` object does not
/// keep anything alive on the servers; the lock ends at its validity deadline unless extended.
/// It does not keep its manager alive either: a handle (and its report) may be kept, read and
/// destroyed anywhere, also after its manager and io_context are gone; async_unlock and
/// async_extend on it then complete with errc::closed.
/// Thread safety: distinct objects safe; shared objects safe for const use.
class lock {
 public:
  lock() = default;

  /// True when this handle came from a successful lock or extend.
  bool acquired() const noexcept { return !p_.value.empty(); }
  explicit operator bool() const noexcept { return acquired(); }

  const std::vector<std::string>& resources() const noexcept { return p_.resources; }
  /// The random value stored under every key (32 lowercase hex characters).
  const std::string& value() const noexcept { return p_.value; }
  std::chrono::milliseconds ttl() const noexcept { return p_.ttl; }
  /// Steady-clock instant until which the lock is guaranteed (under the documented
  /// assumptions) to be ours.
  steady_clock::time_point validity_deadline() const noexcept { return p_.deadline; }
  /// Time left until the validity deadline (negative once expired). No network.
  steady_clock::duration remaining(
      steady_clock::time_point now = steady_clock::now()) const noexcept {
    return p_.deadline - now;
  }
  bool expired(steady_clock::time_point now = steady_clock::now()) const noexcept {
    return !acquired() || now >= p_.deadline;
  }
  /// The fencing token of a lock acquired with fencing (manager_options::fencing or
  /// call_options::fencing), 0 otherwise. It is the same across extensions. Property (under
  /// the README's assumptions, durable counters among them): if acquisition X completed
  /// before acquisition Y of an overlapping set of resources began its confirming round trip,
  /// token(Y) > token(X). Send it with every write to the protected resource and have the
  /// resource refuse tokens lower than the highest it has seen (see fenced_store).
  std::uint64_t fencing_token() const noexcept { return p_.fencing_token; }
  /// Attempts used by the operation that produced this handle.
  int attempts() const noexcept { return p_.report.attempts; }
  const redlock::report& report() const noexcept { return p_.report; }

  /// Releases the lock through the manager that made it (lock_manager::async_unlock with
  /// default call_options).
  ///
  /// @par Completion signature
  /// `void(std::error_code, unlock_result)`
  ///
  /// @par Errors
  /// As lock_manager::async_unlock; errc::invalid_argument for an empty handle, errc::closed
  /// once the manager is gone or quit.
  ///
  /// @par Cancellation
  /// None (bounded by the lock's validity).
  ///
  /// @par Handler
  /// Runs on its associated executor (default: the manager's; `asio::system_executor` once
  /// the manager is gone), never from inside this call.
  template <asio::completion_token_for<void(std::error_code, unlock_result)> CompletionToken =
                asio::default_completion_token_t<asio::any_io_executor>>
  auto async_unlock(
      CompletionToken&& token = asio::default_completion_token_t<asio::any_io_executor>()) const;

  /// Extends the lock to `ttl` from now through the manager that made it
  /// (lock_manager::async_extend with default call_options).
  ///
  /// @par Completion signature
  /// `void(std::error_code, lock)`: the extended handle, or an empty one carrying the report.
  ///
  /// @par Errors
  /// As lock_manager::async_extend; errc::invalid_argument for an empty handle, errc::closed
  /// once the manager is gone or quit.
  ///
  /// @par Cancellation
  /// None (retries stop when the old validity runs out).
  ///
  /// @par Handler
  /// Runs on its associated executor (default: the manager's; `asio::system_executor` once
  /// the manager is gone), never from inside this call.
  template <asio::completion_token_for<void(std::error_code, lock)> CompletionToken =
                asio::default_completion_token_t<asio::any_io_executor>>
  auto async_extend(
      std::chrono::milliseconds ttl,
      CompletionToken&& token = asio::default_completion_token_t<asio::any_io_executor>()) const;

 private:
  // Built and read by the library only (detail::lock_access): users get handles from the
  // manager (lock, extend, adopt) and cannot forge one with another manager's identity.
  friend struct detail::lock_access;
  explicit lock(detail::lock_parts p) : p_(std::move(p)) {}

  detail::lock_parts p_;
};

namespace detail {
/// The library's way to build handles and to read what users do not see.
struct lock_access {
  static lock make(lock_parts p) { return lock(std::move(p)); }
  /// The manager that made `l`, or null once it is gone (or for an empty handle).
  static std::shared_ptr<manager_impl> manager(const lock& l) noexcept {
    return l.p_.manager.lock();
  }
  /// See lock_parts::written.
  static std::uint64_t written_nodes(const lock& l) noexcept { return l.p_.written; }
  /// See lock_parts::uncertain.
  static std::uint64_t uncertain_nodes(const lock& l) noexcept { return l.p_.uncertain; }
  /// See lock_parts::absolvable and lock_parts::fates.
  static std::uint64_t absolvable_nodes(const lock& l) noexcept { return l.p_.absolvable; }
  static const std::shared_ptr<const write_fates>& fates(const lock& l) noexcept {
    return l.p_.fates;
  }
  /// See lock_parts::fair.
  static bool fair(const lock& l) noexcept { return l.p_.fair; }
  /// See lock_parts::owner.
  static std::string owner_record(const lock& l) {
    return l.p_.owner ? *l.p_.owner : std::string();
  }
};
}  // namespace detail

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
  /// As above, for a braced list of URLs: `lock_manager(ex, {"redis://a", "redis://b"})`.
  /// (Without it two URLs are ambiguous: std::vector's two-iterator constructor makes both
  /// vector overloads viable.)
  lock_manager(executor_type ex, std::initializer_list<std::string_view> urls,
               manager_options s = {})
      : lock_manager(std::move(ex), std::vector<std::string>(urls.begin(), urls.end()), s) {}
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
  /// `fencing_token` is the token the lock was acquired with (0: none); the handle carries it
  /// unchanged, as extensions do. `fair`: the lock was acquired in fair mode
  /// (manager_options::fair); its release then also leaves the wait queues and wakes only the
  /// new head, as the acquiring process's would (false: a plain release, after which entries
  /// the holder left in a queue expire with fair_entry_timeout).
  /// Returns an empty handle (acquired() == false) when resources or value are empty.
  lock adopt(std::vector<std::string> resources, std::string value, std::chrono::milliseconds ttl,
             steady_clock::time_point deadline, std::uint64_t fencing_token = 0,
             bool fair = false) const {
    if (resources.empty() || value.empty())
      return lock{};
    detail::lock_parts p;
    p.manager = impl_;
    p.resources = std::move(resources);
    p.value = std::move(value);
    p.ttl = ttl;
    p.deadline = deadline;
    p.fencing_token = fencing_token;
    p.fair = fair;
    p.report.quorum = quorum();
    return detail::lock_access::make(std::move(p));
  }

  /// Called for every node error, per request: while one node of three is down, every
  /// request of every operation to it fails, so under load this fires hundreds of times a
  /// second (about one call per operation per failing node, plus retries). For the state of
  /// the nodes (one event per change, and "back") use on_node_state() and node_states().
  /// Every call, also those from inspection and distributed_mutex, runs on the manager's
  /// strand, so calls never overlap. Set it before the first operation. The hook must not
  /// throw or block.
  void on_node_error(std::function<void(const node_error&)> hook);

  /// Called once per change of a node's state (node_state: up, down with the reason,
  /// lagging, and back up), as judged from the outcomes of this manager's requests: a node
  /// that fails a thousand requests while down reports "down" once, and "up" again at the
  /// first answer to a request sent after that. While a node is down or lagging the manager
  /// probes it (manager_options::health_probe_interval), so that "back" is reported also
  /// when nothing else is sent. Runs on the manager's strand, never concurrently with itself
  /// or the observer. Set it before the first operation. The hook must not throw or block.
  void on_node_state(std::function<void(const node_state_change&)> hook);

  /// The current state of every node, in the manager's order (unknown until a request to it
  /// completed). Thread safety: any thread, at any time (e.g. a metrics scrape).
  std::vector<node_health> node_states() const;

  /// Gauges: locks held and lock operations waiting (counted only while an observer is set,
  /// see set_observer(); 0 otherwise) and node_states(). Thread safety: any thread.
  manager_stats stats() const;

  /// Sets the observer that receives this manager's measurements (see observer): every
  /// completed lock, try_lock, extend and unlock (also those of the blocking facade, hold and
  /// distributed_mutex), every lock that ended, every node request and node state change.
  /// With an observer set the manager also counts the gauges of stats(). Set it before the
  /// first operation (operations already started are not measured); null stops the
  /// measuring. The manager keeps every observer it was given alive until it is destroyed.
  /// Without an observer nothing is measured: one check per operation and per node answer.
  /// Thread safety: any thread.
  void set_observer(std::shared_ptr<observer> o);

  /// Acquires all `resources` (atomically per node) for `ttl`, retrying per the manager's
  /// options and `opts`.
  ///
  /// @par Completion signature
  /// `void(std::error_code, lock)`: the lock, which carries the report also on failure.
  ///
  /// @par Errors
  /// errc::resource_locked, errc::quorum_unreachable, errc::validity_exhausted,
  /// errc::duplicate_deployment, errc::invalid_argument (nothing sent; report().detail says
  /// why), errc::closed, errc::cancelled.
  ///
  /// @par Cancellation
  /// Through the handler's associated cancellation slot: terminal, partial and total all stop
  /// the operation, release anything taken on every node and complete with errc::cancelled.
  ///
  /// @par Handler
  /// Runs on its associated executor (default: the manager's), never from inside this call.
  ///
  /// @par Notes
  /// `resources` is one name, a braced list of names or a `std::vector<std::string>` (see
  /// resource_list).
  template <asio::completion_token_for<void(std::error_code, lock)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_lock(resource_list resources, std::chrono::milliseconds ttl, call_options opts,
                  CompletionToken&& token = asio::default_completion_token_t<executor_type>()) {
    return asio::async_initiate<CompletionToken, void(std::error_code, lock)>(
        [m = impl_](auto handler, std::vector<std::string> r, std::chrono::milliseconds t,
                    call_options o) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          detail::start_lock(
              m, std::move(r), t, o, slot,
              detail::bind_cancellable_handler<decltype(handler), std::error_code, lock>(
                  std::move(handler), slot, detail::fallback_executor(m.get())));
        },
        token, std::move(resources).names(), ttl, opts);
  }
  /// As above with default call_options.
  template <asio::completion_token_for<void(std::error_code, lock)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_lock(resource_list resources, std::chrono::milliseconds ttl,
                  CompletionToken&& token = asio::default_completion_token_t<executor_type>()) {
    return async_lock(std::move(resources), ttl, call_options{},
                      std::forward<CompletionToken>(token));
  }

  /// One attempt (no retries). Another owner holding a resource is a normal outcome: the
  /// completion then has an empty error code and a lock with acquired() == false (its report()
  /// says which nodes denied).
  ///
  /// @par Completion signature
  /// `void(std::error_code, lock)`
  ///
  /// @par Errors
  /// Real failures only: errc::quorum_unreachable, errc::validity_exhausted,
  /// errc::duplicate_deployment, errc::invalid_argument, errc::closed.
  ///
  /// @par Cancellation
  /// None (one attempt, bounded by request_timeout).
  ///
  /// @par Handler
  /// Runs on its associated executor (default: the manager's), never from inside this call.
  template <asio::completion_token_for<void(std::error_code, lock)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_try_lock(resource_list resources, std::chrono::milliseconds ttl,
                      CompletionToken&& token = asio::default_completion_token_t<executor_type>()) {
    return asio::async_initiate<CompletionToken, void(std::error_code, lock)>(
        [m = impl_](auto handler, std::vector<std::string> r, std::chrono::milliseconds t) {
          detail::start_try_lock(m, std::move(r), t,
                                 detail::bind_handler<decltype(handler), std::error_code, lock>(
                                     std::move(handler), detail::fallback_executor(m.get())));
        },
        token, std::move(resources).names(), ttl);
  }

  /// Extends `l` so that it expires `ttl` from now (a `ttl` shorter than the time left
  /// shortens the lock: the keys' TTL is reset to `ttl`).
  ///
  /// @par Completion signature
  /// `void(std::error_code, lock)`: the handle with the new validity deadline; on failure an
  /// empty handle carrying the report.
  ///
  /// @par Errors
  /// errc::lock_expired (the local validity had run out: nothing sent), errc::lock_lost (too
  /// many nodes deny), errc::quorum_unreachable, errc::validity_exhausted,
  /// errc::duplicate_deployment, errc::invalid_argument (empty handle, another manager's
  /// handle, bad ttl or options), errc::closed.
  ///
  /// @par Cancellation
  /// None (retries stop when the old validity runs out).
  ///
  /// @par Handler
  /// Runs on its associated executor (default: the manager's), never from inside this call.
  ///
  /// @par Notes
  /// Only where our value is still present; never deletes anything. The new validity counts
  /// from the extend's start. Retries (per the retry options) only while the old validity
  /// remains. When a quorum extended, nodes that lost our keys (e.g. restarted) get them set
  /// again, only if absent, while the new validity remains; an expired lock is never
  /// recreated.
  template <asio::completion_token_for<void(std::error_code, lock)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_extend(const lock& l, std::chrono::milliseconds ttl, call_options opts,
                    CompletionToken&& token = asio::default_completion_token_t<executor_type>()) {
    return asio::async_initiate<CompletionToken, void(std::error_code, lock)>(
        [m = impl_](auto handler, lock l2, std::chrono::milliseconds t, call_options o) {
          detail::start_extend(m, l2, t, o,
                               detail::bind_handler<decltype(handler), std::error_code, lock>(
                                   std::move(handler), detail::executor_of(*m)));
        },
        token, l, ttl, opts);
  }
  /// As above with default call_options.
  template <asio::completion_token_for<void(std::error_code, lock)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_extend(const lock& l, std::chrono::milliseconds ttl,
                    CompletionToken&& token = asio::default_completion_token_t<executor_type>()) {
    return async_extend(l, ttl, call_options{}, std::forward<CompletionToken>(token));
  }

  /// Deletes our value on every node (only where it is ours).
  ///
  /// @par Completion signature
  /// `void(std::error_code, unlock_result)`: success when a quorum no longer holds our value.
  ///
  /// @par Errors
  /// errc::quorum_unreachable, errc::lock_expired (after one best-effort release round),
  /// errc::duplicate_deployment, errc::invalid_argument (empty handle, another manager's
  /// handle, bad options), errc::closed.
  ///
  /// @par Cancellation
  /// None (retries stop when the lock's validity runs out).
  ///
  /// @par Handler
  /// Runs on its associated executor (default: the manager's), never from inside this call.
  ///
  /// @par Notes
  /// Retries ask only the nodes that failed, while the lock is still valid. An already
  /// expired lock completes promptly with errc::lock_expired after one best-effort release
  /// round, whatever the retry count. Nodes that did not confirm keep getting the release in
  /// the background (see async_quit).
  template <asio::completion_token_for<void(std::error_code, unlock_result)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_unlock(const lock& l, call_options opts,
                    CompletionToken&& token = asio::default_completion_token_t<executor_type>()) {
    return asio::async_initiate<CompletionToken, void(std::error_code, unlock_result)>(
        [m = impl_](auto handler, lock l2, call_options o) {
          detail::start_unlock(
              m, l2, o,
              detail::bind_handler<decltype(handler), std::error_code, unlock_result>(
                  std::move(handler), detail::executor_of(*m)));
        },
        token, l, opts);
  }
  /// As above with default call_options.
  template <asio::completion_token_for<void(std::error_code, unlock_result)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_unlock(const lock& l,
                    CompletionToken&& token = asio::default_completion_token_t<executor_type>()) {
    return async_unlock(l, call_options{}, std::forward<CompletionToken>(token));
  }

  /// Stops accepting operations, waits for those in flight and for their cleanup (releases
  /// being retried after a failure, cancel or unlock) for at most
  /// manager_options::quit_timeout, then closes every node.
  ///
  /// @par Completion signature
  /// `void(std::error_code)`
  ///
  /// @par Errors
  /// errc::timeout when the bound passed with releases still unconfirmed (those keys expire
  /// with their TTL); success when every cleanup settled.
  ///
  /// @par Cancellation
  /// None (bounded by manager_options::quit_timeout).
  ///
  /// @par Handler
  /// Runs on its associated executor (default: the manager's), never from inside this call.
  ///
  /// @par Notes
  /// Later operations fail with errc::closed.
  template <asio::completion_token_for<void(std::error_code)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_quit(CompletionToken&& token = asio::default_completion_token_t<executor_type>()) {
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

template <asio::completion_token_for<void(std::error_code, unlock_result)> CompletionToken>
auto lock::async_unlock(CompletionToken&& token) const {
  return asio::async_initiate<CompletionToken, void(std::error_code, unlock_result)>(
      [](auto handler, lock l) {
        // null: invalid_argument (empty handle) or closed (manager gone)
        auto m = detail::lock_access::manager(l);
        detail::start_unlock(
            m, l, call_options{},
            detail::bind_handler<decltype(handler), std::error_code, unlock_result>(
                std::move(handler), detail::fallback_executor(m.get())));
      },
      token, *this);
}

template <asio::completion_token_for<void(std::error_code, lock)> CompletionToken>
auto lock::async_extend(std::chrono::milliseconds ttl, CompletionToken&& token) const {
  return asio::async_initiate<CompletionToken, void(std::error_code, lock)>(
      [](auto handler, lock l, std::chrono::milliseconds t) {
        // null: invalid_argument (empty handle) or closed (manager gone)
        auto m = detail::lock_access::manager(l);
        detail::start_extend(m, l, t, call_options{},
                             detail::bind_handler<decltype(handler), std::error_code, lock>(
                                 std::move(handler), detail::fallback_executor(m.get())));
      },
      token, *this, ttl);
}

}  // namespace redlock

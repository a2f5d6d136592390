// Holding a lock while you work: automatic extension, a loss signal, release at the end.
//
// Three shapes over one engine:
//  - async_hold(manager, resources, ttl, opts, routine, token): acquire, run a coroutine
//    routine while the lock is extended in the background, release, complete.
//  - hold(blocking_manager, resources, ttl, opts, fn): the same for threads; fn gets a
//    std::stop_token (or a hold_context) and runs on the calling thread.
//  - lock_keeper: the low-level handle. Give it an acquired lock; it extends the lock until
//    you release it (or the lock is lost), and tells you once, with the reason, when it ends.
//
// The decisions (when to extend, when to retry, when the lock counts as lost, the hold cap)
// live in detail::extension_machine, which takes `now` as input and does no I/O.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/strand.hpp>
#include <asio/use_future.hpp>

#include "redlock/blocking.hpp"
#include "redlock/detail/unique_function.hpp"
#include "redlock/error.hpp"
#include "redlock/hold_options.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/options.hpp"
#include "redlock/report.hpp"
#include "redlock/resource_list.hpp"

namespace redlock {

/// What happened during a hold. Part of every hold result.
struct hold_outcome {
  /// True when the lock was held from acquisition to release: no loss or cap was signalled
  /// and the release started before the validity deadline (reason == none). A release error
  /// (unlock_error) does not change it: exclusion held until the release was sent.
  bool held_throughout = false;
  loss_reason reason = loss_reason::none;
  /// The error behind `reason` (e.g. errc::lock_lost or errc::quorum_unreachable for the
  /// last failed extension); empty for none and max_hold.
  std::error_code error;
  /// Successful extensions.
  int extensions = 0;
  /// The last handle: its validity_deadline() is the end of the last successful extension.
  lock last_lock;
  /// Report of the last lock operation (acquire, extend or release).
  redlock::report last_report;
  /// Error of the final release (empty when a quorum no longer holds our value).
  std::error_code unlock_error;
};

/// A hold's result: the outcome plus the routine's value (when it returned normally).
template <class T>
struct hold_result : hold_outcome {
  std::optional<T> value;
};
template <>
struct hold_result<void> : hold_outcome {};

namespace detail {
class hold_state;
}

/// What a routine sees of its hold: whether the lock is still ours, why not, and the current
/// (extended) handle. A cheap handle; copies share state.
/// Thread safety: distinct and shared objects safe (any thread may read).
class hold_context {
 public:
  hold_context() = default;
  explicit hold_context(std::shared_ptr<detail::hold_state> s) : state_(std::move(s)) {}

  /// True once the hold has been signalled (loss or cap).
  bool lost() const noexcept;
  loss_reason reason() const noexcept;
  /// The error behind reason() (see hold_outcome::error).
  std::error_code error() const;
  /// The latest handle (after the latest successful extension).
  lock current_lock() const;
  /// Validity left of the current handle, from its local deadline; no network. Negative
  /// once expired.
  steady_clock::duration remaining(steady_clock::time_point now = steady_clock::now()) const;
  int extensions() const noexcept;
  /// Requested when the hold is signalled (for thread routines).
  std::stop_token stop_token() const noexcept;

 private:
  std::shared_ptr<detail::hold_state> state_;
};

/// Keeps an already acquired lock alive: extends it before expiry (see hold_options), and
/// tells `on_loss` once when it is lost, expires, reaches the cap or the manager closes.
/// Stop with async_unlock (extension stops, the lock is released) or detach().
///
/// Timers and handlers run on a strand of the lock's manager executor; `on_loss` runs there
/// too, at most once, and must not block. No on_loss call starts once async_unlock or
/// detach has been called (one that started before, on another thread, may still be running).
/// The destructor of a running keeper stops extending and releases in the background
/// (never throws, never blocks).
/// Thread safety: distinct objects safe; shared objects safe for the const members,
/// async_unlock and detach.
class lock_keeper {
 public:
  using loss_handler = std::function<void(loss_reason, std::error_code)>;

  lock_keeper() = default;
  /// Starts keeping `l`. Throws lock_error(errc::invalid_argument) for an empty handle or bad
  /// options (extend_threshold outside (0, 1), negative durations).
  explicit lock_keeper(lock l, hold_options opts = {}, loss_handler on_loss = {});
  ~lock_keeper();
  lock_keeper(lock_keeper&&) noexcept;
  lock_keeper& operator=(lock_keeper&&) noexcept;
  lock_keeper(const lock_keeper&) = delete;
  lock_keeper& operator=(const lock_keeper&) = delete;

  /// False for a default-constructed or moved-from keeper.
  bool valid() const noexcept { return state_ != nullptr; }
  /// The state a routine sees (lost(), reason(), current_lock(), stop_token()).
  hold_context context() const;
  bool lost() const noexcept { return context().lost(); }
  loss_reason reason() const noexcept { return context().reason(); }
  lock current_lock() const { return context().current_lock(); }
  steady_clock::duration remaining(steady_clock::time_point now = steady_clock::now()) const {
    return context().remaining(now);
  }

  /// Stops extending (waiting for an extension in flight, so that nothing recreates a key
  /// after the release), then releases the lock on every node.
  ///
  /// @par Completion signature
  /// `void(std::error_code, hold_outcome)`
  ///
  /// @par Errors
  /// The release's error (e.g. errc::lock_expired when the lock had already run out), also in
  /// hold_outcome::unlock_error; errc::invalid_argument when called twice or on a keeper that
  /// is not valid().
  ///
  /// @par Cancellation
  /// None (the release is bounded by the lock's validity).
  ///
  /// @par Handler
  /// Runs on its associated executor (default: the manager's), never from inside this call.
  template <asio::completion_token_for<void(std::error_code, hold_outcome)> CompletionToken =
                asio::default_completion_token_t<lock_manager::executor_type>>
  auto async_unlock(
      CompletionToken&& token = asio::default_completion_token_t<lock_manager::executor_type>());
  /// Blocking form. Do not call from the manager's own thread.
  hold_outcome unlock();

  /// Stops extending without releasing: the lock ends at its current deadline unless the
  /// returned handle is extended or released by someone else.
  lock detach();

 private:
  std::shared_ptr<detail::hold_state> state_;
};

namespace detail {

/// Throws lock_error(invalid_argument) naming the field when `o` (with `ttl`) cannot be held.
void check_hold_options(std::chrono::milliseconds ttl, const hold_options& o);

using hold_completion = unique_function<void(std::error_code, hold_outcome)>;
/// Runs the routine on `ex` with cancellation `slot` and calls `done` when it ends.
using routine_runner = unique_function<void(
    hold_context ctx, asio::strand<asio::any_io_executor> ex, asio::cancellation_slot slot,
    unique_function<void(std::exception_ptr)> done)>;
using hold_run_completion = unique_function<void(std::exception_ptr, hold_outcome)>;

/// The manager of the kept lock (never null for a state made by make_hold_state).
const std::shared_ptr<manager_impl>& manager_of(const hold_state& s) noexcept;
std::shared_ptr<hold_state> make_hold_state(lock l, const hold_options& o,
                                            lock_keeper::loss_handler on_loss);
/// `s` may be null (a moved-from keeper): completes with errc::invalid_argument.
void start_keeper_unlock(const std::shared_ptr<hold_state>& s, hold_completion done);
/// Acquire, run, release. `outer` is the caller's cancellation slot (may be unconnected):
/// a cancellation there is forwarded to the routine's slot.
void start_hold(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                std::chrono::milliseconds ttl, hold_options opts, routine_runner run,
                asio::cancellation_slot outer, hold_run_completion done);

template <class T>
struct awaitable_value;
template <class T, class E>
struct awaitable_value<asio::awaitable<T, E>> {
  using type = T;
};

/// Calls the routine with what it accepts: (hold_context), () or nothing (an awaitable).
template <class Routine>
auto invoke_routine(Routine& r, const hold_context& ctx) {
  if constexpr (std::is_invocable_v<Routine&, hold_context>) {
    return r(ctx);
  } else if constexpr (std::is_invocable_v<Routine&>) {
    return r();
  } else {
    return std::move(r);  // already an awaitable
  }
}

template <class Routine>
using routine_awaitable_t =
    std::decay_t<decltype(invoke_routine(std::declval<Routine&>(), hold_context{}))>;

}  // namespace detail

namespace detail {
/// The result type of async_hold for `Routine`.
template <class Routine>
using hold_result_of =
    hold_result<typename awaitable_value<routine_awaitable_t<std::decay_t<Routine>>>::type>;
}  // namespace detail

/// Acquires `resources` for `ttl` (waiting per opts.locking), runs the coroutine `routine`
/// while the lock is extended automatically, then releases the lock (also when the routine
/// throws) and completes.
///
/// `routine` is a callable `(hold_context) -> asio::awaitable<T>`, a callable
/// `() -> asio::awaitable<T>`, or an `asio::awaitable<T>`. It runs on a strand of the
/// manager's executor. When the hold is signalled (lost, expired, max_hold, closed) its
/// cancellation slot is emitted with asio::cancellation_type::terminal, so the operation it
/// is awaiting completes with asio::error::operation_aborted; hold_context::reason() says why.
///
/// @par Completion signature
/// `void(std::exception_ptr, hold_result<T>)`, like asio::co_spawn: use_awaitable and
/// use_future rethrow the exception (after the release has completed).
///
/// @par Errors
/// The exception is the routine's own, or a lock_error when the acquire failed (its code as
/// lock_manager::async_lock's; the routine then never ran). A failed release is not an
/// exception: it is hold_outcome::unlock_error.
///
/// @par Cancellation
/// While acquiring, any cancellation type of the caller's slot stops the acquire (what was
/// taken is released) and the hold completes with a lock_error of errc::cancelled without
/// running the routine. Once the routine runs, terminal cancellation is forwarded to it
/// (hold_context::reason() stays none); the lock is released when the routine returns.
///
/// @par Handler
/// Runs on its associated executor (default: the manager's), never from inside this call.
template <class Routine,
          asio::completion_token_for<void(std::exception_ptr, detail::hold_result_of<Routine>)>
              CompletionToken = asio::default_completion_token_t<lock_manager::executor_type>>
auto async_hold(
    lock_manager& m, resource_list resources, std::chrono::milliseconds ttl, hold_options opts,
    Routine&& routine,
    CompletionToken&& token = asio::default_completion_token_t<lock_manager::executor_type>()) {
  using awaitable_t = detail::routine_awaitable_t<std::decay_t<Routine>>;
  using value_t = typename detail::awaitable_value<awaitable_t>::type;
  using result_t = hold_result<value_t>;
  return asio::async_initiate<CompletionToken, void(std::exception_ptr, result_t)>(
      // The shared core, not the manager object (see async_inspect).
      [impl = detail::impl_of(m)](auto handler, std::vector<std::string> r,
                                  std::chrono::milliseconds t, hold_options o,
                                  std::decay_t<Routine> rt) {
        auto outer = asio::get_associated_cancellation_slot(handler);
        auto box = std::make_shared<
            std::optional<std::conditional_t<std::is_void_v<value_t>, char, value_t>>>();
        // The routine object lives until its coroutine completes: a coroutine lambda reads
        // its captures through the closure, which must outlive every suspension.
        auto keep = std::make_shared<std::decay_t<Routine>>(std::move(rt));
        detail::routine_runner run =
            [keep, box](hold_context ctx, asio::strand<asio::any_io_executor> ex,
                        asio::cancellation_slot slot,
                        detail::unique_function<void(std::exception_ptr)> done) mutable {
              if constexpr (std::is_void_v<value_t>) {
                asio::co_spawn(ex, detail::invoke_routine(*keep, ctx),
                               asio::bind_cancellation_slot(
                                   slot, [d = std::move(done), keep](std::exception_ptr e) mutable {
                                     d(std::move(e));
                                   }));
              } else {
                asio::co_spawn(ex, detail::invoke_routine(*keep, ctx),
                               asio::bind_cancellation_slot(
                                   slot, [d = std::move(done), box, keep](std::exception_ptr e,
                                                                          value_t v) mutable {
                                     if (!e)
                                       box->emplace(std::move(v));
                                     d(std::move(e));
                                   }));
              }
            };
        auto fallback = detail::executor_of(*impl);
        auto finish = detail::bind_handler<decltype(handler), std::exception_ptr, result_t>(
            std::move(handler), fallback);
        detail::start_hold(
            impl, std::move(r), t, std::move(o), std::move(run), outer,
            [f = std::move(finish), box](std::exception_ptr e, hold_outcome out) mutable {
              result_t res;
              static_cast<hold_outcome&>(res) = std::move(out);
              if constexpr (!std::is_void_v<value_t>) {
                if (*box)
                  res.value = std::move(**box);
              }
              f(std::move(e), std::move(res));
            });
      },
      token, std::move(resources).names(), ttl, std::move(opts), std::forward<Routine>(routine));
}

/// Blocking hold for threads: acquires `resources` for `ttl` (waiting per opts.locking;
/// throws lock_error when that fails), runs `fn` on the calling thread while the lock is
/// extended on the manager's io thread, then releases the lock and returns the result.
/// `fn` is called as fn(std::stop_token), fn(hold_context) or fn(); the stop token is
/// requested when the hold is signalled (hold_context::reason() says why). If fn throws,
/// the lock is released and the exception rethrown.
/// Thread safety: like blocking_lock_manager (do not call from its own thread).
template <class F>
auto hold(blocking_lock_manager& m, const std::vector<std::string>& resources,
          std::chrono::milliseconds ttl, hold_options opts, F&& fn) {
  using ctx_t = hold_context;
  auto call = [&fn](const ctx_t& ctx) -> decltype(auto) {
    if constexpr (std::is_invocable_v<F&, std::stop_token>) {
      return fn(ctx.stop_token());
    } else if constexpr (std::is_invocable_v<F&, ctx_t>) {
      return fn(ctx);
    } else {
      return fn();
    }
  };
  using value_t = std::decay_t<decltype(call(std::declval<const ctx_t&>()))>;
  // Bad options would otherwise only show after acquiring.
  detail::check_hold_options(ttl, opts);
  lock l = m.lock(resources, ttl, opts.locking);
  lock_keeper keeper(std::move(l), opts);
  auto ctx = keeper.context();
  hold_result<value_t> res;
  std::exception_ptr err;
  try {
    if constexpr (std::is_void_v<value_t>) {
      call(ctx);
    } else {
      res.value.emplace(call(ctx));
    }
  } catch (...) {
    err = std::current_exception();
  }
  static_cast<hold_outcome&>(res) = keeper.unlock();
  if (err)
    std::rethrow_exception(err);
  return res;
}

template <asio::completion_token_for<void(std::error_code, hold_outcome)> CompletionToken>
auto lock_keeper::async_unlock(CompletionToken&& token) {
  return asio::async_initiate<CompletionToken, void(std::error_code, hold_outcome)>(
      [s = state_](auto handler) {
        auto fallback = asio::any_io_executor(asio::system_executor());
        if (s)
          fallback = detail::executor_of(*detail::manager_of(*s));
        detail::start_keeper_unlock(
            s, detail::bind_handler<decltype(handler), std::error_code, hold_outcome>(
                   std::move(handler), fallback));
      },
      token);
}

}  // namespace redlock

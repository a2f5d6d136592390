// One invocation's event loop and lock manager, and the shared acquire-with-wait.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "common.hpp"
#include "output.hpp"
#include "redlock/lock_manager.hpp"
#include "signals.hpp"

// GCC 12 reports asio's awaitable frames (allocated and freed by asio's own operator
// new/delete pair) as mismatched once it inlines them: a known false positive. Every file
// that writes coroutines includes this header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace redlock::cli {

/// The io_context (run on the main thread), the manager over the configured servers and the
/// process's signal watcher (SIGINT, SIGTERM, SIGHUP, SIGCHLD).
///
/// Every invocation ends with the manager's async_quit, on every path (success, failure,
/// exception, signal): releases the library still retries settle before the process exits,
/// within cleanup_bound(). Signals while a body runs go to its handler (on_signal); without
/// one, the first is remembered (the body's operations are bounded by the request timeout)
/// and the exit code becomes 128+N. During the cleanup the first signal only says that
/// redlock is finishing; a second one ends it at once (exit 128+N).
class session {
 public:
  explicit session(config c);
  ~session();

  asio::io_context& context() noexcept { return ioc_; }
  lock_manager& manager() noexcept { return *manager_; }
  const config& conf() const noexcept { return conf_; }
  signal_watcher& signals() noexcept { return signals_; }

  /// Routes signals to `handler` while the body runs; an empty handler restores the default
  /// (remember, finish, exit 128+N).
  void on_signal(std::function<void(signal_event)> handler) { handler_ = std::move(handler); }
  /// From now on signals follow the cleanup rule (the body's work is done; only releasing
  /// is left), e.g. once `run`'s command has exited.
  void begin_cleanup() noexcept { cleaning_ = true; }
  /// Records how many servers had not confirmed a release this invocation sent (for -v).
  void note_release(const report& r) { unconfirmed_ = unconfirmed_nodes(r); }

  /// How long redlock waits for its cleanup after the body: manager_options::quit_timeout, which
  /// resolve() sets to the larger of 2 s and five request timeouts.
  std::chrono::milliseconds cleanup_bound() const;

  /// Runs `body` to completion, then quits the manager (waiting for releases in flight,
  /// bounded by cleanup_bound()) and returns body's exit code. Exceptions from body
  /// propagate.
  int run(std::function<asio::awaitable<int>()> body);

 private:
  void dispatch_signal(signal_event e);
  void report_cleanup(std::error_code quit_ec, bool timed_out);

  config conf_;
  asio::io_context ioc_;
  std::unique_ptr<lock_manager> manager_;
  signal_watcher signals_;
  std::function<void(signal_event)> handler_;
  bool cleaning_ = false;
  int body_signal_ = 0;     ///< remembered by the default rule while the body ran
  int cleanup_signal_ = 0;  ///< the first signal during the cleanup
  int forced_signal_ = 0;   ///< the second one, which ended the cleanup
  std::size_t unconfirmed_ = 0;
};

/// How long `acquire_waiting` keeps trying.
struct wait_options {
  /// Total time budget (call_options::max_wait); unused with no_wait.
  std::chrono::milliseconds wait{30'000};
  /// One attempt (retry_count 0), no waiting.
  bool no_wait = false;
};

/// Set by a signal handler to make acquire_waiting stop early: interrupt() cancels the lock
/// call in progress (the library releases whatever it took).
struct interruption {
  int signo = 0;
  /// Set by acquire_waiting while its lock call runs.
  std::function<void()> on_interrupt;
  void interrupt(int s);
};

/// Acquires with ONE lock call: a single attempt with no_wait, else attempts bounded by the
/// wait budget alone (call_options::max_wait), the manager's retry delay +- jitter apart and
/// cut short by announced releases (manager_options::wakeup) and the holders' expiry. Ends
/// when acquired, the budget is used up, or an interruption cancels the call. On a terminal,
/// a status line, refreshed every second from a timer beside the call, shows the time waited
/// and the holder's remaining TTL (or how many servers fail).
struct acquire_result {
  std::error_code ec;  ///< the call's error (resource_locked, quorum_unreachable, cancelled...)
  lock l;              ///< the lock, or an empty handle with the call's report
  int attempts = 0;
};
asio::awaitable<acquire_result> acquire_waiting(session& s,
                                                const std::vector<std::string>& resources,
                                                std::chrono::milliseconds ttl, wait_options w,
                                                interruption& intr);

/// Releases `l` with a small retry budget; prints a warning on failure. Returns the error.
asio::awaitable<std::error_code> release_quietly(session& s, const lock& l);

/// When `r` shows a WRONGTYPE answer: a hint naming the keys that hold a non-string value
/// (read with an inspection), e.g. "key 'jobs' holds a non-string value: not a lock key?".
/// Empty otherwise.
asio::awaitable<std::string> wrong_type_hint(session& s, const std::vector<std::string>& resources,
                                             const report& r);

/// The end of a failed acquire (`acquire`, `run`): prints why (describe_acquire_failure, plus
/// the WRONGTYPE hint) and the per-server report where it helps; returns the exit code.
asio::awaitable<int> report_acquire_failure(session& s, std::error_code ec,
                                            const std::vector<std::string>& resources, int attempts,
                                            const report& r);

}  // namespace redlock::cli

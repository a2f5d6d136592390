#include "session.hpp"

#include <signal.h>
#include <string.h>

#include <algorithm>
#include <cstdio>
#include <exception>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/use_awaitable.hpp>

#include "duration.hpp"
#include "redlock/asio_compat.hpp"
#include "redlock/error.hpp"
#include "redlock/inspect.hpp"

namespace redlock::cli {

session::session(config c)
    : conf_(std::move(c)), signals_(ioc_, {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) {
  manager_ = make_manager(ioc_.get_executor(), conf_);
}

session::~session() = default;

std::chrono::milliseconds session::cleanup_bound() const {
  return conf_.settings.quit_timeout;
}

void session::dispatch_signal(signal_event e) {
  if (!cleaning_ && handler_) {
    handler_(e);
    return;
  }
  if (e.signo == SIGCHLD)
    return;
  int& first = cleaning_ ? cleanup_signal_ : body_signal_;
  if (first == 0) {
    first = e.signo;
    if (cleaning_) {
      // The releases in flight decide whether the keys go now or stay for their TTL.
      std::fprintf(stderr,
                   "redlock: finishing the cleanup (at most %s); send the signal again to exit "
                   "now\n",
                   format_duration(cleanup_bound()).c_str());
    }
    return;
  }
  forced_signal_ = e.signo;
  ioc_.stop();
}

void session::report_cleanup(std::error_code quit_ec, bool timed_out) {
  std::string pending;
  if (unconfirmed_ > 0) {
    pending = " (up to " + std::to_string(unconfirmed_) + " of " +
              std::to_string(manager_->size()) + " servers had not confirmed our release)";
  }
  if (forced_signal_ != 0) {
    const char* name = ::sigabbrev_np(forced_signal_);
    std::fprintf(stderr,
                 "redlock: cleanup cut short by SIG%s%s; keys not yet released expire with "
                 "their TTL\n",
                 name != nullptr ? name : "?", pending.c_str());
    return;
  }
  if (!conf_.verbose)
    return;
  if (timed_out) {
    std::fprintf(stderr,
                 "redlock: cleanup did not settle within %s%s; keys not yet released expire "
                 "with their TTL\n",
                 format_duration(cleanup_bound()).c_str(), pending.c_str());
  } else if (quit_ec == errc::timeout) {
    std::fprintf(stderr,
                 "redlock: cleanup bound passed with releases still unconfirmed%s; their keys "
                 "expire with their TTL\n",
                 pending.c_str());
  } else if (quit_ec) {
    std::fprintf(stderr, "redlock: cleanup ended with an error: %s\n", quit_ec.message().c_str());
  } else {
    std::fputs("redlock: cleanup settled (nothing left to release)\n", stderr);
  }
}

int session::run(std::function<asio::awaitable<int>()> body) {
  int code = exit_software;
  std::exception_ptr failure;
  std::error_code quit_ec;
  bool timed_out = false;
  asio::steady_timer guard(ioc_);
  signals_.start([this](signal_event e) { dispatch_signal(e); });
  asio::co_spawn(
      ioc_,
      [&]() -> asio::awaitable<void> {
        try {
          code = co_await body();
        } catch (...) {
          failure = std::current_exception();
        }
        // Every path ends here: quit waits for the cleanup (releases still being retried,
        // a release after a lost lock), bounded by the library; the guard keeps a stuck
        // server from holding the exit up for longer than cleanup_bound().
        cleaning_ = true;
        handler_ = nullptr;
        // The library bounds the cleanup by quit_timeout; the guard adds what closing takes
        // (the operations in flight, each bounded by the request timeout) and a margin.
        guard.expires_after(cleanup_bound() + 2 * conf_.settings.request_timeout +
                            std::chrono::seconds(1));
        guard.async_wait([this, &timed_out](std::error_code ec) {
          if (!ec) {
            timed_out = true;
            ioc_.stop();
          }
        });
        auto [qec] = co_await manager_->async_quit(as_tuple(asio::use_awaitable));
        quit_ec = qec;
        guard.cancel();
        ioc_.stop();
      },
      [&](std::exception_ptr e) {
        if (e && !failure)
          failure = e;
        ioc_.stop();
      });
  ioc_.run();
  signals_.stop();
  report_cleanup(quit_ec, timed_out);
  if (failure)
    std::rethrow_exception(failure);
  if (forced_signal_ != 0)
    return exit_signal_base + forced_signal_;
  if (body_signal_ != 0)
    return exit_signal_base + body_signal_;
  return code;
}

void interruption::interrupt(int s) {
  if (signo == 0)
    signo = s;
  if (on_interrupt)
    on_interrupt();
}

namespace {

// The status line: first shown this long after the call (an acquire that is woken or
// succeeds sooner never flickers one), then refreshed every status_period.
constexpr std::chrono::milliseconds first_status{250};
constexpr std::chrono::milliseconds status_period{1000};

/// The lock call in flight and what its handler leaves for the coroutine. Shared with the
/// handlers (the call's, the status line's inspections), which may run after the coroutine
/// is gone (an inspection still in flight) or never (the event loop stopped by a second
/// signal during the cleanup).
struct pending_lock {
  pending_lock(asio::io_context& c, bool show) : tick(c), line(show) {}
  asio::steady_timer tick;  ///< the status line's timer; cancelled when the call completes
  asio::cancellation_signal cancel;
  status_line line;
  bool inspecting = false;  ///< a status inspection is in flight: never more than one
  bool done = false;
  std::error_code ec;
  lock l;
};

/// "redlock: waiting 3s, held by another owner for 7s" (or "..., 2 of 3 servers failing").
std::string waiting_text(std::chrono::milliseconds waited, std::error_code ec, const inspection& in,
                         std::size_t servers) {
  std::string text = "redlock: waiting " + format_duration(waited);
  if (!ec && in.held()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(in.remaining());
    if (in.validity_deadline != steady_clock::time_point::max() && left.count() > 0)
      return text + ", held by another owner for " + format_duration(left);
    return text + ", held by another owner";
  }
  std::size_t failing = 0;
  for (const auto& n : in.nodes)
    failing += n.answered() ? 0 : 1;
  if (ec && in.nodes.empty())
    failing = servers;
  if (failing > 0)
    text += ", " + std::to_string(failing) + " of " + std::to_string(servers) + " servers failing";
  return text;
}

}  // namespace

asio::awaitable<acquire_result> acquire_waiting(session& s,
                                                const std::vector<std::string>& resources,
                                                std::chrono::milliseconds ttl, wait_options w,
                                                interruption& intr) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto p = std::make_shared<pending_lock>(s.context(), status_line().enabled() && !w.no_wait);

  // One call, so that the library's waiting applies: wake-up on announced releases, the
  // holders' expiry, the manager's retry delay and jitter. The budget alone bounds the
  // attempts (retry_count unset).
  call_options o;
  if (w.no_wait)
    o.retry_count = 0;
  else
    o.max_wait = w.wait;
  s.manager().async_lock(
      resources, ttl, o,
      asio::bind_cancellation_slot(p->cancel.slot(), [p](std::error_code ec, lock l) {
        p->done = true;
        p->ec = ec;
        p->l = std::move(l);
        p->tick.cancel();
      }));
  // A signal cancels the call; the library then releases anything it took on every node.
  // Terminal: the acquire is abandoned, not paused.
  intr.on_interrupt = [p] {
    if (!p->done)
      p->cancel.emit(asio::cancellation_type::terminal);
  };
  if (intr.signo != 0)
    intr.on_interrupt();

  // The status line beside the call. Its inspections are not awaited: an acquire that
  // completes must not wait for one (run's command would start later).
  const std::size_t servers = s.manager().size();
  auto next = start + first_status;
  while (!p->done) {
    p->tick.expires_at(p->line.enabled() ? next : clock::time_point::max());
    co_await p->tick.async_wait(as_tuple(asio::use_awaitable));
    if (p->done || clock::now() < next)
      continue;
    next += status_period;
    if (intr.signo != 0 || p->inspecting)
      continue;
    p->inspecting = true;
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start);
    async_inspect(s.manager(), resources, [p, waited, servers](std::error_code ec, inspection in) {
      p->inspecting = false;
      if (!p->done)
        p->line.show(waiting_text(waited, ec, in, servers));
    });
  }
  intr.on_interrupt = nullptr;
  p->line.clear();
  const int attempts = p->l.attempts();
  co_return acquire_result{p->ec, std::move(p->l), attempts};
}

asio::awaitable<std::error_code> release_quietly(session& s, const lock& l) {
  call_options few;
  few.retry_count = 2;
  auto [ec, r] = co_await s.manager().async_unlock(l, few, as_tuple(asio::use_awaitable));
  s.note_release(r.report);
  if (ec && ec != errc::lock_expired) {
    print_failure("warning: release failed (" + ec.message() + "); the keys expire with their TTL",
                  r.report, s.conf().verbose);
  }
  co_return ec;
}

asio::awaitable<std::string> wrong_type_hint(session& s, const std::vector<std::string>& resources,
                                             const report& r) {
  if (!saw_wrong_type(r))
    co_return std::string();
  const std::string generic = "a resource key holds a non-string value: not a lock key?";
  auto [ec, in] = co_await async_inspect(s.manager(), resources, as_tuple(asio::use_awaitable));
  if (ec)
    co_return generic;
  std::vector<bool> other_type(resources.size(), false);
  for (const auto& n : in.nodes) {
    for (std::size_t i = 0; i < n.keys.size() && i < resources.size(); ++i) {
      if (n.keys[i].present && !n.keys[i].value)
        other_type[i] = true;
    }
  }
  std::string out;
  for (std::size_t i = 0; i < resources.size(); ++i) {
    if (other_type[i]) {
      out += (out.empty() ? "" : "; ") + std::string("key '") + printable(resources[i]) +
             "' holds a non-string value: not a lock key?";
    }
  }
  co_return out.empty() ? generic : out;
}

asio::awaitable<int> report_acquire_failure(session& s, std::error_code ec,
                                            const std::vector<std::string>& resources, int attempts,
                                            const report& r) {
  std::string what = describe_acquire_failure(ec, resources, attempts, r);
  const auto hint = co_await wrong_type_hint(s, resources, r);
  if (!hint.empty())
    what += "; " + hint;
  // Refused before sending (usage errors): the per-server lines would only say "pending".
  const bool refused = exit_code_for(ec) == exit_usage;
  print_failure(what, r, s.conf().verbose || (ec != errc::resource_locked && !refused));
  co_return exit_code_for(ec);
}

}  // namespace redlock::cli

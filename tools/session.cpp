#include "session.hpp"

#include <signal.h>
#include <string.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <random>

#include <asio/co_spawn.hpp>
#include <asio/use_awaitable.hpp>

#include "duration.hpp"
#include "redlock/asio_compat.hpp"
#include "redlock/error.hpp"
#include "redlock/inspect.hpp"

namespace redlock::cli {

namespace {

std::chrono::milliseconds jittered(std::chrono::milliseconds delay,
                                   std::chrono::milliseconds jitter) {
  // Jitter only spreads contending clients apart; it needs no cryptographic quality.
  static std::mt19937_64 rng{std::random_device{}()};
  if (jitter.count() <= 0)
    return delay;
  std::uniform_int_distribution<std::int64_t> dist(-jitter.count(), jitter.count());
  const auto d = delay.count() + dist(rng);
  return std::chrono::milliseconds(d < 0 ? 0 : d);
}

}  // namespace

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
  if (sleeper != nullptr)
    sleeper->cancel();
}

asio::awaitable<acquire_result> acquire_waiting(session& s,
                                                const std::vector<std::string>& resources,
                                                std::chrono::milliseconds ttl, wait_options w,
                                                interruption& intr) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline = start + (w.no_wait ? std::chrono::milliseconds(0) : w.wait);
  const auto& st = s.conf().settings;
  status_line line;
  asio::steady_timer sleeper(s.context());
  intr.sleeper = &sleeper;

  call_options once;
  once.retry_count = 0;  // the loop below does the waiting, so it can show progress
  std::error_code last;
  lock result;
  int attempts = 0;
  for (;;) {
    ++attempts;
    auto [ec, l] =
        co_await s.manager().async_lock(resources, ttl, once, as_tuple(asio::use_awaitable));
    last = ec;
    result = std::move(l);
    if (!ec || intr.signo != 0)
      break;
    if (ec != errc::resource_locked && ec != errc::quorum_unreachable &&
        ec != errc::validity_exhausted)
      break;  // invalid argument, closed: waiting does not help
    const auto now = clock::now();
    if (now >= deadline)
      break;
    if (line.enabled()) {
      std::string text =
          "redlock: waiting " +
          format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(now - start)) +
          ", " + std::to_string(attempts) + (attempts == 1 ? " attempt" : " attempts");
      if (ec == errc::resource_locked) {
        auto ttl_left = co_await holder_ttl(s, resources);
        text += ttl_left ? ", held by another owner for " + format_duration(*ttl_left)
                         : ", held by another owner";
      } else {
        text += ", " +
                std::to_string(result.report().count(vote::error) +
                               result.report().count(vote::timeout)) +
                " of " + std::to_string(s.manager().size()) + " servers failing";
      }
      line.show(text);
    }
    const auto pause = std::min<clock::duration>(jittered(st.retry_delay, st.retry_jitter),
                                                 deadline - clock::now());
    sleeper.expires_after(pause);
    co_await sleeper.async_wait(as_tuple(asio::use_awaitable));
    if (intr.signo != 0)
      break;
  }
  intr.sleeper = nullptr;
  line.clear();
  co_return acquire_result{last, std::move(result), attempts};
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

asio::awaitable<std::optional<std::chrono::milliseconds>> holder_ttl(
    session& s, const std::vector<std::string>& resources) {
  auto [ec, in] = co_await async_inspect(s.manager(), resources, as_tuple(asio::use_awaitable));
  if (ec || !in.held() || in.validity_deadline == steady_clock::time_point::max())
    co_return std::nullopt;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(in.remaining());
  co_return left.count() > 0 ? std::optional(left) : std::nullopt;
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

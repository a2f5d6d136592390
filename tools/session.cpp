#include "session.hpp"

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

constexpr auto quit_deadline = std::chrono::seconds(5);

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

session::session(config c) : conf_(std::move(c)) {
  manager_ = make_manager(ioc_.get_executor(), conf_);
}

session::~session() = default;

int session::run(std::function<asio::awaitable<int>()> body) {
  int code = exit_software;
  std::exception_ptr failure;
  asio::steady_timer guard(ioc_);
  asio::co_spawn(
      ioc_,
      [&]() -> asio::awaitable<void> {
        try {
          code = co_await body();
        } catch (...) {
          failure = std::current_exception();
        }
        // quit waits for operations in flight (a release after a lost lock, say); the
        // guard keeps a stuck server from holding the exit up for longer than that.
        guard.expires_after(quit_deadline);
        guard.async_wait([this](std::error_code ec) {
          if (!ec)
            ioc_.stop();
        });
        co_await manager_->async_quit(as_tuple(asio::use_awaitable));
        guard.cancel();
        ioc_.stop();
      },
      [&](std::exception_ptr e) {
        if (e && !failure)
          failure = e;
        ioc_.stop();
      });
  ioc_.run();
  if (failure)
    std::rethrow_exception(failure);
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

}  // namespace redlock::cli

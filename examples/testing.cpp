// Testing your own lock-using code without Redis: redlock::testing (link redlock::testing).
//
// `send_daily_report` is the code under test: it sends the report only while it holds the
// lock, so that of many workers exactly one sends it. The checks below run it against a fake
// deployment of three servers, with contention, a holder that crashed (its keys expire when
// the virtual clock is advanced) and a server that is down.
#include <redlock.hpp>
#include <redlock/testing.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <cstdlib>
#include <iostream>
#include <optional>

using namespace std::chrono_literals;

// --- the user's code ----------------------------------------------------------------------

/// Sends the report unless another worker holds "report:daily". Returns whether it sent.
asio::awaitable<bool> send_daily_report(redlock::lock_manager& manager, int& reports_sent) {
  auto [ec, lock] =
      co_await manager.async_lock("report:daily", 30s, redlock::as_tuple(asio::use_awaitable));
  if (ec)
    co_return false;  // another worker has it (errc::resource_locked), or Redis is failing
  ++reports_sent;
  co_await lock.async_unlock(redlock::as_tuple(asio::use_awaitable));
  co_return true;
}

// --- its test -----------------------------------------------------------------------------

// Runs `io` until the coroutine has finished and returns its result. Not io.run(): after a
// failed attempt the manager keeps retrying releases in the background (bounded by the
// TTL), and those need not finish for the test to go on.
template <class T>
T run(asio::io_context& io, asio::awaitable<T> a) {
  std::optional<T> result;
  std::exception_ptr error;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T r) {
    error = e;
    result = std::move(r);
  });
  io.restart();
  while (!result && !error)
    io.run_one();
  if (error)
    std::rethrow_exception(error);
  return std::move(*result);
}

int main() {
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    std::cout << (ok ? "ok:   " : "FAIL: ") << what << "\n";
    failures += ok ? 0 : 1;
  };

  asio::io_context io;
  redlock::testing::fake_deployment redis(io.get_executor(), 3);
  // The manager's timers run on real time: keep its pauses short in tests.
  redlock::manager_options opts;
  opts.retry_count = 0;
  opts.request_timeout = 50ms;
  redlock::lock_manager worker(io.get_executor(), redis.nodes(), opts);
  redlock::lock_manager crashed(io.get_executor(), redis.nodes(), opts);
  int sent = 0;

  check(run(io, send_daily_report(worker, sent)) && sent == 1, "sends when nobody holds the lock");
  check(redis[0].store().empty(), "leaves no key behind");

  // Another worker took the lock and crashed without unlocking it.
  auto [ec, held] =
      run(io, crashed.async_lock("report:daily", 30s, redlock::as_tuple(asio::use_awaitable)));
  check(!ec, "a second worker takes the lock");
  check(!run(io, send_daily_report(worker, sent)) && sent == 1,
        "does not send while another worker holds the lock");

  redis.clock().advance(30s);  // the crashed worker's keys expire on every server
  check(run(io, send_daily_report(worker, sent)) && sent == 2,
        "sends once the crashed worker's lock expired");

  redis[2].go_down();
  check(run(io, send_daily_report(worker, sent)) && sent == 3, "sends with one server down");
  redis[1].go_down();
  check(!run(io, send_daily_report(worker, sent)) && sent == 3,
        "does not send without a quorum of servers");

  (void)held;
  std::cout << (failures == 0 ? "all checks passed\n" : "some checks failed\n");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

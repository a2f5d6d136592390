// Lock, work, extend, unlock with C++20 coroutines.
//   REDLOCK_SERVERS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003
#include <redlock.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <cstdlib>
#include <iostream>
#include <sstream>

using namespace std::chrono_literals;

static std::vector<std::string> servers_from_env() {
  std::vector<std::string> urls;
  std::stringstream in(std::getenv("REDLOCK_SERVERS") ? std::getenv("REDLOCK_SERVERS") : "");
  for (std::string url; std::getline(in, url, ',');)
    urls.push_back(url);
  return urls;
}

asio::awaitable<void> work(redlock::lock_manager& manager) {
  // Throws redlock::lock_error when the lock cannot be had (use redlock::as_tuple to get
  // the error code instead).
  redlock::lock lock = co_await manager.async_lock("example:report", 10s, asio::use_awaitable);
  std::cout << "locked " << lock.value() << " for " << lock.remaining() / 1ms << " ms\n";

  asio::steady_timer timer(co_await asio::this_coro::executor, 100ms);
  co_await timer.async_wait(asio::use_awaitable);  // the protected work

  lock = co_await lock.async_extend(10s, asio::use_awaitable);  // need more time
  std::cout << "extended, " << lock.remaining() / 1ms << " ms left\n";

  auto released = co_await lock.async_unlock(asio::use_awaitable);
  std::cout << "released on " << released.released << " of " << released.nodes << " nodes\n";
  co_await manager.async_quit(asio::use_awaitable);
}

int main() {
  asio::io_context io;
  redlock::lock_manager manager(io.get_executor(), servers_from_env());
  int status = EXIT_FAILURE;
  asio::co_spawn(io, work(manager), [&](std::exception_ptr e) {
    if (!e) {
      status = EXIT_SUCCESS;
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      std::cerr << "failed: " << ex.what() << "\n";
    }
  });
  io.run();
  return status;
}

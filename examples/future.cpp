// Lock, work, extend, unlock from a plain thread with std::future, the manager running on
// an io_context thread of its own.
//   REDLOCK_SERVERS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003
#include <redlock.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;

static std::vector<std::string> servers_from_env() {
  std::vector<std::string> urls;
  std::stringstream in(std::getenv("REDLOCK_SERVERS") ? std::getenv("REDLOCK_SERVERS") : "");
  for (std::string url; std::getline(in, url, ',');)
    urls.push_back(url);
  return urls;
}

int main() {
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  int status = EXIT_SUCCESS;
  {
    redlock::lock_manager manager(io.get_executor(), servers_from_env());
    try {
      // future::get() throws redlock::lock_error (a std::system_error) on failure.
      auto lock = manager.async_lock("example:report", 10s, asio::use_future).get();
      std::cout << "locked " << lock.value() << "\n";
      std::this_thread::sleep_for(100ms);  // the protected work
      lock = manager.async_extend(lock, 10s, asio::use_future).get();
      std::cout << "extended, " << lock.remaining() / 1ms << " ms left\n";
      auto r = manager.async_unlock(lock, asio::use_future).get();
      std::cout << "released on " << r.released << " of " << r.nodes << " nodes\n";
    } catch (const std::system_error& e) {
      std::cerr << "failed: " << e.what() << "\n";
      status = EXIT_FAILURE;
    }
    manager.async_quit(asio::use_future).get();
  }
  guard.reset();
  runner.join();
  return status;
}

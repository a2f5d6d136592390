// Lock, work, extend, unlock with plain completion callbacks.
//   REDLOCK_SERVERS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003
#include <redlock.hpp>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

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

int main() {
  asio::io_context io;
  redlock::lock_manager manager(io.get_executor(), servers_from_env());
  asio::steady_timer work(io);
  int status = EXIT_FAILURE;

  auto fail = [&](const char* what, std::error_code ec, const redlock::report& r) {
    std::cerr << what << ": " << ec.message() << "\n" << r.to_string();
    manager.async_quit([](std::error_code) {});
  };

  manager.async_lock("example:report", 10s, [&](std::error_code ec, redlock::lock lock) {
    if (ec)
      return fail("lock", ec, lock.report());
    std::cout << "locked " << lock.value() << "\n";
    work.expires_after(100ms);  // the protected work
    work.async_wait([&, lock](std::error_code) {
      lock.async_extend(10s, [&](std::error_code ec2, redlock::lock longer) {
        if (ec2)
          return fail("extend", ec2, longer.report());
        std::cout << "extended, " << longer.remaining() / 1ms << " ms left\n";
        longer.async_unlock([&](std::error_code ec3, redlock::unlock_result r) {
          if (ec3)
            return fail("unlock", ec3, r.report);
          std::cout << "released on " << r.released << " of " << r.nodes << " nodes\n";
          status = EXIT_SUCCESS;
          manager.async_quit([](std::error_code) {});
        });
      });
    });
  });
  io.run();
  return status;
}

// Lock, work, extend, unlock without an event loop: the blocking facade.
//   REDLOCK_SERVERS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003
#include <redlock.hpp>

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

int main() try {
  redlock::blocking_lock_manager manager(servers_from_env());

  redlock::lock lock = manager.lock({"example:report"}, 10s);  // throws lock_error
  std::cout << "locked " << lock.value() << "\n";
  std::this_thread::sleep_for(100ms);  // the protected work

  lock = manager.extend(lock, 10s);
  std::cout << "extended, " << lock.remaining() / 1ms << " ms left\n";

  auto r = manager.unlock(lock);
  std::cout << "released on " << r.released << " of " << r.nodes << " nodes\n";
  return EXIT_SUCCESS;
} catch (const redlock::lock_error& e) {
  std::cerr << "failed: " << e.what() << "\n";  // includes the per-node report
  return EXIT_FAILURE;
}

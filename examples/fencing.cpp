// Fencing tokens guarding your own data: a fenced lock's token goes with every write, and a
// fenced_store refuses a write whose token is lower than the highest it has seen.
//   REDLOCK_SERVERS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003
//
// Holder A takes the lock and writes. Then A stalls (a pause, a partition) long enough to lose
// the lock (shown here by releasing it), holder B takes it with a higher token and writes.
// When A wakes up and writes with its old token, the store refuses it: B's data stays.
#include <redlock.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <stdexcept>

using namespace std::chrono_literals;

static std::vector<std::string> servers_from_env() {
  std::vector<std::string> urls;
  std::stringstream in(std::getenv("REDLOCK_SERVERS") ? std::getenv("REDLOCK_SERVERS") : "");
  for (std::string url; std::getline(in, url, ',');)
    urls.push_back(url);
  return urls;
}

static void expect(bool ok, const char* what) {
  if (!ok)
    throw std::runtime_error(std::string("unexpected: ") + what);
}

asio::awaitable<void> work(redlock::lock_manager& manager, const redlock::fenced_store& store) {
  // Holder A: lock, then write with the lock's token.
  redlock::lock a = co_await manager.async_lock("example:fencing", 10s, asio::use_awaitable);
  std::cout << "A holds the lock with token " << a.fencing_token() << "\n";
  auto w = co_await store.async_write(a.fencing_token(), "report by A", asio::use_awaitable);
  std::cout << "A writes: " << (w.accepted ? "accepted" : "refused") << "\n";
  expect(w.accepted, "A's first write was refused");

  // A stalls and its lock ends (its keys expire; released here to keep the example short).
  co_await a.async_unlock(asio::use_awaitable);

  // Holder B: a later acquisition, so a higher token.
  redlock::lock b = co_await manager.async_lock("example:fencing", 10s, asio::use_awaitable);
  std::cout << "B holds the lock with token " << b.fencing_token() << "\n";
  expect(b.fencing_token() > a.fencing_token(), "B's token is not above A's");
  w = co_await store.async_write(b.fencing_token(), "report by B", asio::use_awaitable);
  std::cout << "B writes: " << (w.accepted ? "accepted" : "refused") << "\n";
  expect(w.accepted, "B's write was refused");

  // A wakes up, still believing it holds the lock, and writes with its old token.
  w = co_await store.async_write(a.fencing_token(), "stale report by A", asio::use_awaitable);
  std::cout << "A writes again with token " << a.fencing_token() << ": "
            << (w.accepted ? "accepted" : "refused") << " (highest token " << w.highest << ")\n";
  expect(!w.accepted && w.highest == b.fencing_token(), "A's stale write was not refused");

  redlock::fenced_value v = co_await store.async_read(asio::use_awaitable);
  std::cout << "stored: \"" << v.value.value_or("") << "\" with token " << v.token << "\n";
  expect(v.value == "report by B", "B's data was not kept");

  co_await b.async_unlock(asio::use_awaitable);
  co_await manager.async_quit(asio::use_awaitable);
}

int main() {
  const auto servers = servers_from_env();
  if (servers.empty()) {
    std::cerr << "set REDLOCK_SERVERS\n";
    return EXIT_FAILURE;
  }
  asio::io_context io;
  redlock::manager_options options;
  options.fencing = true;  // every lock carries a token (lock::fencing_token())
  redlock::lock_manager manager(io.get_executor(), servers, options);
  // The protected data: here on the first lock server, usually a Redis of its own.
  auto data = redlock::make_node(io.get_executor(), servers.front(), {});
  redlock::fenced_store store(io.get_executor(), data, "example:fencing:report");

  int status = EXIT_FAILURE;
  asio::co_spawn(io, work(manager, store), [&](std::exception_ptr e) {
    data->close();
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

// An io_context run by one background thread, for tests that drive a lock_manager from the
// test thread through futures and callbacks.
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include "redlock/lock_manager.hpp"

namespace redlock::test {

/// Runs `io` on the calling thread until pred() holds; false once `limit` has passed (the
/// test then fails instead of hanging). For tests that drive a manager single-threaded.
template <class Pred>
bool run_until(asio::io_context& io, Pred pred,
               std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until)
      return false;
    if (io.stopped())
      io.restart();
    io.run_one_for(std::chrono::milliseconds(5));
  }
  return true;
}

/// What one asynchronous call completed with; `done` false when it did not complete in time.
template <class T>
struct outcome {
  bool done = false;
  std::error_code ec;
  T value{};
};

/// Calls `start(handler)`, then runs `io` until the handler ran (at most `limit`): the call's
/// outcome. For the fixtures that drive a manager on a fake deployment, single-threaded.
template <class T, class Start>
outcome<T> complete(asio::io_context& io, Start&& start,
                    std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto out = std::make_shared<outcome<T>>();
  start([out](std::error_code ec, T v) {
    out->done = true;
    out->ec = ec;
    out->value = std::move(v);
  });
  run_until(
      io, [&] { return out->done; }, limit);
  return *out;
}

/// Runs its io_context on a thread from construction until stop().
class io_thread {
 public:
  io_thread() : thread_([this] { io_.run(); }) {}
  ~io_thread() { stop(); }
  io_thread(const io_thread&) = delete;
  io_thread& operator=(const io_thread&) = delete;

  asio::io_context& context() noexcept { return io_; }
  asio::io_context::executor_type executor() noexcept { return io_.get_executor(); }

  /// Quits `m` (waiting up to `limit` for its operations), then lets the thread run out and
  /// joins it. Safe to call twice.
  void stop(lock_manager& m, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    if (thread_.joinable()) {
      auto q = m.async_quit(asio::use_future);
      (void)q.wait_for(limit);
    }
    stop();
  }
  /// Lets the thread run out (work already queued still runs) and joins it.
  void stop() {
    work_.reset();
    if (thread_.joinable())
      thread_.join();
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread thread_;  // last: starts once io_ and work_ exist
};

/// f.get(), or std::runtime_error when `f` is not ready within `deadline`.
template <class T>
T get_within(std::future<T>& f, std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
  if (f.wait_for(deadline) != std::future_status::ready)
    throw std::runtime_error("no completion within " + std::to_string(deadline.count()) + " ms");
  return f.get();
}

}  // namespace redlock::test

// The waiting acquires of the integration tests of wake-up and fair mode (wake_test,
// fair_test): a lock started on a real manager and waited for under a deadline, and the
// unlock and quit that go with it.
#pragma once

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "redlock/lock_manager.hpp"

namespace redlock::test {

struct lock_outcome {
  std::error_code ec;
  lock l;
  std::chrono::steady_clock::time_point at{};  ///< when the lock completed
};

/// Starts a lock of `resource` (TTL 20 s); the future gets its outcome.
inline std::future<lock_outcome> start_lock(lock_manager& m, const std::string& resource,
                                            call_options o = {},
                                            asio::cancellation_slot slot = {}) {
  using namespace std::chrono_literals;
  auto p = std::make_shared<std::promise<lock_outcome>>();
  auto f = p->get_future();
  m.async_lock({resource}, 20s, o,
               asio::bind_cancellation_slot(slot, [p](std::error_code ec, lock l) {
                 p->set_value({ec, std::move(l), std::chrono::steady_clock::now()});
               }));
  return f;
}

/// The outcome, or a test failure (and errc::timeout) when it takes longer than `limit`.
inline lock_outcome await_lock(std::future<lock_outcome>& f,
                               std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  if (f.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "lock did not complete within " << limit.count() << " ms";
    return {make_error_code(errc::timeout), {}, {}};
  }
  return f.get();
}

/// Unlocks and waits (20 s at most) for the completion.
inline void unlock_and_wait(lock_manager& m, const lock& l) {
  std::promise<void> p;
  m.async_unlock(l, [&](std::error_code, unlock_result) { p.set_value(); });
  ASSERT_EQ(p.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
}

/// Quits and waits (20 s at most) for the completion.
inline void quit_and_wait(lock_manager& m) {
  std::promise<void> p;
  m.async_quit([&](std::error_code) { p.set_value(); });
  ASSERT_EQ(p.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
}

/// A waiter that only a wake-up can serve in time: unlimited retries, its poll after 30 s.
inline call_options patient() {
  using namespace std::chrono_literals;
  call_options o;
  o.retry_count = -1;
  o.retry_delay = 30s;
  o.retry_jitter = 0ms;
  return o;
}

}  // namespace redlock::test

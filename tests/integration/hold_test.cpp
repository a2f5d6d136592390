// Holding against real redis-server processes: automatic extension, the loss signal (majority
// killed, keys deleted or stolen), the hold cap, release on exception, re-sync of a restarted
// node, the blocking form and lock_keeper.
#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "redlock/asio_compat.hpp"
#include "redlock/blocking.hpp"
#include "redlock/error.hpp"
#include "redlock/hold.hpp"
#include "redlock/lock_manager.hpp"
#include "support/io_thread.hpp"
#include "support/options.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::hold_context;
using redlock::hold_options;
using redlock::loss_reason;
using redlock::steady_clock;
using redlock::test::redis_server;
using redlock::test::wait_for;

redlock::manager_options fast_settings() {
  auto s = redlock::test::fast_options();
  // Holds extend every ttl/3: shorter timeouts keep a failing server's cost small.
  s.request_timeout = 100ms;
  s.connect_timeout = 200ms;
  return s;
}

template <class T>
T get(std::future<T>& f) {
  return redlock::test::get_within(f, 15s);
}

// Sleeps inside a routine; returns false when the wait was cancelled (the loss signal).
asio::awaitable<bool> nap(steady_clock::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  auto [ec] = co_await t.async_wait(redlock::as_tuple(asio::use_awaitable));
  co_return !ec;
}

class HoldTest : public ::testing::Test {
 protected:
  void SetUp() override {
    servers_ = redlock::test::start_servers(3);
    const auto urls = redlock::test::urls_of(servers_);
    manager_ = std::make_unique<redlock::lock_manager>(io_.executor(), urls, fast_settings());
  }
  void TearDown() override { io_.stop(*manager_, 10s); }

  std::string get_key(std::size_t server, const std::string& key) {
    auto r = servers_[server]->command({"GET", key});
    return r.kind == redlock::reply::type::string ? r.str : std::string("<none>");
  }
  bool absent_everywhere(const std::string& key) {
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (!servers_[i]->running())
        continue;
      if (get_key(i, key) != "<none>")
        return false;
    }
    return true;
  }

  template <class Routine>
  auto hold(std::string key, std::chrono::milliseconds ttl, hold_options o, Routine r) {
    std::vector<std::string> res{std::move(key)};
    return redlock::async_hold(*manager_, std::move(res), ttl, std::move(o), std::move(r),
                               asio::use_future);
  }

  struct failure {
    std::string type;
    std::error_code code;
    std::string what;
  };
  // Completes with what the hold's exception was. The exception is examined in the handler,
  // on the io thread: handing an exception_ptr to another thread (as use_future does) trips
  // a ThreadSanitizer false positive, libstdc++'s refcount not being instrumented.
  template <class Routine>
  std::future<failure> hold_failure(std::string key, std::chrono::milliseconds ttl, hold_options o,
                                    Routine r) {
    auto p = std::make_shared<std::promise<failure>>();
    auto f = p->get_future();
    std::vector<std::string> res{std::move(key)};
    redlock::async_hold(*manager_, std::move(res), ttl, std::move(o), std::move(r),
                        [p](std::exception_ptr e, auto) {
                          failure out;
                          try {
                            if (e)
                              std::rethrow_exception(e);
                            out.type = "none";
                          } catch (const redlock::lock_error& x) {
                            out.type = "lock_error";
                            out.code = x.code();
                          } catch (const std::runtime_error& x) {
                            out.type = "runtime_error";
                            out.what = x.what();
                          } catch (...) {
                            out.type = "other";
                          }
                          p->set_value(out);
                        });
    return f;
  }

  std::vector<std::unique_ptr<redis_server>> servers_;
  redlock::test::io_thread io_;  // before manager_: outlives it
  std::unique_ptr<redlock::lock_manager> manager_;
};

TEST_F(HoldTest, RoutineOutlivingTheTtlStaysHeldThroughExtensionsAndIsReleasedAtTheEnd) {
  std::atomic<bool> past_ttl{false};
  std::atomic<bool> checked{false};
  std::string value;
  auto f = hold("hold:extend", 400ms, {}, [&](hold_context ctx) -> asio::awaitable<int> {
    co_await nap(700ms);  // well past the 400 ms TTL
    value = ctx.current_lock().value();
    past_ttl = true;
    while (!checked && !ctx.lost())
      co_await nap(5ms);  // bounded by the test's wait below
    co_await nap(300ms);
    co_return 42;
  });
  ASSERT_TRUE(wait_for([&] { return past_ttl.load(); }, 10s));
  for (std::size_t i = 0; i < servers_.size(); ++i)
    EXPECT_EQ(get_key(i, "hold:extend"), value);
  checked = true;
  auto r = get(f);
  EXPECT_TRUE(r.held_throughout);
  EXPECT_EQ(r.reason, loss_reason::none);
  EXPECT_GE(r.extensions, 2);
  ASSERT_TRUE(r.value.has_value());
  EXPECT_EQ(*r.value, 42);
  EXPECT_FALSE(r.unlock_error);
  EXPECT_TRUE(absent_everywhere("hold:extend"));
}

TEST_F(HoldTest, MajorityKilledSignalsTheRoutineWithinOneTtlOfTheKill) {
  const auto ttl = 1000ms;
  std::atomic<bool> started{false};
  std::atomic<steady_clock::rep> signalled_at{0};
  auto f = hold("hold:majority", ttl, {}, [&](hold_context ctx) -> asio::awaitable<loss_reason> {
    started = true;
    bool slept = co_await nap(20s);  // only the loss signal ends this early
    signalled_at = steady_clock::now().time_since_epoch().count();
    EXPECT_FALSE(slept);
    co_return ctx.reason();
  });
  ASSERT_TRUE(wait_for([&] { return started.load(); }, 10s));
  auto killed_at = steady_clock::now();
  servers_[0]->kill9();
  servers_[1]->kill9();
  auto r = get(f);
  ASSERT_TRUE(r.value.has_value());
  EXPECT_EQ(*r.value, loss_reason::expired);
  EXPECT_EQ(r.reason, loss_reason::expired);
  EXPECT_FALSE(r.held_throughout);
  EXPECT_TRUE(r.error) << "the failed extension's error is kept";
  // The signal comes at the latest at the validity deadline: at most one extension interval
  // (half a TTL) plus the threshold (half a TTL) after the kill. Generous slack for CI.
  auto waited = steady_clock::time_point(steady_clock::duration(signalled_at.load())) - killed_at;
  EXPECT_LT(waited, ttl + 500ms);
  EXPECT_TRUE(absent_everywhere("hold:majority"));  // the survivor was released
}

TEST_F(HoldTest, KeysDeletedOnAMajoritySignalLostAtTheNextExtension) {
  std::atomic<bool> started{false};
  auto f = hold("hold:deleted", 600ms, {}, [&](hold_context ctx) -> asio::awaitable<loss_reason> {
    started = true;
    co_await nap(20s);
    co_return ctx.reason();
  });
  ASSERT_TRUE(wait_for([&] { return started.load(); }, 10s));
  servers_[0]->command({"DEL", "hold:deleted"});
  servers_[1]->command({"DEL", "hold:deleted"});
  auto r = get(f);
  EXPECT_EQ(r.reason, loss_reason::lost);
  EXPECT_EQ(r.error, errc::lock_lost);
  ASSERT_TRUE(r.value.has_value());
  EXPECT_EQ(*r.value, loss_reason::lost);
}

TEST_F(HoldTest, ForeignValueOnAMajoritySignalsLostAndIsNotDeletedByTheRelease) {
  std::atomic<bool> started{false};
  auto f = hold("hold:stolen", 600ms, {}, [&](hold_context) -> asio::awaitable<void> {
    started = true;
    co_await nap(20s);
  });
  ASSERT_TRUE(wait_for([&] { return started.load(); }, 10s));
  servers_[0]->command({"SET", "hold:stolen", "foreign"});
  servers_[1]->command({"SET", "hold:stolen", "foreign"});
  auto r = get(f);
  EXPECT_EQ(r.reason, loss_reason::lost);
  EXPECT_EQ(get_key(0, "hold:stolen"), "foreign");
  EXPECT_EQ(get_key(1, "hold:stolen"), "foreign");
}

TEST_F(HoldTest, CapSignalsMaxHoldAndTheLockIsReleasedWhenTheRoutineReturns) {
  hold_options o;
  o.max_hold = 700ms;
  auto begin = steady_clock::now();
  auto f = hold("hold:cap", 400ms, o, [&](hold_context ctx) -> asio::awaitable<loss_reason> {
    co_await nap(20s);
    co_return ctx.reason();
  });
  auto r = get(f);
  EXPECT_LT(steady_clock::now() - begin, 5s);
  EXPECT_EQ(r.reason, loss_reason::max_hold);
  ASSERT_TRUE(r.value.has_value());
  EXPECT_EQ(*r.value, loss_reason::max_hold);
  EXPECT_FALSE(r.held_throughout);
  EXPECT_FALSE(r.error);
  EXPECT_FALSE(r.unlock_error);  // still valid at the cap, so the release found it
  EXPECT_TRUE(absent_everywhere("hold:cap"));
}

TEST_F(HoldTest, RoutineExceptionIsRethrownAfterTheRelease) {
  auto f = hold_failure("hold:throw", 1000ms, {}, [&](hold_context) -> asio::awaitable<int> {
    co_await nap(10ms);
    throw std::runtime_error("routine failed");
  });
  auto r = get(f);
  EXPECT_EQ(r.type, "runtime_error");
  EXPECT_EQ(r.what, "routine failed");
  EXPECT_TRUE(absent_everywhere("hold:throw"));  // released before the completion
}

TEST_F(HoldTest, AcquireFailureCompletesWithLockErrorAndNeverRunsTheRoutine) {
  for (auto& s : servers_)
    s->command({"SET", "hold:taken", "foreign", "PX", "10000"});
  hold_options o;
  o.locking.retry_count = 0;
  std::atomic<bool> ran{false};
  auto f = hold_failure("hold:taken", 1000ms, o, [&]() -> asio::awaitable<void> {
    ran = true;
    co_return;
  });
  auto r = get(f);
  EXPECT_EQ(r.type, "lock_error");
  EXPECT_EQ(r.code, errc::resource_locked);
  EXPECT_FALSE(ran);
}

TEST_F(HoldTest, CallerCancellationIsForwardedToTheRoutineAndTheHoldEndsNormally) {
  asio::cancellation_signal cancel;
  std::atomic<bool> started{false};
  std::vector<std::string> res{"hold:cancel"};
  auto f = redlock::async_hold(
      *manager_, res, 1000ms, {},
      [&](hold_context ctx) -> asio::awaitable<bool> {
        started = true;
        bool slept = co_await nap(20s);
        EXPECT_EQ(ctx.reason(), loss_reason::none);
        co_return slept;
      },
      asio::bind_cancellation_slot(cancel.slot(), asio::use_future));
  ASSERT_TRUE(wait_for([&] { return started.load(); }, 10s));
  // Emit on the io thread, where the operation runs.
  asio::post(io_.context(), [&] { cancel.emit(asio::cancellation_type::terminal); });
  auto r = get(f);
  ASSERT_TRUE(r.value.has_value());
  EXPECT_FALSE(*r.value);
  EXPECT_TRUE(r.held_throughout);
  EXPECT_TRUE(absent_everywhere("hold:cancel"));
}

TEST_F(HoldTest, CancellingWhileAcquiringStopsTheRetriesAndNeverRunsTheRoutine) {
  for (auto& s : servers_)
    s->command({"SET", "hold:waiting", "foreign", "PX", "60000"});
  hold_options o;
  o.locking.retry_count = -1;  // would wait for the foreign holder for a minute
  asio::cancellation_signal cancel;
  std::atomic<bool> ran{false};
  auto p = std::make_shared<std::promise<std::error_code>>();
  auto f = p->get_future();
  std::vector<std::string> res{"hold:waiting"};
  const auto started = std::chrono::steady_clock::now();
  redlock::async_hold(
      *manager_, res, 1000ms, o,
      [&]() -> asio::awaitable<void> {
        ran = true;
        co_return;
      },
      asio::bind_cancellation_slot(cancel.slot(), [p](std::exception_ptr e, auto) {
        std::error_code code;
        try {
          if (e)
            std::rethrow_exception(e);
        } catch (const redlock::lock_error& x) {
          code = x.code();
        } catch (...) {
          code = make_error_code(std::errc::invalid_argument);
        }
        p->set_value(code);
      }));
  // Let it retry a few times (retry delay 20 ms) before cancelling.
  ASSERT_TRUE(wait_for([&] { return std::chrono::steady_clock::now() - started > 100ms; }, 10s));
  asio::post(io_.context(), [&] { cancel.emit(asio::cancellation_type::terminal); });
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready) << "the acquire ignored the cancellation";
  EXPECT_EQ(f.get(), errc::cancelled);
  EXPECT_FALSE(ran);
  for (std::size_t i = 0; i < servers_.size(); ++i)
    EXPECT_EQ(get_key(i, "hold:waiting"), "foreign") << "the foreign lock is untouched";
}

TEST_F(HoldTest, RestartedNodeGetsItsKeyBackAfterTheNextExtension) {
  std::atomic<bool> started{false};
  std::atomic<bool> done{false};
  std::string value;
  auto f = hold("hold:resync", 600ms, {}, [&](hold_context ctx) -> asio::awaitable<void> {
    value = ctx.current_lock().value();
    started = true;
    while (!done && !ctx.lost())
      co_await nap(10ms);  // bounded by the waits below
  });
  ASSERT_TRUE(wait_for([&] { return started.load(); }, 10s));
  servers_[2]->restart();  // no persistence: the key is gone
  EXPECT_EQ(get_key(2, "hold:resync"), "<none>");
  // The next extension (within half a TTL) sets it again.
  EXPECT_TRUE(wait_for([&] { return get_key(2, "hold:resync") == value; }, 5s));
  done = true;
  auto r = get(f);
  EXPECT_TRUE(r.held_throughout);
  EXPECT_TRUE(absent_everywhere("hold:resync"));
}

TEST_F(HoldTest, KeeperCallsLossHandlerOnceWithTheReason) {
  std::vector<std::string> res{"hold:keeper"};
  auto l = manager_->async_lock(res, 500ms, asio::use_future);
  auto lk = get(l);
  std::promise<std::pair<loss_reason, std::error_code>> lost;
  std::atomic<int> calls{0};
  redlock::lock_keeper k(lk, {}, [&](loss_reason r, std::error_code ec) {
    if (calls++ == 0)
      lost.set_value({r, ec});
  });
  // Extended past its TTL while nobody touches it.
  ASSERT_TRUE(wait_for([&] { return k.context().extensions() >= 2; }, 5s));
  EXPECT_FALSE(k.lost());
  EXPECT_GT(k.remaining(), 0ms);
  for (auto& s : servers_)
    s->command({"DEL", "hold:keeper"});
  auto lf = lost.get_future();
  auto [reason, ec] = get(lf);
  EXPECT_EQ(reason, loss_reason::lost);
  EXPECT_EQ(ec, errc::lock_lost);
  EXPECT_TRUE(k.lost());
  EXPECT_TRUE(k.context().stop_token().stop_requested());
  auto out = k.unlock();
  EXPECT_FALSE(out.held_throughout);
  EXPECT_EQ(out.reason, loss_reason::lost);
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(HoldTest, KeeperReleaseStopsExtendingAndDeletesTheKeys) {
  std::vector<std::string> res{"hold:keeper2"};
  auto l = manager_->async_lock(res, 500ms, asio::use_future);
  redlock::lock_keeper k(get(l));
  auto f = k.async_unlock(asio::use_future);
  auto out = get(f);
  EXPECT_TRUE(out.held_throughout);
  EXPECT_EQ(out.extensions, 0);
  EXPECT_TRUE(absent_everywhere("hold:keeper2"));
  // A callback, not use_future, for the error: see hold_failure() on exception_ptr and TSan.
  std::promise<std::error_code> refused;
  k.async_unlock([&refused](std::error_code ec, redlock::hold_outcome) { refused.set_value(ec); });
  auto again = refused.get_future();
  EXPECT_EQ(get(again), errc::invalid_argument) << "a second release is refused";
}

class BlockingHoldTest : public ::testing::Test {
 protected:
  void SetUp() override {
    servers_ = redlock::test::start_servers(3);
    const auto urls = redlock::test::urls_of(servers_);
    manager_ = std::make_unique<redlock::blocking_lock_manager>(urls, fast_settings());
  }
  std::vector<std::unique_ptr<redis_server>> servers_;
  std::unique_ptr<redlock::blocking_lock_manager> manager_;
};

TEST_F(BlockingHoldTest, ThreadRoutineRunsPastTheTtlAndReturnsItsValue) {
  auto r = redlock::hold(*manager_, {"bhold:value"}, 300ms, {}, [&](std::stop_token st) {
    // Bounded: 700 ms, or earlier if signalled.
    wait_for([&] { return st.stop_requested(); }, 700ms);
    return st.stop_requested() ? -1 : 7;
  });
  ASSERT_TRUE(r.value.has_value());
  EXPECT_EQ(*r.value, 7);
  EXPECT_TRUE(r.held_throughout);
  EXPECT_GE(r.extensions, 2);
  EXPECT_EQ(servers_[0]->command({"EXISTS", "bhold:value"}).integer, 0);
}

TEST_F(BlockingHoldTest, MajorityKilledRequestsTheStopToken) {
  std::atomic<bool> started{false};
  std::thread killer([&] {
    if (wait_for([&] { return started.load(); }, 10s)) {
      servers_[1]->kill9();
      servers_[2]->kill9();
    }
  });
  auto r = redlock::hold(*manager_, {"bhold:kill"}, 800ms, {}, [&](redlock::hold_context ctx) {
    started = true;
    bool stopped = wait_for([&] { return ctx.stop_token().stop_requested(); }, 10s);
    return stopped ? ctx.reason() : loss_reason::none;
  });
  killer.join();
  ASSERT_TRUE(r.value.has_value());
  EXPECT_EQ(*r.value, loss_reason::expired);
  EXPECT_FALSE(r.held_throughout);
}

TEST_F(BlockingHoldTest, ThreadRoutineExceptionIsRethrownAfterTheRelease) {
  EXPECT_THROW(redlock::hold(*manager_, {"bhold:throw"}, 1000ms, {},
                             [](std::stop_token) -> int { throw std::logic_error("boom"); }),
               std::logic_error);
  for (auto& s : servers_)
    EXPECT_EQ(s->command({"EXISTS", "bhold:throw"}).integer, 0);
}

}  // namespace

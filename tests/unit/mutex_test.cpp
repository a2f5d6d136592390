// Try-lock over fake nodes: "taken" is an outcome, failures are errors, and it is one attempt.
#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <asio/use_future.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "redlock/error.hpp"
#include "redlock/mutex.hpp"
#include "support/fake_node.hpp"
#include "support/io_thread.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::test::fake_node;
using kind = fake_node::script_kind;

class TryLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto nodes = redlock::test::make_fake_nodes(io_.executor(), 3, fakes_);
    redlock::manager_options s;
    s.retry_count = 5;  // try-lock must ignore it
    s.retry_delay = 1ms;
    s.retry_jitter = 0ms;
    s.request_timeout = 100ms;
    manager_ = std::make_unique<redlock::lock_manager>(io_.executor(), nodes, s);
  }
  void TearDown() override { io_.stop(*manager_); }
  std::pair<std::error_code, redlock::lock> try_lock(std::string key) {
    std::promise<std::pair<std::error_code, redlock::lock>> p;
    auto f = p.get_future();
    std::vector<std::string> res{std::move(key)};
    manager_->async_try_lock(res, 1000ms, [&p](std::error_code ec, redlock::lock l) {
      p.set_value({ec, std::move(l)});
    });
    return redlock::test::get_within(f);
  }
  std::size_t acquire_calls() {
    std::size_t n = 0;
    for (auto& f : fakes_)
      n += f->count(kind::acquire);
    return n;
  }

  redlock::test::io_thread io_;  // before manager_: outlives it
  std::vector<std::shared_ptr<fake_node>> fakes_;
  std::unique_ptr<redlock::lock_manager> manager_;
};

TEST_F(TryLockTest, TakenByAnotherOwnerIsNotAcquiredWithAnEmptyErrorAfterOneAttempt) {
  for (auto& f : fakes_)
    f->set_key("k", "someone-else");
  auto [ec, l] = try_lock("k");
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_FALSE(l.acquired());
  EXPECT_EQ(l.attempts(), 1);
  EXPECT_LE(acquire_calls(), 3u) << "no retries";
  for (auto& f : fakes_)
    EXPECT_EQ(f->store().at("k"), "someone-else");
}

TEST_F(TryLockTest, FreeResourceIsAcquired) {
  auto [ec, l] = try_lock("k");
  EXPECT_FALSE(ec);
  EXPECT_TRUE(l.acquired());
  EXPECT_EQ(l.resources(), std::vector<std::string>{"k"});
}

TEST_F(TryLockTest, FailingNodesAreAnErrorNotATakenResource) {
  for (auto& f : fakes_) {
    f->set_fallback(kind::acquire, fake_node::step::error(make_error_code(errc::connect_failed)));
  }
  auto [ec, l] = try_lock("k");
  EXPECT_EQ(ec, errc::quorum_unreachable);
  EXPECT_FALSE(l.acquired());
  EXPECT_LE(acquire_calls(), 3u);
}

TEST_F(TryLockTest, InvalidArgumentsAreStillErrors) {
  std::promise<std::error_code> p;
  auto f = p.get_future();
  manager_->async_try_lock(std::vector<std::string>{}, 1000ms,
                           [&p](std::error_code ec, redlock::lock) { p.set_value(ec); });
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), errc::invalid_argument);
}

}  // namespace

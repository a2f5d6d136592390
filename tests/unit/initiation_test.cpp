// Initiating functions built outside the manager (async_inspect, async_try_lock, async_hold)
// and the fenced store's, with a completion token that keeps the initiation and runs it later, as
// deferred tokens do: the initiation must not refer to the lock_manager object, which may be gone
// by then.
#include <gtest/gtest.h>

#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <cstring>
#include <exception>
#include <future>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "redlock/detail/unique_function.hpp"
#include "redlock/error.hpp"
#include "redlock/fenced_store.hpp"
#include "redlock/hold.hpp"
#include "redlock/inspect.hpp"
#include "redlock/mutex.hpp"
#include "support/fake_node.hpp"
#include "support/io_thread.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {

using namespace std::chrono_literals;

/// What the stashed operation completed with.
struct completion_box {
  std::promise<std::error_code> done;
};

/// A completion token whose async_result stores the initiation (with its arguments) in
/// `*start` instead of running it; calling `*start` runs it with a handler that fills `box`.
struct stash_token {
  redlock::detail::unique_function<void()>* start;
  std::shared_ptr<completion_box> box;
};

/// The error a completion carries: the error_code, or the lock_error inside an exception_ptr.
inline std::error_code error_of(std::error_code ec) {
  return ec;
}
inline std::error_code error_of(const std::exception_ptr& e) {
  if (!e)
    return {};
  try {
    std::rethrow_exception(e);
  } catch (const redlock::lock_error& le) {
    return le.code();
  } catch (...) {
    return make_error_code(redlock::errc::protocol_error);
  }
}

}  // namespace

template <class R, class First, class... Rest>
class asio::async_result<stash_token, R(First, Rest...)> {
 public:
  using return_type = void;

  template <class Initiation, class... InitArgs>
  static void initiate(Initiation&& init, stash_token t, InitArgs&&... args) {
    *t.start = [init = std::forward<Initiation>(init), box = t.box,
                ... a = std::forward<InitArgs>(args)]() mutable {
      std::move(init)([box](First first, Rest...) { box->done.set_value(error_of(first)); },
                      std::move(a)...);
    };
  }
};

namespace {

class DeferredInitiation : public ::testing::Test {
 protected:
  void SetUp() override {
    nodes_ = redlock::test::make_fake_nodes(io_.executor(), 3, fakes_);
    redlock::manager_options s;
    s.request_timeout = 2s;
    manager_ = new (storage_) redlock::lock_manager(io_.executor(), nodes_, s);
  }
  void TearDown() override {
    if (manager_ != nullptr)
      drop_manager();
  }

  /// Destroys the manager object and overwrites its storage, so that an initiation still
  /// using the object (instead of the shared core) fails visibly rather than by chance.
  void drop_manager() {
    manager_->~lock_manager();
    manager_ = nullptr;
    std::memset(storage_, 0, sizeof storage_);
  }

  /// Runs the stashed initiation (after the manager object is gone) and returns its error.
  std::error_code run_later(redlock::detail::unique_function<void()>& start,
                            const std::shared_ptr<completion_box>& box) {
    auto f = box->done.get_future();
    drop_manager();
    start();
    return redlock::test::get_within(f);
  }

  redlock::test::io_thread io_;
  std::vector<std::shared_ptr<redlock::test::fake_node>> fakes_;
  std::vector<std::shared_ptr<redlock::node>> nodes_;
  alignas(redlock::lock_manager) unsigned char storage_[sizeof(redlock::lock_manager)]{};
  redlock::lock_manager* manager_ = nullptr;
};

TEST_F(DeferredInitiation, InspectRunAfterTheManagerObjectIsGoneCompletesWithClosed) {
  redlock::detail::unique_function<void()> start;
  auto box = std::make_shared<completion_box>();
  redlock::async_inspect(*manager_, {"k"}, stash_token{&start, box});
  ASSERT_TRUE(start);
  EXPECT_EQ(run_later(start, box), redlock::errc::closed);
}

TEST_F(DeferredInitiation, TryLockRunAfterTheManagerObjectIsGoneCompletesWithClosed) {
  redlock::detail::unique_function<void()> start;
  auto box = std::make_shared<completion_box>();
  manager_->async_try_lock({"k"}, 1s, stash_token{&start, box});
  ASSERT_TRUE(start);
  EXPECT_EQ(run_later(start, box), redlock::errc::closed);
  for (auto& f : fakes_)
    EXPECT_TRUE(f->store().empty()) << "a closed manager acquired something";
}

TEST_F(DeferredInitiation, HoldRunAfterTheManagerObjectIsGoneFailsWithClosedWithoutRunning) {
  redlock::detail::unique_function<void()> start;
  auto box = std::make_shared<completion_box>();
  auto ran = std::make_shared<bool>(false);
  redlock::async_hold(
      *manager_, {"k"}, 1s, {},
      [ran]() -> asio::awaitable<void> {
        *ran = true;
        co_return;
      },
      stash_token{&start, box});
  ASSERT_TRUE(start);
  EXPECT_EQ(run_later(start, box), redlock::errc::closed);
  EXPECT_FALSE(*ran);
}

TEST(DeferredFencedStore, WriteRunAfterTheStoreObjectIsGoneWritesThroughItsNode) {
  redlock::test::io_thread io;
  auto node = std::make_shared<redlock::test::fake_node>(io.executor(), "fake0");
  redlock::testing::step stored;
  stored.r.kind = redlock::reply::type::array;
  stored.r.elements = {redlock::reply{redlock::reply::type::integer, 1, {}, {}},
                       redlock::reply{redlock::reply::type::string, 0, "5", {}}};
  node->push(redlock::testing::script_kind::other, stored);
  redlock::detail::unique_function<void()> start;
  auto box = std::make_shared<completion_box>();
  {
    redlock::fenced_store store(io.executor(), node, "k");
    store.async_write(5, "v", stash_token{&start, box});
  }
  ASSERT_TRUE(start);
  auto f = box->done.get_future();
  start();
  EXPECT_FALSE(redlock::test::get_within(f));
  ASSERT_EQ(node->calls().size(), 1u);
  EXPECT_EQ(node->calls()[0].keys, std::vector<std::string>{"k"});
  EXPECT_EQ(node->calls()[0].args, (std::vector<std::string>{"5", "v"}));
}

}  // namespace

// The public API accepts natural code: overloads resolve against call_options, tokens are
// constrained by their completion signature, braced lists of resources and URLs work (also
// inside co_await on GCC 12), and lock internals are out of users' reach.
#include <gtest/gtest.h>

#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "redlock.hpp"
#include "support/fake_node.hpp"
#include "support/io_thread.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::call_options;
using redlock::errc;
using redlock::lock;
using redlock::lock_manager;
using redlock::unlock_result;
using ms = std::chrono::milliseconds;

// Callbacks of the right and of a wrong signature.
using lock_cb = void (*)(std::error_code, lock);
using unlock_cb = void (*)(std::error_code, unlock_result);
using quit_cb = void (*)(std::error_code);
using wrong_cb = void (*)(int);

// What Asio gives lock_manager::executor_type as its default token: `void` in Asio 1.22 (no
// default: a call without a token does not compile), asio::deferred from Asio 1.25 on.
constexpr bool has_default_token =
    !std::is_void_v<asio::default_completion_token_t<lock_manager::executor_type>>;

// --- the call_options overloads ----------------------------------------------------------

// call_options is not a completion token, so `(r, ttl, opts)` can only mean "options, default
// token", never "opts as the token of the three-argument overload".
static_assert(!asio::completion_token_for<call_options, void(std::error_code, lock)>);
static_assert(!asio::completion_token_for<call_options, void(std::error_code, unlock_result)>);

static_assert(requires(lock_manager & m, std::vector<std::string> r, call_options o, lock_cb cb) {
  m.async_lock(r, 1s, o, cb);
  m.async_lock(r, 1s, cb);
  m.async_lock("one", 1s, cb);
  m.async_lock(std::string("one"), 1s, o, cb);
  m.async_lock({"a", "b"}, 1s, cb);
  m.async_lock({"a", "b"}, 1s, o, cb);
  m.async_lock({"one"}, 1s, cb);
  m.async_try_lock("one", 1s, cb);
  m.async_try_lock({"a", "b"}, 1s, cb);
});
static_assert(requires(lock_manager & m, std::vector<std::string> r, call_options o) {
  { m.async_lock(r, 1s, o, asio::use_future) } -> std::same_as<std::future<lock>>;
  { m.async_lock(r, 1s, asio::use_future) } -> std::same_as<std::future<lock>>;
  { m.async_lock({"a", "b"}, 1s, o, asio::use_future) } -> std::same_as<std::future<lock>>;
  { m.async_lock("one", 1s, asio::use_future) } -> std::same_as<std::future<lock>>;
});
static_assert(requires(lock_manager & m, const lock& l, call_options o, lock_cb lcb,
                       unlock_cb ucb) {
  m.async_extend(l, 1s, o, lcb);
  m.async_extend(l, 1s, lcb);
  m.async_unlock(l, o, ucb);
  m.async_unlock(l, ucb);
  l.async_extend(1s, lcb);
  l.async_unlock(ucb);
});

// With the default token: well-formed exactly when Asio has a default for the executor, and
// then the options overload is the one chosen (opts is not a token). In Asio 1.22 the call is
// cleanly rejected by the constraints instead of failing inside async_initiate.
template <class M>
constexpr bool lock_with_opts_and_default_token = requires(M& m, std::vector<std::string> r,
                                                           call_options o) {
  m.async_lock(r, 1s, o);
};
template <class M>
constexpr bool unlock_with_opts_and_default_token = requires(M& m, const lock& l, call_options o) {
  m.async_unlock(l, o);
};
template <class M>
constexpr bool extend_with_opts_and_default_token = requires(M& m, const lock& l, call_options o) {
  m.async_extend(l, 1s, o);
};
static_assert(lock_with_opts_and_default_token<lock_manager> == has_default_token);
static_assert(unlock_with_opts_and_default_token<lock_manager> == has_default_token);
static_assert(extend_with_opts_and_default_token<lock_manager> == has_default_token);

// --- every initiating function refuses a token of the wrong signature ---------------------

template <class Token>
constexpr bool lock_accepts = requires(lock_manager& m, Token t) {
  m.async_lock("r", 1s, t);
};
template <class Token>
constexpr bool try_lock_accepts = requires(lock_manager& m, Token t) {
  m.async_try_lock("r", 1s, t);
};
template <class Token>
constexpr bool extend_accepts = requires(lock_manager& m, const lock& l, Token t) {
  m.async_extend(l, 1s, t);
};
template <class Token>
constexpr bool unlock_accepts = requires(lock_manager& m, const lock& l, Token t) {
  m.async_unlock(l, t);
};
template <class Token>
constexpr bool quit_accepts = requires(lock_manager& m, Token t) {
  m.async_quit(t);
};
template <class Token>
constexpr bool handle_unlock_accepts = requires(const lock& l, Token t) {
  l.async_unlock(t);
};
template <class Token>
constexpr bool handle_extend_accepts = requires(const lock& l, Token t) {
  l.async_extend(1s, t);
};
template <class Token>
constexpr bool inspect_accepts = requires(lock_manager& m, Token t) {
  redlock::async_inspect(m, {"a", "b"}, t);
};
template <class Token>
constexpr bool keeper_unlock_accepts = requires(redlock::lock_keeper& k, Token t) {
  k.async_unlock(t);
};
using int_routine = asio::awaitable<int> (*)(redlock::hold_context);
template <class Token>
constexpr bool hold_accepts = requires(lock_manager& m, int_routine r, Token t) {
  redlock::async_hold(m, {"a", "b"}, 1s, {}, r, t);
};

static_assert(lock_accepts<lock_cb> && !lock_accepts<wrong_cb> && !lock_accepts<unlock_cb>);
static_assert(try_lock_accepts<lock_cb> && !try_lock_accepts<wrong_cb>);
static_assert(extend_accepts<lock_cb> && !extend_accepts<wrong_cb>);
static_assert(unlock_accepts<unlock_cb> && !unlock_accepts<lock_cb>);
static_assert(quit_accepts<quit_cb> && !quit_accepts<wrong_cb>);
static_assert(handle_unlock_accepts<unlock_cb> && !handle_unlock_accepts<wrong_cb>);
static_assert(handle_extend_accepts<lock_cb> && !handle_extend_accepts<wrong_cb>);
static_assert(inspect_accepts<void (*)(std::error_code, redlock::inspection)> &&
              !inspect_accepts<wrong_cb>);
static_assert(keeper_unlock_accepts<void (*)(std::error_code, redlock::hold_outcome)> &&
              !keeper_unlock_accepts<wrong_cb>);
static_assert(hold_accepts<void (*)(std::exception_ptr, redlock::hold_result<int>)> &&
              !hold_accepts<void (*)(std::exception_ptr, redlock::hold_result<void>)> &&
              !hold_accepts<wrong_cb>);

// --- braced lists of URLs: two of them used to be ambiguous ------------------------------

static_assert(std::is_constructible_v<redlock::blocking_lock_manager,
                                      std::initializer_list<std::string_view>>);
static_assert(requires { redlock::blocking_lock_manager({"redis://a", "redis://b"}); });
static_assert(requires { redlock::blocking_lock_manager({"redis://a", "redis://b"}, {}); });
static_assert(requires(asio::any_io_executor ex) { lock_manager(ex, {"redis://a", "redis://b"}); });

// --- lock internals are the library's ----------------------------------------------------

template <class L>
constexpr bool handle_internals_visible = requires(const L& l) {
  l.manager();
}
|| requires(const L& l) {
  l.written_nodes();
}
|| requires(const L& l) {
  l.uncertain_nodes();
}
|| requires {
  typename L::parts;
}
|| std::is_constructible_v<L, redlock::detail::lock_parts>;
static_assert(!handle_internals_visible<lock>);

// --- at run time -------------------------------------------------------------------------

class Api : public ::testing::Test {
 protected:
  redlock::test::io_thread io;
  std::vector<std::shared_ptr<redlock::test::fake_node>> fakes;
  lock_manager m{io.executor(), redlock::test::make_fake_nodes(io.executor(), 3, fakes), {}};

  void TearDown() override { io.stop(m); }

  template <class T>
  static T get(std::future<T>& f) {
    if (f.wait_for(10s) != std::future_status::ready)
      throw std::runtime_error("the operation did not complete within 10 s");
    return f.get();
  }
};

TEST_F(Api, BracedResourcesInsideCoAwaitLockEveryResource) {
  // The README's shape: braced lists written straight into co_await (GCC 12 rejects an
  // initializer_list materialised there; resource_list takes them without one).
  // The fake nodes do not run the inspection script: they answer it with an error, which
  // makes the verdict indeterminate but still names the resources.
  for (auto& n : fakes)
    n->push(redlock::test::fake_node::script_kind::other,
            redlock::test::fake_node::step::error(make_error_code(errc::server_error)));
  auto f = asio::co_spawn(
      io.context(),
      [this]() -> asio::awaitable<std::vector<std::string>> {
        lock l = co_await m.async_lock({"a", "b"}, 5s, asio::use_awaitable);
        auto in = co_await redlock::async_inspect(m, {"a", "b"}, asio::use_awaitable);
        EXPECT_EQ(in.resources, l.resources());
        co_await l.async_unlock(asio::use_awaitable);
        lock t = co_await m.async_try_lock({"c", "d", "e"}, 5s, asio::use_awaitable);
        co_await m.async_unlock(t, asio::use_awaitable);
        auto r = co_await redlock::async_hold(
            m, {"f", "g"}, 5s, {},
            [](redlock::hold_context ctx) -> asio::awaitable<std::vector<std::string>> {
              co_return ctx.current_lock().resources();
            },
            asio::use_awaitable);
        std::vector<std::string> all = l.resources();
        all.insert(all.end(), t.resources().begin(), t.resources().end());
        all.insert(all.end(), r.value->begin(), r.value->end());
        co_return all;
      },
      asio::use_future);
  EXPECT_EQ(get(f), (std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g"}));
}

TEST_F(Api, OneResourceByNameLocksThatResource) {
  auto f = m.async_lock("orders:42", 5s, asio::use_future);
  const lock l = get(f);
  EXPECT_EQ(l.resources(), std::vector<std::string>{"orders:42"});
  std::string name = "orders:43";
  auto g = m.async_lock(name, 5s, call_options{}, asio::use_future);
  EXPECT_EQ(get(g).resources(), std::vector<std::string>{"orders:43"});
}

TEST_F(Api, TheOptionsOverloadHonoursTheOptions) {
  // Held elsewhere on every node: with retry_count = 0 there is exactly one attempt; without
  // options the manager's retries (10 by default) would run.
  for (auto& n : fakes)
    n->set_key("busy", "another-owners-value");
  call_options once;
  once.retry_count = 0;
  auto f = m.async_lock({"busy"}, 5s, once, asio::use_future);
  try {
    get(f);
    FAIL() << "the lock was granted although another owner holds it";
  } catch (const std::system_error& e) {  // asio::use_future throws a plain system_error
    EXPECT_EQ(e.code(), errc::resource_locked);
  }
  for (auto& n : fakes)
    EXPECT_EQ(n->count(redlock::test::fake_node::script_kind::acquire), 1u);
}

TEST(ApiConstruction, TwoUrlsInBracesBuildTwoNodes) {
  // Nodes connect on their first request, so nothing here touches the network.
  redlock::blocking_lock_manager b({"redis://127.0.0.1:1", "redis://127.0.0.1:2"});
  EXPECT_EQ(b.async().size(), 2u);
  redlock::blocking_lock_manager one({"redis://127.0.0.1:1"});
  EXPECT_EQ(one.async().size(), 1u);

  asio::io_context ctx;
  lock_manager a(ctx.get_executor(), {"redis://127.0.0.1:1", "redis://127.0.0.1:2"});
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(a.quorum(), 2u);
  lock_manager three(ctx.get_executor(),
                     {"redis://127.0.0.1:1", "redis://127.0.0.1:2", "redis://127.0.0.1:3"});
  EXPECT_EQ(three.size(), 3u);
}

TEST(ApiConstruction, BracedUrlsKeepTheUrlErrors) {
  try {
    redlock::blocking_lock_manager b({"redis://127.0.0.1:1", "nonsense://x"});
    FAIL() << "a bad URL was accepted";
  } catch (const redlock::lock_error& e) {
    EXPECT_EQ(e.code(), errc::invalid_url);
  }
  asio::io_context ctx;
  EXPECT_THROW(lock_manager(ctx.get_executor(), {"redis://127.0.0.1:1", "redis://127.0.0.1:1"}),
               redlock::lock_error);
}

}  // namespace

// unique_function: a move-only callable that holds small handlers without allocating and
// destroys every held callable exactly once.
#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "redlock/detail/unique_function.hpp"

namespace {

using redlock::detail::unique_function;
using handler = unique_function<int(int)>;

// Counts live instances of itself; a test checks the count returns to zero and that no
// instance is destroyed twice (destroying a moved-from or dead instance is caught).
struct tracked {
  static inline int live = 0;
  static inline int destroyed = 0;
  bool alive = true;
  tracked() { ++live; }
  tracked(const tracked& other) : alive(other.alive) { ++live; }
  tracked(tracked&& other) noexcept : alive(other.alive) { ++live; }
  tracked& operator=(const tracked&) = default;
  tracked& operator=(tracked&&) noexcept = default;
  ~tracked() {
    EXPECT_TRUE(alive) << "destroyed twice";
    alive = false;
    --live;
    ++destroyed;
  }
  static void reset_counts() {
    live = 0;
    destroyed = 0;
  }
};

// A callable of chosen size holding a tracked member.
template <std::size_t Padding>
struct sized_callable {
  tracked t;
  std::array<unsigned char, Padding> pad{};
  int add;
  explicit sized_callable(int a) : add(a) {}
  int operator()(int x) const { return x + add; }
};
using small_callable = sized_callable<16>;
using large_callable = sized_callable<handler::inline_size + 16>;
static_assert(handler::stored_inline<small_callable>);
static_assert(!handler::stored_inline<large_callable>);

// Over-aligned: too strictly aligned for the inline storage, so it must go to the heap.
struct alignas(2 * alignof(std::max_align_t)) over_aligned_callable {
  tracked t;
  int add = 0;
  int operator()(int x) const {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(this) % alignof(over_aligned_callable), 0u);
    return x + add;
  }
};
static_assert(!handler::stored_inline<over_aligned_callable>);

// Small, but its move constructor may throw: it cannot be relocated in a noexcept move.
struct throwing_move_callable {
  tracked t;
  throwing_move_callable() = default;
  throwing_move_callable(throwing_move_callable&&) noexcept(false) = default;
  int operator()(int x) const { return x; }
};
static_assert(!handler::stored_inline<throwing_move_callable>);

class UniqueFunction : public ::testing::Test {
 protected:
  void SetUp() override { tracked::reset_counts(); }
  void TearDown() override { EXPECT_EQ(tracked::live, 0) << "a held callable leaked"; }
};

TEST_F(UniqueFunction, DefaultAndNullConstructedAreEmpty) {
  handler a;
  handler b = nullptr;
  EXPECT_FALSE(a);
  EXPECT_FALSE(b);
}

TEST_F(UniqueFunction, CallsASmallCallableStoredInline) {
  handler f = small_callable(5);
  ASSERT_TRUE(f);
  EXPECT_EQ(f(1), 6);
  EXPECT_EQ(f(2), 7);
}

TEST_F(UniqueFunction, CallsALargeCallableStoredOnTheHeap) {
  handler f = large_callable(7);
  ASSERT_TRUE(f);
  EXPECT_EQ(f(1), 8);
}

TEST_F(UniqueFunction, CallsAnOverAlignedCallableOnTheHeapAtItsAlignment) {
  over_aligned_callable c;
  c.add = 3;
  handler f = std::move(c);
  EXPECT_EQ(f(1), 4);
  handler g = std::move(f);
  EXPECT_EQ(g(2), 5);
}

TEST_F(UniqueFunction, HoldsACallableWithAThrowingMoveOnTheHeap) {
  handler f = throwing_move_callable();
  handler g = std::move(f);
  EXPECT_EQ(g(9), 9);
}

TEST_F(UniqueFunction, HoldsMoveOnlyCaptures) {
  auto p = std::make_unique<int>(40);
  handler f = [p = std::move(p)](int x) { return *p + x; };
  handler g = std::move(f);
  EXPECT_EQ(g(2), 42);
}

TEST_F(UniqueFunction, PassesMoveOnlyArguments) {
  unique_function<int(std::unique_ptr<int>)> f = [](std::unique_ptr<int> p) { return *p; };
  EXPECT_EQ(f(std::make_unique<int>(3)), 3);

  unique_function<std::unique_ptr<int>(std::unique_ptr<int> &&)> pass =
      [](std::unique_ptr<int>&& p) { return std::move(p); };
  auto in = std::make_unique<int>(4);
  auto out = pass(std::move(in));
  EXPECT_EQ(*out, 4);
}

TEST_F(UniqueFunction, PassesArgumentsLikeACompletionHandler) {
  std::string got;
  std::error_code got_ec;
  unique_function<void(std::error_code, std::string)> f = [&](std::error_code ec, std::string s) {
    got_ec = ec;
    got = std::move(s);
  };
  f(std::make_error_code(std::errc::timed_out), std::string(100, 'x'));
  EXPECT_EQ(got_ec, std::errc::timed_out);
  EXPECT_EQ(got, std::string(100, 'x'));
}

TEST_F(UniqueFunction, ReturnsAConvertibleResult) {
  unique_function<long(int)> f = [](int x) -> short { return static_cast<short>(x * 2); };
  EXPECT_EQ(f(21), 42L);
  unique_function<void(int)> discard = [](int x) { return x; };
  discard(1);
}

template <class Callable>
void expect_each_capture_destroyed_once_across_moves(int arg) {
  {
    handler a = Callable(arg);
    EXPECT_EQ(tracked::live, 1);
    handler b = std::move(a);
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is specified empty
    ASSERT_TRUE(b);
    handler c;
    c = std::move(b);
    EXPECT_FALSE(b);  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(c(1), 1 + arg);
    EXPECT_EQ(tracked::live, 1);
  }
  EXPECT_EQ(tracked::live, 0);
}

TEST_F(UniqueFunction, DestroysASmallCaptureExactlyOnceAcrossMoves) {
  expect_each_capture_destroyed_once_across_moves<small_callable>(2);
}

TEST_F(UniqueFunction, DestroysALargeCaptureExactlyOnceAcrossMoves) {
  expect_each_capture_destroyed_once_across_moves<large_callable>(3);
  // The heap copy is moved by pointer: constructed once (plus the temporary), destroyed once.
  EXPECT_EQ(tracked::destroyed, 2);
}

TEST_F(UniqueFunction, MoveAssignOverANonEmptyOneDestroysTheOldCallable) {
  handler small_a = small_callable(1);
  handler small_b = small_callable(2);
  handler large_a = large_callable(3);
  handler large_b = large_callable(4);
  EXPECT_EQ(tracked::live, 4);

  small_a = std::move(small_b);  // inline over inline
  EXPECT_EQ(tracked::live, 3);
  EXPECT_EQ(small_a(0), 2);

  large_a = std::move(small_a);  // inline over heap
  EXPECT_EQ(tracked::live, 2);
  EXPECT_EQ(large_a(0), 2);

  large_a = std::move(large_b);  // heap over inline
  EXPECT_EQ(tracked::live, 1);
  EXPECT_EQ(large_a(0), 4);

  handler large_c = large_callable(5);
  large_a = std::move(large_c);  // heap over heap
  EXPECT_EQ(tracked::live, 1);
  EXPECT_EQ(large_a(0), 5);

  large_a = nullptr;
  EXPECT_FALSE(large_a);
  EXPECT_EQ(tracked::live, 0);
}

TEST_F(UniqueFunction, MoveAssignFromAnEmptyOneEmptiesIt) {
  handler f = small_callable(1);
  handler empty;
  f = std::move(empty);
  EXPECT_FALSE(f);
  EXPECT_EQ(tracked::live, 0);
}

TEST_F(UniqueFunction, SelfMoveAssignKeepsTheCallable) {
  handler f = small_callable(1);
  handler& alias = f;
  f = std::move(alias);
  ASSERT_TRUE(f);
  EXPECT_EQ(f(1), 2);
  EXPECT_EQ(tracked::live, 1);
}

TEST_F(UniqueFunction, MoveAssignFromACallableOwnedByTheTarget) {
  // The target's callable owns the source: the source must be moved out before the target's
  // callable (and with it the source object) is destroyed.
  auto inner = std::make_unique<handler>(small_callable(10));
  handler* source = inner.get();
  handler target = [owned = std::move(inner)](int x) { return (*owned)(x); };
  target = std::move(*source);
  ASSERT_TRUE(target);
  EXPECT_EQ(target(1), 11);
}

TEST_F(UniqueFunction, CallableMayMutateItsState) {
  unique_function<int()> counter = [n = 0]() mutable { return ++n; };
  EXPECT_EQ(counter(), 1);
  EXPECT_EQ(counter(), 2);
  auto moved = std::move(counter);
  EXPECT_EQ(moved(), 3);
}

TEST_F(UniqueFunction, HoldsHandlerSizedCapturesInline) {
  // The per-node reply handler: a shared_ptr and four words.
  struct reply_handler_captures {
    std::shared_ptr<int> self;
    std::size_t i;
    int purpose;
    std::uint64_t attempt;
    std::uint64_t ticket;
    void operator()(std::error_code, const std::string&) {}
  };
  static_assert(
      unique_function<void(std::error_code, std::string)>::stored_inline<reply_handler_captures>);
}

}  // namespace

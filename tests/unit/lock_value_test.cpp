// Lock values: 128 bits from the CSPRNG, 32 lowercase hex characters, never repeated.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "internal/random.hpp"

namespace {

using redlock::detail::make_lock_value;
using redlock::detail::random_u64;

bool is_lower_hex(const std::string& s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  }
  return true;
}

TEST(LockValue, Is32LowercaseHexCharacters) {
  for (int i = 0; i < 100; ++i) {
    const auto v = make_lock_value();
    ASSERT_EQ(v.size(), 32u);
    ASSERT_TRUE(is_lower_hex(v)) << v;
  }
}

TEST(LockValue, UsesAllSixteenBytes) {
  // Every hex position takes many values over a few hundred draws: no constant padding.
  std::vector<std::set<char>> seen(32);
  for (int i = 0; i < 400; ++i) {
    const auto v = make_lock_value();
    for (std::size_t p = 0; p < 32; ++p)
      seen[p].insert(v[p]);
  }
  for (std::size_t p = 0; p < 32; ++p)
    EXPECT_GE(seen[p].size(), 8u) << "position " << p;
}

TEST(LockValue, NeverRepeatsAcrossTenThousandValues) {
  std::set<std::string> values;
  for (int i = 0; i < 10'000; ++i)
    values.insert(make_lock_value());
  EXPECT_EQ(values.size(), 10'000u);
}

TEST(LockValue, NeverRepeatsAcrossThreads) {
  constexpr int threads = 8;
  constexpr int per_thread = 2000;
  std::mutex m;
  std::set<std::string> values;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      std::vector<std::string> mine;
      for (int i = 0; i < per_thread; ++i)
        mine.push_back(make_lock_value());
      std::lock_guard lk(m);
      values.insert(mine.begin(), mine.end());
    });
  }
  for (auto& t : pool)
    t.join();
  EXPECT_EQ(values.size(), static_cast<std::size_t>(threads * per_thread));
}

// Draws in a parent and in a child made by fork_fn (the child writes its values to a pipe
// and leaves with _exit). The parent draws once before forking, so its per-thread pool holds
// unissued bytes the child would repeat if it kept them. Both then draw n values.
struct fork_draws {
  std::vector<std::string> parent;
  std::vector<std::string> child;
};

// Kills and reaps a child the test did not reap itself (a failed assertion, a timeout).
struct child_guard {
  pid_t pid = -1;
  child_guard() = default;
  child_guard(const child_guard&) = delete;
  child_guard& operator=(const child_guard&) = delete;
  ~child_guard() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

[[noreturn]] void child_draw_and_exit(int fd, int n) {
  try {
    std::string out;
    for (int i = 0; i < n; ++i)
      out += make_lock_value();
    const char* p = out.data();
    auto left = out.size();
    while (left > 0) {
      const auto w = write(fd, p, left);
      if (w <= 0)
        _exit(1);
      p += w;
      left -= static_cast<std::size_t>(w);
    }
    _exit(0);
  } catch (...) {
    _exit(2);
  }
}

void draw_in_parent_and_child(pid_t (*fork_fn)(), int n, fork_draws& out) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::seconds(10);
  const auto ms_left = [&] {
    const auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    return static_cast<int>(std::max<std::int64_t>(d.count(), 0));
  };

  (void)make_lock_value();  // fills this thread's pool before the fork
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  child_guard child;
  child.pid = fork_fn();
  ASSERT_GE(child.pid, 0);
  if (child.pid == 0) {
    close(fds[0]);
    child_draw_and_exit(fds[1], n);
  }
  close(fds[1]);
  for (int i = 0; i < n; ++i)
    out.parent.push_back(make_lock_value());

  std::string in;
  char buf[4096];
  for (;;) {
    pollfd pfd{fds[0], POLLIN, 0};
    const int ready = poll(&pfd, 1, ms_left());
    if (ready <= 0)
      break;  // timed out (the size check below fails)
    const auto r = read(fds[0], buf, sizeof buf);
    if (r <= 0)
      break;  // EOF: the child closed its end
    in.append(buf, static_cast<std::size_t>(r));
  }
  close(fds[0]);

  int status = 0;
  pid_t reaped = 0;
  while ((reaped = waitpid(child.pid, &status, WNOHANG)) == 0 && ms_left() > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(reaped, child.pid) << "the child did not exit within the deadline";
  child.pid = -1;  // reaped
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  ASSERT_EQ(in.size(), static_cast<std::size_t>(n) * 32u);
  for (int i = 0; i < n; ++i)
    out.child.push_back(in.substr(static_cast<std::size_t>(i) * 32, 32));
}

void expect_no_value_in_common(const fork_draws& d) {
  const std::set<std::string> parent(d.parent.begin(), d.parent.end());
  const std::set<std::string> child(d.child.begin(), d.child.end());
  EXPECT_EQ(parent.size(), d.parent.size());
  EXPECT_EQ(child.size(), d.child.size());
  for (const auto& v : d.child) {
    EXPECT_EQ(v.size(), 32u);
    EXPECT_TRUE(is_lower_hex(v)) << v;
    EXPECT_EQ(parent.count(v), 0u) << "the child repeated the parent's value " << v;
  }
}

pid_t plain_fork() {
  return fork();
}

// 300 values each: more than one pool, so both the bytes left over from before the fork and
// the refills after it are covered.
constexpr int values_per_side = 300;

TEST(LockValue, ParentAndForkedChildNeverShareValues) {
  fork_draws d;
  ASSERT_NO_FATAL_FAILURE(draw_in_parent_and_child(&plain_fork, values_per_side, d));
  expect_no_value_in_common(d);
}

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
pid_t fork_without_handlers() {
  return _Fork();
}

// _Fork() runs no pthread_atfork handlers, so a pool that relied on one would be repeated.
TEST(LockValue, ChildOfForkWithoutAtforkHandlersNeverSharesValues) {
  fork_draws d;
  ASSERT_NO_FATAL_FAILURE(draw_in_parent_and_child(&fork_without_handlers, values_per_side, d));
  expect_no_value_in_common(d);
}
#endif

TEST(LockValue, ValuesAndJitterNeverRepeatAcrossRefillsWhenInterleaved) {
  // 8- and 16-byte draws from the same pool, over many refills of odd alignment.
  std::set<std::string> values;
  std::set<std::uint64_t> jitter;
  for (int i = 0; i < 3000; ++i) {
    values.insert(make_lock_value());
    jitter.insert(random_u64());
  }
  EXPECT_EQ(values.size(), 3000u);
  EXPECT_EQ(jitter.size(), 3000u);
}

}  // namespace

// Lock values: 128 bits from the CSPRNG, 32 lowercase hex characters, never repeated.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "redlock/detail/random.hpp"

namespace {

using redlock::detail::make_lock_value;

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

TEST(LockValue, ParentAndForkedChildNeverShareValues) {
  (void)make_lock_value();  // the generator is seeded before the fork
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    for (int i = 0; i < 50; ++i)
      out += make_lock_value();
    const auto* p = out.data();
    auto left = out.size();
    while (left > 0) {
      const auto n = write(fds[1], p, left);
      if (n <= 0)
        _exit(1);
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::set<std::string> parent;
  for (int i = 0; i < 50; ++i)
    parent.insert(make_lock_value());
  std::string in;
  char buf[4096];
  for (;;) {
    const auto n = read(fds[0], buf, sizeof buf);
    if (n <= 0)
      break;
    in.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(in.size(), 50u * 32u);
  for (std::size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(parent.count(in.substr(i * 32, 32)), 0u);
  }
}

}  // namespace

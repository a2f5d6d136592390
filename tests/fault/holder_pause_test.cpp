// A lock holder stopped (SIGSTOP) past its validity (test-catalogue.md: "client paused past
// validity while holding"). Redlock cannot stop a paused holder from acting late -- that needs
// fencing tokens checked by the protected resource, which Redlock cannot provide (see the
// README's Guarantees). What the library must do is tell the truth when the holder wakes up:
// remaining() <= 0, extend refuses, and meanwhile another client was able to take the lock.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "fault_common.hpp"

namespace redlock::test {
namespace {

bool read_line(int fd, std::string& out, std::chrono::milliseconds deadline) {
  out.clear();
  const auto until = std::chrono::steady_clock::now() + deadline;
  char ch = 0;
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0)
      continue;
    if (read(fd, &ch, 1) != 1)
      return false;
    if (ch == '\n')
      return true;
    out += ch;
  }
  return false;
}

[[noreturn]] void pause_forever() {
  for (;;)
    ::pause();  // killed by the parent
}

TEST(HolderPause, HolderStoppedPastValidityFindsItsLockExpiredAndCannotExtendIt) {
  cluster c(3);
  int to_parent[2], to_child[2];
  ASSERT_EQ(pipe(to_parent), 0);
  ASSERT_EQ(pipe(to_child), 0);
  const auto ports = c.ports();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The holder: its own manager, created after fork.
    int rc = 1;
    {
      lock_client holder(ports);
      auto o = holder.acquire("paused-holder", 1000ms);
      std::string msg = o.ec ? "error\n" : "acquired\n";
      (void)!write(to_parent[1], msg.data(), msg.size());
      char go = 0;
      (void)!read(to_child[0], &go, 1);  // the parent stops us before this returns
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(o.held.remaining()).count();
      auto e = holder.extend(o.held, 1000ms);
      msg = std::to_string(left) + " " + (o.held.expired() ? "expired" : "valid") + " " +
            std::to_string(e.ec.value()) + "\n";
      (void)!write(to_parent[1], msg.data(), msg.size());
      rc = 0;
    }
    _exit(rc);
  }
  std::string line;
  ASSERT_TRUE(read_line(to_parent[0], line, 10s));
  ASSERT_EQ(line, "acquired");
  kill(child, SIGSTOP);
  count_fault("client-sigstop");
  // While the holder is stopped its lock expires and another client takes it.
  {
    lock_client other(ports);
    call_options retry;
    retry.retry_count = 40;
    retry.retry_delay = 100ms;
    auto o = other.acquire("paused-holder", 5000ms, retry);
    EXPECT_FALSE(o.ec) << o.held.report().to_string();
  }
  kill(child, SIGCONT);
  ASSERT_EQ(write(to_child[1], "g", 1), 1);
  ASSERT_TRUE(read_line(to_parent[0], line, 20s)) << "the holder did not report back";
  int status = 0;
  waitpid(child, &status, 0);
  long long left = 0;
  char state[16] = {0};
  int extend_ec = 0;
  ASSERT_EQ(std::sscanf(line.c_str(), "%lld %15s %d", &left, state, &extend_ec), 3) << line;
  EXPECT_LE(left, 0) << "remaining() must be <= 0 after the pause";
  EXPECT_STREQ(state, "expired");
  EXPECT_EQ(extend_ec, static_cast<int>(errc::lock_expired))
      << "extend after expiry must refuse, not re-acquire";
  for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]})
    close(fd);
}

// test-catalogue.md: "client crashes while holding" -- others acquire within TTL + drift.
TEST(HolderCrash, OthersAcquireWithinTtlPlusDriftAfterTheHolderIsKilled) {
  cluster c(3);
  int to_parent[2];
  ASSERT_EQ(pipe(to_parent), 0);
  const auto ports = c.ports();
  const auto ttl = 2000ms;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    lock_client holder(ports);
    auto o = holder.acquire("crashed-holder", ttl);
    const char* msg = o.ec ? "error\n" : "acquired\n";
    (void)!write(to_parent[1], msg, std::strlen(msg));
    pause_forever();
  }
  std::string line;
  ASSERT_TRUE(read_line(to_parent[0], line, 10s));
  ASSERT_EQ(line, "acquired");
  const auto acquired_by_child = std::chrono::steady_clock::now();
  kill(child, SIGKILL);  // no release, no goodbye
  count_fault("client-kill9");
  waitpid(child, nullptr, 0);
  lock_client other(ports);
  call_options retry;
  retry.retry_count = 100;
  retry.retry_delay = 50ms;
  retry.retry_jitter = 10ms;
  auto o = other.acquire("crashed-holder", ttl, retry);
  EXPECT_FALSE(o.ec) << o.held.report().to_string();
  const auto drift = std::chrono::milliseconds(
      static_cast<long long>(static_cast<double>(ttl.count()) * fault_settings().drift_factor) + 2);
  // Generous bound: TTL + drift from when the child had it, plus one retry step and slack.
  EXPECT_LT(std::chrono::steady_clock::now() - acquired_by_child, ttl + drift + 1000ms);
  for (int fd : to_parent)
    close(fd);
}

}  // namespace
}  // namespace redlock::test

// The `redlock` tool against real redis-servers: exit codes, the command's lifetime under
// the lock, signals, loss of the lock, and what scripts read from its output.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cli_argv.hpp"
#include "internal/scripts.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

namespace redlock::test {
namespace {

using namespace std::chrono_literals;

constexpr int exit_usage = 2;
constexpr int exit_status_free = 3;
constexpr int exit_status_indeterminate = 4;
constexpr int exit_unavailable = 69;
constexpr int exit_not_acquired = 75;
constexpr int exit_lost = 76;

class cli : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i)
      servers_.push_back(std::make_unique<redis_server>());
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    resource_ = std::string("cli-test:") + info->name();
  }

  /// argv for the binary with every server given as --server.
  std::vector<std::string> redlock(const std::vector<std::string>& args) const {
    return cli_argv(REDLOCK_CLI_PATH, servers_, args);
  }

  /// Sets `key` to a foreign value on every server, as another holder would.
  void hold_elsewhere(const std::string& key, const std::string& ttl_ms = "60000") {
    for (auto& s : servers_)
      s->command({"SET", key, "someone-else", "PX", ttl_ms});
  }

  int holders_of(const std::string& key, const std::string& value) const {
    int n = 0;
    for (const auto& s : servers_) {
      if (!s->running())
        continue;
      auto r = s->command({"GET", key});
      if (r.kind == reply::type::string && r.str == value)
        ++n;
    }
    return n;
  }

  /// Subscribers of `key`'s release channel on every running server (sharded and plain
  /// pub/sub): a waiting redlock with wake-up has one per server.
  int release_subscribers(const std::string& key) const {
    const auto channel = redlock::detail::release_channel(key);
    int n = 0;
    for (const auto& s : servers_) {
      if (!s->running())
        continue;
      for (const char* sub : {"SHARDNUMSUB", "NUMSUB"}) {
        auto r = s->command({"PUBSUB", sub, channel});
        if (r.kind == reply::type::array && r.elements.size() == 2)
          n += static_cast<int>(r.elements[1].integer);
      }
    }
    return n;
  }

  /// Waiters in `key`'s fair-mode queue: the fewest on any running server (`largest`: the
  /// most on any).
  /// Queue entries of `key` on the servers (the fewest, or the most with `largest`), those of
  /// lock value `besides` not counted.
  int fair_queue_length(const std::string& key, bool largest = false,
                        const std::string& besides = {}) const {
    int n = -1;
    for (const auto& s : servers_) {
      if (!s->running())
        continue;
      const auto q = redlock::detail::fair_queue_key(key);
      int c = static_cast<int>(s->command({"ZCARD", q}).integer);
      if (!besides.empty() && s->command({"ZSCORE", q, besides}).kind == reply::type::string)
        --c;
      n = n < 0 ? c : largest ? std::max(n, c) : std::min(n, c);
    }
    return std::max(n, 0);
  }

  /// A `redlock run` holding `key` until `marker` exists, then `then_sleep` longer; started
  /// once it holds the lock (its command printed "ready").
  std::unique_ptr<process> holder_until(const std::string& key, const std::filesystem::path& marker,
                                        const std::string& then_sleep = "0") const {
    std::filesystem::remove(marker);
    auto p = std::make_unique<process>(redlock(
        {"run", key, "--", "sh", "-c",
         "echo ready; i=0; while [ ! -e '" + marker.string() +
             "' ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; sleep " + then_sleep}));
    EXPECT_TRUE(p->wait_output([](auto& out, auto&) { return out.find("ready") != out.npos; }, 20s))
        << p->err();
    return p;
  }

  std::filesystem::path marker_path() const {
    return std::filesystem::temp_directory_path() /
           ("redlock-cli-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }

  int present_on(const std::string& key) const {
    int n = 0;
    for (const auto& s : servers_) {
      if (!s->running())
        continue;
      n += s->command({"EXISTS", key}).is_integer(1) ? 1 : 0;
    }
    return n;
  }

  std::vector<std::unique_ptr<redis_server>> servers_;
  std::string resource_;
};

// --- run: the command's exit code, and the lock around it -------------------------------

TEST_F(cli, RunPassesTheCommandsExitCodeOn) {
  auto r = run_to_end(redlock({"run", resource_, "--", "sh", "-c", "exit 7"}));
  EXPECT_EQ(r.code, 7) << r.err;
  r = run_to_end(redlock({"run", resource_, "--", "true"}));
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(cli, RunHoldsTheLockWhileTheCommandRunsAndReleasesItAfter) {
  // The command itself looks at a server: the key must hold a lock value while it runs.
  const auto& s = *servers_[0];
  const std::string check = "redis-cli -p " + std::to_string(s.port()) + " GET '" + resource_ +
                            "' | grep -Eq '^[0-9a-f]{32}$'";
  auto r = run_to_end(redlock({"run", resource_, "--", "sh", "-c", check}));
  EXPECT_EQ(r.code, 0) << "the key did not hold a lock value while the command ran: " << r.err;
  EXPECT_EQ(present_on(resource_), 0) << "the lock was not released after the command";
}

TEST_F(cli, RunCommandEndedBySignalExitsWith128PlusTheSignal) {
  auto r = run_to_end(redlock({"run", resource_, "--", "sh", "-c", "kill -KILL $$"}));
  EXPECT_EQ(r.code, 128 + SIGKILL) << r.err;
  EXPECT_EQ(present_on(resource_), 0);
}

TEST_F(cli, RunCommandNotFoundExits127AndReleases) {
  auto r = run_to_end(redlock({"run", resource_, "--", "/nonexistent/redlock-test-cmd"}));
  EXPECT_EQ(r.code, 127);
  EXPECT_NE(r.err.find("cannot run"), std::string::npos) << r.err;
  EXPECT_EQ(present_on(resource_), 0);
}

TEST_F(cli, RunExtendsTheLockBeyondItsTtlWhileTheCommandRuns) {
  // TTL 2s, the command runs 4s: without extension the key would expire under it.
  const auto& s = *servers_[1];
  const std::string script = "sleep 4; redis-cli -p " + std::to_string(s.port()) + " GET '" +
                             resource_ + "' | grep -Eq '^[0-9a-f]{32}$'";
  auto r = run_to_end(redlock({"run", "--ttl", "2s", resource_, "--", "sh", "-c", script}));
  EXPECT_EQ(r.code, 0) << "the lock was not kept past its TTL: " << r.err;
}

TEST_F(cli, RunDoesNotLeakRedisConnectionsIntoTheCommand) {
  auto r = run_to_end(redlock({"run", resource_, "--", "sh", "-c", "ls -l /proc/$$/fd"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("socket:"), std::string::npos) << r.out;
}

TEST_F(cli, RunPassesInheritedDescriptorsToTheCommand) {
  // flock(1)'s habit: `redlock run ... 3>file` lets the command write to fd 3.
  const auto path =
      std::filesystem::temp_directory_path() / ("redlock-cli-fd3-" + std::to_string(::getpid()));
  std::string cmdline = "exec 3>'" + path.string() + "'; exec";
  for (const auto& a : redlock({"run", resource_, "--", "sh", "-c", "echo via-fd3 >&3"}))
    cmdline += " '" + a + "'";
  auto r = run_to_end({"/bin/sh", "-c", cmdline});
  EXPECT_EQ(r.code, 0) << r.err;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "via-fd3");
  std::filesystem::remove(path);
}

TEST_F(cli, CommandGetsSigtermWhenRedlockIsKilled) {
  // Nobody extends the lock once redlock is gone: the command must not carry on.
  const auto marker =
      std::filesystem::temp_directory_path() / ("redlock-cli-orphan-" + std::to_string(::getpid()));
  std::filesystem::remove(marker);
  process p(redlock({"run", resource_, "--", "sh", "-c",
                     "trap 'echo term > \"" + marker.string() +
                         "\"; exit 0' TERM; echo ready; while :; do sleep 0.05; done"}));
  ASSERT_TRUE(p.wait_output([](auto& out, auto&) { return out.find("ready") != out.npos; }, 20s));
  p.signal(SIGKILL);
  ASSERT_TRUE(p.wait_exit(20s));
  EXPECT_TRUE(wait_for([&] { return std::filesystem::exists(marker); }, 10000ms))
      << "the command kept running after redlock was killed";
  std::filesystem::remove(marker);
}

// --- what run tells the command, and fencing --------------------------------------------

/// The command's view of its environment: "value=<V> token=<T or unset>".
const std::vector<std::string> print_lock_env = {
    "sh", "-c", "echo \"value=$REDLOCK_LOCK_VALUE token=${REDLOCK_FENCING_TOKEN-unset}\""};

TEST_F(cli, RunExportsTheLockValueToTheCommandAndNoTokenWithoutFencing) {
  // An inherited token (an outer fenced run) must not reach a plain run's command.
  process_options o;
  o.env.push_back("REDLOCK_FENCING_TOKEN=99");
  auto args = std::vector<std::string>{"run", resource_, "--"};
  args.insert(args.end(), print_lock_env.begin(), print_lock_env.end());
  auto r = run_to_end(redlock(args), o);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_match(r.out, std::regex("value=[0-9a-f]{32} token=unset\n"))) << r.out;
}

TEST_F(cli, RunWithFencingExportsATokenThatGrowsFromRunToRun) {
  auto args = std::vector<std::string>{"run", "--fencing", resource_, "--"};
  args.insert(args.end(), print_lock_env.begin(), print_lock_env.end());
  const std::regex line("value=([0-9a-f]{32}) token=([1-9][0-9]*)\n");
  std::smatch m1, m2;
  auto first = run_to_end(redlock(args));
  ASSERT_EQ(first.code, 0) << first.err;
  ASSERT_TRUE(std::regex_match(first.out, m1, line)) << first.out;
  auto second = run_to_end(redlock(args));
  ASSERT_EQ(second.code, 0) << second.err;
  ASSERT_TRUE(std::regex_match(second.out, m2, line)) << second.out;
  EXPECT_NE(m1[1].str(), m2[1].str()) << "each run has its own value";
  EXPECT_GT(std::stoull(m2[2].str()), std::stoull(m1[2].str()));
  EXPECT_EQ(present_on(resource_), 0) << "released after each run";
}

TEST_F(cli, FencingComesFromTheEnvironmentAndABadValueIsAUsageError) {
  auto args = std::vector<std::string>{"run", resource_, "--"};
  args.insert(args.end(), print_lock_env.begin(), print_lock_env.end());
  process_options on;
  on.env.push_back("REDLOCK_FENCING=1");
  auto r = run_to_end(redlock(args), on);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_match(r.out, std::regex("value=[0-9a-f]{32} token=[1-9][0-9]*\n")))
      << r.out;
  process_options off;
  off.env.push_back("REDLOCK_FENCING=0");
  r = run_to_end(redlock(args), off);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("token=unset"), std::string::npos) << r.out;
  process_options bad;
  bad.env.push_back("REDLOCK_FENCING=yes please");
  r = run_to_end(redlock({"acquire", resource_}), bad);
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("REDLOCK_FENCING must be 1"), std::string::npos) << r.err;
  EXPECT_EQ(present_on(resource_), 0);
}

TEST_F(cli, AcquireWithFencingPrintsTheValueThenTheTokenAndExtendKeepsWorking) {
  auto a = run_to_end(redlock({"acquire", "--fencing", "--ttl", "5s", resource_}));
  ASSERT_EQ(a.code, 0) << a.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_match(a.out, m, std::regex("([0-9a-f]{32})\n([1-9][0-9]*)\n")))
      << "stdout: " << a.out;
  const std::string value = m[1].str();
  const std::string token = m[2].str();
  EXPECT_EQ(holders_of(resource_, value), 3);

  auto e = run_to_end(redlock(
      {"extend", "-v", "--ttl", "60s", resource_, "--value", value, "--fencing-token", token}));
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_TRUE(e.out.empty()) << e.out;
  EXPECT_NE(e.err.find("fencing token " + token), std::string::npos) << e.err;
  for (auto& s : servers_)
    EXPECT_GT(s->command({"PTTL", resource_}).integer, 30000);
  // Without the token too: the keys are the same as for a plain lock.
  e = run_to_end(redlock({"extend", "--ttl", "60s", resource_, "--value", value}));
  EXPECT_EQ(e.code, 0) << e.err;

  // The next fenced acquire gets a larger token.
  auto r = run_to_end(redlock({"release", resource_, "--value", value}));
  EXPECT_EQ(r.code, 0) << r.err;
  auto next = run_to_end(redlock({"acquire", "--fencing", resource_}));
  ASSERT_EQ(next.code, 0) << next.err;
  ASSERT_TRUE(std::regex_match(next.out, m, std::regex("([0-9a-f]{32})\n([1-9][0-9]*)\n")))
      << next.out;
  EXPECT_GT(std::stoull(m[2].str()), std::stoull(token));
}

TEST_F(cli, AcquireWithoutFencingStillPrintsOnlyTheValue) {
  auto a = run_to_end(redlock({"acquire", resource_}));
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_TRUE(std::regex_match(a.out, std::regex("[0-9a-f]{32}\n"))) << a.out;
}

TEST_F(cli, BadFencingTokensAreUsageErrors) {
  for (const std::string bad : {"0", "-1", "12x", "", "18446744073709551616"}) {
    auto e = run_to_end(redlock({"extend", resource_, "--value", "0123456789abcdef0123456789abcdef",
                                 "--fencing-token", bad}));
    EXPECT_EQ(e.code, exit_usage) << "'" << bad << "': " << e.err;
    EXPECT_NE(e.err.find("--fencing-token"), std::string::npos) << e.err;
  }
}

// --- contention -------------------------------------------------------------------------

TEST_F(cli, RunNoWaitUnderContentionExits75WithoutRunningTheCommand) {
  hold_elsewhere(resource_);
  auto r = run_to_end(redlock({"run", "--no-wait", resource_, "--", "echo", "ran"}));
  EXPECT_EQ(r.code, exit_not_acquired) << r.err;
  EXPECT_EQ(r.out.find("ran"), std::string::npos);
  EXPECT_NE(r.err.find("held by another owner"), std::string::npos) << r.err;
  EXPECT_EQ(holders_of(resource_, "someone-else"), 3) << "the other holder's keys were touched";
}

TEST_F(cli, RunGivesUpAfterTheWaitBudget) {
  hold_elsewhere(resource_);
  const auto start = std::chrono::steady_clock::now();
  auto r = run_to_end(redlock({"run", "--wait", "700ms", resource_, "--", "true"}));
  EXPECT_EQ(r.code, exit_not_acquired) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s) << "no hang";
}

TEST_F(cli, RunWaitsForTheHolderToGoAway) {
  hold_elsewhere(resource_, "800");  // expires while redlock waits
  auto r = run_to_end(redlock({"run", "--wait", "20s", resource_, "--", "true"}));
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(cli, AcquireWaitIsWokenByTheHoldersReleaseLongBeforeItsRetryDelay) {
  // The holder is another redlock whose release announces itself; the waiter's polls are
  // 30 s apart and the holder's keys live 10 s, so only the wake-up can get it the lock
  // within its 5 s budget.
  const auto marker = marker_path();
  auto holder = holder_until(resource_, marker, "0.3");
  process waiter(redlock(
      {"acquire", "--wait", "5s", "--retry-delay", "30s", "--retry-jitter", "0ms", resource_}));
  ASSERT_TRUE(wait_for([&] { return release_subscribers(resource_) == 3; }, 4000ms))
      << "the waiter never subscribed to the resource's releases on every server ("
      << release_subscribers(resource_) << " subscribers)";
  const auto released = std::chrono::steady_clock::now();
  std::ofstream(marker).put('\n');
  ASSERT_TRUE(waiter.wait_exit(20s));
  const auto took = std::chrono::steady_clock::now() - released;
  EXPECT_EQ(waiter.exit_code(), 0) << waiter.err();
  EXPECT_TRUE(std::regex_match(waiter.out(), std::regex("[0-9a-f]{32}\n"))) << waiter.out();
  EXPECT_LT(took, 3s) << "acquired late: polled, not woken";
  ASSERT_TRUE(holder->wait_exit(20s));
  EXPECT_EQ(holder->exit_code(), 0) << holder->err();
  EXPECT_TRUE(wait_for([&] { return release_subscribers(resource_) == 0; }, 5000ms))
      << "subscriptions left after the waiter exited";
  std::filesystem::remove(marker);
}

TEST_F(cli, FairWaitersStartedOneAfterAnotherAreGrantedInStartOrder) {
  // The holder's lock and each granted waiter's live 60 s: only a release hands it on.
  auto h = run_to_end(redlock({"acquire", "--fair", "--ttl", "60s", resource_}));
  ASSERT_EQ(h.code, 0) << h.err;
  std::string held = h.out.substr(0, 32);
  std::vector<std::unique_ptr<process>> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.push_back(std::make_unique<process>(
        redlock({"acquire", "--fair", "--wait", "10s", "--ttl", "60s", resource_})));
    // Queued on every server before the next one starts, so the tickets are in start order.
    // The holder's own entry stays at the head until its release (or its lease ends): only
    // the waiters count, or waiter #0 would seem queued before it was and the next could
    // overtake it.
    ASSERT_TRUE(
        wait_for([&] { return fair_queue_length(resource_, false, held) == i + 1; }, 5000ms))
        << "waiter #" << i << " did not queue (" << fair_queue_length(resource_, false, held)
        << " queued)";
  }
  std::vector<int> order;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("release #" + std::to_string(round));
    auto r = run_to_end(redlock({"release", "--fair", resource_, "--value", held}));
    ASSERT_EQ(r.code, 0) << r.err;
    int got = -1;
    ASSERT_TRUE(wait_for(
        [&] {
          for (int i = 0; i < 3 && got < 0; ++i) {
            if (std::find(order.begin(), order.end(), i) == order.end() && waiters[i]->poll_exit())
              got = i;
          }
          return got >= 0;
        },
        8000ms))
        << "no waiter got the lock after the release";
    ASSERT_TRUE(waiters[got]->wait_exit(5s));  // the rest of its output
    ASSERT_EQ(waiters[got]->exit_code(), 0) << waiters[got]->err();
    ASSERT_TRUE(std::regex_match(waiters[got]->out(), std::regex("[0-9a-f]{32}\n")))
        << waiters[got]->out();
    held = waiters[got]->out().substr(0, 32);
    // A quorum: a server the release reached last may have refused the woken waiter.
    EXPECT_GE(holders_of(resource_, held), 2);
    order.push_back(got);
    for (int i = 0; i < 3; ++i) {
      if (std::find(order.begin(), order.end(), i) == order.end()) {
        EXPECT_FALSE(waiters[i]->poll_exit()) << "waiter #" << i << " ended while not granted";
      }
    }
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2})) << "granted out of start order";
  auto r = run_to_end(redlock({"release", "--fair", resource_, "--value", held}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(present_on(resource_), 0);
  EXPECT_EQ(fair_queue_length(resource_, true), 0) << "queue entries left behind";
}

TEST_F(cli, FairWithFencingIsAUsageErrorNamingBoth) {
  struct way {
    std::vector<std::string> args;
    std::string env, fair, fencing;
  };
  const std::vector<way> ways = {
      {{"acquire", "--fair", "--fencing", resource_}, "", "--fair", "--fencing"},
      {{"run", "--fencing", "--fair", resource_, "--", "true"}, "", "--fair", "--fencing"},
      {{"acquire", "--fencing", resource_}, "REDLOCK_FAIR=1", "REDLOCK_FAIR=1", "--fencing"},
      {{"acquire", "--fair", resource_}, "REDLOCK_FENCING=1", "--fair", "REDLOCK_FENCING=1"},
      {{"extend", "--fair", resource_, "--value", std::string(32, 'a'), "--fencing-token", "7"},
       "",
       "--fair",
       "--fencing-token"},
  };
  for (const auto& w : ways) {
    SCOPED_TRACE(w.fair + " with " + w.fencing);
    process_options o;
    if (!w.env.empty())
      o.env.push_back(w.env);
    auto r = run_to_end(redlock(w.args), o);
    EXPECT_EQ(r.code, exit_usage) << r.err;
    EXPECT_NE(r.err.find(w.fair + " and " + w.fencing + " cannot be combined"), std::string::npos)
        << r.err;
    EXPECT_EQ(r.out, "");
  }
  process_options bad;
  bad.env.push_back("REDLOCK_FAIR=yes");
  auto r = run_to_end(redlock({"acquire", "--no-wait", resource_}), bad);
  EXPECT_EQ(r.code, exit_usage);
  EXPECT_NE(r.err.find("REDLOCK_FAIR must be 1"), std::string::npos) << r.err;
  EXPECT_EQ(present_on(resource_), 0);
}

TEST_F(cli, AcquireWaitOnALockHeldForGoodExits75AfterTheBudget) {
  hold_elsewhere(resource_);
  const auto start = std::chrono::steady_clock::now();
  auto r = run_to_end(redlock({"acquire", "--wait", "300ms", resource_}));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.code, exit_not_acquired) << r.err;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 10s);
  EXPECT_NE(r.err.find("held by another owner"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(holders_of(resource_, "someone-else"), 3);
}

TEST_F(cli, WithoutWakeupWaitingStillAcquiresByPollingAndSubscribesNothing) {
  // Once with the flag, once with the environment variable.
  const std::vector<std::pair<std::vector<std::string>, std::string>> ways = {
      {{"--no-wakeup"}, ""}, {{}, "REDLOCK_WAKEUP=0"}};
  for (const auto& [flag, env] : ways) {
    SCOPED_TRACE(flag.empty() ? env : flag.front());
    const auto marker = marker_path();
    auto holder = holder_until(resource_, marker);
    std::vector<std::string> args{"acquire", "--wait",         "20s", "--retry-delay",
                                  "100ms",   "--retry-jitter", "0ms"};
    args.insert(args.end(), flag.begin(), flag.end());
    args.push_back(resource_);
    process_options o;
    o.pty_stderr = true;  // the status line says when it has been waiting for a while
    if (!env.empty())
      o.env.push_back(env);
    process waiter(redlock(args), o);
    ASSERT_TRUE(waiter.wait_output(
        [](auto&, auto& err) { return err.find("held by another owner") != err.npos; }, 10s))
        << waiter.err();
    EXPECT_EQ(release_subscribers(resource_), 0) << "subscribed although wake-up is off";
    std::ofstream(marker).put('\n');
    ASSERT_TRUE(waiter.wait_exit(20s));
    EXPECT_EQ(waiter.exit_code(), 0) << waiter.err();
    EXPECT_TRUE(std::regex_search(waiter.out(), std::regex("[0-9a-f]{32}"))) << waiter.out();
    ASSERT_TRUE(holder->wait_exit(20s));
    // The acquired lock is left to expire by design of `acquire`; take it out of the way.
    for (auto& s : servers_)
      s->command({"DEL", resource_});
    std::filesystem::remove(marker);
  }
}

TEST_F(cli, BadWakeupEnvironmentValueIsAUsageErrorNamingTheVariable) {
  process_options o;
  o.env.push_back("REDLOCK_WAKEUP=yes");
  auto r = run_to_end(redlock({"acquire", "--no-wait", resource_}), o);
  EXPECT_EQ(r.code, exit_usage);
  EXPECT_NE(r.err.find("REDLOCK_WAKEUP"), std::string::npos) << r.err;
  EXPECT_EQ(present_on(resource_), 0);
}

TEST_F(cli, SignalWhileWaitingCancelsTheAcquireAndLeavesNothingBehind) {
  // Held elsewhere on two servers: every attempt wins the third, which the cancelled
  // acquire must release before redlock exits.
  for (std::size_t i = 0; i < 2; ++i)
    servers_[i]->command({"SET", resource_, "someone-else", "PX", "60000"});
  process_options o;
  o.pty_stderr = true;
  process waiter(redlock({"acquire", "--wait", "30s", "--retry-delay", "50ms", resource_}), o);
  ASSERT_TRUE(
      waiter.wait_output([](auto&, auto& err) { return err.find("waiting") != err.npos; }, 10s))
      << waiter.err();
  waiter.signal(SIGINT);
  ASSERT_TRUE(waiter.wait_exit(20s));
  EXPECT_EQ(waiter.exit_code(), 128 + SIGINT) << waiter.err();
  EXPECT_EQ(waiter.out(), "");
  EXPECT_EQ(servers_[2]->command({"EXISTS", resource_}).integer, 0)
      << "the cancelled acquire left its key on server #3";
  EXPECT_EQ(holders_of(resource_, "someone-else"), 2);
}

TEST_F(cli, WaitingShowsNoStatusLineWhenStderrIsNotATerminal) {
  hold_elsewhere(resource_);
  auto r = run_to_end(redlock({"acquire", "--wait", "1s", resource_}));
  EXPECT_EQ(r.code, exit_not_acquired);
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("waiting"), std::string::npos) << r.err;
}

TEST_F(cli, WaitingShowsAStatusLineOnATerminal) {
  hold_elsewhere(resource_);
  process_options o;
  o.pty_stderr = true;
  auto r = run_to_end(redlock({"acquire", "--wait", "2s", resource_}), o);
  EXPECT_EQ(r.code, exit_not_acquired);
  EXPECT_NE(r.err.find('\r'), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("waiting"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("held by another owner for"), std::string::npos)
      << "the holder's remaining TTL is missing: " << r.err;
}

TEST_F(cli, StatusLineFitsANarrowTerminal) {
  hold_elsewhere(resource_);
  process_options o;
  o.pty_stderr = true;
  o.pty_columns = 40;
  auto r = run_to_end(redlock({"acquire", "--wait", "1500ms", resource_}), o);
  EXPECT_EQ(r.code, exit_not_acquired);
  ASSERT_NE(r.err.find("waiting"), std::string::npos) << r.err;
  // Each rewrite: "\r<text>\x1b[K". The text must fit in 39 columns, or the terminal wraps
  // it and the next "\r" rewrites only the last row.
  std::size_t shown = 0;
  for (std::size_t pos = r.err.find('\r'); pos != std::string::npos;
       pos = r.err.find('\r', pos + 1)) {
    const auto end = r.err.find("\x1b[K", pos);
    if (end == std::string::npos || end == pos + 1)
      continue;  // the final erase
    const std::string text = r.err.substr(pos + 1, end - pos - 1);
    EXPECT_LE(text.size(), 39u) << "line wider than the terminal: '" << text << "'";
    ++shown;
  }
  EXPECT_GE(shown, 1u) << r.err;
}

// --- signals ----------------------------------------------------------------------------

TEST_F(cli, SigtermToRedlockReachesTheCommand) {
  process p(redlock({"run", resource_, "--", "sh", "-c",
                     "trap 'echo got-term; exit 42' TERM; echo ready; "
                     "while :; do sleep 0.05; done"}));
  ASSERT_TRUE(p.wait_output([](auto& out, auto&) { return out.find("ready") != out.npos; }, 20s))
      << p.err();
  p.signal(SIGTERM);
  ASSERT_TRUE(p.wait_exit(20s));
  EXPECT_EQ(p.exit_code(), 42) << p.err();
  EXPECT_NE(p.out().find("got-term"), std::string::npos);
  EXPECT_EQ(present_on(resource_), 0) << "released after the command ended";
}

TEST_F(cli, ForwardedSignalThatKillsTheCommandGives128PlusSignal) {
  process p(redlock({"run", resource_, "--", "sh", "-c", "echo ready; exec sleep 30"}));
  ASSERT_TRUE(p.wait_output([](auto& out, auto&) { return out.find("ready") != out.npos; }, 20s));
  p.signal(SIGHUP);
  ASSERT_TRUE(p.wait_exit(20s));
  EXPECT_EQ(p.exit_code(), 128 + SIGHUP) << p.err();
}

// --- loss of the lock -------------------------------------------------------------------

TEST_F(cli, LockDeletedDuringRunTerminatesTheCommandWithExit76) {
  process p(redlock(
      {"run", "--ttl", "1500ms", resource_, "--", "sh", "-c", "echo ready; exec sleep 30"}));
  ASSERT_TRUE(p.wait_output([](auto& out, auto&) { return out.find("ready") != out.npos; }, 20s));
  for (auto& s : servers_)
    s->command({"DEL", resource_});
  ASSERT_TRUE(p.wait_exit(20s)) << "the command was not stopped after the lock was lost";
  EXPECT_EQ(p.exit_code(), exit_lost) << p.err();
  EXPECT_NE(p.err().find("lock lost"), std::string::npos) << p.err();
}

TEST_F(cli, MajorityOfServersKilledDuringRunTerminatesTheCommand) {
  process p(redlock(
      {"run", "--ttl", "1500ms", resource_, "--", "sh", "-c", "echo ready; exec sleep 30"}));
  ASSERT_TRUE(p.wait_output([](auto& out, auto&) { return out.find("ready") != out.npos; }, 20s));
  servers_[0]->kill9();
  servers_[1]->kill9();
  ASSERT_TRUE(p.wait_exit(20s));
  EXPECT_EQ(p.exit_code(), exit_lost) << p.err();
}

TEST_F(cli, MinorityOfServersKilledDuringRunDoesNotDisturbTheCommand) {
  process p(
      redlock({"run", "--ttl", "2s", resource_, "--", "sh", "-c", "echo ready; sleep 4; exit 3"}));
  ASSERT_TRUE(p.wait_output([](auto& out, auto&) { return out.find("ready") != out.npos; }, 20s));
  servers_[2]->kill9();
  ASSERT_TRUE(p.wait_exit(20s));
  EXPECT_EQ(p.exit_code(), 3) << p.err();
}

TEST_F(cli, CommandIgnoringSigtermIsKilledAfterTheGracePeriod) {
  process p(redlock({"run", "--ttl", "1500ms", "--grace", "500ms", resource_, "--", "sh", "-c",
                     "trap '' TERM; echo ready; while :; do sleep 0.05; done"}));
  ASSERT_TRUE(p.wait_output([](auto& out, auto&) { return out.find("ready") != out.npos; }, 20s));
  for (auto& s : servers_)
    s->command({"SET", resource_, "thief", "PX", "60000"});
  ASSERT_TRUE(p.wait_exit(20s));
  EXPECT_EQ(p.exit_code(), exit_lost) << p.err();
  EXPECT_NE(p.err().find("SIGKILL"), std::string::npos) << p.err();
  EXPECT_EQ(holders_of(resource_, "thief"), 3) << "the new holder's keys were deleted";
}

TEST_F(cli, OnLostIgnoreLetsTheCommandFinish) {
  process p(redlock({"run", "--ttl", "1s", "--on-lost", "ignore", resource_, "--", "sh", "-c",
                     "echo ready; sleep 2; exit 5"}));
  ASSERT_TRUE(p.wait_output([](auto& out, auto&) { return out.find("ready") != out.npos; }, 20s));
  for (auto& s : servers_)
    s->command({"DEL", resource_});
  ASSERT_TRUE(p.wait_exit(20s));
  EXPECT_EQ(p.exit_code(), 5) << p.err();
  EXPECT_NE(p.err().find("lock lost"), std::string::npos) << p.err();
}

// --- cleanup before exit ------------------------------------------------------------------

TEST_F(cli, VerboseSaysTheCleanupSettledOnEveryPath) {
  // Success, a failure that released what it took, and a run: each ends with the manager's
  // quit, and -v says how it ended.
  auto a = run_to_end(redlock({"acquire", "-v", resource_}));
  EXPECT_EQ(a.code, 0) << a.err;
  EXPECT_NE(a.err.find("cleanup settled"), std::string::npos) << a.err;

  hold_elsewhere(resource_ + ":held");
  auto f = run_to_end(redlock({"acquire", "-v", "--no-wait", resource_ + ":held"}));
  EXPECT_EQ(f.code, exit_not_acquired) << f.err;
  EXPECT_NE(f.err.find("cleanup settled"), std::string::npos) << f.err;

  auto r = run_to_end(redlock({"run", "-v", resource_ + ":run", "--", "sh", "-c", "exit 3"}));
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("cleanup settled"), std::string::npos) << r.err;
  EXPECT_EQ(present_on(resource_ + ":run"), 0);
}

TEST_F(cli, VerboseSaysWhenTheCleanupBoundPassedWithReleasesUnconfirmed) {
  // Server #3 is stopped: the acquire still wins on #1 and #2, and the release is retried on
  // #3 until the cleanup bound (5 request timeouts here) passes.
  servers_[2]->pause();
  auto r = run_to_end(redlock({"run", "-v", resource_, "--", "true"}));
  servers_[2]->resume();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("cleanup bound passed with releases still unconfirmed (up to 1 of 3 "
                       "servers had not confirmed our release)"),
            std::string::npos)
      << r.err;
}

TEST_F(cli, SignalDuringTheCleanupDoesNotCutItShort) {
  // The command pauses server #3's clients for less than the request timeout (its release
  // waits there), and once the release reached server #1 sends redlock SIGTERM: redlock
  // must still wait for server #3's answer.
  const auto& first = *servers_[0];
  const auto& third = *servers_[2];
  const std::string cli1 = "redis-cli -p " + std::to_string(first.port());
  const std::string script = "redis-cli -p " + std::to_string(third.port()) +
                             " CLIENT PAUSE 700 >/dev/null; parent=$PPID; "
                             "( i=0; while [ \"$(" +
                             cli1 + " EXISTS '" + resource_ +
                             "')\" != 0 ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done; "
                             "kill -TERM $parent ) >/dev/null 2>&1 & exit 0";
  process p(redlock({"run", "-v", resource_, "--", "sh", "-c", script}));
  ASSERT_TRUE(p.wait_exit(20s)) << p.err();
  EXPECT_EQ(p.exit_code(), 0) << p.err();
  EXPECT_NE(p.err().find("finishing the cleanup"), std::string::npos) << p.err();
  EXPECT_NE(p.err().find("cleanup settled"), std::string::npos) << p.err();
  EXPECT_EQ(present_on(resource_), 0) << "redlock exited before server #3 released";
}

// --- acquire / extend / release across invocations --------------------------------------

TEST_F(cli, AcquireExtendReleaseRoundTrip) {
  auto a = run_to_end(redlock({"acquire", "--ttl", "5s", resource_}));
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_TRUE(std::regex_match(a.out, std::regex("[0-9a-f]{32}\n"))) << "stdout: " << a.out;
  const std::string value = a.out.substr(0, 32);
  EXPECT_EQ(holders_of(resource_, value), 3);

  auto e = run_to_end(redlock({"extend", "--ttl", "60s", resource_, "--value", value}));
  ASSERT_EQ(e.code, 0) << e.err;
  for (auto& s : servers_)
    EXPECT_GT(s->command({"PTTL", resource_}).integer, 30000);

  auto r = run_to_end(redlock({"release", resource_, "--value", value}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(present_on(resource_), 0);

  // Released already: says so, with the "not held" code.
  r = run_to_end(redlock({"release", resource_, "--value", value}));
  EXPECT_EQ(r.code, exit_lost) << r.err;
  e = run_to_end(redlock({"extend", resource_, "--value", value}));
  EXPECT_EQ(e.code, exit_lost) << e.err;
  EXPECT_EQ(present_on(resource_), 0) << "extend must never recreate a lock";
}

TEST_F(cli, ExtendAndReleaseWithAnotherValueTouchNothing) {
  hold_elsewhere(resource_);
  auto e =
      run_to_end(redlock({"extend", resource_, "--value", "0123456789abcdef0123456789abcdef"}));
  EXPECT_EQ(e.code, exit_lost) << e.err;
  auto r =
      run_to_end(redlock({"release", resource_, "--value", "0123456789abcdef0123456789abcdef"}));
  EXPECT_EQ(r.code, exit_lost) << r.err;
  EXPECT_EQ(holders_of(resource_, "someone-else"), 3);
}

TEST_F(cli, AcquireOfAHeldLockWithNoWaitExits75) {
  hold_elsewhere(resource_);
  auto a = run_to_end(redlock({"acquire", "--no-wait", resource_}));
  EXPECT_EQ(a.code, exit_not_acquired) << a.err;
  EXPECT_TRUE(a.out.empty()) << a.out;
}

TEST_F(cli, MultipleResourcesAreLockedTogether) {
  const std::string other = resource_ + ":2";
  auto a = run_to_end(redlock({"acquire", resource_, other}));
  ASSERT_EQ(a.code, 0) << a.err;
  const std::string value = a.out.substr(0, 32);
  EXPECT_EQ(holders_of(resource_, value), 3);
  EXPECT_EQ(holders_of(other, value), 3);
  auto r = run_to_end(redlock({"release", resource_, other, "--value", value}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(present_on(other), 0);
}

TEST_F(cli, ReleaseJudgesFromEveryServerWhenOneNeverHadTheKey) {
  // Normal with a minority down: server #1 lost the key, server #3 answers slowly (paused
  // clients, within the request timeout). Server #1's "absent" and #2's "released" are the
  // first quorum of answers, but #2 and #3 held the lock: the release succeeded.
  auto a = run_to_end(redlock({"acquire", "--ttl", "60s", resource_}));
  ASSERT_EQ(a.code, 0) << a.err;
  const std::string value = a.out.substr(0, 32);
  servers_[0]->command({"DEL", resource_});
  ASSERT_EQ(servers_[2]->command({"CLIENT", "PAUSE", "400"}).str, "OK");
  auto r = run_to_end(redlock({"release", resource_, "--value", value}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(present_on(resource_), 0);
}

TEST_F(cli, ReleaseOfAValueHeldByAnotherSaysAnotherValueHoldsIt) {
  hold_elsewhere(resource_);
  auto r =
      run_to_end(redlock({"release", resource_, "--value", "0123456789abcdef0123456789abcdef"}));
  EXPECT_EQ(r.code, exit_lost) << r.err;
  EXPECT_NE(r.err.find("another value holds it"), std::string::npos) << r.err;
  EXPECT_EQ(holders_of(resource_, "someone-else"), 3);
}

TEST_F(cli, ReleaseOfAnExpiredValueSaysItExpiredOrWasReleased) {
  auto r =
      run_to_end(redlock({"release", resource_, "--value", "0123456789abcdef0123456789abcdef"}));
  EXPECT_EQ(r.code, exit_lost) << r.err;
  EXPECT_NE(r.err.find("expired or been released"), std::string::npos) << r.err;
}

// --- status -----------------------------------------------------------------------------

/// Runs python3 over `json` with a program reading it as `d`; returns its exit code.
int check_json(const std::string& json, const std::string& program) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("redlock-cli-json-" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << json;
  auto r =
      run_to_end({"/usr/bin/python3", "-c",
                  "import json,sys\nd=json.load(open(sys.argv[1]))\n" + program, path.string()});
  std::filesystem::remove(path);
  if (r.code != 0)
    ADD_FAILURE() << r.err << "\n" << json;
  return r.code;
}

TEST_F(cli, StatusJsonIsValidAndNamesTheHolder) {
  auto a = run_to_end(redlock({"acquire", "--ttl", "30s", resource_}));
  ASSERT_EQ(a.code, 0) << a.err;
  const std::string value = a.out.substr(0, 32);
  auto s = run_to_end(redlock({"status", "--json", resource_}));
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(check_json(s.out,
                       "assert d['status'] == 'held', d\n"
                       "assert d['holder'] == '" +
                           value +
                           "', d\n"
                           "assert d['holding_nodes'] == 3, d\n"
                           "assert 0 < d['validity_ms'] <= 30000, d\n"
                           "assert len(d['nodes']) == 3, d\n"
                           "for n in d['nodes']:\n"
                           "  assert n['keys'][0]['value'] == '" +
                           value +
                           "', n\n"
                           "  assert 0 < n['keys'][0]['ttl_ms'] <= 30000, n\n"),
            0);
}

TEST_F(cli, StatusJsonStaysValidForBinaryValuesAndDownServers) {
  for (auto& s : servers_)
    s->command({"SET", resource_, std::string("\xff\x01\"q\\\n", 6), "PX", "60000"});
  servers_[0]->kill9();
  auto s = run_to_end(redlock({"status", "--json", resource_}));
  EXPECT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(check_json(s.out,
                       "assert d['status'] == 'held', d\n"
                       "assert d['nodes'][0]['error'] is not None, d\n"
                       "assert d['holding_nodes'] == 2, d\n"),
            0);
}

TEST_F(cli, StatusTextShowsVerdictAndEveryServer) {
  auto s = run_to_end(redlock({"status", resource_}));
  ASSERT_EQ(s.code, exit_status_free) << s.err;
  EXPECT_NE(s.out.find("free"), std::string::npos) << s.out;
  for (auto& srv : servers_)
    EXPECT_NE(s.out.find(":" + std::to_string(srv->port())), std::string::npos) << s.out;
}

TEST_F(cli, StatusShowsEachServersFencingCounter) {
  auto a = run_to_end(redlock({"acquire", "--fencing", "--ttl", "30s", resource_}));
  ASSERT_EQ(a.code, 0) << a.err;
  const std::string value = a.out.substr(0, 32);
  const std::string token = a.out.substr(33, a.out.size() - 34);
  // The acquire returns once a quorum confirmed: a third server still busy with the first
  // round trip may show no counter yet, never another one.
  auto s = run_to_end(redlock({"status", resource_}));
  ASSERT_EQ(s.code, 0) << s.err;
  std::size_t shown = 0;
  for (auto pos = s.out.find(", fencing counter " + token + "\n"); pos != std::string::npos;
       pos = s.out.find(", fencing counter " + token + "\n", pos + 1))
    ++shown;
  EXPECT_GE(shown, 2u) << s.out;
  auto j = run_to_end(redlock({"status", "--json", resource_}));
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_EQ(check_json(j.out, "assert d['holder'] == '" + value +
                                  "', d\n"
                                  "counters = [n['fencing_counter'] for n in d['nodes']]\n"
                                  "assert counters.count(" +
                                  token +
                                  ") >= 2, counters\n"
                                  "assert all(c in (None, " +
                                  token + ") for c in counters), counters\n"),
            0);
  // A resource never locked with fencing has no counter; a down server shows null.
  servers_[0]->kill9();
  auto plain = run_to_end(redlock({"status", "--json", resource_ + ":plain"}));
  EXPECT_EQ(plain.code, exit_status_free) << plain.err;
  EXPECT_EQ(check_json(plain.out,
                       "assert [n['fencing_counter'] for n in d['nodes']] == "
                       "[None, None, None], d\n"
                       "assert d['nodes'][0]['error'] is not None, d\n"),
            0);
  auto text = run_to_end(redlock({"status", resource_ + ":plain"}));
  EXPECT_EQ(text.out.find("fencing counter"), std::string::npos) << text.out;
}

// --- servers and arguments --------------------------------------------------------------

TEST_F(cli, ServersComeFromTheEnvironmentWithoutServerOptions) {
  std::string list;
  for (auto& s : servers_)
    list += (list.empty() ? "" : ", ") + s->url();
  process_options o;
  o.env.push_back("REDLOCK_SERVERS=" + list);
  auto a = run_to_end({REDLOCK_CLI_PATH, "acquire", resource_}, o);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(holders_of(resource_, a.out.substr(0, 32)), 3);
}

TEST_F(cli, UnreachableServersExit69) {
  const auto port = std::to_string(free_port());
  auto r = run_to_end({REDLOCK_CLI_PATH, "acquire", "--no-wait", "--server",
                       "redis://127.0.0.1:" + port, resource_});
  EXPECT_EQ(r.code, exit_unavailable) << r.err;
  EXPECT_NE(r.err.find("unreachable"), std::string::npos) << r.err;
}

TEST_F(cli, UsageErrorsExit2AndSayWhatIsWrong) {
  struct usage_case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<usage_case> cases = {
      {{"run", "--ttl", "10", resource_, "--", "true"}, "no unit"},
      {{"run", "--ttl", "ten", resource_, "--", "true"}, "invalid duration"},
      {{"run", "--wait", "5parsecs", resource_, "--", "true"}, "unknown unit"},
      {{"acquire", "--ttl", "-1s", resource_}, "--ttl"},
      {{"run", resource_}, "command"},
      {{"run", "--", "true"}, "resources"},
      {{"acquire", "--no-wait", "--wait", "1s", resource_}, "excludes"},
      {{"release", resource_}, "--value"},
      {{"status"}, "resources"},
      {{"frobnicate"}, ""},
      {{"run", "--on-lost", "maybe", resource_, "--", "true"}, "on-lost"},
      {{"acquire", "--tls-ca", "/tmp/ca.pem", resource_}, "TLS"},
  };
  for (const auto& c : cases) {
    auto r = run_to_end(redlock(c.args));
    std::string joined;
    for (const auto& a : c.args)
      joined += a + " ";
    EXPECT_EQ(r.code, exit_usage) << joined << "\n" << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << joined << "\n" << r.err;
  }
}

TEST_F(cli, BracketedResourceNamesReachTheServersVerbatim) {
  // CLI11 reads "[a,b]" as a list; a resource name is a Redis key, used as given.
  for (const std::string name : {"[deploy]", "[a,b]"}) {
    const std::string key = resource_ + name;
    auto a = run_to_end(redlock({"acquire", key}));
    ASSERT_EQ(a.code, 0) << name << ": " << a.err;
    const std::string value = a.out.substr(0, 32);
    EXPECT_EQ(holders_of(key, value), 3) << name << " was not locked as given";
    auto bare = run_to_end(redlock({"acquire", "--no-wait", name}));
    ASSERT_EQ(bare.code, 0) << name << ": " << bare.err;
    const std::string bare_value = bare.out.substr(0, 32);
    EXPECT_EQ(holders_of(name, bare_value), 3) << "the key " << name << " does not exist";
    for (const std::string part : {"deploy", "a", "b"})
      EXPECT_EQ(present_on(part), 0) << name << " locked '" << part << "'";
    auto r = run_to_end(redlock({"release", key, "--value", value}));
    EXPECT_EQ(r.code, 0) << r.err;
    auto st = run_to_end(redlock({"status", "--json", name}));
    EXPECT_EQ(st.code, 0) << "held by the bare acquire" << st.err;
    EXPECT_NE(st.out.find("\"" + name + "\""), std::string::npos) << st.out;
  }
}

TEST_F(cli, EmptyOrRepeatedResourcesAreUsageErrorsNamingTheArgument) {
  auto r = run_to_end(redlock({"run", "", "--", "echo", "ran"}));
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("RESOURCE #1 is empty"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("ran"), std::string::npos);
  r = run_to_end(redlock({"acquire", resource_, ""}));
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("RESOURCE #2 is empty"), std::string::npos) << r.err;
  EXPECT_EQ(present_on(""), 0) << "an empty key was locked";

  r = run_to_end(redlock({"acquire", resource_, "other", resource_}));
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("given twice (#1 and #3)"), std::string::npos) << r.err;
  EXPECT_EQ(present_on(resource_), 0);
}

TEST_F(cli, TtlAboveTheServersLimitIsAUsageErrorSayingTheLimit) {
  // 600h parses (the parser accepts up to 100 days) but is above 2^31-1 ms.
  for (const char* sub : {"acquire", "run"}) {
    std::vector<std::string> args{sub, "--ttl", "600h", resource_};
    if (std::string(sub) == "run")
      args.insert(args.end(), {"--", "true"});
    auto r = run_to_end(redlock(args));
    EXPECT_EQ(r.code, exit_usage) << r.err;
    EXPECT_NE(r.err.find("--ttl"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("at most 2147483647ms"), std::string::npos) << r.err;
  }
  auto e = run_to_end(redlock(
      {"extend", "--ttl", "600h", resource_, "--value", "0123456789abcdef0123456789abcdef"}));
  EXPECT_EQ(e.code, exit_usage) << e.err;
  EXPECT_NE(e.err.find("at most 2147483647ms"), std::string::npos) << e.err;
}

TEST_F(cli, MissingTlsFilesAreUsageErrorsNamingTheFile) {
  const std::string url = "rediss://127.0.0.1:" + std::to_string(free_port());
  auto r = run_to_end({REDLOCK_CLI_PATH, "acquire", "--no-wait", "--server", url, "--tls-ca",
                       "/nonexistent/redlock-ca.pem", resource_});
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("--tls-ca '/nonexistent/redlock-ca.pem'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No such file"), std::string::npos) << r.err;

  r = run_to_end(
      {REDLOCK_CLI_PATH, "status", "--server", url + "?ca=/nonexistent/url-ca.pem", resource_});
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("server #1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/url-ca.pem"), std::string::npos) << r.err;
}

TEST_F(cli, KeyOfAnotherTypeGetsAHint) {
  for (auto& s : servers_)
    s->command({"RPUSH", resource_, "job"});
  auto r = run_to_end(redlock({"acquire", "--no-wait", resource_}));
  EXPECT_EQ(r.code, exit_unavailable) << r.err;
  EXPECT_NE(r.err.find("key '" + resource_ + "' holds a non-string value: not a lock key?"),
            std::string::npos)
      << r.err;
  for (auto& s : servers_)
    EXPECT_EQ(s->command({"TYPE", resource_}).str, "list") << "the list was touched";
}

TEST_F(cli, TheSameServerUnderTwoNamesIsAUsageError) {
  const auto port = std::to_string(servers_[0]->port());
  auto r = run_to_end({REDLOCK_CLI_PATH, "acquire", "--no-wait", "--server",
                       "redis://localhost:" + port, "--server", "redis://127.0.0.1:" + port,
                       "--server", servers_[1]->url(), resource_});
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("same deployment"), std::string::npos) << r.err;
  EXPECT_EQ(present_on(resource_), 0) << "a deployment listed twice was written to";
  // status too: it would count the server twice.
  r = run_to_end({REDLOCK_CLI_PATH, "status", "--server", "redis://localhost:" + port, "--server",
                  "redis://127.0.0.1:" + port, "--server", servers_[1]->url(), resource_});
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("same deployment"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nodes[0]"), std::string::npos) << r.err;
}

TEST_F(cli, BadServerUrlIsRejectedWithoutPrintingThePassword) {
  auto r = run_to_end(
      {REDLOCK_CLI_PATH, "acquire", "--server", "redis://app:s3cr3t-pw@127.0.0.1:notaport", "x"});
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("server #1"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("s3cr3t-pw"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("s3cr3t-pw"), std::string::npos) << r.out;

  process_options o;
  o.env.push_back("REDLOCK_SERVERS=redis://127.0.0.1:1,rediss://u:hunter2-pw@[::1");
  r = run_to_end({REDLOCK_CLI_PATH, "status", "x"}, o);
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_EQ(r.err.find("hunter2-pw"), std::string::npos) << r.err;

  o.env = {"REDLOCK_SERVERS= , "};
  r = run_to_end({REDLOCK_CLI_PATH, "status", "x"}, o);
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("no server"), std::string::npos) << r.err;
}

TEST_F(cli, WrongPasswordExits69AndNeverPrintsThePassword) {
  redis_server_options o;
  o.requirepass = "right-pw";
  redis_server guarded(o);
  const std::string url = "redis://:wrong-pw-123@127.0.0.1:" + std::to_string(guarded.port());
  auto r = run_to_end({REDLOCK_CLI_PATH, "acquire", "--no-wait", "--server", url, resource_});
  EXPECT_EQ(r.code, exit_unavailable) << r.err;
  EXPECT_NE(r.err.find(std::to_string(guarded.port())), std::string::npos)
      << "the failing server is not named: " << r.err;
  EXPECT_EQ(r.err.find("wrong-pw-123"), std::string::npos) << r.err;
}

TEST_F(cli, TlsFilesApplyToTlsServers) {
  redis_server_options o;
  o.tls = true;
  redis_server tls_server(o);
  const auto& c = certs();
  auto ok = run_to_end({REDLOCK_CLI_PATH, "acquire", "--no-wait", "--server", tls_server.tls_url(),
                        "--tls-ca", c.ca_cert, resource_});
  EXPECT_EQ(ok.code, 0) << ok.err;
  // A CA that signed nothing here: verification fails, the server counts as unreachable.
  auto bad = run_to_end({REDLOCK_CLI_PATH, "acquire", "--no-wait", "--server", tls_server.tls_url(),
                         "--tls-ca", c.other_ca_cert, resource_ + ":2"});
  EXPECT_EQ(bad.code, exit_unavailable) << bad.err;
}

TEST_F(cli, DuplicateServersAreAUsageError) {
  auto r = run_to_end({REDLOCK_CLI_PATH, "status", "--server", servers_[0]->url(), "--server",
                       servers_[0]->url(), resource_});
  EXPECT_EQ(r.code, exit_usage) << r.err;
}

TEST_F(cli, HelpListsTheExitCodes) {
  auto r = run_to_end({REDLOCK_CLI_PATH, "--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* code : {"69", "75", "76", "126", "128+N", "REDLOCK_SERVERS", "REDLOCK_FENCING",
                           "REDLOCK_LOCK_VALUE", "REDLOCK_FENCING_TOKEN"})
    EXPECT_NE(r.out.find(code), std::string::npos) << code << "\n" << r.out;
}

// --- issue 14: server lists, compound durations, passwords, status codes, JSON ----------

TEST_F(cli, ServerOptionTakesACommaListAndStaysRepeatable) {
  auto a = run_to_end({REDLOCK_CLI_PATH, "acquire", "--server",
                       servers_[0]->url() + ", " + servers_[1]->url() + ",", "--server",
                       servers_[2]->url(), resource_});
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(holders_of(resource_, a.out.substr(0, 32)), 3) << "not all three servers were used";
  auto s = run_to_end({REDLOCK_CLI_PATH, "status", "--server",
                       servers_[0]->url() + "," + servers_[1]->url() + "," + servers_[2]->url(),
                       resource_});
  EXPECT_EQ(s.code, 0) << s.err;
  EXPECT_NE(s.out.find("on 3 of 3 servers"), std::string::npos) << s.out;
}

TEST_F(cli, CommasInsideSentinelAndClusterUrlsDoNotSplitThem) {
  // Two URLs of one Cluster deployment, members listed in a different order: refused as the
  // same deployment, which needs each kept whole (split at its commas, "127.0.0.1:7001"
  // would be a URL without a scheme).
  const std::string a = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001";
  const std::string b = "redis+cluster://127.0.0.1:7001,127.0.0.1:7000";
  const std::string sentinel = "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster";
  auto r = run_to_end({REDLOCK_CLI_PATH, "status", "--server", a + "," + sentinel + "," + b, "x"});
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("listed twice: " + b), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("invalid URL"), std::string::npos) << r.err;
  process_options o;
  o.env.push_back("REDLOCK_SERVERS=" + sentinel + ", " + a + "," + b);
  r = run_to_end({REDLOCK_CLI_PATH, "status", "x"}, o);
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("listed twice: " + b), std::string::npos) << r.err;
  // A member that is not host[:port] stays in its URL, which reports it.
  r = run_to_end(
      {REDLOCK_CLI_PATH, "status", "--server", "redis+cluster://127.0.0.1:7000,:x", "x"});
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("server #1"), std::string::npos) << r.err;
}

TEST_F(cli, CompoundDurationsAreAcceptedAndGarbageNamesTheOption) {
  auto a = run_to_end(redlock({"acquire", "--ttl", "1m30s", resource_}));
  ASSERT_EQ(a.code, 0) << a.err;
  for (auto& s : servers_) {
    const auto pttl = s->command({"PTTL", resource_}).integer;
    EXPECT_GT(pttl, 85'000);
    EXPECT_LE(pttl, 90'000);
  }
  for (const std::string bad : {"30s1m", "1m1m", "1m30", "1.5m30s", "1h1x"}) {
    auto r = run_to_end(redlock({"acquire", "--wait", bad, resource_ + ":2"}));
    EXPECT_EQ(r.code, exit_usage) << bad << ": " << r.err;
    EXPECT_NE(r.err.find("--wait: duration '" + bad + "'"), std::string::npos) << r.err;
  }
}

/// A password-protected redis-server and a URL to it without the password.
struct guarded_server {
  guarded_server() : server(options()) {}
  static redis_server_options options() {
    redis_server_options o;
    o.requirepass = "pw-from-elsewhere-123";
    return o;
  }
  std::string bare_url() const { return "redis://127.0.0.1:" + std::to_string(server.port()); }
  redis_server server;
};

std::filesystem::path write_password_file(const std::string& name, const std::string& content,
                                          std::filesystem::perms perms) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("redlock-cli-pw-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream(path) << content;
  std::filesystem::permissions(path, perms);
  return path;
}

TEST_F(cli, PasswordComesFromTheEnvironmentOrAFileForUrlsWithoutOne) {
  guarded_server g;
  const std::string pw = guarded_server::options().requirepass;
  auto none = run_to_end(
      {REDLOCK_CLI_PATH, "acquire", "--no-wait", "--server", g.bare_url(), resource_ + ":none"});
  EXPECT_EQ(none.code, exit_unavailable) << none.err;

  process_options env;
  env.env.push_back("REDLOCK_PASSWORD=" + pw);
  auto a = run_to_end({REDLOCK_CLI_PATH, "acquire", "--no-wait", "-v", "--json", "--server",
                       g.bare_url(), resource_ + ":env"},
                      env);
  EXPECT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out.find(pw), std::string::npos) << a.out;
  EXPECT_EQ(a.err.find(pw), std::string::npos) << a.err;

  const auto file = write_password_file("ok", pw + "\n", std::filesystem::perms::owner_read);
  auto f = run_to_end({REDLOCK_CLI_PATH, "acquire", "--no-wait", "--password-file", file.string(),
                       "--server", g.bare_url(), resource_ + ":file"});
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(f.err.find("warning"), std::string::npos) << f.err;

  // A URL's own password wins over both.
  process_options wrong;
  wrong.env.push_back("REDLOCK_PASSWORD=not-the-password");
  auto own = run_to_end(
      {REDLOCK_CLI_PATH, "acquire", "--no-wait", "--server", g.server.url(), resource_ + ":own"},
      wrong);
  EXPECT_EQ(own.code, 0) << own.err;
  auto bad = run_to_end(
      {REDLOCK_CLI_PATH, "acquire", "--no-wait", "--server", g.bare_url(), resource_ + ":wrong"},
      wrong);
  EXPECT_EQ(bad.code, exit_unavailable) << bad.err;
  EXPECT_EQ(bad.err.find("not-the-password"), std::string::npos) << bad.err;
  std::filesystem::remove(file);
}

TEST_F(cli, PasswordFileThatOthersCanReadWarnsAndAMissingOrEmptyOneIsAUsageError) {
  guarded_server g;
  const std::string pw = guarded_server::options().requirepass;
  using std::filesystem::perms;
  const auto open = write_password_file("open", pw + "\r\n",
                                        perms::owner_read | perms::group_read | perms::others_read);
  auto r = run_to_end({REDLOCK_CLI_PATH, "acquire", "--no-wait", "--password-file", open.string(),
                       "--server", g.bare_url(), resource_});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("can be read by other users (mode 444)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(pw), std::string::npos) << r.err;

  const auto empty = write_password_file("empty", "\n" + pw, perms::owner_read);
  r = run_to_end({REDLOCK_CLI_PATH, "acquire", "--password-file", empty.string(), "--server",
                  g.bare_url(), resource_});
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("--password-file '" + empty.string() + "': the first line is empty"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find(pw), std::string::npos) << r.err;
  r = run_to_end({REDLOCK_CLI_PATH, "acquire", "--password-file", "/nonexistent/redlock-pw",
                  "--server", g.bare_url(), resource_});
  EXPECT_EQ(r.code, exit_usage) << r.err;
  EXPECT_NE(r.err.find("--password-file '/nonexistent/redlock-pw': No such file"),
            std::string::npos)
      << r.err;
  std::filesystem::remove(open);
  std::filesystem::remove(empty);
}

std::string read_proc(pid_t pid, const char* what) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + what, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_F(cli, RunShowsThePasswordNeitherInItsProcessNorInTheCommands) {
  guarded_server g;
  const std::string pw = guarded_server::options().requirepass;
  const auto file = write_password_file("run", pw + "\n", std::filesystem::perms::owner_read);
  struct way {
    std::string name;
    std::vector<std::string> flags;
    std::string env;
  };
  for (const way& w : {way{"file", {"--password-file", file.string()}, ""},
                       way{"environment", {}, "REDLOCK_PASSWORD=" + pw}}) {
    SCOPED_TRACE(w.name);
    const auto marker = marker_path();
    std::filesystem::remove(marker);
    std::vector<std::string> argv{REDLOCK_CLI_PATH, "run", "--server", g.bare_url()};
    argv.insert(argv.end(), w.flags.begin(), w.flags.end());
    argv.insert(argv.end(), {resource_, "--", "sh", "-c",
                             "echo pid=$$; i=0; while [ ! -e '" + marker.string() +
                                 "' ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done"});
    process_options o;
    if (!w.env.empty())
      o.env.push_back(w.env);
    process p(argv, o);
    std::smatch m;
    ASSERT_TRUE(p.wait_output(
        [&](auto& out, auto&) { return std::regex_search(out, m, std::regex("pid=([0-9]+)\n")); },
        20s))
        << p.err();
    const pid_t child = std::stoi(m[1].str());
    EXPECT_EQ(g.server.command({"EXISTS", resource_}).integer, 1) << "the lock was not taken";
    for (const auto& [pid, who] : {std::pair{p.pid(), "redlock"}, std::pair{child, "command"}}) {
      for (const char* what : {"cmdline", "environ"}) {
        const std::string seen = read_proc(pid, what);
        EXPECT_FALSE(seen.empty()) << who << " " << what << " unreadable";
        EXPECT_EQ(seen.find(pw), std::string::npos) << who << "'s " << what << " shows it";
      }
    }
    EXPECT_EQ(read_proc(child, "environ").find("REDLOCK_PASSWORD"), std::string::npos);
    std::ofstream(marker).put('\n');
    ASSERT_TRUE(p.wait_exit(20s));
    EXPECT_EQ(p.exit_code(), 0) << p.err();
    EXPECT_EQ(p.err().find(pw), std::string::npos) << p.err();
    std::filesystem::remove(marker);
  }
  std::filesystem::remove(file);
}

TEST_F(cli, EncryptedTlsKeyLoadsWithAPassphraseFromAFileOrTheEnvironment) {
  redis_server_options so;
  so.tls = true;
  so.tls_auth_clients = true;
  redis_server tls_server(so);
  const auto& c = certs();
  const std::vector<std::string> base{
      REDLOCK_CLI_PATH, "acquire",    "--no-wait",   "--server",  tls_server.tls_url(),  "--tls-ca",
      c.ca_cert,        "--tls-cert", c.client_cert, "--tls-key", c.encrypted_client_key};
  auto with = [&](std::vector<std::string> extra, const std::string& resource) {
    auto argv = base;
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(resource);
    return argv;
  };
  auto none = run_to_end(with({}, resource_ + ":none"));
  EXPECT_EQ(none.code, exit_unavailable) << none.err;
  EXPECT_NE(none.err.find("cannot load client key"), std::string::npos) << none.err;

  const auto file = write_password_file("tls", c.client_key_passphrase + "\n",
                                        std::filesystem::perms::owner_read);
  auto f = run_to_end(with({"--tls-key-passphrase-file", file.string()}, resource_ + ":file"));
  EXPECT_EQ(f.code, 0) << f.err;
  process_options env;
  env.env.push_back("REDLOCK_TLS_KEY_PASSPHRASE=" + c.client_key_passphrase);
  auto e = run_to_end(with({"-v"}, resource_ + ":env"), env);
  EXPECT_EQ(e.code, 0) << e.err;
  for (const auto* r : {&none, &f, &e}) {
    EXPECT_EQ(r->err.find(c.client_key_passphrase), std::string::npos) << r->err;
    EXPECT_EQ(r->out.find(c.client_key_passphrase), std::string::npos) << r->out;
  }
  // Without a TLS server the option is a mistake, like the other TLS files.
  auto plain =
      run_to_end(redlock({"acquire", "--tls-key-passphrase-file", file.string(), resource_}));
  EXPECT_EQ(plain.code, exit_usage) << plain.err;
  std::filesystem::remove(file);
}

TEST_F(cli, StatusExitCodeSaysHeldFreeIndeterminateOrUnavailable) {
  auto free = run_to_end(redlock({"status", resource_}));
  EXPECT_EQ(free.code, exit_status_free) << free.out << free.err;
  hold_elsewhere(resource_);
  auto held = run_to_end(redlock({"status", resource_}));
  EXPECT_EQ(held.code, 0) << held.out << held.err;
  // Every server answers, no quorum agrees: one value, another value, nothing.
  servers_[0]->command({"SET", resource_ + ":split", "value-a", "PX", "60000"});
  servers_[1]->command({"SET", resource_ + ":split", "value-b", "PX", "60000"});
  auto split = run_to_end(redlock({"status", resource_ + ":split"}));
  EXPECT_EQ(split.code, exit_status_indeterminate) << split.out << split.err;
  EXPECT_NE(split.out.find("indeterminate"), std::string::npos) << split.out;
  servers_[1]->kill9();
  servers_[2]->kill9();
  auto down = run_to_end(redlock({"status", resource_}));
  EXPECT_EQ(down.code, exit_unavailable) << down.out << down.err;
}

/// Checks `text` against docs/cli-json.md's schema with tests/cli/check_cli_json.py: exactly
/// one line, every documented field with its type, no undocumented one.
int check_schema(const std::string& text, const std::string& command, bool ok) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("redlock-cli-schema-" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << text;
  auto r = run_to_end({"/usr/bin/python3", REDLOCK_SOURCE_DIR "/tests/cli/check_cli_json.py",
                       path.string(), command, ok ? "true" : "false"});
  std::filesystem::remove(path);
  if (r.code != 0)
    ADD_FAILURE() << command << (ok ? " success" : " failure") << ": " << r.err;
  return r.code;
}

/// The last line of `err`: run's JSON object, after anything else written to stderr.
std::string last_line(const std::string& err) {
  const auto end = err.size() > 0 && err.back() == '\n' ? err.size() - 1 : err.size();
  const auto nl = err.rfind('\n', end == 0 ? 0 : end - 1);
  return err.substr(nl == std::string::npos ? 0 : nl + 1);
}

TEST_F(cli, JsonOfEverySubcommandMatchesTheSchemaOnSuccessAndFailure) {
  // acquire
  auto a = run_to_end(redlock({"acquire", "--json", "--fencing", "--ttl", "30s", resource_}));
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(check_schema(a.out, "acquire", true), 0);
  EXPECT_EQ(check_json(a.out,
                       "assert len(d['value']) == 32 and d['fencing_token'] >= 1, d\n"
                       "assert 0 < d['validity_ms'] <= 30000 and d['attempts'] == 1, d\n"),
            0);
  const std::string value = a.out.substr(a.out.find("\"value\": \"") + 10, 32);
  EXPECT_EQ(holders_of(resource_, value), 3);
  auto busy = run_to_end(redlock({"acquire", "--json", "--no-wait", resource_}));
  EXPECT_EQ(busy.code, exit_not_acquired);
  EXPECT_EQ(check_schema(busy.out, "acquire", false), 0);
  EXPECT_EQ(check_json(busy.out,
                       "assert d['error']['name'] == 'not_acquired', d\n"
                       "assert 'held by another owner' in d['error']['message'], d\n"
                       "assert d['value'] is None, d\n"),
            0);
  // status: held, free
  auto st = run_to_end(redlock({"status", resource_, "--json"}));
  EXPECT_EQ(st.code, 0);
  EXPECT_EQ(check_schema(st.out, "status", true), 0);
  auto st_free = run_to_end(redlock({"status", "--json", resource_ + ":free"}));
  EXPECT_EQ(st_free.code, exit_status_free);
  EXPECT_EQ(check_schema(st_free.out, "status", true), 0);
  // extend
  auto e = run_to_end(redlock({"extend", "--json", resource_, "--value", value}));
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_EQ(check_schema(e.out, "extend", true), 0);
  auto e_lost =
      run_to_end(redlock({"extend", "--json", resource_, "--value", std::string(32, 'a')}));
  EXPECT_EQ(e_lost.code, exit_lost);
  EXPECT_EQ(check_schema(e_lost.out, "extend", false), 0);
  // release
  auto r = run_to_end(redlock({"release", "--json", resource_, "--value", value}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(check_schema(r.out, "release", true), 0);
  EXPECT_EQ(check_json(r.out, "assert d['released'] == 3 and d['servers'] == 3, d\n"), 0);
  auto r_lost = run_to_end(redlock({"release", "--json", resource_, "--value", value}));
  EXPECT_EQ(r_lost.code, exit_lost);
  EXPECT_EQ(check_schema(r_lost.out, "release", false), 0);
  EXPECT_EQ(check_json(r_lost.out, "assert d['error']['name'] == 'lost', d\n"), 0);
  // owner metadata (on by default without --fencing) in status, and release --force
  const std::string owned = resource_ + ":force";
  auto oa = run_to_end(redlock({"acquire", "--owner-label", "json-test", owned}));
  ASSERT_EQ(oa.code, 0) << oa.err;
  auto ost = run_to_end(redlock({"status", "--json", owned}));
  EXPECT_EQ(ost.code, 0) << ost.err;
  EXPECT_EQ(check_schema(ost.out, "status", true), 0);
  EXPECT_EQ(check_json(ost.out,
                       "assert d['owner']['label'] == 'json-test', d\n"
                       "assert d['nodes'][0]['keys'][0]['owner']['pid'] > 0, d\n"),
            0);
  auto fr = run_to_end(redlock({"release", "--force", "--yes", "--json", owned}));
  EXPECT_EQ(fr.code, 0) << fr.err;
  EXPECT_EQ(check_schema(fr.out, "release --force", true), 0);
  EXPECT_EQ(check_json(fr.out,
                       "assert d['force'] is True and d['answered'] == 3, d\n"
                       "assert len(d['removed']) == 1 and d['removed'][0]['servers'] == 3, d\n"
                       "assert d['removed'][0]['owner']['label'] == 'json-test', d\n"),
            0);
  EXPECT_EQ(present_on(owned), 0);
  // run: the object on stderr, after the command; the command's own code is not an error.
  auto run_ok =
      run_to_end(redlock({"run", "--json", resource_, "--", "sh", "-c", "echo out; exit 7"}));
  EXPECT_EQ(run_ok.code, 7) << run_ok.err;
  EXPECT_EQ(run_ok.out, "out\n") << "stdout belongs to the command";
  EXPECT_EQ(check_schema(last_line(run_ok.err), "run", true), 0);
  EXPECT_EQ(check_json(last_line(run_ok.err),
                       "assert d['command_exit_code'] == 7 and d['exit_code'] == 7, d\n"
                       "assert d['lost'] is False and len(d['value']) == 32, d\n"),
            0);
  auto run_missing =
      run_to_end(redlock({"run", "--json", resource_, "--", "/nonexistent/redlock-test-cmd"}));
  EXPECT_EQ(run_missing.code, 127);
  EXPECT_EQ(check_schema(last_line(run_missing.err), "run", false), 0);
  EXPECT_EQ(check_json(last_line(run_missing.err),
                       "assert d['error']['name'] == 'not_found', d\n"
                       "assert 'cannot run' in d['error']['message'], d\n"),
            0);
  hold_elsewhere(resource_);
  auto run_busy = run_to_end(redlock({"run", "--json", "--no-wait", resource_, "--", "true"}));
  EXPECT_EQ(run_busy.code, exit_not_acquired);
  EXPECT_EQ(check_schema(last_line(run_busy.err), "run", false), 0);
  // unavailable, and usage errors: from the parser (bad option, unknown subcommand) and later.
  servers_[1]->kill9();
  servers_[2]->kill9();
  auto st_down = run_to_end(redlock({"status", "--json", resource_}));
  EXPECT_EQ(st_down.code, exit_unavailable);
  EXPECT_EQ(check_schema(st_down.out, "status", false), 0);
  auto fr_down = run_to_end(redlock({"release", "--force", "--yes", "--json", owned}));
  EXPECT_EQ(fr_down.code, exit_unavailable);
  EXPECT_EQ(check_schema(fr_down.out, "release --force", false), 0);
  auto acq_down = run_to_end(redlock({"acquire", "--json", "--no-wait", resource_ + ":down"}));
  EXPECT_EQ(acq_down.code, exit_unavailable);
  EXPECT_EQ(check_schema(acq_down.out, "acquire", false), 0);
  struct usage_case {
    std::vector<std::string> args;
    std::string command;
  };
  for (const auto& u :
       std::vector<usage_case>{{{"acquire", "--json", "--frobnicate", "x"}, "acquire"},
                               {{"status", "--json"}, "status"},
                               {{"release", "--json", "x"}, "release"},
                               {{"extend", "--json", "--ttl", "5", "x", "--value", "v"}, "extend"},
                               {{"run", "--json", "--ttl", "1m1m", "x", "--", "true"}, "run"},
                               {{"frobnicate", "--json"}, "-"}}) {
    SCOPED_TRACE(u.args.front());
    auto bad = run_to_end(redlock(u.args));
    EXPECT_EQ(bad.code, exit_usage) << bad.err;
    const std::string json = u.command == "run" ? last_line(bad.err) : bad.out;
    EXPECT_EQ(check_schema(json, u.command, false), 0);
    EXPECT_EQ(check_json(json, "assert d['error']['name'] == 'usage', d\n"), 0);
  }
}

}  // namespace
}  // namespace redlock::test

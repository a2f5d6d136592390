// The `redlock` tool's owner metadata, key prefix and `release --force` against real
// redis-servers: what is written, what status shows, what a force release asks, removes,
// prints and logs.
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cli_argv.hpp"
#include "redlock/owner.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

namespace redlock::test {
namespace {

using namespace std::chrono_literals;

constexpr int exit_usage = 2;
constexpr int exit_declined = 1;

std::string owner_key(const std::string& key) {
  return "{" + key + "}:redlock-owner";
}

class cli_owner : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i)
      servers_.push_back(std::make_unique<redis_server>());
    resource_ =
        std::string("cli-owner:") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  /// argv for the binary: the subcommand, every server, then `args`' rest.
  std::vector<std::string> redlock(const std::vector<std::string>& args) const {
    return cli_argv(REDLOCK_CLI_PATH, servers_, args);
  }

  /// The same command line as one shell word list, for `script -c` (no argument here needs
  /// quoting beyond single quotes).
  std::string shell_line(const std::vector<std::string>& argv) const {
    std::string line;
    for (const auto& a : argv)
      line += (line.empty() ? "'" : " '") + a + "'";
    return line;
  }

  std::string value_on(std::size_t i, const std::string& key) const {
    auto r = servers_[i]->command({"GET", key});
    return r.kind == reply::type::string ? r.str : std::string("(nil)");
  }

  int present_on(const std::string& key) const {
    int n = 0;
    for (const auto& s : servers_)
      n += s->command({"EXISTS", key}).is_integer(1) ? 1 : 0;
    return n;
  }

  std::string acquire(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"acquire", "--ttl", "30s"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(resource_);
    auto a = run_to_end(redlock(args));
    EXPECT_EQ(a.code, 0) << a.err;
    return a.out.substr(0, 32);
  }

  std::vector<std::unique_ptr<redis_server>> servers_;
  std::string resource_;
};

int check_json(const std::string& json, const std::string& program) {
  const auto dir = make_temp_dir("redlock-cli-owner-");
  const auto path = dir + "/status.json";
  {
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(json.c_str(), f);
    std::fclose(f);
  }
  auto r = run_to_end({"/usr/bin/python3", "-c",
                       "import json,sys\nd=json.load(open(sys.argv[1]))\n" + program, path});
  remove_temp_dir(dir);
  if (r.code != 0)
    ADD_FAILURE() << r.err << "\n" << json;
  return r.code;
}

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_F(cli_owner, AcquireWritesTheOwnerOnEveryServerAndStatusShowsIt) {
  const auto before = now_ms();
  const auto value = acquire({"--owner-label", "deploy #7"});
  const auto after = now_ms();
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    auto rec = decode_owner(value_on(i, owner_key(resource_)));
    ASSERT_TRUE(rec) << "server " << i;
    EXPECT_EQ(rec->value, value);
    EXPECT_EQ(rec->who.program, "redlock acquire");
    EXPECT_EQ(rec->who.label, "deploy #7");
    EXPECT_GT(rec->who.pid, 0);
    EXPECT_GE(rec->since, before);
    EXPECT_LE(rec->since, after);
  }
  auto s = run_to_end(redlock({"status", resource_}));
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_NE(s.out.find("owner: pid "), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("program redlock acquire, label deploy #7, since 20"), std::string::npos)
      << s.out;
  auto j = run_to_end(redlock({"status", "--json", resource_}));
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_EQ(check_json(j.out,
                       "o = d['owner']\n"
                       "assert o['label'] == 'deploy #7', o\n"
                       "assert o['program'] == 'redlock acquire', o\n"
                       "assert o['pid'] > 0 and o['host'], o\n"
                       "assert o['since_ms'] >= " +
                           std::to_string(before) +
                           ", o\n"
                           "assert o['since'].endswith('Z'), o\n"
                           "for n in d['nodes']:\n"
                           "  assert n['keys'][0]['owner'] == o, n\n"),
            0);
}

TEST_F(cli_owner, StatusOfAFreeResourceHasNoOwner) {
  // A free resource is status's exit 3 (held is 0): the JSON report is printed all the same.
  auto j = run_to_end(redlock({"status", "--json", resource_}));
  ASSERT_EQ(j.code, 3) << j.err;
  EXPECT_EQ(check_json(j.out,
                       "assert d['owner'] is None, d\n"
                       "assert d['nodes'][0]['keys'][0]['owner'] is None, d\n"),
            0);
  auto s = run_to_end(redlock({"status", resource_}));
  EXPECT_EQ(s.out.find("owner"), std::string::npos) << s.out;
}

TEST_F(cli_owner, RunNamesItsCommandAsTheProgram) {
  auto r = run_to_end(redlock({"run", resource_, "--", "sh", "-c",
                               "redis-cli -p " + std::to_string(servers_[0]->port()) + " GET '" +
                                   owner_key(resource_) + "'"}));
  ASSERT_EQ(r.code, 0) << r.err;
  auto rec = decode_owner(r.out.substr(0, r.out.size() - 1));
  ASSERT_TRUE(rec) << r.out;
  EXPECT_EQ(rec->who.program, "sh -c redis-cli -p " + std::to_string(servers_[0]->port()) +
                                  " GET '" + owner_key(resource_) + "'");
  EXPECT_EQ(present_on(owner_key(resource_)), 0) << "run's release removes the record";
}

TEST_F(cli_owner, ExtendProlongsTheRecordAndReleaseRemovesIt) {
  const auto value = acquire();
  auto e = run_to_end(redlock({"extend", "--ttl", "90s", resource_, "--value", value}));
  ASSERT_EQ(e.code, 0) << e.err;
  for (auto& s : servers_)
    EXPECT_GT(s->command({"PTTL", owner_key(resource_)}).integer, 60000);
  auto r = run_to_end(redlock({"release", resource_, "--value", value}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(present_on(resource_), 0);
  EXPECT_EQ(present_on(owner_key(resource_)), 0);
}

TEST_F(cli_owner, TheRecordExpiresWithTheLock) {
  auto a = run_to_end(redlock({"acquire", "--ttl", "400ms", resource_}));
  ASSERT_EQ(a.code, 0) << a.err;
  for (auto& s : servers_) {
    EXPECT_LE(s->command({"PTTL", owner_key(resource_)}).integer,
              s->command({"PTTL", resource_}).integer + 5);
  }
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (present_on(owner_key(resource_)) > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(present_on(owner_key(resource_)), 0);
  EXPECT_EQ(present_on(resource_), 0);
}

TEST_F(cli_owner, NoOwnerWritesOnlyTheLockKey) {
  acquire({"--no-owner"});
  for (auto& s : servers_)
    EXPECT_EQ(s->command({"DBSIZE"}).integer, 1);
  auto r = run_to_end(redlock({"acquire", "--no-owner", "--owner-label", "x", resource_}));
  EXPECT_EQ(r.code, exit_usage);
  EXPECT_NE(r.err.find("--owner-label and --no-owner cannot be combined"), std::string::npos)
      << r.err;
}

TEST_F(cli_owner, FencedAndFairLocksCarryNoOwnerAndALabelForThemIsAUsageError) {
  acquire({"--fencing"});
  EXPECT_EQ(present_on(owner_key(resource_)), 0);
  auto r = run_to_end(redlock({"acquire", "--fair", "--owner-label", "x", resource_ + "2"}));
  EXPECT_EQ(r.code, exit_usage);
  EXPECT_NE(r.err.find("--owner-label and --fair cannot be combined"), std::string::npos) << r.err;
  r = run_to_end(redlock({"run", "--fencing", "--owner-label", "x", resource_, "--", "true"}));
  EXPECT_EQ(r.code, exit_usage);
  EXPECT_NE(r.err.find("--owner-label and --fencing cannot be combined"), std::string::npos)
      << r.err;
}

TEST_F(cli_owner, PrefixFromTheOptionOrTheEnvironmentNamespacesTheKeys) {
  const auto value = acquire({"--prefix", "team-a:"});
  EXPECT_EQ(present_on("team-a:" + resource_), 3);
  EXPECT_EQ(present_on(owner_key("team-a:" + resource_)), 3);
  EXPECT_EQ(present_on(resource_), 0);
  process_options env;
  env.env.push_back("REDLOCK_PREFIX=team-a:");
  auto s = run_to_end(redlock({"status", resource_}), env);
  EXPECT_NE(s.out.find("held by " + value), std::string::npos) << s.out;
  // Another namespace: another lock.
  auto b = run_to_end(redlock({"acquire", "--no-wait", resource_}));
  EXPECT_EQ(b.code, 0) << b.err;
  // The option wins over the environment.
  auto r = run_to_end(redlock({"release", "--prefix", "team-a:", resource_, "--value", value}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(present_on("team-a:" + resource_), 0);
}

TEST_F(cli_owner, APrefixWithBracesIsAUsageErrorNamingItsSource) {
  auto r = run_to_end(redlock({"acquire", "--prefix", "{x}:", resource_}));
  EXPECT_EQ(r.code, exit_usage);
  EXPECT_NE(r.err.find("--prefix '{x}:' must not contain"), std::string::npos) << r.err;
  process_options env;
  env.env.push_back("REDLOCK_PREFIX=a}");
  r = run_to_end(redlock({"status", resource_}), env);
  EXPECT_EQ(r.code, exit_usage);
  EXPECT_NE(r.err.find("REDLOCK_PREFIX 'a}'"), std::string::npos) << r.err;
}

TEST_F(cli_owner, ForceWithYesRemovesAnyHolderPrintsItsOwnerAndLogsIt) {
  owner_info who;
  who.host = "gone-host";
  who.pid = 777;
  who.program = "crashed-job";
  const auto record = encode_owner("stuck-value", 1700000000000, who);
  for (auto& s : servers_) {
    s->command({"SET", resource_, "stuck-value", "PX", "600000"});
    s->command({"SET", owner_key(resource_), record, "PX", "600000"});
  }
  auto r = run_to_end(redlock({"release", "--force", "--yes", resource_}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("removed stuck-value from 3 of 3 servers, owner pid 777 on gone-host, "
                       "program crashed-job, since 2023-11-14T22:13:20.000Z"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.err.find("force release of " + resource_ + " by pid "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("removed value stuck-value (owner: pid 777"), std::string::npos) << r.err;
  EXPECT_EQ(present_on(resource_), 0);
  EXPECT_EQ(present_on(owner_key(resource_)), 0);
  // Nothing left: says so, and succeeds (the resource is free).
  r = run_to_end(redlock({"release", "--force", "--yes", resource_}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("nothing held"), std::string::npos) << r.out;
}

TEST_F(cli_owner, ForceWithoutYesRefusesWhenStdinIsNotATerminal) {
  const auto value = acquire();
  auto r = run_to_end(redlock({"release", "--force", resource_}));
  EXPECT_EQ(r.code, exit_usage);
  EXPECT_NE(r.err.find("give --yes"), std::string::npos) << r.err;
  for (std::size_t i = 0; i < servers_.size(); ++i)
    EXPECT_EQ(value_on(i, resource_), value);
}

TEST_F(cli_owner, ForceAsksAtTheTerminalAndOnlyYesReleases) {
  const auto value = acquire({"--owner-label", "asked"});
  // script(1) gives the tool a terminal (stdin and /dev/tty) fed from the pipe.
  const auto line = shell_line(redlock({"release", "--force", resource_}));
  for (const char* answer : {"n", "", "y"}) {
    SCOPED_TRACE(std::string("answer '") + answer + "'");
    auto r = run_to_end(
        {"/bin/sh", "-c",
         "(sleep 1; printf '" + std::string(answer) + "\\n') | script -qec \"$0\" /dev/null",
         line});
    EXPECT_NE(r.out.find("force-release '" + resource_ + "', held by " + value), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("label asked"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[y/N]"), std::string::npos) << r.out;
    if (std::string(answer) == "y") {
      EXPECT_EQ(r.code, 0) << r.out;
      EXPECT_EQ(present_on(resource_), 0);
    } else {
      EXPECT_EQ(r.code, exit_declined) << r.out;
      EXPECT_NE(r.out.find("not released (not confirmed)"), std::string::npos) << r.out;
      EXPECT_EQ(present_on(resource_), 3);
    }
  }
}

TEST_F(cli_owner, ForceAndValueAreExclusiveAndYesNeedsForce) {
  auto r = run_to_end(redlock({"release", "--force", "--value", "abc", resource_}));
  EXPECT_EQ(r.code, exit_usage) << r.err;
  r = run_to_end(redlock({"release", "--yes", "--value", "abc", resource_}));
  EXPECT_EQ(r.code, exit_usage);
  EXPECT_NE(r.err.find("--yes is for release --force"), std::string::npos) << r.err;
  r = run_to_end(redlock({"release", resource_}));
  EXPECT_EQ(r.code, exit_usage);
  EXPECT_NE(r.err.find("release needs --value"), std::string::npos) << r.err;
}

TEST_F(cli_owner, HelpDescribesTheOptionsAndTheVariable) {
  auto r = run_to_end({REDLOCK_CLI_PATH, "--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* s : {"--prefix", "--owner-label", "--no-owner", "REDLOCK_PREFIX"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  r = run_to_end({REDLOCK_CLI_PATH, "release", "--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* s : {"--force", "--yes", "exit 1"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

}  // namespace
}  // namespace redlock::test

// The test support launcher itself: every other integration test relies on it starting,
// restarting and always cleaning up real redis-server processes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::test::certs;
using redlock::test::redis_server;
using redlock::test::redis_server_options;

bool process_alive(pid_t pid) {
  return pid > 0 && ::kill(pid, 0) == 0;
}

TEST(RedisServerSupport, StartsOnFreePortAndStopsWithoutLeavingAnything) {
  std::string dir;
  pid_t pid = -1;
  {
    redis_server server;
    dir = server.dir();
    pid = server.pid();
    EXPECT_TRUE(server.running());
    EXPECT_GT(server.port(), 0);
    EXPECT_EQ(server.command({"PING"}).str, "PONG");
    EXPECT_EQ(server.url(), "redis://127.0.0.1:" + std::to_string(server.port()));
    EXPECT_TRUE(std::filesystem::exists(dir + "/redis.conf"));
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_FALSE(process_alive(pid));
}

TEST(RedisServerSupport, Kill9ThenStartKeepsPortAndDir) {
  redis_server server;
  const auto port = server.port();
  const auto old_pid = server.pid();
  server.command({"SET", "k", "v"});
  server.kill9();
  EXPECT_FALSE(server.running());
  EXPECT_FALSE(process_alive(old_pid));
  server.start();
  EXPECT_TRUE(server.running());
  EXPECT_EQ(server.port(), port);
  // No persistence by default: the data is gone after a restart.
  EXPECT_EQ(server.command({"GET", "k"}).kind, redlock::reply::type::nil);
}

TEST(RedisServerSupport, AppendOnlyAlwaysSurvivesKill9) {
  redis_server_options o;
  o.appendonly = true;
  o.appendfsync = "always";
  redis_server server(o);
  server.command({"SET", "durable", "yes"});
  server.restart();
  EXPECT_EQ(server.command({"GET", "durable"}).str, "yes");
}

TEST(RedisServerSupport, RequirepassAndUnixSocketAndUrls) {
  redis_server_options o;
  o.requirepass = "p@ss word";
  o.unix_socket = true;
  redis_server server(o);
  EXPECT_EQ(server.command({"SET", "a", "1"}).str, "OK");  // command() authenticates
  EXPECT_NE(server.url().find("p%40ss%20word@"), std::string::npos) << server.url();
  EXPECT_EQ(server.unix_url().rfind("unix://" + server.unix_path(), 0), 0u) << server.unix_url();
  struct stat st {};
  ASSERT_EQ(::stat(server.unix_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST(RedisServerSupport, TlsServerUsesGeneratedCertificates) {
  redis_server_options o;
  o.tls = true;
  redis_server server(o);
  EXPECT_GT(server.tls_port(), 0);
  EXPECT_NE(server.tls_port(), server.port());
  EXPECT_EQ(server.tls_url(), "rediss://127.0.0.1:" + std::to_string(server.tls_port()));
  const auto& c = certs();
  for (const auto& f :
       {c.ca_cert, c.server_cert, c.server_key, c.client_cert, c.client_key, c.other_ca_cert})
    EXPECT_TRUE(std::filesystem::exists(f)) << f;
  EXPECT_TRUE(std::filesystem::is_directory(c.ca_dir));
}

TEST(RedisServerSupport, BadConfigFailsWithTheServerLog) {
  redis_server_options o;
  o.extra_config = {"no-such-directive yes"};
  try {
    redis_server server(o);
    FAIL() << "a bad config must not start";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-directive"), std::string::npos) << e.what();
  }
}

TEST(RedisServerSupport, PauseAndResume) {
  redis_server server;
  server.pause();
  server.resume();
  EXPECT_EQ(server.command({"PING"}).str, "PONG");
  server.pause();
  // stop() must also work on a paused server (it sends SIGCONT after SIGTERM).
  const pid_t pid = server.pid();
  server.stop();
  EXPECT_FALSE(process_alive(pid));
}

}  // namespace

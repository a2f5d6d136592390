#include <gtest/gtest.h>
#include <asio/io_context.hpp>

#include "redlock/error.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/make_node.hpp"

namespace {

using redlock::redacted_url;
using redlock::server_identity;

TEST(ServerIdentity, IgnoresDbUserPasswordAndHostCase) {
  EXPECT_EQ(server_identity("redis://a:pw@Host.Example:6379/2"),
            server_identity("redis://host.example"));
  EXPECT_EQ(server_identity("rediss://h:7000"), server_identity("redis://h:7000"));
  EXPECT_NE(server_identity("redis://h:7000"), server_identity("redis://h:7001"));
  EXPECT_EQ(server_identity("unix:///run/r.sock?db=1"), server_identity("unix:///run/r.sock"));
}

TEST(ServerIdentity, DeploymentsAreTheSameWhateverTheMemberOrder) {
  EXPECT_EQ(server_identity("redis+sentinel://s1:1,s2:2/m"),
            server_identity("redis+sentinel://u:pw@s2:2,s1:1/m/3"));
  EXPECT_NE(server_identity("redis+sentinel://s1:1/m"), server_identity("redis+sentinel://s1:1/n"));
  EXPECT_EQ(server_identity("redis+cluster://a:1,b:2"), server_identity("redis+cluster://b:2,a:1"));
  EXPECT_NE(server_identity("redis+cluster://a:1"), server_identity("redis://a:1"));
}

TEST(RedactedUrl, NeverContainsPasswords) {
  for (const char* url :
       {"redis://u:TOPSECRET@h:1/2",
        "redis+sentinel://u:TOPSECRET@s:1/m?sentinel_password=TOPSECRET",
        "rediss+cluster://u:TOPSECRET@a:1,b:2", "unix:///s.sock?password=TOPSECRET"}) {
    const std::string r = redacted_url(url);
    EXPECT_EQ(r.find("TOPSECRET"), std::string::npos) << r;
    EXPECT_FALSE(r.empty());
  }
  EXPECT_EQ(redacted_url("redis+sentinel://u:pw@s1:1,[::1]:2/m"),
            "redis+sentinel://s1:1,[::1]:2/m");
  EXPECT_EQ(redacted_url("rediss+cluster://a:1,b:2"), "rediss+cluster://a:1,b:2");
}

TEST(MakeNode, PicksTheNodeKindFromTheSchemeAndAppliesAdjust) {
  asio::io_context io;
  int adjusted = 0;
  auto count = [&](redlock::endpoint&) { ++adjusted; };
  auto plain = redlock::make_node(io.get_executor(), "redis://127.0.0.1:1", {}, count);
  EXPECT_EQ(plain->id(), "redis://127.0.0.1:1");
  EXPECT_EQ(adjusted, 1);
  auto sentinel = redlock::make_node(io.get_executor(), "redis+sentinel://a:1,b:2/m", {}, count);
  EXPECT_EQ(sentinel->id(), "redis+sentinel://a:1,b:2/m");
  EXPECT_EQ(adjusted, 4);  // two sentinels and the master template
  auto cluster = redlock::make_node(io.get_executor(), "redis+cluster://a:1,b:2", {}, count);
  EXPECT_EQ(cluster->id(), "redis+cluster://a:1,b:2");
  EXPECT_EQ(adjusted, 6);
}

TEST(MakeNode, BadUrlsThrowInvalidUrl) {
  asio::io_context io;
  for (const char* url : {"http://x", "redis+sentinel://h", "redis+cluster://", "redis://h:0"}) {
    try {
      redlock::make_node(io.get_executor(), url, {});
      ADD_FAILURE() << "no exception for " << url;
    } catch (const redlock::lock_error& e) {
      EXPECT_EQ(e.code(), redlock::errc::invalid_url) << url;
    }
  }
}

TEST(LockManagerFromUrls, RefusesTheSameDeploymentTwice) {
  asio::io_context io;
  const std::vector<std::string> urls{"redis+sentinel://s1:1,s2:2/m",
                                      "redis+sentinel://u:TOPSECRET@s2:2,s1:1/m"};
  try {
    redlock::lock_manager m(io.get_executor(), urls);
    ADD_FAILURE() << "no exception";
  } catch (const redlock::lock_error& e) {
    EXPECT_EQ(e.code(), redlock::errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("listed twice"), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find("TOPSECRET"), std::string::npos);
  }
}

}  // namespace

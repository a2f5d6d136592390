#include <gtest/gtest.h>

#include "redlock/cluster_node.hpp"
#include "redlock/error.hpp"

namespace {

using redlock::cluster_key_slot;

TEST(ClusterKeySlot, MatchesRedisClusterSpecValues) {
  // CRC16/XMODEM check value of "123456789" is 0x31C3; 0x31C3 & 16383 = 12739.
  EXPECT_EQ(cluster_key_slot("123456789"), 12739);
  EXPECT_EQ(cluster_key_slot("foo"), 12182);
  EXPECT_EQ(cluster_key_slot(""), 0);
}

TEST(ClusterKeySlot, HashesOnlyTheFirstNonEmptyHashTag) {
  EXPECT_EQ(cluster_key_slot("{user1000}.following"), cluster_key_slot("user1000"));
  EXPECT_EQ(cluster_key_slot("{user1000}.followers"), cluster_key_slot("{user1000}.following"));
  // An empty tag "{}" does not count: the whole key is hashed.
  EXPECT_EQ(cluster_key_slot("foo{}{bar}"), cluster_key_slot(std::string("foo{}{bar}")));
  EXPECT_NE(cluster_key_slot("foo{}{bar}"), cluster_key_slot("bar"));
  // The tag runs to the first '}' after the first '{'.
  EXPECT_EQ(cluster_key_slot("foo{{bar}}zap"), cluster_key_slot("{bar"));
  EXPECT_EQ(cluster_key_slot("foo{bar}{zap}"), cluster_key_slot("bar"));
  // No closing brace: the whole key.
  EXPECT_EQ(cluster_key_slot("foo{bar"), cluster_key_slot(std::string("foo{bar")));
}

TEST(ClusterKeySlot, IsBinarySafe) {
  const std::string with_nul("a\0b", 3);
  EXPECT_NE(cluster_key_slot(with_nul), cluster_key_slot("a"));
  EXPECT_LT(cluster_key_slot(with_nul), 16384);
}

TEST(ClusterUrl, ParsesSeedsCredentialsAndTls) {
  std::error_code ec;
  std::string why;
  auto cfg = redlock::parse_cluster_url(
      "rediss+cluster://app:pw@10.0.0.1:7000,[::1]:7001?ca=/ca.pem", ec, why);
  ASSERT_FALSE(ec) << why;
  ASSERT_EQ(cfg.seeds.size(), 2u);
  EXPECT_EQ(cfg.seeds[0].host, "10.0.0.1");
  EXPECT_EQ(cfg.seeds[0].port, 7000);
  EXPECT_EQ(cfg.seeds[1].host, "::1");
  for (const auto& s : cfg.seeds) {
    EXPECT_EQ(s.username, "app");
    EXPECT_EQ(s.password, "pw");
    EXPECT_TRUE(s.tls.enabled);
    EXPECT_EQ(s.tls.ca_file, "/ca.pem");
  }
  EXPECT_TRUE(redlock::is_cluster_url("redis+cluster://h:1"));
  EXPECT_FALSE(redlock::is_cluster_url("redis://h:1"));
}

TEST(ClusterUrl, RejectsBadFormsWithoutLeakingPasswords) {
  const char* bad[] = {"redis://h:1", "redis+cluster://", "redis+cluster://u:TOPSECRET@h:1/2",
                       "redis+cluster://u:TOPSECRET@h:1,,h:2", "redis+cluster://u:TOPSECRET@h:0"};
  for (const char* url : bad) {
    std::error_code ec;
    std::string why;
    redlock::parse_cluster_url(url, ec, why);
    EXPECT_EQ(ec, redlock::errc::invalid_url) << url;
    EXPECT_FALSE(why.empty()) << url;
    EXPECT_EQ(why.find("TOPSECRET"), std::string::npos) << why;
  }
}

}  // namespace

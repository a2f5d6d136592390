#include <gtest/gtest.h>

#include "redlock/error.hpp"
#include "redlock/sentinel_node.hpp"

namespace {

using redlock::parse_sentinel_url;

redlock::sentinel_options parse_ok(std::string_view url) {
  std::error_code ec;
  std::string why;
  auto cfg = parse_sentinel_url(url, ec, why);
  EXPECT_FALSE(ec) << url << ": " << why;
  return cfg;
}

std::string parse_error(std::string_view url) {
  std::error_code ec;
  std::string why;
  parse_sentinel_url(url, ec, why);
  EXPECT_EQ(ec, redlock::errc::invalid_url) << url;
  return why;
}

TEST(SentinelUrl, RecognisesBothSchemesOnly) {
  EXPECT_TRUE(redlock::is_sentinel_url("redis+sentinel://h/m"));
  EXPECT_TRUE(redlock::is_sentinel_url("rediss+sentinel://h/m"));
  EXPECT_FALSE(redlock::is_sentinel_url("redis://h:1"));
  EXPECT_FALSE(redlock::is_sentinel_url("sentinel://h/m"));
}

TEST(SentinelUrl, ParsesHostListWithDefaultPortAndMasterName) {
  auto cfg = parse_ok("redis+sentinel://10.0.0.1,10.0.0.2:26380,[::1]/mymaster");
  ASSERT_EQ(cfg.sentinels.size(), 3u);
  EXPECT_EQ(cfg.sentinels[0].host, "10.0.0.1");
  EXPECT_EQ(cfg.sentinels[0].port, 26379);
  EXPECT_EQ(cfg.sentinels[1].port, 26380);
  EXPECT_EQ(cfg.sentinels[2].host, "::1");
  EXPECT_EQ(cfg.sentinels[2].port, 26379);
  EXPECT_EQ(cfg.master_name, "mymaster");
  EXPECT_EQ(cfg.master.db, 0);
  EXPECT_FALSE(cfg.master.tls.enabled);
}

TEST(SentinelUrl, UserinfoAndDbBelongToTheMasterAndQueryCredentialsToTheSentinels) {
  auto cfg = parse_ok(
      "redis+sentinel://app:s3cret@127.0.0.1:26379/locks/3?sentinel_user=sen&sentinel_password=pw");
  EXPECT_EQ(cfg.master.username, "app");
  EXPECT_EQ(cfg.master.password, "s3cret");
  EXPECT_EQ(cfg.master.db, 3);
  ASSERT_EQ(cfg.sentinels.size(), 1u);
  EXPECT_EQ(cfg.sentinels[0].username, "sen");
  EXPECT_EQ(cfg.sentinels[0].password, "pw");
  EXPECT_EQ(cfg.sentinels[0].db, 0);
}

TEST(SentinelUrl, TlsSchemeAndTlsParametersApplyToSentinelsAndMaster) {
  auto cfg = parse_ok("rediss+sentinel://h1:1,h2:2/m?ca=/etc/ca.pem&sni=redis.example");
  EXPECT_TRUE(cfg.master.tls.enabled);
  EXPECT_EQ(cfg.master.tls.ca_file, "/etc/ca.pem");
  EXPECT_EQ(cfg.master.tls.server_name, "redis.example");
  for (const auto& s : cfg.sentinels) {
    EXPECT_TRUE(s.tls.enabled);
    EXPECT_EQ(s.tls.ca_file, "/etc/ca.pem");
  }
}

TEST(SentinelUrl, RejectsMalformedUrlsWithReasons) {
  EXPECT_NE(parse_error("redis://h/m").find("scheme"), std::string::npos);
  EXPECT_NE(parse_error("redis+sentinel:///m").find("host"), std::string::npos);
  EXPECT_NE(parse_error("redis+sentinel://h").find("master name"), std::string::npos);
  EXPECT_NE(parse_error("redis+sentinel://h/").find("master name"), std::string::npos);
  EXPECT_NE(parse_error("redis+sentinel://h,,g/m").find("empty host"), std::string::npos);
  EXPECT_NE(parse_error("redis+sentinel://h:99999/m").find("h:99999"), std::string::npos);
  EXPECT_FALSE(parse_error("redis+sentinel://h/m/notadb").empty());
  EXPECT_NE(parse_error("redis+sentinel://h/m?sentinel_user=x").find("sentinel_password"),
            std::string::npos);
}

TEST(SentinelUrl, PasswordsNeverAppearInErrors) {
  const char* urls[] = {
      "redis+sentinel://u:TOPSECRET@h:99999/m",
      "redis+sentinel://u:TOPSECRET@h/m/bad",
      "redis+sentinel://h:bad/m?sentinel_password=TOPSECRET",
      "redis+sentinel://u:TOPSECRET@/m",
  };
  for (const char* url : urls) {
    const std::string why = parse_error(url);
    EXPECT_FALSE(why.empty()) << url;
    EXPECT_EQ(why.find("TOPSECRET"), std::string::npos) << why;
  }
}

TEST(SentinelUrl, ThrowingFormThrowsLockError) {
  try {
    parse_sentinel_url("redis+sentinel://u:TOPSECRET@h/");
    FAIL() << "no exception";
  } catch (const redlock::lock_error& e) {
    EXPECT_EQ(e.code(), redlock::errc::invalid_url);
    EXPECT_EQ(std::string(e.what()).find("TOPSECRET"), std::string::npos);
  }
}

}  // namespace

// URL parsing and printing of endpoints.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "redlock/endpoint.hpp"
#include "redlock/error.hpp"

namespace {

using redlock::endpoint;
using redlock::parse_endpoint;

endpoint parse_ok(std::string_view url) {
  std::error_code ec;
  std::string why;
  endpoint e = parse_endpoint(url, ec, why);
  EXPECT_FALSE(ec) << url << ": " << why;
  EXPECT_TRUE(why.empty()) << why;
  return e;
}

// Returns the message; fails the test if the URL parses.
std::string parse_error(std::string_view url) {
  std::error_code ec;
  std::string why;
  parse_endpoint(url, ec, why);
  EXPECT_EQ(ec, redlock::errc::invalid_url) << url;
  EXPECT_FALSE(why.empty()) << url;
  return why;
}

TEST(EndpointParse, HostOnlyUsesDefaultPortAndDbZero) {
  const endpoint e = parse_ok("redis://localhost");
  EXPECT_EQ(e.kind, endpoint::transport::tcp);
  EXPECT_EQ(e.host, "localhost");
  EXPECT_EQ(e.port, 6379);
  EXPECT_EQ(e.db, 0);
  EXPECT_TRUE(e.username.empty());
  EXPECT_TRUE(e.password.empty());
  EXPECT_FALSE(e.tls.enabled);
}

TEST(EndpointParse, FullFormWithUserPasswordPortAndDb) {
  const endpoint e = parse_ok("redis://app:s3cret@redis.example.com:6380/3");
  EXPECT_EQ(e.username, "app");
  EXPECT_EQ(e.password, "s3cret");
  EXPECT_EQ(e.host, "redis.example.com");
  EXPECT_EQ(e.port, 6380);
  EXPECT_EQ(e.db, 3);
}

TEST(EndpointParse, PasswordWithoutUserLeavesUserEmpty) {
  const endpoint e = parse_ok("redis://:pw@127.0.0.1");
  EXPECT_TRUE(e.username.empty());
  EXPECT_EQ(e.password, "pw");
}

TEST(EndpointParse, UserWithoutPasswordLeavesPasswordEmpty) {
  const endpoint e = parse_ok("redis://alice@127.0.0.1");
  EXPECT_EQ(e.username, "alice");
  EXPECT_TRUE(e.password.empty());
}

TEST(EndpointParse, UserinfoIsPercentDecoded) {
  const endpoint e = parse_ok("redis://us%40er:p%3Aa%2Fs%25s%40@h");
  EXPECT_EQ(e.username, "us@er");
  EXPECT_EQ(e.password, "p:a/s%s@");
}

TEST(EndpointParse, UnencodedAtInPasswordSplitsAtTheLastAt) {
  const endpoint e = parse_ok("redis://u:p@ss@h:1");
  EXPECT_EQ(e.password, "p@ss");
  EXPECT_EQ(e.host, "h");
}

TEST(EndpointParse, RedissEnablesTls) {
  const endpoint e = parse_ok("rediss://h:6390");
  EXPECT_TRUE(e.tls.enabled);
  EXPECT_FALSE(e.tls.insecure_skip_verify);
}

TEST(EndpointParse, SchemeIsCaseInsensitive) {
  EXPECT_TRUE(parse_ok("REDISS://h").tls.enabled);
  EXPECT_EQ(parse_ok("Unix:///s").kind, endpoint::transport::unix_socket);
}

TEST(EndpointParse, TlsQueryParametersFillTlsOptions) {
  const endpoint e = parse_ok(
      "rediss://h/1?ca=/etc/ca.pem&ca_dir=/etc/certs&cert=/c%20d.pem&key=/k.pem&sni=redis.local"
      "&insecure=true");
  EXPECT_EQ(e.db, 1);
  EXPECT_EQ(e.tls.ca_file, "/etc/ca.pem");
  EXPECT_EQ(e.tls.ca_dir, "/etc/certs");
  EXPECT_EQ(e.tls.cert_file, "/c d.pem");
  EXPECT_EQ(e.tls.key_file, "/k.pem");
  EXPECT_EQ(e.tls.server_name, "redis.local");
  EXPECT_TRUE(e.tls.insecure_skip_verify);
}

TEST(EndpointParse, Ipv6LiteralWithPortAndDb) {
  const endpoint e = parse_ok("redis://[::1]:6380/2");
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, 6380);
  EXPECT_EQ(e.db, 2);
}

TEST(EndpointParse, Ipv6LiteralWithoutPort) {
  const endpoint e = parse_ok("redis://[fe80::1:2]");
  EXPECT_EQ(e.host, "fe80::1:2");
  EXPECT_EQ(e.port, 6379);
}

TEST(EndpointParse, TrailingSlashMeansDbZero) {
  EXPECT_EQ(parse_ok("redis://h:1/").db, 0);
}

TEST(EndpointParse, UnixSocketWithQuery) {
  const endpoint e = parse_ok("unix:///var/run/redis.sock?db=4&password=pw%26x&user=bob");
  EXPECT_EQ(e.kind, endpoint::transport::unix_socket);
  EXPECT_EQ(e.path, "/var/run/redis.sock");
  EXPECT_EQ(e.db, 4);
  EXPECT_EQ(e.password, "pw&x");
  EXPECT_EQ(e.username, "bob");
}

TEST(EndpointParse, UnixSocketPathIsPercentDecoded) {
  EXPECT_EQ(parse_ok("unix:///tmp/my%20redis.sock").path, "/tmp/my redis.sock");
}

TEST(EndpointParse, HighestPortAndDbAccepted) {
  const endpoint e = parse_ok("redis://h:65535/2147483647");
  EXPECT_EQ(e.port, 65535);
  EXPECT_EQ(e.db, 2147483647);
}

TEST(EndpointParseError, UnknownSchemeIsNamed) {
  const std::string why = parse_error("http://h:1");
  EXPECT_NE(why.find("unknown scheme"), std::string::npos) << why;
  EXPECT_NE(why.find("\"http\""), std::string::npos) << why;
}

TEST(EndpointParseError, MissingSchemeIsNamed) {
  EXPECT_NE(parse_error("localhost:6379").find("missing scheme"), std::string::npos);
}

TEST(EndpointParseError, EmptyHost) {
  EXPECT_NE(parse_error("redis://").find("empty host"), std::string::npos);
  EXPECT_NE(parse_error("redis://:6379").find("empty host"), std::string::npos);
  EXPECT_NE(parse_error("redis://u:pw@/1").find("empty host"), std::string::npos);
}

TEST(EndpointParseError, NonNumericPortIsBadPort) {
  const std::string why = parse_error("redis://h:63x9");
  EXPECT_NE(why.find("bad port \"63x9\""), std::string::npos) << why;
}

TEST(EndpointParseError, EmptyPort) {
  EXPECT_NE(parse_error("redis://h:").find("empty port"), std::string::npos);
}

TEST(EndpointParseError, PortOutOfRange) {
  EXPECT_NE(parse_error("redis://h:65536").find("out of range"), std::string::npos);
  EXPECT_NE(parse_error("redis://h:0").find("out of range"), std::string::npos);
  EXPECT_NE(parse_error("redis://h:99999999999999999999999").find("out of range"),
            std::string::npos);
}

TEST(EndpointParseError, BadDb) {
  EXPECT_NE(parse_error("redis://h/abc").find("bad db \"abc\""), std::string::npos);
  EXPECT_NE(parse_error("redis://h/-1").find("bad db"), std::string::npos);
  EXPECT_NE(parse_error("redis://h/2147483648").find("out of range"), std::string::npos);
  EXPECT_NE(parse_error("unix:///s?db=x").find("bad db"), std::string::npos);
}

TEST(EndpointParseError, TrailingGarbageAfterDb) {
  EXPECT_NE(parse_error("redis://h/1/2").find("trailing garbage"), std::string::npos);
}

TEST(EndpointParseError, UnterminatedIpv6Bracket) {
  EXPECT_NE(parse_error("redis://[::1:6379").find("unterminated IPv6"), std::string::npos);
}

TEST(EndpointParseError, GarbageAfterIpv6Literal) {
  EXPECT_NE(parse_error("redis://[::1]x").find("after the IPv6 literal"), std::string::npos);
}

TEST(EndpointParseError, UnbracketedIpv6) {
  EXPECT_NE(parse_error("redis://::1:6379").find("brackets"), std::string::npos);
}

TEST(EndpointParseError, BadIpv6Literal) {
  EXPECT_NE(parse_error("redis://[zz]").find("bad IPv6 literal"), std::string::npos);
  EXPECT_NE(parse_error("redis://[]").find("empty IPv6"), std::string::npos);
}

TEST(EndpointParseError, BadHostCharacter) {
  EXPECT_NE(parse_error("redis://ho st").find("bad character"), std::string::npos);
}

TEST(EndpointParseError, UnknownQueryParameter) {
  EXPECT_NE(parse_error("redis://h?colour=blue").find("unknown query parameter \"colour\""),
            std::string::npos);
}

TEST(EndpointParseError, TlsParameterOnPlainRedis) {
  EXPECT_NE(parse_error("redis://h?ca=/x").find("needs the rediss:// scheme"), std::string::npos);
}

TEST(EndpointParseError, BadInsecureValue) {
  EXPECT_NE(parse_error("rediss://h?insecure=maybe").find("expected true or false"),
            std::string::npos);
}

TEST(EndpointParseError, DuplicateQueryParameter) {
  EXPECT_NE(parse_error("unix:///s?db=1&db=2").find("duplicate"), std::string::npos);
}

TEST(EndpointParseError, UnixNeedsAbsolutePath) {
  EXPECT_NE(parse_error("unix://relative.sock").find("absolute path"), std::string::npos);
  EXPECT_NE(parse_error("unix:///").find("empty socket path"), std::string::npos);
}

TEST(EndpointParseError, BadPercentEncoding) {
  EXPECT_NE(parse_error("redis://u:%zz@h").find("percent-encoding in the password"),
            std::string::npos);
  EXPECT_NE(parse_error("redis://u:ab%2@h").find("percent-encoding"), std::string::npos);
  EXPECT_NE(parse_error("redis://u%@h").find("percent-encoding in the user name"),
            std::string::npos);
}

TEST(EndpointParseError, FragmentRejected) {
  EXPECT_NE(parse_error("redis://h#x").find("fragment"), std::string::npos);
}

TEST(EndpointParseError, ErrorQuotesTheUrlWithPasswordRedacted) {
  const std::string why = parse_error("redis://app:hunter2@h:bad");
  EXPECT_NE(why.find("redis://app:***@h:bad"), std::string::npos) << why;
  EXPECT_EQ(why.find("hunter2"), std::string::npos) << why;
}

// Each URL holds the password "hunter2" somewhere and is invalid for another reason.
TEST(EndpointParseError, PasswordNeverAppearsInAnyMessage) {
  const char* urls[] = {
      "redis://u:hunter2@h:bad",
      "redis://u:hunter2@h:70000",
      "redis://u:hunter2@h/db",
      "redis://u:hunter2@[::1",
      "redis://:hunter2@",
      "rediss://u:hunter2@h?ca",
      "http://u:hunter2@h",
      "redis://u:hunter2/x@h",     // unencoded '/' in the password
      "redis://u:hun?ter2@h",      // unencoded '?' in the password
      "redis://u:hunter2%zz@h",    // bad escape in the password
      "redis://u:hunter2@h#frag",  // fragment
      "unix://u:hunter2@/tmp/s",   // userinfo where unix:// allows none
      "unix:///s?password=hunter2&db=x",
      "unix:///s?db=x&password=hunter2",
      "unix:///s?password=hunter2&password=hunter2",
      "unix:///s?password=hun&ter2",  // unencoded '&' in the password
      "unix:///s?password=hunter2%",
      "unix:///s?password=hunter2@x:y@z&db=q",  // '@' and ':' after a query password
      "redis://u:a@h?password=hunter2&db=x",
      "redis://u:hunter2@h:1/2/3",
      "u:hunter2@h",
  };
  for (const char* url : urls) {
    const std::string why = parse_error(url);
    EXPECT_EQ(why.find("hunter2"), std::string::npos) << url << " -> " << why;
    EXPECT_EQ(why.find("ter2"), std::string::npos) << url << " -> " << why;
  }
}

TEST(EndpointParseError, ThrowingOverloadThrowsLockErrorWithTheMessage) {
  try {
    parse_endpoint("redis://u:hunter2@h:nope");
    FAIL() << "no exception";
  } catch (const redlock::lock_error& e) {
    EXPECT_EQ(e.code(), redlock::errc::invalid_url);
    const std::string what = e.what();
    EXPECT_NE(what.find("bad port"), std::string::npos) << what;
    EXPECT_EQ(what.find("hunter2"), std::string::npos) << what;
  }
}

TEST(EndpointParse, ThrowingOverloadReturnsTheEndpoint) {
  EXPECT_EQ(parse_endpoint("redis://h:7000").port, 7000);
}

TEST(EndpointToString, RedactsPasswordAndBracketsIpv6) {
  const endpoint e = parse_ok("rediss://app:topsecret@[::1]:6380/2");
  EXPECT_EQ(e.to_string(), "rediss://app:***@[::1]:6380/2");
}

TEST(EndpointToString, PlainHostShowsPort) {
  EXPECT_EQ(parse_ok("redis://h").to_string(), "redis://h:6379");
}

TEST(EndpointToString, PasswordOnlyIsRedacted) {
  EXPECT_EQ(parse_ok("redis://:topsecret@h:1").to_string(), "redis://:***@h:1");
}

TEST(EndpointToString, UnixSocketRedactsQueryPassword) {
  const endpoint e = parse_ok("unix:///tmp/r.sock?db=2&user=u&password=topsecret");
  EXPECT_EQ(e.to_string(), "unix:///tmp/r.sock?db=2&user=u&password=***");
}

TEST(EndpointToString, FilledInStructNeverShowsPassword) {
  endpoint e;
  e.host = "10.0.0.1";
  e.username = "a b";
  e.password = "p@ss:word/";
  e.tls.enabled = true;
  e.tls.ca_file = "/etc/ca.pem";
  e.tls.insecure_skip_verify = true;
  const std::string s = e.to_string();
  EXPECT_EQ(s, "rediss://a%20b:***@10.0.0.1:6379?ca=/etc/ca.pem&insecure=true");
  EXPECT_EQ(s.find("p@ss"), std::string::npos);
}

TEST(EndpointToString, ParsesBackToTheSameEndpointApartFromThePassword) {
  const endpoint e = parse_ok(
      "rediss://us%20er:pw@[2001:db8::7]:7001/9?ca=/a%20b.pem&cert=/c.pem&key=/k.pem&sni=x");
  endpoint back = parse_ok(e.to_string());
  EXPECT_EQ(back.password, "***");
  back.password = e.password;
  EXPECT_EQ(back.to_string(), e.to_string());
  EXPECT_EQ(back.username, "us er");
  EXPECT_EQ(back.host, "2001:db8::7");
  EXPECT_EQ(back.port, 7001);
  EXPECT_EQ(back.db, 9);
  EXPECT_EQ(back.tls.ca_file, "/a b.pem");
  EXPECT_EQ(back.tls.server_name, "x");
}

}  // namespace

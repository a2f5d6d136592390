// The CLI's argument parsers without a process: durations and server lists.
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "duration.hpp"
#include "server_list.hpp"

namespace redlock::cli {
namespace {

using std::chrono::milliseconds;

milliseconds parsed(const std::string& text) {
  std::string why;
  const auto d = parse_duration(text, why);
  EXPECT_TRUE(d.has_value()) << text << ": " << why;
  return d.value_or(milliseconds(-1));
}

std::string refusal(const std::string& text) {
  std::string why;
  const auto d = parse_duration(text, why);
  EXPECT_FALSE(d.has_value()) << text << " parsed as " << d->count() << "ms";
  return why;
}

TEST(duration_parser, SingleUnitsAndDecimalsStayAsBefore) {
  EXPECT_EQ(parsed("0"), milliseconds(0));
  EXPECT_EQ(parsed("1500ms"), milliseconds(1500));
  EXPECT_EQ(parsed("10s"), milliseconds(10'000));
  EXPECT_EQ(parsed("1.5s"), milliseconds(1500));
  EXPECT_EQ(parsed("2m"), milliseconds(120'000));
  EXPECT_EQ(parsed("2min"), milliseconds(120'000));
  EXPECT_EQ(parsed("1h"), milliseconds(3'600'000));
  EXPECT_EQ(parsed("0.25h"), milliseconds(900'000));
}

TEST(duration_parser, CompoundsAddTheirParts) {
  EXPECT_EQ(parsed("1m30s"), milliseconds(90'000));
  EXPECT_EQ(parsed("2h15m"), milliseconds(8'100'000));
  EXPECT_EQ(parsed("1s500ms"), milliseconds(1500));
  EXPECT_EQ(parsed("1h0m1s"), milliseconds(3'601'000));
  EXPECT_EQ(parsed("1h2m3s4ms"), milliseconds(3'723'004));
  EXPECT_EQ(parsed("1m1.5s"), milliseconds(61'500));
  EXPECT_EQ(parsed("2400h"), milliseconds(2400LL * 3'600'000));  // exactly 100 days
}

TEST(duration_parser, UnitsOutOfOrderOrRepeatedAreRefused) {
  for (const char* text : {"30s1m", "1m1m", "1s1s", "500ms1s", "1m2min", "1h1h"})
    EXPECT_NE(refusal(text).find("larger first"), std::string::npos) << text;
  EXPECT_NE(refusal("1.5m30s").find("only the last part may have decimals"), std::string::npos);
}

TEST(duration_parser, GarbageAndOverflowGetAMessageSayingWhat) {
  EXPECT_NE(refusal("10").find("has no unit"), std::string::npos);
  EXPECT_NE(refusal("1m30").find("ends without a unit after '30'"), std::string::npos);
  EXPECT_NE(refusal("5parsecs").find("unknown unit 'parsecs'"), std::string::npos);
  EXPECT_NE(refusal("1h1x").find("unknown unit 'x'"), std::string::npos);
  EXPECT_NE(refusal("ten").find("invalid duration"), std::string::npos);
  EXPECT_NE(refusal("1m s").find("invalid duration"), std::string::npos);
  EXPECT_NE(refusal("-1s").find("invalid duration"), std::string::npos);
  EXPECT_NE(refusal("").find("empty duration"), std::string::npos);
  EXPECT_NE(refusal("1.0005s").find("whole number of milliseconds"), std::string::npos);
  for (const char* text :
       {"2400h1ms", "2401h", "99999999999999999999ms", "2399h60m1ms", "9223372036854775807h"})
    EXPECT_NE(refusal(text).find("too large (at most 100 days)"), std::string::npos) << text;
}

using list = std::vector<std::string>;

TEST(server_list, SplitsAtCommasBeforeAScheme) {
  EXPECT_EQ(split_server_list("redis://a:1"), list({"redis://a:1"}));
  EXPECT_EQ(split_server_list("redis://a:1,rediss://b:2, unix:///tmp/r.sock ,"),
            list({"redis://a:1", "rediss://b:2", "unix:///tmp/r.sock"}));
  EXPECT_EQ(split_server_list(" , ,"), list());
  EXPECT_EQ(split_server_list(""), list());
}

TEST(server_list, SentinelAndClusterMemberListsStayWhole) {
  EXPECT_EQ(split_server_list("redis+sentinel://s1:26379,s2:26379,[::1]:26380/mymaster,"
                              "redis://c:6379,rediss+cluster://n1:7000,n2:7001?insecure=true"),
            list({"redis+sentinel://s1:26379,s2:26379,[::1]:26380/mymaster", "redis://c:6379",
                  "rediss+cluster://n1:7000,n2:7001?insecure=true"}));
  // A member without a port is still a member, not a URL.
  EXPECT_EQ(split_server_list("redis+cluster://n1,n2,redis://x"),
            list({"redis+cluster://n1,n2", "redis://x"}));
  // Passwords cannot hold "://" unencoded ('/' must be percent-encoded), so a comma in one
  // does not split either.
  EXPECT_EQ(split_server_list("redis://:p,w@a:1,redis://b:2"),
            list({"redis://:p,w@a:1", "redis://b:2"}));
}

}  // namespace
}  // namespace redlock::cli

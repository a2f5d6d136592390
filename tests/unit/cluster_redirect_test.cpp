// detail::parse_redirect: the MOVED and ASK error replies of a Redis Cluster.
#include <gtest/gtest.h>

#include "redlock/cluster_node.hpp"

namespace {

using redlock::detail::parse_redirect;

TEST(ParseRedirect, MovedWithAHostAndPort) {
  auto r = parse_redirect("MOVED 3999 127.0.0.1:6381", "10.0.0.1");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ask);
  EXPECT_EQ(r->slot, 3999);
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_EQ(r->port, 6381);
}

TEST(ParseRedirect, AskWithAHostName) {
  auto r = parse_redirect("ASK 0 redis-2.example:7000", "10.0.0.1");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ask);
  EXPECT_EQ(r->slot, 0);
  EXPECT_EQ(r->host, "redis-2.example");
  EXPECT_EQ(r->port, 7000);
}

TEST(ParseRedirect, AnEmptyHostMeansTheNodeThatSentTheRedirect) {
  // Redis 7 with cluster-preferred-endpoint-type unknown-endpoint.
  auto r = parse_redirect("MOVED 16383 :6380", "192.168.1.5");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->slot, 16383);
  EXPECT_EQ(r->host, "192.168.1.5");
  EXPECT_EQ(r->port, 6380);
  auto a = parse_redirect("ASK 12 :7001", "::1");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->ask);
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 7001);
}

TEST(ParseRedirect, AnIPv6HostIsSplitAtTheLastColon) {
  auto r = parse_redirect("MOVED 7 fe80::1:6379", "x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->host, "fe80::1");
  EXPECT_EQ(r->port, 6379);
}

TEST(ParseRedirect, AnythingElseIsNotARedirect) {
  for (const char* bad :
       {"", "MOVED", "MOVED ", "MOVED 1", "MOVED 1 ", "MOVED x 127.0.0.1:1", "MOVED 16384 h:1",
        "MOVED -1 h:1", "MOVED 1 h", "MOVED 1 h:", "MOVED 1 h:0", "MOVED 1 h:65536",
        "MOVED 1 h:12x", "ASK 1 :", "moved 1 h:1", "ERR MOVED 1 h:1",
        "CLUSTERDOWN The cluster is down",
        "TRYAGAIN Multiple keys request during rehashing of slot"}) {
    EXPECT_FALSE(parse_redirect(bad, "127.0.0.1")) << '"' << bad << '"';
  }
  // An empty host needs a sender host to stand for.
  EXPECT_FALSE(parse_redirect("MOVED 1 :6379", ""));
}

}  // namespace

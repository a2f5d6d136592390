// The pure parsers of the Sentinel and Cluster nodes (internal/topology.hpp): well-formed
// replies, and malformed ones, which give an error and never a crash.
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "internal/topology.hpp"
#include "support/replies.hpp"

namespace {

using redlock::reply;
using redlock::detail::host_port;
using redlock::detail::join_address;
using redlock::detail::parse_cluster_nodes;
using redlock::detail::parse_cluster_slots;
using redlock::detail::parse_master_address;
using redlock::detail::slot_range;
using redlock::detail::split_address;

using redlock::test::array;
using redlock::test::err;
using redlock::test::integer;
using redlock::test::nil;
using redlock::test::status;
using redlock::test::str;

// ---- addresses ------------------------------------------------------------------------

TEST(SplitAddress, SplitsAtTheLastColon) {
  EXPECT_EQ(split_address("127.0.0.1:6379"), (host_port{"127.0.0.1", 6379}));
  EXPECT_EQ(split_address("redis-1.example:7000"), (host_port{"redis-1.example", 7000}));
  EXPECT_EQ(split_address("fe80::1:6379"), (host_port{"fe80::1", 6379}));
  EXPECT_EQ(split_address("::1:1"), (host_port{"::1", 1}));
}

TEST(SplitAddress, RejectsAnEmptyHostAndBadPorts) {
  for (const char* bad : {"", ":", ":6379", "host", "host:", "host:0", "host:65536", "host:-1",
                          "host:12x", "host: 1", "host:99999999999999999999"})
    EXPECT_FALSE(split_address(bad)) << '"' << bad << '"';
}

TEST(SplitAddress, JoinIsItsInverse) {
  EXPECT_EQ(join_address("::1", 7001), "::1:7001");
  EXPECT_EQ(split_address(join_address("::1", 7001)), (host_port{"::1", 7001}));
}

// ---- SENTINEL get-master-addr-by-name -------------------------------------------------

TEST(ParseMasterAddress, HostAndPort) {
  std::string why;
  EXPECT_EQ(parse_master_address(array({str("10.0.0.5"), str("6380")}), why),
            (host_port{"10.0.0.5", 6380}));
  EXPECT_EQ(parse_master_address(array({str("::1"), str("6379")}), why), (host_port{"::1", 6379}));
  EXPECT_TRUE(why.empty());
}

TEST(ParseMasterAddress, NilIsAnUnknownMaster) {
  std::string why;
  EXPECT_FALSE(parse_master_address(nil(), why));
  EXPECT_EQ(why, "unknown master");
}

TEST(ParseMasterAddress, AnythingElseIsAnUnexpectedReply) {
  const std::vector<reply> bad{
      array({}),
      array({str("h")}),
      array({str("h"), str("1"), str("extra")}),
      array({str(""), str("6379")}),      // empty host
      array({str("h"), str("0")}),        // port 0
      array({str("h"), str("65536")}),    // beyond 16 bits
      array({str("h"), str("6379x")}),    // trailing garbage
      array({str("h"), str("")}),         // empty port
      array({str("h"), integer(6379)}),   // port of the wrong type
      array({integer(1), str("6379")}),   // host of the wrong type
      array({status("h"), str("6379")}),  // status, not a bulk string
      array({array({}), str("6379")}),    // nested
      str("10.0.0.5:6379"),               // not an array
      integer(1),
      err("ERR unknown command 'SENTINEL'"),  // a plain Redis answered
  };
  for (const reply& r : bad) {
    std::string why;
    EXPECT_FALSE(parse_master_address(r, why));
    EXPECT_EQ(why, "unexpected reply");
  }
}

// ---- CLUSTER SLOTS --------------------------------------------------------------------

reply range(std::int64_t lo, std::int64_t hi, reply host, reply port) {
  return array({integer(lo), integer(hi), array({std::move(host), std::move(port), str("id")}),
                array({str("replica"), integer(7000), str("rid")})});
}

TEST(ParseClusterSlots, RangesWithTheirMasters) {
  const auto slots =
      parse_cluster_slots(array({range(0, 5460, str("127.0.0.1"), integer(7000)),
                                 range(5461, 10922, str("redis-2.example"), integer(7001)),
                                 range(10923, 16383, str("::1"), integer(7002))}),
                          "10.0.0.1");
  ASSERT_TRUE(slots);
  const std::vector<slot_range> expected{{0, 5460, {"127.0.0.1", 7000}},
                                         {5461, 10922, {"redis-2.example", 7001}},
                                         {10923, 16383, {"::1", 7002}}};
  EXPECT_EQ(*slots, expected);
}

TEST(ParseClusterSlots, AnEmptyMapIsWellFormed) {
  const auto slots = parse_cluster_slots(array({}), "h");
  ASSERT_TRUE(slots);
  EXPECT_TRUE(slots->empty());
}

TEST(ParseClusterSlots, AnUnknownEndpointMeansTheNodeThatAnswered) {
  for (reply host : {nil(), str(""), str("?")}) {
    const auto slots =
        parse_cluster_slots(array({range(0, 16383, std::move(host), integer(7005))}), "::1");
    ASSERT_TRUE(slots);
    ASSERT_EQ(slots->size(), 1u);
    EXPECT_EQ((*slots)[0].master, (host_port{"::1", 7005}));
  }
  // ... which needs a host to stand for.
  EXPECT_FALSE(parse_cluster_slots(array({range(0, 1, nil(), integer(7005))}), ""));
}

TEST(ParseClusterSlots, MalformedRepliesAreRejected) {
  const std::vector<reply> bad{
      nil(),
      str("0 16383 127.0.0.1 7000"),
      err("ERR This instance has cluster support disabled"),
      array({integer(0)}),                              // a range that is not an array
      array({array({integer(0), integer(1)})}),         // no master
      array({range(-1, 5, str("h"), integer(1))}),      // slot below 0
      array({range(0, 16384, str("h"), integer(1))}),   // slot beyond 16383
      array({range(10, 5, str("h"), integer(1))}),      // reversed
      array({range(0, 5, str("h"), integer(0))}),       // port 0
      array({range(0, 5, str("h"), integer(65536))}),   // port beyond 16 bits
      array({range(0, 5, str("h"), str("7000"))}),      // port of the wrong type
      array({range(0, 5, integer(1), integer(7000))}),  // host of the wrong type
      array({range(0, 5, array({}), integer(7000))}),   // nested host
      array({array({str("0"), integer(5), array({str("h"), integer(1)})})}),  // slot type
      array({array({integer(0), integer(5), str("h:1")})}),                   // master not an array
      array({array({integer(0), integer(5), array({str("h")})})}),  // master without a port
      array({range(0, 5, str("h"), integer(1)), integer(3)}),       // good, then garbage
  };
  for (const reply& r : bad)
    EXPECT_FALSE(parse_cluster_slots(r, "127.0.0.1"));
}

// ---- CLUSTER NODES --------------------------------------------------------------------

TEST(ParseClusterNodes, IdsOfEveryMemberAndAddressesOfMastersWithSlots) {
  const std::string text =
      "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave "
      "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected\n"
      "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002,redis-2 master - 0 "
      "1426238316232 2 connected 5461-10922\r\n"
      "\n"
      "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f ::1:30003@31003 myself,master - 0 "
      "1426238318243 3 connected 10923-16383\n"
      "6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 master - 0 "
      "1426238316232 5 connected\n"
      "aaaa 127.0.0.1:30009@31009 handshake - 0 0 0 connected\n";
  const auto m = parse_cluster_nodes(text, "10.0.0.1");
  ASSERT_TRUE(m);
  const std::vector<std::string> ids{
      "07c37dfeb235213a872192d90877d0cd55635b91", "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1",
      "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f", "6ec23923021cf3ffec47632106199cb7f496ce01"};
  EXPECT_EQ(m->ids, ids);  // not the node still in the handshake
  // Not the replica, not the master without slots.
  const std::vector<std::string> masters{"127.0.0.1:30002", "::1:30003"};
  EXPECT_EQ(m->masters, masters);
}

TEST(ParseClusterNodes, AMasterWithoutAnAddressIsTheNodeThatAnswered) {
  const auto m = parse_cluster_nodes("abc :7000@17000 myself,master - 0 0 1 connected 0-16383\n",
                                     "192.168.1.5");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->masters, std::vector<std::string>{"192.168.1.5:7000"});
  // With no host to stand for, the master is left out (its id still counts).
  const auto n = parse_cluster_nodes("abc :7000@17000 master - 0 0 1 connected 0-16383\n", "");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->ids, std::vector<std::string>{"abc"});
  EXPECT_TRUE(n->masters.empty());
}

TEST(ParseClusterNodes, MalformedTextIsRejected) {
  for (const char* bad : {
           "",                                                // no member
           "\n\r\n",                                          // still none
           "abc 127.0.0.1:1@2 master - 0 0 1\n",              // 7 fields
           " 127.0.0.1:1@2 master - 0 0 1 connected 0-1\n",   // empty id
           "aaaa 127.0.0.1:1@2 handshake - 0 0 0 connected",  // only a node in the handshake
           "ERR This instance has cluster support disabled",
       })
    EXPECT_FALSE(parse_cluster_nodes(bad, "h")) << '"' << bad << '"';
}

TEST(ParseClusterNodes, AMasterWithABadAddressIsLeftOut) {
  const auto m = parse_cluster_nodes(
      "abc host-without-port master - 0 0 1 connected 0-16383\n"
      "def 10.0.0.2:0@1 master - 0 0 1 connected 1-2\n",
      "h");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->ids.size(), 2u);
  EXPECT_TRUE(m->masters.empty());
}

}  // namespace

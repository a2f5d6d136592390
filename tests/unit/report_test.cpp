// Reports: node ids are shared with the node, not copied; to_string() shows every node.
#include <gtest/gtest.h>

#include <sstream>

#include "redlock/report.hpp"

namespace {

using redlock::node_id;

TEST(NodeId, SharesTheStringItWasGivenAndReadsLikeAString) {
  auto owner = std::make_shared<const std::string>("redis://127.0.0.1:7001/0");
  node_id id(owner);
  EXPECT_EQ(&id.str(), owner.get()) << "no copy";
  const std::string& as_string = id;
  EXPECT_EQ(&as_string, owner.get());
  EXPECT_EQ(id, "redis://127.0.0.1:7001/0");
  EXPECT_EQ(id, node_id(std::string("redis://127.0.0.1:7001/0")));
  EXPECT_FALSE(id == "redis://127.0.0.1:7002/0");
  std::ostringstream os;
  os << id;
  EXPECT_EQ(os.str(), "redis://127.0.0.1:7001/0");
  EXPECT_EQ(owner.use_count(), 2) << "the id keeps its string alive";
}

TEST(NodeId, AnAliasedIdKeepsItsOwnerAlive) {
  struct holder {
    std::string id = "fake://owner";
  };
  auto h = std::make_shared<holder>();
  std::weak_ptr<holder> alive = h;
  node_id id(std::shared_ptr<const std::string>(h, &h->id));
  h.reset();
  EXPECT_FALSE(alive.expired()) << "the report entry keeps the node (and its id) alive";
  EXPECT_EQ(id, "fake://owner");
}

TEST(NodeId, DefaultIsEmptyAndSafeToRead) {
  node_id id;
  EXPECT_TRUE(id.empty_id());
  EXPECT_EQ(id.str(), "");
  EXPECT_EQ(id, "");
}

TEST(Report, ToStringHasOneLinePerNodeWithVoteErrorAndMessage) {
  redlock::report r;
  redlock::node_result a;
  a.node = node_id(std::string("redis://a:1/0"));
  a.outcome = redlock::vote::granted;
  a.latency = std::chrono::microseconds(1500);
  redlock::node_result b;
  b.node = node_id(std::string("redis://b:2/0"));
  b.outcome = redlock::vote::error;
  b.ec = std::make_error_code(std::errc::connection_refused);
  b.message = "ERR boom";
  r.nodes = {a, b};
  const auto text = r.to_string();
  EXPECT_NE(text.find("redis://a:1/0: granted (1.50 ms)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("redis://b:2/0: error ("), std::string::npos) << text;
  EXPECT_NE(text.find("ERR boom"), std::string::npos) << text;
  EXPECT_EQ(r.count(redlock::vote::granted), 1u);
  EXPECT_EQ(r.count(redlock::vote::error), 1u);
}

}  // namespace

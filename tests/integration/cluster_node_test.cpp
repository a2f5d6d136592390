// A cluster_node against a real three-master Redis Cluster on loopback.
#include <sys/wait.h>

#include <future>
#include <memory>
#include <thread>

#include <gtest/gtest.h>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include "redlock/cluster_node.hpp"
#include "redlock/error.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::test::redis_server;
using redlock::test::redis_server_options;
using redlock::test::wait_for;

struct result {
  std::error_code ec;
  redlock::reply r;
};

// Three cluster-enabled servers joined with `redis-cli --cluster create`, shared by the tests
// of this file (forming a cluster takes a few seconds).
class ClusterNode : public ::testing::Test {
 protected:
  // Forms the cluster on first use. Called from SetUp, so that a failure fails each test
  // (a failure in SetUpTestSuite would only mark the tests skipped).
  static std::string ensure_cluster() {
    if (!servers_.empty())
      return servers_.size() == 3 ? std::string() : "an earlier attempt to form the cluster failed";
    try {
      for (int i = 0; i < 3; ++i) {
        redis_server_options o;
        // The cluster bus listens on port + 10000 unless told otherwise; a random free port
        // may be too high for that, so the bus gets its own free port.
        o.extra_config = {"cluster-enabled yes", "cluster-config-file nodes.conf",
                          "cluster-node-timeout 3000",
                          "cluster-port " + std::to_string(redlock::test::free_port())};
        servers_.push_back(std::make_unique<redis_server>(o));
      }
    } catch (const std::exception& e) {
      return std::string("starting a cluster server failed: ") + e.what();
    }
    std::string cmd = "timeout 60 redis-cli --cluster create";
    for (auto& s : servers_)
      cmd += " 127.0.0.1:" + std::to_string(s->port());
    cmd += " --cluster-yes > " + servers_[0]->dir() + "/create.log 2>&1";
    const int rc = std::system(cmd.c_str());
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
      servers_.pop_back();  // marks the attempt as failed
      return "redis-cli --cluster create failed: " + cmd;
    }
    for (auto& s : servers_) {
      const bool ok = wait_for(
          [&] {
            return s->command({"CLUSTER", "INFO"}).str.find("cluster_state:ok") !=
                   std::string::npos;
          },
          30s);
      if (!ok) {
        servers_.pop_back();
        return "the cluster did not reach cluster_state:ok within 30 s";
      }
    }
    return {};
  }
  static void TearDownTestSuite() { servers_.clear(); }

  void SetUp() override {
    const std::string problem = ensure_cluster();
    ASSERT_TRUE(problem.empty()) << problem;
    thread_ = std::thread([this] { io_.run(); });
    node_ = std::make_unique<redlock::cluster_node>(
        io_.get_executor(), redlock::parse_cluster_url("redis+cluster://127.0.0.1:" +
                                                       std::to_string(servers_[1]->port())));
  }
  void TearDown() override {
    node_.reset();
    work_.reset();
    io_.stop();
    thread_.join();
  }

  result eval_set(std::vector<std::string> keys, const std::string& value) {
    static const redlock::script set_all(
        "for i, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1]) end return #KEYS");
    auto p = std::make_shared<std::promise<result>>();
    auto f = p->get_future();
    std::vector<std::string> args{value};
    node_->async_eval(set_all, keys, args, [p](std::error_code ec, redlock::reply r) {
      p->set_value({ec, std::move(r)});
    });
    if (f.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "request did not complete within 10 s";
      return {redlock::errc::timeout, {}};
    }
    return f.get();
  }

  // Index of the server that stores `key` (the others answer MOVED); -1 if none or several.
  static int holder_of(const std::string& key, const std::string& value) {
    int found = -1;
    for (int i = 0; i < 3; ++i) {
      auto r = servers_[static_cast<std::size_t>(i)]->command({"GET", key});
      if (!r.is_error() && r.str == value) {
        if (found != -1)
          return -1;
        found = i;
      }
    }
    return found;
  }

  static inline std::vector<std::unique_ptr<redis_server>> servers_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::thread thread_;
  std::unique_ptr<redlock::cluster_node> node_;
};

TEST_F(ClusterNode, SlotsAgreeWithTheServer) {
  for (const std::string key : {"a", "foo", "{user1000}.following", "foo{}{bar}", "x{y}z"}) {
    auto r = servers_[0]->command({"CLUSTER", "KEYSLOT", key});
    EXPECT_EQ(r.integer, redlock::cluster_key_slot(key)) << key;
  }
}

TEST_F(ClusterNode, RoutesEachKeyToTheMasterOwningItsSlot) {
  int on_each[3] = {0, 0, 0};
  for (int i = 0; i < 12; ++i) {
    const std::string key = "route:" + std::to_string(i);
    auto res = eval_set({key}, "v" + std::to_string(i));
    ASSERT_FALSE(res.ec) << key << ": " << res.r.str;
    EXPECT_TRUE(res.r.is_integer(1));
    const int holder = holder_of(key, "v" + std::to_string(i));
    ASSERT_GE(holder, 0) << key;
    ++on_each[holder];
  }
  // Twelve keys over three masters: more than one master was used (routing really happens).
  EXPECT_LT(std::max({on_each[0], on_each[1], on_each[2]}), 12);
}

TEST_F(ClusterNode, KeysWithACommonHashTagAreWrittenTogether) {
  auto res = eval_set({"{order:42}:items", "{order:42}:payment"}, "tagged");
  ASSERT_FALSE(res.ec) << res.r.str;
  EXPECT_TRUE(res.r.is_integer(2));
  EXPECT_EQ(holder_of("{order:42}:items", "tagged"), holder_of("{order:42}:payment", "tagged"));
  EXPECT_GE(holder_of("{order:42}:items", "tagged"), 0);
}

TEST_F(ClusterNode, KeysInDifferentSlotsAreRejectedBeforeAnythingIsSent) {
  ASSERT_NE(redlock::cluster_key_slot("cross:a"), redlock::cluster_key_slot("cross:b"));
  auto res = eval_set({"cross:a", "cross:b"}, "x");
  EXPECT_EQ(res.ec, redlock::errc::invalid_argument);
  EXPECT_NE(res.r.str.find("hash tag"), std::string::npos);
  EXPECT_EQ(holder_of("cross:a", "x"), -1);
}

TEST_F(ClusterNode, FollowsMovedWhenASlotChangesOwner) {
  // Learn the slot map with one request, then move an empty slot to another master.
  ASSERT_FALSE(eval_set({"warmup"}, "1").ec);
  const std::string key = "moving-key";
  const auto slot = std::to_string(redlock::cluster_key_slot(key));
  int owner = -1;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto& s = *servers_[static_cast<std::size_t>(i)];
    ids.push_back(s.command({"CLUSTER", "MYID"}).str);
    auto r = s.command({"CLUSTER", "COUNTKEYSINSLOT", slot});
    (void)r;
    auto keys = s.command({"GET", key});
    if (!keys.is_error())
      owner = i;  // the owner answers (nil); the others answer MOVED
  }
  ASSERT_GE(owner, 0);
  const int target = (owner + 1) % 3;
  // The new owner first, then the others, as the cluster tutorial describes.
  for (int i : {target, owner, (owner + 2) % 3}) {
    auto r = servers_[static_cast<std::size_t>(i)]->command(
        {"CLUSTER", "SETSLOT", slot, "NODE", ids[static_cast<std::size_t>(target)]});
    ASSERT_FALSE(r.is_error()) << r.str;
  }
  auto res = eval_set({key}, "moved");
  ASSERT_FALSE(res.ec) << res.r.str;
  EXPECT_EQ(holder_of(key, "moved"), target);
}

TEST_F(ClusterNode, CloseFailsLaterRequestsWithClosed) {
  ASSERT_FALSE(eval_set({"before-close"}, "1").ec);
  node_->close();
  EXPECT_EQ(eval_set({"after-close"}, "1").ec, redlock::errc::closed);
}

}  // namespace

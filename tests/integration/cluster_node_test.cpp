// A cluster_node against a real three-master Redis Cluster on loopback.
#include <sys/wait.h>

#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <thread>

#include <gtest/gtest.h>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "internal/resp.hpp"
#include "redlock/blocking.hpp"
#include "redlock/cluster_node.hpp"
#include "redlock/error.hpp"
#include "redlock/inspect.hpp"
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

  // Index of the master owning `key`'s slot: it answers a GET (nil), the others MOVED.
  static int owner_of(const std::string& key) {
    for (int i = 0; i < 3; ++i)
      if (!servers_[static_cast<std::size_t>(i)]->command({"GET", key}).is_error())
        return i;
    return -1;
  }

  static std::string node_id(int i) {
    return servers_[static_cast<std::size_t>(i)]->command({"CLUSTER", "MYID"}).str;
  }

  static std::string seed_url(int i) {
    return "redis+cluster://127.0.0.1:" +
           std::to_string(servers_[static_cast<std::size_t>(i)]->port());
  }

  // Runs `command` on servers `which` when the test ends, however it ends, so that the
  // cluster shared by this file's tests is left as it was found.
  struct on_exit {
    std::vector<int> which;
    std::vector<std::vector<std::string>> commands;
    ~on_exit() {
      for (const auto& c : commands)
        for (int i : which)
          servers_[static_cast<std::size_t>(i)]->command(c);
    }
  };

  std::pair<std::error_code, std::vector<std::string>> identify(redlock::node& n) {
    auto p = std::make_shared<std::promise<std::pair<std::error_code, std::vector<std::string>>>>();
    auto f = p->get_future();
    n.async_identify([p](std::error_code ec, std::vector<std::string> ids) {
      p->set_value({ec, std::move(ids)});
    });
    if (f.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "async_identify did not complete within 10 s";
      return {redlock::errc::timeout, {}};
    }
    return f.get();
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

TEST_F(ClusterNode, FollowsMovedWithoutAHost) {
  // With no endpoint type to advertise, Redis 7 writes redirects as "MOVED <slot> :<port>"
  // (and "?" hosts in CLUSTER SLOTS): the host is that of the node that answered.
  on_exit restore{{0, 1, 2}, {{"CONFIG", "SET", "cluster-preferred-endpoint-type", "ip"}}};
  for (auto& srv : servers_) {
    auto r = srv->command({"CONFIG", "SET", "cluster-preferred-endpoint-type", "unknown-endpoint"});
    ASSERT_FALSE(r.is_error()) << r.str;
  }
  ASSERT_FALSE(eval_set({"warmup-no-host"}, "1").ec);  // learns the map ("?" hosts)

  const std::string key = "moving-key-no-host";
  const auto slot = std::to_string(redlock::cluster_key_slot(key));
  const int owner = owner_of(key);
  ASSERT_GE(owner, 0);
  const int target = (owner + 1) % 3;
  for (int i : {target, owner, (owner + 2) % 3}) {
    auto r = servers_[static_cast<std::size_t>(i)]->command(
        {"CLUSTER", "SETSLOT", slot, "NODE", node_id(target)});
    ASSERT_FALSE(r.is_error()) << r.str;
  }
  // The old owner now redirects without a host (so this test covers that form).
  const auto redirect = servers_[static_cast<std::size_t>(owner)]->command({"GET", key});
  ASSERT_EQ(redirect.str, "MOVED " + slot + " :" +
                              std::to_string(servers_[static_cast<std::size_t>(target)]->port()));

  auto res = eval_set({key}, "moved-no-host");
  ASSERT_FALSE(res.ec) << res.r.str;
  EXPECT_EQ(holder_of(key, "moved-no-host"), target);
}

TEST_F(ClusterNode, FollowsAskWhileASlotMigrates) {
  // Two lock keys in one slot: "a" is written before the migration and moved with MIGRATE,
  // "b" is created while the slot migrates (the old owner answers ASK for a missing key).
  const std::string a = "{migrating}:a";
  const std::string b = "{migrating}:b";
  const auto slot = std::to_string(redlock::cluster_key_slot(a));
  const int owner = owner_of(a);
  ASSERT_GE(owner, 0);
  const int target = (owner + 1) % 3;
  auto& source = *servers_[static_cast<std::size_t>(owner)];
  auto& dest = *servers_[static_cast<std::size_t>(target)];

  auto node = std::make_shared<redlock::cluster_node>(io_.get_executor(),
                                                      redlock::parse_cluster_url(seed_url(1)));
  redlock::manager_options st;
  st.retry_count = 0;
  st.request_timeout = 1000ms;
  redlock::blocking_lock_manager manager({node}, st);
  const auto la = manager.lock({a}, 30s);
  ASSERT_TRUE(la.acquired());
  ASSERT_EQ(source.command({"GET", a}).str, la.value());

  // Ends the migration however the test ends: the slot stays with its owner, empty.
  on_exit restore{{owner, target}, {{"FLUSHALL"}, {"CLUSTER", "SETSLOT", slot, "STABLE"}}};
  auto r = dest.command({"CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(owner)});
  ASSERT_FALSE(r.is_error()) << r.str;
  r = source.command({"CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(target)});
  ASSERT_FALSE(r.is_error()) << r.str;
  r = source.command({"MIGRATE", "127.0.0.1", std::to_string(dest.port()), a, "0", "5000"});
  ASSERT_EQ(r.str, "OK");
  // The old owner now sends requests for these keys on with ASK (so this test covers it).
  ASSERT_EQ(source.command({"GET", a}).str,
            "ASK " + slot + " 127.0.0.1:" + std::to_string(dest.port()));

  // The migrated lock is extended where it now is.
  std::error_code ec;
  const auto la2 = manager.extend(la, 30s, {}, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(la2.acquired());
  // A new lock in the migrating slot is created on the importing node...
  const auto lb = manager.lock({b}, 30s, {}, ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(lb.acquired());
  // ...and excludes others there.
  const auto other = manager.lock({b}, 30s, {}, ec);
  EXPECT_FALSE(other.acquired());
  EXPECT_EQ(ec, redlock::errc::resource_locked) << ec.message();
  auto keys = dest.command({"CLUSTER", "GETKEYSINSLOT", slot, "10"});
  ASSERT_EQ(keys.elements.size(), 2u);
  EXPECT_EQ(source.command({"CLUSTER", "COUNTKEYSINSLOT", slot}).integer, 0);

  // After the importing node lost its script cache (SCRIPT FLUSH, a restart), a script the
  // connection sent before still follows ASK: ASKING covers only the next command, so the
  // script must not need an EVALSHA that fails and a resend without ASKING.
  ASSERT_EQ(dest.command({"SCRIPT", "FLUSH"}).str, "OK");
  const auto lb2 = manager.extend(lb, 30s, {}, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(lb2.acquired());
  ASSERT_EQ(dest.command({"SCRIPT", "FLUSH"}).str, "OK");
  const auto lb3 = manager.extend(lb, 30s, {}, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(lb3.acquired());

  // Both are released on the importing node.
  EXPECT_EQ(manager.unlock(la2.acquired() ? la2 : la).released, 1u);
  EXPECT_EQ(manager.unlock(lb).released, 1u);
  EXPECT_EQ(dest.command({"CLUSTER", "COUNTKEYSINSLOT", slot}).integer, 0);
}

TEST_F(ClusterNode, InspectionReadsTheFencingCounterInTheResourcesSlot) {
  // The inspection sends each resource with its counter key in one script: they must share
  // a slot, and a name whose counter cannot (a '}' without a hash tag) is still inspected.
  auto node = std::make_shared<redlock::cluster_node>(io_.get_executor(),
                                                      redlock::parse_cluster_url(seed_url(1)));
  redlock::manager_options st;
  st.retry_count = 0;
  st.request_timeout = 1000ms;
  st.fencing = true;
  redlock::blocking_lock_manager manager({node}, st);
  const auto l = manager.lock({"inspect:fenced"}, 30s);
  ASSERT_TRUE(l.acquired());
  ASSERT_GT(l.fencing_token(), 0u);
  auto in = redlock::inspect(manager, {"inspect:fenced"});
  ASSERT_EQ(in.nodes.size(), 1u);
  ASSERT_TRUE(in.nodes[0].answered()) << in.nodes[0].message;
  EXPECT_TRUE(in.held_by(l));
  EXPECT_EQ(in.nodes[0].fencing_counter, std::optional<std::uint64_t>(l.fencing_token()));
  manager.unlock(l);

  auto odd = redlock::inspect(manager, {"inspect:a}b"});
  ASSERT_TRUE(odd.nodes[0].answered()) << odd.nodes[0].message;
  EXPECT_EQ(odd.status, redlock::lock_status::free);
  EXPECT_EQ(odd.nodes[0].fencing_counter, std::nullopt);
  // The node runs on this test's io_context, the manager on its own: a request still in
  // flight (an inspection completes at its deadline without waiting for a slow answer) would
  // answer into the manager's io_context after it is gone (TSan saw it). Close the node and
  // let its failed requests reach the manager while it still runs.
  node->close();
  std::promise<void> drained;
  asio::post(io_, [&] { asio::post(io_, [&] { drained.set_value(); }); });
  EXPECT_EQ(drained.get_future().wait_for(10s), std::future_status::ready);
}

TEST_F(ClusterNode, TwoSeedsOfOneClusterShareTheirIdentity) {
  redlock::cluster_node first(io_.get_executor(), redlock::parse_cluster_url(seed_url(0)));
  redlock::cluster_node second(io_.get_executor(), redlock::parse_cluster_url(seed_url(2)));
  auto [ec1, ids1] = identify(first);
  auto [ec2, ids2] = identify(second);
  ASSERT_FALSE(ec1) << ec1.message();
  ASSERT_FALSE(ec2) << ec2.message();
  std::sort(ids1.begin(), ids1.end());
  std::sort(ids2.begin(), ids2.end());
  // Every member's node id, and the run_id of every master, in the format a redis_node
  // answers for its server: a plain URL of one of these masters conflicts with the cluster.
  std::vector<std::string> expected;
  for (int i = 0; i < 3; ++i) {
    expected.push_back("cluster_node:" + node_id(i));
    const std::string info = servers_[static_cast<std::size_t>(i)]->command({"INFO", "server"}).str;
    expected.push_back("run_id:" + std::string(redlock::detail::info_field(info, "run_id")));
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ids1, expected);
  EXPECT_EQ(ids2, expected);
}

TEST_F(ClusterNode, IdentifyFailsWhenNoNodeAnswers) {
  redlock::cluster_options cfg = redlock::parse_cluster_url(
      "redis+cluster://127.0.0.1:" + std::to_string(redlock::test::free_port()));
  cfg.options.connect_timeout = 300ms;
  redlock::cluster_node n(io_.get_executor(), cfg);
  auto [ec, ids] = identify(n);
  EXPECT_EQ(ec, redlock::errc::connect_failed);
  EXPECT_TRUE(ids.empty());
}

TEST_F(ClusterNode, IdentifyAfterCloseFailsWithClosed) {
  ASSERT_FALSE(eval_set({"before-close-identify"}, "1").ec);
  node_->close();
  auto [ec, ids] = identify(*node_);
  EXPECT_EQ(ec, redlock::errc::closed);
  EXPECT_TRUE(ids.empty());
}

TEST_F(ClusterNode, CloseFailsLaterRequestsWithClosed) {
  ASSERT_FALSE(eval_set({"before-close"}, "1").ec);
  node_->close();
  EXPECT_EQ(eval_set({"after-close"}, "1").ec, redlock::errc::closed);
}

}  // namespace

// The inspection verdict (detail::decide) from literal per-node answers.
#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <asio/use_future.hpp>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "redlock/inspect.hpp"
#include "support/fake_node.hpp"
#include "support/io_thread.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::key_state;
using redlock::lock_status;
using redlock::node_state;
using tp = redlock::steady_clock::time_point;

const tp started = tp{} + 500s;

key_state held_key(std::string v, std::chrono::milliseconds ttl) {
  key_state k;
  k.present = true;
  k.value = std::move(v);
  k.ttl = ttl;
  return k;
}
key_state absent_key() {
  return key_state{};
}

node_state answered(std::string id, std::vector<key_state> keys) {
  node_state n;
  n.node = std::move(id);
  n.keys = std::move(keys);
  return n;
}
node_state failed(std::string id) {
  node_state n;
  n.node = std::move(id);
  n.ec = make_error_code(redlock::errc::connect_failed);
  return n;
}

redlock::inspection make(std::vector<node_state> nodes, std::size_t keys = 1) {
  redlock::inspection in;
  for (std::size_t i = 0; i < keys; ++i)
    in.resources.push_back("r" + std::to_string(i));
  in.quorum = nodes.size() / 2 + 1;
  in.nodes = std::move(nodes);
  redlock::detail::decide(in, 0.01, started);
  return in;
}

TEST(InspectVerdict, HeldByQuorumGivesHolderAndConservativeValidity) {
  auto in = make({answered("n1", {held_key("v", 900ms)}), answered("n2", {held_key("v", 800ms)}),
                  answered("n3", {absent_key()})});
  EXPECT_EQ(in.status, lock_status::held);
  EXPECT_EQ(in.holder, "v");
  EXPECT_EQ(in.holding_nodes, 2u);
  EXPECT_EQ(in.free_nodes, 1u);
  // quorum-th (2nd) largest TTL 800 ms − drift (round(900 × 0.01) + 2 = 11 ms)
  EXPECT_EQ(in.validity_deadline, started + 789ms);
  EXPECT_EQ(in.remaining(started + 789ms), 0ms);
}

TEST(InspectVerdict, UsesTheQuorumThLargestTtlAndDriftFromTheLargest) {
  auto in = make({answered("n1", {held_key("v", 300ms)}), answered("n2", {held_key("v", 1000ms)}),
                  answered("n3", {held_key("v", 500ms)}), answered("n4", {held_key("v", 900ms)}),
                  answered("n5", {absent_key()})});
  ASSERT_EQ(in.status, lock_status::held);
  EXPECT_EQ(in.holding_nodes, 4u);
  // sorted 1000, 900, 500, 300; quorum 3 → 500 ms; drift round(1000 × 0.01) + 2 = 12 ms
  EXPECT_EQ(in.validity_deadline, started + 488ms);
}

TEST(InspectVerdict, NodeTtlIsItsShortestKeyForASetOfResources) {
  auto in = make({answered("n1", {held_key("v", 900ms), held_key("v", 100ms)}),
                  answered("n2", {held_key("v", 900ms), held_key("v", 700ms)}),
                  answered("n3", {absent_key(), absent_key()})},
                 2);
  ASSERT_EQ(in.status, lock_status::held);
  // node TTLs 100 and 700; the 2nd largest is 100 ms; drift from the largest seen (700 ms)
  EXPECT_EQ(in.validity_deadline, started + 100ms - 9ms);
}

TEST(InspectVerdict, FreeWhenNoKeyExistsOnAQuorum) {
  auto in = make({answered("n1", {absent_key()}), answered("n2", {absent_key()}),
                  answered("n3", {held_key("other", 900ms)})});
  EXPECT_EQ(in.status, lock_status::free);
  EXPECT_EQ(in.free_nodes, 2u);
  EXPECT_TRUE(in.holder.empty());
  EXPECT_EQ(in.remaining(started), 0ms);
}

TEST(InspectVerdict, SplitValuesAreIndeterminate) {
  auto in = make({answered("n1", {held_key("v", 900ms)}), answered("n2", {held_key("w", 900ms)}),
                  answered("n3", {absent_key()})});
  EXPECT_EQ(in.status, lock_status::indeterminate);
  EXPECT_TRUE(in.holder.empty());
}

TEST(InspectVerdict, PartialHoldOfAResourceSetIsNeitherHeldNorFreeOnThatNode) {
  auto in = make({answered("n1", {held_key("v", 900ms), absent_key()}),
                  answered("n2", {held_key("v", 900ms), absent_key()}),
                  answered("n3", {held_key("v", 900ms), held_key("v", 900ms)})},
                 2);
  EXPECT_EQ(in.status, lock_status::indeterminate);
  EXPECT_EQ(in.free_nodes, 0u);
  EXPECT_FALSE(in.nodes[0].holder().has_value());
  EXPECT_FALSE(in.nodes[0].free());
  EXPECT_EQ(in.nodes[2].holder(), std::optional<std::string>("v"));
}

TEST(InspectVerdict, UnreachableNodesCountAsNeither) {
  auto in = make({failed("n1"), failed("n2"), answered("n3", {absent_key()})});
  EXPECT_EQ(in.status, lock_status::indeterminate);
  EXPECT_EQ(in.free_nodes, 1u);
  EXPECT_FALSE(in.nodes[0].free());
  EXPECT_FALSE(in.nodes[0].holder().has_value());
}

TEST(InspectVerdict, HeldDespiteAMinorityDown) {
  auto in = make({failed("n1"), answered("n2", {held_key("v", 900ms)}),
                  answered("n3", {held_key("v", 950ms)})});
  EXPECT_EQ(in.status, lock_status::held);
  EXPECT_EQ(in.validity_deadline, started + 900ms - 12ms);
}

TEST(InspectVerdict, KeysWithoutExpiryMakeAnUnboundedHold) {
  auto in = make({answered("n1", {held_key("v", -1ms)}), answered("n2", {held_key("v", -1ms)}),
                  answered("n3", {absent_key()})});
  ASSERT_EQ(in.status, lock_status::held);
  EXPECT_EQ(in.validity_deadline, tp::max());
  EXPECT_EQ(in.remaining(started), redlock::steady_clock::duration::max());
}

TEST(InspectVerdict, NonStringKeyIsPresentButHeldByNoValue) {
  key_state hash;
  hash.present = true;
  hash.ttl = -1ms;
  auto in = make({answered("n1", {hash}), answered("n2", {hash}), answered("n3", {absent_key()})});
  EXPECT_EQ(in.status, lock_status::indeterminate);
  EXPECT_EQ(in.free_nodes, 1u);
}

TEST(InspectVerdict, HeldByComparesTheLockValue) {
  auto in = make({answered("n1", {held_key("abc", 900ms)}),
                  answered("n2", {held_key("abc", 900ms)}), answered("n3", {absent_key()})});
  redlock::detail::lock_parts p;
  p.resources = {"r0"};
  p.value = "abc";
  p.ttl = 1000ms;
  EXPECT_TRUE(in.held_by(redlock::detail::lock_access::make(p)));
  p.value = "xyz";
  EXPECT_FALSE(in.held_by(redlock::detail::lock_access::make(p)));
  EXPECT_FALSE(in.held_by(redlock::lock{}));
}

TEST(InspectVerdict, ToStringNamesTheVerdictAndEveryNode) {
  auto in = make({answered("redis://a", {held_key("v", 900ms)}),
                  answered("redis://b", {held_key("v", 800ms)}), failed("redis://c")});
  auto s = in.to_string();
  EXPECT_NE(s.find("held by v on 2/3 nodes (quorum 2)"), std::string::npos) << s;
  EXPECT_NE(s.find("redis://a: v 900 ms"), std::string::npos) << s;
  EXPECT_NE(s.find("redis://c: "), std::string::npos) << s;
  EXPECT_STREQ(redlock::to_string(lock_status::free), "free");
  EXPECT_STREQ(redlock::to_string(lock_status::indeterminate), "indeterminate");
}

// async_inspect over fake nodes: per-node timeout, malformed replies, the node-error hook.
class InspectFakeTest : public ::testing::Test {
 protected:
  using fake_node = redlock::test::fake_node;
  using sk = fake_node::script_kind;

  void SetUp() override {
    auto nodes = redlock::test::make_fake_nodes(io_.executor(), 3, fakes_);
    redlock::manager_options s;
    s.request_timeout = 100ms;
    manager_ = std::make_unique<redlock::lock_manager>(io_.executor(), nodes, s);
    manager_->on_node_error([this](const redlock::node_error& e) {
      std::lock_guard g(mu_);
      errors_.push_back(e.node);
    });
  }
  void TearDown() override {
    for (auto& f : fakes_)
      f->close();  // answers silent requests
    io_.stop(*manager_);
  }
  /// The script's answer for one key: its value (nil when absent) and PTTL.
  static void add_key(fake_node::step& st, std::optional<std::string> value, long long ttl) {
    redlock::reply v;
    if (value) {
      v.kind = redlock::reply::type::string;
      v.str = *value;
    }
    redlock::reply t;
    t.kind = redlock::reply::type::integer;
    t.integer = ttl;
    st.r.elements.push_back(v);
    st.r.elements.push_back(t);
  }
  /// The answer for the resource "k": its key, then its fencing counter (none by default),
  /// then its owner record (none by default).
  static fake_node::step answer(std::optional<std::string> value, long long ttl,
                                std::optional<std::string> counter = std::nullopt,
                                std::optional<std::string> owner = std::nullopt) {
    fake_node::step st;
    st.r.kind = redlock::reply::type::array;
    add_key(st, std::move(value), ttl);
    add_key(st, counter, counter ? -1 : -2);
    add_key(st, owner, owner ? ttl : -2);
    return st;
  }
  redlock::inspection inspect(std::vector<std::string> res = {"k"}) {
    auto f = redlock::async_inspect(*manager_, res, asio::use_future);
    return redlock::test::get_within(f);
  }

  redlock::test::io_thread io_;  // before manager_: outlives it
  std::vector<std::shared_ptr<fake_node>> fakes_;
  std::unique_ptr<redlock::lock_manager> manager_;
  std::mutex mu_;
  std::vector<std::string> errors_;
};

TEST_F(InspectFakeTest, SilentNodeTimesOutAndTheVerdictComesFromTheOthers) {
  fakes_[0]->push(sk::other, answer("v", 900));
  fakes_[1]->push(sk::other, answer("v", 800));
  fakes_[2]->push(sk::other, fake_node::step::silence());
  auto in = inspect();
  EXPECT_EQ(in.status, lock_status::held);
  EXPECT_EQ(in.nodes[2].ec, redlock::errc::timeout);
  EXPECT_TRUE(in.nodes[0].answered());
  std::lock_guard g(mu_);
  EXPECT_EQ(errors_, std::vector<std::string>{"fake2"});
}

TEST_F(InspectFakeTest, MalformedReplyIsAProtocolErrorForThatNode) {
  fakes_[0]->push(sk::other, fake_node::step::integer(1));
  fakes_[1]->push(sk::other, answer(std::nullopt, -2));
  fakes_[2]->push(sk::other, answer(std::nullopt, -2));
  auto in = inspect();
  EXPECT_EQ(in.nodes[0].ec, redlock::errc::protocol_error);
  EXPECT_EQ(in.status, lock_status::free);
  EXPECT_EQ(in.free_nodes, 2u);
}

TEST_F(InspectFakeTest, ErrorRepliesKeepTheServerMessage) {
  for (auto& f : fakes_) {
    f->push(sk::other, fake_node::step::error(make_error_code(redlock::errc::no_permission),
                                              "NOPERM no eval for you"));
  }
  auto in = inspect();
  EXPECT_EQ(in.status, lock_status::indeterminate);
  for (const auto& n : in.nodes) {
    EXPECT_EQ(n.ec, redlock::errc::no_permission);
    EXPECT_EQ(n.message, "NOPERM no eval for you");
  }
}

TEST_F(InspectFakeTest, SendsTheResourcesThenTheirFencingCountersThenOwnersAndNoArguments) {
  for (auto& f : fakes_)
    f->push(sk::other, answer(std::nullopt, -2));
  (void)inspect();
  for (auto& f : fakes_) {
    auto calls = f->calls();
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0].kind, sk::other);
    EXPECT_EQ(calls[0].keys,
              (std::vector<std::string>{"k", "{k}:redlock-fencing", "{k}:redlock-owner"}));
    EXPECT_TRUE(calls[0].args.empty());
  }
}

TEST_F(InspectFakeTest, ReportsEachNodesFencingCounterAndNoneWhereItIsAbsent) {
  fakes_[0]->push(sk::other, answer("v", 900, "7"));
  fakes_[1]->push(sk::other, answer("v", 800));
  fakes_[2]->push(sk::other, answer(std::nullopt, -2, "12"));
  auto in = inspect();
  EXPECT_EQ(in.status, lock_status::held);
  ASSERT_EQ(in.nodes.size(), 3u);
  EXPECT_EQ(in.nodes[0].fencing_counter, std::optional<std::uint64_t>(7));
  EXPECT_EQ(in.nodes[1].fencing_counter, std::nullopt);
  EXPECT_EQ(in.nodes[2].fencing_counter, std::optional<std::uint64_t>(12));
  ASSERT_EQ(in.nodes[0].keys.size(), 1u) << "a counter is not a resource key";
  EXPECT_TRUE(in.nodes[2].free()) << "the counter does not make the node hold anything";
  EXPECT_NE(in.to_string().find(": v 900 ms, fencing counter 7"), std::string::npos)
      << in.to_string();
}

TEST_F(InspectFakeTest, ForSeveralResourcesANodesCounterIsTheLargest) {
  for (auto& f : fakes_) {
    fake_node::step st;
    st.r.kind = redlock::reply::type::array;
    add_key(st, "v", 900);
    add_key(st, "v", 900);
    add_key(st, "3", -1);
    add_key(st, "18446744073709551615", -1);  // the largest a uint64 holds
    add_key(st, std::nullopt, -2);
    add_key(st, std::nullopt, -2);
    f->push(sk::other, st);
  }
  auto in = inspect({"a", "{tag}b"});
  EXPECT_EQ(in.status, lock_status::held);
  for (const auto& n : in.nodes)
    EXPECT_EQ(n.fencing_counter, std::optional<std::uint64_t>(18446744073709551615u)) << n.node;
  EXPECT_EQ(
      fakes_[0]->calls()[0].keys,
      (std::vector<std::string>{"a", "{tag}b", "{a}:redlock-fencing", "{tag}b:redlock-fencing",
                                "{a}:redlock-owner", "{tag}b:redlock-owner"}));
}

TEST_F(InspectFakeTest, ACounterThatIsNotADecimalIntegerIsIgnoredNotAnError) {
  fakes_[0]->push(sk::other, answer("v", 900, "seven"));
  fakes_[1]->push(sk::other, answer("v", 900, "-3"));
  // A counter key of another type reads as nil with its PTTL, like a lock key would.
  auto hash = answer("v", 900);
  hash.r.elements[3].integer = -1;
  fakes_[2]->push(sk::other, hash);
  auto in = inspect();
  EXPECT_EQ(in.status, lock_status::held);
  for (const auto& n : in.nodes) {
    EXPECT_TRUE(n.answered()) << n.node;
    EXPECT_EQ(n.fencing_counter, std::nullopt) << n.node;
  }
}

TEST_F(InspectFakeTest, AnOwnerRecordIsShownOnlyBesideTheValueItNames) {
  redlock::owner_info who;
  who.host = "h1";
  who.pid = 99;
  const auto ours = redlock::encode_owner("v", 1000, who);
  fakes_[0]->push(sk::other, answer("v", 900, std::nullopt, ours));
  // A record of an earlier lock (another value) says nothing about this holder.
  fakes_[1]->push(sk::other, answer("v", 900, std::nullopt, redlock::encode_owner("old", 1, who)));
  fakes_[2]->push(sk::other, answer("v", 900, std::nullopt, "garbled"));
  auto in = inspect();
  ASSERT_EQ(in.status, lock_status::held);
  ASSERT_TRUE(in.nodes[0].keys[0].owner);
  EXPECT_EQ(in.nodes[0].keys[0].owner->who.pid, 99);
  EXPECT_FALSE(in.nodes[1].keys[0].owner);
  EXPECT_FALSE(in.nodes[2].keys[0].owner);
  ASSERT_TRUE(in.owner);
  EXPECT_EQ(in.owner->who.host, "h1");
  for (const auto& n : in.nodes)
    EXPECT_TRUE(n.answered()) << n.node;
}

TEST_F(InspectFakeTest, TheManagersPrefixIsInspectedAndTheResultNamesTheResource) {
  redlock::test::io_thread io;
  std::vector<std::shared_ptr<fake_node>> fakes;
  auto nodes = redlock::test::make_fake_nodes(io.executor(), 1, fakes, "p");
  redlock::manager_options s;
  s.key_prefix = "ns:";
  redlock::lock_manager m(io.executor(), nodes, s);
  fakes[0]->push(sk::other, answer("v", 900));
  auto f = redlock::async_inspect(m, {"k"}, asio::use_future);
  auto in = redlock::test::get_within(f);
  EXPECT_EQ(in.resources, std::vector<std::string>{"k"});
  EXPECT_EQ(fakes[0]->calls()[0].keys,
            (std::vector<std::string>{"ns:k", "{ns:k}:redlock-fencing", "{ns:k}:redlock-owner"}));
  EXPECT_TRUE(in.held());
  io.stop(m);
}

TEST_F(InspectFakeTest, ACounterThatCannotShareTheResourcesClusterSlotIsNotRead) {
  // "a}b" has no hash tag: its counter key "a}b:redlock-fencing" hashes whole, to another
  // slot, and a Cluster node would refuse the script. The resource is still inspected.
  for (auto& f : fakes_) {
    fake_node::step st;
    st.r.kind = redlock::reply::type::array;
    add_key(st, "v", 900);
    f->push(sk::other, st);
  }
  auto in = inspect({"a}b"});
  EXPECT_EQ(in.status, lock_status::held);
  EXPECT_EQ(fakes_[0]->calls()[0].keys, std::vector<std::string>{"a}b"});
  EXPECT_EQ(in.nodes[0].fencing_counter, std::nullopt);
}

TEST_F(InspectFakeTest, AReplyWithoutTheCounterIsAProtocolError) {
  // The old reply shape (resource keys only) must not be read as a counter-less answer.
  fake_node::step old_shape;
  old_shape.r.kind = redlock::reply::type::array;
  add_key(old_shape, "v", 900);
  fakes_[0]->push(sk::other, old_shape);
  fakes_[1]->push(sk::other, answer("v", 900, "4"));
  fakes_[2]->push(sk::other, answer("v", 900, "4"));
  auto in = inspect();
  EXPECT_EQ(in.nodes[0].ec, redlock::errc::protocol_error);
  EXPECT_EQ(in.nodes[0].fencing_counter, std::nullopt);
  EXPECT_EQ(in.status, lock_status::held);
}

TEST_F(InspectFakeTest, OneDeploymentListedTwiceIsRefusedAndNothingIsSent) {
  // Inspection passes the manager's identity check like every operation (issue 10, defect 8):
  // `redlock status` would otherwise count one server twice.
  std::vector<std::shared_ptr<fake_node>> dup;
  auto nodes = redlock::test::make_fake_nodes(io_.executor(), 3, dup, "dup");
  dup[0]->set_identity({"run_id:same"});
  dup[1]->set_identity({"run_id:other"});
  dup[2]->set_identity({"run_id:same"});
  redlock::lock_manager m(io_.executor(), nodes, {});
  std::promise<std::pair<std::error_code, redlock::inspection>> p;
  std::vector<std::string> res{"k"};
  redlock::async_inspect(m, res, [&p](std::error_code ec, redlock::inspection in) {
    p.set_value({ec, std::move(in)});
  });
  auto f = p.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  auto [ec, in] = f.get();
  EXPECT_EQ(ec, redlock::errc::duplicate_deployment);
  EXPECT_NE(in.detail.find("nodes[0] (dup0) and nodes[2] (dup2)"), std::string::npos) << in.detail;
  for (auto& d : dup)
    EXPECT_TRUE(d->calls().empty());
  auto q = m.async_quit(asio::use_future);
  EXPECT_EQ(q.wait_for(5s), std::future_status::ready);
}

}  // namespace

TEST_F(InspectFakeTest, BadResourcesAreRefusedAsByLockNamingTheArgument) {
  // One contract for every operation: the same check, the same code, the same detail.
  const std::vector<std::vector<std::string>> bad = {{}, {"k", ""}, {"a", "b", "a"}};
  const std::vector<std::string> details = {"resources is empty: name at least one resource",
                                            "resources[1] is empty",
                                            "resources[0] and resources[2] are the same resource"};
  for (std::size_t i = 0; i < bad.size(); ++i) {
    std::promise<std::pair<std::error_code, redlock::inspection>> ip;
    auto f = ip.get_future();
    redlock::async_inspect(*manager_, bad[i], [&ip](std::error_code e, redlock::inspection r) {
      ip.set_value({e, std::move(r)});
    });
    auto [ec, in] = redlock::test::get_within(f);
    EXPECT_EQ(ec, redlock::errc::invalid_argument) << i;
    EXPECT_EQ(in.detail, details[i]);
    std::promise<std::pair<std::error_code, redlock::lock>> lp;
    auto lf = lp.get_future();
    manager_->async_lock(bad[i], 1000ms, [&lp](std::error_code e, redlock::lock l) {
      lp.set_value({e, std::move(l)});
    });
    auto [lec, l] = redlock::test::get_within(lf);
    EXPECT_EQ(lec, redlock::errc::invalid_argument) << i;
    EXPECT_EQ(l.report().detail, details[i]);
  }
  for (auto& f : fakes_)
    EXPECT_TRUE(f->calls().empty()) << "a refused call sent something";
}

// node::open_notifier of the built-in nodes against real servers on loopback: redis_node
// (subscribe, messages, unsubscribe, close, a killed pub/sub connection, a restarted server),
// sentinel_node (a failover) and cluster_node (channels on two masters, a slot move).
// Every wait is on a condition under a deadline; messages are published with a separate
// blocking client, and PUBSUB SHARDNUMSUB on the server is the ground truth for what is
// subscribed.
#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include "redlock/cluster_node.hpp"
#include "redlock/redis_node.hpp"
#include "redlock/sentinel_node.hpp"
#include "support/certificates.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::notification;
using redlock::test::redis_server;
using redlock::test::redis_server_options;
using redlock::test::wait_for;
using kind = notification::kind;

// The events a notifier delivered, copied out of the handler (its views die with the call).
struct recorder {
  struct event {
    kind what;
    std::string channel;
    std::string payload;
  };

  redlock::notification_handler handler() {
    // The handler may run after the test's notifier is closed: it holds the recorder.
    return [self = self_](const notification& n) {
      std::lock_guard lock(self->mutex);
      self->events.push_back({n.what, std::string(n.channel), std::string(n.payload)});
    };
  }

  struct state {
    std::mutex mutex;
    std::vector<event> events;
  };

  std::size_t count(kind what, const std::string& channel = {}) const {
    std::lock_guard lock(self_->mutex);
    return static_cast<std::size_t>(
        std::count_if(self_->events.begin(), self_->events.end(), [&](const event& e) {
          return e.what == what && (channel.empty() || e.channel == channel);
        }));
  }
  bool got_message(const std::string& channel, const std::string& payload) const {
    std::lock_guard lock(self_->mutex);
    return std::any_of(self_->events.begin(), self_->events.end(), [&](const event& e) {
      return e.what == kind::message && e.channel == channel && e.payload == payload;
    });
  }
  std::size_t size() const {
    std::lock_guard lock(self_->mutex);
    return self_->events.size();
  }
  std::vector<event> snapshot() const {
    std::lock_guard lock(self_->mutex);
    return self_->events;
  }

  std::shared_ptr<state> self_ = std::make_shared<state>();
};

std::int64_t shard_subscribers(const redis_server& s, const std::string& channel) {
  auto r = s.command({"PUBSUB", "SHARDNUMSUB", channel});
  if (r.elements.size() != 2)
    return -1;
  return r.elements[1].integer;
}

// Publishes until the recorder has the message (a publish sent while the subscription is
// being re-established may be lost: that is what `lost`/`subscribed` tell the user).
bool publish_until_received(const redis_server& s, const recorder& rec, const std::string& ch,
                            const std::string& payload, std::chrono::milliseconds deadline = 10s) {
  return wait_for(
      [&] {
        s.command({"SPUBLISH", ch, payload});
        return wait_for([&] { return rec.got_message(ch, payload); }, 200ms);
      },
      deadline);
}

class Notifier : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    work_.reset();
    io_.stop();
    thread_.join();
  }

  std::unique_ptr<redlock::redis_node> node_for(const std::string& url) {
    redlock::connection_options o;
    o.backoff_initial = 20ms;
    o.backoff_max = 200ms;
    return std::make_unique<redlock::redis_node>(io_.get_executor(), redlock::parse_endpoint(url),
                                                 o);
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread thread_;
};

// ---- redis_node ----------------------------------------------------------------------------

TEST_F(Notifier, SubscribeIsConfirmedMessagesArriveAndUnsubscribeLeavesNoSubscriber) {
  redis_server server;
  auto node = node_for(server.url());
  recorder rec;
  auto n = node->open_notifier(rec.handler());
  ASSERT_NE(n, nullptr);

  n->subscribe("lock:a");
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed, "lock:a") == 1; }));
  EXPECT_EQ(shard_subscribers(server, "lock:a"), 1);

  auto r = server.command({"SPUBLISH", "lock:a", "released"});
  EXPECT_EQ(r.integer, 1);
  ASSERT_TRUE(wait_for([&] { return rec.got_message("lock:a", "released"); }));

  n->subscribe("lock:a");  // already subscribed: nothing
  n->unsubscribe("lock:a");
  ASSERT_TRUE(wait_for([&] { return shard_subscribers(server, "lock:a") == 0; }));
  EXPECT_EQ(rec.count(kind::subscribed), 1u);
  // Nothing subscribed any more: the pub/sub connection closes (only the admin client of
  // the check below is left, and no client is in pub/sub mode).
  EXPECT_TRUE(wait_for([&] {
    return server.command({"CLIENT", "LIST", "TYPE", "pubsub"}).str.empty();
  }));
  EXPECT_EQ(rec.count(kind::lost), 0u);
}

TEST_F(Notifier, WorksOverAUnixSocketWithAPassword) {
  redis_server_options o;
  o.unix_socket = true;
  o.requirepass = "s3cret";
  redis_server server(o);
  auto node = node_for("unix://" + server.unix_path() + "?password=s3cret");
  recorder rec;
  auto n = node->open_notifier(rec.handler());
  n->subscribe("ch");
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed, "ch") == 1; }));
  server.command({"SPUBLISH", "ch", "x"});
  EXPECT_TRUE(wait_for([&] { return rec.got_message("ch", "x"); }));
}

TEST_F(Notifier, WorksOverTls) {
  redis_server_options o;
  o.tls = true;
  redis_server server(o);
  redlock::endpoint ep = redlock::parse_endpoint(server.tls_url());
  ep.tls.ca_file = redlock::test::certs().ca_cert;
  redlock::redis_node node(io_.get_executor(), ep);
  recorder rec;
  auto n = node.open_notifier(rec.handler());
  n->subscribe("ch");
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed, "ch") == 1; }));
  server.command({"SPUBLISH", "ch", "over-tls"});
  EXPECT_TRUE(wait_for([&] { return rec.got_message("ch", "over-tls"); }));
}

TEST_F(Notifier, CloseDropsTheSubscriptionsAndNoEventFollows) {
  redis_server server;
  auto node = node_for(server.url());
  recorder rec;
  auto n = node->open_notifier(rec.handler());
  n->subscribe("a");
  n->subscribe("b");
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed) == 2; }));
  n->close();
  n->close();  // idempotent
  ASSERT_TRUE(wait_for(
      [&] { return shard_subscribers(server, "a") == 0 && shard_subscribers(server, "b") == 0; }));
  const std::size_t before = rec.size();
  server.command({"SPUBLISH", "a", "late"});
  n->subscribe("c");                   // after close: nothing
  std::this_thread::sleep_for(200ms);  // a window for an event that must not come
  EXPECT_EQ(rec.size(), before);
  EXPECT_EQ(shard_subscribers(server, "c"), 0);
}

TEST_F(Notifier, NodeCloseClosesTheNotifiersItOpened) {
  redis_server server;
  auto node = node_for(server.url());
  recorder rec;
  auto n = node->open_notifier(rec.handler());
  n->subscribe("a");
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed) == 1; }));
  node->close();
  ASSERT_TRUE(wait_for([&] { return shard_subscribers(server, "a") == 0; }));
  const std::size_t before = rec.size();
  server.command({"SPUBLISH", "a", "late"});
  std::this_thread::sleep_for(200ms);  // a window for an event that must not come
  EXPECT_EQ(rec.size(), before);
  // The notifier outlives the node object safely.
  node.reset();
  n->subscribe("b");
  n.reset();
}

TEST_F(Notifier, AKilledPubSubConnectionIsLostThenSubscribedAgain) {
  redis_server server;
  auto node = node_for(server.url());
  recorder rec;
  auto n = node->open_notifier(rec.handler());
  n->subscribe("a");
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed, "a") == 1; }));

  server.command({"CLIENT", "KILL", "TYPE", "pubsub"});
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::lost) == 1; }));
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed, "a") == 2; }));
  // `lost` (empty channel: the whole connection) came before the second `subscribed`.
  const auto events = rec.snapshot();
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[1].what, kind::lost);
  EXPECT_EQ(events[1].channel, "");
  EXPECT_EQ(shard_subscribers(server, "a"), 1);
  server.command({"SPUBLISH", "a", "after-kill"});
  EXPECT_TRUE(wait_for([&] { return rec.got_message("a", "after-kill"); }));
}

TEST_F(Notifier, AServerRestartedOnTheSamePortGetsTheSubscriptionsBack) {
  redis_server server;
  auto node = node_for(server.url());
  recorder rec;
  auto n = node->open_notifier(rec.handler());
  n->subscribe("a");
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed, "a") == 1; }));

  server.stop();
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::lost) == 1; }));
  server.start();
  // Reconnects within the backoff (200 ms at most here) once the server listens again.
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed, "a") == 2; }, 10s));
  EXPECT_TRUE(publish_until_received(server, rec, "a", "after-restart"));
}

TEST_F(Notifier, AWrongPasswordNeverSubscribesAndRetriesWithBackoff) {
  redis_server_options o;
  o.requirepass = "right";
  redis_server server(o);
  auto node = node_for("redis://:wrong@127.0.0.1:" + std::to_string(server.port()));
  recorder rec;
  auto n = node->open_notifier(rec.handler());
  n->subscribe("a");
  std::this_thread::sleep_for(300ms);  // several attempts' worth of backoff (20..200 ms)
  EXPECT_EQ(rec.count(kind::subscribed), 0u);
  EXPECT_EQ(shard_subscribers(server, "a"), 0);
  n->close();
}

// ---- sentinel_node -------------------------------------------------------------------------

TEST_F(Notifier, SentinelFailoverMovesTheSubscriptionsToTheNewMaster) {
  redis_server master;
  redis_server_options ro;
  ro.extra_config = {"replicaof 127.0.0.1 " + std::to_string(master.port())};
  redis_server replica(ro);
  redis_server sentinel(redlock::test::sentinel_options(master));
  ASSERT_TRUE(wait_for(
      [&] {
        return replica.command({"INFO", "replication"}).str.find("master_link_status:up") !=
               std::string::npos;
      },
      15s));
  ASSERT_TRUE(wait_for(
      [&] {
        return !sentinel.command({"SENTINEL", "replicas", "mymaster"}).elements.empty();
      },
      15s));

  auto cfg = redlock::parse_sentinel_url(
      "redis+sentinel://127.0.0.1:" + std::to_string(sentinel.port()) + "/mymaster");
  cfg.options.backoff_initial = 20ms;
  cfg.options.backoff_max = 200ms;
  cfg.refresh_interval = 200ms;
  redlock::sentinel_node node(io_.get_executor(), cfg);
  recorder rec;
  auto n = node.open_notifier(rec.handler());
  n->subscribe("lock:x");
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed, "lock:x") == 1; }, 10s));
  EXPECT_EQ(shard_subscribers(master, "lock:x"), 1);
  ASSERT_TRUE(publish_until_received(master, rec, "lock:x", "before"));

  auto r = sentinel.command({"SENTINEL", "FAILOVER", "mymaster"});
  ASSERT_FALSE(r.is_error()) << r.str;
  // lost, then subscribed again, at the promoted replica. The sentinel may kill our probe's
  // connection to it while it reconfigures it: that is "not yet".
  ASSERT_TRUE(wait_for(
      [&] {
        return redlock::test::unless_killed(
            [&] { return shard_subscribers(replica, "lock:x") == 1; });
      },
      30s));
  EXPECT_GE(rec.count(kind::lost), 1u);
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed, "lock:x") >= 2; }, 10s));
  EXPECT_TRUE(publish_until_received(replica, rec, "lock:x", "after-failover"));
  n->close();
  EXPECT_TRUE(wait_for([&] { return shard_subscribers(replica, "lock:x") == 0; }));
}

// ---- cluster_node --------------------------------------------------------------------------

// The index of the server that owns `channel`'s slot (answers SSUBSCRIBE-like lookups
// without MOVED), or -1.
int owner_of(const std::vector<std::unique_ptr<redis_server>>& servers,
             const std::string& channel) {
  for (std::size_t i = 0; i < servers.size(); ++i)
    if (!servers[i]->command({"GET", channel}).is_error())
      return static_cast<int>(i);
  return -1;
}

TEST_F(Notifier, ClusterChannelsOnTwoMastersDeliverAndFollowASlotMove) {
  auto servers = redlock::test::start_cluster(3);
  redlock::cluster_options cfg;
  cfg.seeds.push_back(redlock::parse_endpoint(servers[0]->url()));
  cfg.options.backoff_initial = 20ms;
  cfg.options.backoff_max = 200ms;
  redlock::cluster_node node(io_.get_executor(), cfg);
  recorder rec;
  auto n = node.open_notifier(rec.handler());

  // Two channels whose slots have different owners.
  const std::string a = "chan-a";
  std::string b;
  const int owner_a = owner_of(servers, a);
  ASSERT_GE(owner_a, 0);
  for (int i = 0; i < 100 && b.empty(); ++i) {
    const std::string c = "chan-b" + std::to_string(i);
    if (const int o = owner_of(servers, c); o >= 0 && o != owner_a)
      b = c;
  }
  ASSERT_FALSE(b.empty());
  const int owner_b = owner_of(servers, b);

  n->subscribe(a);
  n->subscribe(b);
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed) == 2; }, 10s));
  EXPECT_EQ(shard_subscribers(*servers[static_cast<std::size_t>(owner_a)], a), 1);
  EXPECT_EQ(shard_subscribers(*servers[static_cast<std::size_t>(owner_b)], b), 1);
  EXPECT_TRUE(publish_until_received(*servers[static_cast<std::size_t>(owner_a)], rec, a, "1"));
  EXPECT_TRUE(publish_until_received(*servers[static_cast<std::size_t>(owner_b)], rec, b, "2"));

  // Move a's (empty) slot to the third master: the old owner drops the subscription
  // ("sunsubscribe"), and the notifier subscribes at the new owner.
  const int target = 3 - owner_a - owner_b;
  const std::string slot = std::to_string(redlock::cluster_key_slot(a));
  const std::string target_id =
      servers[static_cast<std::size_t>(target)]->command({"CLUSTER", "MYID"}).str;
  for (int i : {target, owner_a, owner_b}) {
    auto r = servers[static_cast<std::size_t>(i)]->command(
        {"CLUSTER", "SETSLOT", slot, "NODE", target_id});
    ASSERT_FALSE(r.is_error()) << r.str;
  }
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::lost, a) >= 1; }, 10s));
  ASSERT_TRUE(wait_for(
      [&] { return shard_subscribers(*servers[static_cast<std::size_t>(target)], a) == 1; }, 10s));
  ASSERT_TRUE(wait_for([&] { return rec.count(kind::subscribed, a) >= 2; }));
  EXPECT_TRUE(
      publish_until_received(*servers[static_cast<std::size_t>(target)], rec, a, "after-move"));
  // b was not affected.
  EXPECT_EQ(rec.count(kind::lost, b), 0u);
  EXPECT_TRUE(publish_until_received(*servers[static_cast<std::size_t>(owner_b)], rec, b, "still"));

  node.close();
  EXPECT_TRUE(wait_for([&] {
    return shard_subscribers(*servers[static_cast<std::size_t>(target)], a) == 0 &&
           shard_subscribers(*servers[static_cast<std::size_t>(owner_b)], b) == 0;
  }));
}

}  // namespace

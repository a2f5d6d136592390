// The wire of waiting on a real redis-server: the acquire scripts' denial carries the
// holder's TTL, and the announcing release publishes on the channel the C++ side computes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "internal/scripts.hpp"
#include "redlock/node.hpp"
#include "support/blocking_client.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::reply;
using redlock::test::blocking_client;
using redlock::test::redis_server;

class WakeScripts : public ::testing::Test {
 public:
  static void SetUpTestSuite() { server_ = new redis_server(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

 protected:
  static redis_server* server_;

  static reply eval(const redlock::script& s, const std::vector<std::string>& keys,
                    const std::vector<std::string>& args) {
    std::vector<std::string> argv{"EVAL", s.text(), std::to_string(keys.size())};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return server_->command(argv);
  }

  static blocking_client subscriber(const std::string& channel) {
    blocking_client c("127.0.0.1", server_->port(), 5s);
    EXPECT_TRUE(c.connected()) << c.error();
    auto r = c.command({"SSUBSCRIBE", channel});
    EXPECT_TRUE(r && r->kind == reply::type::array);
    return c;
  }

  // The next thing the subscriber receives: PING in subscribe mode is answered after what the
  // server pushed before it, so a message already published comes back first.
  static reply next(blocking_client& c) {
    auto r = c.command({"PING"});
    EXPECT_TRUE(r) << c.error();
    return r ? *r : reply{};
  }

  static bool is_message(const reply& r, const std::string& channel, const std::string& payload) {
    return r.kind == reply::type::array && r.elements.size() == 3 &&
           r.elements[0].str == "smessage" && r.elements[1].str == channel &&
           r.elements[2].str == payload;
  }
};

redis_server* WakeScripts::server_ = nullptr;

TEST_F(WakeScripts, AcquireDenialCarriesTheHoldersTtl) {
  server_->command({"SET", "held", "other", "PX", "5000"});
  auto r = eval(redlock::detail::acquire_script(), {"held"}, {"mine", "1000"});
  ASSERT_EQ(r.kind, reply::type::integer);
  const auto ttl = -r.integer - 1;
  EXPECT_GT(ttl, 4000);
  EXPECT_LE(ttl, 5000);
  EXPECT_EQ(server_->command({"GET", "held"}).str, "other");  // nothing written
  // Several foreign keys: the longest-lived decides when all are free.
  server_->command({"SET", "held2", "third", "PX", "9000"});
  r = eval(redlock::detail::acquire_script(), {"held", "held2", "free"}, {"mine", "1000"});
  EXPECT_GT(-r.integer - 1, 8000);
  EXPECT_EQ(server_->command({"EXISTS", "free"}).integer, 0);
  // A key that never expires: the TTL is unknown (0, node-redlock's denial).
  server_->command({"SET", "forever", "other"});
  r = eval(redlock::detail::acquire_script(), {"forever"}, {"mine", "1000"});
  EXPECT_EQ(r.integer, 0);
  // Granted as before.
  r = eval(redlock::detail::acquire_script(), {"free"}, {"mine", "1000"});
  EXPECT_EQ(r.integer, 1);
  server_->command({"DEL", "held", "held2", "forever", "free"});
}

TEST_F(WakeScripts, FencedAcquireDenialCarriesTheHoldersTtlAndRaisesNoCounter) {
  server_->command({"SET", "fheld", "other", "PX", "3000"});
  const auto counter = redlock::detail::fencing_counter_key("fheld");
  auto r = eval(redlock::detail::fenced_acquire_script(), {"fheld", counter}, {"mine", "1000"});
  ASSERT_EQ(r.kind, reply::type::integer);
  EXPECT_GT(-r.integer - 1, 2000);
  EXPECT_EQ(server_->command({"EXISTS", counter}).integer, 0);
  server_->command({"DEL", "fheld"});
}

TEST_F(WakeScripts, AnnouncingReleasePublishesOnTheChannelTheClientComputes) {
  // Names with and without hash tags, and the odd ones the slot rule treats specially: the
  // Lua rule must give the channel release_channel() gives.
  for (const std::string key : {"plain", "{tag}:x", "a{b}c", "odd}name", "{}empty", "x{", "{t}"}) {
    const auto channel = redlock::detail::release_channel(key);
    auto sub = subscriber(channel);
    server_->command({"SET", key, "v1", "PX", "10000"});
    auto r = eval(redlock::detail::release_notify_script(), {key}, {"v1"});
    EXPECT_EQ(r.integer, 1) << key;
    EXPECT_EQ(server_->command({"EXISTS", key}).integer, 0) << key;
    // The payload is the SHA1 of the value (redis.sha1hex), never the value.
    EXPECT_TRUE(is_message(next(sub), channel, redlock::script("v1").sha1()))
        << key << " on " << channel;
  }
}

TEST_F(WakeScripts, AnnouncingReleaseOfSomeoneElsesKeyDeletesAndPublishesNothing) {
  const auto channel = redlock::detail::release_channel("theirs");
  auto sub = subscriber(channel);
  server_->command({"SET", "theirs", "other", "PX", "10000"});
  auto r = eval(redlock::detail::release_notify_script(), {"theirs", "absent"}, {"mine"});
  EXPECT_EQ(r.integer, 0);
  EXPECT_EQ(server_->command({"GET", "theirs"}).str, "other");
  const auto pong = next(sub);  // nothing was pushed before the PING's answer
  ASSERT_EQ(pong.kind, reply::type::array);
  ASSERT_FALSE(pong.elements.empty());
  EXPECT_EQ(pong.elements[0].str, "pong");
  server_->command({"DEL", "theirs"});
}

TEST_F(WakeScripts, PlainReleaseScriptIsNodeRedlocksAndPublishesNothing) {
  const auto channel = redlock::detail::release_channel("quiet");
  auto sub = subscriber(channel);
  server_->command({"SET", "quiet", "v", "PX", "10000"});
  EXPECT_EQ(eval(redlock::detail::release_script(), {"quiet"}, {"v"}).integer, 1);
  const auto pong = next(sub);
  ASSERT_EQ(pong.kind, reply::type::array);
  EXPECT_EQ(pong.elements[0].str, "pong");
}

}  // namespace

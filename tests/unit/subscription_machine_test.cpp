// detail::subscription_machine: the notifiers' pub/sub protocol with no I/O. The tests play
// the transport and the server: they announce connections, take what the machine writes,
// feed it RESP2 bytes (pushes and error replies as a server sends them) and check the events.
// The SSUBSCRIBE -> SUBSCRIBE fallback is covered here: no server without SSUBSCRIBE is at
// hand (only Redis 7), so its "ERR unknown command" reply is fed literally.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "internal/subscriber.hpp"

namespace {

using redlock::notification;
using redlock::detail::handshake;
using redlock::detail::subscription_machine;
using status = subscription_machine::read_result::status;
using kind = notification::kind;

std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}
std::string push(const std::string& k, const std::string& ch, const std::string& third) {
  return "*3\r\n" + bulk(k) + bulk(ch) + third;
}
std::string confirm(const std::string& k, const std::string& ch, int count) {
  return push(k, ch, ":" + std::to_string(count) + "\r\n");
}
std::string message(const std::string& k, const std::string& ch, const std::string& payload) {
  return push(k, ch, bulk(payload));
}
std::string cmd(const std::string& c, const std::string& ch) {
  return "*2\r\n" + bulk(c) + bulk(ch);
}

std::string take(subscription_machine& m) {
  std::string out;
  if (!m.take_write(out))
    return {};
  m.write_done();
  return out;
}

subscription_machine::read_result feed(subscription_machine& m, const std::string& bytes) {
  return m.on_read(bytes.data(), bytes.size());
}

// Connects `m` without a handshake.
void connect(subscription_machine& m) {
  m.begin_connection();
  m.transport_ready(handshake{});
}

TEST(SubscriptionMachine, SubscribesWithSsubscribeAndReportsTheConfirmation) {
  subscription_machine m;
  connect(m);
  EXPECT_TRUE(m.want("ch"));
  EXPECT_FALSE(m.want("ch"));  // once
  EXPECT_EQ(take(m), cmd("SSUBSCRIBE", "ch"));
  auto r = feed(m, confirm("ssubscribe", "ch", 1));
  ASSERT_EQ(r.st, status::ok);
  EXPECT_TRUE(r.answered);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].what, kind::subscribed);
  EXPECT_EQ(r.events[0].channel, "ch");
  EXPECT_EQ(m.subscribed(), std::vector<std::string>{"ch"});
}

TEST(SubscriptionMachine, DeliversShardedMessagesOfWantedChannelsOnly) {
  subscription_machine m;
  connect(m);
  m.want("ch");
  take(m);
  feed(m, confirm("ssubscribe", "ch", 1));
  auto r = feed(m, message("smessage", "ch", "released") + message("smessage", "other", "x"));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].what, kind::message);
  EXPECT_EQ(r.events[0].channel, "ch");
  EXPECT_EQ(r.events[0].payload, "released");
}

TEST(SubscriptionMachine, FallsBackToSubscribeWhenSsubscribeIsAnUnknownCommand) {
  subscription_machine m;
  connect(m);
  m.want("a");
  m.want("b");
  EXPECT_EQ(take(m), cmd("SSUBSCRIBE", "a") + cmd("SSUBSCRIBE", "b"));
  // Redis 6's answer, once per command.
  const std::string err =
      "-ERR unknown command 'SSUBSCRIBE', with args beginning with: 'a' \r\n"
      "-ERR unknown command 'SSUBSCRIBE', with args beginning with: 'b' \r\n";
  auto r = feed(m, err);
  EXPECT_EQ(r.st, status::ok);
  EXPECT_TRUE(r.events.empty());
  EXPECT_TRUE(r.refused.empty());
  EXPECT_FALSE(m.sharded());
  EXPECT_EQ(take(m), cmd("SUBSCRIBE", "a") + cmd("SUBSCRIBE", "b"));
  r = feed(m, confirm("subscribe", "a", 1) + confirm("subscribe", "b", 2) +
                  message("message", "a", "v"));
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_EQ(r.events[2].what, kind::message);
  EXPECT_EQ(r.events[2].payload, "v");
  // Unsubscribing uses the same family.
  m.unwant("a");
  EXPECT_EQ(take(m), cmd("UNSUBSCRIBE", "a"));
  // A new connection (the server may have been upgraded) tries SSUBSCRIBE again.
  m.connection_closed();
  m.begin_connection();
  m.transport_ready(handshake{});
  EXPECT_TRUE(m.sharded());
  EXPECT_EQ(take(m), cmd("SSUBSCRIBE", "b"));
}

TEST(SubscriptionMachine, OtherErrorsRefuseTheChannelWithoutFallingBack) {
  subscription_machine m;
  connect(m);
  m.want("k");
  take(m);
  auto r = feed(m, "-MOVED 1234 127.0.0.1:7001\r\n");
  EXPECT_TRUE(m.sharded());
  ASSERT_EQ(r.refused.size(), 1u);
  EXPECT_EQ(r.refused[0].first, "k");
  EXPECT_EQ(r.refused[0].second, "MOVED 1234 127.0.0.1:7001");
  EXPECT_EQ(take(m), "");  // not again on this connection by itself
  m.retry_refused();
  EXPECT_EQ(take(m), cmd("SSUBSCRIBE", "k"));
}

TEST(SubscriptionMachine, AServerSideSunsubscribeIsALostChannel) {
  subscription_machine m;
  connect(m);
  m.want("k");
  take(m);
  feed(m, confirm("ssubscribe", "k", 1));
  auto r = feed(m, confirm("sunsubscribe", "k", 0));  // the slot moved away
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].what, kind::lost);
  EXPECT_EQ(r.events[0].channel, "k");
  ASSERT_EQ(r.refused.size(), 1u);
  EXPECT_TRUE(m.wants("k"));
  EXPECT_TRUE(m.subscribed().empty());
}

TEST(SubscriptionMachine, UnsubscribeIsConfirmedAndLeavesTheMachineIdle) {
  subscription_machine m;
  connect(m);
  m.want("k");
  take(m);
  feed(m, confirm("ssubscribe", "k", 1));
  EXPECT_FALSE(m.idle());
  m.unwant("k");
  EXPECT_EQ(take(m), cmd("SUNSUBSCRIBE", "k"));
  EXPECT_FALSE(m.idle());  // until confirmed
  auto r = feed(m, confirm("sunsubscribe", "k", 0));
  EXPECT_TRUE(r.events.empty());
  EXPECT_TRUE(r.refused.empty());
  EXPECT_TRUE(m.idle());
}

TEST(SubscriptionMachine, QuickSubscribeUnsubscribeSendsOneCommandPerChannelInFlight) {
  subscription_machine m;
  connect(m);
  m.want("k");
  EXPECT_EQ(take(m), cmd("SSUBSCRIBE", "k"));
  for (int i = 0; i < 100; ++i) {
    m.unwant("k");
    m.want("k");
  }
  m.unwant("k");
  EXPECT_EQ(take(m), "");  // waits for the confirmation: nothing queues up
  auto r = feed(m, confirm("ssubscribe", "k", 1));
  EXPECT_TRUE(r.events.empty());  // no longer wanted: no `subscribed`
  EXPECT_EQ(take(m), cmd("SUNSUBSCRIBE", "k"));
}

TEST(SubscriptionMachine, HandshakeGoesFirstAndGatesTheSubscriptions) {
  subscription_machine m;
  m.want("k");
  m.begin_connection();
  m.transport_ready(handshake{"app", "secret", 2});
  EXPECT_EQ(take(m), "*3\r\n" + bulk("AUTH") + bulk("app") + bulk("secret") + "*2\r\n" +
                         bulk("SELECT") + bulk("2"));
  EXPECT_EQ(take(m), "");
  auto r = feed(m, "+OK\r\n");
  EXPECT_FALSE(r.answered);
  r = feed(m, "+OK\r\n");
  EXPECT_TRUE(r.answered);
  EXPECT_EQ(take(m), cmd("SSUBSCRIBE", "k"));
}

TEST(SubscriptionMachine, ARejectedHandshakeFailsTheConnection) {
  subscription_machine m;
  m.want("k");
  m.begin_connection();
  m.transport_ready(handshake{"", "wrong", 0});
  take(m);
  auto r = feed(m, "-WRONGPASS invalid username-password pair\r\n");
  EXPECT_EQ(r.st, status::handshake_failed);
  EXPECT_EQ(r.code, redlock::errc::auth_failed);
}

TEST(SubscriptionMachine, AClosedConnectionReportsWhetherSomethingWasSubscribed) {
  subscription_machine m;
  connect(m);
  EXPECT_FALSE(m.connection_closed());
  m.begin_connection();
  m.transport_ready(handshake{});
  m.want("k");
  take(m);
  feed(m, confirm("ssubscribe", "k", 1));
  EXPECT_TRUE(m.connection_closed());
  EXPECT_TRUE(m.wants("k"));
  m.begin_connection();
  m.transport_ready(handshake{});
  EXPECT_EQ(take(m), cmd("SSUBSCRIBE", "k"));  // resubscribed on the new connection
}

TEST(SubscriptionMachine, MalformedInputIsAProtocolError) {
  subscription_machine m;
  connect(m);
  auto r = feed(m, "?garbage\r\n");
  EXPECT_EQ(r.st, status::protocol_error);
}

TEST(SubscriptionMachine, UnknownCommandWordingsAreRecognised) {
  EXPECT_TRUE(redlock::detail::is_unknown_command("ERR unknown command 'SSUBSCRIBE'"));
  EXPECT_TRUE(redlock::detail::is_unknown_command("ERR unknown command `ssubscribe`, with args"));
  EXPECT_FALSE(redlock::detail::is_unknown_command("NOPERM this user has no permissions"));
  EXPECT_FALSE(redlock::detail::is_unknown_command("MOVED 1 127.0.0.1:1"));
}

}  // namespace

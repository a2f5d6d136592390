// core::health_machine: one node's state from its requests' outcomes, with literal time
// points as the clock.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>

#include "internal/health.hpp"
#include "redlock/error.hpp"
#include "redlock/observer.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::health_state;
using redlock::make_error_code;
using redlock::detail::core::classify;
using redlock::detail::core::health_machine;
using redlock::detail::core::request_outcome;

const health_machine::time_point t0 = health_machine::time_point() + std::chrono::hours(1);

// A fake clock: each step moves it on by 1 ms; requests are sent at the instant given.
struct fed {
  health_machine m;
  health_machine::time_point now = t0;
  std::optional<health_machine::transition> feed(
      request_outcome o, std::error_code ec = {},
      std::optional<health_machine::time_point> sent = {}) {
    now += 1ms;
    return m.on_outcome(o, ec, "why", sent.value_or(now), now);
  }
};

bool is(const std::optional<health_machine::transition>& t, health_state from, health_state to) {
  return t && t->from == from && t->to == to;
}

TEST(Health, ClassifiesAnswersErrorRepliesAndConnectionFailures) {
  EXPECT_EQ(classify({}), request_outcome::answered);
  // The server answered with an error: it is up.
  EXPECT_EQ(classify(make_error_code(errc::server_error)), request_outcome::answered);
  EXPECT_EQ(classify(make_error_code(errc::no_permission)), request_outcome::answered);
  // Connection-level failures, the handshake's AUTH failures among them (the connection is
  // unusable), and codes of other categories from custom nodes.
  for (auto e :
       {errc::connect_failed, errc::timeout, errc::connection_lost, errc::tls_failed,
        errc::protocol_error, errc::auth_failed, errc::auth_required, errc::auth_not_configured})
    EXPECT_EQ(classify(make_error_code(e)), request_outcome::failed) << static_cast<int>(e);
  EXPECT_EQ(classify(std::make_error_code(std::errc::connection_refused)), request_outcome::failed);
  EXPECT_EQ(classify(make_error_code(errc::node_lagging)), request_outcome::lagging);
  EXPECT_EQ(classify(make_error_code(errc::closed)), request_outcome::ignored);
}

TEST(Health, StartsUnknownAndTheFirstAnswerMakesItUp) {
  fed f;
  EXPECT_EQ(f.m.state(), health_state::unknown);
  EXPECT_EQ(f.m.since(), health_machine::time_point{});
  EXPECT_TRUE(is(f.feed(request_outcome::answered), health_state::unknown, health_state::up));
  EXPECT_EQ(f.m.state(), health_state::up);
  EXPECT_EQ(f.m.since(), f.now);
  EXPECT_FALSE(f.m.reason());
  EXPECT_FALSE(f.feed(request_outcome::answered));
}

TEST(Health, AThousandFailuresWhileDownReportDownOnce) {
  fed f;
  f.feed(request_outcome::answered);
  const auto down = f.feed(request_outcome::failed, make_error_code(errc::connect_failed));
  EXPECT_TRUE(is(down, health_state::up, health_state::down));
  EXPECT_EQ(f.m.reason(), errc::connect_failed);
  EXPECT_EQ(f.m.message(), "why");
  const auto since = f.m.since();
  int more = 0;
  for (int k = 0; k < 1000; ++k)
    more += f.feed(request_outcome::failed, make_error_code(errc::timeout)) ? 1 : 0;
  EXPECT_EQ(more, 0);
  EXPECT_EQ(f.m.since(), since);
  EXPECT_EQ(f.m.reason(), errc::connect_failed);  // the reason it went down
  EXPECT_TRUE(is(f.feed(request_outcome::answered), health_state::down, health_state::up));
  EXPECT_FALSE(f.m.reason());
  EXPECT_TRUE(f.m.message().empty());
}

TEST(Health, AnUnknownNodeThatFailsIsDown) {
  fed f;
  EXPECT_TRUE(is(f.feed(request_outcome::failed, make_error_code(errc::connect_failed)),
                 health_state::unknown, health_state::down));
}

TEST(Health, TheAnswerOfARequestSentBeforeItWentDownDoesNotBringItBack) {
  fed f;
  f.feed(request_outcome::answered);
  const auto before = f.now;  // sent now, answered late
  f.feed(request_outcome::failed, make_error_code(errc::connection_lost));
  EXPECT_FALSE(f.feed(request_outcome::answered, {}, before));
  EXPECT_EQ(f.m.state(), health_state::down);
  // The first answer to a request sent since: back.
  EXPECT_TRUE(is(f.feed(request_outcome::answered), health_state::down, health_state::up));
}

TEST(Health, ATimeoutOfARequestSentBeforeItCameBackDoesNotTakeItDownAgain) {
  fed f;
  f.feed(request_outcome::failed, make_error_code(errc::connect_failed));
  const auto early = f.now;  // a request sent while it was down
  f.feed(request_outcome::answered);
  EXPECT_FALSE(f.feed(request_outcome::failed, make_error_code(errc::timeout), early));
  EXPECT_EQ(f.m.state(), health_state::up);
}

TEST(Health, LaggingComesFromUpAndEndsWithTheNextSentRequest) {
  fed f;
  f.feed(request_outcome::answered);
  const auto old = f.now;  // in the backlog that made it lag
  EXPECT_TRUE(is(f.feed(request_outcome::lagging, make_error_code(errc::node_lagging)),
                 health_state::up, health_state::lagging));
  EXPECT_EQ(f.m.reason(), errc::node_lagging);
  EXPECT_TRUE(f.m.wants_probe());
  // More refusals, and the backlog's old requests answering, change nothing: no flapping.
  for (int k = 0; k < 100; ++k) {
    EXPECT_FALSE(f.feed(request_outcome::lagging, make_error_code(errc::node_lagging)));
    EXPECT_FALSE(f.feed(request_outcome::answered, {}, old));
  }
  EXPECT_TRUE(is(f.feed(request_outcome::answered), health_state::lagging, health_state::up));
  EXPECT_FALSE(f.m.wants_probe());
}

TEST(Health, ALaggingNodeWhoseRequestsTimeOutIsDown) {
  fed f;
  f.feed(request_outcome::answered);
  f.feed(request_outcome::lagging, make_error_code(errc::node_lagging));
  EXPECT_TRUE(is(f.feed(request_outcome::failed, make_error_code(errc::timeout)),
                 health_state::lagging, health_state::down));
}

TEST(Health, RefusalsWhileDownKeepItDown) {
  fed f;
  f.feed(request_outcome::failed, make_error_code(errc::timeout));
  EXPECT_FALSE(f.m.may_change(request_outcome::lagging));
  EXPECT_FALSE(f.feed(request_outcome::lagging, make_error_code(errc::node_lagging)));
  EXPECT_EQ(f.m.state(), health_state::down);
  EXPECT_TRUE(f.m.wants_probe());
}

TEST(Health, OurOwnCloseSaysNothing) {
  fed f;
  f.feed(request_outcome::answered);
  EXPECT_FALSE(f.m.may_change(request_outcome::ignored));
  EXPECT_FALSE(f.feed(request_outcome::ignored, make_error_code(errc::closed)));
  EXPECT_EQ(f.m.state(), health_state::up);
}

TEST(Health, MayChangeIsFalseExactlyWhenTheStateStays) {
  fed f;
  EXPECT_TRUE(f.m.may_change(request_outcome::answered));
  EXPECT_TRUE(f.m.may_change(request_outcome::failed));
  EXPECT_TRUE(f.m.may_change(request_outcome::lagging));
  f.feed(request_outcome::answered);
  EXPECT_FALSE(f.m.may_change(request_outcome::answered));
  EXPECT_TRUE(f.m.may_change(request_outcome::failed));
}

TEST(Health, NamesOfStatesAndOperations) {
  EXPECT_STREQ(redlock::to_string(health_state::unknown), "unknown");
  EXPECT_STREQ(redlock::to_string(health_state::up), "up");
  EXPECT_STREQ(redlock::to_string(health_state::lagging), "lagging");
  EXPECT_STREQ(redlock::to_string(health_state::down), "down");
  EXPECT_STREQ(redlock::to_string(redlock::operation::lock), "lock");
  EXPECT_STREQ(redlock::to_string(redlock::operation::try_lock), "try_lock");
  EXPECT_STREQ(redlock::to_string(redlock::operation::extend), "extend");
  EXPECT_STREQ(redlock::to_string(redlock::operation::unlock), "unlock");
}

}  // namespace

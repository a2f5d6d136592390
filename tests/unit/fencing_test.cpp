// Fencing tokens: the two-phase decision in the core (literal time points and votes), the
// counter keys, and the lock manager over the testing kit's fake servers (which run the
// semantics of the fenced scripts).
#include <gtest/gtest.h>

#include <asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "internal/core.hpp"
#include "internal/scripts.hpp"
#include "redlock/cluster_node.hpp"
#include "redlock/error.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/testing.hpp"
#include "support/io_thread.hpp"
#include "support/options.hpp"

namespace {

using namespace redlock::detail::core;
using namespace std::chrono_literals;
using redlock::errc;
using redlock::vote;
using atype = action::type;
namespace rt = redlock::testing;

const time_point t0{std::chrono::hours(1000)};

std::uint64_t zero_random() {
  return 0;
}

op_config fenced_config(std::size_t n, int retry_count = 0) {
  op_config c;
  c.kind = op_kind::acquire;
  c.nodes = n;
  c.ttl = 10s;
  c.drift_factor = 0.01;
  c.retry = {retry_count, 200ms, 0ms};
  c.node_timeout = 200ms;
  c.fenced = true;
  return c;
}

std::vector<action> drain(quorum_machine& m, action a) {
  std::vector<action> out;
  while (a.kind != atype::idle) {
    out.push_back(a);
    a = m.resume(event::next());
  }
  return out;
}

event grant(std::size_t node, std::uint32_t attempt, std::uint64_t counter, time_point now) {
  return event::reply(node, attempt, answer::ok, {}, now, counter);
}

// --- the decision core ------------------------------------------------------------------

TEST(FencedAcquireMachine, AQuorumOfGrantsConfirmsTheLargestCounterOnExactlyTheGrantingNodes) {
  quorum_machine m(fenced_config(5), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(grant(0, 1, 7, t0 + 1ms)));
  drain(m, m.resume(event::reply(1, 1, answer::foreign, {}, t0 + 1ms)));
  drain(m, m.resume(grant(2, 1, 9, t0 + 2ms)));
  auto as = drain(m, m.resume(grant(4, 1, 3, t0 + 3ms)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].kind, atype::confirm);
  EXPECT_EQ(as[0].delay, duration(200ms));
  EXPECT_TRUE(m.confirming());
  EXPECT_EQ(m.token(), 9u);
  const auto& n = m.nodes();
  EXPECT_TRUE(n[0].in_round);
  EXPECT_FALSE(n[1].in_round);
  EXPECT_TRUE(n[2].in_round);
  EXPECT_FALSE(n[3].in_round);  // not answered by the quorum: not asked to confirm
  EXPECT_TRUE(n[4].in_round);
  EXPECT_EQ(m.attempt_id(), 2u);  // phase-1 answers still coming are stale from now on

  // A late phase-1 grant (node 3) changes nothing.
  EXPECT_TRUE(drain(m, m.resume(grant(3, 1, 50, t0 + 4ms))).empty());
  EXPECT_EQ(m.token(), 9u);

  drain(m, m.resume(event::reply(0, 2, answer::ok, {}, t0 + 5ms)));
  drain(m, m.resume(event::reply(2, 2, answer::ok, {}, t0 + 5ms)));
  as = drain(m, m.resume(event::reply(4, 2, answer::ok, {}, t0 + 6ms)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].kind, atype::complete);
  EXPECT_FALSE(as[0].ec);
  EXPECT_EQ(m.token(), 9u);
  // Validity counts from the phase-1 start: the confirm's round trip costs validity.
  EXPECT_EQ(m.deadline(), t0 + 10s - 102ms);
  EXPECT_EQ(m.attempts(), 1);
}

TEST(FencedAcquireMachine, AQuorumOfConfirmsIsNeededWhenOnlySomeNodesGranted) {
  // 3 nodes, 2 granted: both must confirm. One stale answer makes the quorum impossible.
  quorum_machine m(fenced_config(3), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(grant(0, 1, 4, t0 + 1ms)));
  auto as = drain(m, m.resume(grant(1, 1, 5, t0 + 1ms)));
  ASSERT_EQ(as.size(), 1u);
  ASSERT_EQ(as[0].kind, atype::confirm);
  EXPECT_FALSE(m.nodes()[2].in_round);
  drain(m, m.resume(event::reply(0, 2, answer::ok, {}, t0 + 2ms)));
  as = drain(m, m.resume(event::reply(1, 2, answer::stale, {}, t0 + 2ms)));
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(as[0].kind, atype::release_all);  // a failed phase 2 releases like any attempt
  EXPECT_EQ(as[1].kind, atype::complete);
  EXPECT_EQ(as[1].ec, errc::resource_locked);
  EXPECT_EQ(m.nodes()[1].outcome, vote::denied);
  EXPECT_FALSE(m.nodes()[1].message.empty());
}

TEST(FencedAcquireMachine, AFailedConfirmIsRetriedWithinTheRetryBudgetWithAFreshToken) {
  quorum_machine m(fenced_config(3, 1), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(grant(0, 1, 1, t0 + 1ms)));
  drain(m, m.resume(grant(1, 1, 1, t0 + 1ms)));
  // Node 2 was not asked to confirm, so one "not ours" already makes a quorum impossible.
  auto as = drain(m, m.resume(event::reply(0, 2, answer::foreign, {}, t0 + 2ms)));
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(as[0].kind, atype::release_all);
  EXPECT_EQ(as[1].kind, atype::wait);
  as = drain(m, m.resume(event::retry_timer(t0 + 300ms)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].kind, atype::send);
  EXPECT_FALSE(m.confirming());
  EXPECT_EQ(m.token(), 0u);
  const auto a3 = m.attempt_id();
  drain(m, m.resume(grant(1, a3, 3, t0 + 301ms)));
  as = drain(m, m.resume(grant(2, a3, 2, t0 + 301ms)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].kind, atype::confirm);
  EXPECT_EQ(m.token(), 3u);
  drain(m, m.resume(event::reply(1, a3 + 1, answer::ok, {}, t0 + 302ms)));
  as = drain(m, m.resume(event::reply(2, a3 + 1, answer::ok, {}, t0 + 302ms)));
  ASSERT_EQ(as.back().kind, atype::complete);
  EXPECT_FALSE(as.back().ec);
  EXPECT_EQ(m.attempts(), 2);
  EXPECT_EQ(m.deadline(), t0 + 300ms + 10s - 102ms);
}

TEST(FencedAcquireMachine, ConfirmsAfterTheValidityRanOutAreAFailure) {
  auto c = fenced_config(3);
  c.ttl = 100ms;  // drift 3 ms: validity ends at t0 + 97 ms
  quorum_machine m(c, &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(grant(0, 1, 1, t0 + 10ms)));
  drain(m, m.resume(grant(1, 1, 1, t0 + 10ms)));
  drain(m, m.resume(event::reply(0, 2, answer::ok, {}, t0 + 96ms)));
  auto as = drain(m, m.resume(event::reply(1, 2, answer::ok, {}, t0 + 97ms)));
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(as[0].kind, atype::release_all);
  EXPECT_EQ(as[1].ec, errc::validity_exhausted);
}

TEST(FencedAcquireMachine, ANoQuorumOfGrantsNeverConfirms) {
  quorum_machine m(fenced_config(3), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(grant(0, 1, 1, t0 + 1ms)));
  auto as = drain(m, m.resume(event::attempt_timeout(t0 + 200ms)));
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(as[0].kind, atype::release_all);
  EXPECT_EQ(as[1].ec, errc::quorum_unreachable);
  EXPECT_FALSE(m.confirming());
}

TEST(FencedAcquireMachine, ConfirmsThatTimeOutFailTheAttempt) {
  quorum_machine m(fenced_config(3), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(grant(0, 1, 1, t0 + 1ms)));
  drain(m, m.resume(grant(1, 1, 1, t0 + 1ms)));
  drain(m, m.resume(event::reply(0, 2, answer::ok, {}, t0 + 2ms)));
  auto as = drain(m, m.resume(event::attempt_timeout(t0 + 201ms)));
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(as[0].kind, atype::release_all);
  EXPECT_EQ(as[1].ec, errc::quorum_unreachable);
  EXPECT_EQ(m.nodes()[1].outcome, vote::timeout);
}

TEST(FencedAcquireMachine, CancelWhileConfirmingReleases) {
  quorum_machine m(fenced_config(3), &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(grant(0, 1, 1, t0 + 1ms)));
  drain(m, m.resume(grant(1, 1, 1, t0 + 1ms)));
  auto as = drain(m, m.resume(event::cancel(redlock::make_error_code(errc::cancelled), t0 + 2ms)));
  ASSERT_EQ(as.size(), 2u);
  EXPECT_EQ(as[0].kind, atype::release_all);
  EXPECT_EQ(as[1].ec, errc::cancelled);
}

TEST(FencedAcquireMachine, WithoutFencingAQuorumCompletesAtOnce) {
  auto c = fenced_config(3);
  c.fenced = false;
  quorum_machine m(c, &zero_random);
  drain(m, m.resume(event::start(t0)));
  drain(m, m.resume(event::reply(0, 1, answer::ok, {}, t0 + 1ms)));
  auto as = drain(m, m.resume(event::reply(1, 1, answer::ok, {}, t0 + 1ms)));
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].kind, atype::complete);
  EXPECT_EQ(m.token(), 0u);
}

TEST(FencedInterpret, Phase1GrantsCarryTheCounterAndConfirmTellsForeignFromStale) {
  std::error_code ec;
  std::uint64_t counter = 99;
  redlock::reply r;
  r.kind = redlock::reply::type::integer;
  r.integer = 12;
  EXPECT_EQ(interpret(op_kind::acquire, true, {}, r, 1, ec, counter), answer::ok);
  EXPECT_EQ(counter, 12u);
  r.integer = 0;
  EXPECT_EQ(interpret(op_kind::acquire, true, {}, r, 1, ec, counter), answer::foreign);
  EXPECT_EQ(counter, 0u);
  r.integer = -3;
  EXPECT_EQ(interpret(op_kind::acquire, true, {}, r, 1, ec, counter), answer::error);
  EXPECT_EQ(ec, errc::protocol_error);
  r.integer = 1;
  EXPECT_EQ(interpret(op_kind::confirm, true, {}, r, 1, ec, counter), answer::ok);
  r.integer = 0;
  EXPECT_EQ(interpret(op_kind::confirm, true, {}, r, 1, ec, counter), answer::foreign);
  r.integer = -1;
  EXPECT_EQ(interpret(op_kind::confirm, true, {}, r, 1, ec, counter), answer::stale);
  EXPECT_EQ(to_vote(answer::stale), vote::denied);
  r.integer = 2;
  EXPECT_EQ(interpret(op_kind::confirm, true, {}, r, 1, ec, counter), answer::error);
  // Unfenced, an acquire reply is the key count as before.
  r.integer = 12;
  EXPECT_EQ(interpret(op_kind::acquire, false, {}, r, 1, ec, counter), answer::error);
  r.integer = 1;
  EXPECT_EQ(interpret(op_kind::acquire, false, {}, r, 1, ec, counter), answer::ok);
  EXPECT_EQ(script_of(op_kind::acquire, purpose::confirm), op_kind::confirm);
  EXPECT_FALSE(may_store(op_kind::acquire, purpose::confirm));
  EXPECT_FALSE(removes_only(op_kind::acquire, purpose::confirm));
}

// --- counter keys -----------------------------------------------------------------------

TEST(FencingCounterKey, LivesInTheLockKeysClusterSlotWheneverTheNameAllows) {
  using redlock::detail::fencing_counter_key;
  for (const std::string r : {"orders", "a{b", "{user1}:cart", "x{y}z", "{{}x}", "é"}) {
    const auto c = fencing_counter_key(r);
    EXPECT_NE(c, r);
    EXPECT_EQ(redlock::cluster_key_slot(c), redlock::cluster_key_slot(r)) << r << " -> " << c;
  }
  EXPECT_EQ(fencing_counter_key("orders"), "{orders}:redlock-fencing");
  EXPECT_EQ(fencing_counter_key("{user1}:cart"), "{user1}:cart:redlock-fencing");
  // Names with a '}' but no hash tag cannot be wrapped; they keep a plain suffix (and need a
  // hash tag of their own on a Cluster node).
  EXPECT_EQ(fencing_counter_key("a}b"), "a}b:redlock-fencing");
}

// --- the lock manager over fake servers -------------------------------------------------

class FencedManager : public ::testing::Test {
 protected:
  asio::io_context io;
  rt::fake_deployment d{io.get_executor(), 3};

  static redlock::manager_options options(bool fencing = true) {
    auto o = redlock::test::fast_options();
    o.retry_count = 0;
    o.request_timeout = 100ms;
    o.fencing = fencing;
    return o;
  }

  std::pair<std::error_code, redlock::lock> lock(redlock::lock_manager& m,
                                                 std::vector<std::string> resources,
                                                 redlock::call_options opts = {}) {
    auto out = std::make_shared<std::pair<std::error_code, redlock::lock>>();
    bool done = false;
    m.async_lock(std::move(resources), 10s, opts,
                 [out, &done](std::error_code ec, redlock::lock l) {
                   *out = {ec, std::move(l)};
                   done = true;
                 });
    EXPECT_TRUE(redlock::test::run_until(
        io, [&] { return done; }, 10s));
    return *out;
  }

  template <class F>
  void settle(redlock::lock_manager& m, F&& f) {
    bool done = false;
    f(done);
    EXPECT_TRUE(redlock::test::run_until(
        io, [&] { return done; }, 10s));
    (void)m;
  }

  void unlock(redlock::lock_manager& m, const redlock::lock& l) {
    settle(m, [&](bool& done) {
      m.async_unlock(l, [&done](std::error_code ec, redlock::unlock_result) {
        EXPECT_FALSE(ec) << ec.message();
        done = true;
      });
    });
  }

  void quit(redlock::lock_manager& m) {
    settle(m, [&](bool& done) { m.async_quit([&done](std::error_code) { done = true; }); });
  }
};

TEST_F(FencedManager, TokensGrowWithEveryAcquisitionAndExtensionsKeepThem) {
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  std::uint64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    auto [ec, l] = lock(m, {"res"});
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_GT(l.fencing_token(), last);
    last = l.fencing_token();
    redlock::lock extended;
    settle(m, [&](bool& done) {
      m.async_extend(l, 10s, [&](std::error_code e2, redlock::lock l2) {
        EXPECT_FALSE(e2) << e2.message();
        extended = std::move(l2);
        done = true;
      });
    });
    EXPECT_EQ(extended.fencing_token(), last);
    unlock(m, extended);
  }
  EXPECT_EQ(last, 5u);
  for (std::size_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(d[i].value("{res}:redlock-fencing"), "5");  // durable: survives the release
    EXPECT_FALSE(d[i].value("res"));
    EXPECT_FALSE(d[i].ttl("{res}:redlock-fencing"));  // never expires
  }
  quit(m);
}

TEST_F(FencedManager, WithoutFencingTheWireIsUnchanged) {
  redlock::lock_manager m(io.get_executor(), d.nodes(), options(false));
  auto [ec, l] = lock(m, {"res"});
  ASSERT_FALSE(ec);
  EXPECT_EQ(l.fencing_token(), 0u);
  unlock(m, l);
  for (std::size_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(d[i].count(rt::script_kind::fenced_acquire), 0u);
    EXPECT_EQ(d[i].count(rt::script_kind::confirm), 0u);
    EXPECT_EQ(d[i].count(rt::script_kind::acquire), 1u);
    EXPECT_FALSE(d[i].value("{res}:redlock-fencing"));
  }
  // Per call, fencing can be asked for on a manager without it.
  redlock::call_options fenced;
  fenced.fencing = true;
  auto [ec2, l2] = lock(m, {"res"}, fenced);
  ASSERT_FALSE(ec2);
  EXPECT_EQ(l2.fencing_token(), 1u);
  unlock(m, l2);
  quit(m);
}

TEST_F(FencedManager, TheTokenIsTheLargestCounterOfTheGrantsAndEveryCounterIsRaisedToIt) {
  d[0].set_key("{res}:redlock-fencing", "41");
  d[1].set_key("{res}:redlock-fencing", "7");
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  auto [ec, l] = lock(m, {"res"});
  ASSERT_FALSE(ec) << ec.message();
  // The fake servers answer in order, so servers 0 and 1 make the quorum: t = max(42, 8).
  EXPECT_EQ(l.fencing_token(), 42u);
  EXPECT_EQ(l.attempts(), 1);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(d[i].count(rt::script_kind::confirm), 1u) << i;
    EXPECT_EQ(d[i].value("{res}:redlock-fencing"), "42") << i;
  }
  // Server 2's grant was not counted: it is not asked to confirm, and keeps its own count.
  EXPECT_EQ(d[2].count(rt::script_kind::confirm), 0u);
  EXPECT_EQ(d[2].value("{res}:redlock-fencing"), "1");
  unlock(m, l);
  quit(m);
}

TEST_F(FencedManager, AMultiResourceLockHasOneTokenAndRaisesEveryResourcesCounter) {
  d[0].set_key("{b}:redlock-fencing", "9");
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  auto [ec, l] = lock(m, {"a", "b"});
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(l.fencing_token(), 10u);
  for (std::size_t i = 0; i < 2; ++i) {  // the two whose grants were counted
    EXPECT_EQ(d[i].value("{a}:redlock-fencing"), "10") << i;
    EXPECT_EQ(d[i].value("{b}:redlock-fencing"), "10") << i;
  }
  unlock(m, l);
  auto [ec2, l2] = lock(m, {"a"});
  ASSERT_FALSE(ec2);
  EXPECT_EQ(l2.fencing_token(), 11u);
  unlock(m, l2);
  quit(m);
}

TEST_F(FencedManager, AConfirmThatFailsOnAQuorumReleasesAndIsRetried) {
  // Two servers answer the first confirm "stale" (a later phase 1 got there first): the
  // attempt fails, releases everywhere, and the retry gets a larger token.
  d[0].push(rt::script_kind::confirm, rt::step::integer(-1));
  d[1].push(rt::script_kind::confirm, rt::step::integer(-1));
  auto o = options();
  o.retry_count = 2;
  o.retry_delay = 1ms;
  o.retry_jitter = 0ms;
  redlock::lock_manager m(io.get_executor(), d.nodes(), o);
  auto [ec, l] = lock(m, {"res"});
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(l.attempts(), 2);
  EXPECT_EQ(l.fencing_token(), 2u);
  for (std::size_t i = 0; i < d.size(); ++i)
    EXPECT_GE(d[i].count(rt::script_kind::release), 1u) << i;
  unlock(m, l);
  quit(m);
}

TEST_F(FencedManager, AConfirmThatFailsWithoutRetriesLeavesNothingBehind) {
  d[0].push(rt::script_kind::confirm, rt::step::integer(0));
  d[1].push(rt::script_kind::confirm, rt::step::integer(0));
  d[2].push(rt::script_kind::confirm, rt::step::integer(0));
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  auto [ec, l] = lock(m, {"res"});
  EXPECT_EQ(ec, errc::resource_locked);
  EXPECT_FALSE(l.acquired());
  EXPECT_EQ(l.fencing_token(), 0u);
  ASSERT_TRUE(redlock::test::run_until(
      io,
      [&] {
        return d.count_holding("res", "") == 0 && d[0].store().count("res") == 0 &&
               d[1].store().count("res") == 0 && d[2].store().count("res") == 0;
      },
      5s));
  quit(m);
}

TEST_F(FencedManager, OneServerDownStillGetsATokenFromTheOtherTwo) {
  d[2].go_down();
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  auto [ec, l] = lock(m, {"res"});
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(l.fencing_token(), 1u);
  EXPECT_EQ(d[2].count(rt::script_kind::confirm), 0u);  // it granted nothing: not asked
  unlock(m, l);
  quit(m);
}

}  // namespace

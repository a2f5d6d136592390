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
#include "redlock/hold.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/testing.hpp"
#include "support/io_thread.hpp"
#include "support/options.hpp"
#include "unit/core_steps.hpp"

namespace {

using namespace redlock::detail::core;
using namespace std::chrono_literals;
using redlock::errc;
using redlock::vote;
using atype = action::type;
namespace rt = redlock::testing;

using namespace core_steps;

op_config fenced_config(std::size_t n, int retry_count = 0) {
  op_config c = acquire_config(n, retry_count, 0ms);
  c.fenced = true;
  return c;
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
  r.integer = -3;  // denied; the holder's keys live 2 ms more
  milliseconds holder{};
  EXPECT_EQ(interpret(op_kind::acquire, true, {}, r, 1, ec, counter, &holder), answer::foreign);
  EXPECT_EQ(holder, 2ms);
  r.kind = redlock::reply::type::string;
  EXPECT_EQ(interpret(op_kind::acquire, true, {}, r, 1, ec, counter), answer::error);
  EXPECT_EQ(ec, errc::protocol_error);
  r.kind = redlock::reply::type::integer;
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

// --- counterexample replays -------------------------------------------------------------
//
// The counterexamples of the design's model (weaker phase-2 rules, lost counters), replayed
// step by step against the library's decision code: each client is a quorum_machine, each server
// the testing kit's fake_server (the semantics of the Lua scripts). Requests are run on the servers
// in the trace's order; one that is "late" is held and run later; one that is lost is never run. A
// paused client holds the machine's confirm action before carrying it out.

class Replay : public ::testing::Test {
 public:  // the replays are free functions, run on the fixture
  struct client {
    explicit client(std::string v) : value(std::move(v)) {}
    std::string value;
    quorum_machine m{fenced_config(3, 1), &zero_random};
    std::vector<action> last;
    bool completed() const { return !last.empty() && last.back().kind == atype::complete; }
    bool succeeded() const { return completed() && !last.back().ec; }
  };

  std::shared_ptr<rt::virtual_clock> clock = std::make_shared<rt::virtual_clock>();
  std::vector<std::unique_ptr<rt::fake_server>> servers;
  /// The weakened phase-2 rule (a test double): confirm checks only that the key is ours.
  bool key_only = false;

  Replay() {
    for (int i = 0; i < 3; ++i)
      servers.push_back(std::make_unique<rt::fake_server>(clock));
  }

  static rt::call request(rt::script_kind k, const client& c, std::string arg2 = "10000") {
    rt::call r;
    r.kind = k;
    r.keys = {"r", redlock::detail::fencing_counter_key("r")};
    r.args = {c.value, std::move(arg2)};
    return r;
  }
  static rt::call phase1(const client& c) { return request(rt::script_kind::fenced_acquire, c); }
  static rt::call confirm(const client& c) {
    return request(rt::script_kind::confirm, c, std::to_string(c.m.token()));
  }
  static rt::call release(const client& c) {
    rt::call r = request(rt::script_kind::release, c);
    r.keys.resize(1);
    return r;
  }

  redlock::reply run(std::size_t i, const rt::call& c) {
    auto& s = *servers[i];
    if (key_only && c.kind == rt::script_kind::confirm) {
      redlock::reply r;
      r.kind = redlock::reply::type::integer;
      if (s.value(c.keys[0]) == c.args[0]) {
        const auto now = std::stoull(s.value(c.keys[1]).value_or("0"));
        s.set_key(c.keys[1], std::to_string(std::max<std::uint64_t>(now, std::stoull(c.args[1]))));
        r.integer = 1;
      }
      return r;
    }
    return s.handle(c).r;
  }

  // Runs `c` on server i and feeds the answer to the client's machine as an answer to
  // `attempt` (a late request's answer carries its old attempt id, which the machine ignores).
  void exchange(client& cl, std::size_t i, const rt::call& c, std::uint32_t attempt,
                time_point now) {
    const auto r = run(i, c);
    if (c.kind == rt::script_kind::release)
      return;  // the driver does not feed releases to the machine
    std::error_code ec;
    std::uint64_t counter = 0;
    const auto kind = c.kind == rt::script_kind::confirm ? op_kind::confirm : op_kind::acquire;
    const auto a = interpret(kind, true, {}, r, 1, ec, counter);
    cl.last = drain(cl.m, cl.m.resume(event::reply(i, attempt, a, ec, now, counter)));
  }
  std::uint64_t counter(std::size_t i) {
    return std::stoull(servers[i]->value(redlock::detail::fencing_counter_key("r")).value_or("0"));
  }
};

// Trace "late phase 1": A's first phase 1 is delayed on servers 1 and 2;
// A times out and retries with the same value, gets grants of counter 1 from servers 1 and 2,
// and pauses before confirming. A's keys expire; B acquires on servers 0 and 1 (token 2) and
// releases. A's delayed first phase 1 lands on 1 and 2 and re-creates A's key there (counters
// 3); A wakes and confirms t = 1 there. B completed before A began phase 2, so A must not get
// a token <= 2. The library's rule refuses (the counters moved past 1); the key-only rule
// hands A the token 1.
void replay_late_phase1(Replay& rp, Replay::client& a, Replay::client& b) {
  a.last = drain(a.m, a.m.resume(event::start(t0)));
  ASSERT_EQ(a.last.at(0).kind, atype::send);
  const auto late1 = Replay::phase1(a);  // A's attempt-1 requests to 1 and 2: delayed
  const auto late2 = Replay::phase1(a);
  a.last = drain(a.m, a.m.resume(event::attempt_timeout(t0 + 200ms)));  // to 0: lost
  ASSERT_EQ(a.last.at(0).kind, atype::release_all);                     // lost as well
  a.last = drain(a.m, a.m.resume(event::retry_timer(t0 + 400ms)));
  ASSERT_EQ(a.last.at(0).kind, atype::send);
  const auto a2 = a.m.attempt_id();
  rp.exchange(a, 1, Replay::phase1(a), a2, t0 + 401ms);
  rp.exchange(a, 2, Replay::phase1(a), a2, t0 + 401ms);
  ASSERT_EQ(a.last.at(0).kind, atype::confirm);  // A pauses here, holding its confirms
  ASSERT_EQ(a.m.token(), 1u);
  const auto a_confirm = a.m.attempt_id();

  // A's keys expire on 1 and 2 while A's own validity still runs: the servers' clock runs
  // ahead (the model's "keys may expire at any moment").
  rp.clock->advance(10s);

  const auto tb = t0 + 500ms;
  b.last = drain(b.m, b.m.resume(event::start(tb)));
  rp.exchange(b, 0, Replay::phase1(b), 1, tb + 1ms);
  rp.exchange(b, 1, Replay::phase1(b), 1, tb + 1ms);
  ASSERT_EQ(b.last.at(0).kind, atype::confirm);
  rp.exchange(b, 0, Replay::confirm(b), 2, tb + 2ms);
  rp.exchange(b, 1, Replay::confirm(b), 2, tb + 2ms);
  ASSERT_TRUE(b.succeeded());
  ASSERT_EQ(b.m.token(), 2u);
  for (std::size_t i = 0; i < 2; ++i)
    rp.exchange(b, i, Replay::release(b), 0, tb + 3ms);

  rp.run(1, late1);  // A's delayed first phase 1 lands
  rp.run(2, late2);
  ASSERT_EQ(rp.counter(1), 3u);
  ASSERT_EQ(rp.counter(2), 2u);  // server 2: A's grant (1), then this one; B never went there

  // A wakes and begins phase 2, after B completed.
  rp.exchange(a, 1, Replay::confirm(a), a_confirm, tb + 10ms);
  rp.exchange(a, 2, Replay::confirm(a), a_confirm, tb + 10ms);
}

TEST_F(Replay, LatePhase1TheLibrarysRuleRefusesTheStaleCandidate) {
  client a("a"), b("b");
  replay_late_phase1(*this, a, b);
  EXPECT_FALSE(a.succeeded());
  // If A ever completes (it may retry), its token is larger than B's.
  if (a.succeeded()) {
    EXPECT_GT(a.m.token(), b.m.token());
  }
  EXPECT_EQ(a.m.nodes()[1].ans, answer::stale);
}

TEST_F(Replay, LatePhase1TheKeyOnlyRuleHandsOutAnOlderToken) {
  key_only = true;
  client a("a"), b("b");
  replay_late_phase1(*this, a, b);
  ASSERT_TRUE(a.succeeded());  // the violation the model finds
  EXPECT_LT(a.m.token(), b.m.token());
}

// Trace "lost counter": A acquires on servers 0 and 1 (token 1) and releases; server 0
// restarts without persistence (keys and counter gone); B acquires on 0 and 2: token 1 again.
// The documented assumption (durable counters), shown: with it, B's token is 2.
std::pair<std::uint64_t, std::uint64_t> replay_lost_counter(Replay& rp, bool restart) {
  Replay::client a("a"), b("b");
  a.last = drain(a.m, a.m.resume(event::start(t0)));
  rp.exchange(a, 0, Replay::phase1(a), 1, t0 + 1ms);
  rp.exchange(a, 1, Replay::phase1(a), 1, t0 + 1ms);
  rp.exchange(a, 0, Replay::confirm(a), 2, t0 + 2ms);
  rp.exchange(a, 1, Replay::confirm(a), 2, t0 + 2ms);
  EXPECT_TRUE(a.succeeded());
  for (std::size_t i = 0; i < 2; ++i)
    rp.exchange(a, i, Replay::release(a), 0, t0 + 3ms);
  if (restart)
    rp.servers[0]->lose_keys();
  b.last = drain(b.m, b.m.resume(event::start(t0 + 10ms)));
  rp.exchange(b, 0, Replay::phase1(b), 1, t0 + 11ms);
  rp.exchange(b, 2, Replay::phase1(b), 1, t0 + 11ms);
  rp.exchange(b, 0, Replay::confirm(b), 2, t0 + 12ms);
  rp.exchange(b, 2, Replay::confirm(b), 2, t0 + 12ms);
  EXPECT_TRUE(b.succeeded());
  return {a.m.token(), b.m.token()};
}

TEST_F(Replay, LostCounterRepeatsAToken) {
  const auto [a, b] = replay_lost_counter(*this, true);
  EXPECT_EQ(a, b);  // the violation: durability is an assumption, not a guarantee
}

TEST_F(Replay, DurableCountersGiveTheSameTraceALargerToken) {
  const auto [a, b] = replay_lost_counter(*this, false);
  EXPECT_GT(b, a);
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

TEST_F(FencedManager, AKeeperExtendsAFencedLockAndKeepsItsToken) {
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  auto [ec, l] = lock(m, {"held"});
  ASSERT_FALSE(ec);
  ASSERT_GT(l.fencing_token(), 0u);
  // A short TTL and a high threshold: the keeper extends within tens of milliseconds.
  std::error_code ec2;
  redlock::lock short_lock;
  bool done = false;
  m.async_lock(std::vector<std::string>{"held-short"}, 300ms,
               [&](std::error_code e, redlock::lock l2) {
                 ec2 = e;
                 short_lock = std::move(l2);
                 done = true;
               });
  ASSERT_TRUE(redlock::test::run_until(
      io, [&] { return done; }, 5s));
  ASSERT_FALSE(ec2);
  redlock::hold_options ho;
  ho.extend_threshold = 0.9;
  redlock::lock_keeper k(short_lock, ho);
  ASSERT_TRUE(redlock::test::run_until(
      io, [&] { return k.context().extensions() >= 2; }, 5s));
  EXPECT_EQ(k.current_lock().fencing_token(), short_lock.fencing_token());
  EXPECT_GT(k.current_lock().validity_deadline(), short_lock.validity_deadline());
  k.detach();
  unlock(m, l);
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

// Waiting: the holders' TTL in denials, wake-up on announced releases, the wait budget.
// The decision core step by step on literal times, the wake table, then the manager against
// fake deployments (redlock::testing), whose releases announce themselves to notifiers.
#include <gtest/gtest.h>

#include <asio/io_context.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "internal/core.hpp"
#include "internal/scripts.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/testing.hpp"
#include "support/io_thread.hpp"
#include "support/options.hpp"
#include "unit/core_steps.hpp"

namespace {

using namespace core_steps;
using redlock::errc;
using at = action::type;

// One attempt of an acquire machine on 3 nodes answered with (answer, holder TTL) per node
// at `when`; returns the actions after the last answer.
std::vector<action> answer_all(quorum_machine& m, time_point when,
                               const std::vector<std::pair<answer, milliseconds>>& answers) {
  // The machine may decide before the last answer (a quorum is impossible): every action
  // of every answer is returned.
  std::vector<action> all;
  const auto id = m.attempt_id();
  for (std::size_t i = 0; i < answers.size(); ++i) {
    auto e = event::reply(i, id, answers[i].first, {}, when);
    e.holder_ttl = answers[i].second;
    for (const auto& a : drain(m, m.resume(e)))
      all.push_back(a);
  }
  return all;
}

std::optional<action> find(const std::vector<action>& acts, at kind) {
  for (const auto& a : acts) {
    if (a.kind == kind)
      return a;
  }
  return std::nullopt;
}

op_config waiting_config(int retry_count) {
  auto c = acquire_config(3, retry_count, 0ms);  // delay 200 ms exactly
  return c;
}

// --- the holders' TTL ------------------------------------------------------------------

TEST(HolderTtl, NextAttemptWhenAQuorumOfHoldersKeysHasExpired) {
  quorum_machine m(waiting_config(5), &zero_random);
  drain(m, m.resume(event::start(t0)));
  const auto t = t0 + 2ms;
  // Holders' keys end in 50, 80 and 300 ms: a quorum (2) is free after the second, +1 ms.
  auto acts = answer_all(
      m, t, {{answer::foreign, 50ms}, {answer::foreign, 80ms}, {answer::foreign, 300ms}});
  auto w = find(acts, at::wait);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->delay, 81ms);
  EXPECT_TRUE(find(acts, at::release_all));
}

TEST(HolderTtl, NodesThatGrantedCountAsFree) {
  quorum_machine m(waiting_config(5), &zero_random);
  drain(m, m.resume(event::start(t0)));
  auto acts =
      answer_all(m, t0, {{answer::ok, -1ms}, {answer::foreign, 30ms}, {answer::foreign, 150ms}});
  auto w = find(acts, at::wait);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->delay, 31ms);
}

TEST(HolderTtl, NeverLaterThanTheRetryDelay) {
  quorum_machine m(waiting_config(5), &zero_random);
  drain(m, m.resume(event::start(t0)));
  auto acts =
      answer_all(m, t0, {{answer::foreign, 5s}, {answer::foreign, 5s}, {answer::foreign, 5s}});
  auto w = find(acts, at::wait);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->delay, 200ms);
}

TEST(HolderTtl, UnknownTtlsOrFailuresLeaveThePoll) {
  {
    // Holders whose keys never expire (0 in the script's answer: unknown).
    quorum_machine m(waiting_config(5), &zero_random);
    drain(m, m.resume(event::start(t0)));
    auto acts =
        answer_all(m, t0, {{answer::foreign, -1ms}, {answer::foreign, -1ms}, {answer::ok, -1ms}});
    EXPECT_EQ(find(acts, at::wait)->delay, 200ms);
  }
  {
    // One TTL known, the rest failed: no quorum can be predicted.
    quorum_machine m(waiting_config(5), &zero_random);
    drain(m, m.resume(event::start(t0)));
    auto acts = answer_all(
        m, t0, {{answer::foreign, 10ms}, {answer::error, -1ms}, {answer::timeout, -1ms}});
    EXPECT_EQ(find(acts, at::wait)->delay, 200ms);
  }
}

TEST(HolderTtl, ValidityExhaustedIsNotRetriedAtOnce) {
  // Every node granted, but too late: no holder stands in the way, and the hint must not
  // turn slowness into a tight loop.
  auto c = waiting_config(5);
  c.ttl = 100ms;
  quorum_machine m(c, &zero_random);
  drain(m, m.resume(event::start(t0)));
  auto acts =
      answer_all(m, t0 + 150ms, {{answer::ok, -1ms}, {answer::ok, -1ms}, {answer::ok, -1ms}});
  EXPECT_EQ(m.attempts(), 1);
  ASSERT_TRUE(find(acts, at::wait));
  EXPECT_EQ(find(acts, at::wait)->delay, 200ms);
}

TEST(HolderTtl, AttemptsAtTheHoldersExpiryDoNotCountAgainstRetryCount) {
  // retry_count 1: two counted attempts. The one at the holders' expiry (60 ms, before the
  // 200 ms poll) is extra.
  quorum_machine m(waiting_config(1), &zero_random);
  drain(m, m.resume(event::start(t0)));
  auto acts = answer_all(
      m, t0, {{answer::foreign, 59ms}, {answer::foreign, 59ms}, {answer::foreign, 59ms}});
  ASSERT_EQ(find(acts, at::wait)->delay, 60ms);
  drain(m, m.resume(event::retry_timer(t0 + 60ms)));
  EXPECT_EQ(m.attempts(), 2);
  // Extended by its holder: denied again, now the poll (t0 + 200 ms) comes first.
  acts = answer_all(m, t0 + 61ms,
                    {{answer::foreign, 5s}, {answer::foreign, 5s}, {answer::foreign, 5s}});
  ASSERT_EQ(find(acts, at::wait)->delay, 139ms);
  drain(m, m.resume(event::retry_timer(t0 + 200ms)));
  EXPECT_EQ(m.attempts(), 3);
  acts = answer_all(m, t0 + 201ms,
                    {{answer::foreign, 5s}, {answer::foreign, 5s}, {answer::foreign, 5s}});
  auto done = find(acts, at::complete);
  ASSERT_TRUE(done);  // the second counted attempt was the last
  EXPECT_EQ(done->ec, errc::resource_locked);
}

// --- wake ------------------------------------------------------------------------------

TEST(Wake, WhileWaitingStartsAnAttemptAtOnceThatDoesNotCount) {
  quorum_machine m(waiting_config(1), &zero_random);
  drain(m, m.resume(event::start(t0)));
  answer_all(m, t0 + 1ms,
             {{answer::foreign, -1ms}, {answer::foreign, -1ms}, {answer::foreign, -1ms}});
  auto acts = drain(m, m.resume(event::wake(t0 + 20ms)));
  ASSERT_TRUE(find(acts, at::send));
  EXPECT_EQ(m.attempt_start(), t0 + 20ms);
  // Lost the race: back to the same poll instant (t0 + 201 ms), not a fresh delay.
  acts = answer_all(m, t0 + 21ms,
                    {{answer::foreign, -1ms}, {answer::foreign, -1ms}, {answer::foreign, -1ms}});
  ASSERT_TRUE(find(acts, at::wait));
  EXPECT_EQ(find(acts, at::wait)->delay, 180ms);
  drain(m, m.resume(event::retry_timer(t0 + 201ms)));
  acts = answer_all(m, t0 + 202ms,
                    {{answer::foreign, -1ms}, {answer::foreign, -1ms}, {answer::foreign, -1ms}});
  // Three attempts; the woken one was free, so retry_count 1 allowed the third.
  EXPECT_EQ(m.attempts(), 3);
  ASSERT_TRUE(find(acts, at::complete));
  EXPECT_EQ(find(acts, at::complete)->ec, errc::resource_locked);
}

TEST(Wake, DuringAnAttemptMakesItsFailureRetryAtOnce) {
  quorum_machine m(waiting_config(5), &zero_random);
  drain(m, m.resume(event::start(t0)));
  // A release arrives while our requests are out: a denial may predate it.
  EXPECT_TRUE(drain(m, m.resume(event::wake(t0 + 1ms))).empty());
  auto acts = answer_all(m, t0 + 2ms,
                         {{answer::foreign, -1ms}, {answer::foreign, -1ms}, {answer::ok, -1ms}});
  ASSERT_TRUE(find(acts, at::wait));
  EXPECT_EQ(find(acts, at::wait)->delay, 0ms);
  // Once only: the next failure waits for the poll again.
  drain(m, m.resume(event::retry_timer(t0 + 2ms)));
  acts = answer_all(m, t0 + 3ms,
                    {{answer::foreign, -1ms}, {answer::foreign, -1ms}, {answer::ok, -1ms}});
  EXPECT_EQ(find(acts, at::wait)->delay, 199ms);
}

TEST(Wake, AWokenAttemptThatFailedForFailingNodesTriesOnceMoreAfterANodeTimeout) {
  auto c = waiting_config(5);
  c.node_timeout = 50ms;
  quorum_machine m(c, &zero_random);
  drain(m, m.resume(event::start(t0)));
  answer_all(m, t0, {{answer::foreign, -1ms}, {answer::foreign, -1ms}, {answer::foreign, -1ms}});
  drain(m, m.resume(event::wake(t0 + 50ms)));
  // The release was announced, but two nodes fail (a node still on a demoted master).
  auto acts =
      answer_all(m, t0 + 51ms, {{answer::ok, -1ms}, {answer::error, -1ms}, {answer::error, -1ms}});
  ASSERT_TRUE(find(acts, at::wait));
  EXPECT_EQ(find(acts, at::wait)->delay, 50ms);  // node_timeout, before the poll (t0 + 200 ms)
  drain(m, m.resume(event::retry_timer(t0 + 101ms)));
  // Once: failing again waits for the poll.
  acts =
      answer_all(m, t0 + 102ms, {{answer::ok, -1ms}, {answer::error, -1ms}, {answer::error, -1ms}});
  EXPECT_EQ(find(acts, at::wait)->delay, 98ms);  // 100 ms of backoff would pass the poll
  EXPECT_EQ(m.attempts(), 3);
}

TEST(Wake, AnAttemptAtTheHoldersExpiryThatFindsServersFailingBacksOffNotToThePoll) {
  // The holder's keys should be gone (its TTL came from the denials), but the servers are
  // paused: retry after 50, 100, 200 ms..., not only after the 30 s poll.
  auto c = acquire_config(1, -1, 0ms);
  c.retry.delay = 30s;
  c.node_timeout = 50ms;
  quorum_machine m(c, &zero_random);
  drain(m, m.resume(event::start(t0)));
  auto acts = answer_all(m, t0, {{answer::foreign, 99ms}});
  ASSERT_EQ(find(acts, at::wait)->delay, 100ms);
  auto t = t0 + 100ms;
  for (auto backoff : {50ms, 100ms, 200ms, 400ms}) {
    drain(m, m.resume(event::retry_timer(t)));
    acts = answer_all(m, t + 50ms, {{answer::timeout, -1ms}});
    ASSERT_TRUE(find(acts, at::wait));
    EXPECT_EQ(find(acts, at::wait)->delay, backoff);
    t += 50ms + backoff;
  }
  // Resumed: granted.
  drain(m, m.resume(event::retry_timer(t)));
  acts = answer_all(m, t + 1ms, {{answer::ok, -1ms}});
  ASSERT_TRUE(find(acts, at::complete));
  EXPECT_FALSE(find(acts, at::complete)->ec);
}

TEST(Wake, IgnoredByExtendReleaseAndFinishedOperations) {
  op_config c = waiting_config(0);
  c.kind = op_kind::extend;
  c.lock_deadline = t0 + 10s;
  quorum_machine ext(c, &zero_random);
  drain(ext, ext.resume(event::start(t0)));
  EXPECT_TRUE(drain(ext, ext.resume(event::wake(t0))).empty());
  quorum_machine acq(waiting_config(0), &zero_random);
  EXPECT_TRUE(drain(acq, acq.resume(event::wake(t0))).empty());  // not started
  drain(acq, acq.resume(event::start(t0)));
  answer_all(acq, t0, {{answer::ok, -1ms}, {answer::ok, -1ms}, {answer::ok, -1ms}});
  ASSERT_TRUE(acq.finished());
  EXPECT_TRUE(drain(acq, acq.resume(event::wake(t0 + 1ms))).empty());
}

// --- the wait budget -------------------------------------------------------------------

TEST(WaitBudget, NoAttemptStartsAfterItAndTheLastWaitIsCut) {
  auto c = waiting_config(-1);
  c.wait_until = t0 + 300ms;
  quorum_machine m(c, &zero_random);
  drain(m, m.resume(event::start(t0)));
  auto acts = answer_all(
      m, t0 + 1ms, {{answer::foreign, -1ms}, {answer::foreign, -1ms}, {answer::foreign, -1ms}});
  EXPECT_EQ(find(acts, at::wait)->delay, 200ms);
  drain(m, m.resume(event::retry_timer(t0 + 201ms)));
  acts = answer_all(m, t0 + 202ms,
                    {{answer::foreign, -1ms}, {answer::foreign, -1ms}, {answer::foreign, -1ms}});
  ASSERT_TRUE(find(acts, at::wait));
  EXPECT_EQ(find(acts, at::wait)->delay, 98ms);  // cut to the budget's end
  acts = drain(m, m.resume(event::retry_timer(t0 + 300ms)));
  ASSERT_TRUE(find(acts, at::complete));
  EXPECT_EQ(find(acts, at::complete)->ec, errc::resource_locked);
  EXPECT_EQ(m.attempts(), 2);
}

TEST(WaitBudget, SpentDuringAnAttemptCompletesWhenItFails) {
  auto c = waiting_config(-1);
  c.wait_until = t0 + 100ms;
  quorum_machine m(c, &zero_random);
  drain(m, m.resume(event::start(t0)));
  auto acts = answer_all(m, t0 + 150ms,
                         {{answer::foreign, -1ms}, {answer::error, -1ms}, {answer::foreign, -1ms}});
  ASSERT_TRUE(find(acts, at::release_all));  // nothing left behind
  ASSERT_TRUE(find(acts, at::complete));
  EXPECT_EQ(find(acts, at::complete)->ec, errc::resource_locked);
  EXPECT_FALSE(find(acts, at::wait));
}

TEST(WaitBudget, AWakeAfterItCompletesAndOneBeforeItTries) {
  auto c = waiting_config(-1);
  c.wait_until = t0 + 100ms;
  quorum_machine m(c, &zero_random);
  drain(m, m.resume(event::start(t0)));
  answer_all(m, t0, {{answer::foreign, -1ms}, {answer::foreign, -1ms}, {answer::foreign, -1ms}});
  ASSERT_TRUE(find(drain(m, m.resume(event::wake(t0 + 50ms))), at::send));
  answer_all(m, t0 + 51ms,
             {{answer::foreign, -1ms}, {answer::foreign, -1ms}, {answer::foreign, -1ms}});
  auto acts = drain(m, m.resume(event::wake(t0 + 100ms)));
  ASSERT_TRUE(find(acts, at::complete));
  EXPECT_EQ(m.attempts(), 2);
}

// --- the wake table --------------------------------------------------------------------

TEST(WakeTable, SubscribesOnFirstWaiterAndUnsubscribesAfterTheLast) {
  wake_table t;
  std::vector<std::string> sub, unsub;
  t.add(1, {"a", "b"}, sub);
  t.add(2, {"b"}, sub);
  EXPECT_EQ(sub, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.channels(), 2u);
  t.remove(1, {"a", "b"}, unsub);
  EXPECT_EQ(unsub, (std::vector<std::string>{"a"}));
  t.remove(2, {"b"}, unsub);
  EXPECT_EQ(unsub, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.channels(), 0u);
  t.remove(3, {"c"}, unsub);  // unknown: nothing
  EXPECT_EQ(unsub.size(), 2u);
}

TEST(WakeTable, AReleaseWakesTheOldestAndItsRepeatsOnlyThatOne) {
  wake_table t;
  std::vector<std::string> sub, unsub;
  t.add(1, {"ch"}, sub);
  t.add(2, {"ch"}, sub);
  t.add(3, {"ch"}, sub);
  EXPECT_EQ(t.on_release("ch", "v1"), 1u);
  EXPECT_EQ(t.on_release("ch", "v1"), 1u);            // node 2 reports the same release
  t.remove(1, {"ch"}, unsub);                         // waiter 1 won
  EXPECT_EQ(t.on_release("ch", "v1"), std::nullopt);  // node 3's report: nobody else
  EXPECT_EQ(t.on_release("ch", "v2"), 2u);            // the next release: the next oldest
  EXPECT_EQ(t.on_release("other", "v2"), std::nullopt);
  EXPECT_EQ(t.oldest("ch"), 2u);
}

TEST(WakeTable, AReleaseNamingTheHeadWakesOnlyThatWaiter) {
  wake_table t;
  std::vector<std::string> sub, unsub;
  t.add(1, {"ch"}, sub, "sha-a");
  t.add(2, {"ch"}, sub, "sha-b");
  t.add(3, {"ch"}, sub);                                      // not in fair mode
  EXPECT_EQ(t.on_release("ch", "head:sha-b"), 2u);            // not the oldest: the named one
  EXPECT_EQ(t.on_release("ch", "head:sha-b"), 2u);            // another node's report
  EXPECT_EQ(t.on_release("ch", "head:sha-z"), std::nullopt);  // waits in another process
  EXPECT_EQ(t.on_release("other", "head:sha-a"), std::nullopt);
  t.remove(2, {"ch"}, unsub);
  EXPECT_EQ(t.on_release("ch", "head:sha-b"), std::nullopt);  // gone
  EXPECT_EQ(t.on_release("ch", "plain-release"), 1u);         // unnamed: the oldest
}

// --- the manager against fake deployments ----------------------------------------------

using namespace std::chrono_literals;
namespace rt = redlock::testing;

class WakeManagerTest : public ::testing::Test {
 public:
  asio::io_context io;

  static redlock::manager_options options() {
    auto s = redlock::test::fast_options();
    s.request_timeout = 100ms;
    return s;
  }

  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds limit = 10s) {
    return redlock::test::run_until(io, std::move(pred), limit);
  }

  struct result {
    bool done = false;
    std::error_code ec;
    redlock::lock l;
    std::chrono::steady_clock::time_point at{};
  };

  std::shared_ptr<result> start(redlock::lock_manager& m, std::vector<std::string> r,
                                redlock::call_options o = {}) {
    auto out = std::make_shared<result>();
    m.async_lock(std::move(r), 10s, o, [out](std::error_code ec, redlock::lock l) {
      out->done = true;
      out->ec = ec;
      out->l = std::move(l);
      out->at = std::chrono::steady_clock::now();
    });
    return out;
  }

  bool unlock(redlock::lock_manager& m, const redlock::lock& l) {
    bool done = false;
    m.async_unlock(l, [&](std::error_code, redlock::unlock_result) { done = true; });
    return run_until([&] { return done; });
  }

  static std::size_t subscribed(rt::fake_deployment& d, const std::string& resource) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < d.size(); ++i)
      n += d[i].subscribers(redlock::detail::release_channel(resource));
    return n;
  }
};

redlock::call_options patient() {
  redlock::call_options o;
  o.retry_count = -1;
  o.retry_delay = 30s;  // a poll would come far too late: only a wake-up can make it in time
  o.retry_jitter = 0ms;
  return o;
}

TEST_F(WakeManagerTest, AWaiterWithA30sRetryDelayIsWokenByTheRelease) {
  rt::fake_deployment d(io.get_executor(), 3);
  redlock::lock_manager holder(io.get_executor(), d.nodes(), options());
  redlock::lock_manager waiter(io.get_executor(), d.nodes(), options());
  auto h = start(holder, {"r"});
  ASSERT_TRUE(run_until([&] { return h->done; }));
  ASSERT_FALSE(h->ec);
  auto w = start(waiter, {"r"}, patient());
  ASSERT_TRUE(run_until([&] { return subscribed(d, "r") == 3; }));
  // The first attempt and the one after the confirmed subscriptions were denied.
  ASSERT_TRUE(run_until([&] { return d[0].count(rt::script_kind::acquire) >= 3; }));
  EXPECT_FALSE(w->done);
  const auto released = std::chrono::steady_clock::now();
  ASSERT_TRUE(unlock(holder, h->l));
  ASSERT_TRUE(run_until([&] { return w->done; }, 5s));
  ASSERT_FALSE(w->ec) << w->ec.message();
  EXPECT_LT(w->at - released, 2s);
  // The waiter is gone: so are its subscriptions.
  ASSERT_TRUE(run_until([&] { return subscribed(d, "r") == 0; }));
}

TEST_F(WakeManagerTest, AReleaseWakesOnlyTheOldestWaiterOfTheManager) {
  rt::fake_deployment d(io.get_executor(), 3);
  redlock::lock_manager holder(io.get_executor(), d.nodes(), options());
  redlock::lock_manager waiters(io.get_executor(), d.nodes(), options());
  auto h = start(holder, {"r"});
  ASSERT_TRUE(run_until([&] { return h->done; }));
  constexpr int n = 6;
  std::vector<std::shared_ptr<result>> w;
  for (int i = 0; i < n; ++i) {
    w.push_back(start(waiters, {"r"}, patient()));
    // One at a time, so that registration order is the call order.
    ASSERT_TRUE(run_until(
        [&] { return d[0].count(rt::script_kind::acquire) >= static_cast<std::size_t>(i + 2); }));
  }
  ASSERT_TRUE(run_until([&] { return subscribed(d, "r") == 3; }));
  // Quiet: the holder's acquire, each waiter's first attempt and the oldest's attempt after
  // the confirmed subscription, each failed one released.
  ASSERT_TRUE(run_until([&] {
    return d[0].count(rt::script_kind::acquire) == n + 2 &&
           d[0].count(rt::script_kind::release) == n + 1;
  }));
  // Each hand-off wakes exactly one waiter, oldest first: one acquire per node per release.
  auto prev = h;
  for (int i = 0; i < n; ++i) {
    const auto before = d[0].count(rt::script_kind::acquire);
    ASSERT_TRUE(unlock(i == 0 ? holder : waiters, prev->l));
    ASSERT_TRUE(run_until([&] { return w[i]->done; }, 5s)) << "waiter " << i;
    ASSERT_FALSE(w[i]->ec);
    for (int j = i + 1; j < n; ++j)
      EXPECT_FALSE(w[j]->done) << "waiter " << j << " overtook waiter " << i;
    EXPECT_EQ(d[0].count(rt::script_kind::acquire) - before, 1u) << "hand-off " << i;
    prev = w[i];
  }
  ASSERT_TRUE(unlock(waiters, prev->l));
  ASSERT_TRUE(run_until([&] { return subscribed(d, "r") == 0; }));
}

TEST_F(WakeManagerTest, LostAnnouncementsFallBackToTheRetryTimer) {
  rt::fake_deployment d(io.get_executor(), 3);
  for (std::size_t i = 0; i < d.size(); ++i)
    d[i].drop_announcements(true);
  redlock::lock_manager holder(io.get_executor(), d.nodes(), options());
  redlock::lock_manager waiter(io.get_executor(), d.nodes(), options());
  auto h = start(holder, {"r"});
  ASSERT_TRUE(run_until([&] { return h->done; }));
  auto o = patient();
  o.retry_delay = 50ms;
  auto w = start(waiter, {"r"}, o);
  ASSERT_TRUE(run_until([&] { return d[0].count(rt::script_kind::acquire) >= 3; }));
  ASSERT_TRUE(unlock(holder, h->l));
  ASSERT_TRUE(run_until([&] { return w->done; }, 5s));
  EXPECT_FALSE(w->ec);
  for (std::size_t i = 0; i < d.size(); ++i)
    EXPECT_EQ(d[i].announcements(), 0u);
}

TEST_F(WakeManagerTest, ACrashedHoldersKeysCostTheirTtlNotAPoll) {
  rt::fake_deployment d(io.get_executor(), 3);
  // A holder that never releases (crashed) with 100 ms left on every node.
  for (std::size_t i = 0; i < d.size(); ++i)
    d[i].set_key("r", "crashed-holder", 100ms);
  auto s = options();
  s.wakeup = false;  // only the TTL in the denials can help
  redlock::lock_manager waiter(io.get_executor(), d.nodes(), s);
  auto w = start(waiter, {"r"}, patient());
  ASSERT_TRUE(run_until([&] { return d[2].count(rt::script_kind::acquire) >= 1; }));
  d.clock().advance(100ms);  // the fakes' keys expire on their virtual clock
  ASSERT_TRUE(run_until([&] { return w->done; }, 5s));
  ASSERT_FALSE(w->ec) << w->ec.message();
  EXPECT_EQ(w->l.attempts(), 2);
}

TEST_F(WakeManagerTest, WithWakeupOffReleasesUseNodeRedlocksScriptAndNothingSubscribes) {
  rt::fake_deployment d(io.get_executor(), 3);
  auto s = options();
  s.wakeup = false;
  redlock::lock_manager holder(io.get_executor(), d.nodes(), s);
  redlock::lock_manager waiter(io.get_executor(), d.nodes(), s);
  auto h = start(holder, {"r"});
  ASSERT_TRUE(run_until([&] { return h->done; }));
  auto o = patient();
  o.retry_delay = 20ms;
  auto w = start(waiter, {"r"}, o);
  ASSERT_TRUE(run_until([&] { return d[0].count(rt::script_kind::acquire) >= 2; }));
  EXPECT_EQ(subscribed(d, "r"), 0u);
  ASSERT_TRUE(unlock(holder, h->l));
  ASSERT_TRUE(run_until([&] { return w->done; }));
  for (const auto& c : d[0].calls()) {
    if (c.kind == rt::script_kind::release) {
      EXPECT_FALSE(c.announces);
    }
  }
}

TEST_F(WakeManagerTest, OnlyAnUnlockAnnouncesNotTheReleaseOfAFailedAttempt) {
  // A failed attempt's release frees the keys of a race nobody won: announcing it would
  // wake the other losers in every manager, and their failed attempts would announce again
  // (a storm at N >= 3, seen in the waiting benchmark).
  rt::fake_deployment d(io.get_executor(), 3);
  redlock::lock_manager holder(io.get_executor(), d.nodes(), options());
  redlock::lock_manager waiter(io.get_executor(), d.nodes(), options());
  // Held on node 0 only: the waiter is granted nodes 1 and 2... but node 2 fails, so its
  // attempts fail with a partial grant (node 1) to release.
  d[0].set_key("r", "someone");
  d[2].answer_with_error();
  redlock::call_options two;
  two.retry_count = 1;
  two.retry_delay = 1ms;
  auto w = start(waiter, {"r"}, two);
  ASSERT_TRUE(run_until([&] { return w->done; }));
  ASSERT_TRUE(w->ec);
  std::size_t failure_releases = 0;
  for (const auto& c : d[1].calls()) {
    if (c.kind == rt::script_kind::release) {
      ++failure_releases;
      EXPECT_FALSE(c.announces) << "the release after a failed attempt announced";
    }
  }
  EXPECT_GE(failure_releases, 2u);
  EXPECT_EQ(d[1].announcements(), 0u);
  // An unlock does announce.
  d[0].lose_keys();
  d[2].recover();
  auto h = start(holder, {"r"});
  ASSERT_TRUE(run_until([&] { return h->done; }));
  ASSERT_FALSE(h->ec);
  ASSERT_TRUE(unlock(holder, h->l));
  EXPECT_TRUE(d[1].calls().back().announces);
}

TEST_F(WakeManagerTest, MaxWaitBoundsTheWaitAndRetriesWithinIt) {
  rt::fake_deployment d(io.get_executor(), 3);
  for (std::size_t i = 0; i < d.size(); ++i)
    d[i].set_key("r", "other");  // held for good
  auto s = options();
  s.retry_count = 1;
  redlock::lock_manager m(io.get_executor(), d.nodes(), s);
  redlock::call_options o;
  o.max_wait = 150ms;
  o.retry_delay = 20ms;
  o.retry_jitter = 0ms;
  const auto t = std::chrono::steady_clock::now();
  auto w = start(m, {"r"}, o);
  ASSERT_TRUE(run_until([&] { return w->done; }, 5s));
  EXPECT_EQ(w->ec, errc::resource_locked);
  EXPECT_GE(w->at - t, 150ms);
  // No retry_count given: the budget alone bounds the attempts, not the manager's 1 retry.
  EXPECT_GT(w->l.attempts(), 3);
  EXPECT_TRUE(run_until([&] { return subscribed(d, "r") == 0; }));
}

TEST_F(WakeManagerTest, MaxWaitMustNotBeNegative) {
  rt::fake_deployment d(io.get_executor(), 1);
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  redlock::call_options o;
  o.max_wait = -1ms;
  auto w = start(m, {"r"}, o);
  ASSERT_TRUE(run_until([&] { return w->done; }));
  EXPECT_EQ(w->ec, errc::invalid_argument);
  EXPECT_NE(w->l.report().detail.find("max_wait"), std::string::npos);
  EXPECT_EQ(d[0].calls().size(), 0u);
}

}  // namespace

// --- fair mode against fake deployments -------------------------------------------------

namespace {

redlock::manager_options fair_options() {
  auto s = redlock::test::fast_options();
  s.request_timeout = 100ms;
  s.fair = true;
  return s;
}

class FairTest : public WakeManagerTest {
 public:
  // Starts a fair waiter and waits until its entry is queued on every server.
  std::shared_ptr<result> queue_up(rt::fake_deployment& d, redlock::lock_manager& m,
                                   std::size_t expected_queue,
                                   redlock::call_options o = patient()) {
    auto w = start(m, {"r"}, o);
    EXPECT_TRUE(run_until([&] {
      for (std::size_t i = 0; i < d.size(); ++i) {
        if (d[i].queue("r").size() != expected_queue)
          return false;
      }
      return true;
    }));
    return w;
  }
};

TEST_F(FairTest, WaitersOfDifferentManagersAreServedInTheOrderTheyBegan) {
  rt::fake_deployment d(io.get_executor(), 3);
  redlock::lock_manager holder(io.get_executor(), d.nodes(), fair_options());
  constexpr std::size_t n = 4;
  std::vector<std::unique_ptr<redlock::lock_manager>> managers;
  for (std::size_t i = 0; i < n; ++i)
    managers.push_back(
        std::make_unique<redlock::lock_manager>(io.get_executor(), d.nodes(), fair_options()));
  auto h = start(holder, {"r"});
  ASSERT_TRUE(run_until([&] { return h->done; }));
  ASSERT_FALSE(h->ec);
  std::vector<std::shared_ptr<result>> w;
  for (std::size_t i = 0; i < n; ++i)
    w.push_back(queue_up(d, *managers[i], i + 1));
  ASSERT_TRUE(run_until([&] { return subscribed(d, "r") == 3 * n; }));
  // Quiet: the holder's acquire, and per waiter its first attempt and the one after its
  // manager's confirmed subscriptions, each failed one released (staying queued).
  ASSERT_TRUE(run_until([&] {
    for (std::size_t i = 0; i < d.size(); ++i) {
      if (d[i].count(rt::script_kind::fair_acquire) != 2 * n + 1 ||
          d[i].count(rt::script_kind::release) != 2 * n)
        return false;
    }
    return true;
  }));
  // Each release names the new head: exactly one waiter in all the managers is woken, and
  // the order is the order the waiters began in.
  auto* prev_manager = &holder;
  auto prev = h;
  for (std::size_t i = 0; i < n; ++i) {
    const auto before = d[0].count(rt::script_kind::fair_acquire);
    ASSERT_TRUE(unlock(*prev_manager, prev->l));
    ASSERT_TRUE(run_until([&] { return w[i]->done; }, 5s)) << "waiter " << i;
    ASSERT_FALSE(w[i]->ec) << w[i]->ec.message();
    for (std::size_t j = i + 1; j < n; ++j)
      EXPECT_FALSE(w[j]->done) << "waiter " << j << " overtook waiter " << i;
    // One attempt for the hand-off (refreshes of the others may add some; the patient
    // waiters refresh every fair_entry_timeout / 3 = 667 ms, well after this).
    EXPECT_EQ(d[0].count(rt::script_kind::fair_acquire) - before, 1u) << "hand-off " << i;
    prev_manager = managers[i].get();
    prev = w[i];
  }
  ASSERT_TRUE(unlock(*prev_manager, prev->l));
  for (std::size_t i = 0; i < d.size(); ++i)
    EXPECT_TRUE(d[i].queue("r").empty());
  EXPECT_TRUE(run_until([&] { return subscribed(d, "r") == 0; }));
}

TEST_F(FairTest, ACrashedWaitersEntryHoldsUpTheQueueOnlyUntilItExpires) {
  rt::fake_deployment d(io.get_executor(), 3);
  auto s = fair_options();
  s.fair_entry_timeout = 300ms;
  // A key held by another client, and queued behind it a waiter that began long ago (ticket
  // 1) and then crashed: its entry (lease 300 ms on the servers' clock) is never refreshed.
  for (std::size_t i = 0; i < d.size(); ++i)
    d[i].set_key("r", "holder");
  for (auto& node : d.nodes()) {
    const std::vector<std::string> keys{"r", redlock::detail::fair_queue_key("r"),
                                        redlock::detail::fair_lease_key("r")};
    const std::vector<std::string> args{"crashed-waiter", "10000", "1", "300"};
    bool done = false;
    node->async_eval(redlock::detail::fair_acquire_script(), keys, args,
                     [&](std::error_code, redlock::reply) { done = true; });
    ASSERT_TRUE(run_until([&] { return done; }));
  }
  redlock::lock_manager m(io.get_executor(), d.nodes(), s);
  auto w = queue_up(d, m, 2);
  // The holder goes without announcing it: the crashed waiter heads every queue, so ours
  // waits, refreshing its entry every 100 ms (fair_entry_timeout / 3).
  for (std::size_t i = 0; i < d.size(); ++i)
    d[i].lose_keys();
  for (std::size_t i = 0; i < d.size(); ++i)
    ASSERT_EQ(d[i].queue("r").size(), 2u);  // lose_keys() leaves the queues
  const auto attempts = d[0].count(rt::script_kind::fair_acquire);
  ASSERT_TRUE(run_until([&] { return d[0].count(rt::script_kind::fair_acquire) >= attempts + 3; }));
  EXPECT_FALSE(w->done);
  // Its lease runs out on the servers' clock: ours is the head at its next refresh.
  d.clock().advance(300ms);
  ASSERT_TRUE(run_until([&] { return w->done; }, 5s));
  ASSERT_FALSE(w->ec) << w->ec.message();
  // The crashed waiter is gone; the holder's own entry stays until its release.
  for (std::size_t i = 0; i < d.size(); ++i)
    EXPECT_EQ(d[i].queue("r"), std::vector<std::string>{w->l.value()});
  ASSERT_TRUE(unlock(m, w->l));
  for (std::size_t i = 0; i < d.size(); ++i)
    EXPECT_TRUE(d[i].queue("r").empty());
}

TEST_F(FairTest, ACancelledOrTimedOutWaiterLeavesTheQueueAtOnce) {
  rt::fake_deployment d(io.get_executor(), 3);
  for (std::size_t i = 0; i < d.size(); ++i)
    d[i].set_key("r", "other");
  redlock::lock_manager m(io.get_executor(), d.nodes(), fair_options());
  auto o = patient();
  o.max_wait = 200ms;
  auto w = queue_up(d, m, 1, o);
  ASSERT_TRUE(run_until([&] { return w->done; }, 5s));
  EXPECT_EQ(w->ec, errc::resource_locked);
  // Gone from every queue when the call returned (no lease to wait for).
  ASSERT_TRUE(run_until(
      [&] {
        for (std::size_t i = 0; i < d.size(); ++i) {
          if (!d[i].queue("r").empty())
            return false;
        }
        return true;
      },
      1s));
  // quit cancels a waiter: it leaves the queue too.
  auto w2 = queue_up(d, m, 1);
  bool quit = false;
  m.async_quit([&](std::error_code) { quit = true; });
  ASSERT_TRUE(run_until([&] { return quit && w2->done; }, 5s));
  EXPECT_EQ(w2->ec, errc::closed);
  for (std::size_t i = 0; i < d.size(); ++i)
    EXPECT_TRUE(d[i].queue("r").empty());
}

TEST_F(FairTest, AClientNotInFairModeBargesButNeverBreaksExclusion) {
  rt::fake_deployment d(io.get_executor(), 3);
  redlock::lock_manager holder(io.get_executor(), d.nodes(), fair_options());
  redlock::lock_manager fair_waiter(io.get_executor(), d.nodes(), fair_options());
  auto plain_options = redlock::test::fast_options();
  redlock::lock_manager plain(io.get_executor(), d.nodes(), plain_options);
  auto h = start(holder, {"r"});
  ASSERT_TRUE(run_until([&] { return h->done; }));
  auto w = queue_up(d, fair_waiter, 1);
  // The plain client ignores the queue: denied only by the key.
  redlock::call_options once;
  once.retry_count = 0;
  auto p1 = start(plain, {"r"}, once);
  ASSERT_TRUE(run_until([&] { return p1->done; }));
  EXPECT_EQ(p1->ec, errc::resource_locked);
  ASSERT_TRUE(unlock(holder, h->l));
  ASSERT_TRUE(run_until([&] { return w->done; }, 5s));
  ASSERT_FALSE(w->ec);
  // Held by the fair waiter now: the plain client is still excluded.
  auto p2 = start(plain, {"r"}, once);
  ASSERT_TRUE(run_until([&] { return p2->done; }));
  EXPECT_EQ(p2->ec, errc::resource_locked);
  ASSERT_TRUE(unlock(fair_waiter, w->l));
  // With a fair waiter queued and the key free, the plain client may take it (barging).
  auto h2 = start(holder, {"r"});
  ASSERT_TRUE(run_until([&] { return h2->done; }));
  auto w2 = queue_up(d, fair_waiter, 1);
  ASSERT_TRUE(unlock(holder, h2->l));   // wakes the fair waiter...
  auto p3 = start(plain, {"r"}, once);  // ...and the plain client races it
  ASSERT_TRUE(run_until([&] { return p3->done; }, 5s));
  if (!p3->ec) {
    // The plain client won the race: the fair waiter must not hold it too, and gets it
    // when the plain client's release names it the head.
    EXPECT_FALSE(w2->done);
    ASSERT_TRUE(unlock(plain, p3->l));
  }
  ASSERT_TRUE(run_until([&] { return w2->done; }, 5s));
  ASSERT_FALSE(w2->ec) << w2->ec.message();
}

TEST_F(FairTest, FairAndFencingTogetherAreRefused) {
  rt::fake_deployment d(io.get_executor(), 1);
  redlock::lock_manager m(io.get_executor(), d.nodes(), fair_options());
  redlock::call_options o;
  o.fencing = true;
  auto w = start(m, {"r"}, o);
  ASSERT_TRUE(run_until([&] { return w->done; }));
  EXPECT_EQ(w->ec, errc::invalid_argument);
  EXPECT_NE(w->l.report().detail.find("fair"), std::string::npos);
  EXPECT_TRUE(d[0].calls().empty());
}

}  // namespace

// The lock manager driven against fake nodes: no server needed.
#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <atomic>
#include <future>
#include <memory>
#include <thread>

#include <asio/steady_timer.hpp>

#include "redlock/asio_compat.hpp"
#include "redlock/blocking.hpp"
#include "redlock/lock_manager.hpp"
#include "support/fake_node.hpp"
#include "support/io_thread.hpp"
#include "support/options.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::vote;
using redlock::test::fake_node;
using kind = fake_node::script_kind;
using step = fake_node::step;

struct lock_out {
  std::chrono::steady_clock::time_point started{};  // when the call was made
  bool done = false;
  std::error_code ec;
  redlock::lock l;
};

struct unlock_out {
  bool done = false;
  std::error_code ec;
  redlock::unlock_result r;
};

class ManagerTest : public ::testing::Test {
 public:
  asio::io_context io;
  std::vector<std::shared_ptr<fake_node>> fakes;

  std::vector<std::shared_ptr<redlock::node>> make_nodes(std::size_t n) {
    return redlock::test::make_fake_nodes(io.get_executor(), n, fakes, "fake://node");
  }

  // Fake nodes answer at once: one attempt, and a timeout and retry pauses of a few ms.
  static redlock::manager_options fast() {
    auto s = redlock::test::fast_options();
    s.retry_count = 0;
    s.retry_delay = 5ms;
    s.retry_jitter = 2ms;
    s.request_timeout = 50ms;
    return s;
  }

  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds limit = 10s) {
    return redlock::test::run_until(io, std::move(pred), limit);
  }

  std::shared_ptr<lock_out> lock(redlock::lock_manager& m, std::vector<std::string> r,
                                 std::chrono::milliseconds ttl = 10s,
                                 redlock::call_options o = {}) {
    auto out = std::make_shared<lock_out>();
    out->started = std::chrono::steady_clock::now();
    m.async_lock(std::move(r), ttl, o, [out](std::error_code ec, redlock::lock l) {
      out->done = true;
      out->ec = ec;
      out->l = std::move(l);
    });
    EXPECT_TRUE(run_until([&] { return out->done; }));
    return out;
  }

  std::shared_ptr<lock_out> extend(redlock::lock_manager& m, const redlock::lock& l,
                                   std::chrono::milliseconds ttl = 10s) {
    auto out = std::make_shared<lock_out>();
    m.async_extend(l, ttl, [out](std::error_code ec, redlock::lock r) {
      out->done = true;
      out->ec = ec;
      out->l = std::move(r);
    });
    EXPECT_TRUE(run_until([&] { return out->done; }));
    return out;
  }

  std::shared_ptr<unlock_out> unlock(redlock::lock_manager& m, const redlock::lock& l,
                                     redlock::call_options o = {}) {
    auto out = std::make_shared<unlock_out>();
    m.async_unlock(l, o, [out](std::error_code ec, redlock::unlock_result r) {
      out->done = true;
      out->ec = ec;
      out->r = std::move(r);
    });
    EXPECT_TRUE(run_until([&] { return out->done; }));
    return out;
  }

  // Node votes come from answers here, never from the attempt timer; a node lags once its
  // oldest unanswered request is 30 ms old.
  static redlock::manager_options lag_settings() {
    auto s = fast();
    s.request_timeout = 5s;
    s.node_lag_limit = 30ms;
    return s;
  }

  // Locks "a" while the nodes in `slow` hold that acquire for 300 ms, then waits past the lag
  // limit, well before those answers: on return the `slow` nodes are lagging.
  std::shared_ptr<lock_out> lock_and_let_lag(redlock::lock_manager& m,
                                             const std::vector<std::size_t>& slow) {
    for (auto i : slow)
      fakes[i]->push(kind::acquire, step::store(300ms));
    const auto first_sent = std::chrono::steady_clock::now();
    auto a = lock(m, {"a"});
    EXPECT_FALSE(a->ec) << a->ec.message();
    EXPECT_TRUE(run_until([&] { return std::chrono::steady_clock::now() - first_sent > 60ms; }));
    for (auto i : slow)
      EXPECT_EQ(fakes[i]->in_flight(), 1u) << "the slow answer came early; the test proves nothing";
    return a;
  }

  std::size_t total_calls() const {
    std::size_t n = 0;
    for (const auto& f : fakes)
      n += f->calls().size();
    return n;
  }
};

TEST_F(ManagerTest, LocksExtendsAndUnlocksOnEveryNode) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m.quorum(), 2u);
  const auto before = std::chrono::steady_clock::now();
  auto a = lock(m, {"res"}, 10s);
  ASSERT_FALSE(a->ec) << a->ec.message();
  ASSERT_TRUE(a->l.acquired());
  EXPECT_EQ(a->l.value().size(), 32u);
  EXPECT_EQ(a->l.attempts(), 1);
  EXPECT_GT(a->l.validity_deadline(), before);
  EXPECT_LE(a->l.validity_deadline(), before + 10s - 102ms + 1s);
  for (const auto& f : fakes) {
    EXPECT_EQ(f->store().at("res"), a->l.value());
    ASSERT_EQ(f->calls().size(), 1u);
    EXPECT_EQ(f->calls()[0].args.at(0), a->l.value());
    EXPECT_EQ(f->calls()[0].args.at(1), "10000");
  }

  auto e = extend(m, a->l, 20s);
  ASSERT_FALSE(e->ec) << e->ec.message();
  EXPECT_EQ(e->l.value(), a->l.value());  // one value per lock, also across extensions
  EXPECT_GT(e->l.validity_deadline(), a->l.validity_deadline());
  EXPECT_EQ(e->l.ttl(), 20s);
  for (const auto& f : fakes) {
    EXPECT_EQ(f->count(kind::extend), 1u);
    EXPECT_EQ(f->calls().back().args.at(1), "20000");
  }

  auto u = unlock(m, e->l);
  ASSERT_FALSE(u->ec) << u->ec.message();
  EXPECT_GE(u->r.released, 2u);
  EXPECT_EQ(u->r.nodes, 3u);
  ASSERT_TRUE(run_until([&] {
    for (const auto& f : fakes) {
      if (!f->store().empty())
        return false;
    }
    return true;
  }));
}

TEST_F(ManagerTest, LocksSeveralResourcesAtOnceWithOneValue) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto a = lock(m, {"a", "b", "c"});
  ASSERT_FALSE(a->ec);
  for (const auto& f : fakes) {
    auto s = f->store();
    EXPECT_EQ(s.size(), 3u);
    for (const auto& [k, v] : s)
      EXPECT_EQ(v, a->l.value()) << k;
  }
}

TEST_F(ManagerTest, InvalidArgumentsCompleteWithInvalidArgumentAndSendNothing) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  redlock::call_options bad_retry;
  bad_retry.retry_count = -2;
  redlock::call_options bad_delay;
  bad_delay.retry_delay = -1ms;
  redlock::call_options bad_jitter;
  bad_jitter.retry_jitter = -1ms;
  EXPECT_EQ(lock(m, {})->ec, errc::invalid_argument);
  EXPECT_EQ(lock(m, {"x", "y", "x"})->ec, errc::invalid_argument);
  EXPECT_EQ(lock(m, {"x"}, 0ms)->ec, errc::invalid_argument);
  EXPECT_EQ(lock(m, {"x"}, -5ms)->ec, errc::invalid_argument);
  EXPECT_EQ(lock(m, {"x"}, 2ms)->ec, errc::invalid_argument);  // not above the drift margin
  EXPECT_EQ(lock(m, {"x"}, std::chrono::hours(24 * 365))->ec, errc::invalid_argument);
  EXPECT_EQ(lock(m, {"x"}, 10s, bad_retry)->ec, errc::invalid_argument);
  EXPECT_EQ(lock(m, {"x"}, 10s, bad_delay)->ec, errc::invalid_argument);
  EXPECT_EQ(lock(m, {"x"}, 10s, bad_jitter)->ec, errc::invalid_argument);
  EXPECT_EQ(unlock(m, redlock::lock{})->ec, errc::invalid_argument);
  EXPECT_EQ(extend(m, redlock::lock{})->ec, errc::invalid_argument);
  EXPECT_EQ(total_calls(), 0u);
}

TEST_F(ManagerTest, AnEmptyHandleUnlocksWithInvalidArgument) {
  redlock::lock empty;
  std::promise<std::error_code> p;
  empty.async_unlock([&](std::error_code ec, redlock::unlock_result) { p.set_value(ec); });
  auto f = p.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), errc::invalid_argument);
}

TEST_F(ManagerTest, ConstructorRejectsNoNodesDuplicatesAndBadSettings) {
  auto expect_invalid = [&](auto make) {
    try {
      make();
      ADD_FAILURE() << "no exception";
    } catch (const redlock::lock_error& e) {
      EXPECT_EQ(e.code(), errc::invalid_argument);
    }
  };
  expect_invalid([&] { redlock::lock_manager m(io.get_executor(), make_nodes(0)); });
  expect_invalid([&] {
    auto nodes = make_nodes(2);
    nodes.push_back(nodes[0]);
    redlock::lock_manager m(io.get_executor(), nodes);
  });
  expect_invalid([&] {
    auto nodes = make_nodes(2);
    nodes.push_back(std::make_shared<fake_node>(io.get_executor(), "fake://node1"));
    redlock::lock_manager m(io.get_executor(), nodes);
  });
  auto with = [&](auto change) {
    expect_invalid([&] {
      auto s = fast();
      change(s);
      redlock::lock_manager m(io.get_executor(), make_nodes(3), s);
    });
  };
  with([](redlock::manager_options& s) { s.drift_factor = 1.0; });
  with([](redlock::manager_options& s) { s.drift_factor = -0.01; });
  with([](redlock::manager_options& s) { s.retry_count = -2; });
  with([](redlock::manager_options& s) { s.retry_delay = -1ms; });
  with([](redlock::manager_options& s) { s.retry_jitter = -1ms; });
}

// Every combination of per-node outcomes, through the real driver: success exactly when a
// quorum granted; after any failure, release reaches all N nodes.
void run_combinations(ManagerTest& t, std::size_t n) {
  auto& fakes = t.fakes;
  std::size_t total = 1;
  for (std::size_t i = 0; i < n; ++i)
    total *= 4;
  for (std::size_t c = 0; c < total; ++c) {
    redlock::lock_manager m(t.io.get_executor(), t.make_nodes(n), ManagerTest::fast());
    std::size_t granted = 0;
    auto x = c;
    for (std::size_t i = 0; i < n; ++i, x /= 4) {
      switch (x % 4) {
        case 0:
          ++granted;
          break;  // the store grants
        case 1:
          fakes[i]->set_key("r", "someone-else");
          break;
        case 2:
          // The node's own request timeout fired.
          fakes[i]->push(kind::acquire, step::error(make_error_code(errc::timeout)));
          break;
        case 3:
          fakes[i]->push(kind::acquire,
                         step::error(make_error_code(errc::server_error), "ERR boom"));
          break;
      }
    }
    auto out = t.lock(m, {"r"});
    SCOPED_TRACE(::testing::Message() << "N=" << n << " combination " << c);
    ASSERT_TRUE(out->done);
    if (granted >= m.quorum()) {
      EXPECT_FALSE(out->ec) << out->ec.message();
      for (const auto& f : fakes)
        EXPECT_EQ(f->count(kind::release), 0u);
    } else {
      EXPECT_TRUE(out->ec == errc::resource_locked || out->ec == errc::quorum_unreachable)
          << out->ec.message();
      EXPECT_FALSE(out->l.acquired());
      EXPECT_EQ(out->l.report().nodes.size(), n);
      for (const auto& f : fakes)
        EXPECT_EQ(f->count(kind::release), 1u);
    }
    if (::testing::Test::HasFailure())
      return;
  }
}

TEST_F(ManagerTest, EveryOutcomeCombinationOfThreeNodes) {
  run_combinations(*this, 3);
}

TEST_F(ManagerTest, EveryOutcomeCombinationOfFiveNodes) {
  run_combinations(*this, 5);
}

TEST_F(ManagerTest, QuorumIsAStrictMajorityForOddAndEvenNodeCounts) {
  for (std::size_t n : {1u, 2u, 4u, 7u}) {
    redlock::lock_manager m(io.get_executor(), make_nodes(n), fast());
    EXPECT_EQ(m.quorum(), n / 2 + 1);
    // Exactly a quorum granting is enough; one fewer is not.
    for (std::size_t i = m.quorum(); i < n; ++i)
      fakes[i]->set_key("r", "other");
    auto ok = lock(m, {"r"});
    EXPECT_FALSE(ok->ec) << "N=" << n;
    redlock::lock_manager m2(io.get_executor(), make_nodes(n), fast());
    for (std::size_t i = m2.quorum() - 1; i < n; ++i)
      fakes[i]->set_key("r", "other");
    auto no = lock(m2, {"r"});
    EXPECT_EQ(no->ec, errc::resource_locked) << "N=" << n;
  }
}

TEST_F(ManagerTest, NodesThatNeverAnswerVoteTimeoutAtTheAttemptDeadline) {
  auto s = fast();
  s.request_timeout = 20ms;
  redlock::lock_manager m(io.get_executor(), make_nodes(3), s);
  fakes[1]->set_fallback(kind::acquire, step::silence());
  fakes[2]->set_fallback(kind::acquire, step::silence());
  auto out = lock(m, {"r"});
  EXPECT_EQ(out->ec, errc::quorum_unreachable);
  const auto& rep = out->l.report();
  ASSERT_EQ(rep.nodes.size(), 3u);
  EXPECT_EQ(rep.nodes[0].outcome, vote::granted);
  EXPECT_EQ(rep.nodes[1].outcome, vote::timeout);
  EXPECT_EQ(rep.nodes[2].outcome, vote::timeout);
  EXPECT_EQ(rep.nodes[1].node, "fake://node1");
  // Released also where the node timed out: its write may have landed.
  for (const auto& f : fakes)
    EXPECT_EQ(f->count(kind::release), 1u);
}

TEST_F(ManagerTest, DecidesWithoutWaitingForTheSlowestNodes) {
  auto s = fast();
  s.request_timeout = 60s;  // the test would hit the ctest deadline if we waited for it
  redlock::lock_manager m(io.get_executor(), make_nodes(5), s);
  fakes[3]->set_fallback(kind::acquire, step::silence());
  fakes[4]->set_fallback(kind::acquire, step::silence());
  auto out = lock(m, {"r"}, 120s);
  ASSERT_FALSE(out->ec) << out->ec.message();
  EXPECT_EQ(out->l.report().count(vote::granted), 3u);
  EXPECT_EQ(out->l.report().count(vote::pending), 2u);
}

TEST_F(ManagerTest, ALaggingNodeGetsNoNewAcquiresButStillGetsReleasesAndRecovers) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), lag_settings());
  std::vector<redlock::node_error> seen;
  m.on_node_error([&](const redlock::node_error& e) { seen.push_back(e); });
  // Node 2 answers its first acquire only after 300 ms: its backlog's oldest request ages.
  auto a = lock_and_let_lag(m, {2});
  ASSERT_FALSE(HasFailure());
  auto b = lock(m, {"b"});
  ASSERT_FALSE(b->ec) << b->ec.message();
  EXPECT_EQ(fakes[2]->count(kind::acquire), 1u) << "no new acquire joins a lagging node's queue";
  EXPECT_EQ(b->l.report().nodes[2].ec, errc::node_lagging);
  EXPECT_EQ(b->l.report().nodes[2].outcome, vote::error);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().node, "fake://node2");
  EXPECT_EQ(seen.back().ec, errc::node_lagging);
  // An extend is refused there too.
  auto e = extend(m, b->l);
  ASSERT_FALSE(e->ec) << e->ec.message();
  EXPECT_EQ(fakes[2]->count(kind::extend), 0u);
  // "b" never reached node 2, so its unlock sends nothing there (it cannot hold the value)...
  auto ub = unlock(m, e->l);
  EXPECT_FALSE(ub->ec) << ub->ec.message();
  EXPECT_EQ(fakes[2]->count(kind::release), 0u);
  // ...while "a" did, and its release goes out even though node 2 is still lagging.
  ASSERT_EQ(fakes[2]->in_flight(), 1u);
  auto ua = unlock(m, a->l);
  EXPECT_FALSE(ua->ec) << ua->ec.message();
  EXPECT_EQ(fakes[2]->count(kind::release), 1u);
  // Once the slow answer is in, node 2 is asked again.
  ASSERT_TRUE(run_until([&] { return fakes[2]->in_flight() == 0; }));
  auto c = lock(m, {"c"});
  ASSERT_FALSE(c->ec) << c->ec.message();
  EXPECT_EQ(fakes[2]->count(kind::acquire), 2u);
  EXPECT_NE(c->l.report().nodes[2].ec, errc::node_lagging);
}

TEST_F(ManagerTest, AFailedAttemptReleasesOnlyWhereAnAcquireWasSent) {
  redlock::lock_manager m(io.get_executor(), make_nodes(5), lag_settings());
  // Nodes 3 and 4 each hold an old request for 300 ms, then lag; 0-2 make the quorum.
  auto a = lock_and_let_lag(m, {3, 4});
  ASSERT_FALSE(HasFailure());
  // Another owner holds "b" on node 2: with 3 and 4 lagging no quorum is possible.
  fakes[2]->set_key("b", "someone-else");
  auto b = lock(m, {"b"});
  EXPECT_TRUE(b->ec == errc::quorum_unreachable || b->ec == errc::resource_locked)
      << b->ec.message();
  EXPECT_EQ(b->l.report().nodes[3].ec, errc::node_lagging);
  EXPECT_EQ(b->l.report().nodes[4].ec, errc::node_lagging);
  // Released where the acquire went (nodes 0-2), nowhere else.
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_EQ(fakes[i]->count(kind::release), 1u) << i;
  EXPECT_EQ(fakes[3]->count(kind::release) + fakes[4]->count(kind::release), 0u);
  EXPECT_EQ(fakes[0]->store().count("b"), 0u);
  EXPECT_EQ(fakes[2]->store().at("b"), "someone-else");
}

TEST_F(ManagerTest, ExtendResyncsOnlyNodesAnAcquireOnceWentTo) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), lag_settings());
  auto a = lock_and_let_lag(m, {2});
  ASSERT_FALSE(HasFailure());
  auto b = lock(m, {"b"});  // node 2 lagging: never asked for "b"
  ASSERT_FALSE(b->ec);
  ASSERT_EQ(b->l.report().nodes[2].ec, errc::node_lagging);
  ASSERT_TRUE(run_until([&] { return fakes[2]->in_flight() == 0; }));
  // Node 2 answers the extend "missing"; it never had "b", so it is not re-synced.
  auto e = extend(m, b->l);
  ASSERT_FALSE(e->ec) << e->ec.message();
  EXPECT_EQ(fakes[2]->count(kind::extend), 1u);
  EXPECT_EQ(fakes[2]->count(kind::acquire), 1u) << "no re-sync of a node never asked";
  EXPECT_EQ(fakes[2]->store().count("b"), 0u);
  // (A node that had the value and lost it is re-synced: ExtendResetsKeysOnARestartedNode...)
}

TEST_F(ManagerTest, AnAdoptedHandleIsReleasedOnEveryNode) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto a = lock(m, {"r"});
  ASSERT_FALSE(a->ec);
  auto adopted = m.adopt({"r"}, a->l.value(), 10s, a->l.validity_deadline());
  auto u = unlock(m, adopted);
  EXPECT_FALSE(u->ec) << u->ec.message();
  for (const auto& f : fakes)
    EXPECT_EQ(f->count(kind::release), 1u);
}

TEST_F(ManagerTest, ReportsShareOneCopyOfEachNodesIdThatIsNotTheNodesOwnString) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto a = lock(m, {"r"});
  ASSERT_FALSE(a->ec);
  auto b = lock(m, {"s"});
  ASSERT_FALSE(b->ec);
  const auto& rep = a->l.report();
  ASSERT_EQ(rep.nodes.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    // Shared, not copied per report (a held lock's memory)...
    EXPECT_EQ(&rep.nodes[i].node.str(), &b->l.report().nodes[i].node.str()) << i;
    // ...but not the node's own string: a report kept after the node (and its io_context)
    // is gone must not keep the node alive (issue 10, defect 4).
    EXPECT_NE(&rep.nodes[i].node.str(), &fakes[i]->id()) << i;
    EXPECT_EQ(rep.nodes[i].node, "fake://node" + std::to_string(i));
  }
}

TEST_F(ManagerTest, NegativeLagLimitIsRejected) {
  auto s = fast();
  s.node_lag_limit = -1ms;
  EXPECT_THROW(redlock::lock_manager(io.get_executor(), make_nodes(1), s), redlock::lock_error);
}

TEST_F(ManagerTest, PerCallRetryCountZeroMeansOneAttempt) {
  auto s = fast();
  s.retry_count = 10;
  redlock::lock_manager m(io.get_executor(), make_nodes(3), s);
  for (auto& f : fakes)
    f->set_key("r", "other");
  redlock::call_options once;
  once.retry_count = 0;
  auto out = lock(m, {"r"}, 10s, once);
  EXPECT_EQ(out->ec, errc::resource_locked);
  EXPECT_EQ(out->l.attempts(), 1);
  for (const auto& f : fakes)
    EXPECT_EQ(f->count(kind::acquire), 1u);
}

TEST_F(ManagerTest, RetriesReleaseBetweenAttemptsAndHonourTheRetryCount) {
  // Polling only: with wake-up, the confirmed subscription adds an attempt that does not
  // count (see WakeTest).
  auto o = fast();
  o.wakeup = false;
  redlock::lock_manager m(io.get_executor(), make_nodes(3), o);
  for (auto& f : fakes)
    f->set_key("r", "other");
  redlock::call_options three;
  three.retry_count = 3;
  auto out = lock(m, {"r"}, 10s, three);
  EXPECT_EQ(out->ec, errc::resource_locked);
  EXPECT_EQ(out->l.attempts(), 4);
  for (const auto& f : fakes) {
    EXPECT_EQ(f->count(kind::acquire), 4u);
    EXPECT_EQ(f->count(kind::release), 4u);
    // Release follows each acquire before the next one.
    const auto calls = f->calls();
    for (std::size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(calls[i].kind, i % 2 == 0 ? kind::acquire : kind::release);
    }
  }
}

TEST_F(ManagerTest, RetrySucceedsOnceTheOtherHolderIsGone) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  for (auto& f : fakes) {
    f->push(kind::acquire, step::integer(0));
    f->push(kind::acquire, step::integer(0));
  }
  redlock::call_options o;
  o.retry_count = 5;
  auto out = lock(m, {"r"}, 10s, o);
  ASSERT_FALSE(out->ec) << out->ec.message();
  EXPECT_EQ(out->l.attempts(), 3);
}

TEST_F(ManagerTest, CancellationOfAnyTypeReleasesAndCompletesWithCancelled) {
  for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                    asio::cancellation_type::total}) {
    redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
    for (auto& f : fakes)
      f->set_key("r", "other");
    redlock::call_options forever;
    forever.retry_count = -1;
    asio::cancellation_signal sig;
    auto out = std::make_shared<lock_out>();
    m.async_lock(
        {"r"}, 10s, forever,
        asio::bind_cancellation_slot(sig.slot(), [out](std::error_code ec, redlock::lock l) {
          out->done = true;
          out->ec = ec;
          out->l = std::move(l);
        }));
    ASSERT_TRUE(run_until([&] { return fakes[0]->count(kind::acquire) >= 2; }));
    sig.emit(type);
    ASSERT_TRUE(run_until([&] { return out->done; }));
    EXPECT_EQ(out->ec, errc::cancelled);
    EXPECT_FALSE(out->l.acquired());
    for (const auto& f : fakes) {
      EXPECT_GE(f->count(kind::release), 1u);
      EXPECT_EQ(f->count(kind::acquire), f->count(kind::release));
    }
  }
}

TEST_F(ManagerTest, CancellationAfterSuccessChangesNothing) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  asio::cancellation_signal sig;
  auto out = std::make_shared<lock_out>();
  m.async_lock({"r"}, 10s, redlock::call_options{},
               asio::bind_cancellation_slot(sig.slot(), [out](std::error_code ec, redlock::lock l) {
                 out->done = true;
                 out->ec = ec;
                 out->l = std::move(l);
               }));
  ASSERT_TRUE(run_until([&] { return out->done; }));
  sig.emit(asio::cancellation_type::terminal);  // the slot was cleared: a no-op
  io.restart();
  io.run_for(10ms);
  EXPECT_FALSE(out->ec);
  for (const auto& f : fakes)
    EXPECT_EQ(f->count(kind::release), 0u);
}

TEST_F(ManagerTest, NeverCompletesInsideTheInitiatingCall) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  bool called = false;
  m.async_lock({"r"}, 10s, [&](std::error_code, redlock::lock) { called = true; });
  EXPECT_FALSE(called);
  bool invalid_called = false;
  m.async_lock(std::vector<std::string>{}, 10s,
               [&](std::error_code, redlock::lock) { invalid_called = true; });
  EXPECT_FALSE(invalid_called);
  ASSERT_TRUE(run_until([&] { return called && invalid_called; }));
  bool quit_called = false;
  m.async_quit([&](std::error_code) { quit_called = true; });
  EXPECT_FALSE(quit_called);
  bool closed_called = false;
  m.async_lock({"r"}, 10s, [&](std::error_code, redlock::lock) { closed_called = true; });
  EXPECT_FALSE(closed_called);
  ASSERT_TRUE(run_until([&] { return quit_called && closed_called; }));
}

TEST_F(ManagerTest, QuitWaitsForOperationsAndTheirReleasesThenClosesNodes) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  for (auto& f : fakes) {
    f->push(kind::acquire, step::integer(0, 20ms));
    f->push(kind::release, step::integer(0, 40ms));
  }
  auto out = std::make_shared<lock_out>();
  m.async_lock({"r"}, 10s, [out](std::error_code ec, redlock::lock) {
    out->done = true;
    out->ec = ec;
  });
  bool quit_done = false;
  bool lock_done_first = false;
  m.async_quit([&](std::error_code ec) {
    EXPECT_FALSE(ec);
    quit_done = true;
    lock_done_first = out->done;
  });
  ASSERT_TRUE(run_until([&] { return quit_done; }));
  EXPECT_TRUE(lock_done_first);
  EXPECT_EQ(out->ec, errc::resource_locked);
  for (const auto& f : fakes) {
    EXPECT_TRUE(f->closed());
    EXPECT_EQ(f->count(kind::release), 1u);
    EXPECT_EQ(f->in_flight_at_close(), 0) << "a release was still in flight at close";
  }
  EXPECT_EQ(lock(m, {"r"})->ec, errc::closed);
  bool again = false;
  m.async_quit([&](std::error_code ec) {
    EXPECT_FALSE(ec);
    again = true;
  });
  EXPECT_TRUE(run_until([&] { return again; }));
}

TEST_F(ManagerTest, QuitDoesNotWaitForUnlimitedRetriesToSucceed) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  for (auto& f : fakes)
    f->set_key("r", "other");
  redlock::call_options forever;
  forever.retry_count = -1;
  auto out = std::make_shared<lock_out>();
  m.async_lock({"r"}, 10s, forever, [out](std::error_code ec, redlock::lock) {
    out->done = true;
    out->ec = ec;
  });
  ASSERT_TRUE(run_until([&] { return fakes[0]->count(kind::acquire) >= 2; }));
  bool quit_done = false;
  m.async_quit([&](std::error_code) { quit_done = true; });
  ASSERT_TRUE(run_until([&] { return quit_done && out->done; }));
  EXPECT_EQ(out->ec, errc::closed);
}

TEST_F(ManagerTest, DestructorClosesNodesWithoutWaiting) {
  auto out = std::make_shared<lock_out>();
  {
    redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
    for (auto& f : fakes)
      f->set_fallback(kind::acquire, step::silence());
    m.async_lock({"r"}, 10s, [out](std::error_code ec, redlock::lock) {
      out->done = true;
      out->ec = ec;
    });
    io.restart();
    io.poll();
  }
  for (const auto& f : fakes)
    EXPECT_TRUE(f->closed());
  ASSERT_TRUE(run_until([&] { return out->done; }));
  EXPECT_TRUE(out->ec);
}

TEST_F(ManagerTest, HookHearsEveryErrorAndTimeoutWithTheNodeId) {
  auto s = fast();
  s.request_timeout = 20ms;
  redlock::lock_manager m(io.get_executor(), make_nodes(3), s);
  std::vector<redlock::node_error> seen;
  m.on_node_error([&](const redlock::node_error& e) { seen.push_back(e); });
  fakes[0]->push(kind::acquire, step::error(make_error_code(errc::no_permission),
                                            "NOPERM this user has no permissions"));
  fakes[1]->set_fallback(kind::acquire, step::silence());
  auto out = lock(m, {"r"});
  EXPECT_EQ(out->ec, errc::quorum_unreachable);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].node, "fake://node0");
  EXPECT_EQ(seen[0].ec, errc::no_permission);
  EXPECT_EQ(seen[0].message, "NOPERM this user has no permissions");
  EXPECT_EQ(seen[1].node, "fake://node1");
  EXPECT_EQ(seen[1].ec, errc::timeout);
  EXPECT_EQ(out->l.report().nodes[0].message, "NOPERM this user has no permissions");
}

TEST_F(ManagerTest, ExtendOfAnExpiredLockFailsPromptlyAndSendsNothing) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto a = lock(m, {"r"}, 50ms);
  ASSERT_FALSE(a->ec);
  ASSERT_TRUE(run_until([&] { return a->l.expired(); }));
  const auto before = total_calls();
  auto e = extend(m, a->l);
  EXPECT_EQ(e->ec, errc::lock_expired);
  EXPECT_EQ(total_calls(), before);
}

TEST_F(ManagerTest, FailedExtendNeverRunsTheReleaseScript) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto a = lock(m, {"r"});
  ASSERT_FALSE(a->ec);
  fakes[0]->set_key("r", "thief");
  fakes[1]->set_key("r", "thief");
  auto e = extend(m, a->l);
  EXPECT_EQ(e->ec, errc::lock_lost);
  EXPECT_FALSE(e->l.acquired());
  for (const auto& f : fakes)
    EXPECT_EQ(f->count(kind::release), 0u);
  EXPECT_EQ(fakes[2]->store().at("r"), a->l.value());
}

TEST_F(ManagerTest, ExtendResetsKeysOnARestartedNodeWhileTheLockIsValid) {
  redlock::lock_manager m(io.get_executor(), make_nodes(5), fast());
  auto a = lock(m, {"a", "b"});
  ASSERT_FALSE(a->ec);
  fakes[1]->clear_store();  // restarted without persistence
  auto e = extend(m, a->l);
  ASSERT_FALSE(e->ec) << e->ec.message();
  ASSERT_TRUE(run_until([&] { return fakes[1]->store().size() == 2; }));
  EXPECT_EQ(fakes[1]->store().at("a"), a->l.value());
  EXPECT_EQ(fakes[1]->count(kind::acquire), 2u);  // the lock, then the re-sync
}

TEST_F(ManagerTest, UnlockOfAnExpiredLockIsPromptEvenWithUnlimitedRetries) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto a = lock(m, {"r"}, 30ms);
  ASSERT_FALSE(a->ec);
  ASSERT_TRUE(run_until([&] { return a->l.expired(); }));
  for (auto& f : fakes)
    f->set_fallback(kind::release, step::error(make_error_code(errc::timeout)));
  redlock::call_options forever;
  forever.retry_count = -1;
  auto u = unlock(m, a->l, forever);
  EXPECT_EQ(u->ec, errc::lock_expired);
  for (const auto& f : fakes)
    EXPECT_EQ(f->count(kind::release), 1u);
}

TEST_F(ManagerTest, UnlockCountsReleasedAndAbsentNodes) {
  redlock::lock_manager m(io.get_executor(), make_nodes(5), fast());
  auto a = lock(m, {"r"});
  ASSERT_FALSE(a->ec);
  fakes[0]->clear_store();
  for (std::size_t i = 0; i < 5; ++i) {
    fakes[i]->push(kind::release, step::store(std::chrono::milliseconds(i * 5)));
  }
  auto u = unlock(m, a->l);
  ASSERT_FALSE(u->ec);
  EXPECT_GE(u->r.released + u->r.absent, 3u);
  EXPECT_EQ(u->r.absent, 1u);  // node 0 answers first
}

TEST_F(ManagerTest, UnlockRetriesOnlyFailedNodes) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto a = lock(m, {"r"});
  ASSERT_FALSE(a->ec);
  fakes[1]->push(kind::release, step::error(make_error_code(errc::connection_lost)));
  fakes[2]->push(kind::release, step::error(make_error_code(errc::connection_lost)));
  redlock::call_options o;
  o.retry_count = 2;
  auto u = unlock(m, a->l, o);
  ASSERT_FALSE(u->ec) << u->ec.message();
  EXPECT_EQ(fakes[0]->count(kind::release), 1u);
  EXPECT_EQ(fakes[1]->count(kind::release), 2u);
  EXPECT_EQ(fakes[2]->count(kind::release), 2u);
  EXPECT_EQ(u->r.report.attempts, 2);
}

TEST_F(ManagerTest, WorksWithFuturesAndCoroutines) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto guard = asio::make_work_guard(io);
  std::thread t([&] { io.run(); });
  auto f = m.async_lock("r", 10s, asio::use_future);
  auto l = f.get();
  EXPECT_TRUE(l.acquired());
  auto u = m.async_unlock(l, asio::use_future).get();
  EXPECT_GE(u.released, 2u);

  auto done = std::make_shared<std::promise<bool>>();
  asio::co_spawn(
      io,
      [&m, done]() -> asio::awaitable<void> {
        auto held = co_await m.async_lock("c", 10s, asio::use_awaitable);
        auto longer = co_await held.async_extend(20s, asio::use_awaitable);
        auto [ec, r] = co_await longer.async_unlock(redlock::as_tuple(asio::use_awaitable));
        done->set_value(!ec && longer.value() == held.value());
      },
      asio::detached);
  auto fut = done->get_future();
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(fut.get());
  guard.reset();
  io.stop();
  t.join();
}

TEST_F(ManagerTest, LateRepliesAfterTheDecisionAreIgnoredSafely) {
  redlock::lock_manager m(io.get_executor(), make_nodes(5), fast());
  fakes[3]->push(kind::acquire, step::integer(0, 30ms));
  fakes[4]->push(kind::acquire, step::error(make_error_code(errc::server_error), "ERR x", 30ms));
  auto out = lock(m, {"r"});
  ASSERT_FALSE(out->ec);
  EXPECT_EQ(out->l.report().count(vote::pending), 2u);
  ASSERT_TRUE(run_until([&] { return fakes[3]->in_flight() == 0 && fakes[4]->in_flight() == 0; }));
  bool quit_done = false;
  m.async_quit([&](std::error_code) { quit_done = true; });
  ASSERT_TRUE(run_until([&] { return quit_done; }));
  EXPECT_EQ(out->l.report().count(vote::pending), 2u);  // the handle's report is a snapshot
}

TEST_F(ManagerTest, AwaitableOrOperatorCancelsAWaitingLock) {
  using namespace redlock::awaitable_operators;
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  for (auto& f : fakes)
    f->set_key("r", "other");
  redlock::call_options forever;
  forever.retry_count = -1;
  bool timer_won = false;
  bool finished = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer t(io, 50ms);
        std::vector<std::string> resources;  // GCC 12: no braced list inside co_await
        resources.emplace_back("r");
        auto lock_op = m.async_lock(std::move(resources), 10s, forever,
                                    redlock::as_tuple(asio::use_awaitable));
        auto winner = co_await (std::move(lock_op) || t.async_wait(asio::use_awaitable));
        timer_won = winner.index() == 1;
        finished = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until([&] { return finished; }));
  EXPECT_TRUE(timer_won);
  ASSERT_TRUE(run_until([&] {
    for (const auto& f : fakes) {
      if (f->count(kind::acquire) != f->count(kind::release))
        return false;
    }
    return true;
  }));
}

TEST(BlockingManager, ThrowsLockErrorWithTheReportOnFailure) {
  asio::io_context io;
  std::vector<std::shared_ptr<redlock::node>> nodes;
  std::vector<std::shared_ptr<fake_node>> fakes;
  // The fakes post their replies to their own io_context, run on a thread here.
  auto guard = asio::make_work_guard(io);
  std::thread t([&] { io.run(); });
  for (int i = 0; i < 3; ++i) {
    fakes.push_back(std::make_shared<fake_node>(io.get_executor(), "fake://b" + std::to_string(i)));
    nodes.push_back(fakes.back());
  }
  {
    redlock::manager_options s;
    s.retry_count = 0;
    redlock::blocking_lock_manager b(nodes, s);
    auto l = b.lock({"r"}, 10s);
    EXPECT_TRUE(l.acquired());
    auto l2 = b.extend(l, 20s);
    EXPECT_EQ(l2.value(), l.value());
    std::error_code ec;
    auto other = b.lock({"r"}, 10s, {}, ec);
    EXPECT_EQ(ec, errc::resource_locked);
    EXPECT_EQ(other.report().nodes.size(), 3u);
    try {
      b.lock({"r"}, 10s);
      ADD_FAILURE() << "no exception";
    } catch (const redlock::lock_error& e) {
      EXPECT_EQ(e.code(), errc::resource_locked);
      EXPECT_NE(std::string(e.what()).find("fake://b1: denied"), std::string::npos) << e.what();
    }
    auto r = b.unlock(l2);
    EXPECT_GE(r.released, 2u);
  }
  for (const auto& f : fakes)
    EXPECT_TRUE(f->closed());
  guard.reset();
  io.stop();
  t.join();
}

// ---- issue 10: nothing left behind ------------------------------------------------------

// True once no fake node holds `value` under any key (waits, bounded).
bool none_hold(ManagerTest& t, const std::string& value, std::chrono::milliseconds limit = 5s) {
  return t.run_until(
      [&] {
        for (const auto& f : t.fakes) {
          for (const auto& [k, v] : f->store())
            if (v == value)
              return false;
        }
        return true;
      },
      limit);
}

TEST_F(ManagerTest, AFailedAcquireRetriesALostReleaseUntilTheNodeConfirms) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  fakes[0]->set_key("r", "someone-else");
  fakes[1]->set_key("r", "someone-else");
  // Node 2 grants, then its release is lost with the connection (fire-once left the key for
  // the whole TTL).
  fakes[2]->push(kind::release, step::error(make_error_code(errc::connection_lost), "reset"));
  auto a = lock(m, {"r"});
  ASSERT_EQ(a->ec, errc::resource_locked);
  ASSERT_EQ(fakes[2]->store().count("r"), 1u) << "node 2 should have granted";
  const auto value = fakes[2]->store().at("r");
  EXPECT_TRUE(none_hold(*this, value)) << "the release was not retried";
  EXPECT_EQ(fakes[2]->count(kind::release), 2u);
  EXPECT_EQ(fakes[0]->store().at("r"), "someone-else") << "only our value is deleted";
}

TEST_F(ManagerTest, ARetriedReleaseBacksOffAndStopsOnceTheKeysHaveExpired) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  fakes[0]->set_key("r", "someone-else");
  fakes[1]->set_key("r", "someone-else");
  fakes[2]->set_fallback(kind::release, step::error(make_error_code(errc::connect_failed)));
  auto a = lock(m, {"r"}, 300ms);
  ASSERT_EQ(a->ec, errc::resource_locked);
  // Bounded: after the TTL nothing more is sent, and the operation ends (quit completes).
  bool quit = false;
  std::error_code quit_ec;
  ASSERT_TRUE(run_until([&] { return std::chrono::steady_clock::now() > a->started + 400ms; }));
  const auto sent = fakes[2]->count(kind::release);
  EXPECT_GE(sent, 3u) << "retried with backoff while the key could exist";
  EXPECT_LE(sent, 12u) << "backoff, not a busy loop";
  m.async_quit([&](std::error_code ec) {
    quit = true;
    quit_ec = ec;
  });
  ASSERT_TRUE(run_until([&] { return quit; }, 2s));
  EXPECT_FALSE(quit_ec) << "the keys expired: nothing left to confirm";
  EXPECT_EQ(fakes[2]->count(kind::release), sent);
}

TEST_F(ManagerTest, AnAbsentAnswerDoesNotEndTheCleanupWhileATimedOutAcquireMayStillRun) {
  // Found by the soak: an acquire that timed out on a paused server ran after its release had
  // answered "absent", and the key stayed for its TTL.
  auto s = fast();
  s.request_timeout = 30ms;
  redlock::lock_manager m(io.get_executor(), make_nodes(3), s);
  fakes[0]->set_key("r", "someone-else");
  fakes[1]->set_key("r", "someone-else");
  fakes[2]->push(kind::acquire, step::error(make_error_code(errc::timeout), "timed out"));
  auto a = lock(m, {"r"}, 3s);
  ASSERT_EQ(a->ec, errc::resource_locked);
  const auto value = fakes[2]->calls().at(0).args.at(0);
  ASSERT_TRUE(run_until([&] { return fakes[2]->count(kind::release) >= 1; }));
  // The timed-out acquire lands now, after the first release found nothing.
  ASSERT_TRUE(run_until([&] { return fakes[2]->in_flight() == 0; }));
  fakes[2]->set_key("r", value);
  const auto releases_before = fakes[2]->count(kind::release);
  EXPECT_TRUE(none_hold(*this, value)) << "the cleanup stopped at the first \"absent\"";
  EXPECT_GT(fakes[2]->count(kind::release), releases_before) << "deleted by a later release";
}

TEST_F(ManagerTest, ATimeoutLearnedAfterTheReleaseWasConfirmedRestartsTheCleanup) {
  // Node 2's release answered "absent" first; only then did its acquire report a timeout.
  auto s = fast();
  s.request_timeout = 200ms;
  redlock::lock_manager m(io.get_executor(), make_nodes(3), s);
  fakes[0]->set_key("r", "someone-else");
  fakes[1]->set_key("r", "someone-else");
  fakes[2]->push(kind::acquire, step::error(make_error_code(errc::timeout), "timed out", 50ms));
  auto a = lock(m, {"r"}, 3s);
  ASSERT_EQ(a->ec, errc::resource_locked);
  const auto value = fakes[2]->calls().at(0).args.at(0);
  ASSERT_TRUE(run_until([&] { return fakes[2]->in_flight() == 0; }));
  ASSERT_GE(fakes[2]->count(kind::release), 1u);
  fakes[2]->set_key("r", value);  // the acquire lands late
  EXPECT_TRUE(none_hold(*this, value)) << "the cleanup had settled before the timeout was known";
}

TEST_F(ManagerTest, AnUnlockKeepsReleasingWhereTheGrantedLocksAcquireTimedOut) {
  // The lock was granted by nodes 0 and 1; node 2's acquire timed out and may still run there
  // (a paused server resuming). The unlock's "absent" from node 2 is no proof.
  auto s = fast();
  s.request_timeout = 30ms;
  redlock::lock_manager m(io.get_executor(), make_nodes(3), s);
  fakes[2]->push(kind::acquire, step::error(make_error_code(errc::timeout), "timed out"));
  auto a = lock(m, {"r"}, 3s);
  ASSERT_FALSE(a->ec);
  EXPECT_NE(redlock::detail::lock_access::uncertain_nodes(a->l) & 4u, 0u)
      << "node 2's write has an unknown fate";
  EXPECT_EQ(redlock::detail::lock_access::uncertain_nodes(a->l) & 3u, 0u)
      << "nodes 0 and 1 answered";
  auto u = unlock(m, a->l);
  EXPECT_FALSE(u->ec);
  const auto releases = fakes[2]->count(kind::release);
  fakes[2]->set_key("r", a->l.value());  // the late acquire lands
  EXPECT_TRUE(none_hold(*this, a->l.value())) << "the unlock stopped at node 2's \"absent\"";
  EXPECT_GT(fakes[2]->count(kind::release), releases);
}

TEST_F(ManagerTest, AnUnlockStopsChasingOnceTheGrantedLocksLateWriteWasAnswered) {
  // Node 2's acquire was still unanswered when nodes 0 and 1 granted; it then answered
  // "denied" (another value was there). Its fate is known: the unlock's "absent" from node 2
  // is proof, so the cleanup ends and quit does not wait out its timeout.
  auto s = fast();
  s.quit_timeout = 1000ms;
  redlock::lock_manager m(io.get_executor(), make_nodes(3), s);
  fakes[2]->push(kind::acquire, step::integer(0, 100ms));
  auto a = lock(m, {"r"}, 10s);
  ASSERT_FALSE(a->ec);
  ASSERT_NE(redlock::detail::lock_access::uncertain_nodes(a->l) & 4u, 0u)
      << "node 2's write was unanswered when the lock was granted";
  auto u = unlock(m, a->l);
  EXPECT_FALSE(u->ec);
  ASSERT_TRUE(run_until([&] { return fakes[2]->in_flight() == 0; }));
  std::error_code quit_ec = make_error_code(errc::closed);
  bool quit_done = false;
  m.async_quit([&](std::error_code ec) {
    quit_ec = ec;
    quit_done = true;
  });
  ASSERT_TRUE(run_until([&] { return quit_done; }, 5s));
  EXPECT_FALSE(quit_ec) << "quit waited for a cleanup that had nothing left to find: "
                        << quit_ec.message();
}

TEST_F(ManagerTest, AnUnlockRetriesNodesThatDidNotConfirmAfterItCompleted) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto a = lock(m, {"r"});
  ASSERT_FALSE(a->ec);
  fakes[2]->push(kind::release, step::error(make_error_code(errc::connection_lost), "reset"));
  auto u = unlock(m, a->l);
  EXPECT_FALSE(u->ec);
  EXPECT_TRUE(none_hold(*this, a->l.value())) << "node 2 kept the key";
  EXPECT_EQ(fakes[2]->count(kind::release), 2u);
}

TEST_F(ManagerTest, QuitDrainsCleanupButGivesUpAtQuitTimeout) {
  auto s = fast();
  s.quit_timeout = 100ms;
  redlock::lock_manager m(io.get_executor(), make_nodes(3), s);
  auto a = lock(m, {"r"}, 60s);
  ASSERT_FALSE(a->ec);
  fakes[2]->set_fallback(kind::release, step::error(make_error_code(errc::connect_failed)));
  auto u = unlock(m, a->l);
  EXPECT_FALSE(u->ec);
  bool quit = false;
  std::error_code quit_ec;
  const auto t0 = std::chrono::steady_clock::now();
  m.async_quit([&](std::error_code ec) {
    quit = true;
    quit_ec = ec;
  });
  ASSERT_TRUE(run_until([&] { return quit; }, 5s)) << "quit must be bounded by quit_timeout";
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms) << "quit waited for the cleanup";
  EXPECT_EQ(quit_ec, errc::timeout) << "a release was still unconfirmed";
  EXPECT_GE(fakes[2]->count(kind::release), 2u);
  for (const auto& f : fakes)
    EXPECT_TRUE(f->closed());
}

TEST_F(ManagerTest, QuitSucceedsOnceCleanupSettled) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto a = lock(m, {"r"}, 60s);
  ASSERT_FALSE(a->ec);
  fakes[2]->push(kind::release, step::error(make_error_code(errc::connection_lost), "reset"));
  auto u = unlock(m, a->l);
  EXPECT_FALSE(u->ec);
  bool quit = false;
  std::error_code quit_ec{make_error_code(errc::closed)};
  m.async_quit([&](std::error_code ec) {
    quit = true;
    quit_ec = ec;
  });
  ASSERT_TRUE(run_until([&] { return quit; }));
  EXPECT_FALSE(quit_ec);
  EXPECT_TRUE(fakes[2]->store().empty()) << "quit closed the node before the retry";
}

TEST_F(ManagerTest, ALateMissingAnswerToAnExtendDoesNotBringBackAnUnlockedKey) {
  // Issue 10, defect 3: extend, unlock, and the slow node's late "missing" re-set the key.
  redlock::lock_manager m(io.get_executor(), make_nodes(5), fast());
  auto a = lock(m, {"r"});
  ASSERT_FALSE(a->ec);
  fakes[4]->clear_store();                           // node 4 lost the key (restart)
  fakes[4]->push(kind::extend, step::store(150ms));  // and answers "missing" late
  auto e = extend(m, a->l, 10s);
  ASSERT_FALSE(e->ec);
  auto u = unlock(m, e->l);
  EXPECT_FALSE(u->ec);
  // Wait past the late answer; the key must stay gone.
  ASSERT_TRUE(run_until([&] { return fakes[4]->in_flight() == 0; }));
  ASSERT_TRUE(run_until([&] { return std::chrono::steady_clock::now() > a->started + 300ms; }));
  EXPECT_EQ(fakes[4]->count(kind::acquire), 1u) << "a re-sync was sent after the unlock";
  EXPECT_TRUE(none_hold(*this, a->l.value(), 100ms));
}

TEST_F(ManagerTest, ALaterExtendStopsTheEarlierExtendsResyncs) {
  redlock::lock_manager m(io.get_executor(), make_nodes(5), fast());
  auto a = lock(m, {"r"});
  ASSERT_FALSE(a->ec);
  fakes[4]->clear_store();
  fakes[4]->push(kind::extend, step::store(150ms));
  auto e1 = extend(m, a->l, 10s);
  ASSERT_FALSE(e1->ec);
  auto e2 = extend(m, e1->l, 10s);  // node 4 answers this one at once: "missing" → one re-sync
  ASSERT_FALSE(e2->ec);
  ASSERT_TRUE(run_until([&] { return fakes[4]->in_flight() == 0; }));
  ASSERT_TRUE(run_until([&] { return std::chrono::steady_clock::now() > a->started + 300ms; }));
  EXPECT_EQ(fakes[4]->count(kind::acquire), 2u) << "the first extend's late answer re-synced too";
}

TEST_F(ManagerTest, WaitAllNodesUnlockCountsEveryNodesAnswer) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto a = lock(m, {"r"});
  ASSERT_FALSE(a->ec);
  fakes[2]->clear_store();                           // node 2 never had the key
  fakes[1]->push(kind::release, step::store(30ms));  // and node 1 is slow
  redlock::call_options all;
  all.wait_all_nodes = true;
  auto u = unlock(m, a->l, all);
  EXPECT_FALSE(u->ec);
  EXPECT_EQ(u->r.released, 2u) << "the slow node's release counted";
  EXPECT_EQ(u->r.absent, 1u);
}

TEST_F(ManagerTest, RefusalsNameTheArgumentInTheReport) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto e = lock(m, {"a", ""});
  EXPECT_EQ(e->ec, errc::invalid_argument);
  EXPECT_EQ(e->l.report().detail, "resources[1] is empty");
  auto d = lock(m, {"a", "b", "a"});
  EXPECT_EQ(d->ec, errc::invalid_argument);
  EXPECT_EQ(d->l.report().detail, "resources[0] and resources[2] are the same resource");
  auto t = lock(m, {"a"}, std::chrono::milliseconds(std::int64_t{1} << 32));
  EXPECT_EQ(t->ec, errc::invalid_argument);
  EXPECT_NE(t->l.report().detail.find("ttl is 4294967296 ms; the largest is 2147483647 ms"),
            std::string::npos)
      << t->l.report().detail;
  redlock::call_options bad;
  bad.retry_count = -2;
  auto r = lock(m, {"a"}, 10s, bad);
  EXPECT_NE(r->l.report().detail.find("retry_count"), std::string::npos);
  EXPECT_EQ(total_calls(), 0u);
}

TEST_F(ManagerTest, OneDeploymentListedTwiceIsRefusedBeforeAnythingIsSent) {
  auto nodes = make_nodes(3);
  fakes[0]->set_identity({"run_id:aaa"});
  fakes[1]->set_identity({"run_id:bbb"});
  fakes[2]->set_identity({"run_id:aaa"});  // e.g. localhost and 127.0.0.1
  redlock::lock_manager m(io.get_executor(), nodes, fast());
  auto a = lock(m, {"r"});
  EXPECT_EQ(a->ec, errc::duplicate_deployment);
  const auto& detail = a->l.report().detail;
  EXPECT_NE(detail.find("nodes[0] (fake://node0)"), std::string::npos) << detail;
  EXPECT_NE(detail.find("nodes[2] (fake://node2)"), std::string::npos) << detail;
  EXPECT_NE(detail.find("run_id:aaa"), std::string::npos) << detail;
  EXPECT_EQ(total_calls(), 0u);
  fakes.clear();
  auto distinct = make_nodes(3);
  for (std::size_t i = 0; i < 3; ++i)
    fakes[i]->set_identity({"run_id:" + std::to_string(i)});
  redlock::lock_manager ok(io.get_executor(), distinct, fast());
  EXPECT_FALSE(lock(ok, {"r"})->ec);
}

TEST_F(ManagerTest, MoveAssignmentClosesTheOldManagersNodes) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  auto old_fakes = fakes;
  fakes.clear();
  redlock::lock_manager other(io.get_executor(), make_nodes(3), fast());
  m = std::move(other);
  for (const auto& f : old_fakes)
    EXPECT_TRUE(f->closed()) << "the old manager was dropped with its nodes open";
  for (const auto& f : fakes)
    EXPECT_FALSE(f->closed());
  EXPECT_FALSE(lock(m, {"r"})->ec);
}

TEST_F(ManagerTest, HookCallsNeverOverlapEvenFromOtherThreads) {
  redlock::lock_manager m(io.get_executor(), make_nodes(3), fast());
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> calls{0};
  m.on_node_error([&](const redlock::node_error&) {
    if (inside.fetch_add(1) != 0)
      overlaps.fetch_add(1);
    // Widen the window so that concurrent calls would be seen.
    std::this_thread::sleep_for(200us);
    inside.fetch_sub(1);
    calls.fetch_add(1);
  });
  auto& impl = *redlock::detail::impl_of(m);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int k = 0; k < 50; ++k)
        redlock::detail::report_node_error(impl, redlock::node_error{"x", {}, "m"});
    });
  }
  auto busy = asio::make_work_guard(io);  // run_for must not stop while the threads post
  std::thread runner([&] {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (calls.load() < 150 && std::chrono::steady_clock::now() < until)
      io.run_for(5ms);
  });
  for (auto& th : threads)
    th.join();
  runner.join();
  busy.reset();
  EXPECT_EQ(calls.load(), 150);
  EXPECT_EQ(overlaps.load(), 0);
}

TEST(ManagerLifetime, HandlesAndReportsOutliveTheManagerAndItsIoContext) {
  // Issue 10, defect 4: a handle or a report kept after the manager and io_context were
  // destroyed was a heap-use-after-free (ASan): it kept the manager's strand and the nodes.
  redlock::lock kept;
  redlock::report kept_report;
  redlock::node_result kept_node;
  {
    asio::io_context io;
    std::vector<std::shared_ptr<fake_node>> fakes;
    auto nodes = redlock::test::make_fake_nodes(io.get_executor(), 3, fakes, "fake://life");
    redlock::lock_manager m(io.get_executor(), nodes, {});
    bool done = false;
    m.async_lock("r", 10s, [&](std::error_code ec, redlock::lock l) {
      EXPECT_FALSE(ec);
      kept = std::move(l);
      done = true;
    });
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (!done && std::chrono::steady_clock::now() < until)
      io.run_one_for(5ms);
    ASSERT_TRUE(done);
    kept_report = kept.report();
    kept_node = kept.report().nodes.at(0);
  }
  EXPECT_EQ(kept_report.nodes.size(), 3u);
  EXPECT_EQ(kept_node.node, "fake://life0");
  EXPECT_FALSE(redlock::detail::lock_access::manager(kept))
      << "the handle must not keep the manager alive";
  std::promise<std::error_code> p;
  kept.async_unlock([&](std::error_code ec, redlock::unlock_result) { p.set_value(ec); });
  auto f = p.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), errc::closed);
  auto copy = kept;  // copying and destroying are safe too
}

TEST(ManagerLifetime, BlockingManagersHandlesAreSafeToKeep) {
  redlock::lock kept;
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::thread t([&] { io.run(); });
  {
    std::vector<std::shared_ptr<fake_node>> fakes;
    auto nodes = redlock::test::make_fake_nodes(io.get_executor(), 3, fakes, "fake://blk");
    redlock::blocking_lock_manager b(nodes, {});
    kept = b.lock({"r"}, 10s);
    ASSERT_TRUE(kept.acquired());
  }
  EXPECT_FALSE(redlock::detail::lock_access::manager(kept));
  EXPECT_EQ(kept.report().nodes.at(1).node, "fake://blk1");
  guard.reset();
  io.stop();
  t.join();
}

TEST_F(ManagerTest, OverlappingOperationsOnAFarAwayNodeAreNotRefusedAsLagging) {
  // Issue 10, defect 7: at a 150 ms round trip with default settings (lag limit was
  // request_timeout / 2 = 100 ms), any operation overlapping another failed at once.
  auto s = fast();
  s.request_timeout = 200ms;
  redlock::lock_manager m(io.get_executor(), make_nodes(3), s);
  for (auto& f : fakes) {
    f->set_fallback(kind::acquire, step::store(150ms));
    f->set_fallback(kind::release, step::store(150ms));
  }
  for (int round = 0; round < 3; ++round) {
    auto first = std::make_shared<lock_out>();
    m.async_lock("a" + std::to_string(round), 10s, [first](std::error_code ec, redlock::lock l) {
      first->done = true;
      first->ec = ec;
      first->l = std::move(l);
    });
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(run_until([&] { return std::chrono::steady_clock::now() - t0 > 120ms; }));
    auto second = lock(m, {"b" + std::to_string(round)});
    EXPECT_FALSE(second->ec) << "round " << round << ": " << second->ec.message() << "\n"
                             << second->l.report().to_string();
    ASSERT_TRUE(run_until([&] { return first->done; }));
    EXPECT_FALSE(first->ec) << first->ec.message();
  }
}

}  // namespace

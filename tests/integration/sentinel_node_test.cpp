// A sentinel_node against a real master, replica and sentinel on loopback.
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include "internal/resp.hpp"
#include "redlock/blocking.hpp"
#include "redlock/error.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/sentinel_node.hpp"
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

class SentinelNode : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    work_.reset();
    io_.stop();
    thread_.join();
  }

  // One request, waited for under a deadline so that a hang fails the test instead.
  result eval(redlock::sentinel_node& n, const std::string& key, const std::string& value) {
    static const redlock::script set_script("return redis.call('SET', KEYS[1], ARGV[1])");
    auto p = std::make_shared<std::promise<result>>();
    auto f = p->get_future();
    std::vector<std::string> keys{key};
    std::vector<std::string> args{value};
    n.async_eval(set_script, keys, args, [p](std::error_code ec, redlock::reply r) {
      p->set_value({ec, std::move(r)});
    });
    if (f.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "request did not complete within 10 s";
      return {redlock::errc::timeout, {}};
    }
    return f.get();
  }

  static redis_server_options sentinel_options(const redis_server& master) {
    redis_server_options o;
    o.extra_config = {"sentinel monitor mymaster 127.0.0.1 " + std::to_string(master.port()) + " 1",
                      "sentinel down-after-milliseconds mymaster 500",
                      "sentinel failover-timeout mymaster 5000"};
    o.extra_args = {"--sentinel"};
    return o;
  }

  // Points the sentinel's `mymaster` at another server, as a failover that left the old
  // master writable would look to a client: the old master keeps accepting writes, only the
  // sentinels know better.
  static void remonitor(const redis_server& sentinel, const redis_server& new_master) {
    auto r = sentinel.command({"SENTINEL", "REMOVE", "mymaster"});
    ASSERT_FALSE(r.is_error()) << r.str;
    r = sentinel.command(
        {"SENTINEL", "MONITOR", "mymaster", "127.0.0.1", std::to_string(new_master.port()), "1"});
    ASSERT_FALSE(r.is_error()) << r.str;
  }

  static std::string address_of(const redis_server& s) {
    return "127.0.0.1:" + std::to_string(s.port());
  }

  static std::string url_of(const redis_server& sentinel, const std::string& name = "mymaster") {
    return "redis+sentinel://127.0.0.1:" + std::to_string(sentinel.port()) + "/" + name;
  }

  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::thread thread_;
};

TEST_F(SentinelNode, ResolvesTheMasterAndRunsScriptsThere) {
  redis_server master;
  redis_server sentinel(sentinel_options(master));
  redlock::sentinel_node node(io_.get_executor(), redlock::parse_sentinel_url(url_of(sentinel)));

  auto res = eval(node, "k", "v1");
  ASSERT_FALSE(res.ec) << res.ec.message() << " " << res.r.str;
  EXPECT_EQ(res.r.str, "OK");
  EXPECT_EQ(master.command({"GET", "k"}).str, "v1");
  EXPECT_EQ(node.current_master(), "127.0.0.1:" + std::to_string(master.port()));
  EXPECT_EQ(node.id(),
            "redis+sentinel://127.0.0.1:" + std::to_string(sentinel.port()) + "/mymaster");
}

TEST_F(SentinelNode, FollowsAFailoverToThePromotedReplica) {
  redis_server master;
  redis_server_options ro;
  ro.extra_config = {"replicaof 127.0.0.1 " + std::to_string(master.port())};
  redis_server replica(ro);
  redis_server sentinel(sentinel_options(master));
  ASSERT_TRUE(wait_for(
      [&] {
        auto r = replica.command({"INFO", "replication"});
        return r.str.find("master_link_status:up") != std::string::npos;
      },
      15s));
  // The sentinel learns about replicas from the master's INFO.
  ASSERT_TRUE(wait_for(
      [&] {
        return !sentinel.command({"SENTINEL", "replicas", "mymaster"}).elements.empty();
      },
      15s));

  redlock::sentinel_node node(io_.get_executor(), redlock::parse_sentinel_url(url_of(sentinel)));
  ASSERT_FALSE(eval(node, "before", "1").ec);
  ASSERT_EQ(node.current_master(), "127.0.0.1:" + std::to_string(master.port()));

  auto r = sentinel.command({"SENTINEL", "FAILOVER", "mymaster"});
  ASSERT_FALSE(r.is_error()) << r.str;

  // Requests fail (READONLY or a reset) until the node has asked the sentinel again; bounded.
  const std::string promoted = "127.0.0.1:" + std::to_string(replica.port());
  int attempts = 0;
  EXPECT_TRUE(wait_for(
      [&] {
        ++attempts;
        auto res = eval(node, "after", "2");
        return !res.ec && node.current_master() == promoted;
      },
      30s))
      << "attempts: " << attempts << ", current master: " << node.current_master();
  EXPECT_EQ(replica.command({"GET", "after"}).str, "2");
}

TEST_F(SentinelNode, FailsFastWhenNoSentinelAnswers) {
  const auto port = redlock::test::free_port();
  redlock::sentinel_options cfg =
      redlock::parse_sentinel_url("redis+sentinel://127.0.0.1:" + std::to_string(port) + "/m");
  cfg.options.connect_timeout = 300ms;
  redlock::sentinel_node node(io_.get_executor(), cfg);
  const auto t0 = std::chrono::steady_clock::now();
  auto res = eval(node, "k", "v");
  EXPECT_EQ(res.ec, redlock::errc::connect_failed);
  EXPECT_NE(res.r.str.find("'m'"), std::string::npos) << res.r.str;
  // No hang: bounded by the connect timeout, with a generous margin.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(SentinelNode, UnknownMasterNameIsAClearError) {
  redis_server master;
  redis_server sentinel(sentinel_options(master));
  redlock::sentinel_node node(io_.get_executor(),
                              redlock::parse_sentinel_url(url_of(sentinel, "nosuchmaster")));
  auto res = eval(node, "k", "v");
  EXPECT_EQ(res.ec, redlock::errc::connect_failed);
  EXPECT_NE(res.r.str.find("unknown master"), std::string::npos) << res.r.str;
  EXPECT_EQ(master.command({"EXISTS", "k"}).integer, 0);
}

TEST_F(SentinelNode, FallsBackToTheNextSentinel) {
  redis_server master;
  redis_server sentinel(sentinel_options(master));
  const auto dead = redlock::test::free_port();
  redlock::sentinel_options cfg =
      redlock::parse_sentinel_url("redis+sentinel://127.0.0.1:" + std::to_string(dead) +
                                  ",127.0.0.1:" + std::to_string(sentinel.port()) + "/mymaster");
  redlock::sentinel_node node(io_.get_executor(), cfg);
  auto res = eval(node, "k", "v");
  ASSERT_FALSE(res.ec) << res.r.str;
  EXPECT_EQ(master.command({"GET", "k"}).str, "v");
}

TEST_F(SentinelNode, CloseFailsLaterRequestsWithClosed) {
  redis_server master;
  redis_server sentinel(sentinel_options(master));
  redlock::sentinel_node node(io_.get_executor(), redlock::parse_sentinel_url(url_of(sentinel)));
  ASSERT_FALSE(eval(node, "k", "v").ec);
  node.close();
  EXPECT_EQ(eval(node, "k", "v").ec, redlock::errc::closed);
}

// Resumes a SIGSTOPped server however the test ends, so that later steps (and the
// server's own shutdown) are not held up by it.
struct resume_at_exit {
  redis_server& s;
  ~resume_at_exit() { s.resume(); }
};

TEST_F(SentinelNode, PeriodicRefreshFollowsAMasterChangeWhileTheOldMasterStaysWritable) {
  redis_server old_master;
  redis_server new_master;
  redis_server sentinel(sentinel_options(old_master));
  redlock::sentinel_options cfg = redlock::parse_sentinel_url(url_of(sentinel));
  cfg.refresh_interval = 100ms;
  redlock::sentinel_node node(io_.get_executor(), cfg);
  ASSERT_FALSE(eval(node, "k", "old").ec);
  ASSERT_EQ(node.current_master(), address_of(old_master));

  remonitor(sentinel, new_master);
  // Nothing fails on the old master, so only the periodic check can notice the change.
  int requests = 0;
  EXPECT_TRUE(wait_for(
      [&] {
        ++requests;
        auto res = eval(node, "k", "r" + std::to_string(requests));
        EXPECT_FALSE(res.ec) << res.ec.message() << " " << res.r.str;
        return node.current_master() == address_of(new_master);
      },
      10s))
      << "requests: " << requests << ", current master: " << node.current_master();
  ASSERT_FALSE(eval(node, "k", "new").ec);
  EXPECT_EQ(new_master.command({"GET", "k"}).str, "new");
  EXPECT_NE(old_master.command({"GET", "k"}).str, "new");
}

TEST_F(SentinelNode, ARequestInFlightToTheOldMasterCompletesWhenTheMasterChanges) {
  redis_server old_master;
  redis_server new_master;
  redis_server sentinel(sentinel_options(old_master));
  redlock::sentinel_options cfg = redlock::parse_sentinel_url(url_of(sentinel));
  cfg.refresh_interval = 100ms;
  cfg.options.request_timeout = 3000ms;  // far above the script's 300 ms, even on a busy host
  redlock::sentinel_node node(io_.get_executor(), cfg);
  ASSERT_FALSE(eval(node, "k", "old").ec);
  remonitor(sentinel, new_master);
  // Let the periodic check fall due, so that the slow request below starts it: the check
  // answers (new master) while the request still runs on the old one.
  std::this_thread::sleep_for(150ms);

  static const redlock::script slow(
      "local t = redis.call('TIME') "
      "local start = t[1] * 1000000 + t[2] "
      "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - start >= 300000 "
      "redis.call('SET', KEYS[1], ARGV[1]) return 'done'");
  auto p = std::make_shared<std::promise<result>>();
  auto f = p->get_future();
  std::vector<std::string> keys{"slow"};
  std::vector<std::string> args{"ran"};
  node.async_eval(slow, keys, args, [p](std::error_code ec, redlock::reply r) {
    p->set_value({ec, std::move(r)});
  });
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  auto res = f.get();
  // It ran on the old master; its answer is delivered, not replaced by errc::closed.
  EXPECT_FALSE(res.ec) << res.ec.message() << " " << res.r.str;
  EXPECT_EQ(res.r.str, "done");
  EXPECT_EQ(old_master.command({"GET", "slow"}).str, "ran");
  EXPECT_TRUE(wait_for([&] { return node.current_master() == address_of(new_master); }, 5s));
  ASSERT_FALSE(eval(node, "k", "new").ec);
  EXPECT_EQ(new_master.command({"GET", "k"}).str, "new");
}

TEST_F(SentinelNode, RequestsToAHealthyMasterSucceedWhileTheOnlySentinelIsDown) {
  redis_server master;
  redis_server sentinel(sentinel_options(master));
  redlock::sentinel_options cfg = redlock::parse_sentinel_url(url_of(sentinel));
  cfg.refresh_interval = 100ms;
  // An unresponsive sentinel costs this long per check; requests must not wait for it.
  cfg.options.request_timeout = 1000ms;
  redlock::sentinel_node node(io_.get_executor(), cfg);
  ASSERT_FALSE(eval(node, "k", "first").ec);

  // A bounded stream across several refresh periods (each check fails after 1 s).
  auto stream = [&](const char* phase) {
    // At least 2.5 s and 20 requests, at most 1000 requests or 15 s.
    const auto start = std::chrono::steady_clock::now();
    int sent = 0;
    int failed = 0;
    std::string first_error;
    for (auto now = start; sent < 1000 && now - start < 15s && (now - start < 2500ms || sent < 20);
         now = std::chrono::steady_clock::now()) {
      auto res = eval(node, "k", std::to_string(sent));
      ++sent;
      if (res.ec && ++failed == 1)
        first_error = res.ec.message() + " " + res.r.str;
      std::this_thread::sleep_for(2ms);  // pacing, not waiting for anything
    }
    EXPECT_EQ(failed, 0) << phase << ": " << failed << " of " << sent
                         << " requests failed; first: " << first_error;
  };
  {
    sentinel.pause();  // stopped: its connection stays open, lookups time out
    resume_at_exit guard{sentinel};
    stream("sentinel stopped");
  }
  sentinel.kill9();  // gone: lookups fail at once (connection refused)
  stream("sentinel killed");
  EXPECT_EQ(node.current_master(), address_of(master));
  EXPECT_FALSE(master.command({"GET", "k"}).str.empty());
}

TEST_F(SentinelNode, AMasterThatRecoversIsUsedAgainWhileNoSentinelAnswers) {
  redis_server master;
  redis_server sentinel(sentinel_options(master));
  redlock::sentinel_options cfg = redlock::parse_sentinel_url(url_of(sentinel));
  cfg.options.request_timeout = 1000ms;
  cfg.min_resolve_interval = 0ms;  // every request after a failure asks the sentinels
  redlock::sentinel_node node(io_.get_executor(), cfg);
  ASSERT_FALSE(eval(node, "k", "first").ec);

  sentinel.pause();
  resume_at_exit guard{sentinel};
  // The master fails (so the node asks the sentinels, which cannot answer) and comes back
  // on the same address: nobody named another master, so the known one is used again.
  master.kill9();
  EXPECT_TRUE(eval(node, "k", "down").ec);  // seen failing: the node suspects a failover
  master.start();
  int attempts = 0;
  EXPECT_TRUE(wait_for(
      [&] {
        ++attempts;
        return !eval(node, "k", "back").ec;
      },
      10s))
      << "attempts: " << attempts;
  int failed = 0;
  for (int i = 0; i < 20; ++i)
    failed += eval(node, "k", std::to_string(i)).ec ? 1 : 0;
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(master.command({"GET", "k"}).str, "19");
}

TEST_F(SentinelNode, LocksKeepWorkingWhileTheFirstSentinelIsUnresponsive) {
  redis_server master;
  redis_server sentinel0(sentinel_options(master));
  redis_server sentinel1(sentinel_options(master));
  redlock::sentinel_options cfg = redlock::parse_sentinel_url(
      "redis+sentinel://" + address_of(sentinel0) + "," + address_of(sentinel1) + "/mymaster");
  cfg.refresh_interval = 100ms;
  // Each check waits this long for the stopped first sentinel before asking the second:
  // longer than the manager waits for a node's answer, so a request held up behind the
  // check would cost a vote.
  cfg.options.request_timeout = 3000ms;
  auto node = std::make_shared<redlock::sentinel_node>(io_.get_executor(), cfg);
  redlock::manager_options st;
  st.request_timeout = 1500ms;
  st.retry_count = 0;
  redlock::blocking_lock_manager manager({node}, st);
  {
    auto l = manager.lock({"res"}, 10s);
    ASSERT_TRUE(l.acquired());
    EXPECT_EQ(master.command({"GET", "res"}).str, l.value());
    manager.unlock(l);
  }

  sentinel0.pause();
  resume_at_exit guard{sentinel0};
  // A bounded stream of lock/unlock cycles across several checks.
  const auto until = std::chrono::steady_clock::now() + 3500ms;
  int cycles = 0;
  int failed = 0;
  std::string first_error;
  while (std::chrono::steady_clock::now() < until && cycles < 500) {
    ++cycles;
    std::error_code ec;
    auto l = manager.lock({"res"}, 10s, {}, ec);
    if (ec) {
      if (++failed == 1)
        first_error = "acquire: " + ec.message();
      continue;
    }
    auto u = manager.unlock(l, {}, ec);
    if (ec || u.released != 1) {
      if (++failed == 1)
        first_error = "unlock: " + ec.message();
    }
    std::this_thread::sleep_for(5ms);  // pacing, not waiting for anything
  }
  EXPECT_EQ(failed, 0) << failed << " of " << cycles << " cycles failed; first: " << first_error;

  // The checks do get through the second sentinel: a master change there is followed.
  redis_server new_master;
  remonitor(sentinel1, new_master);
  int requests = 0;
  EXPECT_TRUE(wait_for(
      [&] {
        ++requests;
        auto res = eval(*node, "probe", "x");
        EXPECT_FALSE(res.ec) << res.ec.message() << " " << res.r.str;
        return node->current_master() == address_of(new_master);
      },
      20s))
      << "requests: " << requests << ", current master: " << node->current_master();
  auto l = manager.lock({"res"}, 10s);
  ASSERT_TRUE(l.acquired());
  EXPECT_EQ(new_master.command({"GET", "res"}).str, l.value());
  manager.unlock(l);
}

TEST_F(SentinelNode, IdentityIsTheMastersRunIdAsAPlainNodeGivesIt) {
  redis_server master;
  redis_server sentinel(sentinel_options(master));
  redlock::sentinel_node node(io_.get_executor(), redlock::parse_sentinel_url(url_of(sentinel)));
  auto p = std::make_shared<std::promise<std::pair<std::error_code, std::vector<std::string>>>>();
  auto f = p->get_future();
  node.async_identify([p](std::error_code ec, std::vector<std::string> ids) {
    p->set_value({ec, std::move(ids)});
  });
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  auto [ec, ids] = f.get();
  ASSERT_FALSE(ec) << ec.message();
  // The format redis_node answers for its server ("run_id:<run_id>"), so that the two share
  // an entry and the manager refuses the pair.
  const std::string info = master.command({"INFO", "server"}).str;
  const std::string run_id(redlock::detail::info_field(info, "run_id"));
  ASSERT_EQ(run_id.size(), 40u) << info;
  EXPECT_EQ(ids, std::vector<std::string>{"run_id:" + run_id});
}

TEST_F(SentinelNode, ASentinelUrlAndItsMastersUrlAreOneDeploymentAndRefused) {
  // Issue 10, defect 8: one failover would cost two votes.
  redis_server master;
  redis_server sentinel(sentinel_options(master));
  redis_server other;
  redlock::lock_manager m(io_.get_executor(), {url_of(sentinel), master.url(), other.url()});
  auto p = std::make_shared<std::promise<std::pair<std::error_code, redlock::lock>>>();
  auto f = p->get_future();
  m.async_lock("sentinel-dup", 10s, [p](std::error_code ec, redlock::lock l) {
    p->set_value({ec, std::move(l)});
  });
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  auto [ec, l] = f.get();
  EXPECT_EQ(ec, redlock::errc::duplicate_deployment) << l.report().to_string();
  EXPECT_NE(l.report().detail.find("nodes[0]"), std::string::npos) << l.report().detail;
  EXPECT_NE(l.report().detail.find("nodes[1]"), std::string::npos) << l.report().detail;
  EXPECT_EQ(master.command({"EXISTS", "sentinel-dup"}).integer, 0);
  auto q = std::make_shared<std::promise<void>>();
  m.async_quit([q](std::error_code) { q->set_value(); });
  EXPECT_EQ(q->get_future().wait_for(10s), std::future_status::ready);
}

}  // namespace

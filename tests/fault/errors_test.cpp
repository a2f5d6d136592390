// Error replies from one node of three (test-catalogue.md: OOM, READONLY, NOSCRIPT, BUSY,
// LOADING, NOAUTH, WRONGPASS, NOPERM): each is a vote against carrying the server's message;
// the other two still make a quorum; nothing crashes. NOSCRIPT is the exception: the node falls
// back to EVAL and votes for us.
#include <thread>

#include "fault_common.hpp"

namespace redlock::test {
namespace {

// Runs io until `done` or 10 s (bounded; the manager keeps the context busy otherwise).
template <class Pred>
void run_until(asio::io_context& io, Pred done) {
  const auto until = std::chrono::steady_clock::now() + 10s;
  io.restart();
  while (!done() && std::chrono::steady_clock::now() < until)
    io.run_one_for(50ms);
}

// Server 0 is in the faulty state, server 1 healthy, server 2 down: the decision needs server
// 0's answer, so its vote is in the report (with a healthy majority the manager decides
// without waiting for it). Then, with server 2 back, the lock succeeds despite server 0.
void expect_error_vote_from_node0(cluster& c, lock_client& client, const std::string& prefix) {
  const std::string key = "errors-" + prefix;
  crash(c[2]);
  auto o = client.acquire(key, 5000ms);
  EXPECT_EQ(o.ec, make_error_code(errc::quorum_unreachable)) << o.ec.message();
  const auto& n0 = o.held.report().nodes.at(0);
  EXPECT_EQ(n0.outcome, vote::error) << o.held.report().to_string();
  EXPECT_TRUE(n0.ec);
  EXPECT_NE(n0.message.find(prefix), std::string::npos)
      << "message should carry the server's text, got: " << n0.message;
  EXPECT_TRUE(wait_for([&] { return c.holding(key) == 0; }, 2000ms))
      << "the failed attempt released node 1";
  c[2].start();
  // Bounded: node 2 may still be in its short reconnect backoff.
  call_options retry;
  retry.retry_count = 10;
  retry.retry_delay = 100ms;
  auto ok = client.acquire(key, 5000ms, retry);
  EXPECT_FALSE(ok.ec) << "two healthy nodes make a quorum: " << ok.held.report().to_string();
  if (ok.held.acquired()) {
    EXPECT_FALSE(client.unlock(ok.held).ec);
  }
}

TEST(ErrorReplies, OomIsAVoteAgainstWithTheServersMessage) {
  cluster c(3);
  lock_client client(c.ports());
  c[0].command({"CONFIG", "SET", "maxmemory-policy", "noeviction"});
  c[0].command({"CONFIG", "SET", "maxmemory", "1"});
  count_fault("oom");
  expect_error_vote_from_node0(c, client, "OOM");
}

TEST(ErrorReplies, ReadonlyReplicaIsAVoteAgainstWithTheServersMessage) {
  cluster c(3);
  lock_client client(c.ports());
  // A replica of a master that does not exist: it stays read-only.
  c[0].command({"REPLICAOF", "127.0.0.1", std::to_string(free_port())});
  count_fault("readonly");
  expect_error_vote_from_node0(c, client, "READONLY");
}

TEST(ErrorReplies, NopermIsAVoteAgainstWithTheServersMessage) {
  redis_server_options o;
  o.extra_config = {"user app on >secret ~* +@all -eval -evalsha",
                    "user default on nopass ~* +@all"};
  cluster c(3, o);
  // Node 0 is reached as the restricted user; the others as default.
  auto s = fault_settings();
  std::vector<std::string> urls{"redis://app:secret@127.0.0.1:" + std::to_string(c[0].port()),
                                "redis://127.0.0.1:" + std::to_string(c[1].port()),
                                "redis://127.0.0.1:" + std::to_string(c[2].port())};
  crash(c[2]);  // so that the decision waits for node 0's answer
  asio::io_context io;
  lock_manager m(io.get_executor(), urls, s);
  std::error_code ec;
  lock held;
  bool done = false;
  m.async_lock("errors-noperm", 5000ms, [&](std::error_code e, lock l) {
    ec = e;
    held = std::move(l);
    done = true;
  });
  run_until(io, [&] { return done; });
  count_fault("noperm");
  EXPECT_EQ(ec, make_error_code(errc::quorum_unreachable)) << held.report().to_string();
  const auto& n0 = held.report().nodes.at(0);
  EXPECT_EQ(n0.outcome, vote::error);
  EXPECT_EQ(n0.ec, make_error_code(errc::no_permission)) << n0.ec.message();
  EXPECT_NE(n0.message.find("NOPERM"), std::string::npos) << n0.message;
  EXPECT_EQ(n0.message.find("secret"), std::string::npos) << "never print the password";
  EXPECT_EQ(held.report().to_string().find("secret"), std::string::npos);
  bool quit = false;
  m.async_unlock(held, [](std::error_code, unlock_result) {});
  m.async_quit([&](std::error_code) { quit = true; });
  run_until(io, [&] { return quit; });
}

TEST(ErrorReplies, NoauthAndWrongpassAreVotesAgainstAndNeverPrintThePassword) {
  redis_server_options protected_opts;
  protected_opts.requirepass = "hunter2";
  cluster c(2);
  redis_server locked(protected_opts);
  crash(c[1]);  // so that the decision waits for the protected node's answer
  for (const auto& [url, code] : std::vector<std::pair<std::string, errc>>{
           {"redis://127.0.0.1:" + std::to_string(locked.port()), errc::auth_required},
           {"redis://:wrong-pw@127.0.0.1:" + std::to_string(locked.port()), errc::auth_failed}}) {
    SCOPED_TRACE(url);
    asio::io_context io;
    lock_manager m(io.get_executor(),
                   {url, "redis://127.0.0.1:" + std::to_string(c[0].port()),
                    "redis://127.0.0.1:" + std::to_string(c[1].port())},
                   fault_settings());
    std::error_code ec;
    lock held;
    bool done = false;
    m.async_lock("errors-auth", 5000ms, [&](std::error_code e, lock l) {
      ec = e;
      held = std::move(l);
      done = true;
    });
    run_until(io, [&] { return done; });
    count_fault("auth");
    EXPECT_EQ(ec, make_error_code(errc::quorum_unreachable)) << held.report().to_string();
    const auto& n0 = held.report().nodes.at(0);
    EXPECT_EQ(n0.outcome, vote::error);
    EXPECT_EQ(n0.ec, make_error_code(code)) << n0.ec.message() << " / " << n0.message;
    EXPECT_EQ(held.report().to_string().find("wrong-pw"), std::string::npos);
    bool quit = false;
    m.async_unlock(held, [](std::error_code, unlock_result) {});
    m.async_quit([&](std::error_code) { quit = true; });
    run_until(io, [&] { return quit; });
  }
}

TEST(ErrorReplies, BusyScriptIsAVoteAgainstWithTheServersMessage) {
  cluster c(3);
  auto s = fault_settings();
  s.request_timeout = 1000ms;
  lock_client client(c.ports(), s);
  c[0].command({"CONFIG", "SET", "busy-reply-threshold", "50"});
  std::thread spinner([port = c[0].port()] {
    raw_client slow(port, 5000ms);
    slow.command({"EVAL",
                  "local t=redis.call('TIME') local s=t[1]*1000000+t[2] "
                  "while true do local n=redis.call('TIME') "
                  "if (n[1]*1000000+n[2])-s > 2000000 then break end end return 1",
                  "0"});
  });
  count_fault("busy");
  const bool busy = wait_for(
      [&] {
        raw_client probe(c[0].port(), 300ms);
        auto r = probe.command({"PING"});
        return r && r->rfind("(error) BUSY", 0) == 0;
      },
      3000ms);
  EXPECT_TRUE(busy);
  if (busy)
    expect_error_vote_from_node0(c, client, "BUSY");
  spinner.join();
}

TEST(ErrorReplies, LoadingIsAVoteAgainstWithTheServersMessage) {
  redis_server_options o;
  o.extra_config = {"enable-debug-command yes"};
  cluster c(3, o);
  lock_client client(c.ports());
  // A dataset that takes about 2 s to load (key-load-delay is in microseconds per key).
  c[0].command({"DEBUG", "POPULATE", "20000", "filler", "10"});
  c[0].command({"CONFIG", "SET", "key-load-delay", "100"});
  c[0].command({"CONFIG", "SET", "loading-process-events-interval-bytes", "1024"});
  c[0].command({"SAVE"});
  std::thread reloader([port = c[0].port()] {
    raw_client r(port, 10000ms);
    r.command({"DEBUG", "RELOAD"});
  });
  count_fault("loading");
  const bool loading = wait_for(
      [&] {
        raw_client probe(c[0].port(), 300ms);
        auto r = probe.command({"PING"});
        return r && r->rfind("(error) LOADING", 0) == 0;
      },
      3000ms);
  EXPECT_TRUE(loading);
  if (loading)
    expect_error_vote_from_node0(c, client, "LOADING");
  reloader.join();
}

TEST(ErrorReplies, NoscriptAfterScriptFlushFallsBackToEvalAndVotesFor) {
  cluster c(3);
  lock_client client(c.ports());
  auto o = client.acquire("errors-noscript", 5000ms);
  ASSERT_FALSE(o.ec);
  client.unlock(o.held);
  for (auto& s : c.servers)
    s->command({"SCRIPT", "FLUSH"});
  count_fault("noscript");
  auto o2 = client.acquire("errors-noscript", 5000ms);
  EXPECT_FALSE(o2.ec) << o2.held.report().to_string();
  // Every node ran the script again (the decision may not wait for the third answer).
  EXPECT_TRUE(wait_for([&] { return c.holding("errors-noscript", o2.held.value()) == 3; }))
      << "a node did not fall back to EVAL";
  EXPECT_FALSE(client.unlock(o2.held).ec);
}

TEST(ErrorReplies, ErrorsOnAMajorityFailWithEveryServersMessage) {
  cluster c(3);
  lock_client client(c.ports());
  for (std::size_t i : {0u, 1u}) {
    c[i].command({"CONFIG", "SET", "maxmemory-policy", "noeviction"});
    c[i].command({"CONFIG", "SET", "maxmemory", "1"});
  }
  count_fault("oom");
  auto o = client.acquire("errors-majority", 5000ms);
  EXPECT_EQ(o.ec, make_error_code(errc::quorum_unreachable)) << o.ec.message();
  for (std::size_t i : {0u, 1u}) {
    const auto& n = o.held.report().nodes.at(i);
    EXPECT_EQ(n.outcome, vote::error);
    EXPECT_NE(n.message.find("OOM"), std::string::npos) << n.message;
  }
  EXPECT_TRUE(wait_for([&] { return c.holding("errors-majority") == 0; }, 2000ms));
}

}  // namespace
}  // namespace redlock::test

// Nothing left behind (test-catalogue.md): after every operation that completed with a failure,
// a cancellation or an unlock, once the cleanup bound has passed, no reachable server holds the
// operation's value -- under its keys, in any database, as seen by an administrator. Over a
// matrix of faults and N = 1, 3, 5 servers.
//
// Every lock here has a 30 s TTL, far beyond the cleanup bound and the test's duration, so a
// key that is gone at the check was removed by the client's cleanup, not by expiry. The values
// come from the client's nodes (lock_client::values()): the handle of a failed or cancelled
// acquire carries none, yet its requests may have reached the servers.
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/post.hpp>

#include <future>
#include <set>

#include "fault_common.hpp"
#include "internal/scripts.hpp"
#include "support/blocking_client.hpp"
#include "support/tcp_proxy.hpp"

namespace redlock::test {
namespace {

constexpr auto long_ttl = 30000ms;
const std::vector<std::size_t> sizes{1, 3, 5};

std::vector<std::uint16_t> first(const std::vector<std::uint16_t>& ports, std::size_t n) {
  return {ports.begin(), ports.begin() + static_cast<std::ptrdiff_t>(n)};
}

std::string key_for(const std::string& scenario, std::size_t n) {
  return "left-" + scenario + "-n" + std::to_string(n);
}

/// Waits until `t` (a condition on time itself: a fault that must outlast a deadline).
void wait_until(std::chrono::steady_clock::time_point t) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(t - std::chrono::steady_clock::now());
  wait_for([&] { return std::chrono::steady_clock::now() >= t; }, left + 100ms);
}

/// What the operations of one test sent, and when the last of them completed.
struct sent {
  std::set<std::string> values;
  std::vector<std::string> keys;
  std::chrono::steady_clock::time_point last_completed{};

  void add(const lock_client& c, std::vector<std::string> k) {
    for (auto& v : c.values())
      values.insert(std::move(v));
    for (auto& key : k)
      keys.push_back(std::move(key));
  }
  void completed() { last_completed = std::chrono::steady_clock::now(); }
};

/// The checker over every server of `c`, after cleanup_bound(request_timeout), queues and
/// subscriptions included.
void expect_nothing_left_behind(const cluster& c, const sent& s,
                                std::chrono::milliseconds request_timeout,
                                const std::string& admin_password = {}) {
  ASSERT_FALSE(s.values.empty()) << "no value was ever sent: the scenario exercised nothing";
  leftover_probe p;
  for (const auto& server : c.servers)
    p.servers.push_back(admin_of(*server, admin_password));
  p.values.assign(s.values.begin(), s.values.end());
  p.keys = s.keys;
  // The keys are the resources: no queue entry of ours either, and since every operation of
  // the test has completed, no queue key and no wake-up subscription at all.
  p.resources = s.keys;
  p.all_done = true;
  const auto r = check_nothing_left_behind({p}, s.last_completed, cleanup_bound(request_timeout));
  EXPECT_TRUE(r.clean()) << r.to_string();
  EXPECT_TRUE(r.unreachable.empty()) << "every server must be checked: " << r.to_string();
  EXPECT_EQ(r.servers_checked, c.servers.size()) << r.to_string();
}

std::vector<std::unique_ptr<tcp_proxy>> proxies_for(const cluster& c) {
  std::vector<std::unique_ptr<tcp_proxy>> p;
  for (auto port : c.ports())
    p.push_back(std::make_unique<tcp_proxy>(port));
  return p;
}
std::vector<std::uint16_t> ports_of(const std::vector<std::unique_ptr<tcp_proxy>>& p,
                                    std::size_t n) {
  std::vector<std::uint16_t> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(p[i]->port());
  return out;
}

/// The scaffold of the matrix tests below. For each N in `ns`: a client over `ports_for(n)`
/// with `st` (kept alive to the end: its cleanup must run to completion), warmed up on
/// "<scenario>-warm", then `fault(client, key, n, s)` on the key for "<scenario>", which
/// records in `s` what it sent and when it completed. At the end nothing may be left behind.
template <class Ports, class Fault>
void run_matrix(const cluster& c, const std::string& scenario, Ports ports_for,
                const manager_options& st, Fault fault,
                const std::vector<std::size_t>& ns = sizes) {
  sent s;
  std::vector<std::unique_ptr<lock_client>> clients;
  for (std::size_t n : ns) {
    SCOPED_TRACE("N = " + std::to_string(n));
    clients.push_back(std::make_unique<lock_client>(ports_for(n), st));
    auto& client = *clients.back();
    warm_up(client, c, key_for(scenario + "-warm", n));
    if (::testing::Test::HasFatalFailure())
      return;
    fault(client, key_for(scenario, n), n, s);
    if (::testing::Test::HasFatalFailure())
      return;
  }
  expect_nothing_left_behind(c, s, st.request_timeout);
}

// --- the checker itself: it can fail, and it names what it found ---------------------------

TEST(LeftBehindChecker, FindsTheValueUnderAnyKeyInAnyDatabaseAndNamesServerDbAndKey) {
  cluster c(2);
  const std::string value = "0123456789abcdef0123456789abcdef";
  c[1].command({"SET", "left-checker", value, "PX", "30000"});
  // command() opens a connection per call, so the write into db 7 is one script.
  c[1].command({"EVAL", "redis.call('SELECT', 7) redis.call('SET', KEYS[1], ARGV[1]) return 1", "1",
                "some-other-name", value});
  c[0].command({"SET", "left-checker", "another-value"});  // not ours
  leftover_probe p{{admin_of(c[0]), admin_of(c[1])}, {value}, {"left-checker"}, {}, false};
  auto r = find_leftovers(p);
  ASSERT_EQ(r.found.size(), 2u) << r.to_string();
  EXPECT_EQ(r.servers_checked, 2u);
  EXPECT_TRUE(r.unreachable.empty()) << r.to_string();
  const auto where = "127.0.0.1:" + std::to_string(c[1].port());
  EXPECT_EQ(r.found[0].server, where);
  EXPECT_EQ(r.found[0].db, 0);
  EXPECT_EQ(r.found[0].key, "left-checker");
  EXPECT_GT(r.found[0].pttl_ms, 0);
  EXPECT_EQ(r.found[1].db, 7);
  EXPECT_EQ(r.found[1].key, "some-other-name");
  EXPECT_NE(r.to_string().find(where + " db 7: key 'some-other-name'"), std::string::npos)
      << r.to_string();
  // Without values, any value under the keys counts (for callers that cannot know it).
  leftover_probe any{{admin_of(c[0])}, {}, {"left-checker"}, {}, false};
  EXPECT_EQ(find_leftovers(any).found.size(), 1u);
  // A stopped server is reported as not checked, never as clean.
  crash(c[0]);
  auto down = find_leftovers(any, 500ms);
  EXPECT_EQ(down.unreachable.size(), 1u) << down.to_string();
  EXPECT_EQ(down.servers_checked, 0u);
}

TEST(LeftBehindChecker, JudgesByTheLookAfterTheBoundAndSeesAKeyThatCameBack) {
  cluster c(1);
  const std::string value = "fedcba9876543210fedcba9876543210";
  leftover_probe p{{admin_of(c[0])}, {value}, {"left-back"}, {}, false};
  // Present at first, gone before the bound: clean.
  c[0].command({"SET", "left-back", value, "PX", "400"});
  const auto t0 = std::chrono::steady_clock::now();
  auto r = check_nothing_left_behind({p}, t0, 1000ms);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1000ms) << "returned before the bound";
  EXPECT_TRUE(r.clean()) << r.to_string();
  EXPECT_NE(r.history.find("gone at"), std::string::npos) << r.history;
  // Gone at first, written again during the wait (a late re-sync): left behind.
  std::thread late([&] {
    wait_until(std::chrono::steady_clock::now() + 500ms);
    c[0].command({"SET", "left-back", value, "PX", "30000"});
  });
  auto r2 = check_nothing_left_behind({p}, std::chrono::steady_clock::now(), 1000ms);
  late.join();
  ASSERT_EQ(r2.found.size(), 1u) << r2.to_string();
  EXPECT_NE(r2.history.find("present"), std::string::npos) << r2.history;
}

TEST(LeftBehindChecker, FindsQueueEntriesQueueKeysAndSubscriptions) {
  cluster c(1);
  const std::string done = "00112233445566778899aabbccddeeff";     // a completed operation
  const std::string waiting = "ffeeddccbbaa99887766554433221100";  // one still waiting
  const std::string res = "left-queue";
  const auto q = detail::fair_queue_key(res), l = detail::fair_lease_key(res);
  c[0].command({"ZADD", q, "1", done, "2", waiting});
  c[0].command({"ZADD", l, "1", done, "99999999999999", waiting});
  leftover_probe p{{admin_of(c[0])}, {done}, {res}, {res}, false};
  auto r = find_leftovers(p);
  // The completed operation's entry in the queue and in the lease; the waiter's is allowed.
  ASSERT_EQ(r.found.size(), 2u) << r.to_string();
  for (const auto& f : r.found) {
    EXPECT_EQ(f.kind, leftover::what::queue_entry);
    EXPECT_EQ(f.value, done);
  }
  EXPECT_NE(r.to_string().find("queue entry '" + done + "' in '" + q + "'"), std::string::npos)
      << r.to_string();
  EXPECT_NE(r.to_string().find("lease ran out"), std::string::npos) << r.to_string();
  c[0].command({"ZREM", q, done});
  c[0].command({"ZREM", l, done});
  EXPECT_TRUE(find_leftovers(p).clean()) << find_leftovers(p).to_string();
  // Once everyone is done, the queue keys themselves (the waiter's entry) are leftovers...
  p.all_done = true;
  auto all = find_leftovers(p);
  EXPECT_EQ(all.found.size(), 2u) << all.to_string();
  EXPECT_NE(all.to_string().find("queue key '" + q + "'"), std::string::npos) << all.to_string();
  c[0].command({"DEL", q, l});
  EXPECT_TRUE(find_leftovers(p).clean()) << find_leftovers(p).to_string();
  // ... and so is a subscriber to the release channel, sharded or not.
  for (const char* sub : {"SSUBSCRIBE", "SUBSCRIBE"}) {
    SCOPED_TRACE(sub);
    blocking_client subscriber("127.0.0.1", c[0].port(), 2000ms);
    ASSERT_TRUE(subscriber.command({sub, detail::release_channel(res)}));
    auto s = find_leftovers(p);
    ASSERT_EQ(s.found.size(), 1u) << s.to_string();
    EXPECT_EQ(s.found[0].kind, leftover::what::subscription);
    EXPECT_EQ(s.found[0].key, detail::release_channel(res));
    EXPECT_GT(s.channels_looked_at, 0u);
  }
  // The subscribers are gone with their connections.
  EXPECT_TRUE(wait_for([&] { return find_leftovers(p).clean(); }, 3000ms))
      << find_leftovers(p).to_string();
}

// --- refused access: a failed handshake (AUTH, SELECT) lets nothing else reach the server, ----
// --- and a missing ACL permission writes nothing --------------------------------------------

// Every server of `c` refuses the client that the URL `url_of` gives; the acquire fails on
// every N, and none of the servers may hold the value anywhere, as anyone.
void expect_refused_access_leaves_nothing(cluster& c, const std::string& scenario,
                                          const std::function<std::string(std::uint16_t)>& url_of,
                                          const std::string& key_prefix = "") {
  sent s;
  std::vector<std::unique_ptr<lock_client>> clients;  // alive until checked (cleanup runs)
  for (std::size_t n : sizes) {
    SCOPED_TRACE("N = " + std::to_string(n));
    std::vector<std::string> urls;
    for (std::size_t i = 0; i < n; ++i)
      urls.push_back(url_of(c[i].port()));
    clients.push_back(std::make_unique<lock_client>(from_urls, urls));
    const auto key = key_prefix + key_for(scenario, n);
    auto o = clients.back()->acquire(key, long_ttl);
    EXPECT_TRUE(o.ec) << "every node refuses the client, so the lock must fail: "
                      << o.held.report().to_string();
    s.completed();
    s.add(*clients.back(), {key});
  }
  count_fault("refused-access");
  expect_nothing_left_behind(c, s, fault_settings().request_timeout);
}

std::string on(std::uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

TEST(LeftBehindAccess, PasswordSentToAServerWithoutOne) {
  cluster c(5);
  expect_refused_access_leaves_nothing(
      c, "nopass", [](std::uint16_t p) { return "redis://:wrong-pw@" + on(p); });
}

TEST(LeftBehindAccess, WrongPasswordOfAnAclUserOnAServerWhoseDefaultUserIsOpen) {
  redis_server_options o;
  o.extra_config = {"user app on >secret ~* +@all", "user default on nopass ~* +@all"};
  cluster c(5, o);
  expect_refused_access_leaves_nothing(
      c, "wrongpass", [](std::uint16_t p) { return "redis://app:wrong@" + on(p); });
}

TEST(LeftBehindAccess, MissingDatabase) {
  cluster c(5);
  expect_refused_access_leaves_nothing(c, "nodb",
                                       [](std::uint16_t p) { return "redis://" + on(p) + "/99"; });
}

TEST(LeftBehindAccess, AclUserWithoutEvalOrEvalsha) {
  redis_server_options o;
  o.extra_config = {"user app on >secret ~* +@all -eval -evalsha"};
  cluster c(5, o);
  expect_refused_access_leaves_nothing(
      c, "noeval", [](std::uint16_t p) { return "redis://app:secret@" + on(p); });
}

TEST(LeftBehindAccess, AclUserWithoutSelectAndADatabaseInTheUrl) {
  // The README's earlier ACL example: everything the scripts need, but no +select.
  redis_server_options o;
  o.extra_config = {"user app on >secret ~locks:* +eval +evalsha +get +set +del +pexpire +pttl"};
  cluster c(5, o);
  expect_refused_access_leaves_nothing(
      c, "noselect", [](std::uint16_t p) { return "redis://app:secret@" + on(p) + "/2"; },
      "locks:");
}

// --- a script slower than the request timeout ----------------------------------------------

TEST(LeftBehindSlowScript, ReleaseOfALockWhoseScriptIsSlowerThanTheRequestTimeout) {
  // 20,000 keys in one lock take the server far longer than 60 ms to set or delete, so every
  // request of the attempt -- the acquire and the release after it -- misses its deadline and
  // its connection is reset, while the servers still run the scripts.
  cluster c(5);
  auto st = fault_settings();
  st.request_timeout = 60ms;
  for (std::size_t n : sizes) {
    SCOPED_TRACE("N = " + std::to_string(n));
    lock_client client(first(c.ports(), n), st);
    std::vector<std::string> keys;
    for (int i = 0; i < 20000; ++i)
      keys.push_back(key_for("slow", n) + "-" + std::to_string(i));
    sent s;
    auto p = std::make_shared<std::promise<std::pair<std::error_code, lock>>>();
    auto f = p->get_future();
    client.manager().async_lock(keys, long_ttl, [p](std::error_code ec, lock l) {
      p->set_value({ec, std::move(l)});
    });
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    auto [ec, held] = f.get();
    if (!ec) {
      // A fast host may set the keys within the deadline on a majority: then the unlock is
      // the slow path (its script misses the deadline), and must leave nothing either.
      auto u = std::make_shared<std::promise<std::error_code>>();
      auto uf = u->get_future();
      client.manager().async_unlock(
          held, [u](std::error_code e, redlock::unlock_result) { u->set_value(e); });
      ASSERT_EQ(uf.wait_for(30s), std::future_status::ready);
      uf.get();  // any outcome: the checker below judges what is left
    }
    s.completed();
    s.add(client, keys);
    count_fault("slow-script");
    // Per N: the servers' own work (seconds of Lua for the five) must not eat the next N's bound.
    expect_nothing_left_behind(c, s, st.request_timeout);
  }
}

// --- a reset right after our write ----------------------------------------------------------

TEST(LeftBehindReset, ConnectionResetAfterTheAcquireWasWrittenButBeforeItsReply) {
  cluster c(5);
  auto proxies = proxies_for(c);
  const auto through_proxies = [&](std::size_t n) { return ports_of(proxies, n); };
  run_matrix(c, "reset-written", through_proxies, fault_settings(),
             [&](lock_client& client, const std::string& key, std::size_t n, sent& s) {
               for (std::size_t i = 0; i < n; ++i)
                 proxies[i]->set_drop_replies(true);
               auto pending =
                   std::async(std::launch::async, [&] { return client.acquire(key, long_ttl); });
               // The acquire ran on every server; its replies are being swallowed. Now the reset.
               EXPECT_TRUE(wait_for([&] { return c.holding(key) == n; }, 3000ms));
               for (std::size_t i = 0; i < n; ++i) {
                 proxies[i]->reset_all();
                 proxies[i]->set_drop_replies(false);
               }
               count_fault("reset");
               auto o = pending.get();
               s.completed();
               EXPECT_TRUE(o.ec) << "every connection was reset before its reply: "
                                 << o.held.report().to_string();
               s.add(client, {key});
             });
}

TEST(LeftBehindReset, ClientKillRightAfterTheAcquireWasAnsweredThenUnlock) {
  cluster c(5);
  const auto direct = [&](std::size_t n) { return first(c.ports(), n); };
  run_matrix(c, "kill-answered", direct, fault_settings(),
             [&](lock_client& client, const std::string& key, std::size_t n, sent& s) {
               auto o = client.acquire(key, long_ttl);
               ASSERT_FALSE(o.ec) << o.held.report().to_string();
               for (std::size_t i = 0; i < n; ++i)
                 c[i].command({"CLIENT", "KILL", "TYPE", "normal"});
               count_fault("client-kill");
               client.unlock(o.held);  // whatever it reports: the cleanup must finish the job
               s.completed();
               s.add(client, {key});
             });
}

// --- the reconnect backoff window -----------------------------------------------------------

TEST(LeftBehindBackoff, ReleaseIssuedWhileTheNodeBacksOffIsRetriedAfterTheHeal) {
  cluster c(5);
  const auto direct = [&](std::size_t n) { return first(c.ports(), n); };
  run_matrix(c, "backoff", direct, fault_settings(),
             [&](lock_client& client, const std::string& key, std::size_t, sent& s) {
               auto o = client.acquire(key, long_ttl);
               ASSERT_FALSE(o.ec) << o.held.report().to_string();
               // Connections to node 0 are reset and reconnects refused: the extend's request
               // there fails and the node backs off, so the unlock's release to it is refused
               // at once.
               auto cut = partition(c[0].port(), partition_mode::reject);
               auto e = client.extend(o.held, long_ttl);
               EXPECT_NE(e.held.report().nodes.at(0).outcome, vote::granted)
                   << e.held.report().to_string();
               client.unlock(o.held);  // N = 1: fails; N = 3, 5: a quorum released, node 0 not
               s.completed();
               s.add(client, {key});
               wait_until(s.last_completed + 300ms);  // heal inside the cleanup bound
             });
}

TEST(LeftBehindPartition, AnAcquireCutOffByADropPartitionIsNotDeliveredAfterItsRelease) {
  // The acquire is written into a DROP partition of a majority and times out; TCP keeps
  // retransmitting it, so it may still reach the server after the heal. Its fate is unknown,
  // and the release must keep going until that can no longer matter.
  cluster c(5);
  const auto direct = [&](std::size_t n) { return first(c.ports(), n); };
  run_matrix(c, "drop", direct, fault_settings(),
             [&](lock_client& client, const std::string& key, std::size_t n, sent& s) {
               {
                 std::vector<iptables_rule> cut;
                 for (std::size_t i = 0; i < n / 2 + 1; ++i)
                   cut.push_back(partition(c[i].port(), partition_mode::drop));
                 const auto sent_at = std::chrono::steady_clock::now();
                 auto o = client.acquire(key, long_ttl);
                 EXPECT_TRUE(o.ec) << o.held.report().to_string();
                 count_fault("drop-partition");
                 // Heal between TCP's retransmissions (200 ms, then 400, 800, 1600 ms apart on
                 // loopback), so that one may fall after the heal, behind a retried release.
                 wait_until(sent_at + 1500ms);
               }
               s.completed();
               s.add(client, {key});
             });
}

// --- late replies ----------------------------------------------------------------------------

TEST(LeftBehindLateReplies, ServerStoppedPastTheRequestTimeoutThenContinued) {
  cluster c(5);
  const auto direct = [&](std::size_t n) { return first(c.ports(), n); };
  run_matrix(c, "stopped", direct, fault_settings(),
             [&](lock_client& client, const std::string& key, std::size_t n, sent& s) {
               const std::size_t stopped = n == 5 ? 2 : 1;  // a minority, except for N = 1
               for (std::size_t i = 0; i < stopped; ++i)
                 pause(c[i]);
               const auto t0 = std::chrono::steady_clock::now();
               auto o = client.acquire(key, long_ttl);
               EXPECT_EQ(!o.ec, n > 1) << o.held.report().to_string();
               if (o.held.acquired())
                 client.unlock(o.held);
               s.completed();
               s.add(client, {key});
               // The stopped servers' requests have all missed their deadline before they
               // continue.
               wait_until(std::max(s.last_completed, t0 + 3 * fault_settings().request_timeout));
               for (std::size_t i = 0; i < stopped; ++i)
                 c[i].resume();
             });
}

TEST(LeftBehindLateReplies, LateMissingReplyToAnExtendDoesNotRecreateTheKeyAfterUnlock) {
  // N = 3 and 5 only: the slow nodes are a minority that the decisions do not wait for.
  cluster c(5);
  auto proxies = proxies_for(c);
  auto st = fault_settings();
  st.request_timeout = 400ms;
  const auto through_proxies = [&](std::size_t n) { return ports_of(proxies, n); };
  run_matrix(c, "resync", through_proxies, st,
             [&](lock_client& client, const std::string& key, std::size_t n, sent& s) {
               auto o = client.acquire(key, long_ttl);
               ASSERT_FALSE(o.ec) << o.held.report().to_string();
               ASSERT_TRUE(wait_for([&] { return c.holding(key, o.held.value()) == n; }, 3000ms));
               // The slow minority lost the key (as after a restart) and answers 150 ms late: its
               // "missing" reply to the extend arrives after the unlock has started.
               const std::size_t slow = n == 5 ? 2 : 1;
               for (std::size_t i = n - slow; i < n; ++i) {
                 c[i].command({"DEL", key});
                 proxies[i]->set_delay(150ms, 0ms);
               }
               count_fault("latency");
               auto e = client.extend(o.held, long_ttl);
               ASSERT_FALSE(e.ec) << e.held.report().to_string();
               auto u = client.unlock(e.held);
               EXPECT_FALSE(u.ec) << u.ec.message();
               s.completed();
               s.add(client, {key});
               for (std::size_t i = n - slow; i < n; ++i)
                 proxies[i]->set_delay(0ms, 0ms);  // requests already queued keep their schedule
             },
             {3, 5});
}

// --- cancel mid-attempt ----------------------------------------------------------------------

TEST(LeftBehindCancel, CancelAfterTheAcquireRanButBeforeItsReplies) {
  cluster c(5);
  auto proxies = proxies_for(c);
  auto st = fault_settings();
  st.request_timeout = 500ms;
  const auto through_proxies = [&](std::size_t n) { return ports_of(proxies, n); };
  run_matrix(
      c, "cancel", through_proxies, st,
      [&](lock_client& client, const std::string& key, std::size_t n, sent& s) {
        for (std::size_t i = 0; i < n; ++i)
          proxies[i]->set_delay(0ms, 300ms);  // the script runs at once, its reply late
        auto sig = std::make_shared<asio::cancellation_signal>();
        auto p = std::make_shared<std::promise<std::error_code>>();
        auto f = p->get_future();
        client.manager().async_lock(
            {key}, long_ttl, call_options{},
            asio::bind_cancellation_slot(sig->slot(), [p, &client](std::error_code ec, lock l) {
              // Granted despite the cancel (it came after the replies): unlock, so
              // that the check below still judges a cleanup, and let the
              // expectation say what happened.
              if (l.acquired())
                client.manager().async_unlock(l, [](std::error_code, unlock_result) {});
              p->set_value(ec);
            }));
        EXPECT_TRUE(wait_for([&] { return c.holding(key) == n; }, 3000ms));
        // The signal belongs to the io thread that runs the manager.
        asio::post(client.io_executor(), [sig] { sig->emit(asio::cancellation_type::terminal); });
        count_fault("cancel");
        ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
        const auto ec = f.get();
        s.completed();
        EXPECT_EQ(ec, make_error_code(errc::cancelled)) << ec.message();
        s.add(client, {key});
        for (std::size_t i = 0; i < n; ++i)
          proxies[i]->set_delay(0ms, 0ms);
      });
}

// --- quit mid-operation ----------------------------------------------------------------------

std::error_code quit(lock_client& client) {
  auto p = std::make_shared<std::promise<std::error_code>>();
  auto f = p->get_future();
  client.manager().async_quit([p](std::error_code ec) { p->set_value(ec); });
  if (f.wait_for(20s) != std::future_status::ready) {
    ADD_FAILURE() << "async_quit did not complete within 20 s";
    return make_error_code(errc::timeout);
  }
  return f.get();
}

TEST(LeftBehindQuit, QuitWhileAnAcquireIsFailingDrainsItsRelease) {
  // The majority executes the acquire but its replies are lost: the attempt fails on its
  // timeouts while quit waits for it, and its release must still land everywhere.
  cluster c(5);
  const auto direct = [&](std::size_t n) { return first(c.ports(), n); };
  run_matrix(c, "quit-acquire", direct, fault_settings(),
             [&](lock_client& client, const std::string& key, std::size_t n, sent& s) {
               std::vector<iptables_rule> lost;
               for (std::size_t i = 0; i < n / 2 + 1; ++i)
                 lost.push_back(lose_replies(c[i].port()));
               const auto before = client.values().size();
               auto pending =
                   std::async(std::launch::async, [&] { return client.acquire(key, long_ttl); });
               // Issued to the nodes (the servers cannot be asked: their replies are lost).
               EXPECT_TRUE(wait_for([&] { return client.values().size() > before; }, 3000ms));
               const auto q = quit(client);
               // While the replies are lost no release can be confirmed, so quit may give up at
               // its bound (errc::timeout) although the releases ran; the checker below judges
               // the servers.
               EXPECT_TRUE(!q || q == errc::timeout) << q.message();
               auto o = pending.get();
               EXPECT_TRUE(o.ec) << o.held.report().to_string();
               s.completed();
               s.add(client, {key});
               for (auto& r : lost)
                 r.heal();
             });
}

TEST(LeftBehindQuit, QuitRightAfterAnUnlockWhoseReleaseIsInBackoffDrainsIt) {
  cluster c(5);
  const auto direct = [&](std::size_t n) { return first(c.ports(), n); };
  run_matrix(c, "quit-unlock", direct, fault_settings(),
             [&](lock_client& client, const std::string& key, std::size_t, sent& s) {
               auto o = client.acquire(key, long_ttl);
               ASSERT_FALSE(o.ec) << o.held.report().to_string();
               auto cut = partition(c[0].port(), partition_mode::reject);
               client.unlock(o.held);
               s.completed();
               s.add(client, {key});
               std::thread healer([&] {
                 wait_until(s.last_completed + 300ms);
                 cut.heal();
               });
               const auto q = quit(client);
               healer.join();
               EXPECT_FALSE(q) << q.message();
             });
}

}  // namespace
}  // namespace redlock::test

// Helpers shared by the fault test files: a raw blocking client (independent of the code
// under test), counted fault actions, and a gtest environment that checks the namespace.
#pragma once

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "raw_client.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/make_node.hpp"
#include "redlock/redis_node.hpp"
#include "support/fault_checker.hpp"
#include "support/fault_leftovers.hpp"
#include "support/fault_net.hpp"
#include "support/fault_recorder.hpp"
#include "support/options.hpp"
#include "support/redis_server.hpp"

namespace redlock::test {

using namespace std::chrono_literals;

inline std::string str(const reply& r) {
  if (r.kind == reply::type::integer)
    return std::to_string(r.integer);
  if (r.kind == reply::type::nil)
    return "(nil)";
  return r.str;
}

// Process faults, counted for the suite's figures.
inline void crash(redis_server& s) {
  s.kill9();
  count_fault("kill9");
}
inline void crash_and_restart(redis_server& s) {
  s.kill9();
  count_fault("kill9");
  s.start();
}
inline void pause(redis_server& s) {
  s.pause();
  count_fault("sigstop");
}

/// Settings for fault tests: short per-node timeouts so that faults cost little time, one
/// attempt unless a test asks for retries.
inline manager_options fault_settings() {
  auto s = fast_options();
  s.retry_count = 0;
  s.retry_delay = 100ms;
  s.retry_jitter = 20ms;
  s.request_timeout = 300ms;  // injected network delays are tens of ms
  return s;
}

/// Marks the lock_client constructor that takes URLs (credentials, db) instead of ports.
struct from_urls_t {};
inline constexpr from_urls_t from_urls{};

/// One client: its own io thread and lock_manager over redis_nodes with a short reconnect
/// backoff (so that a healed node is usable again quickly). Every wait is bounded. Its nodes
/// record every lock value they send (values()), for the "nothing left behind" checker.
class lock_client {
 public:
  struct outcome {
    std::error_code ec;
    lock held;
    std::chrono::steady_clock::time_point started;
    std::chrono::steady_clock::duration took{};
  };
  struct unlock_outcome {
    std::error_code ec;
    unlock_result result;
  };

  lock_client(const std::vector<std::uint16_t>& ports, manager_options s = fault_settings())
      : work_(asio::make_work_guard(io_)),
        manager_(io_.get_executor(), record_values(make_nodes(ports, s), values_), s) {
    thread_ = std::thread([this] { io_.run(); });
  }
  /// Nodes from URLs such as "redis://app:secret@127.0.0.1:7001/2" (make_node).
  lock_client(from_urls_t, const std::vector<std::string>& urls,
              manager_options s = fault_settings())
      : work_(asio::make_work_guard(io_)),
        manager_(io_.get_executor(), record_values(make_nodes(urls, s), values_), s) {
    thread_ = std::thread([this] { io_.run(); });
  }
  ~lock_client() {
    auto done = std::make_shared<std::promise<void>>();
    auto f = done->get_future();
    manager_.async_quit([done](std::error_code) { done->set_value(); });
    f.wait_for(5s);
    work_.reset();
    io_.stop();
    thread_.join();
  }
  lock_client(const lock_client&) = delete;
  lock_client& operator=(const lock_client&) = delete;

  lock_manager& manager() { return manager_; }
  asio::io_context::executor_type io_executor() { return io_.get_executor(); }
  /// Every lock value this client's nodes were asked to send, failed attempts included.
  std::vector<std::string> values() const { return values_->values(); }

  outcome acquire(const std::string& resource, std::chrono::milliseconds ttl,
                  call_options opts = {}) {
    auto p = std::make_shared<std::promise<outcome>>();
    auto f = p->get_future();
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::string> r{resource};
    manager_.async_lock(std::move(r), ttl, opts, [p, t0](std::error_code ec, lock l) {
      p->set_value(outcome{ec, std::move(l), t0, std::chrono::steady_clock::now() - t0});
    });
    return wait(f, t0);
  }
  outcome extend(const lock& l, std::chrono::milliseconds ttl) {
    auto p = std::make_shared<std::promise<outcome>>();
    auto f = p->get_future();
    const auto t0 = std::chrono::steady_clock::now();
    manager_.async_extend(l, ttl, [p, t0](std::error_code ec, lock l2) {
      p->set_value(outcome{ec, std::move(l2), t0, std::chrono::steady_clock::now() - t0});
    });
    return wait(f, t0);
  }
  unlock_outcome unlock(const lock& l) {
    auto p = std::make_shared<std::promise<unlock_outcome>>();
    auto f = p->get_future();
    manager_.async_unlock(l, [p](std::error_code ec, unlock_result r) {
      p->set_value(unlock_outcome{ec, std::move(r)});
    });
    if (f.wait_for(30s) != std::future_status::ready) {
      ADD_FAILURE() << "unlock did not complete within 30 s";
      return {make_error_code(errc::timeout), {}};
    }
    return f.get();
  }

 private:
  std::vector<std::shared_ptr<node>> make_nodes(const std::vector<std::uint16_t>& ports,
                                                const manager_options& s);
  std::vector<std::shared_ptr<node>> make_nodes(const std::vector<std::string>& urls,
                                                const manager_options& s);
  static connection_options options_of(const manager_options& s) {
    connection_options o;
    o.connect_timeout = s.connect_timeout;
    o.request_timeout = s.request_timeout;
    o.backoff_initial = 20ms;
    o.backoff_max = 200ms;
    return o;
  }
  template <class T>
  static T wait(std::future<T>& f, std::chrono::steady_clock::time_point t0) {
    if (f.wait_for(60s) != std::future_status::ready) {
      ADD_FAILURE() << "operation did not complete within 60 s";
      return T{make_error_code(errc::timeout), {}, t0, {}};
    }
    return f.get();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::shared_ptr<value_log> values_ = std::make_shared<value_log>();  // before manager_
  lock_manager manager_;
  std::thread thread_;
};

inline std::vector<std::shared_ptr<node>> lock_client::make_nodes(
    const std::vector<std::uint16_t>& ports, const manager_options& s) {
  std::vector<std::shared_ptr<node>> nodes;
  const auto o = options_of(s);
  for (auto p : ports) {
    endpoint ep;
    ep.port = p;
    nodes.push_back(std::make_shared<redis_node>(io_.get_executor(), std::move(ep), o));
  }
  return nodes;
}

inline std::vector<std::shared_ptr<node>> lock_client::make_nodes(
    const std::vector<std::string>& urls, const manager_options& s) {
  std::vector<std::shared_ptr<node>> nodes;
  const auto o = options_of(s);
  for (const auto& u : urls)
    nodes.push_back(make_node(io_.get_executor(), u, o));
  return nodes;
}

/// Three (or n) plain servers plus helpers to look at one key on all of them.
struct cluster {
  std::vector<std::unique_ptr<redis_server>> servers;
  explicit cluster(std::size_t n, redis_server_options o = {}) {
    for (std::size_t i = 0; i < n; ++i)
      servers.push_back(std::make_unique<redis_server>(o));
  }
  redis_server& operator[](std::size_t i) { return *servers[i]; }
  std::vector<std::uint16_t> ports() const {
    std::vector<std::uint16_t> p;
    for (const auto& s : servers)
      p.push_back(s->port());
    return p;
  }
  /// How many running servers hold `key` with exactly `value` ("" = any value).
  std::size_t holding(const std::string& key, const std::string& value = "") const {
    std::size_t n = 0;
    for (const auto& s : servers) {
      if (!s->running())
        continue;
      auto r = s->command({"GET", key});
      if (r.kind == reply::type::string && (value.empty() || r.str == value))
        ++n;
    }
    return n;
  }
};

/// A holder's critical section as the checker sees it: from the moment its acquire completed
/// to its validity deadline (the longest it may legitimately act).
inline critical_section held_section(int client, const lock_client::outcome& o) {
  return {client, (o.started + o.took).time_since_epoch().count(),
          o.held.validity_deadline().time_since_epoch().count(), -1, -1};
}

/// One lock and unlock, then waits until every server of `servers` has run the release (an
/// unlock completes at quorum), so that the test's faults hit established connections and no
/// release of the warm-up is still queued on a server the test then stops (it would time out
/// and reset that connection under the test's own request).
inline void warm_up(lock_client& c, const cluster& servers, const std::string& resource) {
  auto o = c.acquire(resource, 5000ms);
  ASSERT_FALSE(o.ec) << o.held.report().to_string();
  ASSERT_FALSE(c.unlock(o.held).ec);
  ASSERT_TRUE(wait_for([&] { return servers.holding(resource) == 0; }, 3000ms));
}

/// Unlocks `held` and expects success and, within 3 s, no server of `servers` holding
/// `resource` (also those that answered after the quorum).
inline void expect_unlocked_everywhere(lock_client& c, const cluster& servers, const lock& held,
                                       const std::string& resource) {
  auto u = c.unlock(held);
  EXPECT_FALSE(u.ec) << u.ec.message();
  EXPECT_TRUE(wait_for([&] { return servers.holding(resource) == 0; }, 3000ms));
}

/// PTTL of `key` on `s`: -2 once the key is gone (PTTL runs the server's lazy expire check).
inline long long pttl(const redis_server& s, const std::string& key) {
  return s.command({"PTTL", key}).integer;
}

inline std::size_t votes(const lock_client::outcome& o, vote v) {
  return o.held.report().count(v);
}

/// Fails every test at once when not inside scripts/in-netns, and prints the fault figures at
/// the end ("faults injected: N") for the README.
class fault_environment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (!in_private_netns())
      GTEST_FAIL() << "fault tests must run inside scripts/in-netns (a private namespace)";
  }
  void TearDown() override {
    std::printf("faults injected: %llu\n", static_cast<unsigned long long>(faults_injected()));
    // scripts/fault-test adds up the figures of every binary for the README.
    if (const char* tally = std::getenv("REDLOCK_FAULT_TALLY")) {
      if (FILE* f = std::fopen(tally, "a")) {
        std::fprintf(f, "%llu\n", static_cast<unsigned long long>(faults_injected()));
        std::fclose(f);
      }
    }
  }
};

inline const bool fault_environment_registered [[maybe_unused]] =
    (::testing::AddGlobalTestEnvironment(new fault_environment), true);

}  // namespace redlock::test

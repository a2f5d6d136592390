// redlock::prometheus: a known sequence of observer events and stats, scraped over HTTP from a
// prometheus::Exposer on 127.0.0.1, reads back as exact exposition text.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "redlock/error.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/prometheus.hpp"
#include "redlock/testing.hpp"
#include "support/io_thread.hpp"
#include "support/options.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::health_state;
using redlock::operation;
using ::testing::HasSubstr;
using ::testing::Not;

// One GET /metrics over HTTP/1.0 (the server closes the connection after the response), with
// a deadline. Returns the body; fails the test on a transport error or a status other than 200.
std::string scrape(int port) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  std::string response;
  std::error_code result = asio::error::would_block;
  const asio::ip::tcp::endpoint server(asio::ip::make_address("127.0.0.1"),
                                       static_cast<unsigned short>(port));
  socket.async_connect(server, [&](std::error_code connected) {
    if (connected) {
      result = connected;
      return;
    }
    asio::async_write(socket, asio::buffer(request), [&](std::error_code written, std::size_t) {
      if (written) {
        result = written;
        return;
      }
      asio::async_read(socket, asio::dynamic_buffer(response),
                       [&](std::error_code read, std::size_t) { result = read; });
    });
  });
  io.run_for(10s);
  EXPECT_EQ(result, asio::error::eof) << "the scrape did not complete within 10 s";
  const auto end_of_headers = response.find("\r\n\r\n");
  EXPECT_NE(end_of_headers, std::string::npos) << response;
  EXPECT_EQ(response.substr(0, response.find("\r\n")), "HTTP/1.1 200 OK") << response;
  return end_of_headers == std::string::npos ? std::string() : response.substr(end_of_headers + 4);
}

// How many lines of `text` are exactly `line`.
int count_lines(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  int n = 0;
  for (std::string l; std::getline(in, l);) {
    n += l == line ? 1 : 0;
  }
  return n;
}

// Line `line` occurs exactly once.
::testing::AssertionResult has_line(const std::string& text, const std::string& line) {
  const int n = count_lines(text, line);
  if (n == 1) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << n << " times: " << line << "\n--- in:\n" << text;
}

class PrometheusScrape : public ::testing::Test {
 protected:
  // One exposer for the suite: civetweb takes about 2 s to stop. Port 0: the system picks a
  // free port, read back with GetListeningPorts().
  static void SetUpTestSuite() { exposer_ = new prometheus::Exposer("127.0.0.1:0", 1); }
  static void TearDownTestSuite() {
    delete exposer_;
    exposer_ = nullptr;
  }

  // Each test scrapes its own registry and gauges only.
  PrometheusScrape() {
    exposer_->RegisterCollectable(registry_);
    exposer_->RegisterCollectable(gauges_);
  }
  ~PrometheusScrape() override {
    exposer_->RemoveCollectable(registry_);
    exposer_->RemoveCollectable(gauges_);
  }

  std::string scrape_now() {
    const auto ports = exposer_->GetListeningPorts();
    EXPECT_EQ(ports.size(), 1u);
    return ports.empty() ? std::string() : scrape(ports.front());
  }

  static prometheus::Exposer* exposer_;
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  std::shared_ptr<redlock::prometheus_gauges> gauges_ =
      std::make_shared<redlock::prometheus_gauges>();
};

prometheus::Exposer* PrometheusScrape::exposer_ = nullptr;

redlock::operation_event op_event(operation op, std::error_code ec, int attempts,
                                  std::chrono::nanoseconds duration,
                                  std::chrono::nanoseconds last_attempt) {
  redlock::operation_event e;
  e.op = op;
  e.ec = ec;
  e.attempts = attempts;
  e.duration = duration;
  e.last_attempt = last_attempt;
  return e;
}

// The histogram lines of one series with a single label set `labels` (e.g. manager="orders"),
// so that a test names the observed buckets only: `counts` are the cumulative counts of
// `bounds` in order, then +Inf.
void expect_histogram(const std::string& text, const std::string& name, const std::string& labels,
                      const std::vector<std::string>& bounds, const std::vector<int>& counts,
                      const std::string& sum) {
  ASSERT_EQ(counts.size(), bounds.size() + 1);
  EXPECT_TRUE(has_line(text, name + "_count{" + labels + "} " + std::to_string(counts.back())));
  EXPECT_TRUE(has_line(text, name + "_sum{" + labels + "} " + sum));
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    EXPECT_TRUE(has_line(text, name + "_bucket{" + labels + ",le=\"" + bounds[i] + "\"} " +
                                   std::to_string(counts[i])));
  }
  EXPECT_TRUE(has_line(
      text, name + "_bucket{" + labels + ",le=\"+Inf\"} " + std::to_string(counts.back())));
}

const std::vector<std::string> latency_bounds{
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10"};
const std::vector<std::string> hold_bounds{"0.001", "0.01", "0.1", "0.5", "1",    "5",   "10",
                                           "30",    "60",   "300", "600", "1800", "3600"};

TEST_F(PrometheusScrape, CountsOperationsByOperationAndResult) {
  redlock::prometheus_metrics metrics(*registry_, {.labels = {{"manager", "orders"}}});
  auto obs = metrics.observer_ptr();
  obs->operation_done(op_event(operation::lock, {}, 2, 30ms, 2ms));
  obs->operation_done(op_event(operation::lock, errc::quorum_unreachable, 3, 1500ms, 40ms));
  obs->operation_done(op_event(operation::try_lock, errc::resource_locked, 1, 1ms, 1ms));
  obs->operation_done(op_event(operation::try_lock, errc::resource_locked, 1, 1ms, 1ms));
  obs->operation_done(op_event(operation::try_lock, {}, 1, 300us, 300us));
  obs->operation_done(op_event(operation::extend, {}, 1, 1ms, 1ms));
  // A code of another category is "other": the label set stays bounded.
  obs->operation_done(
      op_event(operation::unlock, std::make_error_code(std::errc::io_error), 1, 1ms, 1ms));

  const std::string text = scrape_now();
  const std::string m = R"(manager="orders",)";
  EXPECT_TRUE(has_line(text, "# TYPE redlock_operations_total counter"));
  EXPECT_TRUE(has_line(text,
                       "# HELP redlock_operations_total Completed lock manager operations, "
                       "by operation and result (ok or the error code)"));
  for (const auto& [labels, value] : std::vector<std::pair<std::string, int>>{
           {R"(operation="lock",result="ok")", 1},
           {R"(operation="lock",result="quorum_unreachable")", 1},
           {R"(operation="try_lock",result="resource_locked")", 2},
           {R"(operation="try_lock",result="ok")", 1},
           {R"(operation="extend",result="ok")", 1},
           // Successes exist from the start, at 0, so that rate() works before the first one.
           {R"(operation="unlock",result="ok")", 0},
           {R"(operation="unlock",result="other")", 1}}) {
    EXPECT_TRUE(
        has_line(text, "redlock_operations_total{" + m + labels + "} " + std::to_string(value)));
  }
  EXPECT_THAT(text, Not(HasSubstr(R"(operation="extend",result="resource_locked")")))
      << "failures appear with their first occurrence only";
  EXPECT_TRUE(has_line(text, "# TYPE redlock_attempts_total counter"));
  EXPECT_TRUE(has_line(text, R"(redlock_attempts_total{manager="orders",operation="lock"} 5)"));
  EXPECT_TRUE(has_line(text, R"(redlock_attempts_total{manager="orders",operation="try_lock"} 3)"));
  EXPECT_TRUE(has_line(text, R"(redlock_attempts_total{manager="orders",operation="unlock"} 1)"));

  // Acquire: the last attempt of the successful lock (2 ms) and try_lock (300 µs).
  EXPECT_TRUE(has_line(text, "# TYPE redlock_acquire_duration_seconds histogram"));
  expect_histogram(text, "redlock_acquire_duration_seconds", R"(manager="orders")", latency_bounds,
                   {0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, "0.0023");
  // Wait: every lock operation's whole duration, the failed one included (30 ms, 1.5 s).
  EXPECT_TRUE(has_line(text, "# TYPE redlock_wait_duration_seconds histogram"));
  expect_histogram(text, "redlock_wait_duration_seconds", R"(manager="orders")", latency_bounds,
                   {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2}, "1.53");
}

TEST_F(PrometheusScrape, CountsHoldsReleasesAndLosses) {
  redlock::prometheus_metrics metrics(*registry_, {.labels = {{"manager", "orders"}}});
  auto obs = metrics.observer_ptr();
  obs->lock_ended(2s, false);
  obs->lock_ended(20s, true);
  obs->lock_ended(500us, false);

  const std::string text = scrape_now();
  EXPECT_TRUE(has_line(text, "# TYPE redlock_releases_total counter"));
  EXPECT_TRUE(has_line(text, R"(redlock_releases_total{manager="orders"} 2)"));
  EXPECT_TRUE(has_line(text, "# TYPE redlock_locks_lost_total counter"));
  EXPECT_TRUE(has_line(text, R"(redlock_locks_lost_total{manager="orders"} 1)"));
  EXPECT_TRUE(has_line(text, "# TYPE redlock_hold_duration_seconds histogram"));
  expect_histogram(text, "redlock_hold_duration_seconds", R"(manager="orders")", hold_bounds,
                   {1, 1, 1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3}, "22.0005");
}

TEST_F(PrometheusScrape, CountsNodeRequestsErrorsAndRoundTripsPerNodeWithEscapedIds) {
  redlock::prometheus_metrics metrics(*registry_, {.labels = {{"manager", "orders"}}});
  auto obs = metrics.observer_ptr();
  const std::string a = "redis://10.0.0.1:6379/0";
  // Not a real id: the characters the text format must escape in a label value.
  const std::string odd = "we\"ird\\node\nid";
  obs->node_request({0, &a, {}, 1500us});
  obs->node_request({0, &a, {}, 1500us});
  obs->node_request({0, &a, errc::timeout, 200ms});
  obs->node_request({1, &odd, errc::connect_failed, 3ms});
  obs->node_request({1, &odd, std::make_error_code(std::errc::connection_refused), 3ms});
  redlock::node_state_change down;
  down.index = 0;
  down.node = a;
  down.from = health_state::up;
  down.to = health_state::down;
  obs->node_state_changed(down);

  const std::string text = scrape_now();
  const std::string na = R"(manager="orders",node="redis://10.0.0.1:6379/0")";
  const std::string nodd = R"(manager="orders",node="we\"ird\\node\nid")";
  EXPECT_TRUE(has_line(text, "# TYPE redlock_node_requests_total counter"));
  EXPECT_TRUE(has_line(text, "redlock_node_requests_total{" + na + R"(,result="ok"} 2)"));
  EXPECT_TRUE(has_line(text, "redlock_node_requests_total{" + na + R"(,result="error"} 1)"));
  EXPECT_TRUE(has_line(text, "redlock_node_requests_total{" + nodd + R"(,result="ok"} 0)"));
  EXPECT_TRUE(has_line(text, "redlock_node_requests_total{" + nodd + R"(,result="error"} 2)"));
  // Labels are sorted by name: code comes before manager and node.
  EXPECT_TRUE(has_line(text, "# TYPE redlock_node_errors_total counter"));
  EXPECT_TRUE(has_line(
      text,
      R"(redlock_node_errors_total{code="timeout",manager="orders",node="redis://10.0.0.1:6379/0"} 1)"));
  EXPECT_TRUE(has_line(
      text,
      R"(redlock_node_errors_total{code="connect_failed",manager="orders",node="we\"ird\\node\nid"} 1)"));
  EXPECT_TRUE(has_line(
      text,
      R"(redlock_node_errors_total{code="other",manager="orders",node="we\"ird\\node\nid"} 1)"));
  EXPECT_TRUE(has_line(text, "# TYPE redlock_node_round_trip_seconds histogram"));
  expect_histogram(text, "redlock_node_round_trip_seconds", na, latency_bounds,
                   {0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3}, "0.203");
  expect_histogram(text, "redlock_node_round_trip_seconds", nodd, latency_bounds,
                   {0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, "0.006");
  EXPECT_TRUE(has_line(text, "# TYPE redlock_node_state_changes_total counter"));
  EXPECT_TRUE(has_line(text, "redlock_node_state_changes_total{" + na + R"(,state="down"} 1)"));
}

TEST_F(PrometheusScrape, GaugesAreReadFromTheSourcesAtEachScrape) {
  std::atomic<int> reads{0};
  redlock::manager_stats stats;
  stats.locks_held = 3;
  stats.operations_waiting = 1;
  stats.nodes.resize(2);
  stats.nodes[0].node = "redis://a:6379/0";
  stats.nodes[0].state = health_state::up;
  stats.nodes[1].node = "redis://b:6379/0";
  stats.nodes[1].state = health_state::lagging;
  gauges_->add_source(
      [&] {
        ++reads;
        return stats;
      },
      {{"manager", "orders"}});
  redlock::manager_stats other;
  other.locks_held = 7;
  const auto other_id = gauges_->add_source([&] { return other; }, {{"manager", "billing"}});
  EXPECT_EQ(reads.load(), 0) << "nothing is read before a scrape";

  std::string text = scrape_now();
  EXPECT_EQ(reads.load(), 1);
  EXPECT_TRUE(has_line(text, "# TYPE redlock_locks_held gauge"));
  EXPECT_TRUE(has_line(text,
                       "# HELP redlock_locks_held Locks acquired through the manager "
                       "whose validity has not passed"));
  EXPECT_TRUE(has_line(text, R"(redlock_locks_held{manager="orders"} 3)"));
  EXPECT_TRUE(has_line(text, R"(redlock_locks_held{manager="billing"} 7)"));
  EXPECT_TRUE(has_line(text, "# TYPE redlock_operations_waiting gauge"));
  EXPECT_TRUE(has_line(text, R"(redlock_operations_waiting{manager="orders"} 1)"));
  EXPECT_TRUE(has_line(text, "# TYPE redlock_node_state gauge"));
  const std::string a = R"(manager="orders",node="redis://a:6379/0")";
  const std::string b = R"(manager="orders",node="redis://b:6379/0")";
  for (const auto& [state, value] : std::vector<std::pair<std::string, int>>{
           {"unknown", 0}, {"up", 1}, {"lagging", 0}, {"down", 0}}) {
    EXPECT_TRUE(has_line(
        text, "redlock_node_state{" + a + ",state=\"" + state + "\"} " + std::to_string(value)));
  }
  EXPECT_TRUE(has_line(text, "redlock_node_state{" + b + R"(,state="lagging"} 1)"));
  EXPECT_TRUE(has_line(text, "redlock_node_state{" + b + R"(,state="up"} 0)"));
  EXPECT_TRUE(has_line(text, "# TYPE redlock_node_up gauge"));
  EXPECT_TRUE(has_line(text, "redlock_node_up{" + a + "} 1"));
  EXPECT_TRUE(has_line(text, "redlock_node_up{" + b + "} 0"));

  // The next scrape reads the stats again: a change shows without any event.
  stats.locks_held = 0;
  stats.nodes[1].state = health_state::up;
  gauges_->remove_source(other_id);
  text = scrape_now();
  EXPECT_EQ(reads.load(), 2);
  EXPECT_TRUE(has_line(text, R"(redlock_locks_held{manager="orders"} 0)"));
  EXPECT_TRUE(has_line(text, "redlock_node_up{" + b + "} 1"));
  EXPECT_THAT(text, Not(HasSubstr(R"(manager="billing")"))) << "a removed source is not read";
}

TEST_F(PrometheusScrape, ManagersShareOneRegistryAndOneFamilyPerMetric) {
  redlock::prometheus_metrics orders(*registry_, {.labels = {{"manager", "orders"}}});
  redlock::prometheus_metrics billing(*registry_, {.labels = {{"manager", "billing"}}});
  orders.observer_ptr()->operation_done(op_event(operation::lock, {}, 1, 1ms, 1ms));
  billing.observer_ptr()->operation_done(op_event(operation::lock, {}, 1, 1ms, 1ms));
  billing.observer_ptr()->operation_done(op_event(operation::lock, {}, 1, 1ms, 1ms));
  redlock::manager_stats none;
  gauges_->add_source([&] { return none; }, orders.labels());
  gauges_->add_source([&] { return none; }, billing.labels());

  const std::string text = scrape_now();
  EXPECT_EQ(count_lines(text, "# TYPE redlock_operations_total counter"), 1);
  EXPECT_EQ(count_lines(text, "# TYPE redlock_locks_held gauge"), 1);
  EXPECT_TRUE(has_line(
      text, R"(redlock_operations_total{manager="orders",operation="lock",result="ok"} 1)"));
  EXPECT_TRUE(has_line(
      text, R"(redlock_operations_total{manager="billing",operation="lock",result="ok"} 2)"));
  EXPECT_TRUE(has_line(text, R"(redlock_locks_held{manager="billing"} 0)"));
}

TEST_F(PrometheusScrape, ObserverCallsFromSeveralThreadsAreAllCounted) {
  redlock::prometheus_metrics metrics(*registry_);
  auto obs = metrics.observer_ptr();
  const std::string a = "redis://a:6379/0";
  const std::string b = "redis://b:6379/0";
  constexpr int per_thread = 2000;
  // Two managers' strands feeding one observer, the same node index naming other nodes, while
  // a scrape runs.
  auto feed = [&](const std::string* id) {
    for (int i = 0; i < per_thread; ++i) {
      obs->node_request({0, id, i % 2 == 0 ? std::error_code() : errc::timeout, 1ms});
      obs->operation_done(op_event(operation::try_lock, errc::resource_locked, 1, 1ms, 1ms));
    }
  };
  std::thread t1(feed, &a);
  std::thread t2(feed, &b);
  const std::string during = scrape_now();
  t1.join();
  t2.join();
  EXPECT_THAT(during, HasSubstr("redlock_operations_total"));

  const std::string text = scrape_now();
  for (const std::string* id : {&a, &b}) {
    const std::string n = "node=\"" + *id + "\"";
    EXPECT_TRUE(has_line(text, "redlock_node_requests_total{" + n + R"(,result="ok"} 1000)"));
    EXPECT_TRUE(has_line(text, "redlock_node_requests_total{" + n + R"(,result="error"} 1000)"));
    EXPECT_TRUE(has_line(text, R"(redlock_node_errors_total{code="timeout",)" + n + "} 1000"));
    EXPECT_TRUE(has_line(text, "redlock_node_round_trip_seconds_count{" + n + "} 2000"));
  }
  EXPECT_TRUE(has_line(
      text, R"(redlock_operations_total{operation="try_lock",result="resource_locked"} 4000)"));
}

template <typename F>
void expect_invalid_argument(F&& f, const std::string& naming) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one naming " << naming;
  } catch (const redlock::lock_error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_THAT(e.what(), HasSubstr(naming));
  }
}

TEST(PrometheusOptions, UnusableLabelsAndBucketsAreInvalidArguments) {
  prometheus::Registry registry;
  expect_invalid_argument(
      [&] {
        redlock::prometheus_metrics m(registry, {.labels = {{"0manager", "x"}}});
      },
      "prometheus_options::labels");
  expect_invalid_argument(
      [&] {
        redlock::prometheus_metrics m(registry, {.labels = {{"node", "x"}}});
      },
      "prometheus_options::labels");
  redlock::prometheus_options decreasing;
  decreasing.latency_buckets = {0.1, 0.01};
  expect_invalid_argument([&] { redlock::prometheus_metrics m(registry, decreasing); },
                          "prometheus_options::latency_buckets");
  redlock::prometheus_options empty;
  empty.hold_buckets.clear();
  expect_invalid_argument([&] { redlock::prometheus_metrics m(registry, empty); },
                          "prometheus_options::hold_buckets");
  redlock::prometheus_gauges gauges;
  expect_invalid_argument([&] { gauges.add_source({}); }, "source");
  expect_invalid_argument(
      [&] {
        gauges.add_source([] { return redlock::manager_stats{}; }, {{"state", "x"}});
      },
      "prometheus_gauges::add_source: labels");
}

// The wiring the README shows, end to end: a real manager (over the testing kit's fake
// deployment) feeds the observer, and the gauges read its stats() at scrape time.
TEST_F(PrometheusScrape, AManagerWiredAsTheReadmeShowsIsScraped) {
  asio::io_context io;
  redlock::testing::fake_deployment d{io.get_executor(), 3};
  auto s = redlock::test::fast_options();
  s.retry_count = 0;
  auto nodes = d.nodes();
  const std::string node0 = nodes[0]->id();
  redlock::lock_manager manager(io.get_executor(), nodes, s);
  redlock::prometheus_metrics metrics(*registry_, {.labels = {{"manager", "orders"}}});
  manager.set_observer(metrics.observer_ptr());
  const auto source =
      gauges_->add_source([&manager] { return manager.stats(); }, {{"manager", "orders"}});

  bool done = false;
  redlock::lock held;
  manager.async_lock("orders:42", 10s, [&](std::error_code ec, redlock::lock l) {
    EXPECT_FALSE(ec) << ec.message();
    held = std::move(l);
    done = true;
  });
  ASSERT_TRUE(redlock::test::run_until(
      io, [&] { return done; }, 10s));
  std::string text = scrape_now();
  EXPECT_TRUE(has_line(
      text, R"(redlock_operations_total{manager="orders",operation="lock",result="ok"} 1)"));
  EXPECT_TRUE(has_line(text, R"(redlock_locks_held{manager="orders"} 1)"));
  EXPECT_TRUE(has_line(text, R"(redlock_node_requests_total{manager="orders",node=")" + node0 +
                                 R"(",result="ok"} 1)"));
  EXPECT_TRUE(has_line(text, R"(redlock_node_up{manager="orders",node=")" + node0 + R"("} 1)"));

  done = false;
  manager.async_unlock(held, [&](std::error_code ec, redlock::unlock_result) {
    EXPECT_FALSE(ec) << ec.message();
    done = true;
  });
  ASSERT_TRUE(redlock::test::run_until(
      io, [&] { return done; }, 10s));
  text = scrape_now();
  EXPECT_TRUE(has_line(
      text, R"(redlock_operations_total{manager="orders",operation="unlock",result="ok"} 1)"));
  EXPECT_TRUE(has_line(text, R"(redlock_releases_total{manager="orders"} 1)"));
  EXPECT_TRUE(has_line(text, R"(redlock_locks_held{manager="orders"} 0)"));
  gauges_->remove_source(source);
}

}  // namespace

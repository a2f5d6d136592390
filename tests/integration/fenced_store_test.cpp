// The fenced store's script on a real redis-server: the token rule (lower refused, equal and
// higher accepted), exact comparison above 2^53, the storage layout users copy, and
// concurrent writers.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "internal/fenced_store.hpp"
#include "redlock/error.hpp"
#include "redlock/fenced_store.hpp"
#include "redlock/make_node.hpp"
#include "support/io_thread.hpp"
#include "support/redis_server.hpp"
#include "support/replies.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::fenced_store;
using redlock::fenced_value;
using redlock::fenced_write_result;
using redlock::reply;
using redlock::test::redis_server;

constexpr std::uint64_t max_token = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t two_53 = std::uint64_t{1} << 53;

// Far above what a loaded machine needs; a missing completion fails the test instead.
redlock::connection_options generous() {
  redlock::connection_options o;
  o.connect_timeout = 10s;
  o.request_timeout = 10s;
  return o;
}

template <class Result>
std::pair<std::error_code, Result> wait_result(std::future<std::pair<std::error_code, Result>>& f) {
  if (f.wait_for(20s) != std::future_status::ready) {
    ADD_FAILURE() << "operation did not complete within 20 s";
    return {make_error_code(errc::timeout), Result{}};
  }
  return f.get();
}

std::pair<std::error_code, fenced_write_result> write(const fenced_store& s, std::uint64_t token,
                                                      std::string value) {
  using outcome = std::pair<std::error_code, fenced_write_result>;
  auto p = std::make_shared<std::promise<outcome>>();
  auto f = p->get_future();
  s.async_write(token, std::move(value), [p](std::error_code ec, fenced_write_result r) {
    p->set_value({ec, std::move(r)});
  });
  return wait_result(f);
}

std::pair<std::error_code, fenced_value> read(const fenced_store& s) {
  using outcome = std::pair<std::error_code, fenced_value>;
  auto p = std::make_shared<std::promise<outcome>>();
  auto f = p->get_future();
  s.async_read([p](std::error_code ec, fenced_value v) { p->set_value({ec, std::move(v)}); });
  return wait_result(f);
}

class FencedStoreIntegration : public ::testing::Test {
 public:
  static void SetUpTestSuite() { server_ = new redis_server(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

 protected:
  std::shared_ptr<redlock::node> make_node() {
    return redlock::make_node(io.executor(), server_->url(), generous());
  }
  // One key per test, so that the tests share the server without seeing each other's data.
  static std::string test_key() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return std::string("fenced:") + info->name();
  }
  fenced_store make_store(const std::string& key) {
    nodes_.push_back(make_node());
    return fenced_store(io.executor(), nodes_.back(), key);
  }
  void TearDown() override {
    for (auto& n : nodes_)
      n->close();
  }

  static redis_server* server_;
  redlock::test::io_thread io;  // first: outlives the nodes
  std::vector<std::shared_ptr<redlock::node>> nodes_;
};
redis_server* FencedStoreIntegration::server_ = nullptr;

TEST_F(FencedStoreIntegration, LowerTokenIsRefusedEqualAndHigherAreAcceptedHighestIsReported) {
  auto store = make_store(test_key());

  auto [ec1, w1] = write(store, 10, "first");
  ASSERT_FALSE(ec1) << ec1.message() << " " << w1.message;
  EXPECT_TRUE(w1.accepted);
  EXPECT_EQ(w1.highest, 10u);

  auto [ec2, w2] = write(store, 9, "stale");
  ASSERT_FALSE(ec2);
  EXPECT_FALSE(w2.accepted);
  EXPECT_EQ(w2.highest, 10u);
  auto [ec3, r3] = read(store);
  ASSERT_FALSE(ec3);
  EXPECT_EQ(r3.value, "first");
  EXPECT_EQ(r3.token, 10u);

  auto [ec4, w4] = write(store, 10, "again");  // the same holder writing again
  ASSERT_FALSE(ec4);
  EXPECT_TRUE(w4.accepted);
  EXPECT_EQ(w4.highest, 10u);

  auto [ec5, w5] = write(store, 11, "newer");
  ASSERT_FALSE(ec5);
  EXPECT_TRUE(w5.accepted);
  EXPECT_EQ(w5.highest, 11u);
  auto [ec6, r6] = read(store);
  ASSERT_FALSE(ec6);
  EXPECT_EQ(r6.value, "newer");
  EXPECT_EQ(r6.token, 11u);
}

TEST_F(FencedStoreIntegration, AKeyNeverWrittenReadsAsNoValueAndTokenZero) {
  auto store = make_store(test_key());
  auto [ec, r] = read(store);
  ASSERT_FALSE(ec) << ec.message() << " " << r.message;
  EXPECT_FALSE(r.value);
  EXPECT_EQ(r.token, 0u);
}

TEST_F(FencedStoreIntegration, StorageIsAHashOfTokenAndValueThatNeverExpires) {
  const auto key = test_key();
  auto store = make_store(key);
  ASSERT_FALSE(write(store, 12345, "payload").first);
  using namespace redlock::test;
  EXPECT_EQ(server_->command({"TYPE", key}), status("hash"));
  EXPECT_EQ(server_->command({"HGET", key, "token"}), str("12345"));
  EXPECT_EQ(server_->command({"HGET", key, "value"}), str("payload"));
  EXPECT_EQ(server_->command({"HLEN", key}), integer(2));
  EXPECT_EQ(server_->command({"TTL", key}), integer(-1));
}

TEST_F(FencedStoreIntegration, TokensAbove2To53AreComparedExactly) {
  // As doubles (Lua numbers), 2^53 + 1 == 2^53 and 2^64 - 2 == 2^64 - 1.
  auto store = make_store(test_key());
  ASSERT_TRUE(write(store, two_53 + 1, "a").second.accepted);
  auto [ec1, w1] = write(store, two_53, "stale");
  ASSERT_FALSE(ec1);
  EXPECT_FALSE(w1.accepted);
  EXPECT_EQ(w1.highest, two_53 + 1);

  ASSERT_TRUE(write(store, max_token - 1, "b").second.accepted);
  auto [ec2, w2] = write(store, max_token - 2, "stale");
  ASSERT_FALSE(ec2);
  EXPECT_FALSE(w2.accepted);
  EXPECT_EQ(w2.highest, max_token - 1);

  auto [ec3, w3] = write(store, max_token, "top");
  ASSERT_FALSE(ec3);
  EXPECT_TRUE(w3.accepted);
  EXPECT_EQ(w3.highest, max_token);
  auto [ec4, r4] = read(store);
  ASSERT_FALSE(ec4);
  EXPECT_EQ(r4.value, "top");
  EXPECT_EQ(r4.token, max_token);
}

TEST_F(FencedStoreIntegration, TokensOfDifferentLengthsCompareAsNumbersNotAsText) {
  // As text, "9" > "10" and "99" > "100".
  auto store = make_store(test_key());
  ASSERT_TRUE(write(store, 10, "ten").second.accepted);
  auto [ec1, w1] = write(store, 9, "nine");
  ASSERT_FALSE(ec1);
  EXPECT_FALSE(w1.accepted);
  EXPECT_EQ(w1.highest, 10u);
  EXPECT_TRUE(write(store, 100, "hundred").second.accepted);
  EXPECT_FALSE(write(store, 99, "stale").second.accepted);
  EXPECT_TRUE(write(store, 1000000000000000000u, "1e18").second.accepted);
  EXPECT_FALSE(write(store, 999999999999999999u, "stale").second.accepted);
  EXPECT_EQ(read(store).second.value, "1e18");
}

TEST_F(FencedStoreIntegration, BinaryValuesRoundTrip) {
  auto store = make_store(test_key());
  std::string value("\0\x01\xff\r\nend", 8);
  ASSERT_TRUE(write(store, 1, value).second.accepted);
  EXPECT_EQ(read(store).second.value, value);
  ASSERT_TRUE(write(store, 2, "").second.accepted);  // an empty value is a value
  auto [ec, r] = read(store);
  ASSERT_FALSE(ec);
  EXPECT_EQ(r.value, "");
  EXPECT_EQ(r.token, 2u);
}

TEST_F(FencedStoreIntegration, AKeyOfAnotherTypeFailsWithTheServersMessage) {
  const auto key = test_key();
  server_->command({"SET", key, "not a hash"});
  auto store = make_store(key);
  auto [ec, w] = write(store, 1, "v");
  EXPECT_EQ(ec, errc::server_error);
  EXPECT_FALSE(w.accepted);
  EXPECT_NE(w.message.find("WRONGTYPE"), std::string::npos) << w.message;
  auto [rec, r] = read(store);
  EXPECT_EQ(rec, errc::server_error);
  EXPECT_NE(r.message.find("WRONGTYPE"), std::string::npos) << r.message;
  EXPECT_EQ(server_->command({"GET", key}), redlock::test::str("not a hash"));
}

TEST_F(FencedStoreIntegration, TheScriptCalledByHandRefusesTokensThatAreNotCanonicalDecimals) {
  // Users copy the script into their own code; a token it cannot compare must not be stored.
  const auto key = test_key();
  const auto& text = redlock::detail::fenced_write_script().text();
  for (const char* bad : {"0", "007", "-1", "1.5", "1e3", "abc", "", " 1", "18446744073709551616",
                          "99999999999999999999"}) {
    auto r = server_->command({"EVAL", text, "1", key, bad, "v"});
    EXPECT_TRUE(r.is_error()) << '"' << bad << '"';
    EXPECT_NE(r.str.find("fenced write"), std::string::npos) << r.str;
  }
  EXPECT_EQ(server_->command({"EXISTS", key}), redlock::test::integer(0));
  auto ok = server_->command({"EVAL", text, "1", key, "18446744073709551615", "v"});
  EXPECT_EQ(ok, redlock::test::array(
                    {redlock::test::integer(1), redlock::test::str("18446744073709551615")}));
}

TEST_F(FencedStoreIntegration, ConcurrentWritersWithRandomTokensEndWithTheHighestTokensValue) {
  constexpr std::size_t writers = 4;
  constexpr int writes_each = 50;
  const auto key = test_key();
  std::vector<fenced_store> stores;
  for (std::size_t i = 0; i < writers; ++i)
    stores.push_back(make_store(key));  // one connection each: the writes interleave
  auto value_of = [](std::uint64_t t) { return "written with " + std::to_string(t); };

  struct writer_log {
    std::uint64_t max_sent = 0;
    std::vector<std::string> problems;
  };
  std::vector<writer_log> logs(writers);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < writers; ++i) {
    threads.emplace_back([&, i] {
      std::mt19937_64 rng(std::random_device{}());
      auto& log = logs[i];
      std::uint64_t last_highest = 0;
      for (int n = 0; n < writes_each; ++n) {
        // Magnitudes from 1 to 2^64-1, most above 2^53. The low 4 bits are the writer's
        // index + 1, so two writers never send the same token (and no token is 0).
        const std::uint64_t t = ((rng() >> (rng() % 60)) << 4) | (i + 1);
        log.max_sent = std::max(log.max_sent, t);
        auto [ec, w] = write(stores[i], t, value_of(t));
        if (ec) {
          log.problems.push_back("write " + std::to_string(t) + ": " + ec.message());
          continue;
        }
        if (w.accepted ? w.highest != t : w.highest <= t)
          log.problems.push_back("token " + std::to_string(t) + " answered " +
                                 (w.accepted ? "accepted" : "refused") + " with highest " +
                                 std::to_string(w.highest));
        // One writer's writes are sequential, so the highest it sees never goes down.
        if (w.highest < last_highest)
          log.problems.push_back("highest went down to " + std::to_string(w.highest));
        last_highest = w.highest;
      }
    });
  }
  for (auto& t : threads)
    t.join();

  std::uint64_t max_sent = 0;
  for (const auto& log : logs) {
    for (const auto& p : log.problems)
      ADD_FAILURE() << p;
    max_sent = std::max(max_sent, log.max_sent);
  }
  auto [ec, r] = read(stores[0]);
  ASSERT_FALSE(ec) << ec.message() << " " << r.message;
  EXPECT_EQ(r.token, max_sent);
  EXPECT_EQ(r.value, value_of(max_sent));
}

}  // namespace

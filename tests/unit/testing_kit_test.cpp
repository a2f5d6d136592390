// redlock::testing, the kit users get for testing their own lock-using code without Redis:
// fake deployments on a virtual clock, with faults per server.
#include <gtest/gtest.h>

#include <asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "redlock/lock_manager.hpp"
#include "redlock/testing.hpp"
#include "support/io_thread.hpp"
#include "support/options.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::vote;
namespace rt = redlock::testing;

using redlock::test::outcome;

class TestingKit : public ::testing::Test {
 protected:
  asio::io_context io;
  rt::fake_deployment d{io.get_executor(), 3};

  static redlock::manager_options options() {
    auto o = redlock::test::fast_options();
    o.retry_count = 0;  // contention shows at once instead of after the retries
    o.request_timeout = 100ms;
    return o;
  }

  outcome<redlock::lock> lock(redlock::lock_manager& m, const std::string& resource,
                              std::chrono::milliseconds ttl = 10s) {
    auto out = redlock::test::complete<redlock::lock>(
        io, [&](auto done) { m.async_lock(std::vector<std::string>{resource}, ttl, done); });
    EXPECT_TRUE(out.done) << "lock did not complete";
    return out;
  }

  outcome<redlock::lock> extend(redlock::lock_manager& m, const redlock::lock& l,
                                std::chrono::milliseconds ttl = 10s) {
    auto out = redlock::test::complete<redlock::lock>(
        io, [&](auto done) { m.async_extend(l, ttl, done); });
    EXPECT_TRUE(out.done) << "extend did not complete";
    return out;
  }

  outcome<redlock::unlock_result> unlock(redlock::lock_manager& m, const redlock::lock& l) {
    auto out = redlock::test::complete<redlock::unlock_result>(
        io, [&](auto done) { m.async_unlock(l, done); });
    EXPECT_TRUE(out.done) << "unlock did not complete";
    return out;
  }
};

TEST_F(TestingKit, ASecondManagerIsRefusedWhileTheFirstHoldsTheLockAndGetsItAfterTheUnlock) {
  redlock::lock_manager first(io.get_executor(), d.nodes(), options());
  redlock::lock_manager second(io.get_executor(), d.nodes(), options());

  auto a = lock(first, "job");
  ASSERT_FALSE(a.ec) << a.ec.message();
  EXPECT_EQ(d.count_holding("job", a.value.value()), 3u);

  auto refused = lock(second, "job");
  EXPECT_EQ(refused.ec, make_error_code(errc::resource_locked));

  ASSERT_FALSE(unlock(first, a.value).ec);
  EXPECT_TRUE(d[0].store().empty());
  auto b = lock(second, "job");
  ASSERT_FALSE(b.ec) << b.ec.message();
  EXPECT_EQ(d.count_holding("job", b.value.value()), 3u);
}

TEST_F(TestingKit, AdvancingTheClockByTheTtlExpiresTheKeysSoAnotherManagerTakesTheLock) {
  redlock::lock_manager first(io.get_executor(), d.nodes(), options());
  redlock::lock_manager second(io.get_executor(), d.nodes(), options());
  auto a = lock(first, "job", 5s);
  ASSERT_FALSE(a.ec) << a.ec.message();
  EXPECT_EQ(d[1].ttl("job"), 5000ms);

  d.clock().advance(4999ms);
  EXPECT_EQ(d[1].ttl("job"), 1ms);
  EXPECT_EQ(lock(second, "job").ec, make_error_code(errc::resource_locked));

  d.clock().advance(1ms);
  EXPECT_FALSE(d[1].value("job").has_value());
  auto b = lock(second, "job", 5s);
  ASSERT_FALSE(b.ec) << b.ec.message();

  // The first handle's local validity runs on real time, so the extend is sent; the servers
  // hold the second manager's value, so it reports the loss.
  auto e = extend(first, a.value);
  EXPECT_EQ(e.ec, make_error_code(errc::lock_lost));
  EXPECT_EQ(d.count_holding("job", b.value.value()), 3u);
}

TEST_F(TestingKit, AnExtendBeforeTheTtlRunsOutResetsTheKeysTtlOnTheVirtualClock) {
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  auto a = lock(m, "job", 5s);
  ASSERT_FALSE(a.ec) << a.ec.message();
  d.clock().advance(4s);
  auto e = extend(m, a.value, 5s);
  ASSERT_FALSE(e.ec) << e.ec.message();
  d.clock().advance(4s);  // 8 s after the lock, 4 s after the extend
  EXPECT_EQ(d.count_holding("job", a.value.value()), 3u);
  EXPECT_EQ(d[2].ttl("job"), 1000ms);
}

TEST_F(TestingKit, LosingTheKeysOnAMajorityLetsAnotherManagerInAndTheFirstExtendReportsTheLoss) {
  redlock::lock_manager first(io.get_executor(), d.nodes(), options());
  redlock::lock_manager second(io.get_executor(), d.nodes(), options());
  auto a = lock(first, "job");
  ASSERT_FALSE(a.ec) << a.ec.message();

  d[0].lose_keys();  // two servers restart without persistence
  d[1].lose_keys();
  auto b = lock(second, "job");
  ASSERT_FALSE(b.ec) << b.ec.message();
  EXPECT_EQ(d.count_holding("job", b.value.value()), 2u);
  EXPECT_EQ(d[2].value("job"), a.value.value());

  EXPECT_EQ(extend(first, a.value).ec, make_error_code(errc::lock_lost));
}

TEST_F(TestingKit, ADownServerStillLeavesAQuorumAndIsReportedAsAnError) {
  // Server 0: the first answer in, so the vote is recorded before the quorum decides.
  d[0].go_down();
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  auto a = lock(m, "job");
  ASSERT_FALSE(a.ec) << a.ec.message();
  EXPECT_EQ(d.count_holding("job", a.value.value()), 2u);
  const auto& votes = a.value.report().nodes;
  ASSERT_EQ(votes.size(), 3u);
  EXPECT_EQ(votes[0].outcome, vote::error);
  EXPECT_EQ(votes[0].ec, make_error_code(errc::connect_failed));

  d[1].go_down();  // now a minority is left: no quorum
  EXPECT_EQ(lock(m, "other").ec, make_error_code(errc::quorum_unreachable));
}

TEST_F(TestingKit, ADelayedServerIsNotWaitedForAndTwoSilentServersTimeOut) {
  d[0].delay_answers(2s);
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  const auto t0 = std::chrono::steady_clock::now();
  auto a = lock(m, "job");
  ASSERT_FALSE(a.ec) << a.ec.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s) << "waited for the delayed server";
  // The script ran on arrival (as on a real server); only the answer is late.
  EXPECT_EQ(d.count_holding("job", a.value.value()), 3u);

  d[0].recover();
  d[1].stop_answering();
  d[2].stop_answering();
  auto b = lock(m, "other");
  EXPECT_EQ(b.ec, make_error_code(errc::quorum_unreachable));
  const auto& votes = b.value.report().nodes;
  ASSERT_EQ(votes.size(), 3u);
  EXPECT_EQ(votes[1].outcome, vote::timeout);
  EXPECT_EQ(votes[2].outcome, vote::timeout);
}

TEST_F(TestingKit, AnErrorReplyCarriesTheServersMessageIntoTheReport) {
  d[0].answer_with_error("READONLY You can't write against a read only replica.");
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  auto a = lock(m, "job");
  ASSERT_FALSE(a.ec) << a.ec.message();
  const auto& v = a.value.report().nodes.at(0);
  EXPECT_EQ(v.outcome, vote::error);
  EXPECT_EQ(v.ec, make_error_code(errc::server_error));
  EXPECT_EQ(v.message, "READONLY You can't write against a read only replica.");
  EXPECT_EQ(d[0].count(rt::script_kind::acquire), 1u);
}

TEST_F(TestingKit, AKeySetByTheTestBlocksTheLockUntilItsTtlRunsOut) {
  for (std::size_t i = 0; i < d.size(); ++i)
    d[i].set_key("job", "someone-else", 3s);
  redlock::lock_manager m(io.get_executor(), d.nodes(), options());
  EXPECT_EQ(lock(m, "job").ec, make_error_code(errc::resource_locked));
  d.clock().advance(3s);
  EXPECT_FALSE(lock(m, "job").ec);
}

}  // namespace

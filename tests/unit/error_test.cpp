// The redlock error category and its integration with std::error_code.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <system_error>
#include <type_traits>

#include <asio/error.hpp>

#include "redlock/error.hpp"

namespace {

using redlock::errc;

constexpr int first_code = static_cast<int>(errc::resource_locked);
constexpr int last_code = static_cast<int>(errc::duplicate_deployment);

TEST(ErrorCategory, IsNamedRedlock) {
  EXPECT_STREQ(redlock::category().name(), "redlock");
}

TEST(ErrorCategory, EnumStartsAtOneSoZeroMeansSuccess) {
  EXPECT_EQ(first_code, 1);
  EXPECT_FALSE(std::error_code());
  EXPECT_TRUE(std::error_code(errc::resource_locked));
}

TEST(ErrorCategory, EveryCodeHasANonEmptyDistinctMessage) {
  std::set<std::string> messages;
  for (int v = first_code; v <= last_code; ++v) {
    const std::string m = redlock::category().message(v);
    EXPECT_FALSE(m.empty()) << v;
    EXPECT_TRUE(messages.insert(m).second) << "duplicate message for " << v << ": " << m;
  }
  EXPECT_EQ(messages.size(), static_cast<std::size_t>(last_code - first_code + 1));
}

TEST(ErrorCategory, UnknownValueStillHasAMessage) {
  const std::string unknown = redlock::category().message(last_code + 100);
  EXPECT_FALSE(unknown.empty());
  for (int v = first_code; v <= last_code; ++v) {
    EXPECT_NE(redlock::category().message(v), unknown) << v;
  }
}

TEST(ErrorCode, ErrcIsAnErrorCodeEnum) {
  static_assert(std::is_error_code_enum_v<errc>);
  const std::error_code ec = errc::timeout;  // implicit conversion through make_error_code
  EXPECT_EQ(ec.value(), static_cast<int>(errc::timeout));
  EXPECT_EQ(&ec.category(), &redlock::category());
  EXPECT_EQ(ec.message(), redlock::category().message(static_cast<int>(errc::timeout)));
}

TEST(ErrorCode, ComparesWithStdErrorCode) {
  const std::error_code ec = redlock::make_error_code(errc::lock_lost);
  EXPECT_EQ(ec, errc::lock_lost);
  EXPECT_NE(ec, errc::lock_expired);
  EXPECT_TRUE(ec == std::error_code(errc::lock_lost));
  // Same value in another category is a different error.
  EXPECT_NE(ec, std::error_code(static_cast<int>(errc::lock_lost), std::generic_category()));
  EXPECT_NE(std::error_code(errc::timeout), std::make_error_code(std::errc::timed_out));
}

TEST(ErrorCondition, CancelledMeansOperationCanceledAsAsiosOperationAborted) {
  const std::error_code ec = errc::cancelled;
  EXPECT_TRUE(ec == std::errc::operation_canceled);
  EXPECT_EQ(ec.default_error_condition(),
            asio::error_code(asio::error::operation_aborted).default_error_condition());
  // The code itself stays redlock's: only the conditions meet.
  EXPECT_NE(ec, asio::error_code(asio::error::operation_aborted));
  EXPECT_EQ(ec.message(), "operation cancelled");
}

TEST(ErrorCondition, TimeoutMeansTimedOut) {
  const std::error_code ec = errc::timeout;
  EXPECT_TRUE(ec == std::errc::timed_out);
  EXPECT_EQ(ec.default_error_condition(), std::errc::timed_out);
}

TEST(ErrorCondition, InvalidArgumentMeansInvalidArgument) {
  const std::error_code ec = errc::invalid_argument;
  EXPECT_TRUE(ec == std::errc::invalid_argument);
  EXPECT_EQ(ec.default_error_condition(), std::errc::invalid_argument);
}

TEST(ErrorCondition, EveryOtherCodeIsItsOwnCondition) {
  for (int v = first_code; v <= last_code; ++v) {
    const auto e = static_cast<errc>(v);
    if (e == errc::cancelled || e == errc::timeout || e == errc::invalid_argument)
      continue;
    const std::error_code ec = e;
    EXPECT_EQ(ec.default_error_condition(), std::error_condition(v, redlock::category())) << v;
    EXPECT_FALSE(ec == std::errc::operation_canceled) << v;
    EXPECT_FALSE(ec == std::errc::timed_out) << v;
    EXPECT_FALSE(ec == std::errc::invalid_argument) << v;
  }
}

TEST(ErrorCode, LockErrorCarriesCodeAndMessage) {
  const redlock::lock_error e(errc::invalid_url, "bad port \"x\"");
  EXPECT_EQ(e.code(), errc::invalid_url);
  const std::string what = e.what();
  EXPECT_NE(what.find("bad port"), std::string::npos) << what;
  const std::system_error& base = e;
  EXPECT_EQ(base.code().category().name(), std::string("redlock"));
}

}  // namespace

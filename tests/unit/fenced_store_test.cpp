// The fenced store over a scripted fake node: what it sends, how it reads each reply, where
// and when its handlers run. (The script itself runs against real servers in
// tests/integration/fenced_store_test.cpp.)
#include <gtest/gtest.h>

#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "internal/fenced_store.hpp"
#include "redlock/asio_compat.hpp"
#include "redlock/error.hpp"
#include "redlock/fenced_store.hpp"
#include "support/fake_node.hpp"
#include "support/io_thread.hpp"
#include "support/replies.hpp"

namespace {

using redlock::errc;
using redlock::fenced_store;
using redlock::fenced_value;
using redlock::fenced_write_result;
using redlock::reply;
using redlock::test::array;
using redlock::test::fake_node;
using redlock::test::integer;
using redlock::test::nil;
using redlock::test::run_until;
using redlock::test::str;
using script_kind = redlock::testing::script_kind;
using step = redlock::testing::step;

constexpr std::uint64_t max_token = std::numeric_limits<std::uint64_t>::max();

step answer(reply r) {
  step s;
  s.r = std::move(r);
  return s;
}

// The script's two answers.
reply stored(std::string token) {
  return array({integer(1), str(std::move(token))});
}
reply refused(std::string highest) {
  return array({integer(0), str(std::move(highest))});
}

template <class Result>
struct completion {
  bool done = false;
  std::error_code ec;
  Result result;
};

class FencedStore : public ::testing::Test {
 protected:
  asio::io_context io;
  std::shared_ptr<fake_node> node = std::make_shared<fake_node>(io.get_executor(), "fake0");
  fenced_store store{io.get_executor(), node, "orders:42:total"};

  // Started from inside the io_context, where a dispatch to its executor would run inline:
  // the completion must still come after the initiating call returned.
  completion<fenced_write_result> write(std::uint64_t token, std::string value) {
    completion<fenced_write_result> c;
    bool returned = false;
    asio::post(io, [&] {
      store.async_write(token, std::move(value), [&](std::error_code ec, fenced_write_result r) {
        EXPECT_TRUE(returned) << "the handler ran inside async_write";
        c = {true, ec, std::move(r)};
      });
      returned = true;
    });
    EXPECT_TRUE(run_until(io, [&] { return c.done; })) << "no completion";
    return c;
  }
  completion<fenced_write_result> write_answered(std::uint64_t token, reply r) {
    node->push(script_kind::other, answer(std::move(r)));
    return write(token, "v");
  }
  completion<fenced_value> read() {
    completion<fenced_value> c;
    bool returned = false;
    asio::post(io, [&] {
      store.async_read([&](std::error_code ec, fenced_value v) {
        EXPECT_TRUE(returned) << "the handler ran inside async_read";
        c = {true, ec, std::move(v)};
      });
      returned = true;
    });
    EXPECT_TRUE(run_until(io, [&] { return c.done; })) << "no completion";
    return c;
  }
  completion<fenced_value> read_answered(reply r) {
    node->push(script_kind::other, answer(std::move(r)));
    return read();
  }
};

// --- what is sent ---

TEST_F(FencedStore, WriteSendsOneScriptWithTheKeyTheDecimalTokenAndTheValue) {
  auto c = write_answered(42, stored("42"));
  ASSERT_EQ(node->calls().size(), 1u);
  const auto call = node->calls()[0];
  EXPECT_EQ(call.keys, std::vector<std::string>{"orders:42:total"});
  EXPECT_EQ(call.args, (std::vector<std::string>{"42", "v"}));
  EXPECT_FALSE(c.ec);
}

TEST_F(FencedStore, TokensTravelAsExactDecimalsOverTheWhole64BitRange) {
  const std::uint64_t above_double = (std::uint64_t{1} << 53) + 1;  // not a double
  write_answered(above_double, stored("9007199254740993"));
  write_answered(max_token, stored("18446744073709551615"));
  const auto calls = node->calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].args[0], "9007199254740993");
  EXPECT_EQ(calls[1].args[0], "18446744073709551615");
}

TEST_F(FencedStore, ValueIsSentAsGivenIncludingBinaryBytes) {
  node->push(script_kind::other, answer(stored("3")));
  const std::string value("a\0b\xff", 4);
  write(3, value);
  ASSERT_EQ(node->calls().size(), 1u);
  EXPECT_EQ(node->calls()[0].args[1], value);
}

TEST_F(FencedStore, ReadSendsOneScriptWithTheKeyOnly) {
  read_answered(array({nil(), nil()}));
  ASSERT_EQ(node->calls().size(), 1u);
  EXPECT_EQ(node->calls()[0].keys, std::vector<std::string>{"orders:42:total"});
  EXPECT_TRUE(node->calls()[0].args.empty());
}

// --- arguments ---

TEST_F(FencedStore, TokenZeroIsAnInvalidArgumentNamedInTheMessageAndNothingIsSent) {
  auto c = write(0, "v");
  EXPECT_EQ(c.ec, errc::invalid_argument);
  EXPECT_EQ(c.ec, std::errc::invalid_argument);
  EXPECT_FALSE(c.result.accepted);
  EXPECT_EQ(c.result.highest, 0u);
  EXPECT_NE(c.result.message.find("token"), std::string::npos) << c.result.message;
  EXPECT_TRUE(node->calls().empty());
}

TEST(FencedStoreConstruction, RefusesANullNodeAndAnEmptyKeyNamingThem) {
  asio::io_context io;
  auto node = std::make_shared<fake_node>(io.get_executor(), "fake0");
  try {
    fenced_store s(io.get_executor(), nullptr, "k");
    ADD_FAILURE() << "a null node was accepted";
  } catch (const redlock::lock_error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("node"), std::string::npos) << e.what();
  }
  try {
    fenced_store s(io.get_executor(), node, "");
    ADD_FAILURE() << "an empty key was accepted";
  } catch (const redlock::lock_error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("key"), std::string::npos) << e.what();
  }
}

// --- reading the write's reply ---

TEST_F(FencedStore, AStoredWriteIsAcceptedWithItsOwnTokenAsTheHighest) {
  auto c = write_answered(7, stored("7"));
  EXPECT_FALSE(c.ec);
  EXPECT_TRUE(c.result.accepted);
  EXPECT_EQ(c.result.highest, 7u);
  EXPECT_TRUE(c.result.message.empty());
}

TEST_F(FencedStore, ARefusedWriteIsNoErrorAndReportsTheHigherToken) {
  auto c = write_answered(7, refused("50"));
  EXPECT_FALSE(c.ec);
  EXPECT_FALSE(c.result.accepted);
  EXPECT_EQ(c.result.highest, 50u);
}

TEST_F(FencedStore, AHighestTokenAbove2To53IsReadExactly) {
  auto c = write_answered(1, refused("18446744073709551615"));
  EXPECT_FALSE(c.ec);
  EXPECT_EQ(c.result.highest, max_token);
}

TEST_F(FencedStore, WriteRepliesTheScriptCannotGiveAreProtocolErrors) {
  struct bad {
    const char* what;
    std::uint64_t token;
    reply r;
  };
  const std::vector<bad> cases = {
      {"an integer", 5, integer(1)},
      {"nil", 5, nil()},
      {"a string", 5, str("OK")},
      {"one element", 5, array({integer(1)})},
      {"three elements", 5, array({integer(1), str("5"), str("5")})},
      {"flag as a string", 5, array({str("1"), str("5")})},
      {"flag 2", 5, array({integer(2), str("5")})},
      {"token as an integer", 5, array({integer(1), integer(5)})},
      {"token nil", 5, array({integer(1), nil()})},
      {"token not a number", 5, array({integer(1), str("abc")})},
      {"token with a leading zero", 5, array({integer(1), str("05")})},
      {"token zero", 5, array({integer(0), str("0")})},
      {"token negative", 5, array({integer(0), str("-6")})},
      {"token above 2^64-1", 5, array({integer(0), str("18446744073709551616")})},
      {"token with trailing text", 5, array({integer(1), str("5 ")})},
      {"accepted with another token", 5, stored("6")},
      {"refused by an equal token", 5, refused("5")},
      {"refused by a lower token", 5, refused("4")},
  };
  for (const auto& b : cases) {
    auto c = write_answered(b.token, b.r);
    EXPECT_EQ(c.ec, errc::protocol_error) << b.what;
    EXPECT_FALSE(c.result.accepted) << b.what;
    EXPECT_EQ(c.result.highest, 0u) << b.what;
    EXPECT_FALSE(c.result.message.empty()) << b.what;
  }
}

// --- node errors ---

TEST_F(FencedStore, AnErrorReplyPassesThroughWithTheServerMessage) {
  const std::string msg = "WRONGTYPE Operation against a key holding the wrong kind of value";
  node->push(script_kind::other, step::error_reply(msg));
  auto c = write(5, "v");
  EXPECT_EQ(c.ec, errc::server_error);
  EXPECT_FALSE(c.result.accepted);
  EXPECT_EQ(c.result.message, msg);

  node->push(script_kind::other, step::error_reply(msg));
  auto r = read();
  EXPECT_EQ(r.ec, errc::server_error);
  EXPECT_FALSE(r.result.value);
  EXPECT_EQ(r.result.message, msg);
}

TEST_F(FencedStore, TransportErrorsPassThrough) {
  node->push(script_kind::other, step::down());
  EXPECT_EQ(write(5, "v").ec, errc::connect_failed);
  node->push(script_kind::other, step::error(make_error_code(errc::timeout)));
  EXPECT_EQ(read().ec, errc::timeout);
  node->close();
  EXPECT_EQ(write(5, "v").ec, errc::closed);
  EXPECT_EQ(read().ec, errc::closed);
}

// --- reading the read's reply ---

TEST_F(FencedStore, AKeyNeverWrittenReadsAsNoValueAndTokenZero) {
  auto c = read_answered(array({nil(), nil()}));
  EXPECT_FALSE(c.ec);
  EXPECT_FALSE(c.result.value);
  EXPECT_EQ(c.result.token, 0u);
}

TEST_F(FencedStore, ReadReturnsTheValueAndItsToken) {
  auto c = read_answered(array({str("18446744073709551615"), str("hello")}));
  EXPECT_FALSE(c.ec);
  EXPECT_EQ(c.result.value, "hello");
  EXPECT_EQ(c.result.token, max_token);
}

TEST_F(FencedStore, ReadRepliesTheScriptCannotGiveAreProtocolErrors) {
  const std::vector<std::pair<const char*, reply>> cases = {
      {"an integer", integer(0)},
      {"nil", nil()},
      {"one element", array({str("1")})},
      {"three elements", array({str("1"), str("v"), str("x")})},
      {"token only", array({str("9"), nil()})},
      {"value only", array({nil(), str("v")})},
      {"token not a number", array({str("nine"), str("v")})},
      {"token zero", array({str("0"), str("v")})},
      {"token as an integer", array({integer(9), str("v")})},
  };
  for (const auto& [what, r] : cases) {
    auto c = read_answered(r);
    EXPECT_EQ(c.ec, errc::protocol_error) << what;
    EXPECT_FALSE(c.result.value) << what;
    EXPECT_EQ(c.result.token, 0u) << what;
    EXPECT_FALSE(c.result.message.empty()) << what;
  }
}

// --- where and when handlers run ---

TEST(FencedStoreHandlers, RunOnTheStoresExecutorByDefault) {
  asio::io_context node_io;   // where the node answers
  asio::io_context store_io;  // the store's executor
  auto node = std::make_shared<fake_node>(node_io.get_executor(), "fake0");
  node->push(script_kind::other, answer(stored("5")));
  fenced_store store(store_io.get_executor(), node, "k");
  bool done = false;
  store.async_write(5, "v", [&](std::error_code, fenced_write_result) { done = true; });
  node_io.run();  // the node answered
  EXPECT_FALSE(done);
  store_io.run();
  EXPECT_TRUE(done);
}

TEST(FencedStoreHandlers, RunOnTheirAssociatedExecutorAlsoForAnInvalidArgument) {
  asio::io_context store_io;
  asio::io_context handler_io;
  auto node = std::make_shared<fake_node>(store_io.get_executor(), "fake0");
  node->push(script_kind::other, answer(array({nil(), nil()})));
  fenced_store store(store_io.get_executor(), node, "k");
  int done = 0;
  store.async_write(0, "v", asio::bind_executor(handler_io, [&](std::error_code ec, auto) {
                      EXPECT_EQ(ec, errc::invalid_argument);
                      ++done;
                    }));
  store.async_read(asio::bind_executor(handler_io, [&](std::error_code ec, auto) {
    EXPECT_FALSE(ec);
    ++done;
  }));
  store_io.run();
  EXPECT_EQ(done, 0);
  handler_io.run();
  EXPECT_EQ(done, 2);
}

TEST(FencedStoreHandlers, TheStoreMayGoWhileAWriteIsInFlight) {
  asio::io_context io;
  auto node = std::make_shared<fake_node>(io.get_executor(), "fake0");
  node->push(script_kind::other, answer(stored("5")));
  std::optional<fenced_write_result> got;
  {
    fenced_store store(io.get_executor(), node, "k");
    store.async_write(5, "v", [&](std::error_code, fenced_write_result r) { got = r; });
  }
  ASSERT_TRUE(run_until(io, [&] { return got.has_value(); }));
  EXPECT_TRUE(got->accepted);
}

TEST(FencedStoreHandlers, WorkWithCoroutines) {
  asio::io_context io;
  auto node = std::make_shared<fake_node>(io.get_executor(), "fake0");
  node->push(script_kind::other, answer(refused("9")));
  node->push(script_kind::other, answer(array({str("9"), str("newer")})));
  fenced_store store(io.get_executor(), node, "k");
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto [ec, w] =
            co_await store.async_write(3, "stale", redlock::as_tuple(asio::use_awaitable));
        EXPECT_FALSE(ec);
        EXPECT_FALSE(w.accepted);
        EXPECT_EQ(w.highest, 9u);
        fenced_value v = co_await store.async_read(asio::use_awaitable);
        EXPECT_EQ(v.value, "newer");
        done = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(io, [&] { return done; }));
}

// --- the token's text form ---

TEST(FencedTokenText, RoundTripsEveryMagnitudeAndRefusesNonCanonicalText) {
  using redlock::detail::parse_token;
  using redlock::detail::token_to_string;
  for (std::uint64_t t : {std::uint64_t{1}, std::uint64_t{9}, std::uint64_t{10},
                          (std::uint64_t{1} << 53) + 1, max_token - 1, max_token}) {
    EXPECT_EQ(parse_token(token_to_string(t)), t) << t;
  }
  EXPECT_EQ(token_to_string(max_token), "18446744073709551615");
  for (const char* bad : {"", "0", "00", "01", "-1", "+1", " 1", "1 ", "1x", "0x10",
                          "18446744073709551616", "99999999999999999999", "1e3"}) {
    EXPECT_FALSE(parse_token(bad)) << '"' << bad << '"';
  }
}

}  // namespace

// RESP2 command encoding and reply decoding, with no I/O.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "internal/resp.hpp"
#include "redlock/error.hpp"
#include "support/replies.hpp"

namespace {

using redlock::reply;
using redlock::detail::append_command;
using redlock::detail::encode_command;
using redlock::detail::reader_limits;
using redlock::detail::reply_reader;
using namespace std::string_literals;

std::string encode(std::vector<std::string_view> argv) {
  return encode_command(argv);
}

// Feeds `input` in chunks of `chunk` bytes and pulls replies after each chunk. Stops at the
// first error, which is returned in ec.
std::vector<reply> decode(std::string_view input, std::error_code& ec, std::size_t chunk = 0,
                          reader_limits limits = {}) {
  reply_reader reader(limits);
  std::vector<reply> out;
  if (chunk == 0)
    chunk = input.size() ? input.size() : 1;
  ec.clear();
  for (std::size_t i = 0; i < input.size(); i += chunk) {
    const std::size_t n = std::min(chunk, input.size() - i);
    if (std::error_code fe = reader.feed(input.data() + i, n)) {
      ec = fe;
      return out;
    }
    while (auto r = reader.next(ec))
      out.push_back(std::move(*r));
    if (ec)
      return out;
  }
  return out;
}

std::vector<reply> decode_ok(std::string_view input, std::size_t chunk = 0) {
  std::error_code ec;
  auto out = decode(input, ec, chunk);
  EXPECT_FALSE(ec) << ec.message();
  return out;
}

// The error after all complete replies of `input`; expects one.
std::error_code decode_error(std::string_view input, reader_limits limits = {}) {
  std::error_code ec;
  decode(input, ec, 0, limits);
  EXPECT_TRUE(ec) << "no error for " << testing::PrintToString(std::string(input));
  return ec;
}

std::error_code feed(reply_reader& reader, std::string_view bytes) {
  return reader.feed(bytes.data(), bytes.size());
}

using redlock::test::array;
using redlock::test::integer;
using redlock::test::text;

// --- encoding ---

TEST(RespEncode, CommandIsMultiBulk) {
  EXPECT_EQ(encode({"SET", "k", "v"}), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
}

TEST(RespEncode, EmptyArgumentIsZeroLengthBulk) {
  EXPECT_EQ(encode({"GET", ""}), "*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
}

TEST(RespEncode, NoArgumentsIsEmptyArray) {
  EXPECT_EQ(encode({}), "*0\r\n");
}

TEST(RespEncode, CrLfAndNulAreBinarySafe) {
  const std::string key = "a\r\nb\0c\n\r"s;
  EXPECT_EQ(encode({"GET", key}), "*2\r\n$3\r\nGET\r\n$8\r\n"s + key + "\r\n");
}

TEST(RespEncode, LargeArgumentCarriesItsExactLength) {
  const std::string big(1024 * 1024 + 7, 'x');
  const std::string out = encode({big});
  EXPECT_EQ(out.substr(0, 14), "*1\r\n$1048583\r\n");
  EXPECT_EQ(out.size(), 14 + big.size() + 2);
  EXPECT_EQ(out.substr(14, big.size()), big);
  EXPECT_EQ(out.substr(out.size() - 2), "\r\n");
}

TEST(RespEncode, LengthsAcrossDigitBoundaries) {
  for (std::size_t n : {9u, 10u, 99u, 100u, 999u, 1000u, 9999u, 10000u, 100000u}) {
    const std::string arg(n, 'a');
    EXPECT_EQ(encode({arg}), "*1\r\n$" + std::to_string(n) + "\r\n" + arg + "\r\n");
  }
  std::vector<std::string_view> many(10, "x");
  EXPECT_EQ(encode(many).substr(0, 5), "*10\r\n");
}

TEST(RespEncode, AppendKeepsWhatIsAlreadyInTheBuffer) {
  std::string out = "prefix";
  const std::vector<std::string_view> a{"PING"};
  append_command(out, a);
  append_command(out, a);
  EXPECT_EQ(out, "prefix*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n");
}

TEST(RespEncode, EncodedCommandDecodesAsTheSameStrings) {
  const std::string odd = "\0\r\n$*:+-"s;
  const std::string wire = encode({"EVALSHA", odd, "1"});
  auto out = decode_ok(wire);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], array({text(reply::type::string, "EVALSHA"), text(reply::type::string, odd),
                           text(reply::type::string, "1")}));
}

// --- decoding ---

TEST(RespDecode, EveryType) {
  const std::string input =
      "+OK\r\n-ERR wrong\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n";
  const std::vector<reply> expected{text(reply::type::status, "OK"),
                                    text(reply::type::error, "ERR wrong"),
                                    integer(42),
                                    integer(-7),
                                    text(reply::type::string, "hello"),
                                    text(reply::type::string, ""),
                                    reply{},
                                    reply{},
                                    array({})};
  EXPECT_EQ(decode_ok(input), expected);
}

TEST(RespDecode, IntegerExtremes) {
  EXPECT_EQ(decode_ok(":9223372036854775807\r\n:-9223372036854775808\r\n"),
            (std::vector<reply>{integer(INT64_MAX), integer(INT64_MIN)}));
}

TEST(RespDecode, BulkStringIsBinarySafe) {
  const auto out = decode_ok("$6\r\na\r\n\0\nb\r\n"s);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].str, "a\r\n\0\nb"s);
}

TEST(RespDecode, ErrorReplyKeepsTheFullMessage) {
  const std::string msg = "NOPERM this user has no permissions to run the 'eval' command";
  const auto out = decode_ok("-" + msg + "\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].is_error());
  EXPECT_EQ(out[0].str, msg);
}

TEST(RespDecode, StatusLineMayContainALoneCr) {
  const auto out = decode_ok("+a\rb\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].str, "a\rb");
}

TEST(RespDecode, NestedArrays) {
  const auto out = decode_ok("*3\r\n:1\r\n*2\r\n$1\r\na\r\n*1\r\n$-1\r\n+x\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], array({integer(1), array({text(reply::type::string, "a"), array({reply{}})}),
                           text(reply::type::status, "x")}));
}

TEST(RespDecode, ArrayNestedSevenDeepIsAccepted) {
  std::string input;
  for (int i = 0; i < 7; ++i)
    input += "*1\r\n";
  input += ":1\r\n";
  const auto out = decode_ok(input);
  ASSERT_EQ(out.size(), 1u);
  const reply* r = &out[0];
  for (int i = 0; i < 7; ++i) {
    ASSERT_EQ(r->elements.size(), 1u);
    r = &r->elements[0];
  }
  EXPECT_EQ(*r, integer(1));
}

TEST(RespDecode, ByteByByteGivesTheSameReplies) {
  const std::string input =
      "+OK\r\n-ERR x y\r\n:123\r\n$3\r\na\r\n\r\n$-1\r\n*2\r\n*1\r\n:5\r\n$0\r\n\r\n+a\rb\r\n";
  const auto whole = decode_ok(input);
  ASSERT_EQ(whole.size(), 7u);
  EXPECT_EQ(decode_ok(input, 1), whole);
  EXPECT_EQ(decode_ok(input, 2), whole);
  EXPECT_EQ(decode_ok(input, 3), whole);
}

TEST(RespDecode, IncompleteReplyYieldsNothingUntilCompleted) {
  reply_reader reader;
  std::error_code ec;
  ASSERT_FALSE(feed(reader, "*2\r\n:1\r\n$3\r\nab"));
  EXPECT_FALSE(reader.next(ec));
  EXPECT_FALSE(ec);
  ASSERT_FALSE(feed(reader, "c\r\n"));
  const auto r = reader.next(ec);
  ASSERT_TRUE(r);
  EXPECT_FALSE(ec);
  EXPECT_EQ(*r, array({integer(1), text(reply::type::string, "abc")}));
  EXPECT_FALSE(reader.next(ec));
  EXPECT_FALSE(ec);
}

TEST(RespDecode, ManyPipelinedRepliesInOneFeed) {
  std::string input;
  for (int i = 0; i < 10000; ++i)
    input += ":" + std::to_string(i) + "\r\n";
  const auto out = decode_ok(input);
  ASSERT_EQ(out.size(), 10000u);
  for (int i = 0; i < 10000; ++i)
    EXPECT_EQ(out[static_cast<std::size_t>(i)], integer(i));
}

TEST(RespDecode, LargeBulkStringsAmongSmallReplies) {
  const std::string big(3 * 1024 * 1024 + 5, 'b');
  const std::string input = ":1\r\n$" + std::to_string(big.size()) + "\r\n" + big + "\r\n+OK\r\n";
  const std::vector<reply> expected{integer(1), text(reply::type::string, big),
                                    text(reply::type::status, "OK")};
  EXPECT_EQ(decode_ok(input), expected);
  EXPECT_EQ(decode_ok(input, 4093), expected);
  EXPECT_EQ(decode_ok(input, 100000), expected);
}

TEST(RespDecode, RepliesBeforeMalformedInputAreStillDelivered) {
  std::error_code ec;
  const auto out = decode("+OK\r\n:1\r\n?bad\r\n", ec);
  EXPECT_EQ(ec, redlock::errc::protocol_error);
  EXPECT_EQ(out, (std::vector<reply>{text(reply::type::status, "OK"), integer(1)}));
}

// --- malformed input ---

TEST(RespDecodeMalformed, UnknownTypeByte) {
  EXPECT_EQ(decode_error("?x\r\n"), redlock::errc::protocol_error);
  EXPECT_EQ(decode_error("OK\r\n"), redlock::errc::protocol_error);
}

TEST(RespDecodeMalformed, Resp3TypesAreProtocolErrors) {
  for (const char* input :
       {"%1\r\n+a\r\n+b\r\n", "~1\r\n:1\r\n", "_\r\n", ",1.5\r\n", "#t\r\n", "(123\r\n",
        "=5\r\ntxt:a\r\n", "!3\r\nerr\r\n", ">1\r\n:1\r\n", "|1\r\n+a\r\n+b\r\n"}) {
    EXPECT_EQ(decode_error(input), redlock::errc::protocol_error) << input;
  }
}

TEST(RespDecodeMalformed, Resp3InsideAnArray) {
  EXPECT_EQ(decode_error("*2\r\n:1\r\n_\r\n"), redlock::errc::protocol_error);
}

TEST(RespDecodeMalformed, NegativeLengthsOtherThanMinusOne) {
  EXPECT_EQ(decode_error("$-2\r\n"), redlock::errc::protocol_error);
  EXPECT_EQ(decode_error("*-2\r\n"), redlock::errc::protocol_error);
  EXPECT_EQ(decode_error("$-9223372036854775808\r\n"), redlock::errc::protocol_error);
}

TEST(RespDecodeMalformed, NonNumericLengthsAndIntegers) {
  for (const char* input : {"$abc\r\n", "$\r\n", "*x\r\n", ":\r\n", ":12a\r\n", ":1-2\r\n",
                            ":+5\r\n", ": 5\r\n", "$1 \r\n", ":-\r\n"}) {
    EXPECT_EQ(decode_error(input), redlock::errc::protocol_error) << input;
  }
}

TEST(RespDecodeMalformed, IntegerOverflow) {
  EXPECT_EQ(decode_error(":9223372036854775808\r\n"), redlock::errc::protocol_error);
  EXPECT_EQ(decode_error(":123456789012345678901234567890\r\n"), redlock::errc::protocol_error);
}

TEST(RespDecodeMalformed, HeaderLineWithoutLf) {
  EXPECT_EQ(decode_error(":1\rx"), redlock::errc::protocol_error);
}

TEST(RespDecodeMalformed, BulkPayloadLongerThanItsLength) {
  EXPECT_EQ(decode_error("$3\r\nabcd\r\n"), redlock::errc::protocol_error);
  EXPECT_EQ(decode_error("$0\r\nx\r\n"), redlock::errc::protocol_error);
}

TEST(RespDecodeMalformed, NestingDeeperThanHiredisSupports) {
  std::string input;
  for (int i = 0; i < 9; ++i)
    input += "*1\r\n";
  input += ":1\r\n";
  EXPECT_EQ(decode_error(input), redlock::errc::protocol_error);
}

// --- limits ---

TEST(RespDecodeLimits, HugeBulkLengthFailsOnTheHeaderAlone) {
  // Nothing but the header is fed: the error must not wait for (or buffer) 2 GB.
  EXPECT_EQ(decode_error("$2000000000\r\n"), redlock::errc::protocol_error);
  EXPECT_EQ(decode_error("*1\r\n$9223372036854775807\r\n"), redlock::errc::protocol_error);
}

TEST(RespDecodeLimits, BulkAtTheLimitIsAcceptedOneMoreByteIsNot) {
  reader_limits limits;
  limits.max_bulk_bytes = 8;
  std::error_code ec;
  const auto out = decode("$8\r\n12345678\r\n", ec, 0, limits);
  EXPECT_FALSE(ec);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].str, "12345678");
  EXPECT_EQ(decode_error("$9\r\n123456789\r\n", limits), redlock::errc::protocol_error);
}

TEST(RespDecodeLimits, LongStatusLineBeyondTheBulkLimit) {
  reader_limits limits;
  limits.max_bulk_bytes = 8;
  EXPECT_EQ(decode_error("+123456789", limits), redlock::errc::protocol_error);
  EXPECT_EQ(decode_error("-123456789\r\n", limits), redlock::errc::protocol_error);
}

TEST(RespDecodeLimits, HugeArrayCountFailsOnTheHeaderAlone) {
  EXPECT_EQ(decode_error("*2000000000\r\n"), redlock::errc::protocol_error);
  reader_limits limits;
  limits.max_array_elements = 2;
  EXPECT_EQ(decode_error("*3\r\n:1\r\n:2\r\n:3\r\n", limits), redlock::errc::protocol_error);
  std::error_code ec;
  EXPECT_EQ(decode("*2\r\n:1\r\n:2\r\n", ec, 0, limits).size(), 1u);
  EXPECT_FALSE(ec);
}

TEST(RespDecodeLimits, FeedBeyondTheBufferLimitIsRefused) {
  reader_limits limits;
  limits.max_buffered_bytes = 16;
  reply_reader reader(limits);
  // An incomplete bulk of 20 bytes (allowed by max_bulk_bytes) cannot be buffered.
  EXPECT_FALSE(feed(reader, "$20\r\n0123456789"));
  EXPECT_EQ(feed(reader, "0123456789"), redlock::errc::protocol_error);
  std::error_code ec;
  EXPECT_FALSE(reader.next(ec));
  EXPECT_EQ(ec, redlock::errc::protocol_error);
}

TEST(RespDecodeLimits, ConsumedRepliesDoNotCountAgainstTheBufferLimit) {
  reader_limits limits;
  limits.max_buffered_bytes = 16;
  reply_reader reader(limits);
  std::error_code ec;
  for (int i = 0; i < 100; ++i) {
    ASSERT_FALSE(feed(reader, "$5\r\nhello\r\n")) << i;
    const auto r = reader.next(ec);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->str, "hello");
  }
}

// --- error state and reset ---

TEST(RespReader, StaysFailedUntilReset) {
  reply_reader reader;
  std::error_code ec;
  ASSERT_FALSE(feed(reader, "$-5\r\n"));
  EXPECT_FALSE(reader.next(ec));
  EXPECT_EQ(ec, redlock::errc::protocol_error);
  // Valid input after the error is not parsed.
  EXPECT_EQ(feed(reader, "+OK\r\n"), redlock::errc::protocol_error);
  EXPECT_FALSE(reader.next(ec));
  EXPECT_EQ(ec, redlock::errc::protocol_error);

  reader.reset();
  ASSERT_FALSE(feed(reader, "+OK\r\n"));
  const auto r = reader.next(ec);
  EXPECT_FALSE(ec);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, text(reply::type::status, "OK"));
}

TEST(RespReader, ResetDropsPartialInput) {
  reply_reader reader;
  std::error_code ec;
  ASSERT_FALSE(feed(reader, "*2\r\n:1\r\n$3\r\nab"));
  EXPECT_FALSE(reader.next(ec));
  reader.reset();
  ASSERT_FALSE(feed(reader, ":7\r\n"));
  const auto r = reader.next(ec);
  EXPECT_FALSE(ec);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, integer(7));
}

TEST(RespReader, ResetAfterHiredisLevelError) {
  std::string deep;
  for (int i = 0; i < 9; ++i)
    deep += "*1\r\n";
  deep += ":1\r\n";
  reply_reader reader;
  std::error_code ec;
  ASSERT_FALSE(reader.feed(deep.data(), deep.size()));
  EXPECT_FALSE(reader.next(ec));
  EXPECT_EQ(ec, redlock::errc::protocol_error);
  reader.reset();
  ASSERT_FALSE(feed(reader, ":1\r\n"));
  const auto r = reader.next(ec);
  EXPECT_FALSE(ec);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, integer(1));
}

TEST(RespReader, NextOnAnEmptyReaderNeedsMoreBytes) {
  reply_reader reader;
  std::error_code ec = redlock::errc::timeout;
  EXPECT_FALSE(reader.next(ec));
  EXPECT_FALSE(ec);
}

}  // namespace

TEST(InfoField, FindsAFieldOnItsOwnLineOnly) {
  const std::string info =
      "# Server\r\nredis_version:7.0.15\r\nrun_id_old:x\r\nrun_id:3f0c9a\r\ntcp_port:6379\r\n";
  EXPECT_EQ(redlock::detail::info_field(info, "run_id"), "3f0c9a");
  EXPECT_EQ(redlock::detail::info_field(info, "tcp_port"), "6379");
  EXPECT_EQ(redlock::detail::info_field("a:1\nrun_id:z", "run_id"), "z");
  EXPECT_EQ(redlock::detail::info_field(info, "run"), "");
  EXPECT_EQ(redlock::detail::info_field("", "run_id"), "");
}

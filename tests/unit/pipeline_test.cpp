// detail::pipeline: the Redis node's requests, replies and deadlines with no I/O. The tests
// play the transport: they announce connections, take what the pipeline wants written, feed
// it RESP bytes and literal time points, and check the completions.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "internal/pipeline.hpp"
#include "redlock/error.hpp"
#include "redlock/node.hpp"

namespace {

using namespace std::chrono_literals;
using redlock::errc;
using redlock::reply;
using redlock::script;
using redlock::detail::error_reply;
using redlock::detail::handshake;
using redlock::detail::pipeline;
using redlock::detail::pipeline_options;
using redlock::detail::request;
using redlock::detail::script_entry;
using status = pipeline::read_result::status;

const pipeline::time_point t0 = pipeline::time_point() + std::chrono::hours(1);

// Completions in the order they ran.
struct completions {
  struct done {
    std::string name;
    std::error_code ec;
    reply r;
  };
  std::vector<done> log;

  redlock::reply_handler handler(std::string name) {
    return [this, name = std::move(name)](std::error_code ec, reply r) {
      log.push_back({name, ec, std::move(r)});
    };
  }
};

pipeline make_pipeline(std::chrono::milliseconds timeout = 500ms) {
  pipeline_options o;
  o.request_timeout = timeout;
  return pipeline(o);
}

request command_request(redlock::reply_handler h) {
  request r;
  r.handler = std::move(h);
  return r;
}

void submit_command(pipeline& p, std::vector<std::string> argv, redlock::reply_handler h,
                    pipeline::time_point now = t0) {
  p.submit(command_request(std::move(h)), &argv, now);
}

void submit_eval(pipeline& p, script_entry& s, std::vector<std::string> keys,
                 std::vector<std::string> args, redlock::reply_handler h,
                 pipeline::time_point now = t0) {
  p.submit(request::eval(&s, nullptr, keys, args, std::move(h)), nullptr, now);
}

std::string take(pipeline& p) {
  std::string out;
  if (!p.take_write(out))
    return "<nothing>";
  p.write_done();
  return out;
}

pipeline::read_result feed(pipeline& p, std::string_view bytes) {
  return p.on_read(bytes.data(), bytes.size());
}

// A connection without AUTH/SELECT, ready at once.
void connect_plain(pipeline& p) {
  p.begin_connection();
  ASSERT_FALSE(p.transport_ready(handshake{}));
  ASSERT_EQ(p.current_phase(), pipeline::phase::ready);
}

std::string eval_bytes(const script& s, std::string_view key, std::string_view arg) {
  return "*5\r\n$4\r\nEVAL\r\n$" + std::to_string(s.text().size()) + "\r\n" + s.text() +
         "\r\n$1\r\n1\r\n$" + std::to_string(key.size()) + "\r\n" + std::string(key) + "\r\n$" +
         std::to_string(arg.size()) + "\r\n" + std::string(arg) + "\r\n";
}

std::string evalsha_bytes(const script& s, std::string_view key, std::string_view arg) {
  return "*5\r\n$7\r\nEVALSHA\r\n$40\r\n" + s.sha1() + "\r\n$1\r\n1\r\n$" +
         std::to_string(key.size()) + "\r\n" + std::string(key) + "\r\n$" +
         std::to_string(arg.size()) + "\r\n" + std::string(arg) + "\r\n";
}

// ---- handshake ------------------------------------------------------------------------

TEST(Pipeline, OnlyAuthAndSelectAreWrittenUntilTheHandshakeSucceeded) {
  completions c;
  pipeline p = make_pipeline();
  p.begin_connection();
  submit_command(p, {"PING"}, c.handler("ping"));
  EXPECT_EQ(take(p), "<nothing>");  // still connecting

  ASSERT_TRUE(p.transport_ready(handshake{"app", "secret", 2}));
  EXPECT_EQ(take(p),
            "*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$6\r\nsecret\r\n"
            "*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n");
  EXPECT_EQ(take(p), "<nothing>");  // the PING waits for both replies

  auto r = feed(p, "+OK\r\n");
  EXPECT_EQ(r.st, status::ok);
  EXPECT_FALSE(r.ready);
  EXPECT_EQ(take(p), "<nothing>");

  r = feed(p, "+OK\r\n");
  EXPECT_EQ(r.st, status::ok);
  EXPECT_TRUE(r.ready);
  EXPECT_TRUE(r.answered);
  EXPECT_EQ(p.current_phase(), pipeline::phase::ready);
  EXPECT_EQ(take(p), "*1\r\n$4\r\nPING\r\n");

  feed(p, "+PONG\r\n");
  ASSERT_EQ(c.log.size(), 1u);
  EXPECT_EQ(c.log[0].name, "ping");
  EXPECT_FALSE(c.log[0].ec);
  EXPECT_EQ(c.log[0].r.kind, reply::type::status);
  EXPECT_EQ(c.log[0].r.str, "PONG");
}

TEST(Pipeline, AuthWithoutAUserSendsThePasswordAlone) {
  pipeline p = make_pipeline();
  p.begin_connection();
  ASSERT_TRUE(p.transport_ready(handshake{"", "pw", 0}));
  EXPECT_EQ(take(p), "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n");
}

TEST(Pipeline, ARejectedAuthFailsTheQueuedRequestsUnsentWithTheServersCode) {
  completions c;
  pipeline p = make_pipeline();
  p.begin_connection();
  submit_command(p, {"SET", "k", "v"}, c.handler("set"));
  submit_command(p, {"GET", "k"}, c.handler("get"));
  ASSERT_TRUE(p.transport_ready(handshake{"app", "wrong", 3}));
  take(p);

  const auto r = feed(p, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
  EXPECT_EQ(r.st, status::handshake_failed);
  EXPECT_EQ(r.code, errc::auth_failed);
  EXPECT_EQ(r.why, "WRONGPASS invalid username-password pair or user is disabled.");
  ASSERT_EQ(c.log.size(), 2u);
  for (const auto& d : c.log) {
    EXPECT_EQ(d.ec, errc::auth_failed) << d.name;
    EXPECT_TRUE(d.r.is_error());
    EXPECT_EQ(d.r.str, r.why);
  }
  EXPECT_EQ(c.log[0].name, "set");
  EXPECT_EQ(c.log[1].name, "get");
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(p.current_phase(), pipeline::phase::none);
  EXPECT_EQ(take(p), "<nothing>");  // the SET and GET were never written
}

TEST(Pipeline, ARejectedSelectAfterASuccessfulAuthFailsWithServerError) {
  completions c;
  pipeline p = make_pipeline();
  p.begin_connection();
  submit_command(p, {"PING"}, c.handler("ping"));
  ASSERT_TRUE(p.transport_ready(handshake{"", "pw", 99}));
  take(p);
  EXPECT_EQ(feed(p, "+OK\r\n").st, status::ok);
  const auto r = feed(p, "-ERR DB index is out of range\r\n");
  EXPECT_EQ(r.st, status::handshake_failed);
  EXPECT_EQ(r.code, errc::server_error);
  ASSERT_EQ(c.log.size(), 1u);
  EXPECT_EQ(c.log[0].ec, errc::server_error);
  EXPECT_EQ(c.log[0].r.str, "ERR DB index is out of range");
}

TEST(Pipeline, AuthOnAServerWithoutAPasswordIsAuthNotConfigured) {
  completions c;
  pipeline p = make_pipeline();
  p.begin_connection();
  submit_command(p, {"PING"}, c.handler("ping"));
  ASSERT_TRUE(p.transport_ready(handshake{"", "pw", 0}));
  take(p);
  const auto r = feed(p,
                      "-ERR AUTH <password> called without any password configured for the "
                      "default user. Are you sure your configuration is correct?\r\n");
  EXPECT_EQ(r.code, errc::auth_not_configured);
  ASSERT_EQ(c.log.size(), 1u);
  EXPECT_EQ(c.log[0].ec, errc::auth_not_configured);
}

TEST(Pipeline, TheFirstReplyWithoutAHandshakeProvesTheServerAlive) {
  completions c;
  pipeline p = make_pipeline();
  connect_plain(p);
  submit_command(p, {"PING"}, c.handler("a"));
  submit_command(p, {"PING"}, c.handler("b"));
  take(p);
  auto r = feed(p, "+PONG\r\n");
  EXPECT_TRUE(r.answered);
  EXPECT_FALSE(r.ready);
  r = feed(p, "+PONG\r\n");
  EXPECT_FALSE(r.answered);  // once per connection
  EXPECT_EQ(p.replies(), 2u);
}

// ---- ordering and writes --------------------------------------------------------------

TEST(Pipeline, RepliesAreMatchedInOrderUnderPipelining) {
  completions c;
  pipeline p = make_pipeline();
  connect_plain(p);
  submit_command(p, {"SET", "k", "v"}, c.handler("set"));
  submit_command(p, {"INCR", "n"}, c.handler("incr"));
  submit_command(p, {"GET", "k"}, c.handler("get"));
  submit_command(p, {"GET", "missing"}, c.handler("nil"));
  submit_command(p, {"LPUSH", "k", "x"}, c.handler("wrongtype"));
  EXPECT_EQ(take(p),
            "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
            "*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n"
            "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
            "*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n"
            "*3\r\n$5\r\nLPUSH\r\n$1\r\nk\r\n$1\r\nx\r\n");

  // Replies split at arbitrary points: a reply completes only when all of it arrived.
  const std::string replies =
      "+OK\r\n:7\r\n$1\r\nv\r\n$-1\r\n"
      "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
  for (std::size_t i = 0; i < replies.size(); i += 3)
    EXPECT_EQ(feed(p, std::string_view(replies).substr(i, 3)).st, status::ok);

  ASSERT_EQ(c.log.size(), 5u);
  EXPECT_EQ(c.log[0].name, "set");
  EXPECT_EQ(c.log[0].r.str, "OK");
  EXPECT_EQ(c.log[1].name, "incr");
  EXPECT_TRUE(c.log[1].r.is_integer(7));
  EXPECT_EQ(c.log[2].name, "get");
  EXPECT_EQ(c.log[2].r.str, "v");
  EXPECT_EQ(c.log[3].name, "nil");
  EXPECT_EQ(c.log[3].r.kind, reply::type::nil);
  EXPECT_EQ(c.log[4].name, "wrongtype");
  EXPECT_EQ(c.log[4].ec, errc::server_error);
  EXPECT_TRUE(c.log[4].r.is_error());
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_FALSE(c.log[i].ec) << c.log[i].name;
  EXPECT_TRUE(p.empty());
}

TEST(Pipeline, RequestsSubmittedDuringAWriteCoalesceIntoTheNextOne) {
  completions c;
  pipeline p = make_pipeline();
  connect_plain(p);
  submit_command(p, {"PING"}, c.handler("a"));
  std::string first;
  ASSERT_TRUE(p.take_write(first));
  EXPECT_EQ(first, "*1\r\n$4\r\nPING\r\n");

  submit_command(p, {"GET", "x"}, c.handler("b"));
  submit_command(p, {"GET", "y"}, c.handler("c"));
  std::string second;
  EXPECT_FALSE(p.take_write(second));  // one write in flight at a time
  p.write_done();
  ASSERT_TRUE(p.take_write(second));
  EXPECT_EQ(second, "*2\r\n$3\r\nGET\r\n$1\r\nx\r\n*2\r\n$3\r\nGET\r\n$1\r\ny\r\n");
  p.write_done();
  EXPECT_FALSE(p.take_write(second));  // nothing left
}

TEST(Pipeline, ACommandWithManyArgumentsIsEncodedWhole) {
  completions c;
  pipeline p = make_pipeline();
  connect_plain(p);
  std::vector<std::string> argv{"DEL"};
  std::string expected = "*21\r\n$3\r\nDEL\r\n";
  for (int i = 0; i < 20; ++i) {
    argv.push_back("k" + std::to_string(i));
    expected += "$" + std::to_string(argv.back().size()) + "\r\n" + argv.back() + "\r\n";
  }
  submit_command(p, argv, c.handler("del"));
  EXPECT_EQ(take(p), expected);
}

// ---- scripts --------------------------------------------------------------------------

TEST(Pipeline, AScriptGoesAsEvalFirstOnEachConnectionThenAsEvalsha) {
  completions c;
  const script s("return redis.call('SET', KEYS[1], ARGV[1])");
  script_entry entry(s);
  pipeline p = make_pipeline();
  connect_plain(p);
  submit_eval(p, entry, {"k"}, {"v"}, c.handler("first"));
  submit_eval(p, entry, {"k"}, {"w"}, c.handler("second"));
  EXPECT_EQ(take(p), eval_bytes(s, "k", "v") + evalsha_bytes(s, "k", "w"));
  feed(p, "+OK\r\n+OK\r\n");
  ASSERT_EQ(c.log.size(), 2u);

  // A new connection does not know the script.
  p.connection_closed();
  connect_plain(p);
  submit_eval(p, entry, {"k"}, {"x"}, c.handler("third"));
  EXPECT_EQ(take(p), eval_bytes(s, "k", "x"));
}

TEST(Pipeline, NoscriptIsAnsweredByResendingAsEval) {
  completions c;
  const script s("return 1");
  script_entry entry(s);
  pipeline p = make_pipeline();
  connect_plain(p);
  submit_eval(p, entry, {"k"}, {"a"}, c.handler("loads"));
  take(p);
  feed(p, ":1\r\n");

  // The server's script cache was flushed (SCRIPT FLUSH) behind our back.
  submit_eval(p, entry, {"k"}, {"b"}, c.handler("flushed"), t0 + 10ms);
  EXPECT_EQ(take(p), evalsha_bytes(s, "k", "b"));
  EXPECT_EQ(feed(p, "-NOSCRIPT No matching script. Please use EVAL.\r\n").st, status::ok);
  ASSERT_EQ(c.log.size(), 1u);  // not completed: sent again
  EXPECT_EQ(take(p), eval_bytes(s, "k", "b"));
  feed(p, ":1\r\n");
  ASSERT_EQ(c.log.size(), 2u);
  EXPECT_EQ(c.log[1].name, "flushed");
  EXPECT_FALSE(c.log[1].ec);
  EXPECT_TRUE(c.log[1].r.is_integer(1));

  // The EVAL loaded it again: the next request uses EVALSHA.
  submit_eval(p, entry, {"k"}, {"c"}, c.handler("after"), t0 + 20ms);
  EXPECT_EQ(take(p), evalsha_bytes(s, "k", "c"));
}

TEST(Pipeline, NoscriptToAnEvalIsAnErrorNotAResend) {
  completions c;
  const script s("return 1");
  script_entry entry(s);
  pipeline p = make_pipeline();
  connect_plain(p);
  submit_eval(p, entry, {"k"}, {"a"}, c.handler("eval"));
  take(p);
  feed(p, "-NOSCRIPT odd\r\n");
  ASSERT_EQ(c.log.size(), 1u);
  EXPECT_EQ(c.log[0].ec, errc::server_error);
  EXPECT_EQ(take(p), "<nothing>");
}

TEST(Pipeline, AResentRequestKeepsItsOwnDeadline) {
  completions c;
  const script s("return 1");
  script_entry entry(s);
  pipeline p = make_pipeline();
  connect_plain(p);
  submit_eval(p, entry, {"k"}, {"a"}, c.handler("eval"));
  submit_eval(p, entry, {"k"}, {"b"}, c.handler("evalsha"));
  submit_command(p, {"PING"}, c.handler("ping"), t0 + 100ms);
  take(p);
  feed(p, ":1\r\n-NOSCRIPT No matching script.\r\n");
  // The resent EVAL is queued behind the PING, but its deadline is the older one.
  EXPECT_EQ(p.next_deadline(), t0 + 500ms);
  feed(p, "+PONG\r\n");
  EXPECT_EQ(p.next_deadline(), t0 + 500ms);
  feed(p, ":1\r\n");
  EXPECT_EQ(p.next_deadline(), pipeline::time_point::max());
  ASSERT_EQ(c.log.size(), 3u);
  EXPECT_EQ(c.log[1].name, "ping");
  EXPECT_EQ(c.log[2].name, "evalsha");
}

TEST(Pipeline, ManyKeysAndArgumentsAreEncodedForEval) {
  completions c;
  const script s("return #KEYS");
  script_entry entry(s);
  pipeline p = make_pipeline();
  connect_plain(p);
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i)
    keys.push_back("key" + std::to_string(i));
  submit_eval(p, entry, keys, {"v", "1000"}, c.handler("many"));
  std::string expected = "*25\r\n$4\r\nEVAL\r\n$" + std::to_string(s.text().size()) + "\r\n" +
                         s.text() + "\r\n$2\r\n20\r\n";
  for (const auto& k : keys)
    expected += "$" + std::to_string(k.size()) + "\r\n" + k + "\r\n";
  expected += "$1\r\nv\r\n$4\r\n1000\r\n";
  EXPECT_EQ(take(p), expected);
}

// ---- deadlines ------------------------------------------------------------------------

TEST(Pipeline, ARequestTimesOutAndTheLateReplyIsNeverMatched) {
  completions c;
  pipeline p = make_pipeline(500ms);
  connect_plain(p);
  submit_command(p, {"GET", "slow"}, c.handler("slow"), t0);
  submit_command(p, {"GET", "young"}, c.handler("young"), t0 + 200ms);
  take(p);
  EXPECT_EQ(p.next_deadline(), t0 + 500ms);
  const reply timed_out = error_reply("timed out");
  const reply lost = error_reply("reset");
  EXPECT_EQ(p.on_deadline(t0 + 499ms, timed_out, lost), pipeline::expiry::none);
  EXPECT_TRUE(c.log.empty());

  EXPECT_EQ(p.on_deadline(t0 + 500ms, timed_out, lost), pipeline::expiry::reset_connection);
  ASSERT_EQ(c.log.size(), 2u);
  EXPECT_EQ(c.log[0].name, "slow");
  EXPECT_EQ(c.log[0].ec, errc::timeout);
  EXPECT_EQ(c.log[0].r.str, "timed out");
  EXPECT_EQ(c.log[1].name, "young");  // sent behind it: its reply cannot be matched either
  EXPECT_EQ(c.log[1].ec, errc::connection_lost);
  EXPECT_EQ(c.log[1].r.str, "reset");
  EXPECT_EQ(p.current_phase(), pipeline::phase::none);
  EXPECT_TRUE(p.empty());

  // On the next connection, a reply goes to the request sent on it; the late replies of
  // the old connection died with it.
  connect_plain(p);
  submit_command(p, {"GET", "next"}, c.handler("next"), t0 + 600ms);
  EXPECT_EQ(take(p), "*2\r\n$3\r\nGET\r\n$4\r\nnext\r\n");
  feed(p, "$3\r\nnew\r\n");
  ASSERT_EQ(c.log.size(), 3u);
  EXPECT_EQ(c.log[2].name, "next");
  EXPECT_EQ(c.log[2].r.str, "new");
}

TEST(Pipeline, AReplyBeforeTheDeadlineCancelsIt) {
  completions c;
  pipeline p = make_pipeline(500ms);
  connect_plain(p);
  submit_command(p, {"PING"}, c.handler("a"), t0);
  submit_command(p, {"PING"}, c.handler("b"), t0 + 300ms);
  take(p);
  feed(p, "+PONG\r\n");
  EXPECT_EQ(p.next_deadline(), t0 + 800ms);
  EXPECT_EQ(p.on_deadline(t0 + 600ms, error_reply("t"), error_reply("l")), pipeline::expiry::none);
  feed(p, "+PONG\r\n");
  ASSERT_EQ(c.log.size(), 2u);
  EXPECT_FALSE(c.log[1].ec);
}

TEST(Pipeline, BeforeTheConnectionIsReadyExpiredRequestsAreDroppedUnsent) {
  completions c;
  pipeline p = make_pipeline(500ms);
  p.begin_connection();
  submit_command(p, {"GET", "old"}, c.handler("old"), t0);
  submit_command(p, {"GET", "new"}, c.handler("new"), t0 + 300ms);
  ASSERT_TRUE(p.transport_ready(handshake{"", "pw", 0}));
  // AUTH has no request deadline (the connect timeout covers it).
  EXPECT_EQ(p.next_deadline(), t0 + 500ms);
  EXPECT_EQ(take(p), "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n");

  EXPECT_EQ(p.on_deadline(t0 + 500ms, error_reply("timed out"), error_reply("reset")),
            pipeline::expiry::dropped_unsent);
  ASSERT_EQ(c.log.size(), 1u);
  EXPECT_EQ(c.log[0].name, "old");
  EXPECT_EQ(c.log[0].ec, errc::timeout);
  EXPECT_EQ(p.current_phase(), pipeline::phase::handshaking);
  EXPECT_EQ(p.next_deadline(), t0 + 800ms);

  // The handshake goes on; only the request still alive is written.
  EXPECT_TRUE(feed(p, "+OK\r\n").ready);
  EXPECT_EQ(take(p), "*2\r\n$3\r\nGET\r\n$3\r\nnew\r\n");
  feed(p, "$1\r\nn\r\n");
  ASSERT_EQ(c.log.size(), 2u);
  EXPECT_EQ(c.log[1].name, "new");
  EXPECT_EQ(c.log[1].r.str, "n");
}

TEST(Pipeline, ADroppedEvalHandsTheScriptLoadToTheNextRequestOfThatScript) {
  completions c;
  const script s("return 1");
  script_entry entry(s);
  pipeline p = make_pipeline(500ms);
  p.begin_connection();
  submit_eval(p, entry, {"k"}, {"a"}, c.handler("dropped"), t0);  // as EVAL
  submit_command(p, {"PING"}, c.handler("ping"), t0 + 300ms);
  submit_eval(p, entry, {"k"}, {"b"}, c.handler("kept"), t0 + 300ms);  // as EVALSHA
  EXPECT_EQ(p.on_deadline(t0 + 500ms, error_reply("t"), error_reply("l")),
            pipeline::expiry::dropped_unsent);
  ASSERT_FALSE(p.transport_ready(handshake{}));
  // Without the hand-over the EVALSHA would meet NOSCRIPT and be resent behind later
  // requests.
  EXPECT_EQ(take(p), "*1\r\n$4\r\nPING\r\n" + eval_bytes(s, "k", "b"));
}

TEST(Pipeline, ADroppedEvalWithNoSuccessorLeavesTheScriptUnloaded) {
  completions c;
  const script s("return 1");
  script_entry entry(s);
  pipeline p = make_pipeline(500ms);
  p.begin_connection();
  submit_eval(p, entry, {"k"}, {"a"}, c.handler("dropped"), t0);
  p.on_deadline(t0 + 500ms, error_reply("t"), error_reply("l"));
  ASSERT_FALSE(p.transport_ready(handshake{}));
  submit_eval(p, entry, {"k"}, {"b"}, c.handler("later"), t0 + 600ms);
  EXPECT_EQ(take(p), eval_bytes(s, "k", "b"));
}

// ---- connection loss and protocol errors ----------------------------------------------

TEST(Pipeline, ALostConnectionFailsRequestsInFlightAndUnsentAndDiscardsTheUnsentBytes) {
  completions c;
  pipeline p = make_pipeline();
  connect_plain(p);
  submit_command(p, {"SET", "a", "1"}, c.handler("in flight"));
  std::string writing;
  ASSERT_TRUE(p.take_write(writing));
  submit_command(p, {"SET", "b", "2"}, c.handler("unsent"));

  p.connection_closed();
  p.fail_all(errc::connection_lost, error_reply("connection lost"));
  ASSERT_EQ(c.log.size(), 2u);
  EXPECT_EQ(c.log[0].name, "in flight");
  EXPECT_EQ(c.log[1].name, "unsent");
  for (const auto& d : c.log) {
    EXPECT_EQ(d.ec, errc::connection_lost);
    EXPECT_EQ(d.r.str, "connection lost");
  }
  EXPECT_EQ(p.next_deadline(), pipeline::time_point::max());

  // The next connection neither writes the old bytes nor waits for the old write.
  connect_plain(p);
  EXPECT_EQ(take(p), "<nothing>");
  submit_command(p, {"PING"}, c.handler("next"));
  EXPECT_EQ(take(p), "*1\r\n$4\r\nPING\r\n");
}

TEST(Pipeline, AReplyWithoutARequestIsAProtocolError) {
  pipeline p = make_pipeline();
  connect_plain(p);
  const auto r = feed(p, "+OK\r\n");
  EXPECT_EQ(r.st, status::protocol_error);
  EXPECT_EQ(r.why, "reply without a request");
}

TEST(Pipeline, AMalformedReplyIsAProtocolErrorAfterTheCompleteOnes) {
  completions c;
  pipeline p = make_pipeline();
  connect_plain(p);
  submit_command(p, {"PING"}, c.handler("a"));
  submit_command(p, {"PING"}, c.handler("b"));
  take(p);
  const auto r = feed(p, "+PONG\r\n!garbage\r\n");
  EXPECT_EQ(r.st, status::protocol_error);
  EXPECT_EQ(r.why, "malformed reply");
  ASSERT_EQ(c.log.size(), 1u);
  EXPECT_EQ(c.log[0].name, "a");
  EXPECT_EQ(p.size(), 1u);  // the transport fails the rest when it drops the connection
}

TEST(Pipeline, AReplyBeyondTheSizeLimitIsAProtocolError) {
  completions c;
  pipeline_options o;
  o.limits.max_buffered_bytes = 16;
  pipeline p(o);
  connect_plain(p);
  submit_command(p, {"GET", "big"}, c.handler("big"));
  take(p);
  const auto r = feed(p, "$100\r\n" + std::string(40, 'x'));
  EXPECT_EQ(r.st, status::protocol_error);
  EXPECT_EQ(r.why, "reply exceeds the size limits");
  EXPECT_TRUE(c.log.empty());
}

TEST(Pipeline, ANewConnectionStartsWithAFreshReader) {
  completions c;
  pipeline p = make_pipeline();
  connect_plain(p);
  submit_command(p, {"GET", "k"}, c.handler("cut"));
  take(p);
  feed(p, "$5\r\nhal");  // the connection dies mid-reply
  p.connection_closed();
  p.fail_all(errc::connection_lost, error_reply("lost"));

  connect_plain(p);
  submit_command(p, {"GET", "k"}, c.handler("whole"));
  take(p);
  EXPECT_EQ(feed(p, "$5\r\nwhole\r\n").st, status::ok);
  ASSERT_EQ(c.log.size(), 2u);
  EXPECT_EQ(c.log[1].r.str, "whole");
}

TEST(Pipeline, ErrorRepliesAreClassified) {
  using redlock::detail::classify_error;
  EXPECT_EQ(classify_error("WRONGPASS invalid"), errc::auth_failed);
  EXPECT_EQ(classify_error("NOAUTH Authentication required."), errc::auth_required);
  EXPECT_EQ(classify_error("NOPERM this user has no permissions"), errc::no_permission);
  EXPECT_EQ(classify_error("ERR Client sent AUTH, but no password is set"),
            errc::auth_not_configured);
  EXPECT_EQ(classify_error("ERR unknown command"), errc::server_error);
  EXPECT_EQ(classify_error(""), errc::server_error);
}

}  // namespace

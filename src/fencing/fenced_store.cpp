// The fenced store: one script per operation, and the reading of its reply.
#include "redlock/fenced_store.hpp"

#include <asio/post.hpp>

#include <array>
#include <charconv>
#include <optional>
#include <string>
#include <utility>

#include "internal/fenced_store.hpp"

namespace redlock {

fenced_store::fenced_store(executor_type ex, std::shared_ptr<node> n, std::string key)
    : ex_(std::move(ex)), node_(std::move(n)), key_(std::move(key)) {
  if (!node_)
    throw lock_error(make_error_code(errc::invalid_argument), "fenced_store: node is null");
  if (key_.empty())
    throw lock_error(make_error_code(errc::invalid_argument), "fenced_store: key is empty");
}

namespace detail {

// Tokens are compared as canonical decimal strings, never as Lua numbers: those are doubles,
// so 2^53 and 2^53 + 1 would compare equal and a stale write could pass. More digits is larger;
// equal lengths compare digit by digit (string.byte, not `<` on strings, which goes through
// the server's locale collation). The argument check makes the script safe to call by hand:
// it is the one the README tells users to copy.
const script& fenced_write_script() {
  static const script s(R"lua(
local function lower(a, b)
  if #a ~= #b then return #a < #b end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return false
end
local token = ARGV[1]
if not string.match(token, "^[1-9][0-9]*$") or lower("18446744073709551615", token) then
  return redis.error_reply("ERR fenced write: token must be a decimal from 1 to 2^64-1 without leading zeros")
end
local highest = redis.call("HGET", KEYS[1], "token")
if highest and lower(token, highest) then
  return {0, highest}
end
redis.call("HSET", KEYS[1], "token", token, "value", ARGV[2])
return {1, token}
)lua");
  return s;
}

// One command, but through a script: the node interface runs scripts only.
const script& fenced_read_script() {
  static const script s(R"lua(
return redis.call("HMGET", KEYS[1], "token", "value")
)lua");
  return s;
}

std::string token_to_string(std::uint64_t token) {
  std::array<char, 20> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), token);
  (void)ec;  // 20 characters hold every 64-bit value
  return std::string(buf.data(), end);
}

std::optional<std::uint64_t> parse_token(std::string_view s) noexcept {
  if (s.empty() || s.front() < '1' || s.front() > '9')
    return std::nullopt;  // also rejects "0", leading zeros and a sign
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size())
    return std::nullopt;  // out of range, or trailing non-digits
  return v;
}

namespace {

const char* kind_name(reply::type t) noexcept {
  switch (t) {
    case reply::type::nil:
      return "nil";
    case reply::type::status:
      return "a status";
    case reply::type::error:
      return "an error";
    case reply::type::integer:
      return "an integer";
    case reply::type::string:
      return "a string";
    case reply::type::array:
      return "an array";
  }
  return "an unknown reply";
}

std::error_code protocol_error() {
  return make_error_code(errc::protocol_error);
}

// The server's message for an error reply; nothing for a transport failure (ec says it all).
std::string node_message(const reply& r) {
  return r.is_error() ? r.str : std::string();
}

}  // namespace

fenced_write_outcome interpret_write(std::uint64_t token, std::error_code ec, const reply& r) {
  fenced_write_outcome out;
  if (ec) {
    out.ec = ec;
    out.result.message = node_message(r);
    return out;
  }
  auto fail = [&](std::string why) {
    out.ec = protocol_error();
    out.result = {};
    out.result.message = "fenced write: " + std::move(why);
    return out;
  };
  if (r.kind != reply::type::array || r.elements.size() != 2)
    return fail(std::string("expected {accepted, highest token}, got ") + kind_name(r.kind) +
                (r.kind == reply::type::array
                     ? " of " + std::to_string(r.elements.size()) + " elements"
                     : std::string()));
  const reply& flag = r.elements[0];
  const reply& highest = r.elements[1];
  if (flag.kind != reply::type::integer || (flag.integer != 0 && flag.integer != 1))
    return fail("the accepted flag is not 0 or 1");
  auto h = highest.kind == reply::type::string ? parse_token(highest.str) : std::nullopt;
  if (!h)
    return fail("the highest token is not a decimal in 1 .. 2^64-1");
  const bool accepted = flag.integer == 1;
  // The script answers with our own token when it stored it, and refuses only for a higher
  // one; anything else is not its answer to this write.
  if (accepted ? *h != token : *h <= token)
    return fail("the highest token " + std::to_string(*h) + " contradicts the outcome for token " +
                std::to_string(token));
  out.result.accepted = accepted;
  out.result.highest = *h;
  return out;
}

fenced_read_outcome interpret_read(std::error_code ec, const reply& r) {
  fenced_read_outcome out;
  if (ec) {
    out.ec = ec;
    out.result.message = node_message(r);
    return out;
  }
  auto fail = [&](std::string why) {
    out.ec = protocol_error();
    out.result = {};
    out.result.message = "fenced read: " + std::move(why);
    return out;
  };
  if (r.kind != reply::type::array || r.elements.size() != 2)
    return fail(std::string("expected {token, value}, got ") + kind_name(r.kind));
  const reply& token = r.elements[0];
  const reply& value = r.elements[1];
  if (token.kind == reply::type::nil && value.kind == reply::type::nil)
    return out;  // never written
  if (token.kind != reply::type::string || value.kind != reply::type::string)
    return fail("the hash has only one of its fields token and value");
  auto t = parse_token(token.str);
  if (!t)
    return fail("the stored token is not a decimal in 1 .. 2^64-1");
  out.result.value = value.str;
  out.result.token = *t;
  return out;
}

void start_fenced_write(const asio::any_io_executor& ex, const std::shared_ptr<node>& n,
                        const std::string& key, std::uint64_t token, std::string value,
                        fenced_write_completion done) {
  if (token == 0) {
    // Posted: the handler never runs inside the initiating call.
    asio::post(ex, [done = std::move(done)]() mutable {
      fenced_write_result r;
      r.message = "token is 0: 0 means acquired without fencing; fenced tokens start at 1";
      done(make_error_code(errc::invalid_argument), std::move(r));
    });
    return;
  }
  const std::array<std::string, 1> keys{key};
  const std::array<std::string, 2> args{token_to_string(token), std::move(value)};
  n->async_eval(fenced_write_script(), keys, args,
                [token, done = std::move(done)](std::error_code ec, reply r) mutable {
                  auto out = interpret_write(token, ec, r);
                  done(out.ec, std::move(out.result));
                });
}

void start_fenced_read(const std::shared_ptr<node>& n, const std::string& key,
                       fenced_read_completion done) {
  const std::array<std::string, 1> keys{key};
  n->async_eval(fenced_read_script(), keys, {},
                [done = std::move(done)](std::error_code ec, reply r) mutable {
                  auto out = interpret_read(ec, r);
                  done(out.ec, std::move(out.result));
                });
}

}  // namespace detail
}  // namespace redlock

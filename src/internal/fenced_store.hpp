// Private: the fenced store's scripts and the sans-I/O reading of their replies
// (include/redlock/fenced_store.hpp has the contract and the storage layout).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "redlock/fenced_store.hpp"
#include "redlock/node.hpp"
#include "redlock/reply.hpp"

namespace redlock::detail {

/// KEYS[1] = the store's key, ARGV[1] = the token (canonical decimal), ARGV[2] = the value.
/// Returns {1, token} when stored, {0, highest} when a higher token refused it.
const script& fenced_write_script();
/// KEYS[1] = the store's key. Returns {token, value}, each nil when absent.
const script& fenced_read_script();

/// The token as the scripts take it: decimal, no leading zeros.
std::string token_to_string(std::uint64_t token);
/// The inverse: a token in 1 .. 2^64-1 written canonically, or nullopt (empty, non-digit,
/// leading zero, zero, above 2^64-1).
std::optional<std::uint64_t> parse_token(std::string_view s) noexcept;

/// How a write or read completes given the node's answer: the node's error passed through
/// (with the server's message), or the reply read; a reply the script cannot give is
/// errc::protocol_error, and `token` is the write's own token, which an answer must agree with.
struct fenced_write_outcome {
  std::error_code ec;
  fenced_write_result result;
};
fenced_write_outcome interpret_write(std::uint64_t token, std::error_code ec, const reply& r);

struct fenced_read_outcome {
  std::error_code ec;
  fenced_value result;
};
fenced_read_outcome interpret_read(std::error_code ec, const reply& r);

}  // namespace redlock::detail

// A fenced store: one value under one Redis key that accepts a write only when its fencing
// token is at least the highest token it has seen.
//
// A lock's validity can run out while its holder still works (a pause, a partition): the
// holder then writes as if it still held the lock. A fencing token closes that gap when the
// storage checks it: every grant of a fenced lock gets a larger token
// (lock::fencing_token()), every write carries it, and the storage refuses a write whose
// token is lower than the highest it has accepted. fenced_store is that check for data kept
// in Redis, done atomically by one Lua script on the server; it is also the pattern to copy
// into your own storage (the README shows the script).
//
// Storage layout (stable; other clients may read it): a hash at `key` with two fields,
//   token  the highest token accepted, as a decimal string (1 .. 2^64-1, no leading zeros)
//   value  the value written with that token (binary-safe)
// Both fields are written together by every accepted write and never expire. Tokens are
// compared exactly over the whole 64-bit range (as decimal strings, not as Lua numbers, which
// are doubles and lose precision above 2^53).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>

#include "redlock/detail/manager_impl.hpp"
#include "redlock/detail/unique_function.hpp"
#include "redlock/error.hpp"
#include "redlock/node.hpp"

namespace redlock {

/// The outcome of fenced_store::async_write. A plain value.
struct fenced_write_result {
  /// True when the value was stored: the write's token was >= the highest token seen for the
  /// key. False when a higher token had been written (a stale holder): nothing changed.
  bool accepted = false;
  /// The highest token for the key after this write: the write's own token when accepted,
  /// the one that refused it otherwise. 0 when the write failed with an error.
  std::uint64_t highest = 0;
  /// Empty on success. With an error: why (errc::invalid_argument names the argument, an
  /// error reply carries the server's message, errc::protocol_error says what was unexpected).
  std::string message;
};

/// The outcome of fenced_store::async_read. A plain value.
struct fenced_value {
  /// The value written with the highest token; nullopt when nothing was ever written.
  std::optional<std::string> value;
  /// That highest token; 0 when nothing was ever written.
  std::uint64_t token = 0;
  /// Empty on success; with an error, why (as fenced_write_result::message).
  std::string message;
};

namespace detail {
using fenced_write_completion = unique_function<void(std::error_code, fenced_write_result)>;
using fenced_read_completion = unique_function<void(std::error_code, fenced_value)>;
// Run the scripts on `n`. They never call `done` from inside: an argument error is posted to
// `ex`, a node's answer comes from the node. The caller (the templates below) moves the
// completion to the handler's executor.
void start_fenced_write(const asio::any_io_executor& ex, const std::shared_ptr<node>& n,
                        const std::string& key, std::uint64_t token, std::string value,
                        fenced_write_completion done);
void start_fenced_read(const std::shared_ptr<node>& n, const std::string& key,
                       fenced_read_completion done);
}  // namespace detail

/// One value under one Redis key, written only with a fencing token at least as high as the
/// highest the key has seen (see the file comment for the storage layout).
///
/// Works over any redlock::node: one of the lock's servers, another Redis that holds the
/// data, or a Sentinel or Cluster node (one key, so any slot). The token check is only as
/// durable as the key: a Redis that loses the hash (a restart without persistence, a failover
/// before replication) forgets the highest token and then accepts a stale writer once.
///
/// Thread safety: distinct objects safe; shared objects safe (immutable after construction;
/// operations may be started from any thread).
class fenced_store {
 public:
  using executor_type = asio::any_io_executor;

  /// A store for `key` on `n`; handlers run on `ex` unless they have an executor of their
  /// own. No network. Throws lock_error(errc::invalid_argument) when `n` is null or `key` is
  /// empty.
  fenced_store(executor_type ex, std::shared_ptr<node> n, std::string key);

  executor_type get_executor() const noexcept { return ex_; }
  const std::string& key() const noexcept { return key_; }

  /// Stores `value` with fencing token `token` if `token` is >= the highest token seen for
  /// the key (equal is accepted: the same holder writing again), atomically on the server.
  ///
  /// @par Completion signature
  /// `void(std::error_code, fenced_write_result)`. A refused write (a higher token was
  /// written) is a normal outcome: an empty error code and `accepted == false`.
  ///
  /// @par Errors
  /// errc::invalid_argument when `token` is 0 (0 means "acquired without fencing"; nothing is
  /// sent; the message names the argument). The node's errors, passed through:
  /// errc::timeout, errc::connect_failed, errc::connection_lost, errc::closed, error replies
  /// (errc::server_error with the server's message, e.g. WRONGTYPE when `key` holds another
  /// type; errc::no_permission, ...). errc::protocol_error for a reply the script cannot give.
  /// After an error other than invalid_argument the write may or may not have been applied.
  ///
  /// @par Cancellation
  /// None (bounded by the node's request timeout).
  ///
  /// @par Handler
  /// Runs on its associated executor (default: the store's), never from inside this call.
  ///
  /// @par Notes
  /// The completion token is named `completion` here, since `token` is the fencing token.
  /// The store may be destroyed while a write is in flight: the operation shares the node and
  /// holds its own copy of the key.
  template <asio::completion_token_for<void(std::error_code, fenced_write_result)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_write(
      std::uint64_t token, std::string value,
      CompletionToken&& completion = asio::default_completion_token_t<executor_type>()) const {
    return asio::async_initiate<CompletionToken, void(std::error_code, fenced_write_result)>(
        [ex = ex_, n = node_, key = key_](auto handler, std::uint64_t t, std::string v) {
          detail::start_fenced_write(
              ex, n, key, t, std::move(v),
              detail::bind_handler<decltype(handler), std::error_code, fenced_write_result>(
                  std::move(handler), ex));
        },
        completion, token, std::move(value));
  }

  /// Reads the value and the highest token (one atomic read; nothing is written).
  ///
  /// @par Completion signature
  /// `void(std::error_code, fenced_value)`. A key never written is not an error: `value` is
  /// nullopt and `token` 0.
  ///
  /// @par Errors
  /// The node's, passed through (as async_write). errc::protocol_error when the key holds a
  /// hash with only one of the two fields or a token that is not a decimal in 1 .. 2^64-1
  /// (written by something other than a fenced store).
  ///
  /// @par Cancellation
  /// None (bounded by the node's request timeout).
  ///
  /// @par Handler
  /// Runs on its associated executor (default: the store's), never from inside this call.
  template <asio::completion_token_for<void(std::error_code, fenced_value)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_read(
      CompletionToken&& completion = asio::default_completion_token_t<executor_type>()) const {
    return asio::async_initiate<CompletionToken, void(std::error_code, fenced_value)>(
        [ex = ex_, n = node_, key = key_](auto handler) {
          detail::start_fenced_read(
              n, key,
              detail::bind_handler<decltype(handler), std::error_code, fenced_value>(
                  std::move(handler), ex));
        },
        completion);
  }

 private:
  executor_type ex_;
  std::shared_ptr<node> node_;
  std::string key_;
};

}  // namespace redlock

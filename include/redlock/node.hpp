// The node interface: the one thing the lock manager needs from a Redis deployment.
//
// A node evaluates a Lua script with keys and arguments and calls back exactly once.
// The built-in redis_node implements it over one pipelined connection; Sentinel- or
// Cluster-backed nodes, or a wrapper around the user's own client, can too.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "redlock/detail/unique_function.hpp"
#include "redlock/reply.hpp"

namespace redlock {

/// A Lua script with its SHA1 computed once, for EVALSHA.
/// Thread safety: distinct objects safe; shared objects safe (immutable).
class script {
 public:
  explicit script(std::string text);
  const std::string& text() const noexcept { return text_; }
  /// 40 lowercase hex characters.
  const std::string& sha1() const noexcept { return sha1_; }

 private:
  std::string text_;
  std::string sha1_;
};

/// Completion of a node request: ec is empty exactly when the server answered with a
/// non-error reply. For error replies ec is a redlock::errc (server_error, no_permission,
/// auth_required, ...) and `r` still holds the server's message.
using reply_handler = detail::unique_function<void(std::error_code ec, reply r)>;

/// Completion of node::async_identify: the identities of the servers behind the node, e.g.
/// {"run_id:3f0c..."} for one server or one "cluster_node:<id>" per member of a cluster.
/// An empty list means "unknown" (custom nodes, or the node could not be asked).
using identity_handler =
    detail::unique_function<void(std::error_code ec, std::vector<std::string> identities)>;

/// What the lock manager needs from one Redis deployment (see the file comment).
/// Thread safety: an implementation must accept every call from any thread.
class node {
 public:
  virtual ~node() = default;

  /// The node's identity for reports and hooks, e.g. "redis://10.0.0.7:6379/0".
  /// Never contains a password. The reference must stay valid and unchanged for the node's
  /// lifetime: reports share the string rather than copy it.
  virtual const std::string& id() const noexcept = 0;

  /// Runs `EVALSHA sha numkeys keys... args...`, falling back to EVAL on NOSCRIPT.
  ///
  /// @par Completion signature
  /// `void(std::error_code, reply)`, once (see reply_handler). A virtual function takes a
  /// handler rather than a completion token.
  ///
  /// @par Errors
  /// The node's: errc::timeout, errc::connect_failed, errc::connection_lost, errc::closed,
  /// error replies (errc::server_error, errc::no_permission, ...).
  ///
  /// @par Cancellation
  /// None; every request is bounded by the node's request timeout, and close() fails those
  /// in flight.
  ///
  /// @par Handler
  /// Runs exactly once, never from inside this call, on an executor of the node's choosing;
  /// it must not block.
  ///
  /// @par Notes
  /// Keys and args are copied before the call returns. Thread safety: may be called from any
  /// thread.
  virtual void async_eval(const script& s, std::span<const std::string> keys,
                          std::span<const std::string> args, reply_handler handler) = 0;

  /// Reads the identities of the server(s) this node talks to, so that the lock manager can
  /// refuse one deployment listed twice under two names (localhost and 127.0.0.1, two seeds
  /// of one cluster, a Sentinel URL and its master's URL): it would vote twice. Two nodes
  /// conflict when their lists share an entry.
  ///
  /// @par Completion signature
  /// `void(std::error_code, std::vector<std::string>)`, once (see identity_handler).
  ///
  /// @par Errors
  /// As async_eval; on an error the list is empty (identity unknown).
  ///
  /// @par Cancellation
  /// None (bounded by the node's timeouts).
  ///
  /// @par Handler
  /// Overrides call it once, never from inside this call. The default answers at once,
  /// inline, with no identity (the check is skipped for that node); the manager tolerates the
  /// inline call.
  ///
  /// @par Notes
  /// Thread safety: may be called from any thread.
  virtual void async_identify(identity_handler handler) { handler({}, {}); }

  /// Fails every request in flight with errc::closed (their handlers still run) and
  /// refuses new ones. Idempotent; does not block.
  virtual void close() = 0;
};

}  // namespace redlock

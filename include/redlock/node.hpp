// The node interface: the one thing the lock manager needs from a Redis deployment.
//
// A node evaluates a Lua script with keys and arguments and calls back exactly once.
// The built-in redis_node implements it over one pipelined connection; Sentinel- or
// Cluster-backed nodes, or a wrapper around the user's own client, can too.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
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

/// One event of a notifier (see node::open_notifier). The views are valid only during the
/// handler call.
struct notification {
  enum class kind : std::uint8_t {
    /// A message was published on `channel` (its text in `payload`).
    message,
    /// The server confirmed the subscription to `channel`, the first time or again after a
    /// reconnect or a failover. Messages published before may have been missed.
    subscribed,
    /// The connection behind the subscriptions (`channel` empty: all of them) or behind one
    /// shard of them (`channel` names one that is affected) was lost: no messages arrive for
    /// them until `subscribed` reports them again. The notifier reconnects by itself.
    lost,
  };
  kind what = kind::message;
  std::string_view channel;
  std::string_view payload;
};

/// Receives a notifier's events. Runs on an executor of the notifier's choosing, never inside
/// subscribe()/unsubscribe(), one call at a time; it must not block. It may still run for an
/// event already under way when close() returns, so it must stay safe to call (capture a
/// weak_ptr, not a raw pointer).
using notification_handler = std::function<void(const notification&)>;

/// Subscriptions to one deployment's pub/sub, for release notifications (the lock manager's
/// wake-up of waiting acquires). A channel is named like a key and lives in that key's hash
/// slot. Implementations use sharded pub/sub (SSUBSCRIBE, on a Cluster at the master owning
/// the channel's slot) where the server has it and plain SUBSCRIBE on servers without it (the
/// release script publishes the same way: SPUBLISH, or PUBLISH where SPUBLISH is unknown).
/// They keep the subscriptions across reconnects and failovers, reconnecting with a backoff.
/// Thread safety: every call may come from any thread.
class notifier {
 public:
  /// Closes (as close()); never blocks or throws.
  virtual ~notifier() = default;
  /// Subscribes to `channel`: a `subscribed` event follows once the server confirmed it.
  /// Subscribing to a channel already subscribed does nothing. Opens the connection lazily.
  virtual void subscribe(std::string channel) = 0;
  /// Drops the subscription (nothing when not subscribed).
  virtual void unsubscribe(std::string channel) = 0;
  /// Drops every subscription and closes the connection(s). Idempotent; does not block.
  virtual void close() = 0;
};

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

  /// Opens a notifier on this deployment for release notifications (see notifier), with its
  /// own connection(s), separate from the requests'. The default returns nullptr: the node has
  /// no pub/sub, and waiting acquires on it fall back to their retry timer. Each call returns
  /// a new notifier; the lock manager opens one per node. The notifier may outlive the node
  /// object (it shares what it needs), but node::close() also closes it.
  /// Thread safety: may be called from any thread.
  virtual std::shared_ptr<notifier> open_notifier(notification_handler on_event) {
    (void)on_event;
    return nullptr;
  }

  /// Fails every request in flight with errc::closed (their handlers still run) and
  /// refuses new ones. Idempotent; does not block.
  virtual void close() = 0;
};

}  // namespace redlock

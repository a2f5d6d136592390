// The built-in Redis node: one pipelined connection to one server.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "redlock/endpoint.hpp"
#include "redlock/node.hpp"

namespace redlock {

/// Connection behaviour. Timeouts are always on.
struct connection_options {
  /// Deadline for TCP/Unix connect plus TLS handshake plus AUTH/SELECT.
  std::chrono::milliseconds connect_timeout{1000};
  /// Deadline of each request, from when it is issued. A request that misses it fails with
  /// errc::timeout. When it was already sent, the connection is reset, failing every other
  /// request in flight with errc::connection_lost, and the node backs off as after a failed
  /// connect (a stalled server gets no new connection and no new requests at once). A request
  /// still waiting for the connection or its handshake is dropped unsent.
  std::chrono::milliseconds request_timeout{500};
  /// Reconnect backoff after a failed connect or a reset after a request timeout: doubles
  /// from initial to max, with jitter (uniform in [backoff/2, backoff]), and starts over once
  /// the server has answered on a new connection. While backing off, requests fail at once
  /// with errc::connect_failed (or, after a handshake the server rejected, that rejection's
  /// code: auth_failed, no_permission, ...) instead of waiting. (A connection lost otherwise, e.g.
  /// closed by the server, is reopened by the next request without a backoff.)
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};
  /// Largest single bulk string accepted in a reply.
  std::size_t max_reply_bytes = 64 * 1024 * 1024;
  /// TCP_NODELAY on TCP connections (lower latency for small requests).
  bool tcp_nodelay = true;
};

/// A node backed by one Redis connection, connected lazily on the first request and
/// reconnected as needed. Nothing but AUTH/SELECT is written on a new connection until every
/// handshake reply has succeeded; requests issued meanwhile wait (under their own deadline),
/// and a failed handshake fails them unsent with its error (auth_failed, auth_not_configured,
/// no_permission, server_error, ...) and the server's message. Distinct objects: safe. Shared
/// objects: safe (all work runs on an internal strand).
class redis_node final : public node {
 public:
  redis_node(asio::any_io_executor ex, endpoint ep, connection_options opts = {});
  ~redis_node() override;  // closes; never blocks, never throws

  redis_node(const redis_node&) = delete;
  redis_node& operator=(const redis_node&) = delete;

  const std::string& id() const noexcept override;
  void async_eval(const script& s, std::span<const std::string> keys,
                  std::span<const std::string> args, reply_handler handler) override;
  /// Fails every request in flight with errc::closed and refuses new ones; also closes every
  /// notifier this node opened. Idempotent; does not block.
  void close() override;

  /// A notifier with its own connection to this node's endpoint (same transport, AUTH,
  /// username, db and TLS settings, same connect timeout and backoff), opened on the first
  /// subscribe and closed again once nothing is subscribed. SSUBSCRIBE, or SUBSCRIBE on a
  /// server that does not know SSUBSCRIBE. After a lost connection: `lost` (empty channel),
  /// reconnect after the backoff, `subscribed` for each channel again. Events run on a strand
  /// of the notifier's own, one at a time. After close() returns, an event already under way
  /// may still run; none starts after that.
  std::shared_ptr<notifier> open_notifier(notification_handler on_event) override;

  /// Sends `INFO server` and completes with {"run_id:<run_id>"}: the server's run_id is the
  /// same whatever name or address the node was given. On an error (the node cannot connect,
  /// the handshake fails, the ACL user lacks +info) completes with that error and an empty
  /// list. Same completion rules as async_eval: waits for the connection and its handshake
  /// like any request, and its request deadline applies.
  void async_identify(identity_handler handler) override;

  /// Any command, e.g. {"PING"} or {"SET", "k", "v"}. Completion signature, errors,
  /// cancellation and handler as node::async_eval.
  void async_exec(std::vector<std::string> argv, reply_handler handler);

  const endpoint& get_endpoint() const noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace redlock

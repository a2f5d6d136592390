// Error codes of the redlock library.
//
// One enum, one category. Codes say *what kind* of failure happened; the per-node
// detail (which node, the server's message, latency) lives in the report objects
// that every operation returns alongside the code.
#pragma once

#include <string>
#include <system_error>

namespace redlock {

enum class errc {
  // --- lock operations (what the caller usually branches on) ---
  /// Another owner holds the resource on enough nodes that a quorum is impossible.
  resource_locked = 1,
  /// Too many nodes failed (down, timed out, error replies) to reach a quorum.
  quorum_unreachable,
  /// A quorum voted for us, but the attempt took so long that no validity was left.
  validity_exhausted,
  /// Extend or unlock of a lock whose local validity has already run out.
  lock_expired,
  /// Extend found our value on fewer nodes than a quorum: the lock is lost.
  lock_lost,
  /// The caller passed something unusable (empty resources, bad ttl, duplicate keys...).
  invalid_argument,
  /// The manager (or node) was closed; no new operations are accepted.
  closed,
  /// The operation was cancelled by the caller.
  cancelled,

  // --- node and connection level ---
  /// A URL or endpoint description could not be parsed.
  invalid_url,
  /// Connecting (TCP, Unix socket or TLS handshake) failed or the node is in backoff.
  connect_failed,
  /// The connect or request deadline passed.
  timeout,
  /// The connection was lost or reset while the request was in flight.
  connection_lost,
  /// TLS handshake or certificate verification failed.
  tls_failed,
  /// AUTH was rejected: wrong password, or an unknown or disabled user. Redis answers both
  /// with the same WRONGPASS reply on purpose (no user enumeration), so they share a code.
  auth_failed,
  /// The server requires authentication and none was configured (NOAUTH).
  auth_required,
  /// A password was configured but the server has none set for that user.
  auth_not_configured,
  /// The ACL user lacks a permission the command needs (NOPERM).
  no_permission,
  /// Any other error reply from the server; the report carries the server's message.
  server_error,
  /// The reply could not be parsed, was of an unexpected type, or was too large.
  protocol_error,
  /// The request was not sent: the node's oldest request in flight has waited longer than the
  /// lag limit (manager_options::node_lag_limit), so it would most likely time out. Only acquire
  /// and
  /// extend requests are refused this way; releases are always sent.
  node_lagging,
  /// Two of the manager's nodes reach the same deployment (same server run_id, or members
  /// of one cluster): it would vote twice. Nothing is sent; the report's detail names both
  /// positions.
  duplicate_deployment,
};

/// The category of redlock::errc. Its name() is "redlock".
const std::error_category& category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

/// Thrown by the blocking facade and by throwing convenience overloads.
/// Thread safety: distinct objects safe; shared objects safe for const use.
class lock_error : public std::system_error {
 public:
  using std::system_error::system_error;
};

}  // namespace redlock

template <>
struct std::is_error_code_enum<redlock::errc> : std::true_type {};

// The health of one node as the manager sees it from its requests' outcomes (sans-I/O: time
// is an input). See redlock/observer.hpp for the states.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "redlock/observer.hpp"

namespace redlock::detail::core {

/// What one request to a node says about the node.
enum class request_outcome : std::uint8_t {
  answered,  ///< the server answered (an error reply too: the server is up)
  failed,    ///< connection-level failure: connect, timeout, lost, TLS, auth, protocol
  lagging,   ///< refused locally (errc::node_lagging): nothing was sent
  ignored,   ///< says nothing about the node (errc::closed: our own close)
};

/// Classifies a request's completion by its code alone (a node may carry a description of a
/// connection failure as an error reply, so the reply's type says nothing). The server
/// answered, so it is up, for no error and for the codes of the server's error replies
/// (server_error, no_permission); errc::closed is our own close; errc::node_lagging a local
/// refusal; every other code (connect_failed, timeout, connection_lost, tls_failed, the
/// handshake's auth_* codes, protocol_error, and codes of other categories from custom
/// nodes) is a connection-level failure.
request_outcome classify(const std::error_code& ec) noexcept;

/// One node's state machine: fed each request outcome with the instant its request was sent
/// and the instant of the outcome, it returns at most one transition.
///
/// Only news changes the state: an outcome of a request sent before the current state began
/// is ignored. So a node that fails a thousand requests while down reports "down" once; a
/// timeout of a request sent before the node came back does not take it down again, and the
/// answer of one sent before it went down does not bring it back: "back" is the first answer
/// to a request sent after it was seen down. A node that is down stays down while requests
/// to it are refused locally (lagging is a milder state than down, not news about it).
/// Thread safety: distinct objects safe; shared objects unsafe.
class health_machine {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  struct transition {
    health_state from = health_state::unknown;
    health_state to = health_state::unknown;
  };

  /// Feeds one outcome; `sent` is when its request was sent (for lagging: when it was
  /// refused), `now` when its outcome came. `ec` and `message` say why (kept for down and
  /// lagging).
  std::optional<transition> on_outcome(request_outcome o, const std::error_code& ec,
                                       std::string_view message, time_point sent, time_point now);

  /// False when `o` cannot change the state (the common case: the node stays as it was), so
  /// that a caller can skip the locking around on_outcome().
  bool may_change(request_outcome o) const noexcept;

  health_state state() const noexcept { return state_; }
  /// When the current state began (a default value while unknown).
  time_point since() const noexcept { return since_; }
  /// Why it is down or lagging (empty otherwise).
  const std::error_code& reason() const noexcept { return reason_; }
  const std::string& message() const noexcept { return message_; }
  /// True while the manager should probe the node (down or lagging): nothing else may be
  /// sent to it, and "back" must still be seen.
  bool wants_probe() const noexcept {
    return state_ == health_state::down || state_ == health_state::lagging;
  }

 private:
  health_state state_ = health_state::unknown;
  time_point since_{};
  std::error_code reason_;
  std::string message_;
};

}  // namespace redlock::detail::core

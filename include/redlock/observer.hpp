// Operating a lock manager: node health and metrics.
//
// Two things an operator needs that a per-request error hook cannot give: the state of every
// node (one event per change, and a way to read them all now), and numbers (counters,
// histograms, gauges) to scrape. Both are observed here; redlock::prometheus (optional, see
// prometheus.hpp) turns an observer into Prometheus metrics.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

namespace redlock {

/// What the manager knows about one node, from its answers. (Not `node_state`: that name is
/// inspection's per-node answer, inspect.hpp.)
enum class health_state : std::uint8_t {
  unknown,  ///< nothing sent yet (or nothing answered yet)
  up,       ///< its last request was answered by the server
  lagging,  ///< requests are refused locally: its oldest request waits beyond the lag limit
  down,     ///< its last request failed on the connection level (connect, timeout, lost, TLS, auth)
};

/// The enumerator's name ("unknown", "up", "lagging", "down"). A stable identifier, not a
/// message: the Prometheus adapter uses it as a label value, so it never changes.
const char* to_string(health_state s) noexcept;

/// The current state of one node (lock_manager::node_states()).
struct node_health {
  std::size_t index = 0;  ///< position in the manager
  std::string node;       ///< the node's id(), never with a password
  health_state state = health_state::unknown;
  /// Why it is down or lagging (empty when up or unknown).
  std::error_code reason;
  std::string message;
  /// When it entered `state` (steady clock; a default value while unknown).
  std::chrono::steady_clock::time_point since{};
};

/// One change of a node's state (lock_manager::on_node_state). Exactly one event per
/// transition: a node that fails a thousand requests while down reports "down" once.
struct node_state_change {
  std::size_t index = 0;
  std::string node;
  health_state from = health_state::unknown;
  health_state to = health_state::unknown;
  std::error_code reason;  ///< for `to` down or lagging
  std::string message;
};

/// The operations a manager counts.
enum class operation : std::uint8_t { lock, try_lock, extend, unlock };

/// The enumerator's name ("lock", "try_lock", "extend", "unlock"); stable like the one of
/// health_state (a metric label value).
const char* to_string(operation o) noexcept;

/// One operation as it completed.
struct operation_event {
  operation op = operation::lock;
  /// Empty for success. try_lock that found the resource held: errc::resource_locked.
  std::error_code ec;
  int attempts = 0;
  /// From the call to the completion (for lock: the wait time, retries included).
  std::chrono::nanoseconds duration{0};
  /// The last attempt alone (for a successful lock: the acquire latency, one round of
  /// requests; duration minus it was spent waiting).
  std::chrono::nanoseconds last_attempt{0};
};

/// One request to one node, as it was answered (or failed, or timed out).
struct node_request_event {
  std::size_t index = 0;
  const std::string* node = nullptr;  ///< the node's id(); valid during the call
  std::error_code ec;                 ///< empty when the server answered without an error
  std::chrono::nanoseconds round_trip{0};
};

/// Gauges, read when asked (lock_manager::stats()), so that nothing is counted for them
/// between scrapes. locks_held and operations_waiting are kept only while an observer is set
/// (lock_manager::set_observer; 0 otherwise), so that a manager without one does no
/// bookkeeping; nodes always.
struct manager_stats {
  /// Locks acquired through this manager whose validity has not passed and that were not
  /// released (extensions keep them; a lost extension ends them).
  std::size_t locks_held = 0;
  /// Lock operations started and not yet completed (waiting or retrying).
  std::size_t operations_waiting = 0;
  std::vector<node_health> nodes;
};

/// Receives a manager's measurements. Every call runs on the manager's strand, one at a time,
/// and must neither block nor throw. The defaults do nothing; override what you need. A
/// manager without an observer measures nothing (no clock reads, no allocation).
class observer {
 public:
  virtual ~observer() = default;
  /// Every completed operation (acquisitions, failures by code, attempts, extensions, releases;
  /// acquire latency).
  virtual void operation_done(const operation_event&) {}
  /// A lock acquired through this manager ended: released by unlock, or its holder found it
  /// lost (`lost`: extend failed with lock_lost or lock_expired, or unlock found it expired).
  /// `held` runs from the acquire's grant to the end. Locks that simply run out without an
  /// unlock, and adopted handles, report nothing here.
  virtual void lock_ended(std::chrono::nanoseconds /*held*/, bool /*lost*/) {}
  /// Every request to a node (per-node round trip, node errors by code): those of lock,
  /// try_lock, extend and unlock, their cleanup, and the health probes; requests refused
  /// locally because the node lags come with errc::node_lagging and a zero round trip.
  virtual void node_request(const node_request_event&) {}
  /// Every node state change (as lock_manager::on_node_state).
  virtual void node_state_changed(const node_state_change&) {}
};

}  // namespace redlock

// Inspection: "is this locked, and by whom?" — a read-only query across all nodes.
//
// Redlock cannot say with certainty that a resource is locked (a partition may hide the
// holder); what it can say is what a quorum of the nodes we reach agrees on. The verdict is
// therefore held (by one value on a quorum), free (on a quorum) or indeterminate.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <asio/async_result.hpp>

#include "redlock/blocking.hpp"
#include "redlock/detail/unique_function.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/owner.hpp"
#include "redlock/resource_list.hpp"

namespace redlock {

/// One key on one node.
struct key_state {
  bool present = false;  ///< the key exists
  /// Its value when it is a string (a lock value is); nullopt when absent or another type.
  std::optional<std::string> value;
  /// PTTL as the server reported it: remaining time to live (>= 0), -1 when the key has no
  /// expiry (not set by a Redlock client), -2 when absent.
  std::chrono::milliseconds ttl{-2};
  /// The owner record beside the key (manager_options::owner), when there is one and it was
  /// written with the value the key holds now (a record of another value is not shown: it
  /// says nothing about the holder). Not read for a resource whose name contains '}' but no
  /// hash tag (its record cannot share the key's Cluster slot).
  std::optional<lock_owner> owner;
};

/// One node's answer.
struct node_state {
  std::string node;  ///< the node's id(), never with a password
  /// Empty when the node answered; otherwise why not (error reply, timeout, closed...).
  std::error_code ec;
  std::string message;          ///< the server's error message, if any
  std::vector<key_state> keys;  ///< one per resource, in order; empty when ec is set
  /// The node's fencing counter for the resources (see manager_options::fencing): the
  /// largest of the resources' counters on this node, read in the same script as the keys.
  /// nullopt when no counter exists there (no fenced acquire reached this node), when the
  /// node did not answer, and for counters that are not read: one holding anything but a
  /// decimal integer (not written by redlock), and the counter of a resource whose name
  /// contains '}' but no hash tag ("{...}" with something inside): its counter key cannot
  /// share the resource's Cluster hash slot, which a Cluster node needs for one script (on
  /// Cluster nodes, fenced acquires of such names fail for the same reason).
  std::optional<std::uint64_t> fencing_counter;
  std::chrono::microseconds latency{0};

  bool answered() const noexcept { return !ec; }
  /// Answered and no resource key exists.
  bool free() const noexcept;
  /// The string value present on every resource key of this node, if all keys hold the same
  /// value; nullopt otherwise (some key absent, different values, not answered).
  std::optional<std::string> holder() const;
};

enum class lock_status {
  held,           ///< one value holds every resource key on a quorum of nodes
  free,           ///< no resource key exists on a quorum of nodes
  indeterminate,  ///< neither: partial holds, split values or too many unreachable nodes
};
/// "held", "free", "indeterminate".
const char* to_string(lock_status s) noexcept;

/// The result of an inspection.
struct inspection {
  std::vector<std::string> resources;
  std::size_t quorum = 0;
  std::vector<node_state> nodes;  ///< one per node, in manager order

  lock_status status = lock_status::indeterminate;
  /// held: the value that holds every key on a quorum (compare with lock::value()).
  std::string holder;
  /// held: the holder's owner record (of its first resource, from the first node of the
  /// quorum that has one), when it wrote one (manager_options::owner).
  std::optional<lock_owner> owner;
  /// Nodes where `holder` holds every key (held) / where no key exists (any verdict).
  std::size_t holding_nodes = 0;
  std::size_t free_nodes = 0;
  /// held: a conservative end of the quorum's hold on our steady clock: request start +
  /// the quorum-th largest per-node TTL (a node's TTL = its smallest key TTL) − drift, where
  /// drift = round(largest TTL seen × drift_factor) + 2 ms (clock rate error accumulates
  /// only over the remaining time, so the largest remaining TTL bounds it). Measured from
  /// the request start because each TTL was read at some unknown instant after it.
  /// time_point::max() when the quorum's keys have no expiry. Otherwise {}.
  steady_clock::time_point validity_deadline{};
  /// Why the inspection was refused before anything was sent (errc::duplicate_deployment:
  /// names both nodes, as report::detail does). Empty otherwise.
  std::string detail;

  bool held() const noexcept { return status == lock_status::held; }
  /// True when held by `l`'s value.
  bool held_by(const lock& l) const noexcept {
    return held() && l.acquired() && holder == l.value();
  }
  /// held: validity left (may be negative); otherwise zero.
  steady_clock::duration remaining(
      steady_clock::time_point now = steady_clock::now()) const noexcept;
  /// Verdict line plus one line per node, e.g.
  /// "redis://127.0.0.1:7001/0: a3f0... 2931 ms, fencing counter 7" (the counter when there
  /// is one). No secrets.
  std::string to_string() const;
};

namespace detail {

using inspect_completion = unique_function<void(std::error_code, inspection)>;
/// Starts the query; completes on the manager's strand (never from inside).
void start_inspect(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                   inspect_completion done);
void start_inspect(lock_manager& m, std::vector<std::string> resources, inspect_completion done);

/// The sans-I/O verdict: fills status, holder, holding_nodes, free_nodes and
/// validity_deadline of `in` from its nodes and quorum. `started` is when the requests went
/// out.
void decide(inspection& in, double drift_factor, steady_clock::time_point started);

/// The read-only script: KEYS = the resources' keys, then the fencing counter keys read (see
/// node_state::fencing_counter), then the owner record keys read (key_state::owner); returns
/// for each key {value or nil, PTTL}.
const script& inspect_script();

}  // namespace detail

/// Reads every resource key, its fencing counter and its owner record on every node (one
/// read-only script per node, sent at once) and decides the verdict. Nothing is written. The
/// keys are the manager's (manager_options::key_prefix); the result names the resources.
///
/// @par Completion signature
/// `void(std::error_code, inspection)`
///
/// @par Errors
/// errc::invalid_argument (no resources, duplicates), errc::duplicate_deployment,
/// errc::closed. Node failures are not errors: such a node appears with its error and counts
/// as neither holding nor free, which makes the verdict indeterminate when too many fail.
///
/// @par Cancellation
/// None (bounded by manager_options::request_timeout).
///
/// @par Handler
/// Runs on its associated executor (default: the manager's), never from inside this call.
template <asio::completion_token_for<void(std::error_code, inspection)> CompletionToken =
              asio::default_completion_token_t<lock_manager::executor_type>>
auto async_inspect(
    lock_manager& m, resource_list resources,
    CompletionToken&& token = asio::default_completion_token_t<lock_manager::executor_type>()) {
  return asio::async_initiate<CompletionToken, void(std::error_code, inspection)>(
      // The shared core, not the manager object: a deferred initiation may run after the
      // lock_manager it was started from is gone (it then completes with errc::closed).
      [impl = detail::impl_of(m)](auto handler, std::vector<std::string> r) {
        auto fallback = detail::executor_of(*impl);
        detail::start_inspect(impl, std::move(r),
                              detail::bind_handler<decltype(handler), std::error_code, inspection>(
                                  std::move(handler), fallback));
      },
      token, std::move(resources).names());
}

/// What a force release found and deleted on one node.
struct forced_node {
  std::string node;  ///< the node's id(), never with a password
  /// Empty when the node answered; otherwise why not (error reply, timeout, closed...).
  std::error_code ec;
  std::string message;  ///< the server's error message, if any
  /// Per resource, in order (empty when ec is set): the lock value deleted (nullopt: no lock
  /// key there, or one of another type, which is left alone).
  std::vector<std::optional<std::string>> values;
  /// Per resource: the owner record deleted with it, whichever value it names (nullopt:
  /// none, or a key that is not a record; the key is deleted anyway).
  std::vector<std::optional<lock_owner>> owners;

  bool answered() const noexcept { return !ec; }
  /// Answered and deleted at least one lock value.
  bool removed_any() const noexcept;
};

/// The result of a force release.
struct force_release_result {
  std::vector<std::string> resources;
  std::vector<forced_node> nodes;  ///< one per node, in manager order
  /// Why it was refused before anything was sent (as inspection::detail). Empty otherwise.
  std::string detail;
  /// Nodes that answered / that deleted at least one lock value.
  std::size_t answered_nodes() const noexcept;
  std::size_t removed_nodes() const noexcept;
};

namespace detail {
using force_completion = unique_function<void(std::error_code, force_release_result)>;
/// Starts a force release; completes on a strand of the manager's executor (never inside).
void start_force_release(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                         force_completion done);
}  // namespace detail

/// Deletes whatever lock value holds each resource on every node, whoever holds it, and the
/// owner records beside them; announces each deleted key's release as an unlock does (waiting
/// acquires wake). For operators clearing a stuck lock: the holder, if alive, still believes
/// it holds the lock until its validity ends, so use it only on locks whose holder is gone.
/// One script per node, sent at once. Fencing counters stay (tokens must keep growing); a
/// fair waiter queue is not touched (an entry of the holder there leaves with its lease,
/// manager_options::fair_entry_timeout).
///
/// @par Completion signature
/// `void(std::error_code, force_release_result)`
///
/// @par Errors
/// errc::invalid_argument (no resources, duplicates), errc::duplicate_deployment,
/// errc::closed. Node failures are not errors: such a node appears with its error (it may
/// still hold the lock; run it again).
///
/// @par Cancellation
/// None (bounded by manager_options::request_timeout).
///
/// @par Handler
/// Runs on its associated executor (default: the manager's), never from inside this call.
template <asio::completion_token_for<void(std::error_code, force_release_result)> CompletionToken =
              asio::default_completion_token_t<lock_manager::executor_type>>
auto async_force_release(
    lock_manager& m, resource_list resources,
    CompletionToken&& token = asio::default_completion_token_t<lock_manager::executor_type>()) {
  return asio::async_initiate<CompletionToken, void(std::error_code, force_release_result)>(
      [impl = detail::impl_of(m)](auto handler, std::vector<std::string> r) {
        auto fallback = detail::executor_of(*impl);
        detail::start_force_release(
            impl, std::move(r),
            detail::bind_handler<decltype(handler), std::error_code, force_release_result>(
                std::move(handler), fallback));
      },
      token, std::move(resources).names());
}

/// Blocking forms; the throwing one throws lock_error. Do not call from the manager's thread.
force_release_result force_release(blocking_lock_manager& m,
                                   const std::vector<std::string>& resources);
force_release_result force_release(blocking_lock_manager& m,
                                   const std::vector<std::string>& resources, std::error_code& ec);

/// Blocking forms; the throwing one throws lock_error. Do not call from the manager's thread.
inspection inspect(blocking_lock_manager& m, const std::vector<std::string>& resources);
inspection inspect(blocking_lock_manager& m, const std::vector<std::string>& resources,
                   std::error_code& ec);

}  // namespace redlock

// Lock manager settings. Plain aggregates; every default is documented at its field.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "redlock/owner.hpp"

namespace redlock {

struct manager_options {
  /// Expected server clock rate error. Validity is shortened by
  /// round(ttl * drift_factor) + 2 ms. Must be in [0, 1).
  double drift_factor = 0.01;
  /// Attempts after the first: 0 = a single try, -1 = retry until acquired (or cancelled).
  int retry_count = 10;
  /// Pause between attempts...
  std::chrono::milliseconds retry_delay{200};
  /// ...plus or minus a uniformly random amount up to this (never below zero in total).
  std::chrono::milliseconds retry_jitter{100};
  /// How long to wait for one node's answer within an attempt; a node that misses it votes
  /// "timeout" (the wait is capped at the TTL). Keep it much smaller than the TTL (the
  /// Redlock spec's advice). Must be positive. Also used as
  /// the request timeout of the built-in redis_node when the manager is built from URLs.
  std::chrono::milliseconds request_timeout{200};
  /// Connect timeout of built-in redis_nodes created from URLs.
  std::chrono::milliseconds connect_timeout{1000};
  /// A node whose oldest unanswered request (from this manager) has waited longer than this
  /// is lagging: new acquire and extend requests to it fail at once with errc::node_lagging
  /// instead of joining a queue that would end in a timeout and a connection reset. Releases
  /// are always sent. 0 (the default) follows each node's observed round trip: request_timeout
  /// / 2, raised to SRTT + 4 × RTTVAR of the node's answers (what it has been seen to need, as
  /// TCP's retransmission timeout), never above request_timeout, and request_timeout until the
  /// node's first answer. A positive value is used as it is. Must not be negative.
  std::chrono::milliseconds node_lag_limit{0};
  /// How long async_quit waits for cleanup still in progress (releases retried after a failed
  /// or cancelled acquire or an unlock, on nodes that did not confirm them) before it closes
  /// the nodes anyway. Must not be negative.
  std::chrono::milliseconds quit_timeout{2000};
  /// Fencing tokens (see lock::fencing_token and "Fencing" in the README): every acquire also
  /// raises a durable per-resource counter on each node and confirms the candidate token in a
  /// second round trip, so that every lock carries a 64-bit token that grows with every
  /// acquisition. Off (the default): nothing changes on the wire (node-redlock's scripts).
  /// The counters must survive server restarts (AOF with appendfsync always) for the tokens
  /// to keep growing.
  bool fencing = false;
  /// Wake-up of waiting acquires (on by default; README "Waiting"). Every release also
  /// announces itself on each node, in the same script (SPUBLISH on the resource's channel,
  /// PUBLISH on servers before Redis 7), and the manager keeps one subscriber connection per
  /// node, shared by its waiting acquires, subscribed to the resources they wait for. An
  /// acquire that is waiting retries as soon as a release of one of its resources arrives,
  /// instead of at its next retry delay (which stays, as the fallback for lost messages and for
  /// holders that never announce, e.g. node-redlock clients). In one manager a release wakes
  /// only its oldest waiter of that resource. Costs: one connection per node while something
  /// waits, one publish per released key. Off: releases run node-redlock's script unchanged and
  /// no subscriber is opened; waiting acquires poll (they still retry when the holders' keys
  /// expire, which every denial reports).
  bool wakeup = true;
  /// Fair mode (README "Fair mode"): waiting acquires are served in the order they began,
  /// across all managers in fair mode, over the N independent nodes. Each waiter takes a
  /// ticket (its start time) once and queues on every node; a node grants only to the head
  /// of its queue of live waiters, and a release wakes only the new head. Costs: every
  /// attempt also refreshes the waiter's queue entry (a few more commands per script), and a
  /// waiter refreshes it at least every fair_entry_timeout / 3. Clients not in fair mode
  /// (and node-redlock) ignore the queues and may barge. Not combinable with fencing.
  bool fair = false;
  /// Fair mode: how long a waiter's queue entry lives without a refresh. A waiter that
  /// crashed (or gave up without reaching a node) holds up the queue at most this long.
  /// Must be positive.
  std::chrono::milliseconds fair_entry_timeout{2000};
  /// Node health (lock_manager::on_node_state, node_states()): while a node is down or
  /// lagging, the manager sends it a probe this often (one at a time per node; a script that
  /// touches no key), so that its return is seen (and reported) even when nothing else is
  /// sent to it. 0 turns the probe off: a node is then seen back at the first operation that
  /// reaches it. Stops at async_quit and destruction. Must not be negative.
  std::chrono::milliseconds health_probe_interval{1000};
  /// A namespace for every key and channel the manager derives from a resource: the lock key
  /// of resource R is `key_prefix + R`, and its fencing counter, fair queues, owner record and
  /// release channel follow from that key. Empty (the default): keys are the resources
  /// verbatim, as node-redlock's. Must not contain '{' or '}', so that a resource's own hash
  /// tag still picks its Cluster slot (a prefix with a tag would put every lock in one slot).
  /// Inspection and force release use it too; lock handles keep the unprefixed names.
  std::string key_prefix;
  /// Owner metadata (README "Owner metadata"): when set, every acquire also writes who holds
  /// the lock (this, the acquisition's wall-clock time and the lock value) into a key beside
  /// each lock key (`<key>:redlock-owner`, same slot, same PX), in the same script; extends
  /// prolong it and releases delete it where it holds our value. The lock keys are unchanged,
  /// so node-redlock clients still exclude; nothing depends on the record (a missing or
  /// garbled one changes no outcome). Unset (the default): nothing changes on the wire
  /// (node-redlock's scripts). Not combinable with fencing or fair mode: the constructor
  /// throws lock_error(invalid_argument) when either is set here, and an acquire that turns
  /// one on (call_options) fails with errc::invalid_argument. See this_process().
  std::optional<owner_info> owner;
};

/// Per-call overrides; an unset field uses the manager's settings. retry_count = 0 is
/// honoured (one try).
struct call_options {
  std::optional<int> retry_count;
  std::optional<std::chrono::milliseconds> retry_delay;
  std::optional<std::chrono::milliseconds> retry_jitter;
  /// Unlock only: complete when every node has answered or timed out (bounded by the request
  /// timeout) instead of at the first quorum, so that unlock_result counts every node's
  /// answer. Used by the CLI's release to tell "released" from "held by another value".
  bool wait_all_nodes = false;
  /// Lock only: fencing for this call (see manager_options::fencing); unset = the manager's.
  std::optional<bool> fencing;
  /// Lock only: the total wait budget ("try for at most 5 s"), counted from the call. No
  /// attempt starts after it; a wait that would end later ends there, and the lock completes
  /// with the last attempt's error (errc::resource_locked when it was held). An attempt that
  /// started in time may finish up to one request timeout later. When it is set and
  /// retry_count is not, attempts are bounded by the budget alone (retry_count = -1); a
  /// retry_count set as well still applies. Must not be negative; 0 = a single attempt.
  std::optional<std::chrono::milliseconds> max_wait;
  /// Lock only: fair mode for this call (see manager_options::fair); unset = the manager's.
  std::optional<bool> fair;
  /// Lock only, with manager_options::owner set: the owner label written with this lock
  /// instead of the manager's owner_info::label.
  std::optional<std::string> owner_label;
};

}  // namespace redlock

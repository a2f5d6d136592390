// The Lua scripts of the wire format (see "Wire format" in docs and architecture.md).
// KEYS = resources, ARGV[1] = lock value, ARGV[2] = TTL in integer milliseconds.
#pragma once

#include <string>
#include <string_view>

#include "redlock/node.hpp"

namespace redlock::detail {

/// Sets every key (PX ttl) when none holds another value; returns #KEYS, else -1 - PTTL of
/// the longest-lived foreign key (0 when one never expires).
const script& acquire_script();
/// Resets the TTL of every key when all hold our value; returns #KEYS, else 0 or a
/// negative code (see the implementation) that tells "foreign value" from "keys missing".
const script& extend_script();
/// Deletes each key that holds our value; returns how many were deleted.
const script& release_script();
/// As release_script(), and announces each deleted key on its release_channel() (SPUBLISH,
/// or PUBLISH where unknown) with the SHA1 of the value as the message.
const script& release_notify_script();
/// Fair mode: KEYS = lock keys, their queues, their leases; ARGV = value, ttl, ticket,
/// lease ms. Grants (#keys) only when the keys are free and we head every queue (the entry
/// stays, leased for min(lease, ttl)); else a denial as acquire_script()'s (0 also when only
/// the queue stands in the way).
const script& fair_acquire_script();
/// Fair mode: KEYS as fair_acquire_script(); ARGV = value, "stay" (keep our queue entries) or
/// "leave" (with a tombstone against late acquires), lease ms. Returns how many keys were
/// deleted; announces "head:<sha1>" of the new head.
const script& fair_release_script();
/// Fencing phase 1: the acquire, plus INCR of each key's counter; KEYS = lock keys then their
/// counter keys; returns the largest counter (>= 1), else a denial as acquire_script()'s.
const script& fenced_acquire_script();
/// Fencing phase 2: ARGV = value, t. 1 when every key holds our value and no counter is above
/// t (counters are then raised to t); 0 when a key is not ours; -1 when a counter is above t.
const script& fence_confirm_script();
/// The health probe (lock_manager's probe of a node that is down or lagging): no keys, no
/// arguments, returns 1. Any answer, an error reply too, shows that the server is up.
const script& probe_script();
/// Owner metadata: KEYS = lock keys, then their owner_key()s; ARGV = value, ttl, record. As
/// acquire_script(), and a grant writes each record (PX ttl), keeping one of our value.
const script& acquire_owner_script();
/// As extend_script(), and prolongs our records (writes ARGV[3] where missing, if nonempty).
const script& extend_owner_script();
/// As release_script() / release_notify_script(), and deletes our records.
const script& release_owner_script();
const script& release_notify_owner_script();
/// KEYS = lock keys, then owner keys; ARGV = the number of lock keys. Deletes every string there
/// (announcing the lock keys' releases); returns per key what it held (or nil).
const script& force_release_script();
/// The durable counter key of `resource` (in the same Cluster slot whenever the resource's
/// name allows it: see the implementation).
std::string fencing_counter_key(std::string_view resource);
/// The pub/sub channel on which releases of `resource` are announced (same slot rule).
std::string release_channel(std::string_view resource);
/// Fair mode: the wait queue and the lease keys of `resource` (same slot rule).
std::string fair_queue_key(std::string_view resource);
std::string fair_lease_key(std::string_view resource);
/// The owner record key of the lock key `key` (same slot rule).
std::string owner_key(std::string_view key);

}  // namespace redlock::detail

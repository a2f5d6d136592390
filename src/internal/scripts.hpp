// The Lua scripts of the wire format (see "Wire format" in docs and architecture.md).
// KEYS = resources, ARGV[1] = lock value, ARGV[2] = TTL in integer milliseconds.
#pragma once

#include "redlock/node.hpp"

namespace redlock::detail {

/// Sets every key (PX ttl) when none holds another value; returns #KEYS, else 0.
const script& acquire_script();
/// Resets the TTL of every key when all hold our value; returns #KEYS, else 0 or a
/// negative code (see the implementation) that tells "foreign value" from "keys missing".
const script& extend_script();
/// Deletes each key that holds our value; returns how many were deleted.
const script& release_script();

}  // namespace redlock::detail

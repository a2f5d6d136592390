// The Lua scripts of the wire format, compatible with node-redlock v4/v5 clients on the same
// keys: key = resource verbatim, value = the lock's random value, PX = ttl in milliseconds.
#include "internal/scripts.hpp"

namespace redlock::detail {

// Acquire: fails (0) when any key holds a DIFFERENT value, else sets every key and returns
// #KEYS. A key that already holds OUR value counts as ours: values are unique per lock, so
// such a key can only be a leftover of an earlier attempt of this very lock (e.g. a reply
// that timed out before its release landed). Treating it as ours removes self-blocking on
// our own leftovers entirely, and it is what lets extend re-set keys a restarted node lost.
const script& acquire_script() {
  static const script s(R"lua(
for _, key in ipairs(KEYS) do
  local v = redis.call("GET", key)
  if v and v ~= ARGV[1] then return 0 end
end
for _, key in ipairs(KEYS) do
  redis.call("SET", key, ARGV[1], "PX", ARGV[2])
end
return #KEYS
)lua");
  return s;
}

// Extend: resets the TTL of every key when all hold our value and returns #KEYS. Otherwise
// changes nothing and returns 0 when some key holds another value, or -1 when no key is
// foreign but some are missing (the node lost them, e.g. a restart without persistence):
// the manager then re-sets them with the acquire script while the lock is still valid.
const script& extend_script() {
  static const script s(R"lua(
local missing = false
for _, key in ipairs(KEYS) do
  local v = redis.call("GET", key)
  if not v then
    missing = true
  elseif v ~= ARGV[1] then
    return 0
  end
end
if missing then return -1 end
for _, key in ipairs(KEYS) do
  redis.call("PEXPIRE", key, ARGV[2])
end
return #KEYS
)lua");
  return s;
}

// Release: deletes each key that holds our value; returns how many were deleted.
const script& release_script() {
  static const script s(R"lua(
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call("GET", key) == ARGV[1] then
    redis.call("DEL", key)
    n = n + 1
  end
end
return n
)lua");
  return s;
}

// Fencing, phase 1 (the fenced acquire): KEYS = the n lock keys, then their n counter keys
// (fencing_counter_key); ARGV = value, ttl. As the acquire script, and each granted key's
// counter is raised by one (INCR: durable, never expiring; first, so that a counter key holding
// something else fails the script before a lock key was set, and a counter raised for
// nothing is harmless). Returns the largest counter after
// the increments (>= 1), or 0 when a key holds another value (nothing changed then).
const script& fenced_acquire_script() {
  static const script s(R"lua(
local n = #KEYS / 2
for i = 1, n do
  local v = redis.call("GET", KEYS[i])
  if v and v ~= ARGV[1] then return 0 end
end
local t = 0
for i = 1, n do
  local c = redis.call("INCR", KEYS[n + i])
  if c > t then t = c end
end
for i = 1, n do
  redis.call("SET", KEYS[i], ARGV[1], "PX", ARGV[2])
end
return t
)lua");
  return s;
}

// Fencing, phase 2 (the confirm): KEYS as above; ARGV = value, t (the candidate token). Ok (1)
// only when every lock key holds our value AND no counter has moved past t; then every
// counter is raised to t. Otherwise changes nothing: 0 when a key is not ours, -1 when a
// counter is above t (a later phase 1 ran here: a stale or late request of ours may have
// re-created our key, so the key alone proves nothing; see models/fencing.pml).
const script& fence_confirm_script() {
  static const script s(R"lua(
local n = #KEYS / 2
local t = tonumber(ARGV[2])
for i = 1, n do
  if redis.call("GET", KEYS[i]) ~= ARGV[1] then return 0 end
end
for i = 1, n do
  local c = tonumber(redis.call("GET", KEYS[n + i]) or "0")
  if c > t then return -1 end
end
for i = 1, n do
  redis.call("SET", KEYS[n + i], ARGV[2])
end
return 1
)lua");
  return s;
}

std::string fencing_counter_key(std::string_view resource) {
  // On a Cluster node the counter must live in the lock key's slot. A key with a hash tag
  // ({...} with something inside) keeps it when a suffix is added; a key without one hashes
  // whole, and wrapping it in braces makes it the tag, which only works when it contains no
  // '}' (such names need a hash tag of their own on Cluster nodes).
  constexpr std::string_view suffix = ":redlock-fencing";
  const auto open = resource.find('{');
  const bool tagged = open != std::string_view::npos &&
                      resource.find('}', open + 1) != std::string_view::npos &&
                      resource.find('}', open + 1) > open + 1;
  std::string key;
  if (tagged || resource.find('}') != std::string_view::npos) {
    key.reserve(resource.size() + suffix.size());
    key.append(resource).append(suffix);
  } else {
    key.reserve(resource.size() + suffix.size() + 2);
    key.append("{").append(resource).append("}").append(suffix);
  }
  return key;
}

}  // namespace redlock::detail

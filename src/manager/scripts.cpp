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

}  // namespace redlock::detail

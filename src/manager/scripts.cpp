// The Lua scripts of the wire format, compatible with node-redlock v4/v5 clients on the same
// keys: key = resource verbatim, value = the lock's random value, PX = ttl in milliseconds.
#include "internal/scripts.hpp"

#include <initializer_list>
#include <string>
#include <string_view>

namespace redlock::detail {

namespace {

// The Lua prelude of the announcing releases: announce(key, id) publishes `id` on key's
// release channel, computed by the rule of release_channel() (in_slot_of below), with
// SPUBLISH, or PUBLISH on servers that do not know it. pcall: a failing publish must never
// turn a release that happened into an error reply.
constexpr std::string_view announce_lua = R"lua(
local function announce(key, id)
  local open = string.find(key, "{", 1, true)
  local close = open and string.find(key, "}", open + 1, true)
  local ch
  if (close and close > open + 1) or string.find(key, "}", 1, true) then
    ch = key .. ":redlock-release"
  else
    ch = "{" .. key .. "}:redlock-release"
  end
  local r = redis.pcall("SPUBLISH", ch, id)
  if type(r) == "table" and r.err then redis.pcall("PUBLISH", ch, id) end
end
)lua";

// The Lua prelude of the fair scripts: the server's clock in ms (leases are on it, never on
// a client's), and prune(q, l, now) dropping the entries whose lease ran out.
constexpr std::string_view fair_lua = R"lua(
local function now_ms()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function prune(q, l, now)
  for _, m in ipairs(redis.call("ZRANGEBYSCORE", l, "-inf", now)) do
    redis.call("ZREM", q, m)
    redis.call("ZREM", l, m)
  end
end
)lua";

// The check of every acquire script: denial(n) is nil when each of KEYS[1..n] is free or
// holds ARGV[1] (ours), else the answer of a refused acquire: -1 - PTTL of the longest-lived
// foreign key, or 0 when a foreign key never expires.
constexpr std::string_view denial_lua = R"lua(
local function denial(n)
  local wait
  for i = 1, n do
    local v = redis.call("GET", KEYS[i])
    if v and v ~= ARGV[1] then
      local t = redis.call("PTTL", KEYS[i])
      if t < 0 then return 0 end
      if not wait or t > wait then wait = t end
    end
  end
  if wait then return -1 - wait end
  return nil
end
)lua";

// The check of both extend scripts: refusal(n) is nil when each of KEYS[1..n] holds ARGV[1],
// else 0 when one holds another value, or -1 when none is foreign but some are missing.
constexpr std::string_view refusal_lua = R"lua(
local function refusal(n)
  local missing = false
  for i = 1, n do
    local v = redis.call("GET", KEYS[i])
    if not v then
      missing = true
    elseif v ~= ARGV[1] then
      return 0
    end
  end
  if missing then return -1 end
  return nil
end
)lua";

std::string with_preludes(std::initializer_list<std::string_view> preludes, std::string_view body) {
  std::string text;
  for (auto p : preludes)
    text.append(p);
  text.append(body);
  return text;
}

std::string with_announce(std::string_view body) {
  return with_preludes({announce_lua}, body);
}

}  // namespace

// Acquire: fails when any key holds a DIFFERENT value, else sets every key and returns
// #KEYS. A failure answers -1 - PTTL of the longest-lived foreign key, so that a waiter can
// retry when the holder's keys expire (a crashed holder costs its TTL, not TTL plus a poll);
// 0 when a foreign key never expires. Nothing is written on failure, as in node-redlock's. A key
// that already holds OUR value counts as ours: values are unique per lock, so such a key can only
// be a leftover of an earlier attempt of this very lock (e.g. a reply that timed out before its
// release landed). Treating it as ours removes self-blocking on our own leftovers entirely, and it
// is what lets extend re-set keys a restarted node lost.
const script& acquire_script() {
  static const script s(with_preludes({denial_lua}, R"lua(
local d = denial(#KEYS)
if d then return d end
for _, key in ipairs(KEYS) do
  redis.call("SET", key, ARGV[1], "PX", ARGV[2])
end
return #KEYS
)lua"));
  return s;
}

// Extend: resets the TTL of every key when all hold our value and returns #KEYS. Otherwise
// changes nothing and returns 0 when some key holds another value, or -1 when no key is
// foreign but some are missing (the node lost them, e.g. a restart without persistence):
// the manager then re-sets them with the acquire script while the lock is still valid.
const script& extend_script() {
  static const script s(with_preludes({refusal_lua}, R"lua(
local r = refusal(#KEYS)
if r then return r end
for _, key in ipairs(KEYS) do
  redis.call("PEXPIRE", key, ARGV[2])
end
return #KEYS
)lua"));
  return s;
}

// Release: deletes each key that holds our value; returns how many were deleted.
// node-redlock's, used when wake-up is off (manager_options::wakeup).
// The cheapest request a node can run: touches no key, so it is valid on every deployment.
const script& probe_script() {
  static const script s("return 1");
  return s;
}

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

// Release with wake-up (manager_options::wakeup): as release_script(), and for each key it
// deleted, announces it on the key's release channel (release_channel(): same rule, so on a
// Cluster it lives in the key's slot) with SPUBLISH, or PUBLISH on servers that do not know
// SPUBLISH (Redis < 7). In the same script, so it costs no round trip. The payload is the
// SHA1 of the released value: it tells releases apart without revealing the value (which
// would let any subscriber release the lock).
const script& release_notify_script() {
  static const script s(with_announce(R"lua(
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call("GET", key) == ARGV[1] then
    redis.call("DEL", key)
    n = n + 1
    announce(key, redis.sha1hex(ARGV[1]))
  end
end
return n
)lua"));
  return s;
}

// Owner metadata (manager_options::owner). KEYS = the n lock keys, then their n owner keys
// (owner_key: in the lock key's slot); ARGV = value, ttl, the owner record (encode_owner:
// it starts with value .. "\n"). The lock keys are handled exactly as by the plain scripts and
// the answers are the same (n counts lock keys only), so node-redlock clients on the same keys
// still exclude. Every owner-key command goes through pcall and its result decides nothing:
// the record is information, and a key of another type there (or any failure on it) must not
// change an outcome.
namespace {

// owner_is_ours(o, v): the owner key holds the record of lock value v. keep_record(o): after
// a grant or an extension of lock value ARGV[1] with PX ARGV[2], the record of ours gets the new
// PX (keeping its `since`); a missing or foreign one is replaced by ARGV[3], unless that is
// empty (a handle that does not know its record).
constexpr std::string_view owner_lua = R"lua(
local function owner_is_ours(o, v)
  local r = redis.pcall("GET", o)
  return type(r) == "string" and string.sub(r, 1, #v + 1) == v .. "\n"
end
local function keep_record(o)
  if owner_is_ours(o, ARGV[1]) then
    redis.pcall("PEXPIRE", o, ARGV[2])
  elseif ARGV[3] and ARGV[3] ~= "" then
    redis.pcall("SET", o, ARGV[3], "PX", ARGV[2])
  end
end
)lua";

}  // namespace

// Acquire with owner: as acquire_script(); a grant also writes each owner record with the
// same PX, except where the record of our value is already there (a re-sync, or a retry that
// met its own leftovers): that one keeps its `since` and only gets the new PX.
const script& acquire_owner_script() {
  static const script s(with_preludes({denial_lua, owner_lua}, R"lua(
local n = #KEYS / 2
local d = denial(n)
if d then return d end
for i = 1, n do
  redis.call("SET", KEYS[i], ARGV[1], "PX", ARGV[2])
  keep_record(KEYS[n + i])
end
return n
)lua"));
  return s;
}

// Extend with owner: as extend_script(); a success also gives each owner record of ours the
// new PX, and writes ARGV[3] where the record is missing or not ours (the lock is ours, so
// ours is the true record). ARGV[3] empty (a handle that does not know its record, e.g.
// adopted): records are only prolonged.
const script& extend_owner_script() {
  static const script s(with_preludes({refusal_lua, owner_lua}, R"lua(
local n = #KEYS / 2
local r = refusal(n)
if r then return r end
for i = 1, n do
  redis.call("PEXPIRE", KEYS[i], ARGV[2])
  keep_record(KEYS[n + i])
end
return n
)lua"));
  return s;
}

namespace {

constexpr std::string_view release_owner_body = R"lua(
local n = #KEYS / 2
local deleted = 0
for i = 1, n do
  if redis.call("GET", KEYS[i]) == ARGV[1] then
    redis.call("DEL", KEYS[i])
    deleted = deleted + 1
    ANNOUNCE
  end
  if owner_is_ours(KEYS[n + i], ARGV[1]) then redis.pcall("DEL", KEYS[n + i]) end
end
return deleted
)lua";

std::string release_owner_text(bool announces) {
  std::string body(release_owner_body);
  const std::string_view mark = "ANNOUNCE";
  body.replace(body.find(mark), mark.size(),
               announces ? "announce(KEYS[i], redis.sha1hex(ARGV[1]))" : "");
  std::string text;
  if (announces)
    text.append(announce_lua);
  text.append(owner_lua);
  text.append(body);
  return text;
}

}  // namespace

// Release with owner: as release_script(); also deletes each owner record of our value
// (also where the lock key is already gone: the record would only outlive it otherwise).
const script& release_owner_script() {
  static const script s(release_owner_text(false));
  return s;
}

// As release_owner_script(), announcing like release_notify_script().
const script& release_notify_owner_script() {
  static const script s(release_owner_text(true));
  return s;
}

// Force release (async_force_release): KEYS = the n lock keys, then owner keys; ARGV[1] = n.
// Deletes every lock key that holds a string (whatever value: a key of another type is no
// lock and stays) and announces its release as an unlock does; deletes every owner key that
// holds a string. Returns, for each KEY in order, the string it held or nil.
const script& force_release_script() {
  static const script s(with_announce(R"lua(
local n = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local v = redis.pcall("GET", KEYS[i])
  if type(v) ~= "string" then v = false end
  if v then
    redis.call("DEL", KEYS[i])
    if i <= n then announce(KEYS[i], redis.sha1hex(v)) end
  end
  out[i] = v
end
return out
)lua"));
  return s;
}

// Fair mode (manager_options::fair). Per resource, besides the lock key K: a queue Q of live
// waiters (ZSET: member = the waiter's lock value, score = its ticket, chosen once by the
// waiter and sent unchanged to every node, so every node orders the same waiters the same
// way) and their leases L (ZSET: member = value, score = lease end in the server's ms). KEYS
// = K1..Kn, Q1..Qn, L1..Ln (fair_queue_key, fair_lease_key: in K's slot). Both ZSETs expire
// as a whole once no member refreshed them for a lease, so nothing outlives its waiters.
// Model: models/fair_queue.pml.
//
// Fair acquire: ARGV = value, ttl, ticket, lease ms. Drops entries whose lease ran out, adds
// or refreshes ours (idempotent: same ticket), then grants (sets every K: returns #K) only
// when every K is free or ours AND we are the head of every Q. A grant KEEPS our entry: an
// attempt granted here may still fail elsewhere (a lost reply), and a waiter that lost its
// place on the nodes that granted it could be overtaken without bound, or two waiters could
// swap heads forever (models/fair_queue.pml, variants grant-removes*). The holder's entry at
// the head costs nothing while its key denies everyone; it leaves with the holder's release,
// or when its lease runs out, cut to the TTL so a crashed holder's entry goes with its key.
// Otherwise nothing but our entry changes: -1 - PTTL of the longest-lived foreign K, or 0 when a
// foreign K never expires or only the queue stands in the way (then the head's release
// wakes us).
const script& fair_acquire_script() {
  static const script s(with_preludes({fair_lua, denial_lua}, R"lua(
local n = #KEYS / 3
local v = ARGV[1]
local lease = tonumber(ARGV[4])
local now = now_ms()
for i = 1, n do
  prune(KEYS[n + i], KEYS[2 * n + i], now)
  -- A request of a waiter that has left, arriving late (retransmitted after a partition):
  -- it must not queue the waiter again.
  if redis.call("ZSCORE", KEYS[2 * n + i], "left:" .. v) then return 0 end
end
local head = true
for i = 1, n do
  local q, l = KEYS[n + i], KEYS[2 * n + i]
  redis.call("ZADD", q, ARGV[3], v)
  redis.call("ZADD", l, now + lease, v)
  if redis.call("PTTL", q) < lease then
    redis.call("PEXPIRE", q, lease)
    redis.call("PEXPIRE", l, lease)
  end
  if redis.call("ZRANGE", q, 0, 0)[1] ~= v then head = false end
end
local d = denial(n)
if d then return d end
if not head then return 0 end
local ttl = tonumber(ARGV[2])
for i = 1, n do
  redis.call("SET", KEYS[i], v, "PX", ttl)
  if ttl < lease then redis.call("ZADD", KEYS[2 * n + i], now + ttl, v) end
end
return n
)lua"));
  return s;
}

// Fair release: KEYS as above; ARGV = value, "stay" or "leave", lease ms. "stay" keeps our
// queue entries (the release
// after a failed attempt of a waiter that retries: silent, since it stays the head wherever
// it was granted, and announcing a failed race feeds a storm), anything else to leave the
// queues too, leaving a tombstone ("left:" .. value in L, for one lease) that makes a late
// acquire of ours (a request retransmitted after a partition) deny without queueing us again.
// Deletes each K holding our value (returns how many). Unless staying, where
// that freed K, or our leaving made another waiter the head, announces it on K's release channel
// (as release_notify_script): "head:" .. SHA1 of the new head's value when waiters are queued (only
// that waiter is woken), else the SHA1 of our value.
const script& fair_release_script() {
  static const script s(with_preludes({announce_lua, fair_lua}, R"lua(
local n = #KEYS / 3
local v = ARGV[1]
local stay = ARGV[2] == "stay"
local lease = tonumber(ARGV[3]) or 2000
local now = now_ms()
local deleted = 0
for i = 1, n do
  local key, q, l = KEYS[i], KEYS[n + i], KEYS[2 * n + i]
  local changed = false
  if redis.call("GET", key) == v then
    redis.call("DEL", key)
    deleted = deleted + 1
    changed = true
  end
  prune(q, l, now)
  if not stay then
    local was_head = redis.call("ZRANGE", q, 0, 0)[1] == v
    if redis.call("ZREM", q, v) == 1 and was_head then changed = true end
    redis.call("ZREM", l, v)
    -- A tombstone for one lease: a late acquire of ours must not queue us again.
    redis.call("ZADD", l, now + lease, "left:" .. v)
    if redis.call("PTTL", l) < lease then redis.call("PEXPIRE", l, lease) end
  end
  if changed and not stay then
    local h = redis.call("ZRANGE", q, 0, 0)[1]
    if h then announce(key, "head:" .. redis.sha1hex(h)) else announce(key, redis.sha1hex(v)) end
  end
end
return deleted
)lua"));
  return s;
}

// Fencing, phase 1 (the fenced acquire): KEYS = the n lock keys, then their n counter keys
// (fencing_counter_key); ARGV = value, ttl. As the acquire script, and each granted key's
// counter is raised by one (INCR: durable, never expiring; first, so that a counter key holding
// something else fails the script before a lock key was set, and a counter raised for
// nothing is harmless). Returns the largest counter after
// the increments (>= 1), or when a key holds another value (nothing changed then) the same
// denial as the acquire script: -1 - PTTL of the longest-lived foreign key, 0 when one never
// expires.
const script& fenced_acquire_script() {
  static const script s(with_preludes({denial_lua}, R"lua(
local n = #KEYS / 2
local d = denial(n)
if d then return d end
local t = 0
for i = 1, n do
  local c = redis.call("INCR", KEYS[n + i])
  if c > t then t = c end
end
for i = 1, n do
  redis.call("SET", KEYS[i], ARGV[1], "PX", ARGV[2])
end
return t
)lua"));
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

namespace {

// `resource` + `suffix`, in the resource's Cluster slot whenever the name allows it. A key
// with a hash tag ({...} with something inside) keeps it when a suffix is added; a key
// without one hashes whole, and wrapping it in braces makes it the tag, which only works when
// it contains no '}' (such names need a hash tag of their own on Cluster nodes). The release
// script computes release channels with the same rule in Lua.
std::string in_slot_of(std::string_view resource, std::string_view suffix) {
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

}  // namespace

std::string fencing_counter_key(std::string_view resource) {
  return in_slot_of(resource, ":redlock-fencing");
}

std::string release_channel(std::string_view resource) {
  return in_slot_of(resource, ":redlock-release");
}

std::string fair_queue_key(std::string_view resource) {
  return in_slot_of(resource, ":redlock-queue");
}

std::string fair_lease_key(std::string_view resource) {
  return in_slot_of(resource, ":redlock-lease");
}

std::string owner_key(std::string_view key) {
  return in_slot_of(key, ":redlock-owner");
}

}  // namespace redlock::detail

// The "nothing left behind" checker (test-catalogue.md, "Nothing left behind"): after an
// operation completed with a failure, a cancellation or an unlock, and its cleanup has had the
// documented bound to settle, no reachable server holds that operation's value -- under its
// resource keys, in any database, as seen by an administrator -- nor a fair-mode queue or
// lease entry of it (fair_queue_key / fair_lease_key of its resources). Entries of operations
// still waiting are allowed: list only the values of completed operations. Once every client
// of the resources is done (leftover_probe::all_done), no queue or lease key may exist at all
// and nobody may be subscribed to the resources' release channels (PUBSUB SHARDNUMSUB and
// NUMSUB are 0: no wake-up subscription left).
//
//   leftover_probe p{{admin_of(server)}, {value}, {"resource"}};
//   auto r = check_nothing_left_behind({p}, completed_at, cleanup_bound(request_timeout));
//   EXPECT_TRUE(r.clean()) << r.to_string();
//
// It talks to the servers over its own blocking hiredis connections, independently of the code
// under test, and looks in databases 0..15 (a client whose SELECT failed must not have written
// into db 0 either). The fault suite and the soak share it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace redlock::test {

class redis_server;

/// The cleanup bound, in one place: the release after a failed or cancelled acquire, and after
/// an unlock or a quit, is retried on every node that has not confirmed it; each retry costs at
/// most a request timeout plus a reconnect backoff, so the bound is a fixed number of request
/// timeouts plus a second of slack for reconnects and scheduling. The README's Guarantees state
/// the same bound.
inline constexpr int cleanup_bound_request_timeouts = 8;
inline constexpr std::chrono::milliseconds cleanup_bound_slack{1000};
constexpr std::chrono::milliseconds cleanup_bound(std::chrono::milliseconds request_timeout) {
  return request_timeout * cleanup_bound_request_timeouts + cleanup_bound_slack;
}

/// How the checker reaches one server: as an administrator, never as the client under test.
struct admin_access {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string username;  ///< empty: the default user
  std::string password;  ///< empty: no AUTH
  std::string label() const { return host + ":" + std::to_string(port); }
};

/// The default user of a test server (with its requirepass, if any).
admin_access admin_of(const redis_server& s, std::string password = {});

/// What one or more operations may have left behind on a set of servers.
struct leftover_probe {
  std::vector<admin_access> servers;
  /// Values the operations sent (lock values). Empty: any value under `keys` counts.
  std::vector<std::string> values;
  /// The operations' resource keys, looked up in every database.
  std::vector<std::string> keys;
  /// Resources (names, not keys) whose fair-mode queue and lease ZSETs are looked at in every
  /// database: a member equal to one of `values` is a leftover (empty `values`: any member).
  std::vector<std::string> resources;
  /// Every client of `resources` is done: then any queue or lease key of them is a leftover,
  /// whatever its members, and so is any subscriber to their release channels.
  bool all_done = false;
};

struct leftover {
  enum class what {
    key,          ///< a lock key holding the value
    queue_entry,  ///< a member of a queue or lease ZSET (key = the ZSET, value = the member)
    queue_key,    ///< all_done: a queue or lease ZSET still there (value = its members)
    subscription  ///< all_done: subscribers to a release channel (key = the channel)
  };
  what kind = what::key;
  std::string server;  ///< host:port
  int db = 0;
  std::string key;
  std::string value;
  long long pttl_ms = 0;  ///< the key's remaining TTL on that server (-1: none)
  std::string detail;     ///< e.g. a queue entry's lease relative to the server's clock
};

struct leftover_report {
  std::vector<leftover> found;
  std::vector<std::string> unreachable;  ///< "host:port: why" (not checked)
  std::size_t servers_checked = 0;
  std::size_t keys_scanned = 0;        ///< keys looked at by the value scan, all databases
  std::size_t queues_looked_at = 0;    ///< queue and lease ZSETs read (existing or not)
  std::size_t channels_looked_at = 0;  ///< release channels whose subscribers were counted
  /// Set by check_nothing_left_behind: how the polls before the bound went, e.g.
  /// "present at +0 ms, gone at +412 ms, present again at +905 ms".
  std::string history;
  bool clean() const noexcept { return found.empty(); }
  /// One line per leftover ("127.0.0.1:7001 db 0: key 'k' = 'v' (PTTL 29120 ms)"), then the
  /// unreachable servers and the history.
  std::string to_string() const;
};

/// Looks once, now: every key of `p.keys` in every database (holding one of `p.values`, or any
/// value if `p.values` is empty), every string key of every database whose value is one
/// of `p.values`, the queue and lease ZSETs of `p.resources` in every database and, when
/// `p.all_done`, the subscribers of their release channels. A server that cannot be reached within
/// `io_timeout` is listed as unreachable, not as clean. Never throws.
leftover_report find_leftovers(const leftover_probe& p,
                               std::chrono::milliseconds io_timeout = std::chrono::seconds(2));

/// Waits until `bound` has passed since `completed_at` -- polling the probes' keys meanwhile
/// for the history -- then looks one final time; the final look is the verdict. Bounded: it
/// returns at `completed_at + bound` plus the time of the final look.
leftover_report check_nothing_left_behind(
    const std::vector<leftover_probe>& probes, std::chrono::steady_clock::time_point completed_at,
    std::chrono::milliseconds bound,
    std::chrono::milliseconds io_timeout = std::chrono::seconds(2));

}  // namespace redlock::test

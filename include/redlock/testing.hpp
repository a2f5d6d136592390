// redlock::testing: fake Redis deployments for unit-testing code that uses redlock.
//
// Link the separate `redlock::testing` target (never part of the main library). A
// fake_deployment is N in-memory servers that run the semantics of redlock's own acquire,
// extend and release scripts, with key TTLs measured on a virtual_clock that the test
// advances. Each server can be told to fail: be down, never answer, answer late, answer with
// an error, or lose its keys (a restart without persistence).
//
//   asio::io_context io;
//   redlock::testing::fake_deployment d(io.get_executor(), 3);
//   redlock::lock_manager m(io.get_executor(), d.nodes(), opts);
//   ... m.async_lock({"job"}, 1s, ...) ...
//   d.clock().advance(1s);  // every key of that lock expires on every server
//
// Time: only the keys' TTLs follow the virtual clock. The lock manager's own timers (retry
// delay, request timeout, the lock's local validity, a hold's extension schedule) still run
// on real time (std::chrono::steady_clock), so set small retry_delay / retry_jitter /
// request_timeout in tests and run the io_context until the outcome you wait for. Advancing
// the virtual clock does not shorten a lock's local validity: after
// `advance(ttl)` the lock is gone on the servers (another manager can take it, an extend
// fails with errc::lock_lost) while the first handle still believes it is valid until its
// real-time deadline passes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "redlock/node.hpp"
#include "redlock/reply.hpp"

namespace redlock::testing {

/// A manually advanced clock for the fake servers' key TTLs. Starts at zero.
/// Thread safety: safe (now() and advance() may race; each call is atomic).
class virtual_clock {
 public:
  using duration = std::chrono::milliseconds;
  /// Time since the clock was created, as advanced by advance().
  duration now() const noexcept { return duration(ms_.load()); }
  /// Moves the clock forward; keys whose TTL has run out are gone from then on.
  /// Precondition: d >= 0.
  void advance(duration d) noexcept { ms_.fetch_add(d.count()); }

 private:
  std::atomic<duration::rep> ms_{0};
};

/// Which of redlock's scripts a call ran, recognised by the script's SHA1.
/// fenced_acquire and confirm are the two phases of a fenced acquire
/// (manager_options::fencing); their KEYS are the lock keys, then one counter key each.
/// fair_acquire is the acquire of fair mode (manager_options::fair): KEYS = lock keys, their
/// queues, their leases; ARGV = value, ttl, ticket, lease ms. Fair mode's release is a
/// `release` whose KEYS are laid out the same way (call::fair). With owner metadata
/// (manager_options::owner) acquire, extend and release run their owner variants (call::owner).
/// force_release is async_force_release's: KEYS = lock keys, then owner keys; ARGV = the
/// number of lock keys.
enum class script_kind {
  acquire,
  extend,
  release,
  fenced_acquire,
  confirm,
  other,
  fair_acquire,
  force_release
};

/// One request a fake server received.
struct call {
  script_kind kind = script_kind::other;
  std::vector<std::string> keys;
  std::vector<std::string> args;  ///< ARGV: the lock value, then the TTL in milliseconds
                                  ///< (confirm: the candidate token)
  /// release: the announcing script (manager_options::wakeup), which publishes each deleted
  /// key on its release channel to the server's notifiers.
  bool announces = false;
  /// fair_acquire, or a release of a fair lock: KEYS = lock keys, queues, leases.
  bool fair = false;
  /// The owner variant of acquire, extend or release: KEYS = lock keys, then their owner
  /// record keys; ARGV[3] = the owner record.
  bool owner = false;
};

/// How a fake server answers one request. Build with the static functions.
struct step {
  std::error_code ec;                  ///< nonempty: the request fails with this code
  redlock::reply r;                    ///< the reply (when !use_store); error text with `ec`
  std::chrono::milliseconds delay{0};  ///< answer after this much REAL time (an asio timer)
  bool never = false;      ///< never answer (the handler runs with errc::closed at close())
  bool use_store = false;  ///< run the script on the key store

  /// Runs the script on the key store (the default behaviour), after `d`.
  static step store(std::chrono::milliseconds d = {});
  /// Answers with this integer without touching the store.
  static step integer(long long v, std::chrono::milliseconds d = {});
  /// Fails with `ec`; a nonempty `message` is passed as an error reply's text.
  static step error(std::error_code ec, std::string message = {}, std::chrono::milliseconds d = {});
  /// An error reply from the server (errc::server_error with `message`).
  static step error_reply(std::string message = "ERR injected by redlock::testing");
  /// A connection failure (errc::connect_failed), as from a server that is down.
  static step down();
  /// No answer at all: the lock manager's request_timeout makes it a "timeout" vote.
  static step silence();
};

/// An in-memory Redis server that understands redlock's scripts (the fencing counters are
/// keys without a TTL, as on a real server). Faults and scripted
/// answers apply to every node (connection) attached to it.
/// Thread safety: safe (every member locks an internal mutex).
class fake_server {
 public:
  /// `clock` is shared with the other servers of a deployment; null makes a private one.
  explicit fake_server(std::shared_ptr<virtual_clock> clock = nullptr);

  virtual_clock& clock() noexcept { return *clock_; }

  // --- faults: each replaces the behaviour for every kind of call until the next one ---
  /// Every request fails at once with errc::connect_failed.
  void go_down();
  /// Requests are never answered (the manager counts a timeout vote for each).
  void stop_answering();
  /// Requests are served from the store after `d` of real time.
  void delay_answers(std::chrono::milliseconds d);
  /// Every request gets an error reply (errc::server_error with `message`).
  void answer_with_error(std::string message = "ERR injected by redlock::testing");
  /// Back to normal: requests are served from the store at once.
  void recover();
  /// Forgets every key, as a restart without persistence does. The server stays up.
  void lose_keys();
  /// Release announcements are dropped (true) instead of delivered to notifiers, as when
  /// the subscriber connection is down; the releases themselves still happen.
  void drop_announcements(bool drop);

  // --- scripted answers ---
  /// Queues a step for the next call of `kind` (FIFO); queued steps come before the fallback.
  void push(script_kind kind, step s);
  /// The behaviour for calls of `kind` with no queued step (default: step::store()).
  void set_fallback(script_kind kind, step s);

  // --- inspection and arrangement ---
  /// Live keys: key -> value (keys whose TTL ran out on the virtual clock are absent).
  std::map<std::string, std::string> store() const;
  /// The value under `key`, if it is live.
  std::optional<std::string> value(const std::string& key) const;
  /// Time left on `key` by the virtual clock; nullopt when absent or without a TTL.
  std::optional<std::chrono::milliseconds> ttl(const std::string& key) const;
  /// Sets `key` (no TTL unless `ttl` is given), e.g. a lock held by someone else.
  void set_key(const std::string& key, const std::string& value,
               std::optional<std::chrono::milliseconds> ttl = std::nullopt);
  /// Every request received so far, in order.
  std::vector<call> calls() const;
  /// How many requests of `kind` were received.
  std::size_t count(script_kind kind) const;
  /// Fair mode: the live entries of `resource`'s wait queue, head first (lock values).
  std::vector<std::string> queue(const std::string& resource) const;
  /// Notifiers subscribed to `channel` now (as PUBSUB SHARDNUMSUB).
  std::size_t subscribers(const std::string& channel) const;
  /// Release announcements delivered so far (one per notifier reached).
  std::size_t announcements() const;

  /// Records `c` and decides how to answer it (the store is updated for step::store()).
  /// Used by fake_node; a custom node can call it too.
  step handle(const call& c);

 private:
  struct entry {
    std::string value;
    std::optional<std::chrono::milliseconds> expires_at;  // on clock_
  };
  friend class fake_node;

 public:
  struct subscriber;  ///< internal: one notifier's state

 private:
  using announcements_t = std::vector<std::pair<std::string, std::string>>;  // channel, payload
  step handle_locked(const call& c, announcements_t& announced);
  redlock::reply run_store(const call& c, announcements_t& announced);
  redlock::reply run_fair(const call& c, announcements_t& announced);   // mutex_ held
  redlock::reply run_owner(const call& c, announcements_t& announced);  // mutex_ held
  redlock::reply run_force(const call& c, announcements_t& announced);  // mutex_ held
  void purge_expired();                                                 // mutex_ held
  void set_all(const step& s);
  void announce(const announcements_t& messages);
  void attach(const std::shared_ptr<subscriber>& s);

  std::shared_ptr<virtual_clock> clock_;
  mutable std::mutex mutex_;
  std::map<script_kind, std::deque<step>> queued_;
  std::map<script_kind, step> fallback_;
  std::vector<call> calls_;
  std::map<std::string, entry> keys_;
  std::vector<std::weak_ptr<subscriber>> subscribers_;
  struct queued {
    double ticket = 0;
    std::chrono::milliseconds lease_end{};  // on clock_
  };
  // Fair mode: queue key -> value -> entry (the lease ZSET of the real script folded in).
  std::map<std::string, std::map<std::string, queued>> queues_;
  // Fair mode: queue key -> value that left -> end of its tombstone (a late acquire of it is
  // denied without queueing it again).
  std::map<std::string, std::map<std::string, std::chrono::milliseconds>> left_;
  std::vector<std::string> live_queue(const std::string& queue_key);  // mutex_ held; prunes
  bool drop_announcements_ = false;
  std::size_t announcements_ = 0;
};

/// A redlock::node (one connection) to a fake_server. Each lock_manager needs its own nodes
/// (a manager closes its nodes when it quits); nodes of one server share its keys and faults.
/// Thread safety: safe.
class fake_node : public node, public std::enable_shared_from_this<fake_node> {
 public:
  /// Handlers run on `ex`. Pass `server` to share one; null makes a private server.
  fake_node(asio::any_io_executor ex, std::string id,
            std::shared_ptr<fake_server> server = nullptr);

  const std::string& id() const noexcept override { return id_; }
  void async_eval(const script& s, std::span<const std::string> keys,
                  std::span<const std::string> args, reply_handler handler) override;
  /// Fails requests that were never answered with errc::closed; later requests fail with it.
  void close() override;
  /// Answers with the identities set by set_identity() (default: none, i.e. unknown).
  void async_identify(identity_handler handler) override;
  void set_identity(std::vector<std::string> ids);
  /// A notifier on the server: release announcements of the announcing script reach it, a
  /// `subscribed` event follows each subscribe. Closed with the node.
  std::shared_ptr<notifier> open_notifier(notification_handler on_event) override;

  fake_server& server() noexcept { return *server_; }
  const std::shared_ptr<fake_server>& shared_server() const noexcept { return server_; }

  bool closed() const;
  /// Requests whose handler has not run yet.
  std::size_t in_flight() const;
  /// in_flight() at the first close(), or -1 if never closed.
  long long in_flight_at_close() const;

 private:
  void deliver(reply_handler h, std::error_code ec, redlock::reply r,
               std::chrono::milliseconds delay);

  asio::any_io_executor ex_;
  std::string id_;
  std::shared_ptr<fake_server> server_;
  mutable std::mutex mutex_;
  std::vector<std::string> identity_;
  std::vector<reply_handler> silent_;
  std::vector<std::weak_ptr<notifier>> notifiers_;
  bool closed_ = false;
  std::size_t in_flight_ = 0;
  long long in_flight_at_close_ = -1;
};

/// N fake servers on one virtual clock, named "<prefix>0", "<prefix>1", ...
/// Thread safety: distinct objects: safe. Shared objects: safe after construction.
class fake_deployment {
 public:
  fake_deployment(asio::any_io_executor ex, std::size_t n, std::string prefix = "fake");

  virtual_clock& clock() noexcept { return *clock_; }
  std::size_t size() const noexcept { return servers_.size(); }
  /// Server `i` (0-based), for faults and inspection. Precondition: i < size().
  fake_server& server(std::size_t i) { return *servers_.at(i); }
  fake_server& operator[](std::size_t i) { return server(i); }

  /// New nodes, one per server, in order: what a lock_manager takes. Call once per manager.
  std::vector<std::shared_ptr<redlock::node>> nodes();
  /// How many servers hold `value` under `key` right now.
  std::size_t count_holding(const std::string& key, const std::string& value) const;

 private:
  asio::any_io_executor ex_;
  std::string prefix_;
  std::shared_ptr<virtual_clock> clock_;
  std::vector<std::shared_ptr<fake_server>> servers_;
};

}  // namespace redlock::testing

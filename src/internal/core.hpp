// Private: the sans-I/O decision core of the lock manager.
//
// Votes, quorum, validity arithmetic, the retry schedule and the per-operation state machine
// live here as plain C++: no Asio, no threads, no clock reads. Time enters only as steady-clock
// time points passed in by the caller, and randomness through an injected function, so every
// rule is unit-tested step by step with literal inputs. src/manager/lock_manager.cpp is a thin Asio
// loop over the actions this machine returns.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "redlock/reply.hpp"
#include "redlock/report.hpp"

namespace redlock::detail::core {

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;
using duration = clock::duration;
using std::chrono::milliseconds;

/// Largest TTL accepted: fits the wire as a 32-bit integer count of milliseconds (~24.8
/// days), far from any overflow in steady-clock arithmetic.
inline constexpr milliseconds max_ttl{2'147'483'647};

/// Nodes needed for a decision: a strict majority.
constexpr std::size_t quorum_of(std::size_t nodes) noexcept {
  return nodes / 2 + 1;
}

/// round(ttl × drift_factor) + 2 ms: how much of the TTL is set aside for server clock
/// drift and expiry granularity.
milliseconds drift_margin(milliseconds ttl, double drift_factor) noexcept;

/// The instant until which a lock whose winning attempt began at `attempt_start` is valid:
/// attempt_start + ttl − drift. Equivalent to now + validity(...) for any now.
time_point validity_deadline(milliseconds ttl, double drift_factor,
                             time_point attempt_start) noexcept;

/// ttl − (now − attempt_start) − drift. Only steady-clock points are inputs, so a wall-clock
/// jump cannot change it.
duration validity(milliseconds ttl, double drift_factor, time_point attempt_start,
                  time_point now) noexcept;

/// delay ± jitter with the offset uniform over [−jitter, +jitter] (microsecond steps) drawn
/// from `random`; never negative.
duration jittered_delay(milliseconds delay, milliseconds jitter, std::uint64_t random) noexcept;

/// How long a waiter woken by an announced release defers its attempt, given how long it
/// has waited (`age`, since its first attempt): spread × τ / (τ + age), τ = 5 × spread. Every
/// waiter of every manager is woken by a release; deferring the younger ones lets the one
/// that waited longest try first, alone (fewer split votes at N >= 3, and waits ordered
/// roughly by age instead of by luck), while an old waiter loses almost nothing.
duration woken_delay(duration spread, duration age) noexcept;

/// How many attempts an operation may make.
struct retry_policy {
  int retry_count = 10;  ///< attempts after the first; −1 = unlimited
  milliseconds delay{200};
  milliseconds jitter{100};

  /// True when another attempt is allowed after `attempts_made` attempts.
  bool may_retry(int attempts_made) const noexcept {
    return retry_count < 0 || attempts_made <= retry_count;
  }
};

/// The state of one vote count: quorum reached, quorum impossible, or not yet known.
enum class decision { pending, reached, impossible };

/// Counts votes of N nodes and decides as soon as the outcome is certain.
class tally {
 public:
  explicit tally(std::size_t nodes) noexcept : nodes_(nodes), quorum_(quorum_of(nodes)) {}

  void reset() noexcept { granted_ = against_ = 0; }
  /// Keeps the granted votes (for rounds that re-ask only failed nodes), drops the rest.
  void reset_against() noexcept { against_ = 0; }
  void grant() noexcept { ++granted_; }
  void reject() noexcept { ++against_; }

  std::size_t nodes() const noexcept { return nodes_; }
  std::size_t quorum() const noexcept { return quorum_; }
  std::size_t granted() const noexcept { return granted_; }
  std::size_t against() const noexcept { return against_; }

  decision state() const noexcept {
    if (granted_ >= quorum_)
      return decision::reached;
    if (nodes_ - against_ < quorum_)
      return decision::impossible;
    return decision::pending;
  }

 private:
  std::size_t nodes_;
  std::size_t quorum_;
  std::size_t granted_ = 0;
  std::size_t against_ = 0;
};

/// The operations, and `confirm`: the script of a fenced acquire's second round trip (only as
/// script_of(acquire, purpose::confirm); never an operation's kind).
enum class op_kind : std::uint8_t { acquire, extend, release, confirm };

/// Why an operation sends a request to a node.
enum class purpose : std::uint8_t {
  primary,  ///< the operation's own script (acquire, extend or release) in an attempt
  release,  ///< the release after a failed acquire attempt
  resync,   ///< extend: set-if-absent on a node that lost our keys
  cleanup,  ///< a release retried after the operation completed
  confirm,  ///< fenced acquire: phase 2, confirming the candidate token (see quorum_machine)
};

/// The script a request runs: the operation's own for primary, set-if-absent (the acquire
/// script) for resync, the release script otherwise.
constexpr op_kind script_of(op_kind op, purpose p) noexcept {
  switch (p) {
    case purpose::primary:
      return op;
    case purpose::resync:
      return op_kind::acquire;
    case purpose::confirm:
      return op_kind::confirm;
    case purpose::release:
    case purpose::cleanup:
      break;
  }
  return op_kind::release;
}

/// True when the request can only remove our keys (releases are never held back).
constexpr bool removes_only(op_kind op, purpose p) noexcept {
  return script_of(op, p) == op_kind::release;
}

/// True when the request may store our value on the node (so the node may hold it after).
constexpr bool may_store(op_kind op, purpose p) noexcept {
  return script_of(op, p) == op_kind::acquire;
}

/// The nodes an acquire of one value was ever sent to: only they can hold it, so only they
/// need a release, and extend re-syncs only them (the set never grows after the acquire).
/// Nodes from index 64 on always count as written; all() is right for a handle of unknown
/// history (adopt()).
class written_set {
 public:
  static constexpr written_set none() noexcept { return written_set(0); }
  static constexpr written_set all() noexcept { return written_set(~std::uint64_t{0}); }
  constexpr explicit written_set(std::uint64_t bits) noexcept : bits_(bits) {}

  constexpr bool may_hold(std::size_t i) const noexcept {
    return i >= 64 || ((bits_ >> i) & 1U) != 0;
  }
  constexpr void mark(std::size_t i) noexcept {
    if (i < 64)
      bits_ |= std::uint64_t{1} << i;
  }
  constexpr std::uint64_t bits() const noexcept { return bits_; }

 private:
  std::uint64_t bits_;
};

/// What to do with one request to one node.
enum class route : std::uint8_t {
  send,            ///< send it
  answer_absent,   ///< do not send; answer "none of our keys there" (certain: never written)
  answer_lagging,  ///< do not send; answer errc::node_lagging (see backlog)
  skip,            ///< do not send and expect no answer (a re-sync to a node never written)
};

/// Routes a request with `purpose` p of an `op` operation to a node, given whether the node
/// may hold our value and whether it is lagging now. A release to a node that was never
/// written cannot find anything, and sending it would only feed a node skipped for lagging;
/// acquires and extends to a lagging node fail at once rather than deepen its queue, while
/// releases always go out (they only remove keys); a re-sync goes only where an acquire once
/// went, so that a key it sets can always be found by the release.
constexpr route route_request(op_kind op, purpose p, bool may_hold, bool lagging) noexcept {
  if (removes_only(op, p))
    return may_hold ? route::send : route::answer_absent;
  if (p == purpose::resync && !may_hold)
    return route::skip;
  return lagging ? route::answer_lagging : route::send;
}

/// One node's answer to one request, already interpreted for the operation.
enum class answer : std::uint8_t {
  ok,       ///< acquired / extended every key, or (release) deleted at least one key
  absent,   ///< release: none of our keys were there any more
  foreign,  ///< a key holds another value
  missing,  ///< extend: no foreign value, but some of our keys are gone (e.g. node restart)
  stale,    ///< confirm: a fencing counter moved past our candidate token (a later phase 1)
  error,    ///< error reply, connection failure or an unexpected reply
  timeout,  ///< no answer within the node deadline
};

/// The report's vote for an answer: ok/absent → granted, foreign/missing/stale → denied.
vote to_vote(answer a) noexcept;

/// Interprets a node's completion for `kind` on a request with `nkeys` keys. Sets `ec_out`
/// for error and timeout answers (errc::protocol_error for an unexpected reply).
answer interpret(op_kind kind, const std::error_code& ec, const reply& r, std::size_t nkeys,
                 std::error_code& ec_out) noexcept;
/// As above for the fenced acquire (phase 1: `counter` gets the largest counter of a grant)
/// when `fenced`, and for op_kind::confirm; otherwise the same as the overload above.
/// An acquire's denial may say how long the holder's keys still live (the acquire scripts
/// answer -1 - PTTL, see scripts.cpp); `holder_ttl`, when given, gets it, or -1 when the
/// answer is not such a denial or the holder's keys never expire.
answer interpret(op_kind kind, bool fenced, const std::error_code& ec, const reply& r,
                 std::size_t nkeys, std::error_code& ec_out, std::uint64_t& counter,
                 milliseconds* holder_ttl = nullptr) noexcept;

/// What the machine knows about one node in the current attempt.
struct node_state {
  vote outcome = vote::pending;
  answer ans = answer::error;
  bool in_round = false;  ///< asked in the current attempt
  bool done = false;      ///< release: no longer holds our value (kept across rounds)
  bool resynced = false;  ///< extend: set-if-absent already sent
  std::error_code ec;
  std::string message;  ///< server message of an error reply
  duration latency{};
  std::uint64_t counter = 0;  ///< fenced acquire, phase 1: the counter of a grant
  /// acquire, denied: when the holder's keys there expire (the reply's time plus the TTL
  /// the script read, plus 1 ms); time_point::max() when unknown.
  time_point holder_expiry = time_point::max();
};

/// Everything an operation needs to decide, fixed at its start.
struct op_config {
  op_kind kind = op_kind::acquire;
  std::size_t nodes = 0;
  milliseconds ttl{0};  ///< acquire/extend: the TTL asked for
  double drift_factor = 0.01;
  retry_policy retry;
  milliseconds node_timeout{200};  ///< per-attempt node deadline: min(request_timeout, ttl)
  time_point lock_deadline{};      ///< extend/release: validity deadline of the lock held
  bool wait_all = false;  ///< release: decide only once every asked node answered or timed out
  bool fenced = false;    ///< acquire: two phases and a fencing token (see quorum_machine)
  /// acquire: the total wait budget's end (call_options::max_wait): no attempt starts at or
  /// after it, and a wait that would end later ends there with the last attempt's error.
  time_point wait_until = time_point::max();
  /// acquire in fair mode: the queue entries must be refreshed (by an attempt) at least this
  /// often; a failed or cancelled acquire always ends with a release (it leaves the queues).
  bool fair = false;
  duration refresh_every = duration::max();
  /// acquire: how long a waiter woken while waiting may defer its attempt (see
  /// woken_delay()); zero: at once.
  duration wake_spread = duration::zero();
};

/// An input to the machine.
struct event {
  enum class type : std::uint8_t {
    start,            ///< the operation begins
    reply,            ///< node `node` answered request `attempt`
    attempt_timeout,  ///< the node deadline of the current attempt passed
    retry_timer,      ///< the retry delay passed
    cancel,           ///< stop now; complete with `ec`
    next,             ///< the previous action was performed; what next?
    wake,             ///< acquire: a release of one of our resources was announced
  };
  type kind = type::next;
  time_point now{};
  std::size_t node = 0;
  std::uint32_t attempt = 0;
  answer ans = answer::error;
  std::error_code ec;
  std::string_view message;   ///< reply: the server's error message (copied by the machine)
  std::uint64_t counter = 0;  ///< reply to a fenced phase 1: the counter of a grant
  /// reply to an acquire that was denied: the holder's remaining TTL there; negative: unknown
  milliseconds holder_ttl{-1};

  static event start(time_point now) {
    event e;
    e.kind = type::start;
    e.now = now;
    return e;
  }
  static event reply(std::size_t node, std::uint32_t attempt, answer a, std::error_code ec,
                     time_point now, std::uint64_t counter = 0) {
    event e;
    e.kind = type::reply;
    e.now = now;
    e.node = node;
    e.attempt = attempt;
    e.ans = a;
    e.ec = ec;
    e.counter = counter;
    return e;
  }
  static event attempt_timeout(time_point now) {
    event e;
    e.kind = type::attempt_timeout;
    e.now = now;
    return e;
  }
  static event retry_timer(time_point now) {
    event e;
    e.kind = type::retry_timer;
    e.now = now;
    return e;
  }
  static event cancel(std::error_code ec, time_point now) {
    event e;
    e.kind = type::cancel;
    e.now = now;
    e.ec = ec;
    return e;
  }
  static event wake(time_point now) {
    event e;
    e.kind = type::wake;
    e.now = now;
    return e;
  }
  static event next() { return {}; }
};

/// An output of the machine: what the driver must do now. After doing it, the driver feeds
/// event::next() until it gets `idle`.
struct action {
  enum class type : std::uint8_t {
    idle,         ///< nothing to do until the next external event
    send,         ///< send the operation's script to every node with in_round set; arm the
                  ///< attempt timer for `delay`
    confirm,      ///< fenced acquire: send the confirm (ARGV value, token()) to every node
                  ///< with in_round set; arm the attempt timer for `delay`
    release_all,  ///< send the release script to all nodes (fire and forget)
    resync,       ///< send set-if-absent (acquire script, new ttl) to `node`
    wait,         ///< arm the retry timer for `delay`
    complete,     ///< complete the operation with `ec` (success when empty)
  };
  type kind = type::idle;
  std::size_t node = 0;
  duration delay{};
  std::error_code ec;
};

using random_source = std::uint64_t (*)();

/// The per-operation state machine of acquire, extend and release.
///
/// acquire: all nodes at once; success when a quorum granted and validity remains at that
///   moment; any failure sends release to all nodes, then retries after delay ± jitter.
/// extend: refused (lock_expired) once the lock's deadline passed; never releases; retries
///   only while the old deadline lies beyond the retry; after success re-sets keys (only if
///   absent) on nodes that reported them missing, while the new validity remains.
/// release: succeeds once a quorum no longer holds our value; a round ends when every asked
///   node answered or timed out; retries ask only the nodes that failed; an already expired
///   lock gets exactly one round and completes with lock_expired.
/// fenced acquire (config.fenced): phase 1 is the fenced acquire script, each grant carrying
///   the node's counter; once a quorum granted (and validity remains), the candidate token t
///   is the largest counter among the grants counted, and phase 2 sends confirm(value, t) to
///   exactly those nodes (in the same attempt: a fresh attempt id, attempt_start unchanged).
///   A quorum of confirms completes the acquire with token t, if validity (counted from the
///   phase-1 start) remains; otherwise the attempt fails like any other (release, retry).
///   Property: README "Fencing"; model: models/fencing.pml; replays: tests/unit/fencing_test.cpp.
/// waiting (acquire): after a failed attempt the next one starts at the earliest of
///   - the poll: delay ± jitter after the last *counted* attempt. Only attempts that start at
///     or after the poll instant count against retry_count, so that a waiter gives up after
///     as long as it would when only polling, however many extra attempts it made;
///   - the holders' expiry: the instant at which a quorum can be free, counting the nodes that
///     granted this attempt as free and each denying node as free once the holder's TTL it
///     reported has passed (+1 ms); never when too few reported one;
///   - a wake (event::wake: a release was announced): while waiting, after woken_delay() of
///     config.wake_spread and the time waited so far (at once with a zero spread); during an
///     attempt it is remembered, and a failure of that attempt retries at once. A woken or
///     uncounted attempt that failed for failing nodes (quorum_unreachable) is retried after
///     a backoff doubling from node_timeout (never later than the poll).
///   - fair mode: refresh_every after the attempt, to keep the queue entries alive.
///   Attempts started by the last three are not counted. Nothing starts at or after
///   config.wait_until: a wait that would end later ends there with the last error.
/// Memory: the node vector is sized once; only counts and the last attempt survive retries.
class quorum_machine {
 public:
  quorum_machine(const op_config& config, random_source random);

  action resume(const event& e);

  const op_config& config() const noexcept { return config_; }
  std::size_t quorum() const noexcept { return tally_.quorum(); }
  int attempts() const noexcept { return attempts_; }
  /// Identifies the current attempt's requests; replies to older attempts are ignored.
  std::uint32_t attempt_id() const noexcept { return attempt_id_; }
  time_point attempt_start() const noexcept { return attempt_start_; }
  /// Validity deadline of a successful acquire or extend.
  time_point deadline() const noexcept { return deadline_; }
  /// Fenced acquire: the candidate token while confirming, the token once it succeeded; 0
  /// otherwise.
  std::uint64_t token() const noexcept { return token_; }
  /// Fenced acquire: phase 2 of the current attempt is in progress (or decided it).
  bool confirming() const noexcept { return confirming_; }
  bool finished() const noexcept { return phase_ == phase::done || phase_ == phase::settled; }
  std::size_t released() const noexcept { return released_; }
  std::size_t absent() const noexcept { return absent_; }
  const std::vector<node_state>& nodes() const noexcept { return nodes_; }
  /// Extend: a later operation on the same value (an unlock, another extend) has started, so
  /// no re-sync is sent from now on: a late "missing" answer must not bring back a key that
  /// an unlock removed.
  void stop_resyncs() noexcept { resyncs_stopped_ = true; }

 private:
  enum class phase : std::uint8_t { init, attempting, waiting, settled, done };

  action begin_round(time_point now, bool only_not_done);
  action on_reply(const event& e);
  action on_attempt_timeout(const event& e);
  action on_retry_timer(const event& e);
  action on_cancel(const event& e);
  action on_wake(const event& e);
  action evaluate(time_point now);
  action begin_confirm(time_point now);
  action fail(std::error_code code, time_point now);
  action finish(std::error_code code, time_point now);
  action next();
  void record(std::size_t i, answer a, std::error_code ec, std::string_view message,
              time_point now);
  std::error_code against_code() const noexcept;
  time_point quorum_free_at() const noexcept;
  action schedule(time_point at, time_point now);

  op_config config_;
  random_source random_;
  tally tally_;
  std::vector<node_state> nodes_;
  phase phase_ = phase::init;
  int attempts_ = 0;
  int counted_ = 0;                         ///< attempts that count against retry_count
  time_point poll_at_ = time_point::min();  ///< acquire: the next counted attempt's instant
  bool wake_pending_ = false;               ///< acquire: woken during the current attempt
  bool attempt_counted_ = false;            ///< the current attempt counts (see above)
  time_point first_start_{};                ///< the first attempt's start (a waiter's age)
  time_point wake_at_{};                    ///< while waiting: when the wait ends
  duration unreachable_backoff_{};          ///< see fail(): retries of a probably free lock
  bool woken_ = false;  ///< a release was announced since the current attempt began or during it
  std::uint32_t attempt_id_ = 0;
  std::size_t awaiting_ = 0;
  time_point attempt_start_{};
  time_point deadline_{};
  std::size_t released_ = 0;
  std::size_t absent_ = 0;
  bool expired_at_start_ = false;
  bool dirty_ = false;  ///< acquire sent since the last release
  bool resyncs_stopped_ = false;
  bool confirming_ = false;
  std::uint64_t token_ = 0;
  std::error_code last_error_;
  // Queued follow-up actions, drained by event::next() in this order.
  bool release_pending_ = false;
  std::size_t resync_cursor_ = 0;
  bool resync_scan_ = false;
  bool wait_pending_ = false;
  duration wait_delay_{};
  bool complete_pending_ = false;
  std::error_code complete_ec_;
};

/// One node's backlog as seen by one manager: the send times of its requests that have not
/// been answered yet, oldest first, so the age of the oldest is known at any time, and a
/// smoothed estimate of the node's round trip (RFC 6298's SRTT and RTTVAR).
///
/// Why it exists: the manager decides at quorum and does not wait for the slowest node, so
/// nothing paces a node that lags behind the others. Without a bound, its pipeline grows until
/// a request reaches the request timeout and the connection is reset, failing everything in
/// flight on it (and leaving keys whose releases were failed). A node whose oldest request has
/// waited longer than the lag limit is "lagging": new acquire and extend requests to it fail
/// at once with errc::node_lagging (the vote it would most likely have given anyway, a
/// timeout, only sooner), while releases are still sent. It recovers by itself as its backlog
/// drains. Answers may come back in any order (Cluster or custom nodes).
///
/// The limit follows the node's observed round trip: a node on a 150 ms network is not
/// lagging when its oldest request is 120 ms old, it is simply far away. See limit().
class backlog {
 public:
  using ticket = std::uint64_t;

  /// Records a request sent at `sent`; the ticket identifies its answer.
  ticket sent(time_point sent) {
    pending_.push_back({sent, false});
    return next_++;
  }
  /// Records the answer (or failure) of the request with this ticket, received at `now`.
  /// Unknown or repeated tickets are ignored. `sample` false: the answer says nothing about
  /// the node's speed (e.g. answered locally without sending), so the round trip estimate is
  /// left alone.
  void answered(ticket t, time_point now, bool sample = true) noexcept {
    if (t < base_ || t >= next_)
      return;
    auto& e = pending_[static_cast<std::size_t>(t - base_)];
    if (e.answered)
      return;
    e.answered = true;
    if (sample)
      observe(now - e.at);
    while (!pending_.empty() && pending_.front().answered) {
      pending_.pop_front();
      ++base_;
    }
  }
  /// Requests sent and not answered yet, counting any answered behind an older pending one.
  std::size_t size() const noexcept { return pending_.size(); }
  /// True when the oldest unanswered request has waited longer than `limit` at `now`.
  bool lagging(time_point now, duration limit) const noexcept {
    return !pending_.empty() && now - pending_.front().at > limit;
  }
  /// The lag limit for this node: `floor` (the configured or default limit), raised to
  /// SRTT + 4 × RTTVAR (what this node has been observed to need, as TCP's retransmission
  /// timeout is), never above `cap` (the request timeout: past it the request fails anyway).
  /// Before the first answer nothing is known about the node, so only `cap` applies.
  duration limit(duration floor, duration cap) const noexcept {
    if (samples_ == 0)
      return cap;
    return std::min(std::max(floor, srtt_ + 4 * rttvar_), cap);
  }
  /// The smoothed round trip (zero before the first answer).
  duration srtt() const noexcept { return srtt_; }

 private:
  void observe(duration rtt) noexcept {
    if (rtt < duration::zero())
      rtt = duration::zero();
    if (samples_++ == 0) {
      srtt_ = rtt;
      rttvar_ = rtt / 2;
      return;
    }
    const duration err = rtt > srtt_ ? rtt - srtt_ : srtt_ - rtt;
    rttvar_ = (3 * rttvar_ + err) / 4;
    srtt_ = (7 * srtt_ + rtt) / 8;
  }

  struct entry {
    time_point at;
    bool answered;
  };
  std::deque<entry> pending_;
  ticket base_ = 0;  ///< ticket of pending_.front()
  ticket next_ = 0;
  std::uint64_t samples_ = 0;
  duration srtt_{};
  duration rttvar_{};
};

/// What is left to clean up after an operation ended: which nodes may still hold our value
/// and when a release should be sent to each, so that a release lost with a connection reset,
/// refused during a reconnect backoff or slower than the request timeout is sent again.
///
/// Rules: a node needs a release until it confirms one (answered "released", or "absent" when
/// no write of ours there has an unknown fate) or until its `until` instant passed (our keys
/// there have expired by then). A failed release is
/// retried after a backoff that doubles from `first_backoff` to `max_backoff`, jittered to
/// [backoff / 2, backoff]. abandon() gives up on a node (e.g. the node was closed). Memory:
/// one entry per node, sized once.
class cleanup {
 public:
  struct limits {
    duration first_backoff = std::chrono::milliseconds(50);
    duration max_backoff = std::chrono::milliseconds(1000);
  };

  cleanup() = default;
  cleanup(std::size_t nodes, limits l) : limits_(l), nodes_(nodes) {}

  bool active() const noexcept { return !nodes_.empty(); }
  /// Node i may hold our value until `until`; a release to it is already in flight.
  void in_flight(std::size_t i, time_point until) noexcept;
  /// Node i may hold our value until `until`; send a release at `at`.
  void due(std::size_t i, time_point until, time_point at) noexcept;
  /// A release was sent to node i.
  void sent(std::size_t i) noexcept;
  /// How a node answered a release.
  enum class release_answer : std::uint8_t {
    released,  ///< deleted our keys: our write landed and is gone
    absent,    ///< none of our keys there
    failed,    ///< error, timeout, connection lost: unknown
  };
  /// A write of ours to node i (an acquire) has an unknown fate: it timed out or was lost with
  /// its connection, so it may still run later. Then "absent" no longer ends the cleanup:
  /// releases go on (with backoff) until one deletes our keys or `until` has passed.
  void uncertain(std::size_t i) noexcept;
  /// The write of unknown fate to node i has been answered after all (no write of ours can
  /// land there any more): "absent" is proof again.
  void certain(std::size_t i) noexcept;
  /// Node i answered a release: released, or absent with no uncertain write, ends its
  /// cleanup; otherwise the next release goes out after the backoff (drawn with `random`).
  void answered(std::size_t i, release_answer a, time_point now, std::uint64_t random) noexcept;
  /// Gives up on node i.
  void abandon(std::size_t i) noexcept;
  /// True while node i needs a release (waiting, due or in flight).
  bool pending(std::size_t i) const noexcept {
    return i < nodes_.size() && nodes_[i].state != st::none;
  }
  /// The next node whose release is due at `now`, or nodes() when none.
  std::size_t next_due(time_point now) const noexcept;
  /// The earliest instant at which something changes (a release falls due, or a node's
  /// `until` passes, in flight or not); time_point::max() when there is none.
  time_point next_wakeup() const noexcept;
  /// Nodes that may still hold our value at `now` (waiting or in flight, `until` not passed).
  std::size_t unconfirmed(time_point now) const noexcept;
  /// Nothing left that may hold our value at `now`.
  bool settled(time_point now) const noexcept;
  std::size_t nodes() const noexcept { return nodes_.size(); }
  /// Releases sent so far (for tests and metrics).
  std::size_t releases_sent() const noexcept { return sent_; }

 private:
  enum class st : std::uint8_t { none, waiting, in_flight };
  struct node_entry {
    st state = st::none;
    time_point until{};
    time_point at{};
    duration backoff{};
    bool uncertain = false;
  };
  limits limits_;
  std::vector<node_entry> nodes_;
  std::size_t sent_ = 0;
};

/// The waiting acquires of one manager by release channel, for wake-up
/// (manager_options::wakeup). Bookkeeping only: the driver subscribes, on every node, the
/// channels add() reports new and unsubscribes those remove() reports dropped, and wakes the
/// waiter oldest() names when a release is announced.
/// Rules: a channel stays subscribed exactly while some waiter waits on it (counted, so no
/// subscription outlives its waiters); a release wakes only the channel's oldest waiter, so
/// that W waiters of one resource in one manager cost one attempt per release, not W (the
/// woken one, if it loses the race, waits again; the others keep their retry timers). One
/// release is announced by every node that held the lock, with the same payload (the SHA1
/// of the released value): the repeats go to the waiter the first one woke (whose attempt
/// may have come too early for some node), never to another (the first may have won).
/// Fair mode: a release that names the new head ("head:<sha1 of its value>") wakes that
/// waiter only, if it waits here, and no other (the others are behind it in the queue).
/// Waiter ids must grow with registration order (the driver counts them up).
class wake_table {
 public:
  using waiter = std::uint64_t;

  /// Registers `w` on `channels` (distinct); appends to `subscribe` those that had no waiter.
  /// `name` (fair mode: the SHA1 of its value) lets a release wake it by name
  /// ("head:<name>"): only that waiter then, wherever it is in the queue.
  void add(waiter w, const std::vector<std::string>& channels, std::vector<std::string>& subscribe,
           std::string name = {});
  /// Deregisters `w` from `channels`; appends to `unsubscribe` those left without a waiter.
  void remove(waiter w, const std::vector<std::string>& channels,
              std::vector<std::string>& unsubscribe);
  /// The oldest waiter on `channel`, if any.
  std::optional<waiter> oldest(std::string_view channel) const;
  /// A release announced on `channel` with `payload`: the waiter to wake, if any (see above).
  std::optional<waiter> on_release(std::string_view channel, std::string_view payload);
  /// Channels with at least one waiter.
  std::size_t channels() const noexcept { return by_channel_.size(); }

 private:
  struct entry {
    std::deque<waiter> queue;  // oldest first
    std::string last_payload;  // the latest release announced here...
    waiter woken = 0;          // ...and the waiter it woke
  };
  std::map<std::string, entry, std::less<>> by_channel_;
  std::map<std::string, waiter, std::less<>> by_name_;
  std::map<waiter, std::string> names_;
};

/// What an inspection read on one node, reduced to what the verdict needs.
struct inspected_node {
  bool answered = false;
  bool free = false;                         ///< answered, and none of the keys exists
  std::optional<std::string_view> holder;    ///< the value all keys hold, when they all hold one
  std::optional<milliseconds> shortest_ttl;  ///< of the holder's keys; nullopt: none expires
};

enum class inspection_status : std::uint8_t { held, free, indeterminate };

/// The verdict of an inspection (see redlock::inspection for the meaning of each field).
struct inspection_verdict {
  inspection_status status = inspection_status::indeterminate;
  std::string holder;
  std::size_t holding_nodes = 0;
  std::size_t free_nodes = 0;
  std::size_t quorum = 0;
  /// held: a conservative validity deadline; time_point::max() when a quorum's keys never
  /// expire. Otherwise time_point{}.
  time_point validity_deadline{};
};

/// held: a quorum (quorum_of(nodes)) holds one value; its validity counts from `started`
/// (sent before any node read its TTL, so it errs early) plus the quorum-th largest of the
/// holders' shortest TTLs (what a quorum still holds), minus drift_margin() of the largest
/// TTL seen. free: a quorum answered with none of the keys. indeterminate otherwise.
inspection_verdict judge_inspection(const std::vector<inspected_node>& nodes, double drift_factor,
                                    time_point started);

/// Two nodes that reach the same deployment: positions `first` < `second` and one identity
/// they share.
struct duplicate_deployment {
  std::size_t first = 0;
  std::size_t second = 0;
  std::string identity;
};

/// The first pair of nodes whose identity lists (node::async_identify) share an entry, or
/// nothing. Empty lists (unknown) never conflict.
std::optional<duplicate_deployment> find_duplicate(
    const std::vector<std::vector<std::string>>& identities);

}  // namespace redlock::detail::core

// The lock manager's operations: a thin Asio driver over the decision core (core.hpp).
//
// One `operation` object per call holds the machine, the keys, the arguments and one timer;
// everything about it runs on the manager's strand. Node replies are posted to that strand,
// fed to the machine, and the machine's actions are carried out until it goes idle.
//
// After it completed, an operation stays alive (and registered, so that quit waits for it)
// while its cleanup is unsettled: nodes that may still hold its value after a failed or
// cancelled acquire, or an unlock, get the release again until they confirm it or their keys
// have expired (core::cleanup decides which and when).
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/system_executor.hpp>

#include "internal/admission.hpp"
#include "internal/core.hpp"
#include "internal/health.hpp"
#include "internal/random.hpp"
#include "internal/scripts.hpp"
#include "redlock/error.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/observer.hpp"

namespace redlock::detail {

namespace core_ns = redlock::detail::core;
using std::chrono::milliseconds;

class operation;

class manager_impl : public std::enable_shared_from_this<manager_impl> {
 public:
  manager_impl(asio::any_io_executor ex, std::vector<std::shared_ptr<node>> nodes,
               manager_options s)
      : ex_(std::move(ex)),
        strand_(asio::make_strand(ex_)),
        nodes_(std::move(nodes)),
        settings_(s),
        quorum_(core_ns::quorum_of(nodes_.size())),
        backlog_(nodes_.size()),
        lag_floor_(s.node_lag_limit.count() > 0 ? s.node_lag_limit : s.request_timeout / 2),
        gate_timer_(strand_),
        quit_timer_(strand_),
        health_(nodes_.size()),
        probing_(nodes_.size(), 0),
        probe_timer_(strand_) {
    // Reports keep copies of the ids, owned here and shared, never the node's own string: a
    // report may outlive the node (and the io_context its timers belong to).
    ids_.reserve(nodes_.size());
    for (const auto& n : nodes_)
      ids_.push_back(std::make_shared<const std::string>(n->id()));
    if (nodes_.size() > 1)
      gate_ = gate::unidentified;
  }

  asio::any_io_executor ex_;
  asio::strand<asio::any_io_executor> strand_;
  std::vector<std::shared_ptr<node>> nodes_;
  std::vector<std::shared_ptr<const std::string>> ids_;
  manager_options settings_;
  std::size_t quorum_;
  // Per node, this manager's unanswered requests (strand only): see core::backlog.
  std::vector<core_ns::backlog> backlog_;
  core_ns::duration lag_floor_;

  core_ns::duration lag_limit(std::size_t i) const noexcept {
    if (settings_.node_lag_limit.count() > 0)
      return lag_floor_;  // set by the user: exactly this
    return backlog_[i].limit(lag_floor_, settings_.request_timeout);
  }

  // ---- strand-only state ----
  // Extends that succeeded and may still send re-syncs (late "missing" answers), by value: a
  // later operation on the value stops them, and an unlock waits for those already sent.
  std::unordered_map<std::string, std::vector<std::weak_ptr<operation>>> extends_;
  // Operations whose cleanup is unsettled, for quit's deadline.
  std::vector<std::weak_ptr<operation>> cleanups_;
  // The duplicate-deployment check: operations wait until every node told its identity (or
  // the wait timed out); a deployment listed twice refuses every operation.
  enum class gate : std::uint8_t { unidentified, identifying, open, refused };
  gate gate_ = gate::open;
  struct gated {
    unique_function<void()> start;
    unique_function<void(const std::string&)> refuse;
  };
  std::vector<gated> gated_;
  std::vector<std::vector<std::string>> identities_;
  std::size_t identify_left_ = 0;
  std::string refusal_;
  asio::steady_timer gate_timer_;
  asio::steady_timer quit_timer_;

  // ---- wake-up (manager_options::wakeup), strand only except notifiers_ ----
  // One notifier per node that has pub/sub (null where open_notifier gave none), opened once
  // after construction and never changed, so quit may close them from any thread.
  std::vector<std::shared_ptr<notifier>> notifiers_;
  bool has_notifiers_ = false;
  core_ns::wake_table wakes_;
  std::unordered_map<std::uint64_t, std::weak_ptr<operation>> waiters_;
  std::uint64_t next_waiter_ = 1;

  void open_notifiers();
  std::uint64_t add_waiter(const std::shared_ptr<operation>& op,
                           const std::vector<std::string>& channels, std::string id);
  void remove_waiter(std::uint64_t id, const std::vector<std::string>& channels);
  void on_notification(notification::kind what, const std::string& channel,
                       const std::string& payload);

  void begin_identify();
  void on_identity(std::size_t i, std::vector<std::string> ids);
  void open_gate();
  void admit(const std::shared_ptr<operation>& op);
  void admit(gated g);
  void on_quit_deadline();

  std::mutex hook_mutex_;
  std::shared_ptr<const std::function<void(const node_error&)>> hook_;
  std::atomic<bool> has_hook_{false};

  // ---- node health: written on the strand only; health_mutex_ guards those writes and the
  // reads of other threads (node_states()), so the strand reads without it ----
  std::vector<core_ns::health_machine> health_;
  mutable std::mutex health_mutex_;
  std::shared_ptr<const std::function<void(const node_state_change&)>> state_hook_;  // hook_mutex_
  std::atomic<bool> has_state_hook_{false};
  std::vector<char> probing_;  // per node: a probe in flight (strand only)
  asio::steady_timer probe_timer_;
  bool probe_armed_ = false;

  // Feeds node i's health with one request outcome (strand only); `sent`: when the request
  // was sent (or refused).
  void on_request_outcome(std::size_t i, const std::error_code& ec, std::string_view message,
                          core_ns::time_point sent, core_ns::time_point now);
  void arm_probe();
  void on_probe_timer();
  void on_probe_reply(std::size_t i, std::error_code ec, const reply& r, core_ns::time_point sent);
  std::vector<node_health> node_states() const;

  // ---- metrics (set_observer) ----
  // The hot paths check this pointer once; every observer ever set stays alive in
  // observers_ (hook_mutex_) for the manager's lifetime, so an operation that read the
  // pointer may use it after a later set_observer.
  std::atomic<observer*> observer_{nullptr};
  std::vector<std::shared_ptr<observer>> observers_;
  // Gauges, counted only while an observer is set (so that a manager without one does no
  // bookkeeping): acquires in flight, and the locks acquired here by value.
  std::atomic<std::size_t> waiting_{0};
  struct held_lock {
    core_ns::time_point granted;
    core_ns::time_point deadline;
  };
  mutable std::mutex held_mutex_;
  // Keyed by the hash of the value (random 128 bits): no copy of the string per lock. Two held
  // values colliding in 64 bits is far too unlikely to matter for a gauge.
  mutable std::unordered_map<std::size_t, held_lock> held_;
  mutable std::size_t held_sweep_at_ = 64;
  // held_mutex_ held: forgets locks whose validity has passed (they end by expiry).
  void sweep_held(core_ns::time_point now) const {
    for (auto it = held_.begin(); it != held_.end();) {
      if (it->second.deadline <= now)
        it = held_.erase(it);
      else
        ++it;
    }
    held_sweep_at_ = std::max<std::size_t>(64, 2 * held_.size());
  }

  std::mutex life_mutex_;
  std::size_t in_flight_ = 0;
  bool closing_ = false;
  bool closed_ = false;
  std::atomic<bool> closing_flag_{false};
  std::atomic<std::size_t> abandoned_{0};  // releases given up at quit's deadline
  std::vector<quit_completion> quit_waiters_;

  // Called with life_mutex_ held by `lk`; releases it before touching nodes or handlers.
  void finish_quit(std::unique_lock<std::mutex>& lk) {
    closed_ = true;
    auto waiters = std::move(quit_waiters_);
    quit_waiters_.clear();
    lk.unlock();
    for (auto& n : notifiers_) {
      if (n)
        n->close();
    }
    for (auto& n : nodes_)
      n->close();
    const std::error_code ec =
        abandoned_.load() > 0 ? make_error_code(errc::timeout) : std::error_code{};
    // The quit timer must not keep the io_context busy once quit is done, and cleanup still
    // waiting to retry (after the destructor, which does not wait) has no node to talk to.
    asio::post(strand_, [self = shared_from_this()] {
      self->quit_timer_.cancel();
      self->probe_timer_.cancel();  // closing_flag_ is set: nothing re-arms it
      self->open_gate();            // operations held for identities start, and fail with closed
      self->on_quit_deadline();
    });
    for (auto& w : waiters) {
      asio::post(strand_, [w = std::move(w), ec]() mutable { w(ec); });
    }
  }
};

namespace {

refusal check_retry(int retry_count, milliseconds delay, milliseconds jitter) {
  if (retry_count < -1)
    return invalid("retry_count is " + std::to_string(retry_count) + "; it must be >= -1");
  if (delay.count() < 0)
    return invalid("retry_delay is negative");
  if (jitter.count() < 0)
    return invalid("retry_jitter is negative");
  return {};
}

refusal check_ttl(milliseconds ttl, double drift_factor) {
  // The TTL must leave some validity after the drift margin, and fit the wire.
  if (ttl.count() <= 0)
    return invalid("ttl is " + std::to_string(ttl.count()) + " ms; it must be positive");
  if (ttl > core_ns::max_ttl) {
    return invalid("ttl is " + std::to_string(ttl.count()) + " ms; the largest is " +
                   std::to_string(core_ns::max_ttl.count()) + " ms (2^31-1, the wire's limit)");
  }
  const auto drift = core_ns::drift_margin(ttl, drift_factor);
  if (ttl <= drift) {
    return invalid("ttl is " + std::to_string(ttl.count()) +
                   " ms; it must exceed the drift margin (" + std::to_string(drift.count()) +
                   " ms)");
  }
  return {};
}

core_ns::retry_policy policy_for(const manager_options& s, const call_options& o) {
  // A wait budget without a retry count is bounded by the budget alone.
  const int count = o.retry_count.value_or(o.max_wait ? -1 : s.retry_count);
  return {count, o.retry_delay.value_or(s.retry_delay), o.retry_jitter.value_or(s.retry_jitter)};
}

refusal check_options(const manager_options& s, const call_options& o) {
  const auto p = policy_for(s, o);
  if (o.max_wait && o.max_wait->count() < 0)
    return invalid("max_wait is " + std::to_string(o.max_wait->count()) +
                   " ms; it must not be negative");
  return check_retry(p.retry_count, p.delay, p.jitter);
}

// Lock and extend: the TTL, then the retry options.
refusal check_ttl_and_options(const manager_options& s, milliseconds ttl, const call_options& o) {
  if (auto r = check_ttl(ttl, s.drift_factor))
    return r;
  return check_options(s, o);
}

// Extend and unlock: a handle of this manager that holds a lock.
refusal check_handle(const std::shared_ptr<manager_impl>& m, const lock& l) {
  if (!l.acquired())
    return invalid("the lock handle is empty (not acquired)");
  if (lock_access::manager(l) != m)
    return invalid("the lock belongs to another lock_manager");
  return {};
}

const script& script_for(core_ns::op_kind k, bool announce) {
  switch (k) {
    case core_ns::op_kind::acquire:
      return acquire_script();
    case core_ns::op_kind::extend:
      return extend_script();
    case core_ns::op_kind::confirm:
      return fence_confirm_script();
    case core_ns::op_kind::release:
      break;
  }
  return announce ? release_notify_script() : release_script();
}

using core_ns::purpose;

// Backoff of release retries after a failure (core::cleanup).
core_ns::cleanup::limits cleanup_limits(const manager_options& s) {
  core_ns::cleanup::limits l;
  l.first_backoff = std::max<core_ns::duration>(milliseconds(10), s.request_timeout / 4);
  l.max_backoff = std::max<core_ns::duration>(l.first_backoff, milliseconds(1000));
  return l;
}

}  // namespace

refusal check_resources(const std::vector<std::string>& resources) {
  if (resources.empty())
    return invalid("resources is empty: name at least one resource");
  for (std::size_t i = 0; i < resources.size(); ++i) {
    // An empty name is almost always an unset variable; as one global lock it would make
    // unrelated callers exclude each other.
    if (resources[i].empty())
      return invalid("resources[" + std::to_string(i) + "] is empty");
  }
  if (resources.size() > 1) {
    std::vector<std::size_t> order(resources.size());
    for (std::size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return resources[a] != resources[b] ? resources[a] < resources[b] : a < b;
    });
    for (std::size_t k = 1; k < order.size(); ++k) {
      if (resources[order[k - 1]] == resources[order[k]]) {
        return invalid("resources[" + std::to_string(order[k - 1]) + "] and resources[" +
                       std::to_string(order[k]) + "] are the same resource");
      }
    }
  }
  return {};
}

class operation final : public std::enable_shared_from_this<operation> {
 public:
  operation(std::shared_ptr<manager_impl> m, const core_ns::op_config& cfg,
            std::vector<std::string> keys, std::string value, milliseconds ttl,
            std::uint64_t written = 0, std::uint64_t uncertain = 0, std::uint64_t token = 0)
      : m_(std::move(m)),
        machine_(cfg, &random_u64),
        resources_(std::move(keys)),
        args_{std::move(value), std::to_string(ttl.count())},
        ttl_(ttl),
        timer_(m_->strand_),
        written_(written),
        uncertain_(uncertain),
        per_node_(cfg.nodes),
        token_(token) {
    // The keys are the resources in the manager's namespace (manager_options::key_prefix);
    // handles keep the names the caller gave.
    keys_.reserve(resources_.size());
    for (const auto& r : resources_)
      keys_.push_back(m_->settings_.key_prefix + r);
    if (m_->settings_.owner && !cfg.fair && !cfg.fenced) {
      // Owner metadata: the owner scripts take the lock keys, then their owner records.
      owned_ = true;
      owner_keys_.reserve(2 * keys_.size());
      owner_keys_.insert(owner_keys_.end(), keys_.begin(), keys_.end());
      for (const auto& k : keys_)
        owner_keys_.push_back(owner_key(k));
    }
    if (cfg.fenced) {
      // The fenced scripts take the lock keys, then their durable counters.
      fenced_keys_.reserve(2 * keys_.size());
      fenced_keys_.insert(fenced_keys_.end(), keys_.begin(), keys_.end());
      for (const auto& k : keys_)
        fenced_keys_.push_back(fencing_counter_key(k));
      confirm_args_[0] = args_[0];
    }
    if (cfg.fair) {
      // The fair scripts take the lock keys, their queues, then their leases.
      fair_keys_.reserve(3 * keys_.size());
      fair_keys_.insert(fair_keys_.end(), keys_.begin(), keys_.end());
      for (const auto& k : keys_)
        fair_keys_.push_back(fair_queue_key(k));
      for (const auto& k : keys_)
        fair_keys_.push_back(fair_lease_key(k));
      // The ticket orders waiters on every node alike: chosen once, the wall clock in µs
      // (comparable across machines up to their clock offset; ties go by value, alike
      // everywhere too). A double holds it exactly (below 2^53).
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
      fair_acquire_args_ = {args_[0], args_[1], std::to_string(us),
                            std::to_string(m_->settings_.fair_entry_timeout.count())};
      const auto lease = std::to_string(m_->settings_.fair_entry_timeout.count());
      stay_args_ = {args_[0], "stay", lease};
      leave_args_ = {args_[0], "leave", lease};
    }
  }

  lock_completion lock_done_;
  unlock_completion unlock_done_;

  const std::string& value() const noexcept { return args_[0]; }

  // With an observer set (checked once, at admission): measure this operation.
  void observe(observer* o, redlock::operation which) {
    obs_ = o;
    obs_op_ = which;
    obs_start_ = core_ns::clock::now();
    if (kind() == core_ns::op_kind::acquire) {
      obs_waiting_ = true;
      m_->waiting_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Extend and unlock: what the handle knows about the acquire's writes (lock_parts::fates),
  // and its owner record (written again where an extend finds it missing).
  void inherit_fates(const lock& l) {
    inherited_fates_ = lock_access::fates(l);
    absolvable_ = lock_access::absolvable_nodes(l);
    args_[2] = lock_access::owner_record(l);
  }

  // Acquire with owner metadata: who, with the call's label if it gave one. The record is
  // written at each attempt with that attempt's wall-clock time (see send_round).
  void set_owner(std::optional<std::string> label) {
    if (!owned_)
      return;
    who_ = *m_->settings_.owner;
    if (label)
      who_.label = std::move(*label);
  }

  // On the strand, once the manager admits it.
  void start() {
    if (kind() != core_ns::op_kind::acquire) {
      // A later operation on this value: earlier extends send no more re-syncs, and an unlock
      // waits for those already sent, so that no set-if-absent lands after its delete.
      auto it = m_->extends_.find(value());
      if (it != m_->extends_.end()) {
        const auto earlier = it->second;  // copied: waking a waiter may edit the map
        for (const auto& w : earlier) {
          auto e = w.lock();
          if (!e || e.get() == this)
            continue;
          e->machine_.stop_resyncs();
          if (kind() == core_ns::op_kind::release && e->resyncs_in_flight_ > 0) {
            e->resync_waiters_.push_back(shared_from_this());
            ++waits_;
          }
        }
      }
      if (waits_ > 0)
        return;  // begun by the extend(s) once their re-syncs were answered
    }
    begin();
  }

  // Completes at once with `ec` (nothing was sent), e.g. a refused deployment.
  void refuse(std::error_code ec, const std::string& detail) {
    detail_ = detail;
    complete(ec);
    maybe_finish();
  }

  void cancel(std::error_code ec) {
    if (completed_)
      return;
    if (waits_ > 0) {
      // Not begun yet (waiting for re-syncs): nothing was sent, nothing to clean up.
      waits_ = 0;
      complete(ec);
      maybe_finish();
      return;
    }
    run(machine_.resume(core_ns::event::cancel(ec, core_ns::clock::now())));
  }

  // A release of one of our resources was announced (wake-up); `during_attempt` false: only
  // a waiting operation is woken (a confirmed subscription: a release may have been missed,
  // but an attempt already under way has seen the node since).
  void wake(bool during_attempt) {
    if (completed_ || (!during_attempt && timer_use_ != timer_use::retry))
      return;
    const auto now = core_ns::clock::now();
    if (m_->closing_flag_.load(std::memory_order_acquire)) {
      // As the retry timer: quit must not wait for a waiting acquire.
      if (timer_use_ == timer_use::retry)
        run(machine_.resume(core_ns::event::cancel(make_error_code(errc::closed), now)));
      return;
    }
    run(machine_.resume(core_ns::event::wake(now)));
  }

  // quit's deadline passed: stop retrying releases; their keys expire with their TTL.
  void abandon_cleanup() {
    if (!cleanup_.active())
      return;
    m_->abandoned_.fetch_add(cleanup_.unconfirmed(core_ns::clock::now()));
    cleanup_ = {};
    drained_ = true;
    maybe_finish();
  }

 private:
  enum class timer_use : std::uint8_t { none, attempt, retry, drain, cleanup };
  // What the operation knows per node beyond the machine's vote.
  enum class rel : std::uint8_t { none, in_flight, released, absent, failed };
  struct node_track {
    core_ns::time_point touched{};  // last send or answer of a request that may set our keys
    rel last_release = rel::none;   // the latest release_all round's release to this node
    bool unknown_write = false;     // a write that timed out or was lost: it may still run
    std::uint16_t writes = 0;       // writes (acquire, re-sync) in flight
    std::uint16_t primaries = 0;    // primary requests in flight
  };

  void begin() { run(machine_.resume(core_ns::event::start(core_ns::clock::now()))); }

  void register_waiter() {
    channels_.reserve(keys_.size());
    for (const auto& k : keys_)
      channels_.push_back(release_channel(k));
    // Fair: a release names the new head by the SHA1 of its value ("head:<sha1>").
    waiter_ = m_->add_waiter(shared_from_this(), channels_,
                             machine_.config().fair ? script(value()).sha1() : std::string());
  }

  void deregister_waiter() {
    if (waiter_ == 0)
      return;
    m_->remove_waiter(waiter_, channels_);
    waiter_ = 0;
  }

  void run(core_ns::action a) {
    using t = core_ns::action::type;
    for (;;) {
      switch (a.kind) {
        case t::idle:
          maybe_finish();
          return;
        case t::send:
          send_round(a.delay);
          break;
        case t::confirm: {
          confirm_args_[1] = std::to_string(machine_.token());
          const auto& states = machine_.nodes();
          for (std::size_t i = 0; i < states.size(); ++i) {
            if (states[i].in_round)
              send(i, purpose::confirm);
          }
          arm(timer_use::attempt, a.delay);
          break;
        }
        case t::release_all:
          ++release_round_;
          for (std::size_t i = 0; i < m_->nodes_.size(); ++i) {
            per_node_[i].last_release = rel::none;
            send(i, purpose::release);
          }
          break;
        case t::resync:
          send(a.node, purpose::resync);
          break;
        case t::wait:
          // The first wait of an acquire: from now on, announced releases wake it.
          if (kind() == core_ns::op_kind::acquire && waiter_ == 0 && m_->has_notifiers_)
            register_waiter();
          arm(timer_use::retry, a.delay);
          break;
        case t::complete:
          complete(a.ec);
          break;
      }
      a = machine_.resume(core_ns::event::next());
    }
  }

  void send_round(core_ns::duration node_deadline) {
    if (owned_ && kind() == core_ns::op_kind::acquire) {
      // `since` is when the lock was taken: the attempt that wins is the one that counts (a
      // record already there with our value keeps its time: see acquire_owner_script).
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
      args_[2] = encode_owner(value(), ms, who_);
    }
    const auto& states = machine_.nodes();
    for (std::size_t i = 0; i < states.size(); ++i) {
      if (states[i].in_round)
        send(i, purpose::primary);
    }
    // Nodes may have no deadline of their own (custom nodes); this one bounds the attempt.
    arm(timer_use::attempt, node_deadline);
  }

  bool may_hold(std::size_t i) const noexcept { return written_.may_hold(i); }
  // True when a request with purpose p runs one of the fenced scripts.
  bool fenced(purpose p) const noexcept {
    return machine_.config().fenced && (p == purpose::primary || p == purpose::confirm);
  }
  core_ns::op_kind kind() const noexcept { return machine_.config().kind; }

  // Answers node i without sending anything; posted, so the machine sees the same sequence of
  // events as with a real reply.
  void answer_locally(std::size_t i, purpose p, std::error_code ec, reply r,
                      core_ns::time_point now) {
    asio::post(m_->strand_, [self = shared_from_this(), i, p, attempt = machine_.attempt_id(),
                             round = release_round_, ec, r = std::move(r), now] {
      self->on_node_reply(i, p, attempt, round, ec, r, std::nullopt, now);
    });
  }

  void send(std::size_t i, purpose p) {
    const auto now = core_ns::clock::now();
    auto& backlog = m_->backlog_[i];
    const auto where =
        core_ns::route_request(kind(), p, may_hold(i), backlog.lagging(now, m_->lag_limit(i)));
    if (where == core_ns::route::skip)
      return;
    ++outstanding_;
    auto& track = per_node_[i];
    if (p == purpose::primary)
      ++track.primaries;
    if (p == purpose::resync)
      ++resyncs_in_flight_;
    if (p == purpose::release)
      track.last_release = rel::in_flight;
    const auto attempt = machine_.attempt_id();
    const auto round = release_round_;
    if (where == core_ns::route::answer_absent) {
      reply absent;
      absent.kind = reply::type::integer;
      absent.integer = 0;
      return answer_locally(i, p, {}, std::move(absent), now);
    }
    if (where == core_ns::route::answer_lagging)
      return answer_locally(i, p, make_error_code(errc::node_lagging), reply{}, now);
    if (core_ns::may_store(kind(), p)) {
      written_.mark(i);
      track.touched = now;
      ++track.writes;
    }
    const auto ticket = backlog.sent(now);
    // Fenced: phase 1 (the primary acquire) and phase 2 (confirm) run the fenced scripts,
    // which also take the counter keys; releases and re-syncs are the plain scripts.
    const bool fenced_script = fenced(p);
    // Only an unlock announces its release. The release after a failed attempt frees keys of
    // a race nobody won (a split vote): announcing it would wake the other losers of the
    // same race in every manager, whose failures would announce again, a storm at N >= 3.
    const bool announce = m_->settings_.wakeup && kind() == core_ns::op_kind::release;
    const script* s = fenced_script && p == purpose::primary
                          ? &fenced_acquire_script()
                          : &script_for(core_ns::script_of(kind(), p), announce);
    std::span<const std::string> keys = fenced_script ? std::span<const std::string>(fenced_keys_)
                                                      : std::span<const std::string>(keys_);
    // Without owner metadata ARGV is value and ttl only: node-redlock's wire, exactly.
    std::span<const std::string> args = p == purpose::confirm
                                            ? std::span<const std::string>(confirm_args_)
                                            : std::span<const std::string>(args_).first(2);
    if (owned_ && !fenced_script) {
      switch (core_ns::script_of(kind(), p)) {
        case core_ns::op_kind::acquire:
          s = &acquire_owner_script();
          break;
        case core_ns::op_kind::extend:
          s = &extend_owner_script();
          break;
        case core_ns::op_kind::release:
          s = announce ? &release_notify_owner_script() : &release_owner_script();
          break;
        case core_ns::op_kind::confirm:
          break;
      }
      keys = owner_keys_;
      args = args_;
    }
    if (machine_.config().fair) {
      // Fair: acquires queue; releases leave the queues, except the release between two
      // attempts of a waiter that goes on waiting (its place is kept).
      const auto script_kind = core_ns::script_of(kind(), p);
      if (script_kind == core_ns::op_kind::acquire && p == purpose::primary) {
        s = &fair_acquire_script();
        keys = fair_keys_;
        args = fair_acquire_args_;
      } else if (script_kind == core_ns::op_kind::release) {
        s = &fair_release_script();
        keys = fair_keys_;
        const bool stay =
            kind() == core_ns::op_kind::acquire && p == purpose::release && !machine_.finished();
        args = stay ? std::span<const std::string>(stay_args_) : leave_args_;
      }
    }
    m_->nodes_[i]->async_eval(*s, keys, args,
                              [self = shared_from_this(), i, p, attempt, round, ticket, sent = now](
                                  std::error_code ec, reply r) mutable {
                                auto& strand = self->m_->strand_;
                                asio::post(strand, [self = std::move(self), i, p, attempt, round,
                                                    ticket, sent, ec, r = std::move(r)]() mutable {
                                  self->on_node_reply(i, p, attempt, round, ec, r, ticket, sent);
                                });
                              });
  }

  void on_node_reply(std::size_t i, purpose p, std::uint32_t attempt, std::uint32_t round,
                     std::error_code ec, const reply& r,
                     std::optional<core_ns::backlog::ticket> ticket, core_ns::time_point sent) {
    --outstanding_;
    const auto now = core_ns::clock::now();
    // Only real answers from the server say how long it takes; connection failures do not.
    if (ticket)
      m_->backlog_[i].answered(*ticket, now, !ec || r.is_error());
    // Requests sent, and those refused because the node lags, are news about the node; a
    // local "absent" (nothing was ever written there) is not.
    if (ticket || ec == errc::node_lagging) {
      m_->on_request_outcome(i, ec, r.is_error() ? std::string_view(r.str) : "", sent, now);
      if (auto* o = m_->observer_.load(std::memory_order_acquire)) {
        try {
          const auto rtt = ticket ? now - sent : core_ns::duration::zero();
          o->node_request(node_request_event{i, m_->ids_[i].get(), ec, rtt});
        } catch (...) {
          // An observer must not throw; it must not tear down the operation either.
        }
      }
    }
    auto& track = per_node_[i];
    std::error_code vote_ec;
    std::uint64_t counter = 0;
    milliseconds holder_ttl{-1};
    const auto a = core_ns::interpret(core_ns::script_of(kind(), p), fenced(p), ec, r, keys_.size(),
                                      vote_ec, counter, &holder_ttl);
    std::string_view message = r.is_error() ? std::string_view(r.str) : std::string_view();
    if (a == core_ns::answer::error || a == core_ns::answer::timeout) {
      hook(i, vote_ec, message);
    }
    if (core_ns::may_store(kind(), p) && ticket) {  // sent (not answered locally)
      --track.writes;
      track.touched = now;  // a write may have landed as late as this
      // Timed out or lost with its connection: it may run later still (a server resuming from
      // a pause, a retransmission after a partition). Errors the server sent are final.
      if (vote_ec == errc::timeout || vote_ec == errc::connection_lost ||
          vote_ec == errc::protocol_error) {
        track.unknown_write = true;
        if (chase_writes_) {
          // Learned after a failed acquire completed, possibly after this node's release
          // was confirmed: chase the write again.
          auto& c = ensure_cleanup();
          c.uncertain(i);
          if (!c.pending(i))
            c.due(i, track.touched + ttl_, retry_at(now));
          step_cleanup();
        }
      }
      // Every write of this (successful) acquire to node i answered: none can land later,
      // so an unlock of the handle may take "absent" there as proof (lock_parts::fates).
      if (own_fates_ && i < 64 && track.writes == 0 && !track.unknown_write)
        own_fates_->settled.fetch_or(std::uint64_t{1} << i, std::memory_order_relaxed);
    }
    using ra = core_ns::cleanup::release_answer;
    const ra confirmed = a == core_ns::answer::ok       ? ra::released
                         : a == core_ns::answer::absent ? ra::absent
                                                        : ra::failed;
    switch (p) {
      case purpose::primary: {
        --track.primaries;
        if (completed_ && kind() == core_ns::op_kind::release)
          on_cleanup_answer(i, confirmed, vote_ec, now);
        auto e = core_ns::event::reply(i, attempt, a, vote_ec, now, counter);
        e.message = message;
        e.holder_ttl = holder_ttl;
        run(machine_.resume(e));
        return;
      }
      case purpose::confirm: {
        auto e = core_ns::event::reply(i, attempt, a, vote_ec, now);
        e.message = message;
        run(machine_.resume(e));
        return;
      }
      case purpose::release:
        if (round == release_round_) {
          track.last_release = confirmed == ra::released ? rel::released
                               : confirmed == ra::absent ? rel::absent
                                                         : rel::failed;
          if (completed_)
            on_cleanup_answer(i, confirmed, vote_ec, now);
        }
        break;
      case purpose::resync:
        if (--resyncs_in_flight_ == 0)
          wake_resync_waiters();
        break;
      case purpose::cleanup:
        on_cleanup_answer(i, confirmed, vote_ec, now);
        break;
    }
    maybe_finish();
  }

  void hook(std::size_t i, std::error_code ec, std::string_view message) {
    // errc::closed comes from our own quit or destructor, not from a failing node.
    if (ec == errc::closed || !m_->has_hook_.load(std::memory_order_acquire))
      return;
    report_node_error(*m_, node_error{*m_->ids_[i], ec, std::string(message)});
  }

  // ---- cleanup after completion ---------------------------------------------------------

  // A failed or cancelled acquire: every node an acquire went to may hold our keys until the
  // TTL has passed since our last write there; the last round's release decides who is done.
  void begin_acquire_cleanup(core_ns::time_point now) {
    for (std::size_t i = 0; i < per_node_.size(); ++i) {
      if (!may_hold(i))
        continue;
      const auto& track = per_node_[i];
      const auto until = track.touched + ttl_;
      if (track.unknown_write && track.last_release != rel::released)
        ensure_cleanup().uncertain(i);  // "absent" is no proof: see core::cleanup
      switch (track.last_release) {
        case rel::released:
          break;
        case rel::absent:
          if (track.unknown_write)
            ensure_cleanup().due(i, until, retry_at(now));
          break;
        case rel::in_flight:
          ensure_cleanup().in_flight(i, until);
          break;
        case rel::failed:  // just failed: the next try after the first backoff
          ensure_cleanup().due(i, until, retry_at(now));
          break;
        case rel::none:
          ensure_cleanup().due(i, until, now);
          break;
      }
    }
  }

  // An unlock: nodes that did not confirm get the release again while the lock's keys can
  // still exist: until the validity deadline plus the drift margin, when keys written by the
  // winning attempt (or the last extend) expire at the latest. Only set-if-absent writes can
  // bring a key back: an unlock waits for re-syncs already sent (see start()), and where a
  // write's fate is unknown (lock_parts::uncertain) "absent" is no proof.
  void begin_unlock_cleanup(core_ns::time_point now) {
    const auto& cfg = machine_.config();
    const auto until = cfg.lock_deadline + core_ns::drift_margin(ttl_, cfg.drift_factor);
    if (now >= until)
      return;
    const auto& states = machine_.nodes();
    for (std::size_t i = 0; i < states.size(); ++i) {
      if (!may_hold(i))
        continue;
      const bool unsure = unsure_of(i);
      if (states[i].done) {
        // "Released" proves a late write landed and is gone; "absent" proves nothing while
        // a write of ours there may still run.
        if (!unsure || states[i].ans == core_ns::answer::ok)
          continue;
        ensure_cleanup().uncertain(i);
        ensure_cleanup().due(i, until, retry_at(now));
        continue;
      }
      if (unsure)
        ensure_cleanup().uncertain(i);
      // Not done means its last release failed (or never answered): retry after a backoff.
      if (per_node_[i].primaries > 0)
        ensure_cleanup().in_flight(i, until);
      else
        ensure_cleanup().due(i, until, retry_at(now));
    }
  }

  // When a release that just failed (or proved nothing) goes again: after the first backoff.
  core_ns::time_point retry_at(core_ns::time_point now) const {
    return now + cleanup_limits(m_->settings_).first_backoff;
  }

  core_ns::cleanup& ensure_cleanup() {
    if (!cleanup_.active()) {
      cleanup_ = core_ns::cleanup(m_->nodes_.size(), cleanup_limits(m_->settings_));
      auto& list = m_->cleanups_;
      list.erase(
          std::remove_if(list.begin(), list.end(), [](const auto& w) { return w.expired(); }),
          list.end());
      list.push_back(weak_from_this());
    }
    return cleanup_;
  }

  void on_cleanup_answer(std::size_t i, core_ns::cleanup::release_answer confirmed,
                         std::error_code ec, core_ns::time_point now) {
    if (!cleanup_.active())
      return;
    if (ec == errc::closed) {
      cleanup_.abandon(i);  // the node (or the manager) was closed: nothing more can be sent
    } else {
      // An unlock: the acquire's write there may have been answered since the handle was
      // made (lock_parts::fates). Our own cleanup after a failed acquire is not concerned.
      if (kind() == core_ns::op_kind::release &&
          confirmed == core_ns::cleanup::release_answer::absent && i < 64 &&
          ((uncertain_ >> i) & 1U) != 0 && !unsure_of(i))
        cleanup_.certain(i);
      cleanup_.answered(i, confirmed, now, random_u64());
    }
    step_cleanup();
  }

  // Sends the releases that are due and arms the timer for the next change.
  void step_cleanup() {
    if (!cleanup_.active())
      return;
    const auto now = core_ns::clock::now();
    for (auto i = cleanup_.next_due(now); i < cleanup_.nodes(); i = cleanup_.next_due(now)) {
      cleanup_.sent(i);
      send(i, purpose::cleanup);
    }
    if (cleanup_.settled(now)) {
      cleanup_ = {};
      // Requests still out (e.g. a slow acquire) are waited for as after any completion.
      if (outstanding_ > 0 && !drained_)
        arm(timer_use::drain, machine_.config().node_timeout);
      return;
    }
    const auto wake = cleanup_.next_wakeup();
    if (wake != core_ns::time_point::max())
      arm(timer_use::cleanup, std::max(wake - now, core_ns::duration::zero()));
  }

  // Nodes where a write of this value may still run: the handle's, plus ours that timed out,
  // were lost, or are still unanswered (see lock_parts::uncertain).
  std::uint64_t uncertain_of_handle() const noexcept { return uncertain_ | own_uncertain(); }
  // Ours only: writes of this operation that timed out, were lost, or are still unanswered.
  std::uint64_t own_uncertain() const noexcept {
    std::uint64_t u = 0;
    for (std::size_t i = 0; i < per_node_.size() && i < 64; ++i) {
      const auto& t = per_node_[i];
      if (may_hold(i) && (t.unknown_write || t.writes > 0))
        u |= std::uint64_t{1} << i;
    }
    return u;
  }
  // True while a write of this value to node i may still land there (the handle said so,
  // and the acquire that made it has not since heard back from every write it sent there).
  bool unsure_of(std::size_t i) const noexcept {
    if (i >= 64 || ((uncertain_ >> i) & 1U) == 0)
      return false;
    const auto bit = std::uint64_t{1} << i;
    return !((absolvable_ & bit) != 0 && inherited_fates_ &&
             (inherited_fates_->settled.load(std::memory_order_relaxed) & bit) != 0);
  }

  void wake_resync_waiters() {
    auto waiters = std::move(resync_waiters_);
    resync_waiters_.clear();
    const auto unsure = uncertain_of_handle();
    for (auto& w : waiters) {
      w->uncertain_ |= unsure;    // a re-sync that timed out may still land
      w->absolvable_ &= ~unsure;  // and the acquire's answers say nothing about it
      if (w->waits_ > 0 && --w->waits_ == 0 && !w->completed_)
        w->begin();
    }
  }

  // ---- timers ---------------------------------------------------------------------------

  void arm(timer_use use, core_ns::duration d) {
    timer_use_ = use;
    const auto gen = ++timer_gen_;
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this(), gen](std::error_code ec) {
      if (ec || gen != self->timer_gen_)
        return;
      self->on_timer();
    });
  }

  void disarm() {
    ++timer_gen_;
    timer_use_ = timer_use::none;
    timer_.cancel();
  }

  void on_timer() {
    const auto now = core_ns::clock::now();
    switch (timer_use_) {
      case timer_use::none:
        return;
      case timer_use::attempt: {
        timer_use_ = timer_use::none;
        const auto& states = machine_.nodes();
        for (std::size_t i = 0; i < states.size(); ++i) {
          if (states[i].in_round && states[i].outcome == vote::pending) {
            hook(i, make_error_code(errc::timeout), {});
            // Health too: a node without a deadline of its own (a custom node) may never
            // complete the request.
            m_->on_request_outcome(i, make_error_code(errc::timeout), "", machine_.attempt_start(),
                                   now);
          }
        }
        run(machine_.resume(core_ns::event::attempt_timeout(now)));
        return;
      }
      case timer_use::retry:
        timer_use_ = timer_use::none;
        // quit() waits for operations in flight; a retry loop must not keep it waiting.
        if (m_->closing_flag_.load(std::memory_order_acquire)) {
          run(machine_.resume(core_ns::event::cancel(make_error_code(errc::closed), now)));
        } else {
          run(machine_.resume(core_ns::event::retry_timer(now)));
        }
        return;
      case timer_use::drain:
        timer_use_ = timer_use::none;
        drained_ = true;
        maybe_finish();
        return;
      case timer_use::cleanup:
        timer_use_ = timer_use::none;
        step_cleanup();
        maybe_finish();
        return;
    }
  }

  redlock::report make_report() const {
    redlock::report rep;
    rep.attempts = machine_.attempts();
    rep.quorum = machine_.quorum();
    rep.detail = detail_;
    const auto& states = machine_.nodes();
    rep.nodes.reserve(states.size());
    for (std::size_t i = 0; i < states.size(); ++i) {
      const auto& s = states[i];
      node_result nr;
      nr.node = node_id(m_->ids_[i]);  // shared with the manager's copy, not the node's
      nr.outcome = s.outcome;
      nr.ec = s.ec;
      nr.message = s.message;
      nr.latency = std::chrono::duration_cast<std::chrono::microseconds>(s.latency);
      rep.nodes.push_back(std::move(nr));
    }
    return rep;
  }

  // The observer's view of this completion: the event, the gauges, a lock that ended.
  void observe_completion(std::error_code ec, core_ns::time_point now) {
    operation_event e;
    e.op = obs_op_;
    e.ec = ec;
    e.attempts = machine_.attempts();
    e.duration = now - obs_start_;
    if (machine_.attempts() > 0)
      e.last_attempt = now - machine_.attempt_start();
    if (obs_waiting_) {
      obs_waiting_ = false;
      m_->waiting_.fetch_sub(1, std::memory_order_relaxed);
    }
    std::optional<core_ns::duration> held;
    bool lost = false;
    {
      std::lock_guard g(m_->held_mutex_);
      auto& table = m_->held_;
      const auto key = std::hash<std::string_view>{}(value());
      if (kind() == core_ns::op_kind::acquire) {
        if (!ec) {
          if (table.size() >= m_->held_sweep_at_)
            m_->sweep_held(now);
          table.insert_or_assign(key, manager_impl::held_lock{now, machine_.deadline()});
        }
      } else if (auto it = table.find(key); it != table.end()) {
        // Locks not acquired here (adopted) are not in the table: their grant is unknown.
        if (kind() == core_ns::op_kind::extend && !ec) {
          it->second.deadline = machine_.deadline();
        } else if ((kind() == core_ns::op_kind::extend &&
                    (ec == errc::lock_lost || ec == errc::lock_expired)) ||
                   (kind() == core_ns::op_kind::release && (!ec || ec == errc::lock_expired))) {
          held = now - it->second.granted;
          lost = ec.operator bool();
          table.erase(it);
        }
      }
    }
    try {
      obs_->operation_done(e);
      if (held)
        obs_->lock_ended(*held, lost);
    } catch (...) {
      // An observer must not throw; it must not keep the operation from completing either.
    }
  }

  void complete(std::error_code ec) {
    completed_ = true;
    disarm();
    deregister_waiter();
    const auto now = core_ns::clock::now();
    if (obs_)
      observe_completion(ec, now);
    auto rep = make_report();
    if (kind() == core_ns::op_kind::release) {
      if (machine_.attempts() > 0)
        begin_unlock_cleanup(now);
      unlock_result res;
      res.released = machine_.released();
      res.absent = machine_.absent();
      res.nodes = m_->nodes_.size();
      res.report = std::move(rep);
      auto done = std::move(unlock_done_);
      after_complete();
      done(ec, std::move(res));
    } else {
      if (kind() == core_ns::op_kind::acquire && ec && machine_.attempts() > 0) {
        chase_writes_ = true;
        begin_acquire_cleanup(now);
      }
      if (kind() == core_ns::op_kind::extend && !ec && outstanding_ > 0) {
        // Late answers may still ask for re-syncs: a later operation on the value must find
        // this one to stop them.
        m_->extends_[value()].push_back(weak_from_this());
        in_extends_ = true;
      }
      lock_parts parts;
      parts.manager = m_;
      parts.resources = resources_;
      if (!ec) {
        parts.value = args_[0];
        if (!args_[2].empty())
          parts.owner = std::make_shared<const std::string>(args_[2]);
      }
      parts.ttl = ttl_;
      parts.deadline = ec ? core_ns::time_point{} : machine_.deadline();
      parts.report = std::move(rep);
      parts.written = written_.bits();
      parts.fair = machine_.config().fair;
      if (!ec) {
        parts.uncertain = uncertain_of_handle();
        // An acquire's token is the confirmed one; an extend keeps the handle's.
        parts.fencing_token = kind() == core_ns::op_kind::acquire ? machine_.token() : token_;
        if (kind() == core_ns::op_kind::acquire) {
          // Writes still unanswered now may be answered later: say so through fates.
          std::uint64_t absolvable = 0;
          for (std::size_t i = 0; i < per_node_.size() && i < 64; ++i) {
            if (may_hold(i) && per_node_[i].writes > 0 && !per_node_[i].unknown_write)
              absolvable |= std::uint64_t{1} << i;
          }
          if (absolvable != 0) {
            own_fates_ = std::make_shared<write_fates>();
            parts.fates = own_fates_;
            parts.absolvable = absolvable;
          }
        } else {
          // An extend's own unanswered re-syncs are not the acquire's to settle.
          parts.fates = inherited_fates_;
          parts.absolvable = absolvable_ & ~own_uncertain();
        }
      }
      auto done = std::move(lock_done_);
      after_complete();
      done(ec, lock_access::make(std::move(parts)));
    }
  }

  void after_complete() {
    if (cleanup_.active())
      step_cleanup();
    else if (outstanding_ > 0)
      arm(timer_use::drain, machine_.config().node_timeout);
  }

  void maybe_finish() {
    if (!completed_ || !registered_)
      return;
    if (cleanup_.active())
      return;  // step_cleanup() ends it, or quit's deadline abandons it
    if (outstanding_ > 0 && !drained_)
      return;
    registered_ = false;
    disarm();
    if (in_extends_) {
      in_extends_ = false;
      auto it = m_->extends_.find(value());
      if (it != m_->extends_.end()) {
        auto& v = it->second;
        v.erase(std::remove_if(v.begin(), v.end(),
                               [this](const auto& w) {
                                 auto p = w.lock();
                                 return !p || p.get() == this;
                               }),
                v.end());
        if (v.empty())
          m_->extends_.erase(it);
      }
    }
    wake_resync_waiters();  // drained without answers (a silent node): wait no longer
    end_operation(*m_);
  }

  std::shared_ptr<manager_impl> m_;
  core_ns::quorum_machine machine_;
  std::vector<std::string> resources_;  // as the caller named them (the handle's)
  std::vector<std::string> keys_;       // key_prefix + resource
  // ARGV[1] = value, ARGV[2] = ttl in ms; ARGV[3] = the owner record (owner scripts only).
  std::array<std::string, 3> args_;
  bool owned_ = false;                   // manager_options::owner: the owner scripts
  owner_info who_;                       // acquire with owner: whom the records name
  std::vector<std::string> owner_keys_;  // owned: keys_, then their owner record keys
  milliseconds ttl_;
  asio::steady_timer timer_;
  timer_use timer_use_ = timer_use::none;
  std::uint64_t timer_gen_ = 0;
  std::size_t outstanding_ = 0;
  bool completed_ = false;
  bool registered_ = true;
  bool drained_ = false;
  bool in_extends_ = false;
  bool chase_writes_ = false;     // a failed acquire: a write of unknown fate is chased
  core_ns::written_set written_;  // see lock_parts::written
  std::uint64_t uncertain_;       // see lock_parts::uncertain
  std::vector<node_track> per_node_;
  std::uint32_t release_round_ = 0;
  core_ns::cleanup cleanup_;
  std::size_t resyncs_in_flight_ = 0;
  std::vector<std::shared_ptr<operation>> resync_waiters_;  // unlocks waiting for our re-syncs
  std::size_t waits_ = 0;                                   // extends we wait for (unlock)
  std::string detail_;
  std::uint64_t token_;  // extend: the handle's fencing token, kept
  // See lock_parts::fates: the handle's (extend, unlock) and ours (a successful acquire).
  std::shared_ptr<const write_fates> inherited_fates_;
  std::uint64_t absolvable_ = 0;
  std::shared_ptr<write_fates> own_fates_;
  std::vector<std::string> fenced_keys_;          // fenced: keys_, then their counter keys
  std::array<std::string, 2> confirm_args_;       // fenced phase 2: value, candidate token
  std::vector<std::string> fair_keys_;            // fair: keys_, their queues, their leases
  std::array<std::string, 4> fair_acquire_args_;  // fair: value, ttl, ticket, lease ms
  std::array<std::string, 3> stay_args_;          // fair release keeping our entries
  std::array<std::string, 3> leave_args_;         // fair release leaving the queues
  std::uint64_t waiter_ = 0;                      // wake-up: registered as this waiter (0: not)
  std::vector<std::string> channels_;             // wake-up: the release channels of keys_
  observer* obs_ = nullptr;                       // set: measured (see observe())
  redlock::operation obs_op_ = redlock::operation::lock;
  core_ns::time_point obs_start_{};
  bool obs_waiting_ = false;  // counted in manager_impl::waiting_
};

namespace {

// Completes on the strand, never inside the initiating call.
void post_lock_error(const std::shared_ptr<manager_impl>& m, std::error_code ec,
                     lock_completion done, std::string detail = {}) {
  lock_parts parts;
  parts.manager = m;
  parts.report.quorum = m->quorum_;
  parts.report.detail = std::move(detail);
  asio::post(m->strand_, [done = std::move(done), ec, p = std::move(parts)]() mutable {
    done(ec, lock_access::make(std::move(p)));
  });
}

void post_unlock_error(const std::shared_ptr<manager_impl>& m, std::error_code ec,
                       unlock_completion done, std::string detail = {}) {
  unlock_result res;
  res.report.detail = std::move(detail);
  if (m) {
    res.nodes = m->nodes_.size();
    res.report.quorum = m->quorum_;
  }
  auto f = [done = std::move(done), ec, res = std::move(res)]() mutable {
    done(ec, std::move(res));
  };
  if (m) {
    asio::post(m->strand_, std::move(f));
  } else {
    asio::post(asio::system_executor(), std::move(f));
  }
}

milliseconds node_timeout_for(const manager_options& s, milliseconds ttl) {
  return std::min(s.request_timeout, ttl);
}

struct cancel_handler {
  std::weak_ptr<operation> op;
  std::shared_ptr<manager_impl> m;
  void operator()(asio::cancellation_type type) {
    if (type == asio::cancellation_type::none)
      return;
    // Emitted on the canceller's thread: hop to the strand.
    asio::post(m->strand_, [w = op] {
      if (auto o = w.lock())
        o->cancel(make_error_code(errc::cancelled));
    });
  }
};

// The fixed inputs of one operation, from the manager's settings and the call's overrides.
core_ns::op_config config_for(core_ns::op_kind kind, const manager_impl& m, milliseconds ttl,
                              const call_options& opts, core_ns::time_point lock_deadline = {}) {
  const auto& s = m.settings_;
  core_ns::op_config cfg;
  cfg.kind = kind;
  cfg.nodes = m.nodes_.size();
  cfg.ttl = ttl;
  cfg.drift_factor = s.drift_factor;
  cfg.retry = policy_for(s, opts);
  // An adopted handle may carry no ttl: release then waits the plain request timeout.
  cfg.node_timeout = ttl.count() > 0 ? node_timeout_for(s, ttl) : s.request_timeout;
  cfg.lock_deadline = lock_deadline;
  cfg.wait_all = kind == core_ns::op_kind::release && opts.wait_all_nodes;
  cfg.fenced = kind == core_ns::op_kind::acquire && opts.fencing.value_or(s.fencing);
  if (kind == core_ns::op_kind::acquire && opts.fair.value_or(s.fair)) {
    cfg.fair = true;
    cfg.refresh_every = s.fair_entry_timeout / 3;
  } else if (kind == core_ns::op_kind::acquire) {
    // Every manager's oldest waiter is woken by a release; deferring the younger ones by up
    // to this much (core::woken_delay) lets the longest waiter try first, alone. Fair mode
    // wakes only the head: no need. A few round trips of the slowest node, at least 2 ms.
    cfg.wake_spread = std::max<core_ns::duration>(milliseconds(2), s.request_timeout / 50);
  }
  if (kind == core_ns::op_kind::acquire && opts.max_wait) {
    // Counted from the call: time spent before the start (the identity check) counts too.
    cfg.wait_until = core_ns::clock::now() + *opts.max_wait;
  }
  return cfg;
}

// The one admission path of lock, extend and unlock once the arguments were checked: the
// operation is registered (quit waits for it) and handed to the manager on its strand, which
// starts it, holds it until the nodes' identities are known, or refuses it.
template <class Done>
bool admit(const std::shared_ptr<manager_impl>& m, core_ns::op_config cfg,
           std::vector<std::string> keys, std::string value, milliseconds ttl,
           std::uint64_t written, std::uint64_t uncertain, Done& done,
           asio::cancellation_slot slot = {}, std::uint64_t token = 0, const lock* from = nullptr,
           redlock::operation which = redlock::operation::lock,
           std::optional<std::string> owner_label = std::nullopt) {
  auto op = register_operation(*m, [&] {
    return std::make_shared<operation>(m, cfg, std::move(keys), std::move(value), ttl, written,
                                       uncertain, token);
  });
  if (!op)
    return false;
  if (from)
    op->inherit_fates(*from);
  else
    op->set_owner(std::move(owner_label));
  // The one check of the metrics: a manager without an observer measures nothing.
  if (auto* o = m->observer_.load(std::memory_order_acquire)) {
    if (cfg.kind == core_ns::op_kind::extend)
      which = redlock::operation::extend;
    else if (cfg.kind == core_ns::op_kind::release)
      which = redlock::operation::unlock;
    op->observe(o, which);
  }
  if constexpr (std::is_same_v<Done, lock_completion>) {
    op->lock_done_ = std::move(done);
  } else {
    op->unlock_done_ = std::move(done);
  }
  if (slot.is_connected())
    slot.template emplace<cancel_handler>(cancel_handler{op, m});
  asio::post(m->strand_, [m, op] { m->admit(op); });
  return true;
}

}  // namespace

void manager_impl::admit(const std::shared_ptr<operation>& op) {
  admit(gated{[op] { op->start(); },
              [op](const std::string& why) {
                op->refuse(make_error_code(errc::duplicate_deployment), why);
              }});
}

// On the strand: starts `g` now, holds it until the nodes' identities are known, or refuses it.
void manager_impl::admit(gated g) {
  switch (gate_) {
    case gate::unidentified:
      // The first operation: ask the nodes who they are first (lazily, so that a manager that
      // is never used never connects).
      gated_.push_back(std::move(g));
      begin_identify();
      return;
    case gate::open:
      g.start();
      return;
    case gate::identifying:
      gated_.push_back(std::move(g));
      return;
    case gate::refused:
      g.refuse(refusal_);
      return;
  }
}

// On the strand.
void manager_impl::begin_identify() {
  gate_ = gate::identifying;
  const std::size_t n = nodes_.size();
  identities_.assign(n, {});
  identify_left_ = n;
  // A node that cannot tell (down, slow) counts as unknown once this passes.
  gate_timer_.expires_after(settings_.connect_timeout + settings_.request_timeout);
  gate_timer_.async_wait([w = weak_from_this()](std::error_code ec) {
    if (ec)
      return;
    if (auto s = w.lock())
      s->open_gate();
  });
  auto self = shared_from_this();
  for (std::size_t i = 0; i < n; ++i) {
    nodes_[i]->async_identify([self, i](std::error_code, std::vector<std::string> ids) mutable {
      // May run inline (the default) or on the node's executor: hop to the strand. The
      // reference goes with the closure, so that the node's thread never holds the last one.
      auto& strand = self->strand_;
      asio::post(strand, [self = std::move(self), i, ids = std::move(ids)]() mutable {
        self->on_identity(i, std::move(ids));
      });
    });
  }
}

void manager_impl::on_identity(std::size_t i, std::vector<std::string> ids) {
  if (gate_ != gate::identifying || i >= identities_.size())
    return;
  identities_[i] = std::move(ids);
  if (--identify_left_ == 0)
    open_gate();
}

void manager_impl::open_gate() {
  if (gate_ != gate::identifying)
    return;
  gate_timer_.cancel();
  if (auto d = core_ns::find_duplicate(identities_)) {
    gate_ = gate::refused;
    refusal_ = "nodes[" + std::to_string(d->first) + "] (" + *ids_[d->first] + ") and nodes[" +
               std::to_string(d->second) + "] (" + *ids_[d->second] +
               ") reach the same deployment (" + d->identity +
               "): it would vote twice; list each deployment once";
  } else {
    gate_ = gate::open;
  }
  identities_.clear();
  identities_.shrink_to_fit();
  auto waiting = std::move(gated_);
  gated_.clear();
  for (auto& g : waiting)
    admit(std::move(g));
}

void manager_impl::open_notifiers() {
  if (!settings_.wakeup)
    return;
  notifiers_.reserve(nodes_.size());
  for (auto& n : nodes_) {
    // Events come on the notifier's executor: copy what they say and hop to the strand.
    auto on_event = [w = weak_from_this()](const notification& e) {
      auto self = w.lock();
      if (!self)
        return;
      // Moved into the closure: the notifier's thread must not hold the last reference.
      auto& strand = self->strand_;
      asio::post(strand, [self = std::move(self), what = e.what, channel = std::string(e.channel),
                          payload = std::string(e.payload)] {
        self->on_notification(what, channel, payload);
      });
    };
    auto nt = n->open_notifier(std::move(on_event));
    has_notifiers_ = has_notifiers_ || nt != nullptr;
    notifiers_.push_back(std::move(nt));
  }
}

std::uint64_t manager_impl::add_waiter(const std::shared_ptr<operation>& op,
                                       const std::vector<std::string>& channels, std::string name) {
  const auto id = next_waiter_++;
  waiters_.emplace(id, op);
  std::vector<std::string> fresh;
  wakes_.add(id, channels, fresh, std::move(name));
  for (const auto& c : fresh) {
    for (auto& n : notifiers_) {
      if (n)
        n->subscribe(c);
    }
  }
  return id;
}

void manager_impl::remove_waiter(std::uint64_t id, const std::vector<std::string>& channels) {
  waiters_.erase(id);
  std::vector<std::string> dropped;
  wakes_.remove(id, channels, dropped);
  for (const auto& c : dropped) {
    for (auto& n : notifiers_) {
      if (n)
        n->unsubscribe(c);
    }
  }
}

void manager_impl::on_notification(notification::kind what, const std::string& channel,
                                   const std::string& payload) {
  // A confirmed (re)subscription counts as a release for a waiting operation: one may have
  // been announced before it, while nothing listened (the first wait, a reconnect, a
  // failover).
  if (what == notification::kind::lost)
    return;  // the waiters' retry timers cover the gap
  const auto w = what == notification::kind::message ? wakes_.on_release(channel, payload)
                                                     : wakes_.oldest(channel);
  if (!w)
    return;
  auto it = waiters_.find(*w);
  if (it == waiters_.end())
    return;
  if (auto op = it->second.lock())
    op->wake(what == notification::kind::message);
}

void manager_impl::on_quit_deadline() {
  auto list = std::move(cleanups_);
  cleanups_.clear();
  for (auto& w : list) {
    if (auto op = w.lock())
      op->abandon_cleanup();
  }
}

void manager_impl::on_request_outcome(std::size_t i, const std::error_code& ec,
                                      std::string_view message, core_ns::time_point sent,
                                      core_ns::time_point now) {
  const auto outcome = core_ns::classify(ec);
  auto& h = health_[i];
  // The common case (the node stays as it was) takes no lock: only this strand writes.
  if (!h.may_change(outcome))
    return;
  std::optional<core_ns::health_machine::transition> t;
  {
    std::lock_guard g(health_mutex_);
    // A connection failure has no server text: say what failed (made only at a transition).
    t = h.on_outcome(outcome, ec, message.empty() && ec ? ec.message() : std::string(message), sent,
                     now);
  }
  if (!t)
    return;
  node_state_change c;
  c.index = i;
  c.node = *ids_[i];
  c.from = t->from;
  c.to = t->to;
  c.reason = h.reason();
  c.message = h.message();
  if (has_state_hook_.load(std::memory_order_acquire)) {
    std::shared_ptr<const std::function<void(const node_state_change&)>> hk;
    {
      std::lock_guard lk(hook_mutex_);
      hk = state_hook_;
    }
    if (hk && *hk) {
      try {
        (*hk)(c);
      } catch (...) {
        // The hook must not throw; an exception must not tear down an operation either.
      }
    }
  }
  if (auto* o = observer_.load(std::memory_order_acquire)) {
    try {
      o->node_state_changed(c);
    } catch (...) {
      // As above.
    }
  }
  if (h.wants_probe())
    arm_probe();
}

// On the strand: one timer serves every node that is down or lagging.
void manager_impl::arm_probe() {
  if (probe_armed_ || settings_.health_probe_interval.count() == 0 ||
      closing_flag_.load(std::memory_order_acquire))
    return;
  probe_armed_ = true;
  probe_timer_.expires_after(settings_.health_probe_interval);
  probe_timer_.async_wait([w = weak_from_this()](std::error_code ec) {
    auto self = w.lock();
    if (!self)
      return;
    self->probe_armed_ = false;
    if (!ec)
      self->on_probe_timer();
  });
}

void manager_impl::on_probe_timer() {
  if (closing_flag_.load(std::memory_order_acquire))
    return;
  bool any = false;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (!health_[i].wants_probe())
      continue;
    any = true;
    if (probing_[i] != 0)
      continue;  // one probe per node at a time: a silent node is not piled up
    probing_[i] = 1;
    const auto sent = core_ns::clock::now();
    // Weak: a probe still in flight must not keep the manager (or its io_context) alive, and
    // the node's thread must never hold the last reference.
    nodes_[i]->async_eval(
        probe_script(), {}, {},
        [w = weak_from_this(), i, sent](std::error_code ec, reply r) mutable {
          auto self = w.lock();
          if (!self)
            return;
          auto& strand = self->strand_;
          asio::post(strand, [self = std::move(self), i, sent, ec, r = std::move(r)]() mutable {
            self->on_probe_reply(i, ec, r, sent);
          });
        });
  }
  if (any)
    arm_probe();
}

void manager_impl::on_probe_reply(std::size_t i, std::error_code ec, const reply& r,
                                  core_ns::time_point sent) {
  probing_[i] = 0;
  const auto now = core_ns::clock::now();
  on_request_outcome(i, ec, r.is_error() ? std::string_view(r.str) : "", sent, now);
  if (auto* o = observer_.load(std::memory_order_acquire)) {
    try {
      o->node_request(node_request_event{i, ids_[i].get(), ec, now - sent});
    } catch (...) {
      // An observer must not throw.
    }
  }
}

std::vector<node_health> manager_impl::node_states() const {
  std::vector<node_health> v(nodes_.size());
  std::lock_guard g(health_mutex_);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto& h = health_[i];
    v[i].index = i;
    v[i].node = *ids_[i];
    v[i].state = h.state();
    v[i].reason = h.reason();
    v[i].message = h.message();
    v[i].since = h.since();
  }
  return v;
}

std::shared_ptr<manager_impl> make_manager(asio::any_io_executor ex,
                                           std::vector<std::shared_ptr<node>> nodes,
                                           manager_options s) {
  auto invalid = [](const char* why) {
    throw lock_error(make_error_code(errc::invalid_argument), why);
  };
  if (nodes.empty())
    invalid("a lock manager needs at least one node");
  std::unordered_set<const node*> seen;
  std::unordered_set<std::string> ids;
  for (const auto& n : nodes) {
    if (!n)
      invalid("null node");
    // The same server twice would vote twice and break the quorum's meaning. (The same
    // deployment under two names is found at the first operation: see begin_identify.)
    if (!seen.insert(n.get()).second)
      invalid("the same node object is listed twice");
    if (!ids.insert(n->id()).second)
      invalid("the same node id is listed twice");
  }
  if (!(s.drift_factor >= 0.0 && s.drift_factor < 1.0))
    invalid("drift_factor must be in [0, 1)");
  if (check_retry(s.retry_count, s.retry_delay, s.retry_jitter)) {
    invalid("retry_count must be >= -1 and retry delays must not be negative");
  }
  if (s.request_timeout.count() <= 0 || s.connect_timeout.count() <= 0) {
    invalid("timeouts must be positive");
  }
  if (s.node_lag_limit.count() < 0)
    invalid("node_lag_limit must not be negative");
  if (s.quit_timeout.count() < 0)
    invalid("quit_timeout must not be negative");
  if (s.fair_entry_timeout.count() <= 0)
    invalid("fair_entry_timeout must be positive");
  if (s.health_probe_interval.count() < 0)
    invalid("health_probe_interval must not be negative (0 turns the probe off)");
  if (s.key_prefix.find_first_of("{}") != std::string::npos)
    invalid(
        "key_prefix must not contain '{' or '}' (a hash tag in the prefix would put every "
        "lock in one Cluster slot)");
  // Per call, call_options may turn fencing or fair mode on: such a call is refused then.
  if (s.owner && s.fencing)
    invalid("owner metadata (manager_options::owner) cannot be combined with fencing");
  if (s.owner && s.fair)
    invalid("owner metadata (manager_options::owner) cannot be combined with fair mode");
  auto m = std::make_shared<manager_impl>(std::move(ex), std::move(nodes), s);
  m->open_notifiers();  // needs weak_from_this: not in the constructor
  return m;
}

void start_lock(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                milliseconds ttl, call_options opts, lock_completion done) {
  start_lock(m, std::move(resources), ttl, opts, asio::cancellation_slot(), std::move(done));
}

namespace {
// lock and try_lock (`which` says which, for the observer).
void start_acquire(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                   milliseconds ttl, call_options opts, asio::cancellation_slot slot,
                   lock_completion done, redlock::operation which) {
  refusal r = check_resources(resources);
  if (!r)
    r = check_ttl_and_options(m->settings_, ttl, opts);
  if (r)
    return post_lock_error(m, r.ec, std::move(done), std::move(r.detail));
  const auto cfg = config_for(core_ns::op_kind::acquire, *m, ttl, opts);
  if (cfg.fair && cfg.fenced) {
    return post_lock_error(m, errc::invalid_argument, std::move(done),
                           "fair and fencing cannot be combined (fair mode has no fencing "
                           "tokens yet)");
  }
  if (m->settings_.owner && (cfg.fair || cfg.fenced)) {
    return post_lock_error(m, errc::invalid_argument, std::move(done),
                           std::string("owner metadata (manager_options::owner) cannot be "
                                       "combined with ") +
                               (cfg.fair ? "fair mode" : "fencing"));
  }
  if (!admit(m, cfg, std::move(resources), make_lock_value(), ttl, 0, 0, done, slot, 0, nullptr,
             which, opts.owner_label))
    post_lock_error(m, errc::closed, std::move(done));
}
}  // namespace

void start_lock(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                milliseconds ttl, call_options opts, asio::cancellation_slot slot,
                lock_completion done) {
  start_acquire(m, std::move(resources), ttl, opts, slot, std::move(done),
                redlock::operation::lock);
}

void start_try_lock(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                    milliseconds ttl, lock_completion done) {
  call_options once;
  once.retry_count = 0;
  start_acquire(
      m, std::move(resources), ttl, once, asio::cancellation_slot(),
      [d = std::move(done)](std::error_code ec, lock l) mutable {
        // Someone else holding it is the answer to the question, not a failure.
        if (ec == errc::resource_locked)
          ec = {};
        d(ec, std::move(l));
      },
      redlock::operation::try_lock);
}

void start_extend(const std::shared_ptr<manager_impl>& m, const lock& l, milliseconds ttl,
                  call_options opts, lock_completion done) {
  if (!m) {
    // An empty handle, or one whose manager is gone.
    const auto ec = make_error_code(l.acquired() ? errc::closed : errc::invalid_argument);
    asio::post(asio::system_executor(),
               [done = std::move(done), ec]() mutable { done(ec, lock()); });
    return;
  }
  refusal r = check_handle(m, l);
  if (!r)
    r = check_ttl_and_options(m->settings_, ttl, opts);
  if (r)
    return post_lock_error(m, r.ec, std::move(done), std::move(r.detail));
  auto cfg = config_for(core_ns::op_kind::extend, *m, ttl, opts, l.validity_deadline());
  cfg.fair = lock_access::fair(l);  // kept in the extended handle
  if (!admit(m, cfg, l.resources(), l.value(), ttl, lock_access::written_nodes(l),
             lock_access::uncertain_nodes(l), done, {}, l.fencing_token(), &l))
    post_lock_error(m, errc::closed, std::move(done));
}

void start_unlock(const std::shared_ptr<manager_impl>& m, const lock& l, call_options opts,
                  unlock_completion done) {
  if (!m) {
    return post_unlock_error(m, l.acquired() ? errc::closed : errc::invalid_argument,
                             std::move(done));
  }
  refusal r = check_handle(m, l);
  if (!r)
    r = check_options(m->settings_, opts);
  if (r)
    return post_unlock_error(m, r.ec, std::move(done), std::move(r.detail));
  auto cfg = config_for(core_ns::op_kind::release, *m, l.ttl(), opts, l.validity_deadline());
  cfg.fair = lock_access::fair(l);  // a fair lock's release also leaves the queues
  if (!admit(m, cfg, l.resources(), l.value(), l.ttl(), lock_access::written_nodes(l),
             lock_access::uncertain_nodes(l), done, {}, 0, &l))
    post_unlock_error(m, errc::closed, std::move(done));
}

void start_quit(const std::shared_ptr<manager_impl>& m, quit_completion done) {
  std::unique_lock lk(m->life_mutex_);
  const bool first = !m->closing_;
  m->closing_ = true;
  m->closing_flag_.store(true, std::memory_order_release);
  if (m->closed_) {
    lk.unlock();
    const std::error_code ec =
        m->abandoned_.load() > 0 ? make_error_code(errc::timeout) : std::error_code{};
    asio::post(m->strand_, [done = std::move(done), ec]() mutable { done(ec); });
    return;
  }
  m->quit_waiters_.push_back(std::move(done));
  if (m->in_flight_ == 0) {
    // Posted so that the completion never runs inside async_quit.
    m->finish_quit(lk);
    return;
  }
  lk.unlock();
  if (first) {
    // Cleanup still being retried gets quit_timeout, then its keys are left to their TTL.
    asio::post(m->strand_, [m] {
      {
        std::lock_guard g(m->life_mutex_);
        if (m->closed_)
          return;
      }
      m->quit_timer_.expires_after(m->settings_.quit_timeout);
      m->quit_timer_.async_wait([m](std::error_code ec) {
        if (!ec)
          m->on_quit_deadline();
      });
    });
  }
}

void when_admitted(const std::shared_ptr<manager_impl>& m, unique_function<void()> start,
                   unique_function<void(const std::string&)> refused) {
  asio::post(m->strand_,
             [m, g = manager_impl::gated{std::move(start), std::move(refused)}]() mutable {
               m->admit(std::move(g));
             });
}

const asio::any_io_executor& executor_of(const manager_impl& m) noexcept {
  return m.ex_;
}

const std::vector<std::shared_ptr<node>>& nodes_of(const manager_impl& m) noexcept {
  return m.nodes_;
}

const manager_options& settings_of(const manager_impl& m) noexcept {
  return m.settings_;
}

void report_node_error(manager_impl& m, const node_error& e) {
  if (!m.has_hook_.load(std::memory_order_acquire))
    return;
  // Every call on the manager's strand (inline when already there): operations, inspection
  // and distributed_mutex report from different executors, and the hook must never run
  // concurrently with itself.
  asio::dispatch(m.strand_, [self = m.shared_from_this(), e] {
    std::shared_ptr<const std::function<void(const node_error&)>> h;
    {
      std::lock_guard lk(self->hook_mutex_);
      h = self->hook_;
    }
    if (h && *h) {
      try {
        (*h)(e);
      } catch (...) {
        // The hook must not throw; an exception must not tear down an operation either.
      }
    }
  });
}

bool begin_operation(manager_impl& m) noexcept {
  std::lock_guard lk(m.life_mutex_);
  if (m.closing_)
    return false;
  ++m.in_flight_;
  return true;
}

void end_operation(manager_impl& m) noexcept {
  std::unique_lock lk(m.life_mutex_);
  --m.in_flight_;
  if (m.closing_ && !m.closed_ && m.in_flight_ == 0)
    m.finish_quit(lk);
}

asio::any_io_executor fallback_executor(const manager_impl* m) noexcept {
  if (m)
    return m->ex_;
  return asio::system_executor();
}

namespace {
// Closes now, without waiting: operations in flight fail with errc::closed.
void close_without_waiting(const std::shared_ptr<manager_impl>& impl) noexcept {
  if (!impl)
    return;
  auto& m = *impl;
  std::unique_lock lk(m.life_mutex_);
  m.closing_ = true;
  m.closing_flag_.store(true, std::memory_order_release);
  if (m.closed_)
    return;
  m.finish_quit(lk);
}
}  // namespace

}  // namespace redlock::detail

namespace redlock {

lock_manager::lock_manager(executor_type ex, std::vector<std::shared_ptr<node>> nodes,
                           manager_options s)
    : impl_(detail::make_manager(std::move(ex), std::move(nodes), s)) {}

lock_manager::~lock_manager() {
  detail::close_without_waiting(impl_);
}

lock_manager& lock_manager::operator=(lock_manager&& other) noexcept {
  if (this != &other) {
    // The old manager would otherwise be dropped with its nodes still open.
    detail::close_without_waiting(impl_);
    impl_ = std::move(other.impl_);
  }
  return *this;
}

std::size_t lock_manager::size() const noexcept {
  return impl_->nodes_.size();
}
std::size_t lock_manager::quorum() const noexcept {
  return impl_->quorum_;
}
const manager_options& lock_manager::options() const noexcept {
  return impl_->settings_;
}

void lock_manager::on_node_state(std::function<void(const node_state_change&)> hook) {
  auto h = std::make_shared<const std::function<void(const node_state_change&)>>(std::move(hook));
  std::lock_guard lk(impl_->hook_mutex_);
  impl_->has_state_hook_.store(static_cast<bool>(*h), std::memory_order_release);
  impl_->state_hook_ = std::move(h);
}

std::vector<node_health> lock_manager::node_states() const {
  return impl_->node_states();
}

manager_stats lock_manager::stats() const {
  auto& m = *impl_;
  manager_stats st;
  {
    std::lock_guard g(m.held_mutex_);
    m.sweep_held(std::chrono::steady_clock::now());
    st.locks_held = m.held_.size();
  }
  st.operations_waiting = m.waiting_.load(std::memory_order_relaxed);
  st.nodes = m.node_states();
  return st;
}

void lock_manager::set_observer(std::shared_ptr<observer> o) {
  std::lock_guard lk(impl_->hook_mutex_);
  impl_->observer_.store(o.get(), std::memory_order_release);
  if (o)
    impl_->observers_.push_back(std::move(o));
}

void lock_manager::on_node_error(std::function<void(const node_error&)> hook) {
  auto h = std::make_shared<const std::function<void(const node_error&)>>(std::move(hook));
  std::lock_guard lk(impl_->hook_mutex_);
  impl_->has_hook_.store(static_cast<bool>(*h), std::memory_order_release);
  impl_->hook_ = std::move(h);
}

}  // namespace redlock

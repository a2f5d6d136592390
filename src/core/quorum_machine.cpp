#include "internal/core.hpp"
#include "redlock/error.hpp"

namespace redlock::detail::core {

quorum_machine::quorum_machine(const op_config& config, random_source random)
    : config_(config), random_(random), tally_(config.nodes), nodes_(config.nodes) {}

action quorum_machine::resume(const event& e) {
  switch (e.kind) {
    case event::type::start:
      if (phase_ != phase::init)
        return {};
      if (config_.kind == op_kind::extend && e.now >= config_.lock_deadline) {
        // Extending needs a lock that is still ours; nothing is sent.
        return finish(errc::lock_expired, e.now);
      }
      expired_at_start_ = config_.kind == op_kind::release && e.now >= config_.lock_deadline;
      return begin_round(e.now, false);
    case event::type::reply:
      return on_reply(e);
    case event::type::attempt_timeout:
      return on_attempt_timeout(e);
    case event::type::retry_timer:
      return on_retry_timer(e);
    case event::type::cancel:
      return on_cancel(e);
    case event::type::next:
      return next();
    case event::type::wake:
      return on_wake(e);
  }
  return {};
}

action quorum_machine::begin_round(time_point now, bool only_not_done) {
  phase_ = phase::attempting;
  if (attempts_ == 0)
    first_start_ = now;
  ++attempts_;
  // Attempts before the poll instant (woken, or at the holders' expiry) are extra: see the
  // class comment.
  attempt_counted_ = now >= poll_at_;
  if (attempt_counted_)
    ++counted_;
  ++attempt_id_;
  attempt_start_ = now;
  confirming_ = false;
  token_ = 0;
  awaiting_ = 0;
  if (config_.kind == op_kind::release) {
    tally_.reset_against();  // nodes that released stay counted across rounds
  } else {
    tally_.reset();
  }
  for (auto& n : nodes_) {
    const bool ask = !(only_not_done && n.done);
    n.in_round = ask;
    if (!ask)
      continue;
    n.outcome = vote::pending;
    n.ans = answer::error;
    n.ec.clear();
    n.message.clear();  // keeps capacity: no growth over many attempts
    n.latency = duration::zero();
    n.counter = 0;
    n.holder_expiry = time_point::max();
    ++awaiting_;
  }
  if (config_.kind == op_kind::acquire)
    dirty_ = true;
  return {action::type::send, 0, config_.node_timeout, {}};
}

// Phase 2 of a fenced acquire: confirm t (the largest counter among the grants counted) on
// exactly the nodes whose grants were counted. Nodes not asked keep their phase-1 answer in
// the report and count against: they cannot confirm. A fresh attempt id makes late phase-1
// answers of this attempt stale for the machine (the driver still tracks their writes).
action quorum_machine::begin_confirm(time_point /*now*/) {
  confirming_ = true;
  ++attempt_id_;
  std::uint64_t t = 0;
  for (const auto& n : nodes_) {
    if (n.in_round && n.ans == answer::ok)
      t = std::max(t, n.counter);
  }
  token_ = t;
  tally_.reset();
  awaiting_ = 0;
  for (auto& n : nodes_) {
    const bool ask = n.in_round && n.ans == answer::ok;
    n.in_round = ask;
    if (!ask) {
      tally_.reject();
      continue;
    }
    n.outcome = vote::pending;
    n.ans = answer::error;
    n.ec.clear();
    n.message.clear();
    ++awaiting_;
  }
  return {action::type::confirm, 0, config_.node_timeout, {}};
}

void quorum_machine::record(std::size_t i, answer a, std::error_code ec, std::string_view message,
                            time_point now) {
  auto& n = nodes_[i];
  n.ans = a;
  n.message.assign(message);
  n.outcome = to_vote(a);
  n.ec = ec;
  n.latency = now - attempt_start_;
  --awaiting_;
  if (a == answer::stale)
    n.message.assign("a fencing counter there is above our candidate token (a later acquire)");
  if (config_.kind == op_kind::release) {
    if (a == answer::ok || a == answer::absent) {
      n.done = true;
      if (a == answer::ok) {
        ++released_;
      } else {
        ++absent_;
      }
      tally_.grant();
    } else {
      tally_.reject();
    }
  } else if (a == answer::ok) {
    tally_.grant();
  } else {
    tally_.reject();
  }
}

action quorum_machine::on_reply(const event& e) {
  if (e.node >= nodes_.size() || e.attempt != attempt_id_)
    return {};
  auto& n = nodes_[e.node];
  if (phase_ == phase::settled) {
    // A late answer after a successful extend: a node that lost our keys (restarted) gets
    // them back, but only while the new validity remains, so an expired lock is never
    // recreated.
    if (config_.kind == op_kind::extend && n.in_round && n.outcome == vote::pending) {
      n.ans = e.ans;
      n.outcome = to_vote(e.ans);
      n.ec = e.ec;
      n.message.assign(e.message);
      n.latency = e.now - attempt_start_;
      if (e.ans == answer::missing && !n.resynced && !resyncs_stopped_ && e.now < deadline_) {
        n.resynced = true;
        return {action::type::resync, e.node, {}, {}};
      }
    }
    return {};
  }
  if (phase_ != phase::attempting || !n.in_round || n.outcome != vote::pending)
    return {};
  record(e.node, e.ans, e.ec, e.message, e.now);
  if (config_.fenced && !confirming_ && e.ans == answer::ok)
    n.counter = e.counter;
  if (config_.kind == op_kind::acquire && !confirming_ && e.ans == answer::foreign &&
      e.holder_ttl >= milliseconds::zero())
    n.holder_expiry = e.now + e.holder_ttl + milliseconds(1);
  return evaluate(e.now);
}

action quorum_machine::on_attempt_timeout(const event& e) {
  if (phase_ != phase::attempting)
    return {};
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    auto& n = nodes_[i];
    if (n.in_round && n.outcome == vote::pending) {
      record(i, answer::timeout, make_error_code(errc::timeout), {}, e.now);
    }
  }
  return evaluate(e.now);
}

action quorum_machine::on_retry_timer(const event& e) {
  if (phase_ != phase::waiting)
    return {};
  if (config_.kind != op_kind::acquire && e.now >= config_.lock_deadline) {
    // The lock ran out while we waited: no retry can help any more.
    return finish(last_error_, e.now);
  }
  if (e.now >= config_.wait_until) {
    // The wait budget is spent. Fair mode: leave the queues (the failed attempt's release
    // kept our entries there).
    release_pending_ = config_.fair;
    return finish(last_error_, e.now);
  }
  return begin_round(e.now, config_.kind == op_kind::release);
}

action quorum_machine::on_wake(const event& e) {
  if (config_.kind != op_kind::acquire)
    return {};
  if (phase_ == phase::attempting) {
    wake_pending_ = true;  // if this attempt fails, the next one starts at once
    woken_ = true;
    return {};
  }
  if (phase_ != phase::waiting)
    return {};
  if (e.now >= config_.wait_until) {
    release_pending_ = config_.fair;  // as in on_retry_timer
    return finish(last_error_, e.now);
  }
  woken_ = true;
  const auto defer = woken_delay(config_.wake_spread, e.now - first_start_);
  if (defer > duration::zero()) {
    // Keeps an earlier instant already scheduled (the poll, the holders' expiry).
    if (e.now + defer < wake_at_) {
      wake_at_ = e.now + defer;
      return schedule(wake_at_, e.now);
    }
    return {};
  }
  return begin_round(e.now, false);
}

action quorum_machine::on_cancel(const event& e) {
  if (phase_ == phase::done || phase_ == phase::settled)
    return {};
  // Fair mode: our queue entries stay on the nodes after a failed attempt; a cancelled
  // waiter leaves them at once rather than holding up the queue until they expire.
  if (config_.kind == op_kind::acquire && (dirty_ || (config_.fair && attempts_ > 0))) {
    release_pending_ = true;
    dirty_ = false;
  }
  return finish(e.ec, e.now);
}

std::error_code quorum_machine::against_code() const noexcept {
  std::size_t answered_no = 0;
  std::size_t failed = 0;
  for (const auto& n : nodes_) {
    if (!n.in_round)
      continue;
    if (n.ans == answer::foreign || n.ans == answer::missing || n.ans == answer::stale) {
      if (n.outcome != vote::pending)
        ++answered_no;
    } else if (n.outcome == vote::error || n.outcome == vote::timeout) {
      ++failed;
    }
  }
  // "Someone else holds it" only when the servers that answered "no" outweigh the failures;
  // otherwise the failing servers are what stood between us and a quorum.
  if (answered_no > 0 && answered_no >= failed) {
    return config_.kind == op_kind::extend ? make_error_code(errc::lock_lost)
                                           : make_error_code(errc::resource_locked);
  }
  return make_error_code(errc::quorum_unreachable);
}

action quorum_machine::evaluate(time_point now) {
  if (config_.kind == op_kind::release) {
    if (!expired_at_start_ && tally_.state() == decision::reached &&
        (!config_.wait_all || awaiting_ == 0))
      return finish({}, now);
    if (awaiting_ > 0)
      return {};
    if (expired_at_start_)
      return finish(errc::lock_expired, now);
    return fail(errc::quorum_unreachable, now);
  }
  switch (tally_.state()) {
    case decision::pending:
      return {};
    case decision::reached: {
      const auto dl = validity_deadline(config_.ttl, config_.drift_factor, attempt_start_);
      if (now < dl) {
        if (config_.fenced && !confirming_)
          return begin_confirm(now);
        deadline_ = dl;
        if (config_.kind == op_kind::extend) {
          resync_scan_ = true;
          resync_cursor_ = 0;
        }
        return finish({}, now);
      }
      return fail(errc::validity_exhausted, now);
    }
    case decision::impossible:
      return fail(against_code(), now);
  }
  return {};
}

action quorum_machine::fail(std::error_code code, time_point now) {
  last_error_ = code;
  if (config_.kind != op_kind::acquire) {
    if (config_.retry.may_retry(attempts_)) {
      const auto d = jittered_delay(config_.retry.delay, config_.retry.jitter, random_());
      // Extend and release only make sense while the lock can still be valid when we retry.
      if (now + d < config_.lock_deadline)
        return schedule(now + d, now);
    }
    return finish(code, now);
  }
  // Release everywhere, also where the node timed out (its write may have landed), so the
  // next attempt never meets our own leftovers.
  release_pending_ = true;
  dirty_ = false;
  const bool woken = wake_pending_;
  wake_pending_ = false;
  if (attempt_counted_) {
    if (!config_.retry.may_retry(counted_))
      return finish(code, now);
    poll_at_ = now + jittered_delay(config_.retry.delay, config_.retry.jitter, random_());
  }
  auto at = woken ? now : std::min(poll_at_, quorum_free_at());
  // A release was announced, or the holders' keys should have expired (an uncounted
  // attempt), but failing nodes kept this attempt from a decision (a server paused or
  // restarting, a node still on a demoted master after a failover): the lock is probably
  // free, so try again after a backoff doubling from node_timeout, not only at the poll.
  if ((woken_ || !attempt_counted_) && code == errc::quorum_unreachable) {
    unreachable_backoff_ =
        unreachable_backoff_ == duration::zero() ? config_.node_timeout : 2 * unreachable_backoff_;
    at = std::min(at, now + unreachable_backoff_);
  } else if (code != errc::quorum_unreachable) {
    unreachable_backoff_ = duration::zero();
  }
  if (config_.fair && config_.refresh_every != duration::max())
    at = std::min(at, now + config_.refresh_every);
  woken_ = false;
  return schedule(at, now);
}

// The earliest instant at which a quorum can be free of the holders that denied this
// attempt: nodes that granted count as free now (we release them), a denying node once the
// TTL it reported has passed. Only a denial makes it useful: when a quorum granted (the
// attempt ran out of validity) or too few nodes reported a TTL, time_point::max().
time_point quorum_machine::quorum_free_at() const noexcept {
  std::size_t granted = 0;
  std::size_t known = 0;
  for (const auto& n : nodes_) {
    if (n.ans == answer::ok)
      ++granted;
    else if (n.holder_expiry != time_point::max())
      ++known;
  }
  const auto q = tally_.quorum();
  if (granted >= q || granted + known < q)
    return time_point::max();
  // The (q - granted)-th earliest expiry among the denials completes a quorum: the smallest
  // expiry with at least that many at or before it. N is small; no allocation.
  const auto need = q - granted;
  auto known_expiry = [](const node_state& n) {
    return n.ans != answer::ok && n.holder_expiry != time_point::max();
  };
  time_point at = time_point::max();
  for (const auto& a : nodes_) {
    if (!known_expiry(a) || a.holder_expiry >= at)
      continue;
    std::size_t before = 0;
    for (const auto& b : nodes_) {
      if (known_expiry(b) && b.holder_expiry <= a.holder_expiry)
        ++before;
    }
    if (before >= need)
      at = a.holder_expiry;
  }
  return at;
}

// Waits until `at` (at once when it has passed), cut to the wait budget's end; past the
// end, the operation completes with the last error.
action quorum_machine::schedule(time_point at, time_point now) {
  if (now >= config_.wait_until)
    return finish(last_error_, now);
  at = std::clamp(at, now, config_.wait_until);
  phase_ = phase::waiting;
  wait_pending_ = true;
  wait_delay_ = at - now;
  wake_at_ = at;
  return next();
}

action quorum_machine::finish(std::error_code code, time_point now) {
  for (auto& n : nodes_) {
    if (n.in_round && n.outcome == vote::pending)
      n.latency = now - attempt_start_;
  }
  phase_ = (!code && config_.kind == op_kind::extend) ? phase::settled : phase::done;
  complete_pending_ = true;
  complete_ec_ = code;
  return next();
}

action quorum_machine::next() {
  if (release_pending_) {
    release_pending_ = false;
    return {action::type::release_all, 0, {}, {}};
  }
  if (resync_scan_ && resyncs_stopped_)
    resync_scan_ = false;
  if (resync_scan_) {
    while (resync_cursor_ < nodes_.size()) {
      auto& n = nodes_[resync_cursor_++];
      if (n.in_round && n.ans == answer::missing && n.outcome == vote::denied && !n.resynced) {
        n.resynced = true;
        return {action::type::resync, resync_cursor_ - 1, {}, {}};
      }
    }
    resync_scan_ = false;
  }
  if (wait_pending_) {
    wait_pending_ = false;
    return {action::type::wait, 0, wait_delay_, {}};
  }
  if (complete_pending_) {
    complete_pending_ = false;
    return {action::type::complete, 0, {}, complete_ec_};
  }
  return {};
}

}  // namespace redlock::detail::core

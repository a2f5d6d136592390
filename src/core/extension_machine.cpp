// The sans-I/O decisions of a hold: when to extend, when to retry, when the hold ends.
#include <algorithm>
#include <cmath>

#include "internal/extension_machine.hpp"
#include "redlock/error.hpp"

namespace redlock {

const char* to_string(loss_reason r) noexcept {
  switch (r) {
    case loss_reason::none:
      return "none";
    case loss_reason::lost:
      return "lost";
    case loss_reason::expired:
      return "expired";
    case loss_reason::max_hold:
      return "max_hold";
    case loss_reason::closed:
      return "closed";
  }
  return "unknown";
}

namespace detail {

extension_machine::timing extension_machine::make_timing(std::chrono::milliseconds ttl,
                                                         const hold_options& o) {
  using std::chrono::milliseconds;
  // NaN fails both comparisons, so it is rejected too.
  if (!(o.extend_threshold > 0.0 && o.extend_threshold < 1.0)) {
    throw lock_error(make_error_code(errc::invalid_argument),
                     "hold_options::extend_threshold must be in (0, 1)");
  }
  if (ttl <= milliseconds::zero()) {
    throw lock_error(make_error_code(errc::invalid_argument), "hold: ttl must be positive");
  }
  if (o.extend_retry_delay < milliseconds::zero()) {
    throw lock_error(make_error_code(errc::invalid_argument),
                     "hold_options::extend_retry_delay must not be negative");
  }
  if (o.max_hold && *o.max_hold <= milliseconds::zero()) {
    throw lock_error(make_error_code(errc::invalid_argument),
                     "hold_options::max_hold must be positive");
  }
  timing t;
  t.ttl = ttl;
  t.threshold = std::chrono::duration_cast<duration>(std::chrono::duration<double, std::milli>(
      static_cast<double>(ttl.count()) * o.extend_threshold));
  if (o.extend_retry_delay > milliseconds::zero()) {
    t.retry_delay = o.extend_retry_delay;
  } else {
    // A tenth of the TTL gives about five rounds within the default half-TTL window; the
    // clamp keeps tiny TTLs from hammering the nodes and huge ones from waiting too long.
    t.retry_delay = std::clamp<duration>(ttl / 10, milliseconds(10), milliseconds(1000));
  }
  if (o.max_hold)
    t.max_hold = *o.max_hold;
  return t;
}

void check_hold_options(std::chrono::milliseconds ttl, const hold_options& o) {
  (void)extension_machine::make_timing(ttl, o);
}

extension_machine::extension_machine(timing t, time_point acquired_at, time_point deadline)
    : timing_(t), acquired_at_(acquired_at), deadline_(deadline) {}

void extension_machine::end(loss_reason r) noexcept {
  if (reason_ == loss_reason::none)
    reason_ = r;
}

extension_machine::action extension_machine::resume(time_point now) {
  if (stopped_)
    return {};
  if (reason_ == loss_reason::none) {
    // The cap first: at the cap the routine must stop even if the lock is still valid.
    if (timing_.max_hold && now >= acquired_at_ + *timing_.max_hold) {
      end(loss_reason::max_hold);
    } else if (now >= deadline_) {
      // Validity ran out while no extension succeeded: an extension that is still in flight
      // and succeeds later cannot undo the gap in which exclusion was not guaranteed.
      end(loss_reason::expired);
    }
  }
  if (reason_ != loss_reason::none) {
    if (signalled_)
      return {};
    signalled_ = true;
    return {action::type::signal, {}, reason_};
  }
  auto limit = deadline_;
  if (timing_.max_hold)
    limit = std::min(limit, acquired_at_ + *timing_.max_hold);
  if (in_flight_)
    return {action::type::wait, limit, loss_reason::none};
  auto extend_at = std::max(deadline_ - timing_.threshold, retry_at_);
  if (now >= extend_at) {
    in_flight_ = true;
    return {action::type::extend, {}, loss_reason::none};
  }
  return {action::type::wait, std::min(extend_at, limit), loss_reason::none};
}

void extension_machine::on_extended(time_point new_deadline) {
  in_flight_ = false;
  // After a signal the hold is over for the routine; a late success changes nothing. After
  // stop() (a release waiting for this round) the success still counts: it did extend.
  if (reason_ != loss_reason::none)
    return;
  deadline_ = new_deadline;
  retry_at_ = {};
  error_ = {};
  ++extensions_;
}

void extension_machine::on_extend_failed(std::error_code ec, time_point now) {
  in_flight_ = false;
  if (stopped_ || reason_ != loss_reason::none)
    return;
  error_ = ec;
  if (ec == errc::lock_lost) {
    end(loss_reason::lost);
  } else if (ec == errc::lock_expired) {
    end(loss_reason::expired);
  } else if (ec == errc::closed) {
    end(loss_reason::closed);
  } else {
    // Nodes down, slow or erroring: the lock may still be ours, so try again while the
    // validity lasts (resume ends the hold at the deadline).
    retry_at_ = now + timing_.retry_delay;
  }
}

}  // namespace detail
}  // namespace redlock

#include <cmath>

#include "internal/core.hpp"
#include "redlock/error.hpp"

namespace redlock::detail::core {

milliseconds drift_margin(milliseconds ttl, double drift_factor) noexcept {
  // Integer milliseconds like node-redlock: round(ttl × factor) + 2 ms, the 2 ms covering
  // Redis' 1 ms expiry granularity.
  const auto scaled = std::llround(static_cast<double>(ttl.count()) * drift_factor);
  return milliseconds{static_cast<milliseconds::rep>(scaled) + 2};
}

time_point validity_deadline(milliseconds ttl, double drift_factor,
                             time_point attempt_start) noexcept {
  return attempt_start + ttl - drift_margin(ttl, drift_factor);
}

duration validity(milliseconds ttl, double drift_factor, time_point attempt_start,
                  time_point now) noexcept {
  return validity_deadline(ttl, drift_factor, attempt_start) - now;
}

duration jittered_delay(milliseconds delay, milliseconds jitter, std::uint64_t random) noexcept {
  using std::chrono::microseconds;
  const auto j = std::chrono::duration_cast<microseconds>(jitter).count();
  auto d = std::chrono::duration_cast<microseconds>(delay).count();
  if (j > 0) {
    // Offset uniform over [-j, +j]; the modulo bias over 64 random bits is negligible.
    const auto span = static_cast<std::uint64_t>(2 * j + 1);
    d += static_cast<microseconds::rep>(random % span) - j;
  }
  if (d < 0)
    d = 0;
  return microseconds{d};
}

vote to_vote(answer a) noexcept {
  switch (a) {
    case answer::ok:
    case answer::absent:
      return vote::granted;
    case answer::foreign:
    case answer::missing:
    case answer::stale:
      return vote::denied;
    case answer::error:
      return vote::error;
    case answer::timeout:
      return vote::timeout;
  }
  return vote::error;
}

answer interpret(op_kind kind, const std::error_code& ec, const reply& r, std::size_t nkeys,
                 std::error_code& ec_out) noexcept {
  ec_out.clear();
  if (ec) {
    ec_out = ec;
    return ec == errc::timeout ? answer::timeout : answer::error;
  }
  if (r.kind != reply::type::integer) {
    ec_out = errc::protocol_error;
    return answer::error;
  }
  const auto n = static_cast<std::int64_t>(nkeys);
  switch (kind) {
    case op_kind::acquire:
      if (r.integer == n)
        return answer::ok;
      if (r.integer <= 0)  // negative: denied, and the holder's TTL (see holder_ttl_of)
        return answer::foreign;
      break;
    case op_kind::extend:
      if (r.integer == n)
        return answer::ok;
      if (r.integer == 0)
        return answer::foreign;
      if (r.integer == -1)
        return answer::missing;
      break;
    case op_kind::release:
      if (r.integer == 0)
        return answer::absent;
      if (r.integer > 0 && r.integer <= n)
        return answer::ok;
      break;
    case op_kind::confirm:
      if (r.integer == 1)
        return answer::ok;
      if (r.integer == 0)
        return answer::foreign;
      if (r.integer == -1)
        return answer::stale;
      break;
  }
  ec_out = errc::protocol_error;
  return answer::error;
}

duration woken_delay(duration spread, duration age) noexcept {
  if (spread <= duration::zero())
    return duration::zero();
  if (age < duration::zero())
    age = duration::zero();
  const double tau = 5.0 * static_cast<double>(spread.count());
  const double d =
      static_cast<double>(spread.count()) * tau / (tau + static_cast<double>(age.count()));
  return duration(static_cast<duration::rep>(d));
}

namespace {

// An acquire script's denial: 0 (the holder's TTL unknown, or its keys never expire) or
// -1 - PTTL of the holder's longest-lived key.
milliseconds holder_ttl_of(std::int64_t denial) noexcept {
  if (denial >= 0)
    return milliseconds(-1);
  // -1 - denial without overflow at the smallest value; a TTL beyond max_ttl is clamped.
  const auto ttl = -(denial + 1);
  return ttl > max_ttl.count() ? max_ttl : milliseconds(ttl);
}

}  // namespace

answer interpret(op_kind kind, bool fenced, const std::error_code& ec, const reply& r,
                 std::size_t nkeys, std::error_code& ec_out, std::uint64_t& counter,
                 milliseconds* holder_ttl) noexcept {
  counter = 0;
  if (holder_ttl)
    *holder_ttl = milliseconds(-1);
  if (!fenced || kind != op_kind::acquire) {
    const auto a = interpret(kind, ec, r, nkeys, ec_out);
    if (holder_ttl && kind == op_kind::acquire && a == answer::foreign)
      *holder_ttl = holder_ttl_of(r.integer);
    return a;
  }
  ec_out.clear();
  if (ec) {
    ec_out = ec;
    return ec == errc::timeout ? answer::timeout : answer::error;
  }
  if (r.kind != reply::type::integer) {
    ec_out = errc::protocol_error;
    return answer::error;
  }
  if (r.integer <= 0) {
    if (holder_ttl)
      *holder_ttl = holder_ttl_of(r.integer);
    return answer::foreign;
  }
  counter = static_cast<std::uint64_t>(r.integer);
  return answer::ok;
}

}  // namespace redlock::detail::core

// core::cleanup: which nodes still need a release after an operation ended (see core.hpp).
#include "internal/core.hpp"

namespace redlock::detail::core {

void cleanup::in_flight(std::size_t i, time_point until) noexcept {
  if (i >= nodes_.size())
    return;
  auto& n = nodes_[i];
  n.state = st::in_flight;
  n.until = std::max(n.until, until);
}

void cleanup::due(std::size_t i, time_point until, time_point at) noexcept {
  if (i >= nodes_.size())
    return;
  auto& n = nodes_[i];
  n.state = st::waiting;
  n.until = std::max(n.until, until);
  n.at = at;
}

void cleanup::sent(std::size_t i) noexcept {
  if (i >= nodes_.size() || nodes_[i].state == st::none)
    return;
  nodes_[i].state = st::in_flight;
  ++sent_;
}

void cleanup::uncertain(std::size_t i) noexcept {
  if (i < nodes_.size())
    nodes_[i].uncertain = true;
}

void cleanup::certain(std::size_t i) noexcept {
  if (i < nodes_.size())
    nodes_[i].uncertain = false;
}

void cleanup::answered(std::size_t i, release_answer a, time_point now,
                       std::uint64_t random) noexcept {
  if (i >= nodes_.size() || nodes_[i].state == st::none)
    return;
  auto& n = nodes_[i];
  // "Released" proves our write landed and is gone. "Absent" proves nothing while a write of
  // ours there has an unknown fate (timed out, lost with its connection): it may still run
  // (a server resuming from a pause, a retransmission after a partition), so keep releasing.
  const bool done = a == release_answer::released || (a == release_answer::absent && !n.uncertain);
  if (done || now >= n.until) {
    n.state = st::none;
    return;
  }
  n.backoff = n.backoff == duration::zero() ? limits_.first_backoff
                                            : std::min(n.backoff * 2, limits_.max_backoff);
  // Uniform in [backoff / 2, backoff], in microsecond steps: retries of many operations that
  // failed together (one reset connection) spread out instead of arriving as one burst.
  const auto hi = std::chrono::duration_cast<std::chrono::microseconds>(n.backoff).count();
  const auto lo = hi / 2;
  const auto span = static_cast<std::uint64_t>(hi - lo) + 1;
  n.at = now + std::chrono::microseconds(lo + static_cast<std::int64_t>(random % span));
  n.state = st::waiting;
}

void cleanup::abandon(std::size_t i) noexcept {
  if (i < nodes_.size())
    nodes_[i].state = st::none;
}

std::size_t cleanup::next_due(time_point now) const noexcept {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const auto& n = nodes_[i];
    if (n.state == st::waiting && n.at <= now && now < n.until)
      return i;
  }
  return nodes_.size();
}

time_point cleanup::next_wakeup() const noexcept {
  auto t = time_point::max();
  for (const auto& n : nodes_) {
    if (n.state == st::waiting)
      t = std::min(t, std::min(n.at, n.until));
    else if (n.state == st::in_flight)
      t = std::min(t, n.until);  // past it, the answer no longer matters
  }
  return t;
}

std::size_t cleanup::unconfirmed(time_point now) const noexcept {
  std::size_t c = 0;
  for (const auto& n : nodes_) {
    if (n.state != st::none && now < n.until)
      ++c;
  }
  return c;
}

bool cleanup::settled(time_point now) const noexcept {
  return unconfirmed(now) == 0;
}

}  // namespace redlock::detail::core

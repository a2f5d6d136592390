#include "internal/health.hpp"

#include "redlock/error.hpp"

namespace redlock::detail::core {

request_outcome classify(const std::error_code& ec) noexcept {
  if (!ec || ec == errc::server_error || ec == errc::no_permission)
    return request_outcome::answered;
  if (ec == errc::closed)
    return request_outcome::ignored;
  if (ec == errc::node_lagging)
    return request_outcome::lagging;
  // The handshake's AUTH failures are here too: the connection is unusable until the
  // configuration is fixed, which is what "down" tells an operator.
  return request_outcome::failed;
}

bool health_machine::may_change(request_outcome o) const noexcept {
  switch (o) {
    case request_outcome::answered:
      return state_ != health_state::up;
    case request_outcome::failed:
      return state_ != health_state::down;
    case request_outcome::lagging:
      return state_ == health_state::up || state_ == health_state::unknown;
    case request_outcome::ignored:
      break;
  }
  return false;
}

std::optional<health_machine::transition> health_machine::on_outcome(request_outcome o,
                                                                     const std::error_code& ec,
                                                                     std::string_view message,
                                                                     time_point sent,
                                                                     time_point now) {
  health_state to = state_;
  switch (o) {
    case request_outcome::ignored:
      return std::nullopt;
    case request_outcome::answered:
      to = health_state::up;
      break;
    case request_outcome::failed:
      to = health_state::down;
      break;
    case request_outcome::lagging:
      if (state_ == health_state::down)
        return std::nullopt;  // no news: nothing was sent
      to = health_state::lagging;
      break;
  }
  if (to == state_)
    return std::nullopt;
  // Older than the current state: it tells nothing new (see the class comment).
  if (state_ != health_state::unknown && sent < since_)
    return std::nullopt;
  const transition t{state_, to};
  state_ = to;
  since_ = now;
  if (to == health_state::up) {
    reason_ = {};
    message_.clear();
  } else {
    reason_ = ec;
    message_.assign(message);
  }
  return t;
}

}  // namespace redlock::detail::core

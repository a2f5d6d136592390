#include "redlock/observer.hpp"

namespace redlock {

const char* to_string(health_state s) noexcept {
  switch (s) {
    case health_state::unknown:
      return "unknown";
    case health_state::up:
      return "up";
    case health_state::lagging:
      return "lagging";
    case health_state::down:
      return "down";
  }
  return "unknown";
}

const char* to_string(operation o) noexcept {
  switch (o) {
    case operation::lock:
      return "lock";
    case operation::try_lock:
      return "try_lock";
    case operation::extend:
      return "extend";
    case operation::unlock:
      return "unlock";
  }
  return "unknown";
}

}  // namespace redlock

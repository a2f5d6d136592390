// Private: how every operation of a manager (lock, extend, unlock, try-lock, inspection) is
// checked and registered, so that they all refuse bad input the same way and quit waits for
// each of them.
#pragma once

#include <string>
#include <system_error>
#include <vector>

#include "redlock/detail/manager_impl.hpp"
#include "redlock/error.hpp"

namespace redlock::detail {

/// Why a call is refused before anything is sent: the code, and the argument it names (goes
/// to report::detail or inspection::detail).
struct refusal {
  std::error_code ec;
  std::string detail;
  explicit operator bool() const noexcept { return static_cast<bool>(ec); }
};

inline refusal invalid(std::string detail) {
  return {make_error_code(errc::invalid_argument), std::move(detail)};
}

/// At least one resource, none empty, none twice (each named by its index).
refusal check_resources(const std::vector<std::string>& resources);

/// Registers an operation so that quit waits for it, and builds it with `make`; when `make`
/// throws, the registration is undone before the exception leaves. Returns an empty result
/// (nothing registered) once the manager is closing. end_operation() must follow every
/// non-empty result.
template <class Make>
auto register_operation(manager_impl& m, Make&& make) -> decltype(make()) {
  if (!begin_operation(m))
    return {};
  try {
    return make();
  } catch (...) {
    end_operation(m);
    throw;
  }
}

}  // namespace redlock::detail

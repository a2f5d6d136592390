// A decoded RESP2 reply.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace redlock {

/// One RESP2 reply as a plain value. Error replies keep the server's full message in `str`
/// (e.g. "NOPERM this user has no permissions to run the 'eval' command").
struct reply {
  enum class type { nil, status, error, integer, string, array };

  type kind = type::nil;
  std::int64_t integer = 0;     ///< for type::integer
  std::string str;              ///< for status, error and string
  std::vector<reply> elements;  ///< for type::array

  bool is_error() const noexcept { return kind == type::error; }
  bool is_integer(std::int64_t v) const noexcept { return kind == type::integer && integer == v; }

  friend bool operator==(const reply&, const reply&) = default;
};

}  // namespace redlock

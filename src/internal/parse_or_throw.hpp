// Private: the throwing form of a URL parser, from its error-code form.
#pragma once

#include <string>
#include <string_view>
#include <system_error>

#include "redlock/error.hpp"

namespace redlock::detail {

/// parse(url, ec, why), throwing lock_error(ec, why) on failure.
template <class Config>
Config parse_or_throw(Config (*parse)(std::string_view, std::error_code&, std::string&),
                      std::string_view url) {
  std::error_code ec;
  std::string why;
  Config c = parse(url, ec, why);
  if (ec)
    throw lock_error(ec, why);
  return c;
}

}  // namespace redlock::detail

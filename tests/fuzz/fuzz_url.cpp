// Fuzzes endpoint URL parsing and printing.
//
// Checks, besides "no crash, no UB":
//  - to_string() of a parsed endpoint does not depend on its password, parses again, and
//    prints the same;
//  - a password placed where the grammar puts one never shows up in an error message or in
//    to_string(), whatever the rest of the URL is.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "redlock/endpoint.hpp"

namespace {

constexpr std::string_view secret = "Zq9xSecretPw";

void check(bool ok) {
  if (!ok)
    std::abort();
}

void check_parsed(const redlock::endpoint& e) {
  const std::string printed = e.to_string();
  redlock::endpoint other = e;
  other.password = e.password.empty() ? "" : std::string("another") + e.password;
  check(other.to_string() == printed);
  std::error_code ec;
  std::string why;
  const redlock::endpoint again = redlock::parse_endpoint(printed, ec, why);
  check(!ec);
  check(again.to_string() == printed);
}

// Parses a URL that carries `secret` as a password; it must not leak.
void check_secret(const std::string& url) {
  std::error_code ec;
  std::string why;
  const redlock::endpoint e = redlock::parse_endpoint(url, ec, why);
  check(why.find(secret) == std::string::npos);
  if (!ec) {
    check(e.to_string().find(secret) == std::string::npos);
    check_parsed(e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::error_code ec;
  std::string why;
  const redlock::endpoint e = redlock::parse_endpoint(input, ec, why);
  if (ec) {
    check(!why.empty());
  } else {
    check(why.empty());
    check_parsed(e);
  }
  if (input.find(secret) != std::string_view::npos)
    return 0;
  const std::string rest(input);
  check_secret("redis://u:" + std::string(secret) + "@" + rest);
  check_secret("rediss://:" + std::string(secret) + rest + "@h");
  check_secret("unix:///s?password=" + std::string(secret) + rest);
  check_secret("unix:///s?" + rest + "&password=" + std::string(secret));
  return 0;
}

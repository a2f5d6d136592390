#include "server_list.hpp"

namespace redlock::cli {

namespace {

bool scheme_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '-' || c == '.';
}

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

/// True when `s` (after leading blanks) starts with "<scheme>://".
bool starts_with_scheme(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && is_blank(s[i]))
    ++i;
  const std::size_t start = i;
  while (i < s.size() && scheme_char(s[i]))
    ++i;
  // RFC 3986: a scheme starts with a letter.
  if (i == start || !((s[start] >= 'a' && s[start] <= 'z') || (s[start] >= 'A' && s[start] <= 'Z')))
    return false;
  return s.substr(i, 3) == "://";
}

void push_trimmed(std::string_view item, std::vector<std::string>& out) {
  const auto b = item.find_first_not_of(" \t");
  if (b == std::string_view::npos)
    return;
  const auto e = item.find_last_not_of(" \t");
  out.emplace_back(item.substr(b, e - b + 1));
}

}  // namespace

std::vector<std::string> split_server_list(std::string_view list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i] != ',')
      continue;
    const std::string_view rest = list.substr(i + 1);
    // A comma before another URL, or before nothing (a trailing or doubled comma): a
    // separator. Otherwise it belongs to the URL (a Sentinel or Cluster member list), which
    // then reports a bad member itself.
    if (starts_with_scheme(rest) || rest.find_first_not_of(" \t,") == std::string_view::npos ||
        rest.find_first_not_of(" \t") == rest.find(',')) {
      push_trimmed(list.substr(start, i - start), out);
      start = i + 1;
    }
  }
  push_trimmed(list.substr(start), out);
  return out;
}

}  // namespace redlock::cli

// Replies built by hand, for tests that feed parsers or compare decoded replies.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "redlock/reply.hpp"

namespace redlock::test {

inline reply text(reply::type kind, std::string s) {
  reply r;
  r.kind = kind;
  r.str = std::move(s);
  return r;
}
inline reply str(std::string s) {
  return text(reply::type::string, std::move(s));
}
inline reply status(std::string s) {
  return text(reply::type::status, std::move(s));
}
inline reply err(std::string s) {
  return text(reply::type::error, std::move(s));
}
inline reply integer(std::int64_t v) {
  reply r;
  r.kind = reply::type::integer;
  r.integer = v;
  return r;
}
inline reply nil() {
  return reply{};
}
inline reply array(std::vector<reply> elements) {
  reply r;
  r.kind = reply::type::array;
  r.elements = std::move(elements);
  return r;
}

}  // namespace redlock::test

#include "support/fault_checker.hpp"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace redlock::test {

check_result check_sections(std::vector<critical_section> sections,
                            std::optional<std::int64_t> final_register) {
  check_result r;
  r.sections = sections.size();
  std::sort(
      sections.begin(), sections.end(),
      [](const critical_section& a, const critical_section& b) { return a.start_ns < b.start_ns; });
  auto note = [&r](const std::string& what) {
    if (r.first_problem.empty())
      r.first_problem = what;
  };
  // Sweep by start time, remembering the section that ends last so far.
  const critical_section* latest = nullptr;
  for (const auto& s : sections) {
    if (latest != nullptr && s.start_ns < latest->end_ns && s.client != latest->client) {
      ++r.overlaps;
      note("client " + std::to_string(s.client) + " entered at " + std::to_string(s.start_ns) +
           " ns while client " + std::to_string(latest->client) + " held it until " +
           std::to_string(latest->end_ns) + " ns (overlap " +
           std::to_string(latest->end_ns - s.start_ns) + " ns)");
    }
    if (latest == nullptr || s.end_ns > latest->end_ns)
      latest = &s;
  }
  // Register history: each section must read what the previous one wrote.
  const critical_section* prev = nullptr;
  for (const auto& s : sections) {
    if (s.wrote < 0)
      continue;
    if (prev != nullptr && s.read != prev->wrote) {
      ++r.lost_updates;
      note("client " + std::to_string(s.client) + " read " + std::to_string(s.read) +
           " but the previous section (client " + std::to_string(prev->client) + ") wrote " +
           std::to_string(prev->wrote));
    }
    prev = &s;
  }
  if (final_register && prev != nullptr && *final_register != prev->wrote) {
    ++r.lost_updates;
    note("final register " + std::to_string(*final_register) + " but the last section wrote " +
         std::to_string(prev->wrote));
  }
  return r;
}

std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string to_line(const critical_section& s) {
  std::ostringstream o;
  o << s.client << ' ' << s.start_ns << ' ' << s.end_ns << ' ' << s.read << ' ' << s.wrote;
  return o.str();
}

std::optional<critical_section> parse_line(const std::string& line) {
  std::istringstream in(line);
  critical_section s;
  if (!(in >> s.client >> s.start_ns >> s.end_ns >> s.read >> s.wrote))
    return std::nullopt;
  return s;
}

}  // namespace redlock::test

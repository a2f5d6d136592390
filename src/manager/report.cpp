#include "redlock/report.hpp"

#include <algorithm>
#include <cstdio>

namespace redlock {

const char* to_string(vote v) noexcept {
  switch (v) {
    case vote::pending:
      return "pending";
    case vote::granted:
      return "granted";
    case vote::denied:
      return "denied";
    case vote::error:
      return "error";
    case vote::timeout:
      return "timeout";
  }
  return "unknown";
}

std::size_t report::count(vote v) const noexcept {
  return static_cast<std::size_t>(std::count_if(
      nodes.begin(), nodes.end(), [v](const node_result& r) { return r.outcome == v; }));
}

std::string report::to_string() const {
  std::string out;
  for (const auto& n : nodes) {
    char latency[32];
    std::snprintf(latency, sizeof latency, "%.2f ms",
                  static_cast<double>(n.latency.count()) / 1000.0);
    out += n.node.str();
    out += ": ";
    out += redlock::to_string(n.outcome);
    out += " (";
    out += latency;
    out += ")";
    if (n.ec) {
      out += ": ";
      out += n.ec.message();
    }
    if (!n.message.empty()) {
      out += ": ";
      out += n.message;
    }
    out += '\n';
  }
  return out;
}

}  // namespace redlock

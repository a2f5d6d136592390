// The verdict of an inspection: who holds the resources and until when, on the same quorum
// and drift formulas as the lock operations.
#include <algorithm>
#include <functional>
#include <map>

#include "internal/core.hpp"

namespace redlock::detail::core {

inspection_verdict judge_inspection(const std::vector<inspected_node>& nodes, double drift_factor,
                                    time_point started) {
  inspection_verdict v;
  v.quorum = quorum_of(nodes.size());
  v.free_nodes = static_cast<std::size_t>(
      std::count_if(nodes.begin(), nodes.end(), [](const inspected_node& n) { return n.free; }));

  std::map<std::string_view, std::size_t> votes;
  for (const auto& n : nodes) {
    if (n.answered && n.holder)
      ++votes[*n.holder];
  }
  const auto best = std::max_element(
      votes.begin(), votes.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  if (best == votes.end() || best->second < v.quorum) {
    if (v.free_nodes >= v.quorum)
      v.status = inspection_status::free;
    return v;
  }
  v.status = inspection_status::held;
  v.holder = std::string(best->first);
  v.holding_nodes = best->second;
  // A node holds as long as its shortest key; the quorum-th largest of those is how long a
  // quorum still holds. No expiry sorts above every TTL.
  constexpr auto unbounded = milliseconds::max();
  std::vector<milliseconds> ttls;
  auto largest = milliseconds::zero();
  for (const auto& n : nodes) {
    if (!n.answered || n.holder != best->first)
      continue;
    ttls.push_back(n.shortest_ttl.value_or(unbounded));
    if (n.shortest_ttl)
      largest = std::max(largest, *n.shortest_ttl);
  }
  std::sort(ttls.begin(), ttls.end(), std::greater<>());
  const auto kth = ttls[v.quorum - 1];
  v.validity_deadline =
      kth == unbounded ? time_point::max() : started + kth - drift_margin(largest, drift_factor);
  return v;
}

}  // namespace redlock::detail::core

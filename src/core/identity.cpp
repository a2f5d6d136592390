// core::find_duplicate: one deployment listed twice would vote twice (see core.hpp).
#include <map>

#include "internal/core.hpp"

namespace redlock::detail::core {

std::optional<duplicate_deployment> find_duplicate(
    const std::vector<std::vector<std::string>>& identities) {
  std::map<std::string_view, std::size_t> first_seen;
  std::optional<duplicate_deployment> best;
  for (std::size_t i = 0; i < identities.size(); ++i) {
    for (const auto& id : identities[i]) {
      if (id.empty())
        continue;
      auto [it, inserted] = first_seen.emplace(id, i);
      if (inserted || it->second == i)
        continue;
      // Report the pair with the lowest positions, so the message is stable.
      duplicate_deployment d{it->second, i, id};
      if (!best || d.second < best->second || (d.second == best->second && d.first < best->first))
        best = std::move(d);
    }
  }
  return best;
}

}  // namespace redlock::detail::core

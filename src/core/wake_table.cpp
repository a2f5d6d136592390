#include "internal/core.hpp"

namespace redlock::detail::core {

void wake_table::add(waiter w, const std::vector<std::string>& channels,
                     std::vector<std::string>& subscribe) {
  for (const auto& c : channels) {
    auto [it, fresh] = by_channel_.try_emplace(c);
    // Ids grow with registration, so appending keeps each queue oldest first.
    it->second.queue.push_back(w);
    if (fresh)
      subscribe.push_back(c);
  }
}

void wake_table::remove(waiter w, const std::vector<std::string>& channels,
                        std::vector<std::string>& unsubscribe) {
  for (const auto& c : channels) {
    auto it = by_channel_.find(c);
    if (it == by_channel_.end())
      continue;
    auto& q = it->second.queue;
    if (auto pos = std::find(q.begin(), q.end(), w); pos != q.end())
      q.erase(pos);
    if (q.empty()) {
      by_channel_.erase(it);
      unsubscribe.push_back(c);
    }
  }
}

std::optional<wake_table::waiter> wake_table::oldest(std::string_view channel) const {
  auto it = by_channel_.find(channel);
  if (it == by_channel_.end() || it->second.queue.empty())
    return std::nullopt;
  return it->second.queue.front();
}

std::optional<wake_table::waiter> wake_table::on_release(std::string_view channel,
                                                         std::string_view payload) {
  auto it = by_channel_.find(channel);
  if (it == by_channel_.end() || it->second.queue.empty())
    return std::nullopt;
  auto& e = it->second;
  const bool repeat = !payload.empty() && payload == e.last_payload;
  if (repeat) {
    // Another node's report of the same release: only for the waiter it woke, if still here.
    if (std::find(e.queue.begin(), e.queue.end(), e.woken) == e.queue.end())
      return std::nullopt;
    return e.woken;
  }
  e.last_payload.assign(payload);
  e.woken = e.queue.front();
  return e.woken;
}

}  // namespace redlock::detail::core

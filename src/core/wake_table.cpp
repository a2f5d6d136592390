#include "internal/core.hpp"

namespace redlock::detail::core {

void wake_table::add(waiter w, const std::vector<std::string>& channels,
                     std::vector<std::string>& subscribe, std::string name) {
  if (!name.empty()) {
    by_name_[name] = w;
    names_[w] = std::move(name);
  }
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
  if (auto n = names_.find(w); n != names_.end()) {
    if (auto b = by_name_.find(n->second); b != by_name_.end() && b->second == w)
      by_name_.erase(b);
    names_.erase(n);
  }
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
  constexpr std::string_view head = "head:";
  if (payload.substr(0, head.size()) == head) {
    auto b = by_name_.find(payload.substr(head.size()));
    if (b == by_name_.end() ||
        std::find(e.queue.begin(), e.queue.end(), b->second) == e.queue.end())
      return std::nullopt;
    return b->second;
  }
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

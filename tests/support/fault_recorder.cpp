#include "support/fault_recorder.hpp"

namespace redlock::test {

void value_log::add(const std::string& value) {
  std::lock_guard lk(mutex_);
  if (seen_.insert(value).second)
    order_.push_back(value);
}

std::vector<std::string> value_log::values() const {
  std::lock_guard lk(mutex_);
  return order_;
}

std::vector<std::string> value_log::values_from(std::size_t from) const {
  std::lock_guard lk(mutex_);
  if (from >= order_.size())
    return {};
  return {order_.begin() + static_cast<std::ptrdiff_t>(from), order_.end()};
}

std::size_t value_log::size() const {
  std::lock_guard lk(mutex_);
  return order_.size();
}

std::vector<std::shared_ptr<node>> record_values(std::vector<std::shared_ptr<node>> nodes,
                                                 const std::shared_ptr<value_log>& log) {
  for (auto& n : nodes)
    n = std::make_shared<recording_node>(std::move(n), log);
  return nodes;
}

}  // namespace redlock::test

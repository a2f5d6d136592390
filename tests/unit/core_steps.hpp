// Shared by the unit tests that drive the decision core step by step (core_test,
// fencing_test): a fixed start instant, a random source, the acquire settings they start from,
// and draining the machine's actions.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "internal/core.hpp"

namespace core_steps {

using namespace redlock::detail::core;
using namespace std::chrono_literals;

inline const time_point t0{std::chrono::hours(1000)};

inline std::uint64_t zero_random() {
  return 0;
}

/// 10 s TTL, drift 1 %, retry delay 200 ms ± `jitter`, node timeout 200 ms.
inline op_config acquire_config(std::size_t n, int retry_count = 0, milliseconds jitter = 100ms) {
  op_config c;
  c.kind = op_kind::acquire;
  c.nodes = n;
  c.ttl = 10s;
  c.drift_factor = 0.01;
  c.retry = {retry_count, 200ms, jitter};
  c.node_timeout = 200ms;
  return c;
}

/// Collects every action until idle, feeding event::next().
inline std::vector<action> drain(quorum_machine& m, action a) {
  std::vector<action> out;
  while (a.kind != action::type::idle) {
    out.push_back(a);
    a = m.resume(event::next());
  }
  return out;
}

}  // namespace core_steps

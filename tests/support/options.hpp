// The one set of short manager options the tests start from. A test that needs another value
// sets it on the result, where the reader sees it next to the behaviour it tests.
#pragma once

#include <chrono>

#include "redlock/options.hpp"

namespace redlock::test {

/// Short timeouts and retry pauses (the defaults are sized for production networks):
/// request_timeout 200 ms, connect_timeout 300 ms, retry_delay 20 ms, retry_jitter 10 ms.
/// Everything else keeps its default (retry_count 10, drift_factor 0.01, ...).
inline manager_options fast_options() {
  using namespace std::chrono_literals;
  manager_options o;
  o.request_timeout = 200ms;
  o.connect_timeout = 300ms;
  o.retry_delay = 20ms;
  o.retry_jitter = 10ms;
  return o;
}

}  // namespace redlock::test

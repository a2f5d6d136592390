// A tiny program built against an installed redlock::prometheus: it registers the metrics in
// a registry, feeds one event through the observer and prints the series it reads back in the
// text format. It needs neither Redis nor a network. Exit status 0 when the series was there.
#include <redlock.hpp>
#include <redlock/prometheus.hpp>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <iostream>
#include <string>

int main() {
  prometheus::Registry registry;
  redlock::prometheus_metrics metrics(registry, {.labels = {{"manager", "consumer"}}});
  redlock::operation_event e;
  e.op = redlock::operation::lock;
  e.attempts = 1;
  metrics.observer_ptr()->operation_done(e);

  const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  const std::string line =
      R"(redlock_operations_total{manager="consumer",operation="lock",result="ok"} 1)";
  const bool found = text.find(line + '\n') != std::string::npos;
  std::cout << "prometheus=" << (found ? "counted" : "missing") << '\n';
  return found ? 0 : 1;
}

#include "redlock/prometheus.hpp"

#include <prometheus/check_names.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "redlock/error.hpp"

namespace redlock {
namespace {

// Result labels: "ok", one per errc value (1 .. last), "other". The array index of a result
// is its errc value, 0 for ok, and result_count - 1 for other.
constexpr std::size_t errc_last = static_cast<std::size_t>(errc::duplicate_deployment);
constexpr std::size_t result_count = errc_last + 2;
constexpr std::size_t result_other = result_count - 1;

// The enumerator's own name, so that a label reads like the code in the caller's source. A
// switch without default: a new errc value without a name here fails the -Wswitch build.
const char* errc_name(errc e) noexcept {
  switch (e) {
    case errc::resource_locked:
      return "resource_locked";
    case errc::quorum_unreachable:
      return "quorum_unreachable";
    case errc::validity_exhausted:
      return "validity_exhausted";
    case errc::lock_expired:
      return "lock_expired";
    case errc::lock_lost:
      return "lock_lost";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::closed:
      return "closed";
    case errc::cancelled:
      return "cancelled";
    case errc::invalid_url:
      return "invalid_url";
    case errc::connect_failed:
      return "connect_failed";
    case errc::timeout:
      return "timeout";
    case errc::connection_lost:
      return "connection_lost";
    case errc::tls_failed:
      return "tls_failed";
    case errc::auth_failed:
      return "auth_failed";
    case errc::auth_required:
      return "auth_required";
    case errc::auth_not_configured:
      return "auth_not_configured";
    case errc::no_permission:
      return "no_permission";
    case errc::server_error:
      return "server_error";
    case errc::protocol_error:
      return "protocol_error";
    case errc::node_lagging:
      return "node_lagging";
    case errc::duplicate_deployment:
      return "duplicate_deployment";
  }
  return "other";
}

std::size_t result_index(const std::error_code& ec) noexcept {
  if (!ec) {
    return 0;
  }
  if (ec.category() == category() && ec.value() >= 1 &&
      static_cast<std::size_t>(ec.value()) <= errc_last) {
    return static_cast<std::size_t>(ec.value());
  }
  return result_other;
}

const char* result_name(std::size_t index) noexcept {
  if (index == 0) {
    return "ok";
  }
  if (index == result_other) {
    return "other";
  }
  return errc_name(static_cast<errc>(index));
}

constexpr std::array<operation, 4> all_operations{operation::lock, operation::try_lock,
                                                  operation::extend, operation::unlock};

constexpr std::array<health_state, 4> all_states{health_state::unknown, health_state::up,
                                                 health_state::lagging, health_state::down};

double seconds(std::chrono::nanoseconds d) noexcept {
  return std::chrono::duration<double>(d).count();
}

[[noreturn]] void invalid(const std::string& what) {
  throw lock_error(make_error_code(errc::invalid_argument), what);
}

constexpr std::array<std::string_view, 5> own_label_names{"operation", "result", "node", "code",
                                                          "state"};

void check_labels(const prometheus::Labels& labels, const char* argument) {
  for (const auto& [name, value] : labels) {
    if (!prometheus::CheckLabelName(name)) {
      invalid(std::string(argument) + ": \"" + name + "\" is not a valid Prometheus label name");
    }
    if (std::find(own_label_names.begin(), own_label_names.end(), name) != own_label_names.end()) {
      invalid(std::string(argument) + ": \"" + name + "\" is a label of redlock's own metrics");
    }
  }
}

void check_buckets(const std::vector<double>& buckets, const char* argument) {
  if (buckets.empty()) {
    invalid(std::string(argument) + ": no buckets");
  }
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (!(buckets[i] > 0) || (i > 0 && !(buckets[i] > buckets[i - 1]))) {
      invalid(std::string(argument) + ": the bounds must be positive and strictly increasing");
    }
  }
}

prometheus::Labels with(const prometheus::Labels& base,
                        std::initializer_list<std::pair<const char*, std::string>> extra) {
  prometheus::Labels out = base;
  for (const auto& [name, value] : extra) {
    out[name] = value;
  }
  return out;
}

template <typename Builder>
auto& family(Builder builder, prometheus::Registry& registry, const char* name, const char* help) {
  // No constant labels on the family: prometheus-cpp refuses a second family of the same name
  // with other constant labels, and each manager's labels go on its series instead.
  return builder.Name(name).Help(help).Register(registry);
}

}  // namespace

std::vector<double> prometheus_latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

std::vector<double> prometheus_hold_buckets() {
  return {0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600};
}

// The observer. Its hot path (operation_done, node_request) does no map lookup once a series
// exists: series are cached by array index (operation x result) or by the node's index.
class prometheus_metrics::feed final : public observer {
 public:
  feed(prometheus::Registry& registry, prometheus_options options)
      : labels_(std::move(options.labels)),
        latency_buckets_(std::move(options.latency_buckets)),
        operations_(family(prometheus::BuildCounter(), registry, "redlock_operations_total",
                           "Completed lock manager operations, by operation and result (ok or "
                           "the error code)")),
        attempts_family_(family(prometheus::BuildCounter(), registry, "redlock_attempts_total",
                                "Rounds of requests made by operations, by operation")),
        acquire_(family(prometheus::BuildHistogram(), registry, "redlock_acquire_duration_seconds",
                        "Last attempt of successful lock and try_lock operations")
                     .Add(labels_, latency_buckets_)),
        wait_(family(prometheus::BuildHistogram(), registry, "redlock_wait_duration_seconds",
                     "Lock operations from call to completion, retries included, success or not")
                  .Add(labels_, latency_buckets_)),
        hold_(family(prometheus::BuildHistogram(), registry, "redlock_hold_duration_seconds",
                     "Locks from grant to release or loss")
                  .Add(labels_, options.hold_buckets)),
        releases_(family(prometheus::BuildCounter(), registry, "redlock_releases_total",
                         "Locks that ended by release")
                      .Add(labels_)),
        lost_(family(prometheus::BuildCounter(), registry, "redlock_locks_lost_total",
                     "Locks found lost or expired by their holder")
                  .Add(labels_)),
        node_requests_(family(prometheus::BuildCounter(), registry, "redlock_node_requests_total",
                              "Requests to each node, by result (ok or error)")),
        node_errors_(family(prometheus::BuildCounter(), registry, "redlock_node_errors_total",
                            "Failed requests to each node, by error code")),
        node_round_trip_(family(prometheus::BuildHistogram(), registry,
                                "redlock_node_round_trip_seconds",
                                "Round trip of each request to each node, failures included")),
        node_changes_(family(prometheus::BuildCounter(), registry,
                             "redlock_node_state_changes_total",
                             "Node state changes, by the state entered")) {
    // Every operation's success and attempts exist from the start (at 0), so that rate() and
    // absent() work before the first event; failures appear with their first occurrence.
    for (operation o : all_operations) {
      const auto i = static_cast<std::size_t>(o);
      results_[i][0].store(
          &operations_.Add(with(labels_, {{"operation", to_string(o)}, {"result", "ok"}})),
          std::memory_order_release);
      attempts_[i] = &attempts_family_.Add(with(labels_, {{"operation", to_string(o)}}));
    }
  }

  const prometheus::Labels& labels() const noexcept { return labels_; }

  void operation_done(const operation_event& e) override {
    const auto op = static_cast<std::size_t>(e.op);
    if (op >= all_operations.size()) {
      return;
    }
    result_counter(op, result_index(e.ec)).Increment();
    if (e.attempts > 0) {
      attempts_[op]->Increment(static_cast<double>(e.attempts));
    }
    if ((e.op == operation::lock || e.op == operation::try_lock) && !e.ec) {
      acquire_.Observe(seconds(e.last_attempt));
    }
    if (e.op == operation::lock) {
      wait_.Observe(seconds(e.duration));
    }
  }

  void lock_ended(std::chrono::nanoseconds held, bool lost) override {
    hold_.Observe(seconds(held));
    (lost ? lost_ : releases_).Increment();
  }

  void node_request(const node_request_event& e) override {
    const std::size_t r = result_index(e.ec);
    prometheus::Counter* count = nullptr;
    prometheus::Counter* error = nullptr;
    prometheus::Histogram* round_trip = nullptr;
    {
      // The pointers point into the families, which never remove a series: they stay valid
      // after the lock is released, even if another manager's node takes this slot.
      std::lock_guard lock(nodes_mutex_);
      node_series& n = node(e.index, e.node);
      count = r == 0 ? n.ok : n.error;
      if (r != 0) {
        if (n.errors[r] == nullptr) {
          n.errors[r] =
              &node_errors_.Add(with(labels_, {{"node", n.id}, {"code", result_name(r)}}));
        }
        error = n.errors[r];
      }
      round_trip = n.round_trip;
    }
    count->Increment();
    if (error != nullptr) {
      error->Increment();
    }
    round_trip->Observe(seconds(e.round_trip));
  }

  void node_state_changed(const node_state_change& c) override {
    // Rare (one per transition): the family's own lookup is good enough here.
    node_changes_.Add(with(labels_, {{"node", c.node}, {"state", to_string(c.to)}})).Increment();
  }

 private:
  struct node_series {
    std::string id;
    prometheus::Counter* ok = nullptr;
    prometheus::Counter* error = nullptr;
    prometheus::Histogram* round_trip = nullptr;
    std::array<prometheus::Counter*, result_count> errors{};
  };

  // Lazily created, then read without a lock. Two threads may both create one: Family::Add
  // returns the existing series for equal labels, so they store the same pointer.
  prometheus::Counter& result_counter(std::size_t op, std::size_t r) {
    prometheus::Counter* c = results_[op][r].load(std::memory_order_acquire);
    if (c == nullptr) {
      c = &operations_.Add(with(
          labels_, {{"operation", to_string(all_operations[op])}, {"result", result_name(r)}}));
      results_[op][r].store(c, std::memory_order_release);
    }
    return *c;
  }

  // The node's series, cached by its index in the manager; called with nodes_mutex_ held. The
  // mutex is uncontended when the observer serves one manager (its calls come from one
  // strand); it is there because an observer may be set on several managers, whose calls then
  // race. The cached id is compared so that a second manager with other nodes at the same
  // index still counts correctly (only slower).
  node_series& node(std::size_t index, const std::string* id_ptr) {
    const std::string& id = id_ptr != nullptr ? *id_ptr : unnamed_;
    if (index >= nodes_.size()) {
      nodes_.resize(index + 1);
    }
    std::unique_ptr<node_series>& slot = nodes_[index];
    if (slot == nullptr || slot->id != id) {
      auto n = std::make_unique<node_series>();
      n->id = id;
      n->ok = &node_requests_.Add(with(labels_, {{"node", id}, {"result", "ok"}}));
      n->error = &node_requests_.Add(with(labels_, {{"node", id}, {"result", "error"}}));
      n->round_trip = &node_round_trip_.Add(with(labels_, {{"node", id}}), latency_buckets_);
      slot = std::move(n);
    }
    return *slot;
  }

  const prometheus::Labels labels_;
  const std::vector<double> latency_buckets_;
  const std::string unnamed_;

  prometheus::Family<prometheus::Counter>& operations_;
  prometheus::Family<prometheus::Counter>& attempts_family_;
  prometheus::Histogram& acquire_;
  prometheus::Histogram& wait_;
  prometheus::Histogram& hold_;
  prometheus::Counter& releases_;
  prometheus::Counter& lost_;
  prometheus::Family<prometheus::Counter>& node_requests_;
  prometheus::Family<prometheus::Counter>& node_errors_;
  prometheus::Family<prometheus::Histogram>& node_round_trip_;
  prometheus::Family<prometheus::Counter>& node_changes_;

  std::array<std::array<std::atomic<prometheus::Counter*>, result_count>, all_operations.size()>
      results_{};
  std::array<prometheus::Counter*, all_operations.size()> attempts_{};

  std::mutex nodes_mutex_;
  std::vector<std::unique_ptr<node_series>> nodes_;
};

namespace {

prometheus_options checked(prometheus_options options) {
  check_labels(options.labels, "prometheus_options::labels");
  check_buckets(options.latency_buckets, "prometheus_options::latency_buckets");
  check_buckets(options.hold_buckets, "prometheus_options::hold_buckets");
  return options;
}

}  // namespace

prometheus_metrics::prometheus_metrics(prometheus::Registry& registry, prometheus_options options)
    : feed_(std::make_shared<feed>(registry, checked(std::move(options)))) {}

std::shared_ptr<observer> prometheus_metrics::observer_ptr() const noexcept {
  return feed_;
}

const prometheus::Labels& prometheus_metrics::labels() const noexcept {
  return feed_->labels();
}

// --- gauges ---

prometheus_gauges::source_id prometheus_gauges::add_source(std::function<manager_stats()> source,
                                                           prometheus::Labels labels) {
  if (!source) {
    invalid("prometheus_gauges::add_source: source is empty");
  }
  check_labels(labels, "prometheus_gauges::add_source: labels");
  std::lock_guard lock(mutex_);
  const source_id id = next_id_++;
  sources_.push_back({id, std::move(source), std::move(labels)});
  return id;
}

void prometheus_gauges::remove_source(source_id id) {
  std::lock_guard lock(mutex_);
  std::erase_if(sources_, [id](const entry& s) { return s.id == id; });
}

namespace {

prometheus::MetricFamily gauge_family(const char* name, const char* help) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = prometheus::MetricType::Gauge;
  return f;
}

void add_gauge(prometheus::MetricFamily& f, const prometheus::Labels& labels, double value) {
  prometheus::ClientMetric m;
  for (const auto& [name, label_value] : labels) {
    m.label.push_back({name, label_value});
  }
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

}  // namespace

std::vector<prometheus::MetricFamily> prometheus_gauges::Collect() const {
  auto held = gauge_family("redlock_locks_held",
                           "Locks acquired through the manager whose validity has not passed");
  auto waiting =
      gauge_family("redlock_operations_waiting", "Lock operations started and not yet completed");
  auto state =
      gauge_family("redlock_node_state", "1 for the node's current state, 0 for the other states");
  auto up = gauge_family("redlock_node_up", "1 when the node's last request was answered");
  {
    // Sources are called under the lock so that remove_source() waits for a scrape that is
    // reading the source it removes.
    std::lock_guard lock(mutex_);
    for (const entry& s : sources_) {
      const manager_stats stats = s.read();
      add_gauge(held, s.labels, static_cast<double>(stats.locks_held));
      add_gauge(waiting, s.labels, static_cast<double>(stats.operations_waiting));
      for (const node_health& n : stats.nodes) {
        for (health_state st : all_states) {
          add_gauge(state, with(s.labels, {{"node", n.node}, {"state", to_string(st)}}),
                    n.state == st ? 1 : 0);
        }
        add_gauge(up, with(s.labels, {{"node", n.node}}), n.state == health_state::up ? 1 : 0);
      }
    }
  }
  std::vector<prometheus::MetricFamily> out;
  for (auto* f : {&held, &waiting, &state, &up}) {
    // A family without series prints HELP and TYPE lines only: leave it out.
    if (!f->metric.empty()) {
      out.push_back(std::move(*f));
    }
  }
  return out;
}

}  // namespace redlock

// redlock::prometheus: a lock manager's measurements as Prometheus metrics (prometheus-cpp).
//
// An optional component: link the `redlock::prometheus` target (built when prometheus-cpp is
// found; find_package(redlock COMPONENTS prometheus) for an installed redlock). Two parts:
//
//   - prometheus_metrics registers the counters and histograms in a caller's
//     prometheus::Registry and gives the redlock::observer that feeds them;
//   - prometheus_gauges is a prometheus::Collectable that reads manager_stats when scraped
//     (locks held, operations waiting, node states), so nothing is counted between scrapes.
//
//   prometheus::Exposer exposer{"127.0.0.1:9464"};
//   auto registry = std::make_shared<prometheus::Registry>();
//   redlock::prometheus_metrics metrics(*registry, {.labels = {{"manager", "orders"}}});
//   auto gauges = std::make_shared<redlock::prometheus_gauges>();
//   gauges->add_source([&] { return manager.stats(); }, {{"manager", "orders"}});
//   exposer.RegisterCollectable(registry);
//   exposer.RegisterCollectable(gauges);
//   manager.set_observer(metrics.observer_ptr());
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/labels.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "redlock/observer.hpp"

namespace redlock {

/// Histogram buckets for latencies, in seconds: 100 µs to 10 s (acquire, wait, round trip).
std::vector<double> prometheus_latency_buckets();

/// Histogram buckets for how long locks are held, in seconds: 1 ms to 1 h.
std::vector<double> prometheus_hold_buckets();

/// How prometheus_metrics names its series.
struct prometheus_options {
  /// Labels added to every series, e.g. {{"manager", "orders"}} to tell the managers that
  /// share one registry apart. Names must be valid Prometheus label names and must not be one
  /// the metrics use themselves (operation, result, node, code, state). Default: none.
  prometheus::Labels labels;
  /// Bucket upper bounds of redlock_acquire_duration_seconds, redlock_wait_duration_seconds
  /// and redlock_node_round_trip_seconds, strictly increasing. Default:
  /// prometheus_latency_buckets().
  std::vector<double> latency_buckets = prometheus_latency_buckets();
  /// Bucket upper bounds of redlock_hold_duration_seconds, strictly increasing. Default:
  /// prometheus_hold_buckets().
  std::vector<double> hold_buckets = prometheus_hold_buckets();
};

/// The counters and histograms of one lock manager, registered in a prometheus::Registry, and
/// the observer that feeds them (set it on the manager).
///
/// Metrics (every series also carries prometheus_options::labels):
///   - redlock_operations_total{operation, result}: completed operations; result is "ok" or
///     the redlock::errc name of the failure (e.g. "resource_locked"), "other" for codes of
///     other categories;
///   - redlock_attempts_total{operation}: rounds of requests the operations made;
///   - redlock_acquire_duration_seconds: the last attempt of each successful lock and
///     try_lock (one round of requests);
///   - redlock_wait_duration_seconds: each lock operation from call to completion, success or
///     not (retries included);
///   - redlock_hold_duration_seconds: from the grant to the end of each lock that ended;
///   - redlock_releases_total, redlock_locks_lost_total: how those locks ended;
///   - redlock_node_requests_total{node, result}: requests per node, result "ok" or "error";
///   - redlock_node_errors_total{node, code}: failed requests per node by code;
///   - redlock_node_round_trip_seconds{node}: each request's round trip, failures included;
///   - redlock_node_state_changes_total{node, state}: transitions, by the state entered.
///
/// Several prometheus_metrics may share a registry: they share the metric families, and their
/// series differ by their labels (with equal labels they add up into the same series).
/// The registry must outlive this object and its observer. Thread safety: distinct objects
/// safe; shared objects safe (the observer may be called from any thread, scrapes run
/// concurrently).
class prometheus_metrics {
 public:
  /// Registers the metric families in `registry` (or finds those registered by another
  /// prometheus_metrics). Throws lock_error(errc::invalid_argument) naming the option when a
  /// label name or a bucket list is unusable.
  explicit prometheus_metrics(prometheus::Registry& registry, prometheus_options options = {});

  /// The observer that counts into this object's series; the same one on every call. It keeps
  /// the series alive, so it may outlive this object (not the registry).
  std::shared_ptr<redlock::observer> observer_ptr() const noexcept;

  /// The labels every series carries (prometheus_options::labels).
  const prometheus::Labels& labels() const noexcept;

 private:
  class feed;
  std::shared_ptr<feed> feed_;
};

/// Gauges read at scrape time from the managers' stats: one collectable for any number of
/// managers, so that each gauge family appears once in a scrape. Register it with the
/// prometheus::Exposer next to the registry (the exposer holds it by weak_ptr: keep the
/// shared_ptr).
///
/// Metrics (every series also carries its source's labels):
///   - redlock_locks_held: locks acquired through the manager and still valid;
///   - redlock_operations_waiting: lock operations started and not completed;
///   - redlock_node_state{node, state}: 1 for the node's current state ("unknown", "up",
///     "lagging", "down"), 0 for the others;
///   - redlock_node_up{node}: 1 when the node's state is up, 0 otherwise.
///
/// Thread safety: safe (sources may be added and removed while a scrape runs).
class prometheus_gauges final : public prometheus::Collectable {
 public:
  /// Identifies a source for remove_source().
  using source_id = std::size_t;

  /// Adds a manager's stats, read on each scrape (from the exposer's thread): typically
  /// `[&manager] { return manager.stats(); }`. `labels` tell the managers apart (use the same
  /// as their prometheus_metrics). The source must neither block for long nor throw. Throws
  /// lock_error(errc::invalid_argument) naming the argument when `source` is empty or a label
  /// name is unusable.
  source_id add_source(std::function<manager_stats()> source, prometheus::Labels labels = {});

  /// Stops reading a source (e.g. before its manager is destroyed). Once it returns, the
  /// source is not called again. Unknown ids are ignored.
  void remove_source(source_id id);

  /// The gauges of every source, read now. Called by the exposer on each scrape.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct entry {
    source_id id;
    std::function<manager_stats()> read;
    prometheus::Labels labels;
  };
  mutable std::mutex mutex_;
  std::vector<entry> sources_;
  source_id next_id_ = 1;
};

}  // namespace redlock

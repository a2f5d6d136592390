// The end-to-end benchmark client: one case per run, against servers that scripts/bench
// started. Prints one JSON object on stdout; scripts/bench collects them and
// bench/report.py turns them into docs/benchmarks.md.
//
//   redlock_bench seq        --urls U1,U2,.. [--max-count C] [--duration-ms D] [--cdf-out F]
//                            [--observer 0|1]
//   redlock_bench throughput --urls .. [--in-flight 64] [--max-count C] [--duration-ms D]
//                            [--observer 0|1]
//   redlock_bench contention --urls .. --counter HOST:PORT [--clients 16] [--think-ms T]
//                            [--retry-delay-ms 10] [--retry-jitter-ms 10] [--wakeup 0|1]
//                            [--fair 0|1]
//   redlock_bench crash      --urls .. [--waiters 8] [--repetitions 10] [--ttl-ms 500]
//                            [--retry-delay-ms 10] [--retry-jitter-ms 10] [--wakeup 0|1]
//                            [--fair 0|1]
//   redlock_bench churn      --urls .. [--max-count C] [--warmup W] [--duration-ms D]
//   redlock_bench held       --urls .. [--max-count H] [--duration-ms D]
//   redlock_bench floor      --urls .. (like seq, with a bare hiredis client: the fan-out floor)
//   redlock_bench print-script acquire|release   (the library's script text, for case f)
//
// Every loop is bounded twice: by a count and by a deadline. A watchdog thread ends the
// process (exit status 3) if a case overruns its deadline by more than a grace period, so a
// stuck server or client can never hang a CI run.
#include <hiredis/hiredis.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <unistd.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include "internal/scripts.hpp"
#include "redlock/asio_compat.hpp"
#include "redlock/endpoint.hpp"
#include "redlock/lock_manager.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using asio::awaitable;
using asio::use_awaitable;

struct options {
  std::string name;
  std::vector<std::string> urls;
  std::string counter;  // host:port of the contention counter's server
  long max_count = 100000;
  long warmup = 200;
  long in_flight = 64;
  long clients = 16;
  long duration_ms = 5000;
  long ttl_ms = 10000;
  long think_ms = 0;             // contention: pause after each release, outside the lock
  long request_timeout_ms = -1;  // -1: the library's default
  long lag_limit_ms = -1;        // -1: the library's default (request timeout / 2)
  bool fencing = false;          // --fencing 1: fenced acquires (two phases, a token)
  bool observer = false;         // --observer 1 (seq, throughput): a counting observer is set
  // contention and crash: the waiting clients' settings. 10 ms ± 10 ms is what case c always
  // used (scripts/bench), so that runs without these flags stay comparable with old ones.
  long retry_delay_ms = 10;
  long retry_jitter_ms = 10;
  bool wakeup = true;     // manager_options::wakeup
  bool fair = false;      // manager_options::fair (not with --fencing 1)
  long rtt_cycles = 200;  // contention: sequential acquires measuring the RTT of "ideal"
  long waiters = 8;       // crash: clients waiting for the crashed holder's keys
  long repetitions = 10;  // crash: fresh keys, one crash each
  bool ttl_given = false;
  bool duration_given = false;
  std::string cdf_out;
  std::string label;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "redlock_bench: " << why
            << "\nusage: redlock_bench seq|throughput|contention|crash|churn|held --urls U1,U2,... "
               "[--counter HOST:PORT] [--max-count N] [--warmup N] [--in-flight N] "
               "[--clients N] [--duration-ms MS] [--ttl-ms MS] [--think-ms MS] [--cdf-out FILE] "
               "[--label S] [--request-timeout-ms MS] [--lag-limit-ms MS] [--fencing 0|1] "
               "[--retry-delay-ms MS] [--retry-jitter-ms MS] [--wakeup 0|1] [--fair 0|1] "
               "[--rtt-cycles N] [--observer 0|1] "
               "[--waiters N] [--repetitions N]\n";
  std::exit(2);
}

long to_long(const std::string& s) {
  try {
    std::size_t used = 0;
    long v = std::stol(s, &used);
    if (used != s.size() || v < 0)
      throw std::invalid_argument(s);
    return v;
  } catch (const std::exception&) {
    usage("not a non-negative number: " + s);
  }
}

options parse(int argc, char** argv) {
  if (argc < 2)
    usage("no case given");
  options o;
  o.name = argv[1];
  for (int i = 2; i < argc; i += 2) {
    std::string k = argv[i];
    if (i + 1 >= argc)
      usage("missing value for " + k);
    std::string v = argv[i + 1];
    if (k == "--urls") {
      std::stringstream ss(v);
      for (std::string u; std::getline(ss, u, ',');)
        if (!u.empty())
          o.urls.push_back(u);
    } else if (k == "--counter") {
      o.counter = v;
    } else if (k == "--max-count") {
      o.max_count = to_long(v);
    } else if (k == "--warmup") {
      o.warmup = to_long(v);
    } else if (k == "--in-flight") {
      o.in_flight = std::max(1L, to_long(v));
    } else if (k == "--clients") {
      o.clients = std::max(1L, to_long(v));
    } else if (k == "--duration-ms") {
      o.duration_ms = to_long(v);
      o.duration_given = true;
    } else if (k == "--request-timeout-ms") {
      o.request_timeout_ms = to_long(v);
    } else if (k == "--lag-limit-ms") {
      o.lag_limit_ms = to_long(v);
    } else if (k == "--fencing") {
      o.fencing = to_long(v) != 0;
    } else if (k == "--think-ms") {
      o.think_ms = to_long(v);
    } else if (k == "--ttl-ms") {
      o.ttl_ms = to_long(v);
      o.ttl_given = true;
    } else if (k == "--retry-delay-ms") {
      o.retry_delay_ms = to_long(v);
    } else if (k == "--retry-jitter-ms") {
      o.retry_jitter_ms = to_long(v);
    } else if (k == "--wakeup") {
      o.wakeup = to_long(v) != 0;
    } else if (k == "--fair") {
      o.fair = to_long(v) != 0;
    } else if (k == "--observer") {
      o.observer = to_long(v) != 0;
    } else if (k == "--rtt-cycles") {
      o.rtt_cycles = std::max(1L, to_long(v));
    } else if (k == "--waiters") {
      o.waiters = std::max(1L, to_long(v));
    } else if (k == "--repetitions") {
      o.repetitions = std::max(1L, to_long(v));
    } else if (k == "--cdf-out") {
      o.cdf_out = v;
    } else if (k == "--label") {
      o.label = v;
    } else {
      usage("unknown option " + k);
    }
  }
  if (o.urls.empty())
    usage("--urls is required");
  if (o.fair && o.fencing)
    usage("--fair 1 and --fencing 1 cannot be combined (fair mode takes no fencing tokens)");
  if (o.name == "crash") {
    // A crashed holder's keys live one TTL; 500 ms keeps ten repetitions within seconds.
    if (!o.ttl_given)
      o.ttl_ms = 500;
    if (!o.duration_given)
      o.duration_ms = o.repetitions * (o.ttl_ms + 2000);
  }
  return o;
}

// Resident set size of this process, from /proc/self/status (VmRSS, kB).
long rss_kib() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmRSS:", 0) == 0)
      return std::atol(line.c_str() + 6);
  }
  return -1;
}

// Keys carry the process id, so that a run never meets keys left by an earlier one (a reply
// that timed out can leave a key behind until its TTL ends).
std::string key(const std::string& name) {
  static const std::string prefix = "bench:" + std::to_string(::getpid()) + ":";
  return prefix + name;
}

// Node errors seen by a manager (timeouts, resets...): reported, since they explain outliers.
struct error_count {
  long count = 0;
  std::string first;
  std::map<std::string, std::map<std::string, long>> by_node;  // node -> error kind -> count
  void watch(redlock::lock_manager& m) {
    m.on_node_error([this](const redlock::node_error& e) {
      if (count++ == 0)
        first = e.node + ": " + e.ec.message() + " " + e.message;
      ++by_node[e.node][e.ec.message()];
    });
  }
  void merge(const error_count& o) {
    count += o.count;
    if (first.empty())
      first = o.first;
    for (const auto& [node, kinds] : o.by_node)
      for (const auto& [kind, n] : kinds)
        by_node[node][kind] += n;
  }
  void add_to(class json& j) const;
};

// CPU time (user + system, all threads) this process has used so far, in microseconds.
double cpu_micros() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto us = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) * 1e6 + static_cast<double>(tv.tv_usec);
  };
  return us(ru.ru_utime) + us(ru.ru_stime);
}

// Bytes currently allocated from malloc (live objects, without fragmentation or free pages).
long heap_in_use() {
  return static_cast<long>(::mallinfo2().uordblks);
}

double micros(clock_type::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// Nearest-rank percentile of sorted samples.
double pct(const std::vector<double>& sorted, double q) {
  if (sorted.empty())
    return 0;
  auto i = static_cast<std::size_t>(q * static_cast<double>(sorted.size()));
  return sorted[std::min(i, sorted.size() - 1)];
}

// A flat JSON object, built field by field (keys and string values are plain ASCII).
class json {
 public:
  json& str(const std::string& k, const std::string& v) { return raw(k, "\"" + v + "\""); }
  json& num(const std::string& k, double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.3f", v);
    return raw(k, b);
  }
  json& num(const std::string& k, long v) { return raw(k, std::to_string(v)); }
  json& obj(const std::string& k, const json& v) { return raw(k, v.done()); }
  std::string done() const { return "{" + body_ + "}"; }

 private:
  json& raw(const std::string& k, const std::string& v) {
    if (!body_.empty())
      body_ += ", ";
    body_ += "\"" + k + "\": " + v;
    return *this;
  }
  std::string body_;
};

void error_count::add_to(json& j) const {
  j.num("node_errors", count);
  if (!first.empty())
    j.str("first_node_error", first);
  // "node: kind n, kind n; node: ..." so that a report shows which node failed and how.
  std::string per;
  for (const auto& [node, kinds] : by_node) {
    per += (per.empty() ? "" : "; ") + node + ":";
    for (const auto& [kind, n] : kinds)
      per += " " + kind + " " + std::to_string(n);
  }
  if (!per.empty())
    j.str("node_errors_by_node", per);
}

json header(const options& o) {
  json j;
  j.str("case", o.name).num("nodes", static_cast<long>(o.urls.size()));
  j.num("fencing", o.fencing ? 1L : 0L);
  if (!o.label.empty())
    j.str("label", o.label);
  return j;
}

void latency_fields(json& j, const std::string& prefix, std::vector<double>& v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v)
    sum += x;
  j.num(prefix + "_p50_us", pct(v, 0.50))
      .num(prefix + "_p90_us", pct(v, 0.90))
      .num(prefix + "_p99_us", pct(v, 0.99))
      .num(prefix + "_max_us", v.empty() ? 0.0 : v.back())
      .num(prefix + "_mean_us", v.empty() ? 0.0 : sum / static_cast<double>(v.size()));
}

// 1000 quantile points of sorted samples: "<microseconds> <fraction>" per line, for a CDF.
void write_cdf(const std::string& path, const std::vector<double>& sorted) {
  if (path.empty() || sorted.empty())
    return;
  std::ofstream f(path);
  constexpr int points = 1000;
  for (int i = 0; i < points; ++i) {
    double q = (i + 0.5) / points;
    f << pct(sorted, q) << " " << q << "\n";
  }
  f << sorted.back() << " 1\n";
}

// Ends the process if the case runs far past its deadline: a benchmark must never hang.
class watchdog {
 public:
  explicit watchdog(clock_type::duration limit) {
    thread_ = std::thread([this, limit] {
      auto until = clock_type::now() + limit;
      while (!done_.load()) {
        if (clock_type::now() >= until) {
          std::cerr << "redlock_bench: watchdog: case exceeded its time limit\n";
          std::_Exit(3);
        }
        std::this_thread::sleep_for(20ms);
      }
    });
  }
  ~watchdog() {
    done_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

const options* g_options = nullptr;

// What a metrics adapter does per call, without a registry: counters by operation and
// outcome, histograms (64 power-of-two buckets of nanoseconds) of durations and per-node
// round trips, all relaxed atomics, so that --observer 1 measures the cost of feeding a real
// one (scripts/bench-observer).
class counting_observer final : public redlock::observer {
 public:
  void operation_done(const redlock::operation_event& e) override {
    const auto op = static_cast<std::size_t>(e.op);
    ops_[op][e.ec ? 1 : 0].fetch_add(1, std::memory_order_relaxed);
    attempts_.fetch_add(static_cast<std::uint64_t>(e.attempts), std::memory_order_relaxed);
    observe(duration_[op], e.duration);
    if (e.op == redlock::operation::lock && !e.ec)
      observe(acquire_, e.last_attempt);
  }
  void lock_ended(std::chrono::nanoseconds held, bool lost) override {
    ended_[lost ? 1 : 0].fetch_add(1, std::memory_order_relaxed);
    observe(held_, held);
  }
  void node_request(const redlock::node_request_event& e) override {
    const auto i = std::min<std::size_t>(e.index, max_nodes - 1);
    observe(round_trip_[i], e.round_trip);
    if (e.ec)
      node_errors_.fetch_add(1, std::memory_order_relaxed);
  }
  void node_state_changed(const redlock::node_state_change&) override {
    changes_.fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t operations() const {
    std::uint64_t n = 0;
    for (const auto& op : ops_)
      for (const auto& c : op)
        n += c.load(std::memory_order_relaxed);
    return n;
  }
  std::uint64_t requests() const {
    std::uint64_t n = 0;
    for (const auto& h : round_trip_)
      n += h.count.load(std::memory_order_relaxed);
    return n;
  }

 private:
  static constexpr std::size_t max_nodes = 8;
  struct histogram {
    std::array<std::atomic<std::uint64_t>, 64> buckets{};
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> sum_ns{0};
  };
  static void observe(histogram& h, std::chrono::nanoseconds d) {
    const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(d.count(), 1));
    h.buckets[63 - static_cast<std::size_t>(__builtin_clzll(ns))].fetch_add(
        1, std::memory_order_relaxed);
    h.count.fetch_add(1, std::memory_order_relaxed);
    h.sum_ns.fetch_add(ns, std::memory_order_relaxed);
  }
  std::array<std::array<std::atomic<std::uint64_t>, 2>, 4> ops_{};
  std::atomic<std::uint64_t> attempts_{0};
  std::array<histogram, 4> duration_{};
  histogram acquire_;
  histogram held_;
  std::array<std::atomic<std::uint64_t>, 2> ended_{};
  std::array<histogram, max_nodes> round_trip_{};
  std::atomic<std::uint64_t> node_errors_{0};
  std::atomic<std::uint64_t> changes_{0};
};

// --observer 1: sets a counting observer on `m` (kept alive by the manager).
std::shared_ptr<counting_observer> maybe_observe(redlock::lock_manager& m) {
  if (!g_options || !g_options->observer)
    return nullptr;
  auto obs = std::make_shared<counting_observer>();
  m.set_observer(obs);
  return obs;
}

void observer_fields(json& j, const std::shared_ptr<counting_observer>& obs) {
  j.num("observer", obs ? 1L : 0L);
  if (obs) {
    j.num("observed_operations", static_cast<long>(obs->operations()))
        .num("observed_requests", static_cast<long>(obs->requests()));
  }
}

redlock::manager_options bench_settings() {
  redlock::manager_options s;
  if (g_options && g_options->request_timeout_ms >= 0)
    s.request_timeout = std::chrono::milliseconds(g_options->request_timeout_ms);
  if (g_options && g_options->lag_limit_ms >= 0)
    s.node_lag_limit = std::chrono::milliseconds(g_options->lag_limit_ms);
  if (g_options)
    s.fencing = g_options->fencing;
  // A benchmark cycle on distinct keys never meets a holder; a failure is an error worth
  // seeing, not something to wait out.
  s.retry_count = 0;
  return s;
}

// The settings of the clients that wait (contention, crash): unlimited retries, the delay,
// jitter, wake-up and fair mode of the command line.
redlock::manager_options waiting_settings(const options& o) {
  redlock::manager_options s;
  s.retry_count = -1;  // unlimited: a client waits as long as it takes
  s.retry_delay = std::chrono::milliseconds(o.retry_delay_ms);
  s.retry_jitter = std::chrono::milliseconds(o.retry_jitter_ms);
  s.wakeup = o.wakeup;
  s.fair = o.fair;
  if (o.request_timeout_ms >= 0)
    s.request_timeout = std::chrono::milliseconds(o.request_timeout_ms);
  return s;
}

void waiting_fields(json& j, const options& o) {
  j.num("retry_delay_ms", o.retry_delay_ms)
      .num("retry_jitter_ms", o.retry_jitter_ms)
      .num("wakeup", o.wakeup ? 1L : 0L)
      .num("fair", o.fair ? 1L : 0L);
}

// Shared state of a set of cycle workers on one io_context (one thread: plain counters).
struct cycle_pool {
  redlock::lock_manager* m = nullptr;
  std::string prefix;
  std::chrono::milliseconds ttl{10000};
  long max_cycles = 0;
  clock_type::time_point deadline;
  long started = 0;
  long completed = 0;
  long failures = 0;
  std::string first_error;
  std::vector<redlock::lock>* keep = nullptr;  // held case: locks are kept, not released
};

cycle_pool make_pool(redlock::lock_manager& m, std::string prefix, std::chrono::milliseconds ttl,
                     long max_cycles, clock_type::duration budget) {
  cycle_pool p;
  p.m = &m;
  p.prefix = std::move(prefix);
  p.ttl = ttl;
  p.max_cycles = max_cycles;
  p.deadline = clock_type::now() + budget;
  return p;
}

// One worker: acquire + release on a fresh key until the pool's count or deadline is reached.
awaitable<void> cycle_worker(cycle_pool& p) {
  while (p.started < p.max_cycles && clock_type::now() < p.deadline) {
    auto key = p.prefix + std::to_string(p.started++);
    auto [ec, l] =
        co_await p.m->async_lock(std::move(key), p.ttl, redlock::as_tuple(use_awaitable));
    if (ec) {
      if (p.failures++ == 0)
        p.first_error = ec.message();
      continue;
    }
    if (p.keep) {
      p.keep->push_back(std::move(l));
      ++p.completed;
      continue;
    }
    auto [uec, ur] = co_await p.m->async_unlock(l, redlock::as_tuple(use_awaitable));
    if (uec) {
      if (p.failures++ == 0)
        p.first_error = uec.message();
      continue;
    }
    ++p.completed;
  }
}

// Runs `in_flight` workers and returns when all have stopped.
awaitable<void> run_pool(cycle_pool& p, long in_flight) {
  auto ex = co_await asio::this_coro::executor;
  long running = in_flight;
  asio::steady_timer done(ex, clock_type::time_point::max());
  for (long i = 0; i < in_flight; ++i) {
    asio::co_spawn(
        ex,
        [&p, &running, &done]() -> awaitable<void> {
          co_await cycle_worker(p);
          if (--running == 0)
            done.cancel();
        },
        asio::detached);
  }
  auto [ec] = co_await done.async_wait(redlock::as_tuple(use_awaitable));
  (void)ec;
}

awaitable<void> quit(redlock::lock_manager& m) {
  auto [ec] = co_await m.async_quit(redlock::as_tuple(use_awaitable));
  (void)ec;
}

// Runs `body` on a one-thread io_context and returns when it and everything it started end.
template <class Body>
void run_on_context(Body body) {
  asio::io_context ioc(1);
  std::exception_ptr failure;
  asio::co_spawn(ioc, body(ioc.get_executor()), [&failure](std::exception_ptr e) { failure = e; });
  ioc.run();
  if (failure)
    std::rethrow_exception(failure);
}

// a. One cycle in flight: latency of each acquire and each release.
std::string case_seq(const options& o) {
  error_count errs;
  std::vector<double> acq, rel;
  long failures = 0;
  std::string first_error;
  std::shared_ptr<counting_observer> obs;
  run_on_context([&](asio::any_io_executor ex) -> awaitable<void> {
    redlock::lock_manager m(ex, o.urls, bench_settings());
    errs.watch(m);
    obs = maybe_observe(m);
    auto ttl = std::chrono::milliseconds(o.ttl_ms);
    acq.reserve(static_cast<std::size_t>(o.max_count));
    rel.reserve(static_cast<std::size_t>(o.max_count));
    auto deadline = clock_type::now() + std::chrono::milliseconds(o.duration_ms);
    for (long i = 0; i < o.warmup + o.max_count && clock_type::now() < deadline; ++i) {
      bool measured = i >= o.warmup;
      auto t0 = clock_type::now();
      auto [ec, l] = co_await m.async_lock(key("a:" + std::to_string(i)), ttl,
                                           redlock::as_tuple(use_awaitable));
      auto t1 = clock_type::now();
      if (ec) {
        if (failures++ == 0)
          first_error = ec.message();
        continue;
      }
      auto [uec, ur] = co_await m.async_unlock(l, redlock::as_tuple(use_awaitable));
      auto t2 = clock_type::now();
      if (uec) {
        if (failures++ == 0)
          first_error = uec.message();
        continue;
      }
      if (measured) {
        acq.push_back(micros(t1 - t0));
        rel.push_back(micros(t2 - t1));
      }
    }
    co_await quit(m);
  });
  auto j = header(o);
  j.num("cycles", static_cast<long>(acq.size())).num("failures", failures);
  latency_fields(j, "acquire", acq);
  latency_fields(j, "release", rel);
  write_cdf(o.cdf_out, acq);
  observer_fields(j, obs);
  if (!first_error.empty())
    j.str("first_error", first_error);
  errs.add_to(j);
  return j.done();
}

// Warm-up before a measured pool: connections open, buffers grown, caches hot. At most
// o.warmup cycles, for at most `limit`.
awaitable<void> warm_up(cycle_pool& p, redlock::lock_manager& m, const options& o,
                        const char* prefix, std::chrono::seconds limit) {
  p.m = &m;
  p.ttl = std::chrono::milliseconds(o.ttl_ms);
  p.prefix = key(prefix);
  p.max_cycles = o.warmup;
  p.deadline = clock_type::now() + limit;
  co_await run_pool(p, o.in_flight);
}

// b. Throughput with `in_flight` cycles in flight on one manager.
std::string case_throughput(const options& o) {
  error_count errs;
  cycle_pool p;
  double seconds = 0, cpu_us = 0;
  std::shared_ptr<counting_observer> obs;
  run_on_context([&](asio::any_io_executor ex) -> awaitable<void> {
    redlock::lock_manager m(ex, o.urls, bench_settings());
    errs.watch(m);
    obs = maybe_observe(m);
    co_await warm_up(p, m, o, "bw:", 2s);
    p = make_pool(m, key("b:"), p.ttl, o.max_count, std::chrono::milliseconds(o.duration_ms));
    auto t0 = clock_type::now();
    auto c0 = cpu_micros();
    co_await run_pool(p, o.in_flight);
    seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    cpu_us = cpu_micros() - c0;
    co_await quit(m);
  });
  auto j = header(o);
  j.num("in_flight", o.in_flight)
      .num("cycles", p.completed)
      .num("failures", p.failures)
      .num("seconds", seconds)
      .num("cycles_per_s", seconds > 0 ? static_cast<double>(p.completed) / seconds : 0.0)
      .num("client_cpu_us_per_cycle",
           p.completed > 0 ? cpu_us / static_cast<double>(p.completed) : 0.0)
      .num("client_cpu_share", seconds > 0 ? cpu_us / (seconds * 1e6) : 0.0);
  observer_fields(j, obs);
  if (!p.first_error.empty())
    j.str("first_error", p.first_error);
  errs.add_to(j);
  return j.done();
}

// e1. RSS before and after many cycles (after a warm-up that grows every buffer once).
std::string case_churn(const options& o) {
  error_count errs;
  cycle_pool p;
  long rss_before = 0, rss_after = 0, warm_cycles = 0;
  double seconds = 0;
  run_on_context([&](asio::any_io_executor ex) -> awaitable<void> {
    redlock::lock_manager m(ex, o.urls, bench_settings());
    errs.watch(m);
    co_await warm_up(p, m, o, "ew:", 20s);
    warm_cycles = p.completed;
    rss_before = rss_kib();
    p = make_pool(m, key("e:"), p.ttl, o.max_count, std::chrono::milliseconds(o.duration_ms));
    auto t0 = clock_type::now();
    co_await run_pool(p, o.in_flight);
    seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    rss_after = rss_kib();
    co_await quit(m);
  });
  auto j = header(o);
  j.num("in_flight", o.in_flight)
      .num("warmup_cycles", warm_cycles)
      .num("cycles", p.completed)
      .num("failures", p.failures)
      .num("seconds", seconds)
      .num("rss_before_kib", rss_before)
      .num("rss_after_kib", rss_after)
      .num("rss_growth_kib", rss_after - rss_before);
  if (!p.first_error.empty())
    j.str("first_error", p.first_error);
  errs.add_to(j);
  return j.done();
}

// e2. RSS with many locks held at once: the cost of a lock handle plus anything the manager
// keeps per held lock. The vector that holds the handles is counted (a caller needs one).
std::string case_held(const options& o) {
  error_count errs;
  cycle_pool p;
  std::vector<redlock::lock> held;
  long rss_before = 0, rss_after = 0, released = 0, heap_before = 0, heap_after = 0;
  run_on_context([&](asio::any_io_executor ex) -> awaitable<void> {
    redlock::lock_manager m(ex, o.urls, bench_settings());
    errs.watch(m);
    co_await warm_up(p, m, o, "hw:", 10s);
    rss_before = rss_kib();
    heap_before = heap_in_use();
    held.reserve(static_cast<std::size_t>(o.max_count));
    p = make_pool(m, key("h:"), p.ttl, o.max_count, std::chrono::milliseconds(o.duration_ms));
    p.keep = &held;
    co_await run_pool(p, o.in_flight);
    rss_after = rss_kib();
    heap_after = heap_in_use();
    // Release them all again (bounded: each unlock completes or fails once).
    auto ex2 = co_await asio::this_coro::executor;
    std::size_t next = 0;
    long running = o.in_flight;
    asio::steady_timer done(ex2, clock_type::time_point::max());
    for (long w = 0; w < o.in_flight; ++w) {
      asio::co_spawn(
          ex2,
          [&]() -> awaitable<void> {
            while (next < held.size()) {
              auto& l = held[next++];
              auto [uec, ur] = co_await m.async_unlock(l, redlock::as_tuple(use_awaitable));
              if (!uec)
                ++released;
            }
            if (--running == 0)
              done.cancel();
          },
          asio::detached);
    }
    auto [wec] = co_await done.async_wait(redlock::as_tuple(use_awaitable));
    (void)wec;
    co_await quit(m);
  });
  auto j = header(o);
  auto n = static_cast<long>(held.size());
  j.num("locks", n)
      .num("failures", p.failures)
      .num("released", released)
      .num("sizeof_lock", static_cast<long>(sizeof(redlock::lock)))
      .num("rss_before_kib", rss_before)
      .num("rss_after_kib", rss_after)
      .num("heap_bytes_per_lock",
           n > 0 ? static_cast<double>(heap_after - heap_before) / static_cast<double>(n) : 0.0)
      .num("bytes_per_lock",
           n > 0 ? static_cast<double>(rss_after - rss_before) * 1024.0 / static_cast<double>(n)
                 : 0.0);
  if (!p.first_error.empty())
    j.str("first_error", p.first_error);
  errs.add_to(j);
  return j.done();
}

// c. Contention: independent clients (each with its own manager and io_context thread) take
// turns on ONE resource and run a read-sleep-write critical section on a counter kept in a
// separate redis-server. If mutual exclusion ever failed, two clients would read the same
// value and one increment would be lost: the final counter would be below the acquisitions.
struct client_result {
  std::vector<double> waits;
  double cs_sum_us = 0;
  long acquisitions = 0;
  long failures = 0;
  long overran = 0;              // critical sections that ended after the lock's validity deadline
  long repeats = 0;              // acquisitions right after this same client's previous one
  std::vector<double> attempts;  // attempts used by each acquisition
  /// Per acquisition, on the clock all clients share: when the lock was acquired, when its
  /// critical section ended (the unlock begins), when the unlock completed. Merged over the
  /// clients they give the hand-off: from one holder's end of work to the next one's grant.
  struct turn {
    clock_type::time_point acquired, worked, released;
  };
  std::vector<turn> turns;
  std::string error;
  error_count errs;
};

redisContext* connect_counter(const std::string& host_port) {
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos)
    throw std::runtime_error("--counter needs HOST:PORT");
  timeval tv{2, 0};
  redisContext* c = redisConnectWithTimeout(host_port.substr(0, colon).c_str(),
                                            std::atoi(host_port.c_str() + colon + 1), tv);
  if (!c || c->err) {
    std::string why = c ? c->errstr : "out of memory";
    if (c)
      redisFree(c);
    throw std::runtime_error("cannot connect to counter server: " + why);
  }
  redisSetTimeout(c, tv);
  return c;
}

long long counter_command(redisContext* c, const char* fmt, const char* key, long long v = 0) {
  auto* r = static_cast<redisReply*>(redisCommand(c, fmt, key, v));
  if (!r)
    throw std::runtime_error(std::string("counter server: ") + c->errstr);
  long long out = 0;
  if (r->type == REDIS_REPLY_STRING)
    out = std::atoll(r->str);
  if (r->type == REDIS_REPLY_INTEGER)
    out = r->integer;
  freeReplyObject(r);
  return out;
}

// Server-side work: INFO commandstats `calls` of every lock node, summed over the nodes, per
// command name (commands that scripts run count too: Redis counts redis.call). The counter's
// server is not a lock node and is not included. A snapshot runs INFO once per node; the INFO
// of the first snapshot shows up in the second, so `info` is left out of the deltas.
using command_counts = std::map<std::string, long long>;

// A bare hiredis connection to a lock node given by URL (TCP; AUTH when the URL has a password).
redisContext* connect_node(const std::string& url) {
  auto ep = redlock::parse_endpoint(url);
  redisContext* c = connect_counter(ep.host + ":" + std::to_string(ep.port));
  if (!ep.password.empty()) {
    auto* a = static_cast<redisReply*>(
        ep.username.empty()
            ? redisCommand(c, "AUTH %s", ep.password.c_str())
            : redisCommand(c, "AUTH %s %s", ep.username.c_str(), ep.password.c_str()));
    bool ok = a && a->type != REDIS_REPLY_ERROR;
    if (a)
      freeReplyObject(a);
    if (!ok) {
      redisFree(c);
      throw std::runtime_error("AUTH failed on " + url);
    }
  }
  return c;
}

command_counts command_stats(const std::vector<std::string>& urls) {
  command_counts total;
  for (const auto& url : urls) {
    redisContext* c = connect_node(url);
    auto* r = static_cast<redisReply*>(redisCommand(c, "INFO commandstats"));
    if (!r || r->type != REDIS_REPLY_STRING) {
      if (r)
        freeReplyObject(r);
      redisFree(c);
      throw std::runtime_error("INFO commandstats failed on " + url);
    }
    // Lines "cmdstat_<name>:calls=<n>,usec=...".
    std::stringstream ss(std::string(r->str, r->len));
    for (std::string line; std::getline(ss, line);) {
      const std::string tag = "cmdstat_";
      auto colon = line.find(':');
      auto calls = line.find("calls=");
      if (line.rfind(tag, 0) != 0 || colon == std::string::npos || calls == std::string::npos)
        continue;
      total[line.substr(tag.size(), colon - tag.size())] += std::atoll(line.c_str() + calls + 6);
    }
    freeReplyObject(r);
    redisFree(c);
  }
  return total;
}

// The commands the nodes ran between two snapshots, without the snapshots' own INFO.
void command_fields(json& j, const command_counts& before, const command_counts& after,
                    long acquisitions, long long subtract_set = 0) {
  json by_name, per_acq;
  long long total = 0;
  for (const auto& [name, calls] : after) {
    auto it = before.find(name);
    long long d = calls - (it == before.end() ? 0 : it->second);
    if (name == "set")
      d -= subtract_set;
    if (name == "info" || d <= 0)
      continue;
    total += d;
    by_name.num(name, static_cast<long>(d));
    per_acq.num(
        name, acquisitions > 0 ? static_cast<double>(d) / static_cast<double>(acquisitions) : 0.0);
  }
  j.num("server_commands", static_cast<long>(total))
      .num("commands_per_acquisition",
           acquisitions > 0 ? static_cast<double>(total) / static_cast<double>(acquisitions) : 0.0)
      .obj("commands_by_name", by_name)
      .obj("commands_per_acquisition_by_name", per_acq);
}

// The round trip of "ideal": p50 of sequential acquires on distinct free keys (each then
// released), measured just before the case, with the same manager settings.
double measure_rtt_us(const options& o) {
  std::vector<double> acq;
  run_on_context([&](asio::any_io_executor ex) -> awaitable<void> {
    auto s = waiting_settings(o);
    s.retry_count = 0;
    redlock::lock_manager m(ex, o.urls, s);
    auto deadline = clock_type::now() + 10s;
    for (long i = 0; i < o.rtt_cycles + 20 && clock_type::now() < deadline; ++i) {
      auto t0 = clock_type::now();
      auto [ec, l] = co_await m.async_lock(key("rtt:" + std::to_string(i)), 10s,
                                           redlock::as_tuple(use_awaitable));
      auto t1 = clock_type::now();
      if (ec)
        continue;
      auto [uec, ur] = co_await m.async_unlock(l, redlock::as_tuple(use_awaitable));
      (void)uec;
      if (i >= 20)  // the first cycles open connections and load scripts
        acq.push_back(micros(t1 - t0));
    }
    co_await quit(m);
  });
  std::sort(acq.begin(), acq.end());
  return pct(acq, 0.5);
}

void contention_client(const options& o, const std::string& counter_key,
                       clock_type::time_point deadline, int id, std::atomic<int>& last_holder,
                       client_result& res) {
  redisContext* c = nullptr;
  try {
    c = connect_counter(o.counter);
    run_on_context([&](asio::any_io_executor ex) -> awaitable<void> {
      redlock::lock_manager m(ex, o.urls, waiting_settings(o));
      res.errs.watch(m);
      auto ttl = std::chrono::milliseconds(o.ttl_ms);
      asio::steady_timer sleeper(ex);
      while (res.acquisitions < o.max_count && clock_type::now() < deadline) {
        auto t0 = clock_type::now();
        auto [ec, l] =
            co_await m.async_lock(key("c:resource"), ttl, redlock::as_tuple(use_awaitable));
        auto t1 = clock_type::now();
        if (ec) {
          ++res.failures;
          if (res.error.empty())
            res.error = ec.message();
          continue;
        }
        // Inside the lock: who held it last (barging shows as the same client again).
        if (last_holder.exchange(id, std::memory_order_relaxed) == id)
          ++res.repeats;
        res.attempts.push_back(l.attempts());
        // The critical section: read, hold ~1 ms, write back the increment.
        long long v = counter_command(c, "GET %s", counter_key.c_str());
        sleeper.expires_after(1ms);
        auto [sec] = co_await sleeper.async_wait(redlock::as_tuple(use_awaitable));
        (void)sec;
        counter_command(c, "SET %s %lld", counter_key.c_str(), v + 1);
        auto t2 = clock_type::now();
        if (t2 >= l.validity_deadline())
          ++res.overran;
        ++res.acquisitions;
        res.waits.push_back(micros(t1 - t0));
        res.cs_sum_us += micros(t2 - t1);
        auto [uec, ur] = co_await m.async_unlock(l, redlock::as_tuple(use_awaitable));
        res.turns.push_back({t1, t2, clock_type::now()});
        if (uec) {
          ++res.failures;
          if (res.error.empty())
            res.error = "unlock: " + uec.message();
        }
        if (o.think_ms > 0) {
          // Work outside the lock: without it the client that just released asks again at
          // once and usually wins (the others wait for their retry delay or a wake-up).
          sleeper.expires_after(std::chrono::milliseconds(o.think_ms));
          auto [tec] = co_await sleeper.async_wait(redlock::as_tuple(use_awaitable));
          (void)tec;
        }
      }
      co_await quit(m);
    });
  } catch (const std::exception& e) {
    res.error = e.what();
  }
  if (c)
    redisFree(c);
}

std::string case_contention(const options& o) {
  if (o.counter.empty())
    usage("contention needs --counter HOST:PORT");
  auto counter_key = key("c:counter");
  {
    redisContext* c = connect_counter(o.counter);
    counter_command(c, "SET %s %lld", counter_key.c_str(), 0);
    redisFree(c);
  }
  const double rtt_us = measure_rtt_us(o);
  const auto stats_before = command_stats(o.urls);
  std::vector<client_result> results(static_cast<std::size_t>(o.clients));
  const double cpu0 = cpu_micros();
  auto t0 = clock_type::now();
  auto deadline = t0 + std::chrono::milliseconds(o.duration_ms);
  {
    std::vector<std::thread> threads;
    std::atomic<int> last_holder{-1};
    int id = 0;
    for (auto& r : results) {
      threads.emplace_back([&o, &counter_key, deadline, id, &last_holder, &r] {
        contention_client(o, counter_key, deadline, id, last_holder, r);
      });
      ++id;
    }
    for (auto& t : threads)
      t.join();
  }
  double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  // The clients' CPU (all 16 threads): whether they, or the waits between them, bound a turn.
  const double client_cpu_us = cpu_micros() - cpu0;
  const auto stats_after = command_stats(o.urls);
  long long counter = 0;
  {
    redisContext* c = connect_counter(o.counter);
    counter = counter_command(c, "GET %s", counter_key.c_str());
    redisFree(c);
  }
  std::vector<double> waits;
  long acquisitions = 0, failures = 0, overran = 0, repeats = 0;
  std::vector<double> attempts;
  double cs_sum = 0;
  std::string error;
  long min_per_client = -1, max_per_client = 0;
  error_count errs;
  std::vector<client_result::turn> turns;
  for (auto& r : results) {
    turns.insert(turns.end(), r.turns.begin(), r.turns.end());
    waits.insert(waits.end(), r.waits.begin(), r.waits.end());
    acquisitions += r.acquisitions;
    failures += r.failures;
    overran += r.overran;
    repeats += r.repeats;
    errs.merge(r.errs);
    attempts.insert(attempts.end(), r.attempts.begin(), r.attempts.end());
    cs_sum += r.cs_sum_us;
    if (error.empty())
      error = r.error;
    min_per_client = min_per_client < 0 ? r.acquisitions : std::min(min_per_client, r.acquisitions);
    max_per_client = std::max(max_per_client, r.acquisitions);
  }
  const double rate = seconds > 0 ? static_cast<double>(acquisitions) / seconds : 0.0;
  const double cs_mean = acquisitions > 0 ? cs_sum / static_cast<double>(acquisitions) : 0.0;
  // As bench/report.py: ideal = 1 / (mean critical section + one acquire round trip).
  const double ideal = cs_mean + rtt_us > 0 ? 1e6 / (cs_mean + rtt_us) : 0.0;
  auto j = header(o);
  waiting_fields(j, o);
  j.num("clients", o.clients)
      .num("think_ms", o.think_ms)
      .num("ttl_ms", o.ttl_ms)
      .num("acquisitions", acquisitions)
      .num("seconds", seconds)
      .num("acquisitions_per_s", rate)
      .num("cs_mean_us", cs_mean)
      .num("rtt_us", rtt_us)
      .num("ideal_per_s", ideal)
      .num("pct_ideal", ideal > 0 ? 100.0 * rate / ideal : 0.0)
      .num("counter", static_cast<long>(counter))
      .num("lost_updates", acquisitions - static_cast<long>(counter))
      .num("failures", failures)
      .num("overran_validity", overran)
      .num("same_client_again", repeats)
      .num("repeats", repeats)
      .num("min_per_client", min_per_client)
      .num("max_per_client", max_per_client)
      .num("max_min_ratio", min_per_client > 0 ? static_cast<double>(max_per_client) /
                                                     static_cast<double>(min_per_client)
                                               : 0.0);
  latency_fields(j, "wait", waits);
  // What a turn costs beyond the critical section. handoff: from a holder's end of work to the
  // next grant (anyone's), so rate = 1 / (cs_mean + handoff_mean). release: the holder's unlock
  // round trip, part of it. after_release: from the unlock's completion to that grant (the
  // announcement, the waiter's wake-up and its acquire round trip; negative when the grant
  // came before the holder saw its unlock's reply).
  std::sort(turns.begin(), turns.end(),
            [](const auto& a, const auto& b) { return a.acquired < b.acquired; });
  std::vector<double> handoff, release, after_release;
  for (std::size_t i = 0; i + 1 < turns.size(); ++i) {
    handoff.push_back(micros(turns[i + 1].acquired - turns[i].worked));
    release.push_back(micros(turns[i].released - turns[i].worked));
    after_release.push_back(micros(turns[i + 1].acquired - turns[i].released));
  }
  j.num("client_cpu_us_per_acquisition",
        acquisitions > 0 ? client_cpu_us / static_cast<double>(acquisitions) : 0.0)
      .num("client_cpu_share", seconds > 0 ? client_cpu_us / (seconds * 1e6) : 0.0);
  latency_fields(j, "handoff", handoff);
  latency_fields(j, "release", release);
  latency_fields(j, "after_release", after_release);
  command_fields(j, stats_before, stats_after, acquisitions);
  std::sort(attempts.begin(), attempts.end());
  j.num("attempts_p50", pct(attempts, 0.5))
      .num("attempts_p99", pct(attempts, 0.99))
      .num("attempts_max", attempts.empty() ? 0.0 : attempts.back());
  if (!error.empty())
    j.str("first_error", error);
  errs.add_to(j);
  return j.done();
}

// crash: a holder that never releases (SIGKILLed right after it acquired: its keys stay until
// their TTL ends). A bare hiredis client SETs the resource key to a foreign value with PX = TTL
// on every node at t_set (pipelined: one write to each node, then the replies), then W waiters
// (each its own manager, io_context and thread, connected and warmed up beforehand) lock it.
// Per repetition, on a fresh key: the first acquisition's time after t_set + TTL, i.e. what the
// crash costs beyond the TTL. t_set is taken before the first SET is written, so the figure
// also contains the SETs' own round trip (set_rtt). Each waiter releases as soon as it holds
// the lock, so every waiter gets it once; the last one's time is reported too.
struct crash_waiter {
  asio::io_context ioc{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard{ioc.get_executor()};
  std::thread thread;
  std::unique_ptr<redlock::lock_manager> m;
  error_count errs;
};

struct crash_acquisition {
  clock_type::time_point at{};
  long attempts = 0;
  std::string error;
};

awaitable<crash_acquisition> crash_acquire(redlock::lock_manager& m, std::string k,
                                           std::chrono::milliseconds ttl,
                                           std::chrono::milliseconds budget) {
  crash_acquisition a;
  redlock::call_options co;
  co.max_wait = budget;
  auto [ec, l] = co_await m.async_lock(std::move(k), ttl, co, redlock::as_tuple(use_awaitable));
  a.at = clock_type::now();
  if (ec) {
    a.error = ec.message();
    co_return a;
  }
  a.attempts = l.attempts();
  auto [uec, ur] = co_await m.async_unlock(l, redlock::as_tuple(use_awaitable));
  if (uec)
    a.error = "unlock: " + uec.message();
  co_return a;
}

// Sets `k` to a foreign value with PX = ttl on every node: one write to each, then the replies.
void crash_holder_set(const std::vector<redisContext*>& raw, const std::string& k,
                      std::chrono::milliseconds ttl) {
  static const std::string value = "crashed-holder-" + std::to_string(::getpid());
  for (auto* c : raw)
    redisAppendCommand(c, "SET %s %s PX %lld", k.c_str(), value.c_str(),
                       static_cast<long long>(ttl.count()));
  for (auto* c : raw) {
    void* r = nullptr;
    if (redisGetReply(c, &r) != REDIS_OK || !r)
      throw std::runtime_error(std::string("crash: SET failed: ") + c->errstr);
    bool ok = static_cast<redisReply*>(r)->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!ok)
      throw std::runtime_error("crash: SET refused");
  }
}

std::string case_crash(const options& o) {
  const auto ttl = std::chrono::milliseconds(o.ttl_ms);
  const auto budget = ttl + 5000ms;  // a waiter gives up 5 s after the holder's keys expired
  std::vector<redisContext*> raw;
  for (const auto& url : o.urls)
    raw.push_back(connect_node(url));
  std::vector<std::unique_ptr<crash_waiter>> ws;
  for (long i = 0; i < o.waiters; ++i) {
    ws.push_back(std::make_unique<crash_waiter>());
    auto* w = ws.back().get();
    w->thread = std::thread([w] { w->ioc.run(); });
  }
  auto stop_all = [&ws] {
    for (auto& w : ws) {
      auto* p = w.get();
      // Quit and destroy each manager on its own thread, then let the thread end.
      auto f = asio::co_spawn(
          p->ioc,
          [p]() -> awaitable<void> {
            if (p->m) {
              co_await quit(*p->m);
              p->m.reset();
            }
          },
          asio::use_future);
      if (f.wait_for(30s) == std::future_status::ready)
        f.get();
      p->guard.reset();
      p->thread.join();
    }
  };
  std::vector<double> first_lag, last_lag, set_rtt, first_attempts;
  long acquisitions = 0, failures = 0, early = 0, reps = 0;
  std::string first_error;
  error_count errs;
  command_counts before, after;
  try {
    // Connect and warm up every waiter (connections open, scripts loaded) before any crash.
    std::vector<std::future<void>> ready;
    long id = 0;
    for (auto& w : ws) {
      auto* p = w.get();
      ready.push_back(asio::co_spawn(
          p->ioc,
          [p, &o, id]() -> awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            p->m = std::make_unique<redlock::lock_manager>(ex, o.urls, waiting_settings(o));
            p->errs.watch(*p->m);
            auto warm = key("crash-warm:" + std::to_string(id));
            auto [ec, l] = co_await p->m->async_lock(warm, 10s, redlock::as_tuple(use_awaitable));
            if (ec)
              throw std::runtime_error("crash: warm-up lock failed: " + ec.message());
            auto [uec, ur] = co_await p->m->async_unlock(l, redlock::as_tuple(use_awaitable));
            (void)uec;
          },
          asio::use_future));
      ++id;
    }
    for (auto& f : ready)
      f.get();
    before = command_stats(o.urls);
    auto deadline = clock_type::now() + std::chrono::milliseconds(o.duration_ms);
    for (long r = 0; r < o.repetitions && clock_type::now() < deadline; ++r) {
      auto k = key("crash:" + std::to_string(r));
      auto t_set = clock_type::now();
      crash_holder_set(raw, k, ttl);
      set_rtt.push_back(micros(clock_type::now() - t_set));
      ++reps;
      std::vector<std::future<crash_acquisition>> got;
      for (auto& w : ws)
        got.push_back(
            asio::co_spawn(w->ioc, crash_acquire(*w->m, k, ttl, budget), asio::use_future));
      auto first = clock_type::time_point::max();
      auto last = clock_type::time_point::min();
      long first_n = 0;
      for (auto& f : got) {
        if (f.wait_for(budget + 10s) != std::future_status::ready)
          throw std::runtime_error("crash: a waiter did not finish");
        auto a = f.get();
        if (!a.error.empty()) {
          ++failures;
          if (first_error.empty())
            first_error = a.error;
          if (a.attempts == 0)
            continue;
        }
        ++acquisitions;
        if (a.at < first) {
          first = a.at;
          first_n = a.attempts;
        }
        last = std::max(last, a.at);
      }
      if (first == clock_type::time_point::max())
        continue;
      auto expiry = t_set + ttl;
      first_lag.push_back(micros(first - expiry));
      last_lag.push_back(micros(last - expiry));
      first_attempts.push_back(static_cast<double>(first_n));
      // Before the expiry would mean the foreign keys were ignored (2 ms: Redis expires keys
      // by its millisecond clock).
      if (first < expiry - 2ms)
        ++early;
    }
    after = command_stats(o.urls);
  } catch (...) {
    stop_all();
    for (auto* c : raw)
      redisFree(c);
    throw;
  }
  stop_all();
  for (auto* c : raw)
    redisFree(c);
  for (auto& w : ws)
    errs.merge(w->errs);
  auto j = header(o);
  waiting_fields(j, o);
  j.num("waiters", o.waiters)
      .num("ttl_ms", o.ttl_ms)
      .num("repetitions", reps)
      .num("acquisitions", acquisitions)
      .num("failures", failures)
      .num("early_acquisitions", early);
  // Negative values would be acquisitions before the expiry; they are reported as measured.
  latency_fields(j, "first_after_ttl", first_lag);
  latency_fields(j, "last_after_ttl", last_lag);
  latency_fields(j, "set_rtt", set_rtt);
  std::sort(first_attempts.begin(), first_attempts.end());
  j.num("first_attempts_p50", pct(first_attempts, 0.5));
  // The holder's own SETs (one per node and repetition) are not the waiters' work.
  command_fields(j, before, after, acquisitions,
                 static_cast<long long>(reps) * static_cast<long long>(raw.size()));
  if (!first_error.empty())
    j.str("first_error", first_error);
  errs.add_to(j);
  return j.done();
}

// The fan-out floor: the same EVALSHA acquire and release scripts sent to N servers by the
// leanest client possible (hiredis, one write per server, poll() until a quorum answered,
// nothing else: no value generation, timers, strands or allocation of handles). It measures
// what the machine itself charges for a quorum round trip to N servers, so that case a can be
// compared with it. Not a Redlock client: the fixed value is the same on every cycle.
struct floor_conn {
  redisContext* c = nullptr;
  std::string acquire_sha, release_sha;
  int pending = 0;
};

void floor_send(floor_conn& fc, const std::string& sha, const std::string& k, bool acquire) {
  if (acquire) {
    redisAppendCommand(fc.c, "EVALSHA %s 1 %s %s %s", sha.c_str(), k.c_str(),
                       "0123456789abcdef0123456789abcdef", "10000");
  } else {
    redisAppendCommand(fc.c, "EVALSHA %s 1 %s %s", sha.c_str(), k.c_str(),
                       "0123456789abcdef0123456789abcdef");
  }
  int done = 0;
  while (!done) {
    if (redisBufferWrite(fc.c, &done) != REDIS_OK)
      throw std::runtime_error(fc.c->errstr);
  }
  ++fc.pending;
}

// Reads replies until `quorum` of the requests just sent have answered; returns at once.
void floor_wait(std::vector<floor_conn>& conns, std::size_t quorum) {
  std::size_t answered = 0;
  for (auto& fc : conns)
    answered += fc.pending == 0;
  std::vector<pollfd> fds;
  while (answered < quorum) {
    fds.clear();
    for (auto& fc : conns)
      fds.push_back({fc.c->fd, static_cast<short>(fc.pending ? POLLIN : 0), 0});
    if (::poll(fds.data(), fds.size(), 5000) <= 0)
      throw std::runtime_error("floor: poll timeout");
    for (std::size_t i = 0; i < conns.size(); ++i) {
      if (!(fds[i].revents & POLLIN))
        continue;
      auto& fc = conns[i];
      if (redisBufferRead(fc.c) != REDIS_OK)
        throw std::runtime_error(fc.c->errstr);
      void* r = nullptr;
      while (fc.pending && redisGetReplyFromReader(fc.c, &r) == REDIS_OK && r) {
        freeReplyObject(r);
        r = nullptr;
        if (--fc.pending == 0)
          ++answered;
      }
    }
  }
}

std::string case_floor(const options& o) {
  std::vector<floor_conn> conns(o.urls.size());
  for (std::size_t i = 0; i < o.urls.size(); ++i) {
    auto ep = redlock::parse_endpoint(o.urls[i]);
    conns[i].c = connect_counter(ep.host + ":" + std::to_string(ep.port));
    int one = 1;
    ::setsockopt(conns[i].c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (bool acquire : {true, false}) {
      const auto& text = acquire ? redlock::detail::acquire_script().text()
                                 : redlock::detail::release_script().text();
      auto* r = static_cast<redisReply*>(redisCommand(conns[i].c, "SCRIPT LOAD %s", text.c_str()));
      if (!r || r->type != REDIS_REPLY_STRING)
        throw std::runtime_error("floor: SCRIPT LOAD failed");
      (acquire ? conns[i].acquire_sha : conns[i].release_sha) = r->str;
      freeReplyObject(r);
    }
  }
  const std::size_t quorum = conns.size() / 2 + 1;
  std::vector<double> acq, rel;
  acq.reserve(static_cast<std::size_t>(o.max_count));
  rel.reserve(static_cast<std::size_t>(o.max_count));
  auto deadline = clock_type::now() + std::chrono::milliseconds(o.duration_ms);
  for (long i = 0; i < o.warmup + o.max_count && clock_type::now() < deadline; ++i) {
    auto k = key("f:" + std::to_string(i));
    auto t0 = clock_type::now();
    for (auto& fc : conns)
      floor_send(fc, fc.acquire_sha, k, true);
    floor_wait(conns, quorum);
    auto t1 = clock_type::now();
    floor_wait(conns, conns.size());  // drain the late replies outside the timed span
    auto t2 = clock_type::now();
    for (auto& fc : conns)
      floor_send(fc, fc.release_sha, k, false);
    floor_wait(conns, quorum);
    auto t3 = clock_type::now();
    floor_wait(conns, conns.size());
    if (i >= o.warmup) {
      acq.push_back(micros(t1 - t0));
      rel.push_back(micros(t3 - t2));
    }
  }
  for (auto& fc : conns)
    redisFree(fc.c);
  auto j = header(o);
  j.num("cycles", static_cast<long>(acq.size())).num("failures", 0L);
  latency_fields(j, "acquire", acq);
  latency_fields(j, "release", rel);
  write_cdf(o.cdf_out, acq);
  return j.done();
}
}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "print-script") {
    // Case f loads exactly the library's scripts with SCRIPT LOAD, so that redis-benchmark
    // runs the same server-side work as the client does.
    std::string which = argv[2];
    if (which == "acquire") {
      std::cout << redlock::detail::acquire_script().text();
    } else if (which == "release") {
      std::cout << redlock::detail::release_script().text();
    } else {
      usage("print-script takes acquire or release");
    }
    return 0;
  }
  auto o = parse(argc, argv);
  g_options = &o;
  // Grace for connects, warm-ups, the release phase of `held` and the quit.
  watchdog dog(std::chrono::milliseconds(o.duration_ms) * 3 + 60s);
  try {
    std::string out;
    if (o.name == "seq") {
      out = case_seq(o);
    } else if (o.name == "throughput") {
      out = case_throughput(o);
    } else if (o.name == "contention") {
      out = case_contention(o);
    } else if (o.name == "crash") {
      out = case_crash(o);
    } else if (o.name == "churn") {
      out = case_churn(o);
    } else if (o.name == "floor") {
      out = case_floor(o);
    } else if (o.name == "held") {
      out = case_held(o);
    } else {
      usage("unknown case " + o.name);
    }
    std::cout << out << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "redlock_bench " << o.name << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}

// Micro-benchmarks: the sans-I/O decision core. One whole acquire operation (start, N
// replies, completion) through the state machine, with no I/O, for N = 1, 3, 5.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <system_error>

#include "internal/core.hpp"

namespace {

namespace core = redlock::detail::core;

std::uint64_t fixed_random() {
  return 42;
}

// Feeds event::next() until the machine has nothing more to do, as the driver does.
void drain(core::quorum_machine& m, core::action a) {
  while (a.kind != core::action::type::idle)
    a = m.resume(core::event::next());
}

void bm_acquire_operation(benchmark::State& state) {
  core::op_config cfg;
  cfg.kind = core::op_kind::acquire;
  cfg.nodes = static_cast<std::size_t>(state.range(0));
  cfg.ttl = std::chrono::milliseconds(10000);
  cfg.retry.retry_count = 0;
  const auto now = core::clock::now();
  for (auto _ : state) {
    core::quorum_machine m(cfg, &fixed_random);
    drain(m, m.resume(core::event::start(now)));
    for (std::size_t i = 0; i < cfg.nodes && !m.finished(); ++i) {
      drain(m, m.resume(core::event::reply(i, m.attempt_id(), core::answer::ok, {}, now)));
    }
    benchmark::DoNotOptimize(m.deadline());
  }
}
BENCHMARK(bm_acquire_operation)->Arg(1)->Arg(3)->Arg(5);

void bm_release_operation(benchmark::State& state) {
  core::op_config cfg;
  cfg.kind = core::op_kind::release;
  cfg.nodes = static_cast<std::size_t>(state.range(0));
  cfg.ttl = std::chrono::milliseconds(10000);
  cfg.retry.retry_count = 0;
  const auto now = core::clock::now();
  cfg.lock_deadline = now + std::chrono::seconds(10);
  for (auto _ : state) {
    core::quorum_machine m(cfg, &fixed_random);
    drain(m, m.resume(core::event::start(now)));
    for (std::size_t i = 0; i < cfg.nodes && !m.finished(); ++i) {
      drain(m, m.resume(core::event::reply(i, m.attempt_id(), core::answer::ok, {}, now)));
    }
    benchmark::DoNotOptimize(m.released());
  }
}
BENCHMARK(bm_release_operation)->Arg(1)->Arg(3)->Arg(5);

// Interpreting one node's reply (the integer the acquire script returns).
void bm_interpret_reply(benchmark::State& state) {
  redlock::reply r;
  r.kind = redlock::reply::type::integer;
  r.integer = 1;
  std::error_code ec;
  for (auto _ : state) {
    benchmark::DoNotOptimize(core::interpret(core::op_kind::acquire, {}, r, 1, ec));
  }
}
BENCHMARK(bm_interpret_reply);

}  // namespace

BENCHMARK_MAIN();

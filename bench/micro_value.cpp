// Micro-benchmarks: lock value and jitter generation (OpenSSL's CSPRNG), once per operation.
#include <benchmark/benchmark.h>

#include "redlock/detail/random.hpp"

namespace {

void bm_make_lock_value(benchmark::State& state) {
  for (auto _ : state) {
    auto v = redlock::detail::make_lock_value();
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(bm_make_lock_value);

void bm_random_u64(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(redlock::detail::random_u64());
  }
}
BENCHMARK(bm_random_u64);

}  // namespace

BENCHMARK_MAIN();

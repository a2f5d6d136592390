// Micro-benchmarks: lock value and jitter generation (OpenSSL's CSPRNG), once per operation,
// against the previous one-RAND_bytes-call-per-value design in the same run.
#include <benchmark/benchmark.h>

#include <openssl/rand.h>

#include <array>
#include <cstddef>
#include <string>

#include "internal/random.hpp"

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

// Baseline, same run: the previous make_lock_value, one RAND_bytes(16) call per value.
void bm_rand_bytes_16_per_value(benchmark::State& state) {
  static constexpr char hex[] = "0123456789abcdef";
  for (auto _ : state) {
    std::array<unsigned char, 16> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
      state.SkipWithError("RAND_bytes failed");
    std::string out(32, '0');
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      out[2 * i] = hex[bytes[i] >> 4];
      out[2 * i + 1] = hex[bytes[i] & 0xF];
    }
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(bm_rand_bytes_16_per_value);

// The floor for a pooled make_lock_value: one RAND_bytes call per 4 KiB and nothing else (no
// wiping of issued bytes, no fork safety), which the library's version must stay close to.
void bm_batched_rand_bytes_per_value(benchmark::State& state) {
  static constexpr char hex[] = "0123456789abcdef";
  std::array<unsigned char, 4096> buf{};
  std::size_t used = buf.size();
  for (auto _ : state) {
    if (used == buf.size()) {
      if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1)
        state.SkipWithError("RAND_bytes failed");
      used = 0;
    }
    std::string out(32, '0');
    for (std::size_t i = 0; i < 16; ++i) {
      out[2 * i] = hex[buf[used + i] >> 4];
      out[2 * i + 1] = hex[buf[used + i] & 0xF];
    }
    used += 16;
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(bm_batched_rand_bytes_per_value);

}  // namespace

BENCHMARK_MAIN();

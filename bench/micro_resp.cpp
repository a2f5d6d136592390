// Micro-benchmarks: the RESP2 codec on the hot path, i.e. encoding the acquire command and
// parsing the integer replies the scripts return.
#include <benchmark/benchmark.h>

#include <array>
#include <string>
#include <string_view>
#include <system_error>

#include "internal/resp.hpp"
#include "internal/scripts.hpp"

namespace {

using redlock::detail::append_command;
using redlock::detail::reply_reader;

// EVALSHA <sha> 1 <key> <value> <ttl>: what every node receives for an acquire.
void bm_encode_acquire(benchmark::State& state) {
  const std::string sha = redlock::detail::acquire_script().sha1();
  const std::array<std::string_view, 6> argv{
      "EVALSHA", sha, "1", "bench:resource:123456", "0123456789abcdef0123456789abcdef", "10000"};
  std::string out;
  for (auto _ : state) {
    out.clear();  // the node reuses its write buffer
    append_command(out, argv);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(out.size()));
}
BENCHMARK(bm_encode_acquire);

// One ":1\r\n" reply fed and pulled at a time (one round trip, one reply).
void bm_parse_integer_reply(benchmark::State& state) {
  reply_reader reader;
  std::error_code ec;
  for (auto _ : state) {
    reader.feed(":1\r\n", 4);
    auto r = reader.next(ec);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(bm_parse_integer_reply);

// 64 pipelined replies arriving in one read, as under case b's load. Reported per reply.
void bm_parse_pipelined_replies(benchmark::State& state) {
  reply_reader reader;
  std::string batch;
  for (int i = 0; i < 64; ++i)
    batch += ":1\r\n";
  std::error_code ec;
  for (auto _ : state) {
    reader.feed(batch.data(), batch.size());
    for (int i = 0; i < 64; ++i) {
      auto r = reader.next(ec);
      benchmark::DoNotOptimize(r);
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 64);
}
BENCHMARK(bm_parse_pipelined_replies);

// The NOSCRIPT error reply (once per connection, when the server lost its script cache).
void bm_parse_error_reply(benchmark::State& state) {
  reply_reader reader;
  const std::string_view msg = "-NOSCRIPT No matching script. Please use EVAL.\r\n";
  std::error_code ec;
  for (auto _ : state) {
    reader.feed(msg.data(), msg.size());
    auto r = reader.next(ec);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(bm_parse_error_reply);

}  // namespace

BENCHMARK_MAIN();

// Micro-benchmarks of the RESP2 codec against baselines, to show what the reader's framing
// guard and the encoder cost (bench/micro_resp.cpp covers the hot-path cases themselves).
//   - decode ":1\r\n" with reply_reader vs hiredis's own reader and reply objects;
//   - decode a 64 KiB read of pipelined ":1\r\n" replies, ours vs hiredis;
//   - encode EVALSHA <sha> 1 <key> <value> <ttl> with append_command vs a naive
//     std::to_string + operator+= encoder.
#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <array>
#include <string>
#include <string_view>
#include <system_error>

#include "internal/resp.hpp"

namespace {

using redlock::detail::append_command;
using redlock::detail::reply_reader;

constexpr std::string_view lock_reply = ":1\r\n";

void bm_codec_decode_lock_reply(benchmark::State& state) {
  reply_reader reader;
  std::error_code ec;
  for (auto _ : state) {
    reader.feed(lock_reply.data(), lock_reply.size());
    auto r = reader.next(ec);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(bm_codec_decode_lock_reply);

void bm_codec_decode_lock_reply_hiredis_baseline(benchmark::State& state) {
  redisReader* reader = redisReaderCreate();
  for (auto _ : state) {
    redisReaderFeed(reader, lock_reply.data(), lock_reply.size());
    void* r = nullptr;
    redisReaderGetReply(reader, &r);
    benchmark::DoNotOptimize(r);
    freeReplyObject(r);
  }
  redisReaderFree(reader);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(bm_codec_decode_lock_reply_hiredis_baseline);

std::string pipelined_batch() {
  std::string batch;
  while (batch.size() + lock_reply.size() <= 64 * 1024)
    batch += lock_reply;
  return batch;
}

void bm_codec_decode_64k_read(benchmark::State& state) {
  const std::string batch = pipelined_batch();
  reply_reader reader;
  std::error_code ec;
  std::int64_t n = 0;
  for (auto _ : state) {
    reader.feed(batch.data(), batch.size());
    while (auto r = reader.next(ec)) {
      benchmark::DoNotOptimize(r);
      ++n;
    }
  }
  state.SetItemsProcessed(n);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(batch.size()));
}
BENCHMARK(bm_codec_decode_64k_read);

void bm_codec_decode_64k_read_hiredis_baseline(benchmark::State& state) {
  const std::string batch = pipelined_batch();
  redisReader* reader = redisReaderCreate();
  std::int64_t n = 0;
  for (auto _ : state) {
    redisReaderFeed(reader, batch.data(), batch.size());
    for (;;) {
      void* r = nullptr;
      redisReaderGetReply(reader, &r);
      if (r == nullptr)
        break;
      benchmark::DoNotOptimize(r);
      freeReplyObject(r);
      ++n;
    }
  }
  redisReaderFree(reader);
  state.SetItemsProcessed(n);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(batch.size()));
}
BENCHMARK(bm_codec_decode_64k_read_hiredis_baseline);

// EVALSHA with one key and two arguments, as for an acquire.
constexpr std::array<std::string_view, 6> evalsha_argv{"EVALSHA",
                                                       "e0e1f9fabfc9d4800c877a703b823ac0578ff8db",
                                                       "1",
                                                       "bench:resource:123456",
                                                       "0123456789abcdef0123456789abcdef",
                                                       "10000"};

void bm_codec_encode_evalsha(benchmark::State& state) {
  std::string out;
  for (auto _ : state) {
    out.clear();  // a connection reuses its write buffer
    append_command(out, evalsha_argv);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(bm_codec_encode_evalsha);

void bm_codec_encode_evalsha_naive_baseline(benchmark::State& state) {
  std::string out;
  for (auto _ : state) {
    out.clear();
    out += "*" + std::to_string(evalsha_argv.size()) + "\r\n";
    for (std::string_view a : evalsha_argv) {
      out += "$" + std::to_string(a.size()) + "\r\n";
      out += a;
      out += "\r\n";
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(bm_codec_encode_evalsha_naive_baseline);

}  // namespace

BENCHMARK_MAIN();

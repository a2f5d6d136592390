// Fuzzes reply decoding: arbitrary bytes, in arbitrary chunkings, with default and tiny limits.
//
// Besides "no crash, no leak, no UB" it checks three properties:
//  - chunking does not change the outcome (same replies, same error) under default limits;
//  - with tiny limits the replies delivered are a prefix of the unlimited ones;
//  - after an error, reset() makes the reader usable again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "internal/resp.hpp"

namespace {

using redlock::reply;
using redlock::detail::reader_limits;
using redlock::detail::reply_reader;

struct outcome {
  std::vector<reply> replies;
  bool failed = false;
};

// Chunk sizes come from a tiny PRNG seeded by the input, so each input has one chunking.
outcome run(std::string_view input, std::uint32_t seed, reply_reader& reader) {
  outcome out;
  std::size_t pos = 0;
  while (pos < input.size()) {
    std::size_t n = input.size() - pos;
    if (seed != 0) {
      seed = seed * 1103515245u + 12345u;
      n = std::min<std::size_t>(n, 1 + (seed >> 16) % 17);
    }
    if (reader.feed(input.data() + pos, n)) {
      out.failed = true;
      return out;
    }
    pos += n;
    std::error_code ec;
    while (auto r = reader.next(ec))
      out.replies.push_back(std::move(*r));
    if (ec) {
      out.failed = true;
      return out;
    }
  }
  return out;
}

void check(bool ok) {
  if (!ok)
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2)
    return 0;
  const std::uint32_t seed = data[0] | (data[1] << 8) | 1u;
  const std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);

  const reader_limits defaults;
  reply_reader whole_reader(defaults);
  const outcome whole = run(input, 0, whole_reader);
  reply_reader chunked_reader(defaults);
  const outcome chunked = run(input, seed, chunked_reader);
  check(whole.failed == chunked.failed);
  check(whole.replies == chunked.replies);

  reader_limits tiny;
  tiny.max_bulk_bytes = 16;
  tiny.max_array_elements = 4;
  tiny.max_buffered_bytes = 64;
  reply_reader tiny_reader(tiny);
  const outcome limited = run(input, seed, tiny_reader);
  check(limited.replies.size() <= whole.replies.size());
  for (std::size_t i = 0; i < limited.replies.size(); ++i) {
    check(limited.replies[i] == whole.replies[i]);
  }

  if (chunked.failed) {
    chunked_reader.reset();
    check(!chunked_reader.feed(":1\r\n", 4));
    std::error_code ec;
    const auto r = chunked_reader.next(ec);
    check(!ec && r && r->is_integer(1));
  }
  return 0;
}

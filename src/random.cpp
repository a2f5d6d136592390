#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <stdexcept>

#include "redlock/detail/random.hpp"

namespace redlock::detail {

namespace {
template <std::size_t N>
std::array<unsigned char, N> random_bytes() {
  std::array<unsigned char, N> bytes{};
  // Lock values must be unguessable (another client could release our lock otherwise), so
  // a CSPRNG failure is an error, never a reason to use a weaker generator.
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    throw std::runtime_error("redlock: RAND_bytes failed");
  }
  return bytes;
}
}  // namespace

std::string make_lock_value() {
  static constexpr char hex[] = "0123456789abcdef";
  const auto bytes = random_bytes<16>();
  std::string out(32, '0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = hex[bytes[i] >> 4];
    out[2 * i + 1] = hex[bytes[i] & 0xF];
  }
  return out;
}

std::uint64_t random_u64() {
  const auto bytes = random_bytes<8>();
  std::uint64_t v = 0;
  std::memcpy(&v, bytes.data(), sizeof v);
  return v;
}

}  // namespace redlock::detail

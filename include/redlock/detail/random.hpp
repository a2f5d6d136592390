// Private: randomness for lock values and retry jitter (OpenSSL's CSPRNG).
#pragma once

#include <cstdint>
#include <string>

namespace redlock::detail {

/// A fresh lock value: 16 bytes from RAND_bytes as 32 lowercase hex characters. OpenSSL
/// reseeds its generator after fork(), so parent and child never share values.
/// Throws std::runtime_error if the CSPRNG fails (it never falls back to a weaker source).
std::string make_lock_value();

/// 64 random bits for retry jitter. Throws like make_lock_value().
std::uint64_t random_u64();

}  // namespace redlock::detail

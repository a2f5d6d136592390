// Private: randomness for lock values and retry jitter (OpenSSL's CSPRNG).
#pragma once

#include <cstdint>
#include <string>

namespace redlock::detail {

/// A fresh lock value: 16 bytes of OpenSSL CSPRNG output as 32 lowercase hex characters.
/// The bytes come from a per-thread page filled by one RAND_bytes call; a forked child never
/// hands out bytes its parent drew (the page is wiped on fork, and OpenSSL reseeds in the
/// child), and issued bytes are wiped from the page. Thread safety: any thread.
/// Throws std::runtime_error if the CSPRNG fails (it never falls back to a weaker source).
std::string make_lock_value();

/// 64 random bits for retry jitter, from the same per-thread pool. Throws like
/// make_lock_value().
std::uint64_t random_u64();

}  // namespace redlock::detail

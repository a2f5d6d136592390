#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/mman.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <stdexcept>

#include "internal/random.hpp"

namespace redlock::detail {

namespace {

// Lock values must be unguessable (another client could release our lock otherwise), so
// a CSPRNG failure is an error, never a reason to use a weaker generator.
void fill_random(unsigned char* out, std::size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) {
    throw std::runtime_error("redlock: RAND_bytes failed");
  }
}

// Each RAND_bytes call costs ~1 µs of fixed overhead in OpenSSL 3 (provider layers, the DRBG
// lock, a getpid() fork check) whatever the size, so each thread draws one page at a time and
// hands it out in pieces.
//
// Fork safety: the page is MADV_WIPEONFORK, so a child process sees it zero-filled, which
// reads as an empty pool (`left == 0`): the child refills from RAND_bytes (which OpenSSL
// reseeds in a child) and never hands out the bytes its parent still holds. Unlike a
// pthread_atfork handler this also covers children made without running fork handlers
// (_Fork(), clone()), and it costs nothing per value. Where the kernel lacks it (before
// Linux 4.14), there is no pool and every value is one RAND_bytes call, as before.
//
// Secrecy: handed-out bytes are wiped at once, so a later reader of the page (a stray read, a
// core dump where MADV_DONTDUMP is unavailable) does not find lock values in use; the page is
// also excluded from core dumps, which hides the unissued bytes too.
constexpr std::size_t pool_page_size = 4096;

struct pool {
  std::size_t left;  // unissued bytes, at the end of `bytes`; 0 in a fresh or wiped page
  unsigned char bytes[pool_page_size - sizeof(std::size_t)];
};
static_assert(sizeof(pool) == pool_page_size);

// Constant-initialised, so the fast path (tl_pool set, enough bytes left) has no TLS init guard.
constinit thread_local pool* tl_pool = nullptr;
constinit thread_local bool tl_no_pool = false;  // mapping failed, or the thread is exiting

// Unmaps the thread's page at thread exit.
struct pool_owner {
  pool_owner() = default;
  pool_owner(const pool_owner&) = delete;
  pool_owner& operator=(const pool_owner&) = delete;
  ~pool_owner() {
    if (tl_pool != nullptr) {
      OPENSSL_cleanse(tl_pool, sizeof(pool));
      munmap(tl_pool, sizeof(pool));
      tl_pool = nullptr;
    }
    // A thread_local destroyed after this one may still ask for values: serve them unpooled.
    tl_no_pool = true;
  }
};

pool* map_pool() {
#if defined(MADV_WIPEONFORK)
  void* p = mmap(nullptr, sizeof(pool), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return nullptr;
  // Without wipe-on-fork a child would reuse the parent's bytes: no pool at all then.
  if (madvise(p, sizeof(pool), MADV_WIPEONFORK) != 0) {
    munmap(p, sizeof(pool));
    return nullptr;
  }
#if defined(MADV_DONTDUMP)
  (void)madvise(p, sizeof(pool), MADV_DONTDUMP);  // best effort: only hides unissued bytes
#endif
  return static_cast<pool*>(p);  // anonymous memory is zero: an empty pool
#else
  return nullptr;
#endif
}

// n fresh bytes from this thread's pool, which the caller reads and then wipes with
// OPENSSL_cleanse; nullptr when the thread has no pool (the caller uses RAND_bytes itself).
// Throws like fill_random().
unsigned char* take_from_pool(std::size_t n) {
  pool* p = tl_pool;
  if (p == nullptr) {
    if (tl_no_pool)
      return nullptr;
    p = map_pool();
    if (p == nullptr) {
      tl_no_pool = true;
      return nullptr;
    }
    [[maybe_unused]] thread_local pool_owner
        owner;  // first use registers its destructor for this thread
    tl_pool = p;
  }
  if (p->left < n) {
    // Left-over bytes (fewer than n) are overwritten unissued. If RAND_bytes fails the pool
    // stays empty, so partial output is never handed out.
    p->left = 0;
    try {
      fill_random(p->bytes, sizeof p->bytes);
    } catch (...) {
      OPENSSL_cleanse(p->bytes, sizeof p->bytes);
      throw;
    }
    p->left = sizeof p->bytes;
  }
  unsigned char* out = p->bytes + (sizeof p->bytes - p->left);
  p->left -= n;
  return out;
}

// Calls use(bytes) with N fresh CSPRNG bytes, then wipes them. `use` must not throw.
template <std::size_t N, class Use>
void with_random_bytes(Use use) {
  if (unsigned char* bytes = take_from_pool(N)) {
    use(bytes);
    OPENSSL_cleanse(bytes, N);
    return;
  }
  std::array<unsigned char, N> bytes;
  fill_random(bytes.data(), N);
  use(bytes.data());
  OPENSSL_cleanse(bytes.data(), N);
}

}  // namespace

std::string make_lock_value() {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(32, '0');  // allocated first, so nothing can throw while bytes are out
  with_random_bytes<16>([&out](const unsigned char* bytes) noexcept {
    for (std::size_t i = 0; i < 16; ++i) {
      out[2 * i] = hex[bytes[i] >> 4];
      out[2 * i + 1] = hex[bytes[i] & 0xF];
    }
  });
  return out;
}

std::uint64_t random_u64() {
  std::uint64_t v = 0;
  with_random_bytes<sizeof v>(
      [&v](const unsigned char* bytes) noexcept { std::memcpy(&v, bytes, sizeof v); });
  return v;
}

}  // namespace redlock::detail

// LD_PRELOAD shim that skews a process's wall clock (used on redis-server in fault tests).
//
// libfaketime crashes redis-server 7.0.15, so this is the smallest thing that does the job:
// it overrides clock_gettime(CLOCK_REALTIME*), gettimeofday() and time(). Redis 7.0 derives key
// expiry (SET PX, PEXPIRE, PTTL, the active and lazy expire checks) from ustime()/mstime(),
// which call gettimeofday(); the fault tests check that assumption by watching PTTL.
//
// The control file named by $REDLOCK_CLOCK_FILE holds one line "rate offset_us anchor_us":
//   fake = anchor + (real - anchor) * rate + offset     (all CLOCK_REALTIME microseconds)
// so rate 2 runs the clock twice as fast from `anchor` on, and offset jumps it. The writer
// (fault_clock in the test support library) replaces the file atomically by rename; the shim
// reads it at most every 2 ms, so changes apply promptly without a read per clock call. A
// missing file means the real clock.
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {

struct skew {
  double rate = 1.0;
  std::int64_t offset_us = 0;
  std::int64_t anchor_us = 0;
};

pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
skew current;
std::int64_t last_check_us = -1'000'000'000;  // monotonic

// Real clocks through the system call, not the vDSO symbol we are replacing.
int real_clock_gettime(clockid_t id, timespec* ts) {
  return static_cast<int>(syscall(SYS_clock_gettime, id, ts));
}

std::int64_t to_us(const timespec& ts) {
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

void refresh_locked() {
  timespec mono{};
  real_clock_gettime(CLOCK_MONOTONIC, &mono);
  const std::int64_t now = to_us(mono);
  // Re-check at most every 2 ms: cheap enough for redis, prompt enough for tests that wait on
  // the effect anyway.
  if (now - last_check_us < 2000)
    return;
  last_check_us = now;
  const char* path = std::getenv("REDLOCK_CLOCK_FILE");
  if (path == nullptr)
    return;
  // Read the line itself each time rather than trusting the file's inode and mtime to change:
  // a dozen bytes every 2 ms is nothing, and no file system detail can then hide a change.
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) {
    current = skew{};
    return;
  }
  double rate = 1.0;
  long long offset = 0;
  long long anchor = 0;
  if (std::fscanf(f, "%lf %lld %lld", &rate, &offset, &anchor) == 3 && rate > 0) {
    current.rate = rate;
    current.offset_us = offset;
    current.anchor_us = anchor;
  }
  std::fclose(f);
}

std::int64_t fake_realtime_us() {
  timespec ts{};
  real_clock_gettime(CLOCK_REALTIME, &ts);
  const std::int64_t real = to_us(ts);
  pthread_mutex_lock(&mutex);
  refresh_locked();
  const skew s = current;
  pthread_mutex_unlock(&mutex);
  const double scaled = static_cast<double>(real - s.anchor_us) * s.rate;
  return s.anchor_us + static_cast<std::int64_t>(scaled) + s.offset_us;
}

}  // namespace

extern "C" {

int clock_gettime(clockid_t id, timespec* ts) {
  if (id != CLOCK_REALTIME && id != CLOCK_REALTIME_COARSE)
    return real_clock_gettime(id, ts);
  const std::int64_t us = fake_realtime_us();
  ts->tv_sec = static_cast<time_t>(us / 1'000'000);
  ts->tv_nsec = static_cast<long>((us % 1'000'000) * 1000);
  return 0;
}

int gettimeofday(struct timeval* tv, void* tz) {
  (void)tz;  // obsolete; redis passes NULL
  const std::int64_t us = fake_realtime_us();
  tv->tv_sec = static_cast<time_t>(us / 1'000'000);
  tv->tv_usec = static_cast<suseconds_t>(us % 1'000'000);
  return 0;
}

time_t time(time_t* out) {
  const auto t = static_cast<time_t>(fake_realtime_us() / 1'000'000);
  if (out != nullptr)
    *out = t;
  return t;
}

}  // extern "C"

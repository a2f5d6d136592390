// A redis-server clock that tests can skew: the LD_PRELOAD shim (tests/fault/clock_shim.cpp)
// reads a control file that this class writes.
//
//   server_clock clk(REDLOCK_CLOCK_SHIM);               // path of the built shim
//   redis_server s({.env = clk.env()});
//   clk.set_rate(2.0);                                  // from now on, 2 s pass per second
//   clk.jump(std::chrono::seconds(30));                 // and/or jump forward
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace redlock::test {

class server_clock {
 public:
  /// Creates the control file (real time) in a fresh temp dir. Throws std::runtime_error if
  /// the shim does not exist.
  explicit server_clock(std::string shim_path);
  ~server_clock();  // removes the control file
  server_clock(const server_clock&) = delete;
  server_clock& operator=(const server_clock&) = delete;

  /// Environment entries for the server: LD_PRELOAD and REDLOCK_CLOCK_FILE.
  std::vector<std::string> env() const;

  /// The server's clock runs at `rate` from now on, continuing from where it is (no jump).
  void set_rate(double rate);
  /// The server's clock jumps by `by` (positive: forward) and keeps its rate.
  void jump(std::chrono::milliseconds by);
  double rate() const noexcept { return rate_; }

 private:
  void write();
  std::string shim_;
  std::string dir_;
  std::string file_;
  double rate_ = 1.0;
  long long offset_us_ = 0;
  long long anchor_us_ = 0;
};

}  // namespace redlock::test

#include "support/fault_clock.hpp"

#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "support/fault_net.hpp"

namespace redlock::test {

namespace {

long long real_now_us() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<long long>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

}  // namespace

server_clock::server_clock(std::string shim_path) : shim_(std::move(shim_path)) {
  if (!std::filesystem::exists(shim_))
    throw std::runtime_error("clock shim missing: " + shim_);
  char tmpl[] = "/tmp/redlock-clock-XXXXXX";
  if (mkdtemp(tmpl) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  file_ = dir_ + "/clock";
  anchor_us_ = real_now_us();
  write();
}

server_clock::~server_clock() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::vector<std::string> server_clock::env() const {
  return {"LD_PRELOAD=" + shim_, "REDLOCK_CLOCK_FILE=" + file_};
}

void server_clock::set_rate(double rate) {
  // Re-anchor at now so that the fake clock is continuous: fold the time gained so far at the
  // old rate into the offset.
  const long long now = real_now_us();
  offset_us_ += static_cast<long long>(static_cast<double>(now - anchor_us_) * (rate_ - 1.0));
  anchor_us_ = now;
  rate_ = rate;
  write();
  count_fault("clock-rate");
}

void server_clock::jump(std::chrono::milliseconds by) {
  offset_us_ += by.count() * 1000;
  write();
  count_fault("clock-jump");
}

void server_clock::write() {
  // Write a new file and rename it over the old one: the shim never reads a half-written line
  // and sees a new inode.
  const std::string tmp = file_ + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr)
    throw std::runtime_error("cannot write " + tmp);
  std::fprintf(f, "%.9f %lld %lld\n", rate_, offset_us_, anchor_us_);
  std::fclose(f);
  std::filesystem::rename(tmp, file_);
}

}  // namespace redlock::test

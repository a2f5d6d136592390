// The subcommands. Each returns the process exit code or throws exit_error.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"
#include "session.hpp"

namespace redlock::cli {

enum class on_lost_policy { term, kill, ignore };

struct run_args {
  std::vector<std::string> resources;
  std::vector<std::string> command;
  std::chrono::milliseconds ttl{10'000};
  wait_options wait;
  on_lost_policy on_lost = on_lost_policy::term;
  std::chrono::milliseconds grace{5'000};
  /// --fencing (or REDLOCK_FENCING=1): a fenced acquire; the command gets
  /// REDLOCK_FENCING_TOKEN beside REDLOCK_LOCK_VALUE.
  bool fencing = false;
};
int cmd_run(const config& c, const run_args& a);

struct acquire_args {
  std::vector<std::string> resources;
  std::chrono::milliseconds ttl{10'000};
  wait_options wait;
  /// --fencing (or REDLOCK_FENCING=1): a fenced acquire; the token is printed on a second
  /// line after the value.
  bool fencing = false;
};
int cmd_acquire(const config& c, const acquire_args& a);

struct value_args {
  std::vector<std::string> resources;
  std::string value;
  std::chrono::milliseconds ttl{10'000};
  /// extend --fencing-token: the token printed by `acquire --fencing` (0: none), carried by
  /// the rebuilt handle and shown by -v.
  std::uint64_t fencing_token = 0;
};
int cmd_extend(const config& c, const value_args& a);
int cmd_release(const config& c, const value_args& a);

struct status_args {
  std::vector<std::string> resources;
  bool json = false;
};
int cmd_status(const config& c, const status_args& a);

}  // namespace redlock::cli

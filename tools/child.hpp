// Starting the command of `redlock run`: fork + execvp (no shell), without leaking
// redlock's own descriptors (Redis sockets) into it.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace redlock::cli {

/// Remembers the descriptors open at program start: they belong to the caller (a shell's
/// `3>file`, a supervisor's socket) and are passed on to the command, as flock(1) does.
/// Call first thing in main().
void record_inherited_fds();

/// Marks every descriptor opened by redlock itself (not recorded above) close-on-exec.
/// Asio opens sockets without SOCK_CLOEXEC, so the command would otherwise inherit the
/// connections to the Redis servers and keep them open after redlock exits.
void set_cloexec_on_own_fds();

struct spawn_result {
  pid_t pid = -1;  ///< the running command, or -1
  int error = 0;   ///< errno of the failed fork or exec when pid == -1
};

/// One variable of the command's environment: set to `value`, or removed when nullopt.
struct env_change {
  std::string name;
  std::optional<std::string> value;
};

/// redlock's own environment with `changes` applied, as "NAME=value" entries: every
/// inherited entry of a changed name is dropped, then the set ones are appended.
std::vector<std::string> child_environment(const std::vector<env_change>& changes);

/// Forks and execs argv[0] (PATH lookup) with argv and the environment `env` ("NAME=value"
/// entries, e.g. from child_environment). `in_child` runs in the child before exec and must
/// be async-signal-safe. Reports exec failures synchronously (through a close-on-exec pipe),
/// so "command not found" is known before the lock is used.
spawn_result spawn_command(const std::vector<std::string>& argv,
                           const std::vector<std::string>& env,
                           const std::function<void()>& in_child);

}  // namespace redlock::cli

// Runs the built `redlock` binary (or any program) as a child process for the CLI tests:
// captured stdout/stderr, signals, and waits that always have a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace redlock::test {

struct process_options {
  std::vector<std::string> env;        ///< extra "NAME=value" entries (override the inherited ones)
  std::vector<std::string> unset_env;  ///< names removed from the inherited environment
  bool pty_stderr = false;  ///< stderr on a pseudo-terminal (isatty(2) true), read like a pipe
  unsigned short pty_columns = 0;  ///< with pty_stderr: the terminal's width (0: unset)
};

/// A started process. The destructor SIGKILLs and reaps it if it still runs.
/// Distinct objects: safe. Shared objects: unsafe.
class process {
 public:
  explicit process(std::vector<std::string> argv, process_options opts = {});
  ~process();
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  void signal(int signo) const;

  /// Waits for the exit (reading output meanwhile). False when the deadline passed.
  bool wait_exit(std::chrono::milliseconds deadline);
  /// Waits until pred(stdout, stderr) holds, reading output. False on deadline or exit.
  bool wait_output(const std::function<bool(const std::string&, const std::string&)>& pred,
                   std::chrono::milliseconds deadline);

  bool exited() const noexcept { return exited_; }
  /// Exit code as a shell reports it: the code, or 128 + signal.
  int exit_code() const noexcept { return code_; }
  const std::string& out() const noexcept { return out_; }
  const std::string& err() const noexcept { return err_; }

 private:
  void pump(std::chrono::milliseconds max_wait);
  void reap(bool block);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool exited_ = false;
  int code_ = -1;
  std::string out_;
  std::string err_;
};

/// Runs to completion (deadline 30 s) and returns the finished process.
struct run_result {
  int code = -1;
  std::string out, err;
};
run_result run_to_end(std::vector<std::string> argv, process_options opts = {},
                      std::chrono::milliseconds deadline = std::chrono::milliseconds(30000));

}  // namespace redlock::test

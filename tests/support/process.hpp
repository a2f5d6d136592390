// The one child-process launcher of the tests: redis-servers, the `redlock` binary under
// test, openssl, iptables, soak clients.
//
// Every started process is entered in a process-wide registry of PIDs. Destructors empty it
// in the normal case; atexit() and a handler for the fatal signals (abort from a failed
// CHECK, a crash, Ctrl-C) SIGKILL whatever is left, so a failing test leaves no process
// behind. Processes started from the main thread also get PR_SET_PDEATHSIG, which covers the
// test process being SIGKILLed (ctest timeout). Temporary directories made with
// make_temp_dir() are removed at exit the same way.
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
  /// Where stdout and stderr go: captured into out()/err() (the default), appended to
  /// `output_file` (both), or inherited from the test process.
  enum class output { capture, file, inherit };
  output out = output::capture;
  std::string output_file;         ///< with output::file
  bool pty_stderr = false;         ///< capture: stderr on a pseudo-terminal (isatty(2) true)
  unsigned short pty_columns = 0;  ///< with pty_stderr: the terminal's width (0: unset)
};

/// A started process; argv[0] without a '/' is looked up in PATH (not found: the child exits
/// 127, as in a shell). The child gets /dev/null as stdin, an empty signal mask and no file
/// descriptors above 2. The destructor SIGKILLs and reaps it if it still runs.
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
  /// Reaps the process if it has exited, without blocking; returns exited().
  bool poll_exit();
  /// SIGKILL and reap.
  void kill9();
  /// SIGTERM (and SIGCONT, so that a stopped process can act on it), wait up to `grace`,
  /// then SIGKILL; always reaped on return.
  void stop(std::chrono::milliseconds grace);

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

/// Runs a helper program (openssl, iptables) to completion; throws std::runtime_error with
/// the command line and its output unless it exits 0.
void run_checked(const std::vector<std::string>& argv,
                 std::chrono::milliseconds deadline = std::chrono::milliseconds(30000));

/// A new directory /tmp/<prefix>XXXXXX, removed at exit unless remove_temp_dir() did it first.
/// Throws std::runtime_error.
std::string make_temp_dir(const std::string& prefix);
/// Removes the directory and forgets it. Never throws.
void remove_temp_dir(const std::string& dir) noexcept;

}  // namespace redlock::test

#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>

extern char** environ;

namespace redlock::test {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------
// Registry of live child processes (async-signal-safe: fixed array of atomics).

constexpr std::size_t max_children = 512;
std::array<std::atomic<pid_t>, max_children> g_children{};
std::atomic<pid_t> g_owner{0};  // the process that registered; forked children must not act

struct saved_action {
  int sig;
  struct sigaction old;
};
std::array<saved_action, 7> g_saved{{{SIGABRT, {}},
                                     {SIGSEGV, {}},
                                     {SIGBUS, {}},
                                     {SIGFPE, {}},
                                     {SIGILL, {}},
                                     {SIGINT, {}},
                                     {SIGTERM, {}}}};

void kill_all_children() noexcept {
  if (g_owner.load() != getpid())
    return;  // e.g. a gtest death-test child
  for (auto& slot : g_children) {
    pid_t p = slot.exchange(0);
    if (p > 0) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
    }
  }
}

void on_fatal_signal(int sig) {
  int saved_errno = errno;
  kill_all_children();
  for (auto& s : g_saved) {
    if (s.sig == sig)
      sigaction(sig, &s.old, nullptr);
  }
  errno = saved_errno;
  // Synchronous faults re-fault on return and reach the previous handler (e.g. ASan's)
  // with the original siginfo; asynchronous ones are re-raised.
  if (sig != SIGSEGV && sig != SIGBUS && sig != SIGFPE && sig != SIGILL)
    raise(sig);
}

// Temporary directories still present at exit (removed by atexit, not by signal handlers).
std::mutex g_dirs_mutex;
std::set<std::string>& live_dirs() {
  static auto* dirs = new std::set<std::string>();  // leaked on purpose: used at exit
  return *dirs;
}

void at_exit_cleanup() {
  kill_all_children();
  if (g_owner.load() != getpid())
    return;
  std::lock_guard lock(g_dirs_mutex);
  for (const auto& d : live_dirs()) {
    std::error_code ec;
    fs::remove_all(d, ec);
  }
  live_dirs().clear();
}

void install_cleanup_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_owner.store(getpid());
    std::atexit(at_exit_cleanup);
    for (auto& s : g_saved) {
      struct sigaction sa {};
      sa.sa_handler = on_fatal_signal;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = 0;
      sigaction(s.sig, &sa, &s.old);
    }
  });
}

void register_child(pid_t p) {
  for (auto& slot : g_children) {
    pid_t expected = 0;
    if (slot.compare_exchange_strong(expected, p))
      return;
  }
  // More than max_children live processes: not expected in tests. Still reaped by the object.
}

void unregister_child(pid_t p) {
  for (auto& slot : g_children) {
    pid_t expected = p;
    if (slot.compare_exchange_strong(expected, 0))
      return;
  }
}

// ---------------------------------------------------------------------------------------

std::string find_executable(const std::string& name) {
  if (name.find('/') != std::string::npos)
    return name;
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(ss, dir, ':');) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return name;  // execve fails and the child exits 127
}

std::vector<std::string> make_env(const process_options& o) {
  std::vector<std::string> env;
  auto overridden = [&](std::string_view entry) {
    const auto name = entry.substr(0, entry.find('='));
    for (const auto& u : o.unset_env)
      if (u == name)
        return true;
    for (const auto& e : o.env)
      if (std::string_view(e).substr(0, e.find('=')) == name)
        return true;
    return false;
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e)
    if (!overridden(*e))
      env.emplace_back(*e);
  for (const auto& e : o.env)
    env.push_back(e);
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& v) {
  std::vector<char*> p;
  for (auto& s : v)
    p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

void close_fd(int& fd) noexcept {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}

}  // namespace

process::process(std::vector<std::string> argv, process_options opts) {
  install_cleanup_once();
  // Everything is prepared before the fork: the child makes only async-signal-safe calls.
  argv.at(0) = find_executable(argv[0]);
  std::vector<std::string> env = make_env(opts);
  auto cargv = pointers(argv);
  auto cenv = pointers(env);

  int out[2] = {-1, -1};  // [0]: ours to read, [1]: the child's stdout
  int err[2] = {-1, -1};
  auto close_all = [&] {
    for (int* fd : {&out[0], &out[1], &err[0], &err[1]})
      close_fd(*fd);
  };
  switch (opts.out) {
    case process_options::output::capture:
      if (::pipe2(out, O_CLOEXEC) != 0)
        throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
      if (opts.pty_stderr) {
        struct winsize size {};
        size.ws_row = 24;
        size.ws_col = opts.pty_columns;
        if (::openpty(&err[0], &err[1], nullptr, nullptr, opts.pty_columns > 0 ? &size : nullptr) !=
            0) {
          close_all();
          throw std::runtime_error("openpty failed");
        }
        ::fcntl(err[0], F_SETFD, FD_CLOEXEC);
        ::fcntl(err[1], F_SETFD, FD_CLOEXEC);
      } else if (::pipe2(err, O_CLOEXEC) != 0) {
        close_all();
        throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
      }
      break;
    case process_options::output::file:
      out[1] = ::open(opts.output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (out[1] < 0)
        throw std::runtime_error("cannot open " + opts.output_file + ": " + std::strerror(errno));
      err[1] = ::dup(out[1]);
      ::fcntl(err[1], F_SETFD, FD_CLOEXEC);
      break;
    case process_options::output::inherit:
      break;
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  // PDEATHSIG fires when the *thread* that forked exits, so only use it from the main thread.
  const bool die_with_parent = static_cast<pid_t>(syscall(SYS_gettid)) == parent;

  // Ctrl-C or SIGTERM between fork() and register_child() would leak the child, so they are
  // held back until the PID is registered (the child unblocks everything).
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  pid_ = ::fork();
  if (pid_ == 0) {
    if (die_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        _exit(127);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (null_fd >= 0)
      dup2(null_fd, 0);
    if (out[1] >= 0)
      dup2(out[1], 1);
    if (err[1] >= 0)
      dup2(err[1], 2);
    // Do not leak the test's sockets and files into the child.
    syscall(SYS_close_range, 3U, ~0U, 0U);
    execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  const int saved = errno;
  if (pid_ > 0)
    register_child(pid_);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (null_fd >= 0)
    ::close(null_fd);
  close_fd(out[1]);
  close_fd(err[1]);
  if (pid_ < 0) {
    close_all();
    throw std::runtime_error(std::string("fork: ") + std::strerror(saved));
  }
  out_fd_ = out[0];
  err_fd_ = err[0];
}

process::~process() {
  if (!exited_ && pid_ > 0)
    kill9();
  close_fd(out_fd_);
  close_fd(err_fd_);
}

void process::signal(int signo) const {
  if (!exited_)
    ::kill(pid_, signo);
}

void process::reap(bool block) {
  if (exited_)
    return;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_ && !(r < 0 && errno == ECHILD))
    return;
  unregister_child(pid_);
  exited_ = true;
  if (r == pid_)
    code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool process::poll_exit() {
  reap(false);
  return exited_;
}

void process::kill9() {
  if (exited_)
    return;
  ::kill(pid_, SIGKILL);
  reap(true);
}

void process::stop(std::chrono::milliseconds grace) {
  if (exited_)
    return;
  ::kill(pid_, SIGTERM);
  ::kill(pid_, SIGCONT);
  const auto until = std::chrono::steady_clock::now() + grace;
  while (!poll_exit() && std::chrono::steady_clock::now() < until) {
    struct timespec ts {
      0, 2'000'000
    };
    nanosleep(&ts, nullptr);
  }
  kill9();
}

void process::pump(std::chrono::milliseconds max_wait) {
  pollfd fds[2];
  int n = 0;
  if (out_fd_ >= 0)
    fds[n++] = {out_fd_, POLLIN, 0};
  if (err_fd_ >= 0)
    fds[n++] = {err_fd_, POLLIN, 0};
  if (n == 0) {
    struct timespec ts {
      0, 5'000'000
    };
    nanosleep(&ts, nullptr);
    return;
  }
  const int ready = ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(max_wait.count()));
  if (ready <= 0)
    return;
  char buf[4096];
  for (int i = 0; i < n; ++i) {
    if (fds[i].revents == 0)
      continue;
    const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
    const bool is_out = fds[i].fd == out_fd_;
    if (got > 0) {
      (is_out ? out_ : err_).append(buf, static_cast<std::size_t>(got));
    } else if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
      // EOF (a pty master reports EIO once the last slave is closed).
      close_fd(is_out ? out_fd_ : err_fd_);
    }
  }
}

bool process::wait_exit(std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  bool drain_started = false;
  for (;;) {
    reap(false);
    // After the exit, drain what is left in the pipes; a grandchild may hold them open, so
    // only briefly.
    if (exited_ && out_fd_ < 0 && err_fd_ < 0)
      return true;
    if (exited_ && !drain_started) {
      drain_started = true;
      until = std::min(until, std::chrono::steady_clock::now() + std::chrono::milliseconds(500));
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= until)
      return exited_;
    pump(std::min(std::chrono::milliseconds(20),
                  std::chrono::duration_cast<std::chrono::milliseconds>(until - now)));
  }
}

bool process::wait_output(const std::function<bool(const std::string&, const std::string&)>& pred,
                          std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    if (pred(out_, err_))
      return true;
    reap(false);
    if (exited_ && out_fd_ < 0 && err_fd_ < 0)
      return pred(out_, err_);
    const auto now = std::chrono::steady_clock::now();
    if (now >= until)
      return pred(out_, err_);
    pump(std::min(std::chrono::milliseconds(20),
                  std::chrono::duration_cast<std::chrono::milliseconds>(until - now)));
  }
}

run_result run_to_end(std::vector<std::string> argv, process_options opts,
                      std::chrono::milliseconds deadline) {
  process p(std::move(argv), std::move(opts));
  run_result r;
  if (!p.wait_exit(deadline)) {
    r.err = "(did not exit within the deadline) ";
  }
  r.code = p.exit_code();
  r.out = p.out();
  r.err += p.err();
  return r;
}

void run_checked(const std::vector<std::string>& argv, std::chrono::milliseconds deadline) {
  const auto r = run_to_end(argv, {}, deadline);
  if (r.code != 0) {
    std::string cmd;
    for (const auto& a : argv)
      cmd += a + " ";
    throw std::runtime_error("command failed (exit " + std::to_string(r.code) + "): " + cmd + "\n" +
                             r.out + r.err);
  }
}

std::string make_temp_dir(const std::string& prefix) {
  install_cleanup_once();
  std::string tmpl = "/tmp/" + prefix + "XXXXXX";
  if (!mkdtemp(tmpl.data()))
    throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  std::lock_guard lock(g_dirs_mutex);
  live_dirs().insert(tmpl);
  return tmpl;
}

void remove_temp_dir(const std::string& dir) noexcept {
  std::error_code ec;
  fs::remove_all(dir, ec);
  std::lock_guard lock(g_dirs_mutex);
  live_dirs().erase(dir);
}

}  // namespace redlock::test

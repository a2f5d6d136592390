#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace redlock::test {

namespace {

std::vector<std::string> make_env(const process_options& o) {
  std::vector<std::string> env;
  auto overridden = [&](const std::string& entry) {
    const auto name = entry.substr(0, entry.find('='));
    for (const auto& u : o.unset_env)
      if (u == name)
        return true;
    for (const auto& e : o.env)
      if (e.substr(0, e.find('=')) == name)
        return true;
    return false;
  };
  for (char** e = environ; *e != nullptr; ++e)
    if (!overridden(*e))
      env.emplace_back(*e);
  for (const auto& e : o.env)
    env.push_back(e);
  return env;
}

}  // namespace

process::process(std::vector<std::string> argv, process_options opts) {
  std::vector<std::string> env = make_env(opts);
  std::vector<char*> cargv, cenv;
  for (auto& a : argv)
    cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : env)
    cenv.push_back(e.data());
  cenv.push_back(nullptr);

  int out[2];
  int err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe2 failed");
  if (opts.pty_stderr) {
    int master = -1, slave = -1;
    struct winsize size {};
    size.ws_row = 24;
    size.ws_col = opts.pty_columns;
    if (::openpty(&master, &slave, nullptr, nullptr, opts.pty_columns > 0 ? &size : nullptr) != 0)
      throw std::runtime_error("openpty failed");
    ::fcntl(master, F_SETFD, FD_CLOEXEC);
    ::fcntl(slave, F_SETFD, FD_CLOEXEC);
    err[0] = master;
    err[1] = slave;
  } else if (::pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
  pid_ = ::fork();
  if (pid_ < 0)
    throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      ::dup2(devnull, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(cargv[0], cargv.data(), cenv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  out_fd_ = out[0];
  err_fd_ = err[0];
}

process::~process() {
  if (!exited_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  if (out_fd_ >= 0)
    ::close(out_fd_);
  if (err_fd_ >= 0)
    ::close(err_fd_);
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
  if (r != pid_)
    return;
  exited_ = true;
  code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
      ::close(fds[i].fd);
      (is_out ? out_fd_ : err_fd_) = -1;
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

}  // namespace redlock::test

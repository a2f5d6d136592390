#include "child.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string_view>

extern char** environ;

namespace redlock::cli {

namespace {

std::vector<int> g_inherited;

std::vector<int> open_fds() {
  std::vector<int> fds;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr)
    return fds;
  const int self = ::dirfd(d);
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    const int fd = std::atoi(e->d_name);
    if (fd != self)
      fds.push_back(fd);
  }
  ::closedir(d);
  return fds;
}

}  // namespace

void record_inherited_fds() {
  g_inherited = open_fds();
}

void set_cloexec_on_own_fds() {
  for (int fd : open_fds()) {
    if (fd <= 2)
      continue;
    if (std::find(g_inherited.begin(), g_inherited.end(), fd) != g_inherited.end())
      continue;
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC) == 0)
      ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

std::vector<std::string> child_environment(const std::vector<env_change>& changes) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto name = entry.substr(0, entry.find('='));
    const bool changed = std::any_of(changes.begin(), changes.end(),
                                     [name](const env_change& c) { return c.name == name; });
    if (!changed)
      out.emplace_back(entry);
  }
  for (const auto& c : changes) {
    if (c.value)
      out.push_back(c.name + "=" + *c.value);
  }
  return out;
}

spawn_result spawn_command(const std::vector<std::string>& argv,
                           const std::vector<std::string>& env,
                           const std::function<void()>& in_child) {
  spawn_result r;
  if (argv.empty()) {
    r.error = ENOENT;
    return r;
  }
  // Built before the fork: the child may only make async-signal-safe calls.
  auto c_array = [](const std::vector<std::string>& v) {
    std::vector<char*> out;
    out.reserve(v.size() + 1);
    for (const auto& s : v)
      out.push_back(const_cast<char*>(s.c_str()));
    out.push_back(nullptr);
    return out;
  };
  std::vector<char*> cargv = c_array(argv);
  std::vector<char*> cenv = c_array(env);

  set_cloexec_on_own_fds();
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    r.error = errno;
    return r;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    r.error = errno;
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    return r;
  }
  if (pid == 0) {
    ::close(err_pipe[0]);
    if (in_child)
      in_child();
    ::execvpe(cargv[0], cargv.data(), cenv.data());
    const int e = errno;
    [[maybe_unused]] auto n = ::write(err_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  ::close(err_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    // exec failed: reap the child now, it has already exited with 127.
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.error = child_errno;
    return r;
  }
  r.pid = pid;
  return r;
}

}  // namespace redlock::cli

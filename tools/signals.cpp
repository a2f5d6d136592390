#include "signals.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace redlock::cli {

namespace {

// The write end of the self-pipe, used by the handler. One watcher per process.
volatile sig_atomic_t g_pipe_write = -1;
struct sigaction g_old[NSIG];

void on_signal_raw(int signo, siginfo_t* info, void*) {
  const int saved = errno;
  // si_code <= 0: SI_USER (kill), SI_QUEUE, SI_TKILL... i.e. sent by a process.
  unsigned char msg[2] = {static_cast<unsigned char>(signo),
                          static_cast<unsigned char>(info != nullptr && info->si_code <= 0)};
  if (g_pipe_write >= 0) {
    // A full pipe drops the event; 32 KiB of pending signals means we are stuck anyway.
    [[maybe_unused]] auto n = ::write(g_pipe_write, msg, sizeof msg);
  }
  errno = saved;
}

}  // namespace

signal_watcher::signal_watcher(asio::io_context& ioc, std::initializer_list<int> signals)
    : pipe_read_(ioc), signals_(signals) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
    throw std::system_error(errno, std::generic_category(), "pipe2");
  pipe_read_.assign(fds[0]);
  g_pipe_write = fds[1];
  for (int s : signals_) {
    struct sigaction sa {};
    sa.sa_sigaction = on_signal_raw;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | (s == SIGCHLD ? SA_NOCLDSTOP : 0);
    sigemptyset(&sa.sa_mask);
    if (::sigaction(s, &sa, &g_old[s]) != 0)
      throw std::system_error(errno, std::generic_category(), "sigaction");
  }
}

signal_watcher::~signal_watcher() {
  for (int s : signals_)
    ::sigaction(s, &g_old[s], nullptr);
  const int w = g_pipe_write;
  g_pipe_write = -1;
  if (w >= 0)
    ::close(w);
}

void signal_watcher::start(std::function<void(signal_event)> on_signal) {
  on_signal_ = std::move(on_signal);
  stopped_ = false;
  read_more();
}

void signal_watcher::stop() {
  stopped_ = true;
  std::error_code ignored;
  pipe_read_.cancel(ignored);
}

void signal_watcher::reset_in_child() const noexcept {
  for (int s : signals_) {
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    ::sigaction(s, &sa, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

void signal_watcher::read_more() {
  pipe_read_.async_read_some(asio::buffer(buf_), [this](std::error_code ec, std::size_t n) {
    if (ec || stopped_)
      return;
    for (std::size_t i = 0; i + 1 < n; i += 2) {
      if (stopped_)
        return;
      on_signal_(signal_event{buf_[i], buf_[i + 1] != 0});
    }
    read_more();
  });
}

}  // namespace redlock::cli

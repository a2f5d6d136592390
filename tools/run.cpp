// `redlock run`: acquire, run the command while extending, release, pass its exit code on.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/use_awaitable.hpp>

#include "child.hpp"
#include "commands.hpp"
#include "duration.hpp"
#include "json_report.hpp"
#include "redlock/asio_compat.hpp"
#include "redlock/error.hpp"
#include "redlock/hold.hpp"
#include "signals.hpp"

namespace redlock::cli {

namespace {

const char* signal_name(int s) {
  const char* n = ::sigabbrev_np(s);
  return n != nullptr ? n : "?";
}

asio::awaitable<int> run_body(session& s, const run_args& a) {
  auto& ctx = s.context();
  interruption intr;
  pid_t child = -1;
  bool exited = false;
  int status = 0;
  bool lost = false;
  asio::steady_timer wake(ctx);  // cancelled to wake the waiting loop below
  wake.expires_at(asio::steady_timer::time_point::max());
  asio::steady_timer grace(ctx);

  s.on_signal([&](signal_event e) {
    if (e.signo == SIGCHLD) {
      if (child > 0 && !exited) {
        int st = 0;
        if (::waitpid(child, &st, WNOHANG) == child) {
          exited = true;
          status = st;
          wake.cancel();
        }
      }
      return;
    }
    if (child > 0) {
      // A terminal's Ctrl-C already reached the command (same process group); a signal
      // sent to redlock by a process (kill, a supervisor) is passed on.
      if (!exited && e.from_process)
        ::kill(child, e.signo);
      return;
    }
    intr.interrupt(e.signo);
  });

  auto [ec, l, attempts] = co_await acquire_waiting(s, a.resources, a.ttl, a.wait, intr);
  json_report& jr = invocation();
  jr.set_int("attempts", attempts);
  if (intr.signo != 0) {
    s.on_signal({});
    s.begin_cleanup();
    if (!ec)
      co_await release_quietly(s, l);
    jr.fail(std::string("interrupted by signal ") + std::to_string(intr.signo) + " while waiting");
    co_return exit_signal_base + intr.signo;
  }
  if (ec) {
    s.on_signal({});
    co_return co_await report_acquire_failure(s, ec, a.resources, attempts, l.report());
  }

  // What the command may need of its lock: the value (to tell it in `redlock status`) and,
  // when fenced, the token to send with its writes. An inherited token is removed when this
  // lock has none: a plain `redlock run` inside a fenced one must not pass the outer token on.
  jr.set_string("value", l.value());
  if (a.fencing)
    jr.set_raw("fencing_token", std::to_string(l.fencing_token()));
  // The secrets are gone from redlock's environment already (resolve_secret); named
  // here too so that no later change can let it through to the command.
  const std::vector<env_change> env{
      {"REDLOCK_PASSWORD", std::nullopt},
      {"REDLOCK_TLS_KEY_PASSPHRASE", std::nullopt},
      {"REDLOCK_LOCK_VALUE", l.value()},
      {"REDLOCK_FENCING_TOKEN",
       a.fencing ? std::optional(std::to_string(l.fencing_token())) : std::nullopt}};
  const pid_t parent = ::getpid();
  signal_watcher& sw = s.signals();
  const spawn_result sr = spawn_command(a.command, child_environment(env), [&sw, parent] {
    sw.reset_in_child();
    // If redlock is killed (SIGKILL) nobody extends the lock any more: the command must
    // not go on believing it holds it.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent)
      ::_exit(exit_lost);
  });
  if (sr.pid < 0) {
    const std::string what =
        "cannot run '" + printable(a.command[0]) + "': " + std::strerror(sr.error);
    std::fprintf(stderr, "redlock: %s\n", what.c_str());
    jr.fail(what);
    s.on_signal({});
    s.begin_cleanup();
    co_await release_quietly(s, l);
    co_return sr.error == ENOENT ? exit_not_found : exit_cannot_execute;
  }
  child = sr.pid;

  auto on_lost = [&](loss_reason why, std::error_code lec) {
    lost = true;
    if (exited)
      return;
    std::string reason = "lock lost: ";
    if (why == loss_reason::expired) {
      reason += "its validity ran out before an extension succeeded";
      if (lec)
        reason += " (last error: " + lec.message() + ")";
    } else if (lec) {
      reason += lec.message();
    } else {
      reason += to_string(why);
    }
    if (a.on_lost != on_lost_policy::ignore)
      invocation().fail(reason);
    switch (a.on_lost) {
      case on_lost_policy::term:
        std::fprintf(stderr, "redlock: %s; sending SIGTERM to the command (SIGKILL in %s)\n",
                     reason.c_str(), format_duration(a.grace).c_str());
        ::kill(child, SIGTERM);
        grace.expires_after(a.grace);
        grace.async_wait([&](std::error_code gec) {
          if (gec || exited)
            return;
          std::fprintf(stderr, "redlock: the command outlived the grace period; SIGKILL\n");
          ::kill(child, SIGKILL);
        });
        break;
      case on_lost_policy::kill:
        std::fprintf(stderr, "redlock: %s; sending SIGKILL to the command\n", reason.c_str());
        ::kill(child, SIGKILL);
        break;
      case on_lost_policy::ignore:
        std::fprintf(stderr, "redlock: warning: %s; the command keeps running (--on-lost ignore)\n",
                     reason.c_str());
        break;
    }
  };
  // Extends at half the TTL left, retries failed rounds while validity remains, and calls
  // on_lost once if the lock is lost or its validity runs out.
  lock_keeper keeper(l, hold_options{}, on_lost);

  while (!exited)
    co_await wake.async_wait(as_tuple(asio::use_awaitable));
  grace.cancel();
  // The command is done: what is left is cleanup (signals now only say so; see session).
  s.on_signal({});
  s.begin_cleanup();

  // Stops extending, then deletes our value wherever it is still present (nothing else).
  // No loss is reported once this is requested: the command finished while the lock held.
  auto [rec, outcome] = co_await keeper.async_unlock(as_tuple(asio::use_awaitable));
  s.note_release(outcome.last_report);
  if (rec && !lost && rec != errc::lock_expired) {
    print_failure("warning: release failed (" + rec.message() + "); the keys expire with their TTL",
                  outcome.last_report, s.conf().verbose);
  }

  jr.set_bool("lost", lost);
  if (WIFEXITED(status))
    jr.set_int("command_exit_code", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    jr.set_int("command_signal", WTERMSIG(status));
  if (lost && a.on_lost != on_lost_policy::ignore)
    co_return exit_lost;
  // From here the exit code is the command's, not a failure of redlock.
  jr.code_is_result = true;
  if (WIFEXITED(status))
    co_return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    if (s.conf().verbose)
      std::fprintf(stderr, "redlock: the command was ended by SIG%s\n",
                   signal_name(WTERMSIG(status)));
    co_return exit_signal_base + WTERMSIG(status);
  }
  co_return exit_software;
}

}  // namespace

int cmd_run(const config& c, const run_args& a) {
  json_report& jr = invocation();
  jr.set_strings("resources", a.resources);
  for (const char* f : {"value", "fencing_token", "command_exit_code", "command_signal"})
    jr.set_null(f);
  jr.set_int("attempts", 0);
  jr.set_bool("lost", false);
  config fenced = c;
  fenced.settings.fencing = a.fencing;
  session s(std::move(fenced));
  return s.run([&]() { return run_body(s, a); });
}

}  // namespace redlock::cli

// `redlock acquire | extend | release | status`.
#include "commands.hpp"

#include <signal.h>

#include <cstdio>
#include <string>
#include <utility>

#include <asio/use_awaitable.hpp>

#include "duration.hpp"
#include "output.hpp"
#include "redlock/asio_compat.hpp"
#include "redlock/error.hpp"
#include "redlock/inspect.hpp"
#include "signals.hpp"

namespace redlock::cli {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

/// Rebuilds the handle of a lock acquired elsewhere (`redlock acquire` in another process)
/// from its resources and value.
///
/// The local validity of such a lock is unknown: the process that acquired it measured it.
/// For extend, the handle's validity deadline is therefore read from the servers: an
/// inspection finds the value on a quorum and takes the conservative end of that quorum's
/// hold (quorum-th largest TTL minus drift, measured from the request start). A value not
/// holding a quorum is not adopted (the lock is lost or expired), so an adopted handle never
/// claims more validity than the servers grant. For release no deadline is needed (release
/// deletes only our value); the nominal ttl from now is used then.
///
/// A handle rebuilt from a value does not know whether the lock was taken in fair mode: with
/// --fair (the manager's fair setting) it is adopted as a fair lock, so that its release also
/// leaves the wait queues at once and wakes only the next waiter, as `run --fair` does.
struct adopted {
  std::error_code ec;  ///< lock_lost: not held by this value; quorum_unreachable
  lock l;
  inspection seen;
};
asio::awaitable<adopted> adopt(session& s, const value_args& a, bool read_deadline) {
  adopted out;
  if (!read_deadline) {
    out.l = s.manager().adopt(a.resources, a.value, a.ttl, steady_clock::now() + a.ttl,
                              a.fencing_token, s.conf().settings.fair);
    co_return out;
  }
  auto [ec, in] = co_await async_inspect(s.manager(), a.resources, as_tuple(asio::use_awaitable));
  if (ec) {
    out.ec = ec;
    co_return out;
  }
  if (in.held() && in.holder == a.value && in.remaining() > steady_clock::duration::zero()) {
    out.l = s.manager().adopt(a.resources, a.value, a.ttl, in.validity_deadline, a.fencing_token,
                              s.conf().settings.fair);
  } else {
    std::size_t answered = 0;
    for (const auto& n : in.nodes)
      answered += n.answered() ? 1 : 0;
    out.ec = answered < in.quorum ? make_error_code(errc::quorum_unreachable)
                                  : make_error_code(errc::lock_lost);
  }
  out.seen = std::move(in);
  co_return out;
}

std::string describe_not_held(const inspection& in) {
  switch (in.status) {
    case lock_status::free:
      return "it is free (expired or released)";
    case lock_status::held:
      return "another value holds it";
    case lock_status::indeterminate:
      break;
  }
  return "no quorum holds this value";
}

/// ", fencing token N" for a fenced lock (for -v), empty otherwise.
std::string token_text(const lock& l) {
  return l.fencing_token() == 0 ? std::string()
                                : ", fencing token " + std::to_string(l.fencing_token());
}

/// Ctrl-C / SIGTERM while acquire waits: stop waiting, release anything won, exit 128+N.
asio::awaitable<int> acquire_body(session& s, const acquire_args& a) {
  interruption intr;
  s.on_signal([&](signal_event e) {
    if (e.signo != SIGCHLD)
      intr.interrupt(e.signo);
  });
  auto [ec, l, attempts] = co_await acquire_waiting(s, a.resources, a.ttl, a.wait, intr);
  s.on_signal({});
  if (intr.signo != 0) {
    if (!ec)
      co_await release_quietly(s, l);
    co_return exit_signal_base + intr.signo;
  }
  if (ec)
    co_return co_await report_acquire_failure(s, ec, a.resources, attempts, l.report());
  // The value alone on the first line (as without fencing), the token on the second.
  if (a.fencing)
    std::printf("%s\n%llu\n", l.value().c_str(),
                static_cast<unsigned long long>(l.fencing_token()));
  else
    std::printf("%s\n", l.value().c_str());
  std::fflush(stdout);
  if (s.conf().verbose) {
    std::fprintf(stderr, "redlock: acquired %s, valid for %s (%d attempts)%s\n",
                 name_of(a.resources).c_str(),
                 format_duration(duration_cast<milliseconds>(l.remaining())).c_str(), attempts,
                 token_text(l).c_str());
  }
  co_return exit_ok;
}

asio::awaitable<int> extend_body(session& s, const value_args& a) {
  auto ad = co_await adopt(s, a, true);
  if (ad.ec == errc::lock_lost) {
    std::fprintf(stderr, "redlock: not extended: %s is not held by this value: %s\n",
                 name_of(a.resources).c_str(), describe_not_held(ad.seen).c_str());
    if (s.conf().verbose)
      std::fputs(ad.seen.to_string().c_str(), stderr);
    co_return exit_lost;
  }
  if (ad.ec) {
    std::fprintf(stderr, "redlock: not extended: %s\n",
                 ad.ec == errc::quorum_unreachable
                     ? "too many servers unreachable or failing for a quorum"
                     : ad.ec.message().c_str());
    if (!ad.seen.nodes.empty())
      std::fputs(ad.seen.to_string().c_str(), stderr);
    co_return exit_code_for(ad.ec);
  }
  auto [ec, l] = co_await s.manager().async_extend(ad.l, a.ttl, as_tuple(asio::use_awaitable));
  if (ec) {
    print_failure(failure_text("not extended", ec, l.report()), l.report(), true);
    co_return exit_code_for(ec);
  }
  if (s.conf().verbose) {
    std::fprintf(stderr, "redlock: extended %s, valid for %s%s\n", name_of(a.resources).c_str(),
                 format_duration(duration_cast<milliseconds>(l.remaining())).c_str(),
                 token_text(l).c_str());
  }
  co_return exit_ok;
}

asio::awaitable<int> release_body(session& s, const value_args& a) {
  auto ad = co_await adopt(s, a, false);
  // Every node's answer, not the first quorum's: with a minority down one server may never
  // have had the key, and the first quorum of answers could then count its "absent" against
  // a slower server that did hold it. Bounded by the request timeout.
  call_options every;
  every.wait_all_nodes = true;
  auto [ec, r] = co_await s.manager().async_unlock(ad.l, every, as_tuple(asio::use_awaitable));
  s.note_release(r.report);
  if (ec) {
    std::string what = failure_text("release failed", ec, r.report);
    const auto hint = co_await wrong_type_hint(s, a.resources, r.report);
    if (!hint.empty())
      what += "; " + hint;
    print_failure(what, r.report, true);
    co_return exit_code_for(ec);
  }
  if (r.released < s.manager().quorum()) {
    // Our value is gone everywhere now, but it was not there on a quorum: the lock had
    // expired, been released, or been taken over before this release. Scripts want to
    // know which: a look at the servers tells another holder from none.
    auto [iec, in] =
        co_await async_inspect(s.manager(), a.resources, as_tuple(asio::use_awaitable));
    std::string why = "no quorum holds it now";
    if (!iec && in.held())
      why = "another value holds it";
    else if (!iec && in.status == lock_status::free)
      why = "it had expired or been released";
    const std::size_t silent = r.nodes - r.released - r.absent;
    std::string counts =
        "released on " + std::to_string(r.released) + " of " + std::to_string(r.nodes) + " servers";
    if (silent > 0)
      counts += ", " + std::to_string(silent) + " did not answer";
    std::fprintf(stderr, "redlock: %s was not held by this value (%s): %s\n",
                 name_of(a.resources).c_str(), counts.c_str(), why.c_str());
    if (s.conf().verbose)
      std::fputs(indent_report(r.report).c_str(), stderr);
    co_return exit_lost;
  }
  if (s.conf().verbose) {
    std::fprintf(stderr, "redlock: released %s on %zu of %zu servers\n",
                 name_of(a.resources).c_str(), r.released, r.nodes);
  }
  co_return exit_ok;
}

std::string ttl_text(milliseconds ttl) {
  if (ttl.count() == -1)
    return "no expiry";
  if (ttl.count() < 0)
    return "-";
  return format_duration(ttl);
}

void print_status_text(const inspection& in) {
  std::string out;
  out += "status: ";
  out += to_string(in.status);
  if (in.held()) {
    out += " by " + printable(in.holder) + " on " + std::to_string(in.holding_nodes) + " of " +
           std::to_string(in.nodes.size()) + " servers";
    if (in.validity_deadline == steady_clock::time_point::max()) {
      out += ", no expiry";
    } else {
      out += ", valid for at least " + format_duration(duration_cast<milliseconds>(std::max(
                                           in.remaining(), steady_clock::duration::zero())));
    }
  } else if (in.status == lock_status::free) {
    out += " on " + std::to_string(in.free_nodes) + " of " + std::to_string(in.nodes.size()) +
           " servers";
  }
  out += " (quorum " + std::to_string(in.quorum) + ")\n";
  for (const auto& n : in.nodes) {
    out += "  " + n.node + ": ";
    if (!n.answered()) {
      out += "error: " + (n.message.empty() ? n.ec.message() : printable(n.message)) + "\n";
      continue;
    }
    for (std::size_t i = 0; i < n.keys.size(); ++i) {
      const auto& k = n.keys[i];
      if (in.resources.size() > 1)
        out += (i ? "; " : "") + printable(in.resources[i]) + " ";
      if (!k.present) {
        out += "free";
      } else if (!k.value) {
        out += "(not a string) ttl " + ttl_text(k.ttl);
      } else {
        out += printable(*k.value) + " ttl " + ttl_text(k.ttl);
      }
    }
    if (n.fencing_counter)
      out += ", fencing counter " + std::to_string(*n.fencing_counter);
    out += "\n";
  }
  std::fputs(out.c_str(), stdout);
}

void print_status_json(const inspection& in) {
  std::string out = "{\n";
  out += "  \"status\": " + json_string(to_string(in.status)) + ",\n";
  out += "  \"quorum\": " + std::to_string(in.quorum) + ",\n";
  out += "  \"resources\": [";
  for (std::size_t i = 0; i < in.resources.size(); ++i)
    out += (i ? ", " : "") + json_string(in.resources[i]);
  out += "],\n";
  out += "  \"holder\": " + (in.held() ? json_string(in.holder) : std::string("null")) + ",\n";
  out += "  \"holding_nodes\": " + std::to_string(in.holding_nodes) + ",\n";
  out += "  \"free_nodes\": " + std::to_string(in.free_nodes) + ",\n";
  std::string validity = "null";
  if (in.held() && in.validity_deadline != steady_clock::time_point::max()) {
    validity = std::to_string(
        duration_cast<milliseconds>(std::max(in.remaining(), steady_clock::duration::zero()))
            .count());
  }
  out += "  \"validity_ms\": " + validity + ",\n";
  out += "  \"nodes\": [";
  for (std::size_t n = 0; n < in.nodes.size(); ++n) {
    const auto& ns = in.nodes[n];
    out += n ? ",\n" : "\n";
    out += "    {\"node\": " + json_string(ns.node) + ", ";
    if (!ns.answered()) {
      out += "\"error\": " + json_string(ns.message.empty() ? ns.ec.message() : ns.message) +
             ", \"fencing_counter\": null, \"keys\": []}";
      continue;
    }
    const std::string counter =
        ns.fencing_counter ? std::to_string(*ns.fencing_counter) : std::string("null");
    out += "\"error\": null, \"latency_us\": " + std::to_string(ns.latency.count()) +
           ", \"fencing_counter\": " + counter + ", \"keys\": [";
    for (std::size_t i = 0; i < ns.keys.size(); ++i) {
      const auto& k = ns.keys[i];
      out += i ? ", " : "";
      out +=
          "{\"resource\": " + json_string(in.resources[i]) +
          ", \"present\": " + (k.present ? "true" : "false") +
          ", \"value\": " + (k.value ? json_string(*k.value) : std::string("null")) +
          ", \"ttl_ms\": " +
          (k.present && k.ttl.count() >= 0 ? std::to_string(k.ttl.count()) : std::string("null")) +
          "}";
    }
    out += "]}";
  }
  out += in.nodes.empty() ? "]\n}\n" : "\n  ]\n}\n";
  std::fputs(out.c_str(), stdout);
}

asio::awaitable<int> status_body(session& s, const status_args& a) {
  auto [ec, in] = co_await async_inspect(s.manager(), a.resources, as_tuple(asio::use_awaitable));
  if (ec) {
    const std::string why = ec == errc::duplicate_deployment
                                ? "two servers are the same deployment: " + printable(in.detail)
                                : ec.message();
    std::fprintf(stderr, "redlock: status failed: %s\n", why.c_str());
    co_return exit_code_for(ec);
  }
  if (a.json)
    print_status_json(in);
  else
    print_status_text(in);
  std::fflush(stdout);
  std::size_t answered = 0;
  for (const auto& n : in.nodes)
    answered += n.answered() ? 1 : 0;
  // The verdict itself is not a failure; too few servers answering to know is.
  co_return answered < in.quorum ? exit_unavailable : exit_ok;
}

}  // namespace

int cmd_acquire(const config& c, const acquire_args& a) {
  config fenced = c;
  fenced.settings.fencing = a.fencing;
  session s(std::move(fenced));
  return s.run([&] { return acquire_body(s, a); });
}

int cmd_extend(const config& c, const value_args& a) {
  session s(c);
  return s.run([&] { return extend_body(s, a); });
}

int cmd_release(const config& c, const value_args& a) {
  session s(c);
  return s.run([&] { return release_body(s, a); });
}

int cmd_status(const config& c, const status_args& a) {
  session s(c);
  return s.run([&] { return status_body(s, a); });
}

}  // namespace redlock::cli

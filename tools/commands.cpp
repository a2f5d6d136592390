// `redlock acquire | extend | release | status`.
#include "commands.hpp"

#include <signal.h>

#include <cstdio>
#include <string>
#include <utility>

#include <asio/use_awaitable.hpp>

#include "duration.hpp"
#include "json_report.hpp"
#include "output.hpp"
#include "owner.hpp"
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

/// validity_ms: what is left of the lock's validity now (0 when none is).
std::int64_t validity_ms(const lock& l) {
  return duration_cast<milliseconds>(std::max(l.remaining(), steady_clock::duration::zero()))
      .count();
}

/// The JSON fields of a lock that was acquired or extended (see docs/cli-json.md).
void json_lock_fields(const lock& l) {
  json_report& jr = invocation();
  jr.set_string("value", l.value());
  if (l.fencing_token() == 0)
    jr.set_null("fencing_token");
  else
    jr.set_raw("fencing_token", std::to_string(l.fencing_token()));
  jr.set_int("validity_ms", validity_ms(l));
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
  invocation().set_int("attempts", attempts);
  if (intr.signo != 0) {
    if (!ec)
      co_await release_quietly(s, l);
    invocation().fail(std::string("interrupted by signal ") + std::to_string(intr.signo) +
                      " while waiting");
    co_return exit_signal_base + intr.signo;
  }
  if (ec)
    co_return co_await report_acquire_failure(s, ec, a.resources, attempts, l.report());
  // The value alone on the first line (as without fencing), the token on the second.
  if (invocation().enabled)
    json_lock_fields(l);
  else if (a.fencing)
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
    const std::string what = "not extended: " + name_of(a.resources) +
                             " is not held by this value: " + describe_not_held(ad.seen);
    std::fprintf(stderr, "redlock: %s\n", what.c_str());
    invocation().fail(what);
    if (s.conf().verbose)
      std::fputs(ad.seen.to_string().c_str(), stderr);
    co_return exit_lost;
  }
  if (ad.ec) {
    const std::string what =
        std::string("not extended: ") +
        (ad.ec == errc::quorum_unreachable ? "too many servers unreachable or failing for a quorum"
                                           : ad.ec.message());
    std::fprintf(stderr, "redlock: %s\n", what.c_str());
    invocation().fail(what);
    if (!ad.seen.nodes.empty())
      std::fputs(ad.seen.to_string().c_str(), stderr);
    co_return exit_code_for(ad.ec);
  }
  auto [ec, l] = co_await s.manager().async_extend(ad.l, a.ttl, as_tuple(asio::use_awaitable));
  if (ec) {
    print_failure(failure_text("not extended", ec, l.report()), l.report(), true);
    co_return exit_code_for(ec);
  }
  json_lock_fields(l);
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
  invocation().set_int("released", static_cast<std::int64_t>(r.released));
  invocation().set_int("servers", static_cast<std::int64_t>(r.nodes));
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
    const std::string what =
        name_of(a.resources) + " was not held by this value (" + counts + "): " + why;
    std::fprintf(stderr, "redlock: %s\n", what.c_str());
    invocation().fail(what);
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
  if (in.owner)
    out += "owner: " + owner_text(*in.owner) + "\n";
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
        if (k.owner)
          out += " (" + owner_text(*k.owner) + ")";
      }
    }
    if (n.fencing_counter)
      out += ", fencing counter " + std::to_string(*n.fencing_counter);
    out += "\n";
  }
  std::fputs(out.c_str(), stdout);
}

/// What the exit code of status says: "held", "free", "indeterminate" (servers answered, no
/// quorum agrees) or "unavailable" (too few answered to tell).
const char* verdict_of(const inspection& in) {
  std::size_t answered = 0;
  for (const auto& n : in.nodes)
    answered += n.answered() ? 1 : 0;
  if (answered < in.quorum)
    return "unavailable";
  return to_string(in.status);
}

int status_exit_code(const inspection& in) {
  const std::string v = verdict_of(in);
  if (v == "held")
    return exit_ok;
  if (v == "free")
    return exit_status_free;
  if (v == "indeterminate")
    return exit_status_indeterminate;
  return exit_unavailable;
}

/// status's fields of the JSON object (docs/cli-json.md): the verdict, then per server
/// what each resource key holds. The only place that renders an inspection as JSON.
void status_json_fields(const inspection& in, json_report& out) {
  out.set_string("status", to_string(in.status));
  out.set_string("verdict", verdict_of(in));
  out.set_int("quorum", static_cast<std::int64_t>(in.quorum));
  out.set_strings("resources", in.resources);
  if (in.held())
    out.set_string("holder", in.holder);
  else
    out.set_null("holder");
  out.set_int("holding_nodes", static_cast<std::int64_t>(in.holding_nodes));
  out.set_int("free_nodes", static_cast<std::int64_t>(in.free_nodes));
  if (in.held() && in.validity_deadline != steady_clock::time_point::max()) {
    out.set_int("validity_ms", duration_cast<milliseconds>(
                                   std::max(in.remaining(), steady_clock::duration::zero()))
                                   .count());
  } else {
    out.set_null("validity_ms");
  }
  if (in.owner)
    out.set_raw("owner", owner_json(*in.owner));
  else
    out.set_null("owner");
  std::string nodes = "[";
  for (std::size_t n = 0; n < in.nodes.size(); ++n) {
    const auto& ns = in.nodes[n];
    nodes += n ? ", " : "";
    nodes += "{\"node\": " + json_string(ns.node) + ", ";
    if (!ns.answered()) {
      nodes += "\"error\": " + json_string(ns.message.empty() ? ns.ec.message() : ns.message) +
               ", \"latency_us\": null, \"fencing_counter\": null, \"keys\": []}";
      continue;
    }
    const std::string counter =
        ns.fencing_counter ? std::to_string(*ns.fencing_counter) : std::string("null");
    nodes += "\"error\": null, \"latency_us\": " + std::to_string(ns.latency.count()) +
             ", \"fencing_counter\": " + counter + ", \"keys\": [";
    for (std::size_t i = 0; i < ns.keys.size(); ++i) {
      const auto& k = ns.keys[i];
      nodes += i ? ", " : "";
      nodes +=
          "{\"resource\": " + json_string(in.resources[i]) +
          ", \"present\": " + (k.present ? "true" : "false") +
          ", \"value\": " + (k.value ? json_string(*k.value) : std::string("null")) +
          ", \"ttl_ms\": " +
          (k.present && k.ttl.count() >= 0 ? std::to_string(k.ttl.count()) : std::string("null")) +
          ", \"owner\": " + (k.owner ? owner_json(*k.owner) : std::string("null")) + "}";
    }
    nodes += "]}";
  }
  out.set_raw("nodes", nodes + "]");
}

asio::awaitable<int> status_body(session& s, const status_args& a) {
  auto [ec, in] = co_await async_inspect(s.manager(), a.resources, as_tuple(asio::use_awaitable));
  if (ec) {
    const std::string why = ec == errc::duplicate_deployment
                                ? "two servers are the same deployment: " + printable(in.detail)
                                : ec.message();
    std::fprintf(stderr, "redlock: status failed: %s\n", why.c_str());
    invocation().fail("status failed: " + why);
    co_return exit_code_for(ec);
  }
  const int code = status_exit_code(in);
  if (a.json) {
    status_json_fields(in, invocation());
  } else {
    print_status_text(in);
    std::fflush(stdout);
  }
  // The verdict is the exit code (like `systemctl is-active`); only "unavailable" is a
  // failure.
  if (code == exit_unavailable) {
    invocation().fail("too few servers answered for a quorum (" + std::to_string(in.quorum) +
                      " needed): cannot tell whether it is held");
  } else {
    invocation().code_is_result = true;
  }
  co_return code;
}

}  // namespace

int cmd_acquire(const config& c, const acquire_args& a) {
  json_report& jr = invocation();
  jr.set_strings("resources", a.resources);
  for (const char* f : {"value", "fencing_token", "validity_ms"})
    jr.set_null(f);
  jr.set_int("attempts", 0);
  config fenced = c;
  fenced.settings.fencing = a.fencing;
  session s(std::move(fenced));
  return s.run([&] { return acquire_body(s, a); });
}

int cmd_extend(const config& c, const value_args& a) {
  json_report& jr = invocation();
  jr.set_strings("resources", a.resources);
  jr.set_string("value", a.value);
  jr.set_null("validity_ms");
  if (a.fencing_token == 0)
    jr.set_null("fencing_token");
  else
    jr.set_raw("fencing_token", std::to_string(a.fencing_token));
  session s(c);
  return s.run([&] { return extend_body(s, a); });
}

int cmd_release(const config& c, const value_args& a) {
  json_report& jr = invocation();
  jr.set_bool("force", false);
  jr.set_strings("resources", a.resources);
  jr.set_string("value", a.value);
  jr.set_null("released");
  jr.set_null("servers");
  session s(c);
  return s.run([&] { return release_body(s, a); });
}

int cmd_status(const config& c, const status_args& a) {
  session s(c);
  return s.run([&] { return status_body(s, a); });
}

}  // namespace redlock::cli

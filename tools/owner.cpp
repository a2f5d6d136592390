#include "owner.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include <asio/use_awaitable.hpp>

#include "json_report.hpp"
#include "output.hpp"
#include "redlock/asio_compat.hpp"
#include "redlock/error.hpp"
#include "redlock/inspect.hpp"
#include "session.hpp"

namespace redlock::cli {

void resolve_owner(const owner_flags& f, config& c) {
  std::string source = "--prefix";
  std::string prefix;
  if (f.prefix) {
    prefix = *f.prefix;
  } else if (const char* env = std::getenv("REDLOCK_PREFIX"); env != nullptr) {
    prefix = env;
    source = "REDLOCK_PREFIX";
  }
  // The library refuses it too; saying which setting is wrong is the tool's part.
  if (prefix.find_first_of("{}") != std::string::npos)
    throw usage_error(source + " '" + printable(prefix) +
                      "' must not contain '{' or '}' (a hash tag in the prefix would put every "
                      "lock in one Cluster slot)");
  c.settings.key_prefix = prefix;
  if (f.no_owner && f.owner_label)
    throw usage_error("--owner-label and --no-owner cannot be combined");
  // Fair locks carry no record (the library refuses the combination); owner_for_lock says
  // so when a label was asked for.
  if (!f.no_owner && !c.settings.fair) {
    c.settings.owner = this_process(f.owner_label.value_or(""));
    c.settings.owner->program = "redlock";
  }
}

void owner_for_lock(config& c, const owner_flags& f, const std::string& program, bool fencing,
                    const std::string& fencing_source, const std::string& fair_source) {
  if (fencing || c.settings.fair) {
    if (f.owner_label && !f.no_owner) {
      throw usage_error("--owner-label and " + (fencing ? fencing_source : fair_source) +
                        " cannot be combined: owner metadata is not written for " +
                        (fencing ? "fenced" : "fair") + " locks");
    }
    c.settings.owner.reset();
    return;
  }
  if (c.settings.owner)  // not with --no-owner
    c.settings.owner->program = program;
}

std::string owner_text(const lock_owner& o) {
  return printable(redlock::to_string(o));
}

std::string owner_json(const lock_owner& o) {
  const auto since = redlock::to_string(lock_owner{"", o.since, {}});
  // to_string of a record with only its time: "since <ISO>".
  const std::string iso = since.rfind("since ", 0) == 0 ? since.substr(6) : std::string();
  return "{\"host\": " + json_string(o.who.host) + ", \"pid\": " + std::to_string(o.who.pid) +
         ", \"program\": " + json_string(o.who.program) +
         ", \"label\": " + json_string(o.who.label) + ", \"since_ms\": " + std::to_string(o.since) +
         ", \"since\": " + (iso.empty() ? std::string("null") : json_string(iso)) + "}";
}

namespace {

/// The question on the controlling terminal (not stdin/stdout: those may be a pipe, and the
/// answer must come from a person). True for "y" or "yes" (any case).
bool confirm_on_tty(const std::string& question) {
  const int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return false;
  const std::string prompt = question + " [y/N] ";
  (void)!::write(fd, prompt.data(), prompt.size());
  std::string answer;
  char ch = 0;
  while (::read(fd, &ch, 1) == 1 && ch != '\n')
    answer.push_back(ch);
  ::close(fd);
  for (auto& a : answer)
    a = static_cast<char>(std::tolower(static_cast<unsigned char>(a)));
  return answer == "y" || answer == "yes";
}

/// What one resource's force release removed: each distinct value with the servers it was
/// deleted on, and the first owner record found for it.
struct removed {
  std::map<std::string, std::vector<std::string>> values;  // value -> servers
  std::map<std::string, lock_owner> owners;                // value -> its record
  std::vector<lock_owner> other_owners;                    // records of no deleted value
};

asio::awaitable<int> force_body(session& s, const force_args& a) {
  auto& m = s.manager();
  if (!a.yes) {
    // Show who holds it before asking: the person decides about that holder.
    auto [iec, in] = co_await async_inspect(m, a.resources, as_tuple(asio::use_awaitable));
    std::string who;
    if (!iec && in.held()) {
      who = "held by " + printable(in.holder);
      if (in.owner)
        who += " (" + owner_text(*in.owner) + ")";
    } else if (!iec) {
      who = to_string(in.status);
    } else {
      who = "state unknown: " + iec.message();
    }
    if (!confirm_on_tty("redlock: force-release " + name_of(a.resources) + ", " + who +
                        ", on every server?")) {
      std::fprintf(stderr, "redlock: not released (not confirmed)\n");
      invocation().fail("not released (not confirmed)");
      co_return exit_declined;
    }
  }
  auto [ec, r] = co_await async_force_release(m, a.resources, as_tuple(asio::use_awaitable));
  if (ec) {
    const std::string why = ec == errc::duplicate_deployment
                                ? "two servers are the same deployment: " + printable(r.detail)
                                : ec.message();
    std::fprintf(stderr, "redlock: force release failed: %s\n", why.c_str());
    invocation().fail("force release failed: " + why);
    co_return exit_code_for(ec);
  }
  // With --json the removals go into one "removed" array instead of the text lines; the
  // log lines on stderr stay (they are the record of who did it).
  const bool json = invocation().enabled;
  std::string removed_json = "[";
  const auto me = this_process();
  for (std::size_t i = 0; i < r.resources.size(); ++i) {
    removed rm;
    for (const auto& n : r.nodes) {
      if (!n.answered())
        continue;
      if (n.values[i])
        rm.values[*n.values[i]].push_back(n.node);
      if (n.owners[i]) {
        if (n.values[i] && n.owners[i]->value == *n.values[i])
          rm.owners.emplace(*n.values[i], *n.owners[i]);
        else
          rm.other_owners.push_back(*n.owners[i]);
      }
    }
    const std::string name = printable(r.resources[i]);
    if (rm.values.empty() && !json) {
      std::printf("%s: nothing held\n", name.c_str());
    }
    for (const auto& [value, nodes] : rm.values) {
      std::string line = name + ": removed " + printable(value) + " from " +
                         std::to_string(nodes.size()) + " of " + std::to_string(r.nodes.size()) +
                         " servers";
      auto o = rm.owners.find(value);
      line += o != rm.owners.end() ? ", owner " + owner_text(o->second) : ", no owner record";
      if (json) {
        removed_json += (removed_json.size() > 1 ? ", " : "");
        removed_json +=
            "{\"resource\": " + json_string(r.resources[i]) + ", \"value\": " + json_string(value) +
            ", \"servers\": " + std::to_string(nodes.size()) +
            ", \"owner\": " + (o != rm.owners.end() ? owner_json(o->second) : std::string("null")) +
            "}";
      } else {
        std::printf("%s\n", line.c_str());
      }
      // The log line: who removed whose lock where, for the journal of whoever runs this.
      std::string servers;
      for (const auto& n : nodes)
        servers += (servers.empty() ? "" : ", ") + n;
      std::fprintf(stderr,
                   "redlock: force release of %s by pid %lld on %s: removed value %s (owner: "
                   "%s) from %s\n",
                   name.c_str(), me.pid, printable(me.host).c_str(), printable(value).c_str(),
                   o != rm.owners.end() ? owner_text(o->second).c_str() : "none recorded",
                   servers.c_str());
    }
    for (const auto& o : json ? std::vector<lock_owner>{} : rm.other_owners)
      std::printf("%s: removed a stale owner record (%s)\n", name.c_str(), owner_text(o).c_str());
  }
  std::fflush(stdout);
  invocation().set_raw("removed", removed_json + "]");
  invocation().set_int("answered", static_cast<std::int64_t>(r.answered_nodes()));
  std::size_t failed = 0;
  for (const auto& n : r.nodes) {
    if (n.answered())
      continue;
    ++failed;
    std::fprintf(stderr, "redlock: force release: %s did not answer: %s\n", n.node.c_str(),
                 (n.message.empty() ? n.ec.message() : printable(n.message)).c_str());
  }
  if (r.answered_nodes() < m.quorum()) {
    invocation().fail("too few servers answered for a quorum (" + std::to_string(m.quorum()) +
                      " needed)");
    co_return exit_unavailable;
  }
  if (failed > 0) {
    // A minority cannot hold a lock, but it may still hold the old value: say so.
    std::fprintf(stderr,
                 "redlock: %zu server(s) did not answer and may still hold the old value "
                 "until it expires; run it again once they are back\n",
                 failed);
  }
  co_return exit_ok;
}

}  // namespace

int cmd_force_release(const config& c, const force_args& a) {
  if (!a.yes && ::isatty(STDIN_FILENO) != 1)
    throw usage_error(
        "release --force asks for confirmation at a terminal; stdin is not a "
        "terminal: give --yes to release without asking");
  json_report& jr = invocation();
  jr.set_bool("force", true);
  jr.set_strings("resources", a.resources);
  jr.set_raw("removed", "[]");
  jr.set_null("answered");
  jr.set_int("servers", static_cast<std::int64_t>(c.urls.size()));
  session s(c);
  return s.run([&] { return force_body(s, a); });
}

}  // namespace redlock::cli

#include "support/fault_leftovers.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_set>
#include <utility>

#include "internal/scripts.hpp"
#include "support/blocking_client.hpp"
#include "support/redis_server.hpp"

namespace redlock::test {
namespace {

using namespace std::chrono_literals;

// Databases looked at: Redis' default `databases 16`. A SELECT that fails ends the walk early.
constexpr int max_databases = 16;
// Keys per MGET / SCAN COUNT: large enough for 20,000-key locks, small enough for short replies.
constexpr std::size_t batch = 1000;
// History polls look at this many keys of each probe (the final look checks them all).
constexpr std::size_t history_keys = 256;
constexpr auto history_interval = 200ms;
// Members of one queue or lease ZSET read at most (a queue holds one entry per waiter).
constexpr long long max_members = 10'000;

// One blocking admin connection (AUTH done). Every call returns nullopt on I/O failure or
// timeout.
class admin_conn {
 public:
  admin_conn(const admin_access& a, std::chrono::milliseconds timeout)
      : client_(a.host, a.port, timeout) {
    if (!client_.connected()) {
      error_ = client_.error();
      return;
    }
    if (!a.password.empty()) {
      std::vector<std::string> auth{"AUTH"};
      if (!a.username.empty())
        auth.push_back(a.username);
      auth.push_back(a.password);
      auto r = run(auth);
      if (!r || r->is_error()) {
        error_ = r ? "AUTH: " + r->str : io_error();
        authenticated_ = false;
      }
    }
  }
  bool ok() const { return authenticated_ && client_.connected(); }
  const std::string& error() const { return error_; }
  std::string io_error() const { return client_.connected() ? error_ : client_.error(); }

  std::optional<reply> run(const std::vector<std::string>& argv) {
    if (!authenticated_)
      return std::nullopt;
    return client_.command(argv);
  }

 private:
  blocking_client client_;
  bool authenticated_ = true;
  std::string error_;
};

std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 80))
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 80)
    out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

// Looks at one server. `scan_values`: also walk every key of every database for the values.
// `max_keys`: how many of p.keys to look up (all for the verdict; fewer for history polls).
void look_at(const admin_access& a, const leftover_probe& p, bool scan_values, std::size_t max_keys,
             std::chrono::milliseconds io_timeout, leftover_report& out) {
  admin_conn c(a, io_timeout);
  if (!c.ok()) {
    out.unreachable.push_back(a.label() + ": " + c.error());
    return;
  }
  const std::unordered_set<std::string> values(p.values.begin(), p.values.end());
  const std::size_t nkeys = std::min(max_keys, p.keys.size());
  auto ours = [&](const reply& v) {
    return v.kind == reply::type::string && (values.empty() || values.count(v.str) > 0);
  };
  bool failed = false;
  auto fail = [&](const std::string& what) {
    out.unreachable.push_back(a.label() + ": " + what + ": " + c.io_error());
    failed = true;
  };
  auto note = [&](int db, const std::string& key, const reply& v) {
    leftover l{leftover::what::key, a.label(), db, key, v.str, 0, {}};
    if (auto t = c.run({"PTTL", key}); t && t->kind == reply::type::integer)
      l.pttl_ms = t->integer;
    out.found.push_back(std::move(l));
  };
  for (int db = 0; db < max_databases && !failed; ++db) {
    auto sel = c.run({"SELECT", std::to_string(db)});
    if (!sel) {
      fail("SELECT " + std::to_string(db));
      break;
    }
    if (sel->is_error())
      break;  // fewer databases configured: nothing can live beyond them
    auto size = c.run({"DBSIZE"});
    if (!size || size->kind != reply::type::integer) {
      fail("DBSIZE in db " + std::to_string(db));
      break;
    }
    if (size->integer == 0)
      continue;  // an empty database holds nothing of ours
    std::set<std::string> reported;
    // 1. The resource keys themselves.
    for (std::size_t from = 0; from < nkeys && !failed; from += batch) {
      std::vector<std::string> argv{"MGET"};
      for (std::size_t i = from; i < std::min(nkeys, from + batch); ++i)
        argv.push_back(p.keys[i]);
      auto r = c.run(argv);
      if (!r || r->kind != reply::type::array || r->elements.size() != argv.size() - 1) {
        fail("MGET in db " + std::to_string(db));
        break;
      }
      for (std::size_t i = 0; i < r->elements.size(); ++i) {
        if (ours(r->elements[i])) {
          reported.insert(argv[i + 1]);
          note(db, argv[i + 1], r->elements[i]);
        }
      }
    }
    // 2. The fair-mode queue and lease ZSETs of the resources: EXISTS over a batch first (one
    // round trip for thousands of resources), then each ZSET of a batch where any exists.
    const std::size_t nres = std::min(max_keys, p.resources.size());
    for (std::size_t from = 0; from < nres && !failed; from += batch / 2) {
      std::vector<std::string> zkeys;
      for (std::size_t i = from; i < std::min(nres, from + batch / 2); ++i) {
        zkeys.push_back(detail::fair_queue_key(p.resources[i]));
        zkeys.push_back(detail::fair_lease_key(p.resources[i]));
      }
      std::vector<std::string> argv{"EXISTS"};
      argv.insert(argv.end(), zkeys.begin(), zkeys.end());
      auto e = c.run(argv);
      if (!e || e->kind != reply::type::integer) {
        fail("EXISTS in db " + std::to_string(db));
        break;
      }
      out.queues_looked_at += zkeys.size();
      if (e->integer == 0)
        continue;
      for (std::size_t zi = 0; zi < zkeys.size(); ++zi) {
        const auto& zkey = zkeys[zi];
        const bool lease = zi % 2 == 1;
        auto r = c.run({"ZRANGE", zkey, "0", std::to_string(max_members - 1), "WITHSCORES"});
        if (!r) {
          fail("ZRANGE in db " + std::to_string(db));
          break;
        }
        if (r->is_error() || r->kind != reply::type::array || r->elements.empty())
          continue;  // absent (or not a ZSET: not ours)
        long long server_ms = 0;
        if (lease) {
          if (auto t = c.run({"TIME"});
              t && t->kind == reply::type::array && t->elements.size() == 2)
            server_ms =
                std::stoll(t->elements[0].str) * 1000 + std::stoll(t->elements[1].str) / 1000;
        }
        long long pttl = 0;
        if (auto t = c.run({"PTTL", zkey}); t && t->kind == reply::type::integer)
          pttl = t->integer;
        std::string members;
        std::size_t tombstones = 0;
        for (std::size_t i = 0; i + 1 < r->elements.size(); i += 2) {
          const auto& m = r->elements[i];
          // A waiter that left keeps a tombstone for one lease (against its late acquires):
          // expected, and gone with the lease key's own expiry.
          if (lease && m.kind == reply::type::string && m.str.starts_with("left:")) {
            ++tombstones;
            continue;
          }
          const auto& score = r->elements[i + 1].str;
          std::string info = (lease ? "lease " : "ticket ") + score;
          if (lease && server_ms > 0) {
            try {
              const auto left = static_cast<long long>(std::stod(score)) - server_ms;
              info = "lease " + std::string(left >= 0 ? "ends in " : "ran out ") +
                     std::to_string(left >= 0 ? left : -left) + " ms" + (left >= 0 ? "" : " ago");
            } catch (const std::exception&) {
            }
          }
          if (m.kind == reply::type::string && (values.empty() || values.count(m.str) > 0)) {
            leftover l{leftover::what::queue_entry, a.label(), db, zkey, m.str, pttl, info};
            out.found.push_back(std::move(l));
          }
          members += (members.empty() ? "" : ",") + printable(m.str).substr(0, 16);
        }
        const bool only_tombstones = tombstones * 2 == r->elements.size() && pttl > 0;
        if (p.all_done && !only_tombstones) {
          leftover l{leftover::what::queue_key,
                     a.label(),
                     db,
                     zkey,
                     members,
                     pttl,
                     std::to_string(r->elements.size() / 2) + " member(s)"};
          out.found.push_back(std::move(l));
        }
      }
    }
    if (!scan_values || p.values.empty() || failed)
      continue;
    // 3. Any key holding one of the values (a script that ran in another db or as another
    // user, under whatever name). Bounded by the database size and a step limit.
    std::string cursor = "0";
    const long long max_steps = size->integer / 10 + 100;
    for (long long step = 0; step < max_steps && !failed; ++step) {
      auto r = c.run({"SCAN", cursor, "COUNT", std::to_string(batch)});
      if (!r || r->kind != reply::type::array || r->elements.size() != 2) {
        fail("SCAN in db " + std::to_string(db));
        break;
      }
      cursor = r->elements[0].str;
      const reply& keys = r->elements[1];
      std::vector<std::string> argv{"MGET"};
      for (const auto& k : keys.elements)
        argv.push_back(k.str);
      out.keys_scanned += keys.elements.size();
      if (argv.size() > 1) {
        auto v = c.run(argv);
        if (!v || v->kind != reply::type::array || v->elements.size() != argv.size() - 1) {
          fail("MGET of scanned keys in db " + std::to_string(db));
          break;
        }
        for (std::size_t i = 0; i < v->elements.size(); ++i)
          if (ours(v->elements[i]) && reported.insert(argv[i + 1]).second)
            note(db, argv[i + 1], v->elements[i]);
      }
      if (cursor == "0")
        break;
    }
  }
  // 4. Once all is done: nobody subscribed to a release channel (pub/sub spans databases).
  // NUMSUB and SHARDNUMSUB take many channels and answer channel/count pairs: one round trip
  // per batch, since a 20,000-resource lock would otherwise cost 40,000 per server.
  const std::size_t nchan = p.all_done ? p.resources.size() : 0;
  for (std::size_t from = 0; from < nchan && !failed; from += batch) {
    const std::size_t to = std::min(nchan, from + batch);
    for (const char* sub : {"SHARDNUMSUB", "NUMSUB"}) {
      std::vector<std::string> argv{"PUBSUB", sub};
      for (std::size_t i = from; i < to; ++i)
        argv.push_back(detail::release_channel(p.resources[i]));
      auto r = c.run(argv);
      if (!r || r->kind != reply::type::array || r->elements.size() != 2 * (to - from)) {
        fail(std::string("PUBSUB ") + sub);
        break;
      }
      out.channels_looked_at += to - from;
      for (std::size_t i = 0; i + 1 < r->elements.size(); i += 2) {
        const auto& n = r->elements[i + 1];
        if (n.kind == reply::type::integer && n.integer != 0) {
          leftover l{leftover::what::subscription,
                     a.label(),
                     0,
                     argv[2 + i / 2],
                     std::to_string(n.integer) + " subscriber(s)",
                     -1,
                     std::string("PUBSUB ") + sub};
          out.found.push_back(std::move(l));
        }
      }
    }
  }
  if (!failed)
    ++out.servers_checked;
}

leftover_report look(const std::vector<leftover_probe>& probes, bool scan_values,
                     std::size_t max_keys, std::chrono::milliseconds io_timeout) {
  leftover_report r;
  for (const auto& p : probes)
    for (const auto& a : p.servers)
      look_at(a, p, scan_values, max_keys, io_timeout, r);
  return r;
}

}  // namespace

admin_access admin_of(const redis_server& s, std::string password) {
  admin_access a;
  a.port = s.port();
  a.password = std::move(password);
  return a;
}

std::string leftover_report::to_string() const {
  std::ostringstream o;
  if (found.empty())
    o << "nothing left behind";
  else
    o << found.size() << " leftover(s):";
  // A 20,000-key lock left behind on five servers must not bury the message: the first few
  // keys in full, then a count per server and database.
  constexpr std::size_t listed = 10;
  for (std::size_t i = 0; i < found.size() && i < listed; ++i) {
    const auto& l = found[i];
    switch (l.kind) {
      case leftover::what::key:
        o << "\n  " << l.server << " db " << l.db << ": key '" << printable(l.key) << "' = '"
          << printable(l.value) << "' (PTTL " << l.pttl_ms << " ms)";
        break;
      case leftover::what::queue_entry:
        o << "\n  " << l.server << " db " << l.db << ": queue entry '" << printable(l.value)
          << "' in '" << printable(l.key) << "' (" << l.detail << "; ZSET PTTL " << l.pttl_ms
          << " ms)";
        break;
      case leftover::what::queue_key:
        o << "\n  " << l.server << " db " << l.db << ": queue key '" << printable(l.key)
          << "' after all clients were done (" << l.detail << ": " << l.value << "; PTTL "
          << l.pttl_ms << " ms)";
        break;
      case leftover::what::subscription:
        o << "\n  " << l.server << ": " << l.value << " to '" << printable(l.key) << "' ("
          << l.detail << ") after all clients were done";
        break;
    }
  }
  if (found.size() > listed) {
    std::map<std::pair<std::string, int>, std::size_t> per;
    for (const auto& l : found)
      ++per[{l.server, l.db}];
    o << "\n  ... " << (found.size() - listed) << " more; per server:";
    for (const auto& [where, n] : per)
      o << "\n    " << where.first << " db " << where.second << ": " << n << " key(s)";
  }
  o << "\n  (" << servers_checked << " server look(s), " << keys_scanned << " keys scanned, "
    << queues_looked_at << " queue/lease ZSET look(s), " << channels_looked_at
    << " channel look(s))";
  for (const auto& u : unreachable)
    o << "\n  not checked: " << u;
  if (!history.empty())
    o << "\n  history: " << history;
  return o.str();
}

leftover_report find_leftovers(const leftover_probe& p, std::chrono::milliseconds io_timeout) {
  return look({p}, true, p.keys.size(), io_timeout);
}

leftover_report check_nothing_left_behind(const std::vector<leftover_probe>& probes,
                                          std::chrono::steady_clock::time_point completed_at,
                                          std::chrono::milliseconds bound,
                                          std::chrono::milliseconds io_timeout) {
  // Poll until the bound has passed: the polls only record when keys come and go (a late
  // re-sync shows as "present again"); the verdict is the look after the bound.
  const auto settled = completed_at + bound;
  std::string history;
  int last = -1;  // -1 not looked yet, 0 gone, 1 present, 2 unknown
  for (int polls = 0; polls < 10'000; ++polls) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= settled)
      break;
    auto r = look(probes, false, history_keys, std::min(io_timeout, history_interval * 2));
    // A server that cannot be asked (stopped, cut off) makes "gone" unknowable.
    const int state = !r.found.empty() ? 1 : r.unreachable.empty() ? 0 : 2;
    if (state != last) {
      const auto at =
          std::chrono::duration_cast<std::chrono::milliseconds>(now - completed_at).count();
      const char* what = state == 1   ? (last == 0 ? "present again" : "present")
                         : state == 0 ? "gone"
                                      : "not all servers reachable";
      history +=
          std::string(history.empty() ? "" : ", ") + what + " at +" + std::to_string(at) + " ms";
      last = state;
    }
    const auto next = std::min(settled, std::chrono::steady_clock::now() + history_interval);
    wait_for([&] { return std::chrono::steady_clock::now() >= next; },
             std::chrono::duration_cast<std::chrono::milliseconds>(history_interval * 2));
  }
  auto verdict = look(probes, true, static_cast<std::size_t>(-1), io_timeout);
  verdict.history = history.empty() ? "no polls before the bound" : history;
  return verdict;
}

}  // namespace redlock::test

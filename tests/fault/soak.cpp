// The soak: k client processes do read-sleep-write on a register under a seeded random
// schedule of faults, and a checker verifies that no two critical sections overlapped and no
// update was lost (test-catalogue.md: "k clients, long random schedule of faults"); with
// fencing (the default), also that the fencing tokens behaved and the fenced register never
// took a stale write.
//
//   redlock_soak [--seconds S] [--seed N] [--clients K] [--fencing 1|0] [--fair 0|1]
//                                                                      (via scripts/soak)
//
// Setup: five lock servers -- nodes 0-2 restarted at once after a crash, nodes 3-4 only after
// a full TTL -- each behind a TCP proxy, plus one register server that is never faulted.
// Clients reach the lock servers through the proxies and the register directly. The faults
// stay within the documented assumptions (server clocks untouched; clients never paused), so
// the checkers must find nothing:
// - With fencing (--fencing 1), every lock server runs with appendonly yes + appendfsync
//   always, nodes 3-4 too: the delayed restart is enough for exclusion, but a server restarted
//   empty loses its fencing counters, and then tokens can repeat (fencing's documented
//   assumption; tests/fault/fencing_test.cpp shows it). Clients lock with fencing and the
//   register is a fenced store (one hash, include/redlock/fenced_store.hpp): each section reads
//   it and writes read + 1 with its lock's token.
// - Without (--fencing 0): nodes 0-2 with appendfsync always, nodes 3-4 without persistence,
//   so the delayed restart is the mitigation under test; the register is a plain string key
//   (GET, then SET).
// - Fair mode (--fair 1, only with --fencing 0): the clients lock in fair mode (per-resource
//   wait queues on every node), with a queue entry timeout of one lock TTL so that an entry
//   the cleanup failed to remove outlives the cleanup bound and the checker sees it. Wake-up
//   is on in every mode (the default).
//
// Each client logs its critical sections -- CLOCK_MONOTONIC start/end on this one machine, the
// register value read and written, the fencing token, whether the fenced register accepted or
// refused the write and when it was sent and answered (support/fault_fencing.hpp) -- and the
// parent checks them: no overlap, no lost update; with fencing, (a) tokens of successive
// sections (ordered by start) strictly increase, (b) no token twice, (c) no accepted write
// with a token lower than one accepted before it, every refusal explained by a higher token
// written before it, and the register ends with the highest token accepted. Each client also
// logs the value of every operation that ended with a failure or an unlock, and the parent
// checks with the "nothing left behind" checker that no lock server still holds it -- as a key
// or as a queue or lease entry -- once the cleanup bound has passed (counted from when the
// operation ended and the server was last faulted, whichever is later). When its loop is over
// each client reports "done" and keeps its manager open until the parent has looked: once
// every client is done, no lock server may hold a queue or lease key of the resource or a
// subscriber to its release channel. The parent also samples a lock server every 200 ms: some
// sample must see managers subscribed to the release channel (wake-up ran), and in fair mode
// some must see waiters queued (none without). The last line is "N passed, N failed".
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "internal/scripts.hpp"
#include "raw_client.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/redis_node.hpp"
#include "support/blocking_client.hpp"
#include "support/fault_checker.hpp"
#include "support/fault_fencing.hpp"
#include "support/fault_leftovers.hpp"
#include "support/fault_net.hpp"
#include "support/fault_recorder.hpp"
#include "support/redis_server.hpp"
#include "support/tcp_proxy.hpp"

namespace rt = redlock::test;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

// Longer than the cleanup bound (request timeout 150 ms: 2.2 s), so that a key the cleanup
// failed to remove is still there when the checker looks, instead of having expired.
constexpr milliseconds lock_ttl{4000};
constexpr milliseconds request_timeout{150};
constexpr const char* resource = "soak-lock";
constexpr const char* register_key = "soak-register";
// Nodes 0..2 are restarted at once after a crash, with appendfsync always; the others after a
// full TTL, with appendfsync always too when fencing (counters), without persistence otherwise.
constexpr std::size_t durable_nodes = 3;
constexpr std::size_t lock_nodes = 5;

std::int64_t now_ns() {
  return rt::monotonic_ns();
}

std::vector<std::uint16_t> parse_ports(const std::string& s) {
  std::vector<std::uint16_t> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    auto comma = s.find(',', pos);
    if (comma == std::string::npos)
      comma = s.size();
    out.push_back(static_cast<std::uint16_t>(std::stoi(s.substr(pos, comma - pos))));
    pos = comma + 1;
  }
  return out;
}

// --- client process -------------------------------------------------------------------------

int run_client(int id, const std::vector<std::uint16_t>& ports, std::uint16_t register_port,
               std::int64_t until_ns, const std::string& log_path, std::uint64_t seed, bool fencing,
               bool fair) {
  std::mt19937_64 rng(seed * 1000 + static_cast<std::uint64_t>(id));
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::ofstream log(log_path, std::ios::app);
  // "end_ns value" for every value whose operation ended (failed, or unlocked): the values come
  // from the nodes, since a failed acquire's handle carries none.
  std::ofstream ended(log_path + ".values", std::ios::app);
  auto values = std::make_shared<rt::value_log>();
  std::size_t values_logged = 0;
  auto log_ended = [&] {
    const auto t = now_ns();
    for (const auto& v : values->values_from(values_logged)) {
      ended << t << ' ' << v << '\n';
      ++values_logged;
    }
    ended << std::flush;
  };

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  redlock::manager_options s;
  s.retry_count = 3;
  s.retry_delay = 40ms;
  s.retry_jitter = 30ms;
  s.request_timeout = request_timeout;
  s.connect_timeout = 150ms;
  s.fencing = fencing;
  s.fair = fair;
  // An entry left behind must outlive the cleanup bound to be seen (see the header).
  s.fair_entry_timeout = lock_ttl;
  std::vector<std::shared_ptr<redlock::node>> nodes;
  redlock::connection_options co;
  co.connect_timeout = s.connect_timeout;
  co.request_timeout = s.request_timeout;
  co.backoff_initial = 20ms;
  co.backoff_max = 300ms;
  for (auto p : ports) {
    redlock::endpoint ep;
    ep.port = p;
    nodes.push_back(std::make_shared<redlock::redis_node>(io.get_executor(), ep, co));
  }
  redlock::lock_manager manager(io.get_executor(), rt::record_values(nodes, values), s);
  std::thread runner([&io] { io.run(); });

  auto acquire = [&]() -> std::pair<std::error_code, redlock::lock> {
    auto p = std::make_shared<std::promise<std::pair<std::error_code, redlock::lock>>>();
    auto f = p->get_future();
    manager.async_lock(resource, lock_ttl, [p](std::error_code ec, redlock::lock l) {
      p->set_value({ec, std::move(l)});
    });
    if (f.wait_for(30s) != std::future_status::ready)
      return {redlock::errc::timeout, {}};
    return f.get();
  };
  auto extend = [&](const redlock::lock& l) -> std::pair<std::error_code, redlock::lock> {
    auto p = std::make_shared<std::promise<std::pair<std::error_code, redlock::lock>>>();
    auto f = p->get_future();
    manager.async_extend(l, lock_ttl, [p](std::error_code ec, redlock::lock l2) {
      p->set_value({ec, std::move(l2)});
    });
    if (f.wait_for(30s) != std::future_status::ready)
      return {redlock::errc::timeout, {}};
    return f.get();
  };
  auto unlock = [&](const redlock::lock& l) {
    auto p = std::make_shared<std::promise<void>>();
    auto f = p->get_future();
    manager.async_unlock(l, [p](std::error_code, redlock::unlock_result) { p->set_value(); });
    f.wait_for(30s);
  };

  int rc = 0;
  // The register: a fenced store with fencing, a plain string key without.
  std::unique_ptr<rt::blocking_fenced_store> fenced_reg;
  std::unique_ptr<rt::raw_client> plain_reg;
  if (fencing)
    fenced_reg = std::make_unique<rt::blocking_fenced_store>(register_port, register_key, 2000ms);
  else
    plain_reg = std::make_unique<rt::raw_client>(register_port, 2000ms);
  auto read_register = [&]() -> std::optional<std::int64_t> {
    if (fenced_reg) {
      auto [ec, v] = fenced_reg->read();
      if (ec)
        return std::nullopt;
      return v.value ? std::stoll(*v.value) : 0;
    }
    auto r = plain_reg->command({"GET", register_key});
    if (!r)
      return std::nullopt;
    return *r == "(nil)" ? 0 : std::stoll(*r);
  };
  // Fills in the write fields of `fs`; false on an I/O error or an unexpected reply.
  auto write_register = [&](rt::fenced_section& fs) {
    const auto value = std::to_string(fs.section.read + 1);
    fs.write_begin_ns = now_ns();
    bool accepted = false;
    if (fenced_reg) {
      auto [ec, w] = fenced_reg->write(fs.token, value);
      if (ec)
        return false;
      accepted = w.accepted;
      fs.highest = w.highest;
    } else {
      auto w = plain_reg->command({"SET", register_key, value});
      if (!w || *w != "OK")
        return false;
      accepted = true;
    }
    fs.write_end_ns = now_ns();
    fs.write = accepted ? rt::fenced_write::accepted : rt::fenced_write::refused;
    if (accepted)
      fs.section.wrote = fs.section.read + 1;
    return true;
  };
  long sections = 0, failures = 0, aborted = 0, refused = 0;
  // Bounded by time and by count.
  for (long iter = 0; iter < 1'000'000 && now_ns() < until_ns; ++iter) {
    auto [ec, held] = acquire();
    if (ec) {
      log_ended();
      ++failures;
      std::this_thread::sleep_for(milliseconds(uniform(5, 40)));
      continue;
    }
    // A careful client: act only with comfortable validity left, and check again before the
    // write (the documented assumption is that it is not paused in between).
    const auto margin = 150ms;
    bool ok = held.remaining() > margin;
    rt::fenced_section fs;
    fs.section.client = id;
    fs.section.start_ns = now_ns();
    fs.token = held.fencing_token();
    if (ok) {
      auto r = read_register();
      if (!r) {
        rc = 2;
        break;
      }
      fs.section.read = *r;
      std::this_thread::sleep_for(milliseconds(uniform(0, 30)));
      if (uniform(0, 3) == 0) {
        auto [eec, extended] = extend(held);
        if (eec) {
          ok = false;  // lost or expired: do not write
        } else {
          held = extended;
        }
      }
    }
    if (ok && held.remaining() > margin) {
      if (!write_register(fs)) {
        rc = 2;
        break;
      }
      ++sections;
      refused += fs.write == rt::fenced_write::refused ? 1 : 0;
    } else {
      ++aborted;
    }
    // Every section is logged, those that wrote nothing too (their tokens count).
    fs.section.end_ns = now_ns();
    log << rt::to_line(fs) << '\n' << std::flush;
    unlock(held);
    log_ended();
    std::this_thread::sleep_for(milliseconds(uniform(0, 20)));
  }
  std::fprintf(stderr,
               "client %d: %ld sections (%ld writes refused), %ld failed acquires, %ld aborted\n",
               id, sections, refused, failures, aborted);
  // Done: the manager stays open (its subscriber connections too) until the parent has
  // looked at the servers, or 60 s at most.
  std::ofstream(log_path + ".done") << "done\n";
  const auto go = std::filesystem::path(log_path).parent_path() / "checked";
  for (int i = 0; i < 1200 && !std::filesystem::exists(go); ++i)
    std::this_thread::sleep_for(50ms);
  auto q = std::make_shared<std::promise<void>>();
  auto qf = q->get_future();
  manager.async_quit([q](std::error_code) { q->set_value(); });
  qf.wait_for(10s);
  work.reset();
  io.stop();
  runner.join();
  return rc;
}

// --- fault schedule (parent) ----------------------------------------------------------------

struct pending {
  std::int64_t at_ns;
  std::function<void()> action;
};

struct soak_faults {
  std::vector<std::unique_ptr<rt::redis_server>>& servers;
  std::vector<std::unique_ptr<rt::tcp_proxy>>& proxies;
  std::mt19937_64 rng;
  std::vector<pending> later;
  std::vector<bool> busy;               // a node with a fault in progress gets no second one
  std::vector<std::int64_t> fault_end;  // per node: when its last fault ended (ns), or 0
  std::vector<std::string> last_kind;   // per node: its last fault, for the leftover report
  std::map<std::string, int> counts;
  std::vector<std::unique_ptr<rt::iptables_rule>> rules;

  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

  // Counts a fault of `kind` on node n and remembers it as the node's last.
  void note(std::size_t n, const std::string& kind) {
    counts[kind] += 1;
    if (last_kind.size() < busy.size())
      last_kind.resize(busy.size());
    last_kind[n] = kind;
  }

  void done(std::size_t n) {
    busy[n] = false;
    fault_end[n] = now_ns();
  }

  void schedule(milliseconds after, std::function<void()> f) {
    later.push_back({now_ns() + std::chrono::nanoseconds(after).count(), std::move(f)});
  }

  void run_due(bool all) {
    const auto t = now_ns();
    for (std::size_t i = 0; i < later.size();) {
      if (all || later[i].at_ns <= t) {
        auto f = std::move(later[i].action);
        later.erase(later.begin() + static_cast<std::ptrdiff_t>(i));
        f();
      } else {
        ++i;
      }
    }
  }

  void inject_one() {
    const auto n = static_cast<std::size_t>(uniform(0, static_cast<int>(lock_nodes) - 1));
    if (busy[n])
      return;
    busy[n] = true;
    auto& s = *servers[n];
    auto& p = *proxies[n];
    const int kind = uniform(0, 6);
    const auto hold = milliseconds(uniform(100, 1500));
    switch (kind) {
      case 0:  // kill -9 and restart: at once if durable, after a full TTL if not
        s.kill9();
        rt::count_fault("kill9");
        if (n < durable_nodes) {
          note(n, "kill9+restart (appendfsync always)");
          s.start();
          done(n);
        } else {
          note(n, "kill9+delayed restart (>= TTL)");
          schedule(lock_ttl + 200ms, [this, n] {
            servers[n]->start();
            done(n);
          });
        }
        break;
      case 1:
        note(n, "SIGSTOP/SIGCONT");
        rt::count_fault("sigstop");
        s.pause();
        schedule(hold, [this, n] {
          servers[n]->resume();
          done(n);
        });
        break;
      case 2:
      case 3: {
        const bool drop = kind == 2;
        note(n, drop ? "partition (DROP)" : "partition (REJECT)");
        rules.push_back(std::make_unique<rt::iptables_rule>(
            rt::partition(s.port(), drop ? rt::partition_mode::drop : rt::partition_mode::reject)));
        auto* r = rules.back().get();
        schedule(hold, [this, n, r] {
          r->heal();
          done(n);
        });
        break;
      }
      case 4: {
        note(n, "lost replies");
        rules.push_back(std::make_unique<rt::iptables_rule>(rt::lose_replies(s.port())));
        auto* r = rules.back().get();
        schedule(hold, [this, n, r] {
          r->heal();
          done(n);
        });
        break;
      }
      case 5:
        note(n, "latency (proxy)");
        rt::count_fault("latency");
        p.set_delay(milliseconds(uniform(20, 300)), milliseconds(uniform(0, 100)));
        schedule(hold, [this, n] {
          proxies[n]->set_delay(0ms, 0ms);
          done(n);
        });
        break;
      default:
        note(n, "connection reset (proxy)");
        rt::count_fault("reset");
        p.reset_all();
        done(n);
        break;
    }
  }
};

// The "nothing left behind" check of the soak: each client appends "end_ns value" for every
// operation that ended with a failure or an unlock; once the cleanup bound has passed since that
// end and since the server's last fault ended (a server under a fault cannot confirm a release,
// and a fault right after another is allowed to delay it), no lock server may hold the value.
// A value whose bound comes after its keys would have expired anyway is counted as not
// checkable, never as clean.
struct leftover_watch {
  struct entry {
    std::int64_t end_ns;
    std::string value;
  };
  std::vector<rt::admin_access> servers;
  std::vector<std::string> logs;
  std::vector<std::streamoff> offsets;
  std::vector<std::vector<entry>> pending;  // per server
  std::size_t values = 0, checked = 0, unchecked = 0, left = 0;
  std::vector<std::string> problems;  // the first few, for the output
  std::int64_t next_round = 0;
  std::int64_t last_end = 0;

  static std::int64_t ns(milliseconds d) { return std::chrono::nanoseconds(d).count(); }

  void read_logs() {
    for (std::size_t i = 0; i < logs.size(); ++i) {
      std::ifstream in(logs[i]);
      if (!in)
        continue;
      in.seekg(offsets[i]);
      std::string line;
      // Only complete lines: a client may be in the middle of writing the last one.
      for (int n = 0; n < 1'000'000 && std::getline(in, line) && !in.eof(); ++n) {
        offsets[i] = in.tellg();
        std::istringstream l(line);
        entry e;
        if (!(l >> e.end_ns >> e.value))
          continue;
        ++values;
        last_end = std::max(last_end, e.end_ns);
        for (auto& p : pending)
          p.push_back(e);
      }
    }
  }

  // One look at each server that has no fault in progress, for the values whose bound passed.
  void round(const soak_faults& f, bool force) {
    const auto now = now_ns();
    if (!force && now < next_round)
      return;
    next_round = now + ns(250ms);
    read_logs();
    const auto bound = ns(rt::cleanup_bound(request_timeout));
    for (std::size_t n = 0; n < servers.size(); ++n) {
      if (f.busy[n])
        continue;
      std::vector<entry> due, later;
      for (auto& e : pending[n]) {
        const auto from = std::max(e.end_ns, f.fault_end[n]);
        if (from + bound > e.end_ns + ns(lock_ttl) - ns(200ms))
          ++unchecked;  // its keys expire before its bound: checking proves nothing
        else if (from + bound <= now)
          due.push_back(std::move(e));
        else
          later.push_back(std::move(e));
      }
      pending[n] = std::move(later);
      if (due.empty())
        continue;
      rt::leftover_probe probe{{servers[n]}, {}, {resource}, {resource}, false};
      for (const auto& e : due)
        probe.values.push_back(e.value);
      auto r = rt::find_leftovers(probe, 300ms);
      if (!r.unreachable.empty()) {
        // Not reachable although no fault is in progress (e.g. a slow restart): next round.
        for (auto& e : due)
          pending[n].push_back(std::move(e));
        continue;
      }
      checked += due.size();
      left += r.found.size();
      if (!r.found.empty() && problems.size() < 5) {
        std::string when;
        for (const auto& e : due)
          if (e.value == r.found.front().value)
            when = " (the operation ended " + std::to_string((now - e.end_ns) / 1'000'000) +
                   " ms before the look, the server's last fault " +
                   (f.fault_end[n] ? std::to_string((now - f.fault_end[n]) / 1'000'000) + " ms"
                                   : std::string("never")) +
                   " before" +
                   (n < f.last_kind.size() && !f.last_kind[n].empty() ? ": " + f.last_kind[n]
                                                                      : std::string()) +
                   ")";
        problems.push_back(r.to_string() + when);
      }
    }
  }

  // After the clients exited and every fault was healed: look until every bound has passed.
  // Bounded by the last end plus the bound plus 5 s.
  void finish(const soak_faults& f) {
    read_logs();
    const auto until =
        std::max(now_ns(), last_end) + ns(rt::cleanup_bound(request_timeout)) + ns(5000ms);
    while (now_ns() < until) {
      round(f, true);
      bool empty = true;
      for (const auto& p : pending)
        empty = empty && p.empty();
      if (empty)
        break;
      std::this_thread::sleep_for(100ms);
    }
    for (auto& p : pending) {
      unchecked += p.size();
      p.clear();
    }
  }
};

// Whether the run exercised wake-up and fair mode at all: every 200 ms one lock server without
// a fault in progress is asked how many managers are subscribed to the resource's release
// channel and how many waiters its queue holds.
struct activity_sampler {
  std::vector<rt::admin_access> servers;
  std::size_t next_server = 0, samples = 0, subscribed = 0, queued = 0;
  std::int64_t max_subscribers = 0, max_queued = 0;
  std::int64_t next = 0;

  void sample(const soak_faults& f) {
    const auto now = now_ns();
    if (now < next)
      return;
    next = now + 200'000'000;
    const auto n = next_server++ % servers.size();
    if (f.busy[n])
      return;
    rt::blocking_client c(servers[n].host, servers[n].port, 200ms);
    auto subs = c.command({"PUBSUB", "SHARDNUMSUB", redlock::detail::release_channel(resource)});
    auto q = c.command({"ZCARD", redlock::detail::fair_queue_key(resource)});
    if (!subs || !q || subs->kind != redlock::reply::type::array || subs->elements.size() != 2 ||
        q->kind != redlock::reply::type::integer)
      return;
    ++samples;
    const auto nsubs = subs->elements[1].integer;
    subscribed += nsubs > 0 ? 1 : 0;
    queued += q->integer > 0 ? 1 : 0;
    max_subscribers = std::max(max_subscribers, nsubs);
    max_queued = std::max(max_queued, q->integer);
  }
};

// A client is this binary again, with its output next to the parent's.
std::unique_ptr<rt::process> spawn_client(std::vector<std::string> args) {
  rt::process_options o;
  o.out = rt::process_options::output::inherit;
  return std::make_unique<rt::process>(std::move(args), std::move(o));
}

int run_parent(int seconds, std::uint64_t seed, int clients, bool fencing, bool fair) {
  std::printf(
      "soak: seed %llu, %d s, %d clients, %zu lock servers (%zu restarted at once, %zu after a "
      "TTL; %s), fencing %s, fair mode %s, wake-up on\n",
      static_cast<unsigned long long>(seed), seconds, clients, lock_nodes, durable_nodes,
      lock_nodes - durable_nodes,
      fencing ? "all with appendfsync always" : "those without persistence", fencing ? "on" : "off",
      fair ? "on" : "off");
  std::fflush(stdout);
  if (!rt::in_private_netns()) {
    std::printf("soak must run inside scripts/in-netns\n0 passed, 1 failed\n");
    return 1;
  }
  std::vector<std::unique_ptr<rt::redis_server>> servers;
  std::vector<std::unique_ptr<rt::tcp_proxy>> proxies;
  for (std::size_t i = 0; i < lock_nodes; ++i) {
    rt::redis_server_options o;
    if (i < durable_nodes || fencing) {
      o.appendonly = true;
      o.appendfsync = "always";
    }
    servers.push_back(std::make_unique<rt::redis_server>(o));
    proxies.push_back(std::make_unique<rt::tcp_proxy>(servers.back()->port()));
  }
  rt::redis_server register_server;  // never faulted
  std::string ports;
  for (auto& p : proxies)
    ports += (ports.empty() ? "" : ",") + std::to_string(p->port());

  char tmpl[] = "/tmp/redlock-soak-XXXXXX";
  const std::string dir = mkdtemp(tmpl) ? tmpl : "/tmp";
  const std::int64_t until =
      now_ns() + std::chrono::nanoseconds(std::chrono::seconds(seconds)).count();
  std::vector<std::unique_ptr<rt::process>> pids;
  for (int i = 0; i < clients; ++i) {
    pids.push_back(spawn_client(
        {"/proc/self/exe", "--client", std::to_string(i), "--ports", ports, "--register",
         std::to_string(register_server.port()), "--until", std::to_string(until), "--log",
         dir + "/client-" + std::to_string(i) + ".log", "--seed", std::to_string(seed), "--fencing",
         fencing ? "1" : "0", "--fair", fair ? "1" : "0"}));
  }

  soak_faults faults{servers,
                     proxies,
                     std::mt19937_64(seed),
                     {},
                     std::vector<bool>(lock_nodes),
                     std::vector<std::int64_t>(lock_nodes),
                     std::vector<std::string>(lock_nodes),
                     {},
                     {}};
  leftover_watch watch;
  activity_sampler activity;
  for (auto& srv : servers) {
    watch.servers.push_back(rt::admin_of(*srv));
    activity.servers.push_back(rt::admin_of(*srv));
  }
  for (int i = 0; i < clients; ++i)
    watch.logs.push_back(dir + "/client-" + std::to_string(i) + ".log.values");
  watch.offsets.assign(watch.logs.size(), 0);
  watch.pending.resize(servers.size());
  // Leave the last 2 s fault-free so that clients finish against healthy servers.
  const std::int64_t faults_until = until - 2'000'000'000;
  std::int64_t next = now_ns() + 300'000'000;
  while (now_ns() < until) {
    if (now_ns() >= next && now_ns() < faults_until) {
      faults.inject_one();
      next = now_ns() + std::chrono::nanoseconds(milliseconds(faults.uniform(100, 700))).count();
    }
    faults.run_due(now_ns() >= faults_until);
    watch.round(faults, false);
    activity.sample(faults);
    std::this_thread::sleep_for(10ms);
  }
  faults.run_due(true);
  faults.rules.clear();

  // Every client done (bounded wait): the per-value checks until each bound has passed, then
  // the look at a quiet system -- no queue or lease key, no subscriber -- while the clients'
  // managers are still open; then the clients may quit.
  const std::int64_t reap_until = now_ns() + 40'000'000'000;
  int done_clients = 0;
  for (int i = 0; i < 40'000 && now_ns() < reap_until; ++i) {
    done_clients = 0;
    for (int c = 0; c < clients; ++c)
      done_clients += std::filesystem::exists(dir + "/client-" + std::to_string(c) + ".log.done");
    if (done_clients == clients)
      break;
    std::this_thread::sleep_for(10ms);
  }
  watch.finish(faults);
  std::int64_t quiet_from = watch.last_end;
  for (auto e : faults.fault_end)
    quiet_from = std::max(quiet_from, e);
  rt::leftover_probe quiet{{}, {}, {resource}, {resource}, true};
  for (auto& srv : servers)
    quiet.servers.push_back(rt::admin_of(*srv));
  const auto quiet_at = std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::nanoseconds(quiet_from)));
  const auto quiet_report =
      done_clients == clients
          ? rt::check_nothing_left_behind({quiet}, quiet_at, rt::cleanup_bound(request_timeout))
          : rt::leftover_report{};
  const bool quiet_ok = done_clients == clients && quiet_report.clean() &&
                        quiet_report.unreachable.empty() &&
                        quiet_report.servers_checked == servers.size();
  std::ofstream(dir + "/checked") << "checked\n";

  // Collect the clients: bounded wait, then SIGKILL stragglers (a failure).
  int clean_exits = 0;
  const std::int64_t quit_until = now_ns() + 30'000'000'000;
  for (auto& p : pids) {
    const auto left = std::max<std::int64_t>(0, quit_until - now_ns()) / 1'000'000;
    if (!p->wait_exit(milliseconds(left)))
      p->kill9();
    else if (p->exit_code() == 0)
      ++clean_exits;
  }

  std::vector<rt::fenced_section> fenced_sections;
  std::size_t unreadable = 0;
  for (int i = 0; i < clients; ++i) {
    std::ifstream in(dir + "/client-" + std::to_string(i) + ".log");
    std::string line;
    while (std::getline(in, line)) {
      if (auto s = rt::parse_fenced_line(line))
        fenced_sections.push_back(*s);
      else
        ++unreadable;
    }
  }
  // The register as the checker's own connection reads it.
  std::int64_t final_value = 0;
  std::uint64_t final_token = 0;
  bool register_read = true;
  if (fencing) {
    rt::blocking_fenced_store reg(register_server.port(), register_key, 2000ms);
    auto [ec, v] = reg.read();
    register_read = !ec;
    final_value = v.value ? std::stoll(*v.value) : 0;
    final_token = v.token;
  } else {
    auto fv = register_server.command({"GET", register_key});
    if (fv.kind == redlock::reply::type::string)
      final_value = std::stoll(fv.str);
  }
  auto result = rt::check_sections(rt::acting_sections(fenced_sections), final_value);
  auto fenced = rt::check_fencing(fenced_sections, final_token);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);

  std::printf("faults injected: %llu\n", static_cast<unsigned long long>(rt::faults_injected()));
  for (const auto& [kind, n] : faults.counts)
    std::printf("  %-40s %d\n", kind.c_str(), n);
  std::printf("critical sections: %zu that wrote (%zu more that gave up), final register: %lld\n",
              result.sections, fenced_sections.size() - result.sections,
              static_cast<long long>(final_value));
  std::printf("overlapping critical sections: %zu\n", result.overlaps);
  std::printf("lost updates: %zu\n", result.lost_updates);
  if (!result.first_problem.empty())
    std::printf("first problem: %s\n", result.first_problem.c_str());
  if (fencing) {
    std::printf(
        "fencing: %zu sections, %zu tokens checked, max token %llu, %zu writes accepted, %zu "
        "refused stale writes; %zu not increasing, %zu repeated, %zu stale writes accepted, %zu "
        "unexplained refusals; register token %llu\n",
        fenced.sections, fenced.tokens_checked, static_cast<unsigned long long>(fenced.max_token),
        fenced.accepted, fenced.refused, fenced.not_increasing, fenced.repeated,
        fenced.stale_accepted, fenced.unexplained_refusals,
        static_cast<unsigned long long>(final_token));
    if (!fenced.first_problem.empty())
      std::printf("first fencing problem: %s\n", fenced.first_problem.c_str());
  }
  std::printf(
      "nothing left behind: %zu values ended, %zu (value, server) checks after the cleanup "
      "bound (%lld ms), %zu keys left behind, %zu not checkable (a fault outlasted the TTL)\n",
      watch.values, watch.checked,
      static_cast<long long>(rt::cleanup_bound(request_timeout).count()), watch.left,
      watch.unchecked);
  for (const auto& p : watch.problems)
    std::printf("left behind: %s\n", p.c_str());
  std::printf(
      "waiting: %zu samples of a lock server, %zu saw wake-up subscribers (at most %lld), %zu saw "
      "queued waiters (at most %lld)\n",
      activity.samples, activity.subscribed, static_cast<long long>(activity.max_subscribers),
      activity.queued, static_cast<long long>(activity.max_queued));
  std::printf("once every client was done (%d of %d): %s\n", done_clients, clients,
              quiet_report.to_string().c_str());

  int passed = 0, failed = 0;
  auto check = [&](bool ok, const char* what) {
    std::printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    (ok ? passed : failed)++;
  };
  check(result.overlaps == 0, "no overlapping critical sections");
  check(result.lost_updates == 0, "no lost updates (register history and final value)");
  check(
      register_read && unreadable == 0 && static_cast<std::int64_t>(fenced.accepted) == final_value,
      "every accepted write is in the register");
  check(clean_exits == clients, "every client exited cleanly within its deadline");
  check(result.sections >= static_cast<std::size_t>(clients), "clients made progress");
  check(watch.left == 0 && watch.checked > 0,
        "nothing left behind after failed and unlocked operations (checked on every server)");
  check(quiet_ok,
        "no queue or lease key and no release-channel subscriber once every client was done");
  check(rt::faults_injected() > 0, "faults were injected");
  check(activity.subscribed > 0, "waiters were subscribed for wake-up (wake-up exercised)");
  if (fair)
    check(activity.queued > 0, "waiters were queued (fair mode exercised)");
  else
    check(activity.queued == 0, "no wait queue without fair mode");
  if (fencing) {
    check(fenced.unfenced == 0 && fenced.not_increasing == 0,
          "fencing tokens of successive critical sections strictly increase");
    check(fenced.repeated == 0, "no fencing token handed out twice");
    check(fenced.stale_accepted == 0 && fenced.unexplained_refusals == 0,
          "the fenced register never accepted a stale write (and refused only stale ones)");
    check(!fenced.store_mismatch, "the fenced register ends with the highest accepted token");
  }
  std::printf("seed %llu\n%d passed, %d failed\n", static_cast<unsigned long long>(seed), passed,
              failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i + 1 < argc; i += 2)
    args[argv[i]] = argv[i + 1];
  auto get = [&](const char* k, const std::string& d) {
    auto it = args.find(k);
    return it == args.end() ? d : it->second;
  };
  try {
    if (args.count("--client")) {
      return run_client(std::stoi(args["--client"]), parse_ports(args["--ports"]),
                        static_cast<std::uint16_t>(std::stoi(args["--register"])),
                        std::stoll(args["--until"]), args["--log"], std::stoull(get("--seed", "1")),
                        get("--fencing", "1") != "0", get("--fair", "0") == "1");
    }
    const int seconds = std::stoi(get("--seconds", "120"));
    const std::uint64_t seed = std::stoull(get("--seed", std::to_string(std::random_device{}())));
    const int clients = std::stoi(get("--clients", "4"));
    const std::string fencing = get("--fencing", "1");
    const std::string fair = get("--fair", "0");
    if (seconds < 5 || seconds > 24 * 3600 || clients < 2 || clients > 32 ||
        (fencing != "0" && fencing != "1") || (fair != "0" && fair != "1")) {
      std::fprintf(stderr,
                   "usage: redlock_soak [--seconds 5..86400] [--seed N] [--clients 2..32] "
                   "[--fencing 1|0] [--fair 0|1]\n");
      return 2;
    }
    if (fair == "1" && fencing == "1") {
      std::fprintf(stderr,
                   "redlock_soak: --fair 1 needs --fencing 0 (fair mode cannot be combined with "
                   "fencing)\n");
      return 2;
    }
    return run_parent(seconds, seed, clients, fencing == "1", fair == "1");
  } catch (const std::exception& e) {
    std::printf("soak: error: %s\n0 passed, 1 failed\n", e.what());
    return 1;
  }
}

// Fencing tokens under faults (issue 13; /work/shared/design/fencing.md, "Consequences"):
// clients do fenced read-sleep-write sections -- lock with fencing, read a fenced store, sleep,
// write read + 1 with the lock's token -- while a lock server is killed and restarted at once,
// partitioned, paused or loses its replies; the fencing checker (support/fault_fencing.hpp)
// must see tokens strictly increase from section to section and no stale write accepted, and
// the exclusion checker no overlap and no lost update. The store is on a server that is never
// faulted: it is the protected resource, not a lock server.
//
// Then the two cases fencing exists for, and its documented assumption:
// - a holder stalled past its validity between its read and its write while another client
//   takes the lock: the fenced store refuses its late write; a plain SET overwrites the newer
//   value (and the fencing checker, given the plain writes, sees the stale one);
// - a lock server restarted without persistence, at once, and needed for the quorum (N = 3,
//   one other server partitioned): it lost its counter, and the checker sees a token handed out
//   twice -- shown, not assumed; with appendfsync always the token keeps growing.
#include <atomic>
#include <mutex>
#include <random>

#include "fault_common.hpp"
#include "internal/scripts.hpp"
#include "support/fault_fencing.hpp"

namespace redlock::test {
namespace {

constexpr const char* resource = "fenced";
constexpr const char* store_key = "fenced-register";

redis_server_options durable() {
  redis_server_options o;
  o.appendonly = true;
  o.appendfsync = "always";
  return o;
}

manager_options fenced_settings() {
  auto s = fault_settings();
  s.fencing = true;
  s.retry_count = 5;
  s.retry_delay = 20ms;
  s.retry_jitter = 20ms;
  return s;
}

// The register value a section read: the number before ':' ("3:client-1"), 0 when none.
std::int64_t number_of(const std::optional<std::string>& value) {
  return value ? std::stoll(*value) : 0;
}

std::string value_for(std::int64_t n, const std::string& writer) {
  return std::to_string(n) + ":" + writer;
}

// k clients (threads, each with its own manager, connections and store connection) doing
// fenced read-sleep-write sections on one resource until stopped. A section writes only with
// more than `margin` of validity left, checked after its sleep (the careful client of the
// Guarantees; the margin is generous because a loaded 2-core machine stalls threads).
class fenced_workload {
 public:
  static constexpr auto ttl = 3000ms;
  static constexpr auto margin = 500ms;

  fenced_workload(const std::vector<std::uint16_t>& lock_ports, std::uint16_t store_port,
                  int clients = 3) {
    for (int i = 0; i < clients; ++i)
      threads_.emplace_back([this, i, lock_ports, store_port] { run(i, lock_ports, store_port); });
  }
  ~fenced_workload() { stop(); }
  fenced_workload(const fenced_workload&) = delete;
  fenced_workload& operator=(const fenced_workload&) = delete;

  /// Waits (bounded) until `n` more sections than now have written, accepted or refused.
  bool wait_writes(std::size_t n, std::chrono::milliseconds limit = 15s) {
    const auto target = writes() + n;
    return wait_for([&] { return writes() >= target || !error().empty(); }, limit) &&
           error().empty();
  }
  /// Stops the clients (each finishes its section) and returns every section.
  std::vector<fenced_section> stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
    std::lock_guard g(mutex_);
    return sections_;
  }
  /// The first store error a client met (the store is never faulted: any error is a failure).
  std::string error() const {
    std::lock_guard g(mutex_);
    return error_;
  }

 private:
  std::size_t writes() const {
    std::lock_guard g(mutex_);
    return writes_;
  }
  void fail(const std::string& what) {
    std::lock_guard g(mutex_);
    if (error_.empty())
      error_ = what;
  }

  void run(int id, const std::vector<std::uint16_t>& ports, std::uint16_t store_port) {
    lock_client c(ports, fenced_settings());
    blocking_fenced_store store(store_port, store_key);
    std::mt19937 rng(static_cast<unsigned>(id) + 1);
    auto pause_ms = [&rng](int hi) {
      return std::chrono::milliseconds(std::uniform_int_distribution<int>(0, hi)(rng));
    };
    const std::string name = "client-" + std::to_string(id);
    while (!stop_) {
      auto o = c.acquire(resource, ttl);
      if (o.ec) {
        std::this_thread::sleep_for(pause_ms(10));
        continue;
      }
      fenced_section s;
      s.section.client = id;
      s.section.start_ns = monotonic_ns();
      s.token = o.held.fencing_token();
      auto [rec, v] = store.read();
      if (rec) {
        fail(name + ": store read: " + rec.message() + " " + v.message);
        c.unlock(o.held);
        return;
      }
      s.section.read = number_of(v.value);
      std::this_thread::sleep_for(pause_ms(10));
      if (o.held.remaining() > margin) {
        s.write_begin_ns = monotonic_ns();
        auto [wec, w] = store.write(s.token, value_for(s.section.read + 1, name));
        s.write_end_ns = monotonic_ns();
        if (wec) {
          fail(name + ": store write: " + wec.message() + " " + w.message);
          c.unlock(o.held);
          return;
        }
        s.write = w.accepted ? fenced_write::accepted : fenced_write::refused;
        s.highest = w.highest;
        if (w.accepted)
          s.section.wrote = s.section.read + 1;
      }
      s.section.end_ns = monotonic_ns();
      {
        std::lock_guard g(mutex_);
        sections_.push_back(s);
        if (s.write != fenced_write::none)
          ++writes_;
      }
      c.unlock(o.held);
    }
  }

  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<fenced_section> sections_;
  std::size_t writes_ = 0;
  std::string error_;
  std::vector<std::thread> threads_;  // last: joined before the rest goes
};

/// The safe configurations: the fencing checker and the exclusion checker find nothing, and
/// the store ends with the highest token and the number of accepted writes.
void expect_fenced_and_exclusive(const std::vector<fenced_section>& sections,
                                 const redis_server& store_server) {
  blocking_fenced_store store(store_server.port(), store_key);
  auto [ec, final_value] = store.read();
  ASSERT_FALSE(ec) << ec.message() << " " << final_value.message;
  auto f = check_fencing(sections, final_value.token);
  std::printf("fencing: %s\n", f.summary().c_str());
  EXPECT_TRUE(f.ok()) << f.first_problem;
  EXPECT_GE(f.accepted, 10u) << "too little work to show anything";
  EXPECT_EQ(f.refused, 0u) << "no section writes after a later one here";
  auto x = check_sections(acting_sections(sections), number_of(final_value.value));
  EXPECT_EQ(x.overlaps, 0u) << x.first_problem;
  EXPECT_EQ(x.lost_updates, 0u) << x.first_problem;
  EXPECT_EQ(number_of(final_value.value), static_cast<std::int64_t>(f.accepted));
}

long long counter_on(const redis_server& s) {
  auto r = s.command({"GET", detail::fencing_counter_key(resource)});
  return r.kind == reply::type::string ? std::stoll(r.str) : 0;
}

TEST(FencingCrash, KillNineAndImmediateRestartOfDurableServersKeepsTokensIncreasing) {
  cluster c(3, durable());
  redis_server store;
  fenced_workload w(c.ports(), store.port());
  ASSERT_TRUE(w.wait_writes(3)) << w.error();
  for (std::size_t round = 0; round < 6; ++round) {
    const std::size_t n = round % 3;
    const long long before = counter_on(c[n]);
    crash_and_restart(c[n]);
    EXPECT_GE(counter_on(c[n]), before) << "server " << n << " lost its counter in the crash";
    EXPECT_TRUE(w.wait_writes(4)) << "after the restart of server " << n << ": " << w.error();
  }
  expect_fenced_and_exclusive(w.stop(), store);
}

TEST(FencingPause, StoppedServersAndTheirLateRequestsAfterSigcontKeepTokensIncreasing) {
  cluster c(3, durable());
  redis_server store;
  fenced_workload w(c.ports(), store.port());
  ASSERT_TRUE(w.wait_writes(3)) << w.error();
  for (std::size_t n = 0; n < 3; ++n) {
    pause(c[n]);
    EXPECT_TRUE(w.wait_writes(3)) << "while server " << n << " is stopped: " << w.error();
    // The requests it received meanwhile run now, late (the design note's late delivery).
    c[n].resume();
    EXPECT_TRUE(w.wait_writes(3)) << "after server " << n << " resumed: " << w.error();
  }
  expect_fenced_and_exclusive(w.stop(), store);
}

TEST(FencingPartition, DropAndRejectPartitionsOfOneServerKeepTokensIncreasing) {
  cluster c(3, durable());
  redis_server store;
  fenced_workload w(c.ports(), store.port());
  ASSERT_TRUE(w.wait_writes(3)) << w.error();
  for (std::size_t n = 0; n < 3; ++n) {
    for (auto mode : {partition_mode::drop, partition_mode::reject}) {
      auto cut = partition(c[n].port(), mode);
      EXPECT_TRUE(w.wait_writes(3)) << "while server " << n << " is cut off: " << w.error();
      cut.heal();
      EXPECT_TRUE(w.wait_writes(3)) << "after the heal: " << w.error();
    }
  }
  expect_fenced_and_exclusive(w.stop(), store);
}

TEST(FencingLostReplies, ConfirmsAndGrantsWhoseRepliesAreLostKeepTokensIncreasing) {
  cluster c(3, durable());
  redis_server store;
  fenced_workload w(c.ports(), store.port());
  ASSERT_TRUE(w.wait_writes(3)) << w.error();
  for (std::size_t n = 0; n < 3; ++n) {
    // The server runs phase 1 and phase 2 (counters move), the client never hears of it.
    auto lost = lose_replies(c[n].port());
    EXPECT_TRUE(w.wait_writes(3)) << "while server " << n << "'s replies are lost: " << w.error();
    lost.heal();
    EXPECT_TRUE(w.wait_writes(3)) << "after the heal: " << w.error();
  }
  expect_fenced_and_exclusive(w.stop(), store);
}

// --- a holder that wakes up after its validity ----------------------------------------------

// Client A takes the lock and reads the register, then stalls -- the deliberate pause: it does
// nothing until client B, retrying, got the lock (only possible once A's keys expired) and
// wrote. Then A writes read + 1 with its old token, as a holder that does not look would.
// `fenced`: both write through the fenced store; otherwise with a plain GET and SET.
struct stale_holder_run {
  fenced_section a, b;
  std::chrono::milliseconds a_remaining_at_write{0};
  bool b_after_a_validity = false;
  std::uint64_t a_highest_answer = 0;  // fenced only: the store's answer to A's write
  std::string final_value;
  std::uint64_t final_token = 0;  // fenced only
};

void run_stale_holder(bool fenced, stale_holder_run& run) {
  cluster c(3);
  redis_server store_server;
  lock_client a_client(c.ports(), fenced_settings());
  lock_client b_client(c.ports(), fenced_settings());
  blocking_fenced_store a_store(store_server.port(), store_key);
  blocking_fenced_store b_store(store_server.port(), store_key);
  raw_client a_plain(store_server.port(), 2000ms);
  raw_client b_plain(store_server.port(), 2000ms);
  auto read_register = [&](blocking_fenced_store& s, raw_client& plain) -> std::int64_t {
    if (fenced) {
      auto [ec, v] = s.read();
      EXPECT_FALSE(ec) << ec.message();
      return number_of(v.value);
    }
    auto v = plain.command({"GET", store_key});
    EXPECT_TRUE(v.has_value());
    return v && *v != "(nil)" ? std::stoll(*v) : 0;
  };
  // Writes for `s`, filling in its write fields.
  auto write_register = [&](blocking_fenced_store& store, raw_client& plain, fenced_section& s,
                            const std::string& name) {
    const auto value = value_for(s.section.read + 1, name);
    s.write_begin_ns = monotonic_ns();
    bool accepted = false;
    if (fenced) {
      auto [ec, w] = store.write(s.token, value);
      EXPECT_FALSE(ec) << ec.message() << " " << w.message;
      accepted = w.accepted;
      s.highest = w.highest;
    } else {
      accepted = plain.command({"SET", store_key, value}) == "OK";
      s.highest = s.token;
    }
    s.write_end_ns = s.section.end_ns = monotonic_ns();
    s.write = accepted ? fenced_write::accepted : fenced_write::refused;
    if (accepted)
      s.section.wrote = s.section.read + 1;
  };

  auto a = a_client.acquire(resource, 800ms);
  ASSERT_FALSE(a.ec) << a.held.report().to_string();
  run.a.section.client = 0;
  run.a.section.start_ns = monotonic_ns();
  run.a.token = a.held.fencing_token();
  run.a.section.read = read_register(a_store, a_plain);

  // A is stalled from here. B waits for the lock (bounded by its retries).
  call_options retry;
  retry.retry_count = 60;
  retry.retry_delay = 50ms;
  retry.retry_jitter = 10ms;
  auto b = b_client.acquire(resource, 10000ms, retry);
  ASSERT_FALSE(b.ec) << b.held.report().to_string();
  run.b_after_a_validity = b.started + b.took > a.held.validity_deadline();
  run.b.section.client = 1;
  run.b.section.start_ns = monotonic_ns();
  run.b.token = b.held.fencing_token();
  run.b.section.read = read_register(b_store, b_plain);
  write_register(b_store, b_plain, run.b, "B");

  // A wakes up and writes without looking.
  run.a_remaining_at_write =
      std::chrono::duration_cast<std::chrono::milliseconds>(a.held.remaining());
  write_register(a_store, a_plain, run.a, "A");
  run.a_highest_answer = run.a.highest;

  if (fenced) {
    auto [ec, v] = b_store.read();
    EXPECT_FALSE(ec) << ec.message();
    run.final_value = v.value.value_or("");
    run.final_token = v.token;
  } else {
    run.final_value = b_plain.command({"GET", store_key}).value_or("");
  }
  b_client.unlock(b.held);
}

TEST(FencingStaleHolder, TheFencedStoreRefusesTheLateWriteOfAHolderWhoseValidityEnded) {
  stale_holder_run run;
  ASSERT_NO_FATAL_FAILURE(run_stale_holder(/*fenced=*/true, run));
  EXPECT_TRUE(run.b_after_a_validity) << "B got the lock only after A's validity ended";
  EXPECT_LE(run.a_remaining_at_write.count(), 0) << "A wrote as a stale holder";
  EXPECT_GT(run.b.token, run.a.token);
  EXPECT_EQ(run.b.write, fenced_write::accepted);
  EXPECT_EQ(run.a.write, fenced_write::refused) << "the stale write must be refused";
  EXPECT_EQ(run.a_highest_answer, run.b.token) << "refused for B's token";
  EXPECT_EQ(run.final_value, value_for(1, "B")) << "B's update stands";
  EXPECT_EQ(run.final_token, run.b.token);
  auto f = check_fencing({run.a, run.b}, run.final_token);
  EXPECT_TRUE(f.ok()) << f.first_problem;
  EXPECT_EQ(f.refused, 1u);
  std::printf("stale holder, fenced store: %s\n", f.summary().c_str());
}

TEST(FencingStaleHolder, APlainSetOfTheSameLateHolderOverwritesTheNewerValue) {
  stale_holder_run run;
  ASSERT_NO_FATAL_FAILURE(run_stale_holder(/*fenced=*/false, run));
  EXPECT_TRUE(run.b_after_a_validity);
  EXPECT_LE(run.a_remaining_at_write.count(), 0);
  EXPECT_GT(run.b.token, run.a.token) << "the tokens were there; a plain SET ignores them";
  EXPECT_EQ(run.a.write, fenced_write::accepted);
  EXPECT_EQ(run.final_value, value_for(1, "A")) << "A's late write replaced B's";
  // Given these writes, both checkers see what happened.
  auto f = check_fencing({run.a, run.b});
  EXPECT_EQ(f.stale_accepted, 1u) << "the fencing checker must see the stale write";
  auto x = check_sections(acting_sections({run.a, run.b}), number_of(run.final_value));
  EXPECT_GE(x.lost_updates, 1u) << "and the exclusion checker B's lost update";
  std::printf("stale holder, plain SET: %s\n", f.first_problem.c_str());
}

// --- a lock server that loses its counter ---------------------------------------------------

// restart_test's scenario with tokens: A locks while server 2 is down (servers 0 and 1 grant
// and count), server 2 comes back empty, server 1 is killed and restarted at once, server 0 is
// partitioned (REJECT). B now needs servers 1 and 2 for its quorum. A then writes after B.
struct lost_counter_run {
  fenced_section a, b;
  int b_attempts = 0;
  std::chrono::milliseconds a_remaining_at_write{0};
  std::uint64_t final_token = 0;
  std::string final_value;
};

void run_lost_counter(const redis_server_options& options, std::chrono::milliseconds a_ttl,
                      lost_counter_run& run) {
  cluster c(3, options);
  redis_server store_server;
  crash(c[2]);
  lock_client a_client(c.ports(), fenced_settings());
  lock_client b_client(c.ports(), fenced_settings());
  blocking_fenced_store a_store(store_server.port(), store_key);
  blocking_fenced_store b_store(store_server.port(), store_key);
  auto section = [](fenced_section& s, int client, const lock& held, blocking_fenced_store& st) {
    s.section.client = client;
    s.section.start_ns = monotonic_ns();
    s.token = held.fencing_token();
    auto [ec, v] = st.read();
    EXPECT_FALSE(ec) << ec.message();
    s.section.read = number_of(v.value);
  };
  auto write_section = [](fenced_section& s, blocking_fenced_store& st, const std::string& name) {
    s.write_begin_ns = monotonic_ns();
    auto [ec, w] = st.write(s.token, value_for(s.section.read + 1, name));
    s.write_end_ns = s.section.end_ns = monotonic_ns();
    EXPECT_FALSE(ec) << ec.message() << " " << w.message;
    s.write = w.accepted ? fenced_write::accepted : fenced_write::refused;
    s.highest = w.highest;
    if (w.accepted)
      s.section.wrote = s.section.read + 1;
  };

  auto a = a_client.acquire(resource, a_ttl);
  ASSERT_FALSE(a.ec) << a.held.report().to_string();
  EXPECT_EQ(c.holding(resource, a.held.value()), 2u);
  section(run.a, 0, a.held, a_store);

  // A is stalled from here.
  c[2].start();
  crash_and_restart(c[1]);
  auto cut = partition(c[0].port(), partition_mode::reject);
  call_options retry;
  retry.retry_count = static_cast<int>(a_ttl / 100ms) + 20;
  retry.retry_delay = 100ms;
  retry.retry_jitter = 20ms;
  auto b = b_client.acquire(resource, 10000ms, retry);
  ASSERT_FALSE(b.ec) << "B never got the lock: " << b.held.report().to_string();
  run.b_attempts = b.held.attempts();
  section(run.b, 1, b.held, b_store);
  write_section(run.b, b_store, "B");

  run.a_remaining_at_write =
      std::chrono::duration_cast<std::chrono::milliseconds>(a.held.remaining());
  write_section(run.a, a_store, "A");
  auto [ec, v] = b_store.read();
  EXPECT_FALSE(ec) << ec.message();
  run.final_token = v.token;
  run.final_value = v.value.value_or("");
  cut.heal();  // so that the clients' quit finds every server
  b_client.unlock(b.held);
}

TEST(FencingLostCounter, ImmediateRestartWithoutPersistenceHandsOutATokenAgain) {
  // The documented assumption: this test passes when the checker SEES the repeated token.
  lost_counter_run run;
  ASSERT_NO_FATAL_FAILURE(run_lost_counter({}, 10000ms, run));
  EXPECT_EQ(run.b_attempts, 1) << "B won at once, on the restarted server and the empty one";
  EXPECT_LE(run.b.token, run.a.token);
  auto f = check_fencing({run.a, run.b}, run.final_token);
  EXPECT_GE(f.repeated + f.not_increasing, 1u) << "the checker must see the token come again";
  std::printf("documented assumption shown: %s\n", f.first_problem.c_str());
  // What that costs: with equal tokens the store cannot tell the holders apart; A's write
  // after B's is accepted, and B's update is lost.
  EXPECT_EQ(run.b.token, run.a.token);
  EXPECT_EQ(run.a.write, fenced_write::accepted);
  EXPECT_EQ(run.final_value, value_for(1, "A"));
}

TEST(FencingLostCounter, ImmediateRestartWithAppendfsyncAlwaysKeepsTheCounterSoTokensGrow) {
  lost_counter_run run;
  ASSERT_NO_FATAL_FAILURE(run_lost_counter(durable(), 1500ms, run));
  EXPECT_GT(run.b_attempts, 1) << "B had to wait for A's lock to expire on the restarted server";
  EXPECT_LE(run.a_remaining_at_write.count(), 0);
  EXPECT_GT(run.b.token, run.a.token);
  auto f = check_fencing({run.a, run.b}, run.final_token);
  EXPECT_TRUE(f.ok()) << f.first_problem;
  EXPECT_EQ(run.a.write, fenced_write::refused) << "A's late write is refused";
  EXPECT_EQ(run.final_value, value_for(1, "B"));
}

}  // namespace
}  // namespace redlock::test

// Pipelined request throughput of one redis_node (one connection) against one redis-server.
//
// Keeps `--window` requests in flight (each completion issues the next) until `--count`
// requests have completed, and prints the rate. scripts/bench-node compares it with
// redis-benchmark for the same command in the same run. A plain program, not Google
// Benchmark: the figure is one long closed-loop run, not a per-iteration time.
//
//   node_throughput --port 6379 [--host 127.0.0.1] [--count 1000000] [--window 16]
//                   [--command set|evalsha] [--value xxx]
#include <asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "redlock/endpoint.hpp"
#include "redlock/error.hpp"
#include "redlock/redis_node.hpp"

namespace {

struct config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  long count = 1'000'000;
  long window = 16;
  std::string command = "set";
  std::string value = "xxx";  // redis-benchmark's default 3-byte payload
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "node_throughput: %s\nusage: node_throughput --port P [--host H] [--count N] "
               "[--window W] [--command set|evalsha] [--value V]\n",
               why);
  std::exit(2);
}

config parse(int argc, char** argv) {
  config c;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc)
        usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--host")
      c.host = next();
    else if (a == "--port")
      c.port = static_cast<std::uint16_t>(std::stoul(next()));
    else if (a == "--count")
      c.count = std::stol(next());
    else if (a == "--window")
      c.window = std::stol(next());
    else if (a == "--command")
      c.command = next();
    else if (a == "--value")
      c.value = next();
    else
      usage(("unknown argument " + a).c_str());
  }
  if (c.count <= 0 || c.window <= 0)
    usage("count and window must be positive");
  if (c.command != "set" && c.command != "evalsha")
    usage("command must be set or evalsha");
  return c;
}

// The closed loop: each completion issues one more request until `count` were issued.
struct driver {
  driver(redlock::redis_node& n, const config& c) : node(n), cfg(c), args{c.value} {}

  redlock::redis_node& node;
  const config& cfg;
  redlock::script script{"return redis.call('SET', KEYS[1], ARGV[1])"};
  std::vector<std::string> keys{"key:__rand_int__"};
  std::vector<std::string> args;
  long issued = 0;  // only touched from completions (one strand) and before the run
  std::atomic<long> completed{0};
  std::atomic<long> failed{0};
  std::string first_error;

  void issue() {
    ++issued;
    auto h = [this](std::error_code ec, redlock::reply r) {
      if (ec && failed.fetch_add(1) == 0)
        first_error = ec.message() + ": " + r.str;
      completed.fetch_add(1, std::memory_order_relaxed);
      if (issued < cfg.count)
        issue();
    };
    if (cfg.command == "set") {
      // Built without an initializer_list, which would copy every string once more.
      std::vector<std::string> argv;
      argv.reserve(3);
      argv.emplace_back("SET");
      argv.push_back(keys[0]);
      argv.push_back(cfg.value);
      node.async_exec(std::move(argv), std::move(h));
    } else {
      node.async_eval(script, keys, args, std::move(h));
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  const config cfg = parse(argc, argv);
  asio::io_context io(1);
  redlock::endpoint ep;
  ep.host = cfg.host;
  ep.port = cfg.port;
  redlock::connection_options opts;
  opts.request_timeout = std::chrono::seconds(30);
  redlock::redis_node node(io.get_executor(), ep, opts);
  driver d(node, cfg);

  // The connection keeps a read pending while idle, so the loops run handlers until their
  // condition holds rather than until the io_context runs out of work.
  auto run_until_done = [&](driver& dr) {
    for (long i = 0; i < std::min(dr.cfg.window, dr.cfg.count); ++i)
      dr.issue();
    while (dr.completed.load(std::memory_order_relaxed) < dr.cfg.count)
      io.run_one();
  };

  // Warm-up: connect, load the script, grow the buffers.
  config small = cfg;
  small.count = std::min<long>(cfg.count, 10000);
  driver warm(node, small);
  run_until_done(warm);
  if (warm.failed.load() != 0) {
    std::fprintf(stderr, "node_throughput: warm-up failed: %s\n", warm.first_error.c_str());
    return 1;
  }

  const auto start = std::chrono::steady_clock::now();
  run_until_done(d);
  const auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start);
  node.close();
  io.run();  // returns once the closed connection's operations have completed

  if (d.completed.load() != cfg.count || d.failed.load() != 0) {
    std::fprintf(stderr, "node_throughput: %ld of %ld completed, %ld failed (first: %s)\n",
                 d.completed.load(), cfg.count, d.failed.load(), d.first_error.c_str());
    return 1;
  }
  const double rate = static_cast<double>(cfg.count) / elapsed.count();
  std::printf("node_throughput: command=%s count=%ld window=%ld seconds=%.3f rate=%.0f\n",
              cfg.command.c_str(), cfg.count, cfg.window, elapsed.count(), rate);
  return 0;
}

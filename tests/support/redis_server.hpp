// A throwaway redis-server for tests: free loopback port, own temp dir, stopped by PID.
// (The seams: support/process for the process, support/certificates for TLS material,
// support/blocking_client for the admin connection.)
//
// The destructor always stops the process (SIGKILL if it does not exit on SIGTERM within
// a deadline) and removes the directory, so a failing test leaves nothing behind.
#pragma once

#include <sys/types.h>

#include <time.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "redlock/reply.hpp"
#include "support/blocking_client.hpp"
#include "support/certificates.hpp"
#include "support/process.hpp"

namespace redlock::test {

struct redis_server_options {
  bool tls = false;               ///< also listen with TLS on tls_port() (certs from test_certs())
  bool tls_auth_clients = false;  ///< require client certificates
  bool unix_socket = false;       ///< also listen on unix_path()
  std::string requirepass;        ///< password of the default user
  /// Extra config lines, e.g. "user app on >secret ~* +get +eval". Written to redis.conf.
  std::vector<std::string> extra_config;
  bool appendonly = false;               ///< AOF persistence
  std::string appendfsync = "everysec";  ///< with appendonly: "always", "everysec", "no"
  bool save_rdb = false;                 ///< RDB snapshots ("save ''" when false)
  std::string bind = "127.0.0.1";
  std::string executable = "redis-server";
  /// Prefix command, e.g. {"ip", "netns", "exec", "ns"} (fault tests), or an LD_PRELOAD env
  /// entry via `env`.
  std::vector<std::string> wrapper;
  std::vector<std::string> env;
  /// Extra command-line arguments after the config file, e.g. {"--sentinel"}.
  std::vector<std::string> extra_args;  ///< extra "NAME=value" entries for the server's environment
  std::chrono::milliseconds start_timeout{10000};
};

class redis_server {
 public:
  explicit redis_server(redis_server_options opts = {});  // throws std::runtime_error
  ~redis_server();
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  std::uint16_t port() const noexcept;
  std::uint16_t tls_port() const noexcept;  ///< 0 unless opts.tls
  const std::string& unix_path() const noexcept;
  const std::string& dir() const noexcept;
  pid_t pid() const noexcept;  ///< -1 when not running
  bool running() const noexcept;

  /// "redis://127.0.0.1:<port>" (with password if requirepass is set).
  std::string url() const;
  std::string tls_url() const;   ///< "rediss://127.0.0.1:<tls_port>"
  std::string unix_url() const;  ///< "unix://<path>"

  void kill9();  ///< SIGKILL and reap; the port stays reserved for restart()
  void stop();   ///< SIGTERM, wait (then SIGKILL) and reap
  void start();  ///< starts again on the same ports and dir (after kill9/stop)
  void restart() {
    kill9();
    start();
  }
  void pause();   ///< SIGSTOP
  void resume();  ///< SIGCONT

  /// Runs one command with a separate blocking client (hiredis), for arranging and checking
  /// state independently of the code under test. Throws std::runtime_error on I/O failure.
  reply command(const std::vector<std::string>& argv) const;

  /// Every key in every database (0 .. `databases`-1), as "<db>:<key>", read on one admin
  /// connection (the default user, with requirepass when set). For checking that nothing
  /// was written anywhere, whichever db or user a command may have run as.
  std::vector<std::string> all_keys() const;

  /// The `calls` count of `cmd` (lowercase, e.g. "eval") in INFO commandstats; 0 if absent.
  std::int64_t command_calls(const std::string& cmd) const;

 private:
  void write_config();
  void wait_ready();
  /// A connection as the default user (AUTH with requirepass when set); throws naming `what`.
  blocking_client admin_client(const std::string& what) const;
  redis_server_options opts_;
  std::uint16_t port_ = 0;
  std::uint16_t tls_port_ = 0;
  std::string dir_;
  std::string unix_path_;
  std::unique_ptr<process> process_;  // null or exited when not running
};

/// `n` servers with the same options, started in order; each stops when the vector goes.
inline std::vector<std::unique_ptr<redis_server>> start_servers(
    std::size_t n, const redis_server_options& opts = {}) {
  std::vector<std::unique_ptr<redis_server>> servers;
  for (std::size_t i = 0; i < n; ++i)
    servers.push_back(std::make_unique<redis_server>(opts));
  return servers;
}

/// Options of a Sentinel (redis-server --sentinel) that monitors `master` as "mymaster" with
/// quorum 1 and down-after-milliseconds 1000.
redis_server_options sentinel_options(const redis_server& master);

/// pred(), or false when it threw: for probes of a server a Sentinel is reconfiguring, which
/// kills the promoted replica's normal clients (CLIENT KILL TYPE normal) and may take the
/// probe's own connection with them. Such a probe is "not yet", to be asked again.
template <class Pred>
bool unless_killed(Pred pred) {
  try {
    return pred();
  } catch (const std::exception&) {
    return false;
  }
}

/// A Redis Cluster of `masters` cluster-enabled servers on free ports, joined with
/// `redis-cli --cluster create` and waited for (30 s at most) until each reports
/// cluster_state:ok. Throws std::runtime_error naming what failed.
std::vector<std::unique_ptr<redis_server>> start_cluster(std::size_t masters = 3);

/// The servers' url()s, in order.
inline std::vector<std::string> urls_of(const std::vector<std::unique_ptr<redis_server>>& servers) {
  std::vector<std::string> urls;
  for (const auto& s : servers)
    urls.push_back(s->url());
  return urls;
}

/// A free TCP port on 127.0.0.1 (bound and released; callers retry on a rare collision).
std::uint16_t free_port();

/// Waits until pred() is true or the deadline passes; returns pred()'s last value.
/// Tests wait on conditions with this instead of sleeping.
template <class Pred>
bool wait_for(Pred pred, std::chrono::milliseconds deadline = std::chrono::milliseconds(5000)) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until)
      return pred();
    struct timespec ts {
      0, 2'000'000
    };
    nanosleep(&ts, nullptr);
  }
  return true;
}

}  // namespace redlock::test

// Throwaway redis-server processes for tests: free loopback port, own temp dir, config file,
// readiness by PING. The process itself is a support/process (registry, cleanup at exit);
// the checks run over a support/blocking_client.
#include "support/redis_server.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/blocking_client.hpp"

namespace redlock::test {
namespace {

using namespace std::chrono_literals;

std::string read_tail(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return {};
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes)
    s = "..." + s.substr(s.size() - max_bytes);
  return s;
}

std::string percent_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string first_bind_address(const std::string& bind) {
  auto sp = bind.find(' ');
  std::string host = bind.substr(0, sp);
  if (!host.empty() && host[0] == '-')
    host.erase(0, 1);  // "-::1" means optional
  if (host.empty() || host == "*" || host == "0.0.0.0")
    return "127.0.0.1";
  if (host == "::" || host == "::*")
    return "::1";
  return host;
}

std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

// ---------------------------------------------------------------------------------------

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error(std::string("bind/getsockname: ") + std::strerror(e));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

redis_server::redis_server(redis_server_options opts) : opts_(std::move(opts)) {
  if (opts_.tls)
    (void)certs();
  dir_ = make_temp_dir("redlock-redis-");
  if (opts_.unix_socket)
    unix_path_ = dir_ + "/redis.sock";
  try {
    // A port taken between free_port() and the server's bind() is retried on new ports.
    for (int attempt = 0;; ++attempt) {
      port_ = free_port();
      tls_port_ = opts_.tls ? free_port() : 0;
      while (opts_.tls && tls_port_ == port_)
        tls_port_ = free_port();
      try {
        start();
        break;
      } catch (const std::runtime_error& e) {
        if (attempt >= 4 || std::string(e.what()).find("in use") == std::string::npos)
          throw;
      }
    }
  } catch (...) {
    stop();
    remove_temp_dir(dir_);
    throw;
  }
}

redis_server::~redis_server() {
  try {
    stop();
  } catch (...) {
  }
  remove_temp_dir(dir_);
}

std::uint16_t redis_server::port() const noexcept {
  return port_;
}
std::uint16_t redis_server::tls_port() const noexcept {
  return tls_port_;
}
const std::string& redis_server::unix_path() const noexcept {
  return unix_path_;
}
const std::string& redis_server::dir() const noexcept {
  return dir_;
}
pid_t redis_server::pid() const noexcept {
  return running() ? process_->pid() : -1;
}
bool redis_server::running() const noexcept {
  return process_ && !process_->exited();
}

std::string redis_server::url() const {
  std::string auth = opts_.requirepass.empty() ? "" : ":" + percent_encode(opts_.requirepass) + "@";
  return "redis://" + auth + url_host(first_bind_address(opts_.bind)) + ":" + std::to_string(port_);
}

std::string redis_server::tls_url() const {
  std::string auth = opts_.requirepass.empty() ? "" : ":" + percent_encode(opts_.requirepass) + "@";
  return "rediss://" + auth + url_host(first_bind_address(opts_.bind)) + ":" +
         std::to_string(tls_port_);
}

std::string redis_server::unix_url() const {
  std::string url = "unix://" + unix_path_;
  if (!opts_.requirepass.empty())
    url += "?password=" + percent_encode(opts_.requirepass);
  return url;
}

void redis_server::write_config() {
  std::ofstream f(dir_ + "/redis.conf");
  f << "daemonize no\n";
  f << "port " << port_ << "\n";
  f << "bind " << opts_.bind << "\n";
  f << "dir " << dir_ << "\n";
  f << "logfile " << dir_ << "/redis.log\n";
  f << "loglevel notice\n";
  f << "pidfile \"\"\n";
  if (!opts_.save_rdb)
    f << "save \"\"\n";
  f << "appendonly " << (opts_.appendonly ? "yes" : "no") << "\n";
  if (opts_.appendonly)
    f << "appendfsync " << opts_.appendfsync << "\n";
  if (!opts_.requirepass.empty())
    f << "requirepass \"" << opts_.requirepass << "\"\n";
  if (opts_.unix_socket) {
    f << "unixsocket " << unix_path_ << "\n";
    f << "unixsocketperm 700\n";
  }
  if (opts_.tls) {
    const auto& c = certs();
    f << "tls-port " << tls_port_ << "\n";
    f << "tls-cert-file " << c.server_cert << "\n";
    f << "tls-key-file " << c.server_key << "\n";
    f << "tls-ca-cert-file " << c.ca_cert << "\n";
    f << "tls-auth-clients " << (opts_.tls_auth_clients ? "yes" : "no") << "\n";
  }
  for (const auto& line : opts_.extra_config)
    f << line << "\n";
  if (!f)
    throw std::runtime_error("cannot write " + dir_ + "/redis.conf");
}

void redis_server::start() {
  if (running())
    return;
  write_config();
  std::vector<std::string> argv = opts_.wrapper;
  argv.push_back(opts_.executable);
  argv.push_back(dir_ + "/redis.conf");
  argv.insert(argv.end(), opts_.extra_args.begin(), opts_.extra_args.end());
  process_options o;
  o.env = opts_.env;
  o.out = process_options::output::file;
  o.output_file = dir_ + "/stdout.log";
  process_.reset();
  process_ = std::make_unique<process>(std::move(argv), std::move(o));
  wait_ready();
}

void redis_server::wait_ready() {
  const auto deadline = std::chrono::steady_clock::now() + opts_.start_timeout;
  const std::string host = first_bind_address(opts_.bind);
  std::string last_error = "no attempt";
  while (true) {
    if (process_->poll_exit()) {
      process_.reset();
      throw std::runtime_error("redis-server exited during startup (dir " + dir_ + "):\n" +
                               read_tail(dir_ + "/redis.log", 3000) +
                               read_tail(dir_ + "/stdout.log", 2000));
    }
    blocking_client c(host, port_, 200ms, unix_path_);
    if (auto rep = c.command({"PING"})) {
      // Any answer means it is serving, except LOADING (AOF/RDB replay still running).
      if (!(rep->is_error() && rep->str.substr(0, 7) == "LOADING"))
        return;
      last_error = rep->str;
    } else {
      last_error = c.error();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string tail =
          read_tail(dir_ + "/redis.log", 3000) + read_tail(dir_ + "/stdout.log", 2000);
      stop();
      throw std::runtime_error("redis-server not ready within " +
                               std::to_string(opts_.start_timeout.count()) +
                               " ms (last error: " + last_error + ", dir " + dir_ + "):\n" + tail);
    }
    std::this_thread::sleep_for(5ms);
  }
}

void redis_server::kill9() {
  if (process_)
    process_->kill9();
}

void redis_server::stop() {
  if (process_)
    process_->stop(5s);
}

void redis_server::pause() {
  if (running())
    process_->signal(SIGSTOP);
}

void redis_server::resume() {
  if (running())
    process_->signal(SIGCONT);
}

blocking_client redis_server::admin_client(const std::string& what) const {
  blocking_client c(first_bind_address(opts_.bind), port_, 5000ms, unix_path_);
  if (!c.connected())
    throw std::runtime_error(what + ": connect failed: " + c.error());
  if (!opts_.requirepass.empty())
    c.command_or_throw({"AUTH", opts_.requirepass}, what + ": AUTH");
  return c;
}

reply redis_server::command(const std::vector<std::string>& argv) const {
  return admin_client("redis_server::command").command_or_throw(argv, "redis_server::command");
}

std::vector<std::string> redis_server::all_keys() const {
  auto c = admin_client("redis_server::all_keys");
  auto checked = [&](const std::vector<std::string>& argv) {
    reply r = c.command_or_throw(argv, "redis_server::all_keys: " + argv[0]);
    if (r.is_error())
      throw std::runtime_error("redis_server::all_keys: " + argv[0] + ": " + r.str);
    return r;
  };
  const reply dbs = checked({"CONFIG", "GET", "databases"});
  if (dbs.elements.size() != 2)
    throw std::runtime_error("redis_server::all_keys: unexpected CONFIG GET databases reply");
  const int n = std::stoi(dbs.elements[1].str);
  std::vector<std::string> keys;
  for (int db = 0; db < n; ++db) {
    checked({"SELECT", std::to_string(db)});
    // KEYS is fine here: test servers hold a handful of keys.
    for (const auto& k : checked({"KEYS", "*"}).elements)
      keys.push_back(std::to_string(db) + ":" + k.str);
  }
  return keys;
}

std::int64_t redis_server::command_calls(const std::string& cmd) const {
  const reply r = command({"INFO", "commandstats"});
  if (r.is_error())
    throw std::runtime_error("redis_server::command_calls: " + r.str);
  const std::string key = "cmdstat_" + cmd + ":calls=";
  const auto pos = r.str.find(key);
  if (pos == std::string::npos)
    return 0;
  return std::stoll(r.str.substr(pos + key.size()));
}

redis_server_options sentinel_options(const redis_server& master) {
  redis_server_options so;
  so.extra_config = {"sentinel monitor mymaster 127.0.0.1 " + std::to_string(master.port()) + " 1",
                     "sentinel down-after-milliseconds mymaster 1000"};
  so.extra_args = {"--sentinel"};
  return so;
}

std::vector<std::unique_ptr<redis_server>> start_cluster(std::size_t masters) {
  std::vector<std::unique_ptr<redis_server>> cluster;
  for (std::size_t i = 0; i < masters; ++i) {
    redis_server_options co;
    co.extra_config = {"cluster-enabled yes", "cluster-config-file nodes.conf",
                       "cluster-port " + std::to_string(free_port())};
    cluster.push_back(std::make_unique<redis_server>(co));
  }
  std::string cmd = "timeout 60 redis-cli --cluster create";
  for (auto& s : cluster)
    cmd += " 127.0.0.1:" + std::to_string(s->port());
  cmd += " --cluster-yes > " + cluster[0]->dir() + "/create.log 2>&1";
  const int rc = std::system(cmd.c_str());
  if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
    throw std::runtime_error("start_cluster: failed: " + cmd);
  for (auto& s : cluster) {
    const bool ok = wait_for(
        [&] {
          return s->command({"CLUSTER", "INFO"}).str.find("cluster_state:ok") != std::string::npos;
        },
        std::chrono::milliseconds(30000));
    if (!ok)
      throw std::runtime_error("start_cluster: no cluster_state:ok on port " +
                               std::to_string(s->port()) + " within 30 s");
  }
  return cluster;
}

}  // namespace redlock::test

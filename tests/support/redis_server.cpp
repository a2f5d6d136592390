// Throwaway redis-server processes for tests, and the TLS material they use.
//
// Every started server is entered in a process-wide registry of PIDs. The registry is
// emptied by the destructors in the normal case; atexit() and a handler for the fatal
// signals (abort from a failed CHECK, a crash, Ctrl-C) SIGKILL whatever is left, so a
// failing test leaves no redis-server behind. Servers started from the main thread also
// get PR_SET_PDEATHSIG, which covers the test process being SIGKILLed (ctest timeout).
#include "support/redis_server.hpp"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace redlock::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------
// Registry of live child processes (async-signal-safe: fixed array of atomics).

constexpr std::size_t max_children = 512;
std::array<std::atomic<pid_t>, max_children> g_children{};
std::atomic<pid_t> g_owner{0};  // the process that registered; forked children must not act

struct saved_action {
  int sig;
  struct sigaction old;
};
std::array<saved_action, 7> g_saved{{{SIGABRT, {}},
                                     {SIGSEGV, {}},
                                     {SIGBUS, {}},
                                     {SIGFPE, {}},
                                     {SIGILL, {}},
                                     {SIGINT, {}},
                                     {SIGTERM, {}}}};

void kill_all_children() noexcept {
  if (g_owner.load() != getpid())
    return;  // e.g. a gtest death-test child
  for (auto& slot : g_children) {
    pid_t p = slot.exchange(0);
    if (p > 0) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
    }
  }
}

void on_fatal_signal(int sig) {
  int saved_errno = errno;
  kill_all_children();
  for (auto& s : g_saved) {
    if (s.sig == sig)
      sigaction(sig, &s.old, nullptr);
  }
  errno = saved_errno;
  // Synchronous faults re-fault on return and reach the previous handler (e.g. ASan's)
  // with the original siginfo; asynchronous ones are re-raised.
  if (sig != SIGSEGV && sig != SIGBUS && sig != SIGFPE && sig != SIGILL)
    raise(sig);
}

// Directories of servers still alive at exit (removed by atexit, not by signal handlers).
std::mutex g_dirs_mutex;
std::set<std::string>& live_dirs() {
  static auto* dirs = new std::set<std::string>();  // leaked on purpose: used at exit
  return *dirs;
}

void at_exit_cleanup() {
  kill_all_children();
  if (g_owner.load() != getpid())
    return;
  std::lock_guard lock(g_dirs_mutex);
  for (const auto& d : live_dirs()) {
    std::error_code ec;
    fs::remove_all(d, ec);
  }
  live_dirs().clear();
}

void install_cleanup_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_owner.store(getpid());
    std::atexit(at_exit_cleanup);
    for (auto& s : g_saved) {
      struct sigaction sa {};
      sa.sa_handler = on_fatal_signal;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = 0;
      sigaction(s.sig, &sa, &s.old);
    }
  });
}

void register_child(pid_t p) {
  for (auto& slot : g_children) {
    pid_t expected = 0;
    if (slot.compare_exchange_strong(expected, p))
      return;
  }
  // More than max_children live servers: not expected in tests. Still tracked by the object.
}

void unregister_child(pid_t p) {
  for (auto& slot : g_children) {
    pid_t expected = p;
    if (slot.compare_exchange_strong(expected, 0))
      return;
  }
}

// ---------------------------------------------------------------------------------------
// Process helpers.

std::string find_executable(const std::string& name) {
  if (name.find('/') != std::string::npos)
    return name;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::stringstream ss(p);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty())
      dir = ".";
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  throw std::runtime_error("executable not found in PATH: " + name);
}

struct cstr_array {
  std::vector<std::string> storage;
  std::vector<char*> ptrs;
  explicit cstr_array(std::vector<std::string> v) : storage(std::move(v)) {
    for (auto& s : storage)
      ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
  }
};

std::vector<std::string> make_env(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  auto overridden = [&](std::string_view entry) {
    auto eq = entry.find('=');
    std::string_view name = entry.substr(0, eq);
    for (const auto& e : extra) {
      if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=')
        return true;
    }
    return false;
  };
  for (char** e = environ; e && *e; ++e) {
    if (!overridden(*e))
      out.emplace_back(*e);
  }
  for (const auto& e : extra)
    out.push_back(e);
  return out;
}

// fork + execve with everything prepared before the fork (only async-signal-safe calls in
// the child). stdout/stderr go to `out_path`.
pid_t spawn(const std::vector<std::string>& argv_in, const std::vector<std::string>& env_extra,
            const std::string& out_path, bool die_with_parent) {
  std::vector<std::string> argv = argv_in;
  argv[0] = find_executable(argv[0]);
  cstr_array args(argv);
  cstr_array envp(make_env(env_extra));
  int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out_fd < 0)
    throw std::runtime_error("cannot open " + out_path + ": " + std::strerror(errno));
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = getpid();

  pid_t pid = fork();
  if (pid == 0) {
    if (die_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        _exit(127);
    }
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    if (null_fd >= 0)
      dup2(null_fd, 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    // Do not leak the test's sockets and files into the server.
    syscall(SYS_close_range, 3U, ~0U, 0U);
    execve(args.ptrs[0], args.ptrs.data(), envp.ptrs.data());
    _exit(127);
  }
  int saved = errno;
  ::close(out_fd);
  if (null_fd >= 0)
    ::close(null_fd);
  if (pid < 0)
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(saved));
  return pid;
}

// Runs a helper program to completion (openssl). Throws with its output on failure.
void run_checked(const std::vector<std::string>& argv, const std::string& log_path) {
  pid_t pid = spawn(argv, {}, log_path, false);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::ifstream in(log_path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string cmd;
    for (const auto& a : argv)
      cmd += a + " ";
    throw std::runtime_error("command failed: " + cmd + "\n" + ss.str());
  }
}

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

reply convert(const redisReply* r) {
  reply out;
  if (!r)
    return out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.kind = reply::type::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.kind = reply::type::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.kind = reply::type::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.kind = reply::type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.kind = reply::type::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i)
        out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.kind = reply::type::nil;
      break;
  }
  return out;
}

struct context_deleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

struct reply_deleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// Connects with hiredis over the Unix socket when there is one (works even when the server
// runs in another network namespace), else over TCP. Returns null with `err` on failure.
context_ptr connect_blocking(const std::string& host, std::uint16_t port,
                             const std::string& unix_path, std::chrono::milliseconds timeout,
                             std::string& err) {
  timeval tv = to_timeval(timeout);
  redisContext* c = unix_path.empty() ? redisConnectWithTimeout(host.c_str(), port, tv)
                                      : redisConnectUnixWithTimeout(unix_path.c_str(), tv);
  if (!c) {
    err = "cannot allocate redis context";
    return nullptr;
  }
  context_ptr ctx(c);
  if (ctx->err) {
    err = ctx->errstr;
    return nullptr;
  }
  redisSetTimeout(ctx.get(), tv);
  return ctx;
}

reply_ptr command_argv(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  return reply_ptr(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data())));
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

const test_certs& certs() {
  static const test_certs c = [] {
    install_cleanup_once();
    char tmpl[] = "/tmp/redlock-certs-XXXXXX";
    if (!mkdtemp(tmpl))
      throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    test_certs t;
    t.dir = tmpl;
    {
      std::lock_guard lock(g_dirs_mutex);
      live_dirs().insert(t.dir);  // removed at exit
    }
    const std::string d = t.dir + "/";
    const std::string log = d + "openssl.log";
    t.ca_cert = d + "ca.crt";
    t.server_cert = d + "server.crt";
    t.server_key = d + "server.key";
    t.client_cert = d + "client.crt";
    t.client_key = d + "client.key";
    t.other_ca_cert = d + "other-ca.crt";
    t.ca_dir = d + "ca-dir";

    // EC keys: generating them is fast, unlike RSA.
    auto make_ca = [&](const std::string& cert, const std::string& key, const std::string& cn) {
      run_checked({"openssl",
                   "req",
                   "-x509",
                   "-newkey",
                   "ec",
                   "-pkeyopt",
                   "ec_paramgen_curve:prime256v1",
                   "-nodes",
                   "-keyout",
                   key,
                   "-out",
                   cert,
                   "-days",
                   "3650",
                   "-subj",
                   "/CN=" + cn,
                   "-addext",
                   "basicConstraints=critical,CA:TRUE",
                   "-addext",
                   "keyUsage=critical,keyCertSign,cRLSign"},
                  log);
    };
    make_ca(t.ca_cert, d + "ca.key", "redlock test CA");
    make_ca(t.other_ca_cert, d + "other-ca.key", "redlock unrelated CA");

    auto make_leaf = [&](const std::string& name, const std::string& cn, const std::string& ext) {
      const std::string ext_path = d + name + ".ext";
      {
        std::ofstream e(ext_path);
        e << ext;
      }
      run_checked(
          {"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-keyout", d + name + ".key", "-out", d + name + ".csr", "-subj", "/CN=" + cn},
          log);
      run_checked({"openssl", "x509", "-req", "-in", d + name + ".csr", "-CA", t.ca_cert, "-CAkey",
                   d + "ca.key", "-CAcreateserial", "-out", d + name + ".crt", "-days", "3650",
                   "-extfile", ext_path},
                  log);
    };
    make_leaf("server", "localhost",
              "basicConstraints=CA:FALSE\n"
              "keyUsage=critical,digitalSignature,keyEncipherment\n"
              "extendedKeyUsage=serverAuth,clientAuth\n"
              "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n");
    make_leaf("client", "redlock test client",
              "basicConstraints=CA:FALSE\n"
              "keyUsage=critical,digitalSignature,keyEncipherment\n"
              "extendedKeyUsage=clientAuth\n");

    // A c_rehash-style directory holding only the test CA.
    fs::create_directories(t.ca_dir);
    fs::copy_file(t.ca_cert, t.ca_dir + "/ca.crt");
    run_checked({"openssl", "rehash", t.ca_dir}, log);
    return t;
  }();
  return c;
}

redis_server::redis_server(redis_server_options opts) : opts_(std::move(opts)) {
  install_cleanup_once();
  if (opts_.tls)
    (void)certs();
  char tmpl[] = "/tmp/redlock-redis-XXXXXX";
  if (!mkdtemp(tmpl))
    throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  dir_ = tmpl;
  {
    std::lock_guard lock(g_dirs_mutex);
    live_dirs().insert(dir_);
  }
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
    std::error_code ec;
    fs::remove_all(dir_, ec);
    std::lock_guard lock(g_dirs_mutex);
    live_dirs().erase(dir_);
    throw;
  }
}

redis_server::~redis_server() {
  try {
    stop();
  } catch (...) {
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
  std::lock_guard lock(g_dirs_mutex);
  live_dirs().erase(dir_);
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
  return pid_;
}
bool redis_server::running() const noexcept {
  return pid_ > 0;
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
  if (pid_ > 0)
    return;
  write_config();
  std::vector<std::string> argv = opts_.wrapper;
  argv.push_back(opts_.executable);
  argv.push_back(dir_ + "/redis.conf");
  argv.insert(argv.end(), opts_.extra_args.begin(), opts_.extra_args.end());
  // PDEATHSIG fires when the *thread* that forked exits, so only use it from the main thread.
  bool main_thread = static_cast<pid_t>(syscall(SYS_gettid)) == getpid();
  {
    // Ctrl-C or SIGTERM between fork() and register_child() would leak the server, so
    // they are held back until the PID is registered (the child unblocks everything).
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    try {
      pid_ = spawn(argv, opts_.env, dir_ + "/stdout.log", main_thread);
    } catch (...) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      throw;
    }
    register_child(pid_);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  wait_ready();
}

void redis_server::wait_ready() {
  const auto deadline = std::chrono::steady_clock::now() + opts_.start_timeout;
  const std::string host = first_bind_address(opts_.bind);
  std::string last_error = "no attempt";
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      unregister_child(pid_);
      pid_ = -1;
      throw std::runtime_error("redis-server exited during startup (dir " + dir_ + "):\n" +
                               read_tail(dir_ + "/redis.log", 3000) +
                               read_tail(dir_ + "/stdout.log", 2000));
    }
    std::string err;
    auto ctx = connect_blocking(host, port_, unix_path_, 200ms, err);
    if (ctx) {
      auto rep = command_argv(ctx.get(), {"PING"});
      if (rep) {
        // Any answer means it is serving, except LOADING (AOF/RDB replay still running).
        std::string_view s(rep->str ? rep->str : "", rep->str ? rep->len : 0);
        if (!(rep->type == REDIS_REPLY_ERROR && s.substr(0, 7) == "LOADING"))
          return;
        last_error = std::string(s);
      } else {
        last_error = ctx->errstr;
      }
    } else {
      last_error = err;
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
  if (pid_ <= 0)
    return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  unregister_child(pid_);
  pid_ = -1;
}

void redis_server::stop() {
  if (pid_ <= 0)
    return;
  kill(pid_, SIGTERM);
  kill(pid_, SIGCONT);  // a paused server must run to handle SIGTERM
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t r = waitpid(pid_, nullptr, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      unregister_child(pid_);
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(2ms);
  }
  kill9();
}

void redis_server::pause() {
  if (pid_ > 0)
    kill(pid_, SIGSTOP);
}

void redis_server::resume() {
  if (pid_ > 0)
    kill(pid_, SIGCONT);
}

reply redis_server::command(const std::vector<std::string>& argv) const {
  std::string err;
  auto ctx = connect_blocking(first_bind_address(opts_.bind), port_, unix_path_, 5000ms, err);
  if (!ctx)
    throw std::runtime_error("redis_server::command: connect failed: " + err);
  if (!opts_.requirepass.empty()) {
    auto auth = command_argv(ctx.get(), {"AUTH", opts_.requirepass});
    if (!auth)
      throw std::runtime_error(std::string("redis_server::command: AUTH: ") + ctx->errstr);
  }
  auto rep = command_argv(ctx.get(), argv);
  if (!rep)
    throw std::runtime_error(std::string("redis_server::command: ") + ctx->errstr);
  return convert(rep.get());
}

std::vector<std::string> redis_server::all_keys() const {
  std::string err;
  auto ctx = connect_blocking(first_bind_address(opts_.bind), port_, unix_path_, 5000ms, err);
  if (!ctx)
    throw std::runtime_error("redis_server::all_keys: connect failed: " + err);
  auto checked = [&](const std::vector<std::string>& argv) {
    auto rep = command_argv(ctx.get(), argv);
    if (!rep)
      throw std::runtime_error("redis_server::all_keys: " + argv[0] + ": " + ctx->errstr);
    reply r = convert(rep.get());
    if (r.is_error())
      throw std::runtime_error("redis_server::all_keys: " + argv[0] + ": " + r.str);
    return r;
  };
  if (!opts_.requirepass.empty())
    checked({"AUTH", opts_.requirepass});
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

}  // namespace redlock::test

#include "common.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <set>

#include "duration.hpp"
#include "json_report.hpp"
#include "output.hpp"
#include "redlock/error.hpp"
#include "redlock/make_node.hpp"
#include "redlock/redis_node.hpp"
#include "redlock/sentinel_node.hpp"
#include "server_list.hpp"

namespace redlock::cli {

namespace {

constexpr const char* default_server = "redis://127.0.0.1:6379";

/// Throws a usage error unless `path` is a readable file (or, with `dir`, a directory):
/// a missing CA file would otherwise surface as a TLS failure on every server (exit 69).
void check_tls_path(const std::string& path, const std::string& what, bool dir) {
  if (path.empty())
    return;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw usage_error(what + " '" + printable(path) + "': " + std::strerror(errno));
  if (dir ? !S_ISDIR(st.st_mode) : S_ISDIR(st.st_mode)) {
    throw usage_error(what + " '" + printable(path) + "' is " +
                      (dir ? "not a directory" : "a directory, not a file"));
  }
  if (::access(path.c_str(), R_OK) != 0)
    throw usage_error(what + " '" + printable(path) + "': " + std::strerror(errno));
}

}  // namespace

void check_resources(const std::vector<std::string>& resources) {
  for (std::size_t i = 0; i < resources.size(); ++i) {
    if (resources[i].empty()) {
      throw usage_error("RESOURCE #" + std::to_string(i + 1) +
                        " is empty (an unset shell variable?): give a resource name");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (resources[j] == resources[i]) {
        throw usage_error("RESOURCE '" + printable(resources[i]) + "' is given twice (#" +
                          std::to_string(j + 1) + " and #" + std::to_string(i + 1) + ")");
      }
    }
  }
}

bool resolve_wakeup(bool no_wakeup_flag) {
  if (no_wakeup_flag)
    return false;
  const char* env = std::getenv("REDLOCK_WAKEUP");
  if (env == nullptr || std::strcmp(env, "") == 0 || std::strcmp(env, "1") == 0)
    return true;
  if (std::strcmp(env, "0") == 0)
    return false;
  throw usage_error("REDLOCK_WAKEUP must be 1 (wake-up on) or 0 (off), not '" + printable(env) +
                    "'");
}

bool resolve_fair(bool flag) {
  if (flag)
    return true;
  const char* env = std::getenv("REDLOCK_FAIR");
  if (env == nullptr || std::strcmp(env, "") == 0 || std::strcmp(env, "0") == 0)
    return false;
  if (std::strcmp(env, "1") == 0)
    return true;
  throw usage_error("REDLOCK_FAIR must be 1 (fair mode on) or 0 (off), not '" + printable(env) +
                    "'");
}

std::string fair_source(bool flag) {
  return flag ? "--fair" : "REDLOCK_FAIR=1";
}

bool resolve_fencing(bool flag) {
  if (flag)
    return true;
  const char* env = std::getenv("REDLOCK_FENCING");
  if (env == nullptr || std::strcmp(env, "") == 0 || std::strcmp(env, "0") == 0)
    return false;
  if (std::strcmp(env, "1") == 0)
    return true;
  throw usage_error("REDLOCK_FENCING must be 1 (fencing on) or 0 (off), not '" + printable(env) +
                    "'");
}

std::uint64_t fencing_token_option(const std::string& text) {
  std::uint64_t token = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, token);
  if (text.empty() || ec != std::errc{} || ptr != end || token == 0) {
    throw usage_error("--fencing-token '" + printable(text) +
                      "': give the token printed by `acquire --fencing` (an integer from 1 to "
                      "18446744073709551615)");
  }
  return token;
}

std::chrono::milliseconds duration_option(const std::string& name, const std::string& text) {
  std::string why;
  auto d = parse_duration(text, why);
  if (!d)
    throw usage_error(name + ": " + why);
  return *d;
}

std::string resolve_secret(const std::string& option, const std::string& file, const char* variable,
                           const std::string& what_it_is) {
  // Taken out of the environment even when the file wins: run's command must never see it.
  std::string from_env;
  if (char* env = std::getenv(variable); env != nullptr) {
    from_env = env;
    // getenv's pointer is into the environment block the kernel shows as
    // /proc/<pid>/environ: blank it there, then drop the variable for children.
    std::memset(env, '*', from_env.size());
    ::unsetenv(variable);
  }
  if (file.empty())
    return from_env;
  const std::string what = option + " '" + printable(file) + "'";
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0)
    throw usage_error(what + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    throw usage_error(what + " is not a regular file");
  std::FILE* f = std::fopen(file.c_str(), "r");
  if (f == nullptr)
    throw usage_error(what + ": " + std::strerror(errno));
  std::string line;
  for (int ch = std::fgetc(f); ch != EOF && ch != '\n'; ch = std::fgetc(f))
    line.push_back(static_cast<char>(ch));
  const bool read_error = std::ferror(f) != 0;
  std::fclose(f);
  if (read_error)
    throw usage_error(what + ": read error");
  if (!line.empty() && line.back() == '\r')
    line.pop_back();
  if (line.empty())
    throw usage_error(what + ": the first line is empty (no " + what_it_is + ")");
  if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    std::fprintf(stderr,
                 "redlock: warning: %s can be read by other users (mode %03o); "
                 "chmod 600 it\n",
                 what.c_str(), static_cast<unsigned>(st.st_mode & 0777));
  }
  return line;
}

config resolve(const global_options& g) {
  config c;
  c.verbose = g.verbose;
  c.password = resolve_secret("--password-file", g.password_file, "REDLOCK_PASSWORD", "password");
  c.tls_flags.key_passphrase =
      resolve_secret("--tls-key-passphrase-file", g.tls_key_passphrase_file,
                     "REDLOCK_TLS_KEY_PASSPHRASE", "passphrase");

  // --server takes one URL or a comma list, like REDLOCK_SERVERS (split the same way).
  std::vector<std::string> urls;
  for (const auto& given : g.servers) {
    const auto listed = split_server_list(given);
    if (listed.empty())
      throw usage_error("--server '" + printable(given) + "' lists no server");
    urls.insert(urls.end(), listed.begin(), listed.end());
  }
  std::string source = "--server";
  if (urls.empty()) {
    if (const char* env = std::getenv("REDLOCK_SERVERS"); env != nullptr) {
      urls = split_server_list(env);
      source = "REDLOCK_SERVERS";
      if (urls.empty())
        throw usage_error("REDLOCK_SERVERS is set but lists no server");
    } else {
      urls.emplace_back(default_server);
      source = "default";
    }
  }

  const bool tls_files = !g.tls_ca.empty() || !g.tls_ca_dir.empty() || !g.tls_cert.empty() ||
                         !g.tls_key.empty() || !g.tls_server_name.empty() || g.tls_insecure ||
                         !g.tls_key_passphrase_file.empty();
  if (g.tls_cert.empty() != g.tls_key.empty())
    throw usage_error("--tls-cert and --tls-key must be given together");

  bool any_tls = false;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    try {
      // Validates the URL (plain, Sentinel or Cluster); the message never quotes a password.
      const std::string shown = redacted_url(urls[i]);
      any_tls = any_tls || g.tls || shown.rfind("rediss", 0) == 0;
    } catch (const lock_error& e) {
      // The message names the server by position: the URL itself may carry a password.
      throw usage_error("server #" + std::to_string(i + 1) + " (" + source +
                        "): invalid URL: " + e.what());
    }
    c.urls.push_back(urls[i]);
  }
  c.force_tls = g.tls;
  c.tls_flags.ca_file = g.tls_ca;
  c.tls_flags.ca_dir = g.tls_ca_dir;
  c.tls_flags.cert_file = g.tls_cert;
  c.tls_flags.key_file = g.tls_key;
  c.tls_flags.server_name = g.tls_server_name;
  c.tls_flags.insecure_skip_verify = g.tls_insecure;
  if (tls_files && !any_tls)
    throw usage_error("TLS options given but no server uses TLS (use rediss:// URLs or --tls)");
  check_tls_path(g.tls_ca, "--tls-ca", false);
  check_tls_path(g.tls_ca_dir, "--tls-ca-dir", true);
  check_tls_path(g.tls_cert, "--tls-cert", false);
  check_tls_path(g.tls_key, "--tls-key", false);

  if (g.drift)
    c.settings.drift_factor = *g.drift;
  c.settings.wakeup = resolve_wakeup(g.no_wakeup);
  c.settings.fair = resolve_fair(g.fair);
  if (!g.retry_delay.empty())
    c.settings.retry_delay = duration_option("--retry-delay", g.retry_delay);
  if (!g.retry_jitter.empty())
    c.settings.retry_jitter = duration_option("--retry-jitter", g.retry_jitter);
  if (!g.request_timeout.empty())
    c.settings.request_timeout = duration_option("--request-timeout", g.request_timeout);
  if (!g.connect_timeout.empty())
    c.settings.connect_timeout = duration_option("--connect-timeout", g.connect_timeout);
  if (c.settings.drift_factor < 0 || c.settings.drift_factor >= 1)
    throw usage_error("--drift must be in [0, 1)");
  if (c.settings.request_timeout.count() <= 0)
    throw usage_error("--request-timeout must be greater than 0");
  if (c.settings.connect_timeout.count() <= 0)
    throw usage_error("--connect-timeout must be greater than 0");
  // The cleanup redlock waits for before exiting (see session): long enough for a few
  // retried releases at the request timeout, at least the library's default.
  c.settings.quit_timeout =
      std::max<std::chrono::milliseconds>(std::chrono::seconds(2), 5 * c.settings.request_timeout);
  return c;
}

std::unique_ptr<lock_manager> make_manager(asio::any_io_executor ex, const config& c) {
  connection_options co;
  co.connect_timeout = c.settings.connect_timeout;
  co.request_timeout = c.settings.request_timeout;
  // Flags override the URL's TLS settings on every endpoint that uses TLS.
  std::size_t position = 0;  // the server being built, for messages
  auto adjust = [&c, &position](endpoint& ep) {
    if (!c.password.empty() && ep.password.empty())
      ep.password = c.password;
    if (c.force_tls)
      ep.tls.enabled = true;
    if (!ep.tls.enabled)
      return;
    const tls_options& f = c.tls_flags;
    if (!f.ca_file.empty())
      ep.tls.ca_file = f.ca_file;
    if (!f.ca_dir.empty())
      ep.tls.ca_dir = f.ca_dir;
    if (!f.cert_file.empty())
      ep.tls.cert_file = f.cert_file;
    if (!f.key_file.empty())
      ep.tls.key_file = f.key_file;
    if (!f.key_passphrase.empty())
      ep.tls.key_passphrase = f.key_passphrase;
    if (!f.server_name.empty())
      ep.tls.server_name = f.server_name;
    if (f.insecure_skip_verify)
      ep.tls.insecure_skip_verify = true;
    // Files named in the URL (the flags were checked already): a usage error too.
    const std::string where = "server #" + std::to_string(position) + ": TLS ";
    if (f.ca_file.empty())
      check_tls_path(ep.tls.ca_file, where + "CA file", false);
    if (f.ca_dir.empty())
      check_tls_path(ep.tls.ca_dir, where + "CA directory", true);
    if (f.cert_file.empty())
      check_tls_path(ep.tls.cert_file, where + "certificate", false);
    if (f.key_file.empty())
      check_tls_path(ep.tls.key_file, where + "key", false);
  };
  std::vector<std::shared_ptr<node>> nodes;
  std::set<std::string> servers;
  nodes.reserve(c.urls.size());
  for (const auto& url : c.urls) {
    ++position;
    // One server must never vote twice (the library refuses duplicate node ids too, but
    // two URLs of one server can differ in db or user).
    if (!servers.insert(server_identity(url)).second)
      throw usage_error("the same server is listed twice: " + redacted_url(url));
    if (is_sentinel_url(url)) {
      // As make_node builds it, but the default password goes to the master only: sentinels
      // usually have none (or their own, sentinel_password=), and AUTH to a sentinel without
      // one fails.
      sentinel_options cfg = parse_sentinel_url(url);
      cfg.options = co;
      for (auto& s : cfg.sentinels) {
        const std::string own = s.password;
        adjust(s);
        s.password = own;
      }
      adjust(cfg.master);
      nodes.push_back(std::make_shared<sentinel_node>(ex, std::move(cfg)));
      continue;
    }
    nodes.push_back(make_node(ex, url, co, adjust));
  }
  try {
    return std::make_unique<lock_manager>(ex, std::move(nodes), c.settings);
  } catch (const lock_error& e) {
    // Duplicates and bad settings: the library's message says which; it has no secrets.
    throw usage_error(e.what());
  }
}

int exit_code_for(std::error_code ec) {
  if (ec == errc::resource_locked)
    return exit_not_acquired;
  if (ec == errc::lock_lost || ec == errc::lock_expired)
    return exit_lost;
  // Two --server entries reaching one deployment: a mistake in the arguments.
  if (ec == errc::invalid_argument || ec == errc::duplicate_deployment)
    return exit_usage;
  if (ec == errc::quorum_unreachable || ec == errc::validity_exhausted ||
      ec.category() == category())
    return exit_unavailable;
  return exit_software;
}

std::string indent_report(const report& r) {
  std::string text = r.to_string();
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    if (nl == std::string::npos)
      nl = text.size();
    if (nl > pos)
      out += "  " + text.substr(pos, nl - pos) + "\n";
    pos = nl + 1;
  }
  return out;
}

std::string failure_text(const std::string& what, std::error_code ec, const report& r) {
  if (ec == errc::duplicate_deployment)
    return what + ": two servers are the same deployment" +
           (r.detail.empty() ? std::string() : ": " + printable(r.detail));
  std::string out = what + ": " + ec.message();
  if (!r.detail.empty())
    out += " (" + printable(r.detail) + ")";
  return out;
}

std::size_t unconfirmed_nodes(const report& r) {
  return r.count(vote::error) + r.count(vote::timeout) + r.count(vote::pending);
}

bool saw_wrong_type(const report& r) {
  for (const auto& n : r.nodes) {
    if (n.message.find("WRONGTYPE") != std::string::npos)
      return true;
  }
  return false;
}

void print_failure(const std::string& what, const report& r, bool with_report) {
  // A warning does not fail the invocation: only failures become the JSON error.
  if (what.rfind("warning:", 0) != 0)
    invocation().fail(what);
  std::string out = "redlock: " + what + "\n";
  if (with_report && !r.nodes.empty())
    out += indent_report(r);
  std::fputs(out.c_str(), stderr);
}

std::string name_of(const std::vector<std::string>& resources) {
  if (resources.size() == 1)
    return "'" + printable(resources[0]) + "'";
  return std::to_string(resources.size()) + " resources";
}

std::string describe_acquire_failure(std::error_code ec, const std::vector<std::string>& resources,
                                     int attempts, const report& r) {
  if (ec == errc::invalid_argument || ec == errc::duplicate_deployment)
    return failure_text("not acquired", ec, r);
  const std::string tries =
      " (" + std::to_string(attempts) + (attempts == 1 ? " attempt)" : " attempts)");
  if (ec == errc::resource_locked)
    return "not acquired: " + name_of(resources) + " is held by another owner" + tries;
  if (ec == errc::quorum_unreachable)
    return "not acquired: too many servers unreachable or failing for a quorum" + tries;
  if (ec == errc::validity_exhausted)
    return "not acquired: servers answered too slowly for the TTL" + tries;
  return failure_text("not acquired", ec, r);
}

}  // namespace redlock::cli

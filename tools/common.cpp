#include "common.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "duration.hpp"
#include "redlock/error.hpp"
#include "redlock/redis_node.hpp"

namespace redlock::cli {

namespace {

constexpr const char* default_server = "redis://127.0.0.1:6379";

std::vector<std::string> split_servers(const std::string& list) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(list);
  while (std::getline(in, item, ',')) {
    // Spaces around commas are a common way to write lists; URLs never contain them.
    const auto b = item.find_first_not_of(" \t");
    const auto e = item.find_last_not_of(" \t");
    if (b == std::string::npos)
      continue;
    out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

}  // namespace

std::chrono::milliseconds duration_option(const std::string& name, const std::string& text) {
  std::string why;
  auto d = parse_duration(text, why);
  if (!d)
    throw usage_error(name + ": " + why);
  return *d;
}

config resolve(const global_options& g) {
  config c;
  c.verbose = g.verbose;

  std::vector<std::string> urls = g.servers;
  std::string source = "--server";
  if (urls.empty()) {
    if (const char* env = std::getenv("REDLOCK_SERVERS"); env != nullptr) {
      urls = split_servers(env);
      source = "REDLOCK_SERVERS";
      if (urls.empty())
        throw usage_error("REDLOCK_SERVERS is set but lists no server");
    } else {
      urls.emplace_back(default_server);
      source = "default";
    }
  }

  const bool tls_files = !g.tls_ca.empty() || !g.tls_ca_dir.empty() || !g.tls_cert.empty() ||
                         !g.tls_key.empty() || !g.tls_server_name.empty() || g.tls_insecure;
  if (g.tls_cert.empty() != g.tls_key.empty())
    throw usage_error("--tls-cert and --tls-key must be given together");

  bool any_tls = false;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    std::error_code ec;
    std::string why;
    // The message names the server by position: the URL itself may carry a password.
    endpoint ep = parse_endpoint(urls[i], ec, why);
    if (ec) {
      throw usage_error("server #" + std::to_string(i + 1) + " (" + source +
                        "): invalid URL: " + why);
    }
    if (g.tls)
      ep.tls.enabled = true;
    if (ep.tls.enabled) {
      any_tls = true;
      if (!g.tls_ca.empty())
        ep.tls.ca_file = g.tls_ca;
      if (!g.tls_ca_dir.empty())
        ep.tls.ca_dir = g.tls_ca_dir;
      if (!g.tls_cert.empty())
        ep.tls.cert_file = g.tls_cert;
      if (!g.tls_key.empty())
        ep.tls.key_file = g.tls_key;
      if (!g.tls_server_name.empty())
        ep.tls.server_name = g.tls_server_name;
      if (g.tls_insecure)
        ep.tls.insecure_skip_verify = true;
    }
    c.endpoints.push_back(std::move(ep));
  }
  if (tls_files && !any_tls)
    throw usage_error("TLS options given but no server uses TLS (use rediss:// URLs or --tls)");

  if (g.drift)
    c.settings.drift_factor = *g.drift;
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
  return c;
}

std::unique_ptr<lock_manager> make_manager(asio::any_io_executor ex, const config& c) {
  connection_options co;
  co.connect_timeout = c.settings.connect_timeout;
  co.request_timeout = c.settings.request_timeout;
  std::vector<std::shared_ptr<node>> nodes;
  nodes.reserve(c.endpoints.size());
  for (const auto& ep : c.endpoints)
    nodes.push_back(std::make_shared<redis_node>(ex, ep, co));
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
  if (ec == errc::invalid_argument)
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

void print_failure(const std::string& what, const report& r, bool with_report) {
  std::string out = "redlock: " + what + "\n";
  if (with_report && !r.nodes.empty())
    out += indent_report(r);
  std::fputs(out.c_str(), stderr);
}

}  // namespace redlock::cli

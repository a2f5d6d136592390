// lock_manager from URLs. Kept apart from lock_manager.cpp so that programs which pass their
// own nodes do not link the built-in Redis node.
#include <algorithm>
#include <cctype>
#include <set>

#include "redlock/endpoint.hpp"
#include "redlock/error.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/redis_node.hpp"

namespace redlock {

namespace {

// Two URLs name the same server when they reach the same host:port (or socket path),
// whatever the db, user or password: one server must never vote twice.
std::string server_key(const endpoint& ep) {
  if (ep.kind == endpoint::transport::unix_socket)
    return "unix:" + ep.path;
  std::string host = ep.host;
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return "tcp:[" + host + "]:" + std::to_string(ep.port);
}

std::vector<std::shared_ptr<node>> nodes_from_urls(const asio::any_io_executor& ex,
                                                   const std::vector<std::string>& urls,
                                                   const settings& s) {
  std::vector<endpoint> endpoints;
  endpoints.reserve(urls.size());
  std::set<std::string> servers;
  for (const auto& url : urls) {
    auto ep = parse_endpoint(url);  // throws lock_error(invalid_url) naming the problem
    if (!servers.insert(server_key(ep)).second) {
      throw lock_error(make_error_code(errc::invalid_argument),
                       "the same server is listed twice: " + ep.to_string());
    }
    endpoints.push_back(std::move(ep));
  }
  connection_options opts;
  opts.connect_timeout = s.connect_timeout;
  opts.request_timeout = s.request_timeout;
  std::vector<std::shared_ptr<node>> nodes;
  nodes.reserve(endpoints.size());
  for (auto& ep : endpoints) {
    nodes.push_back(std::make_shared<redis_node>(ex, std::move(ep), opts));
  }
  return nodes;
}

}  // namespace

lock_manager::lock_manager(executor_type ex, const std::vector<std::string>& urls, settings s)
    : lock_manager(ex, nodes_from_urls(ex, urls, s), s) {}

}  // namespace redlock

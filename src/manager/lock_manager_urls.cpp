// lock_manager from URLs. Kept apart from lock_manager.cpp so that programs which pass their
// own nodes do not link the built-in nodes.
#include <set>

#include "redlock/error.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/make_node.hpp"

namespace redlock {

namespace {

std::vector<std::shared_ptr<node>> nodes_from_urls(const asio::any_io_executor& ex,
                                                   const std::vector<std::string>& urls,
                                                   const manager_options& s) {
  // Every URL is checked (and duplicates refused) before any node is created.
  std::set<std::string> servers;
  for (const auto& url : urls) {
    // One server must never vote twice, whatever the db, user or password.
    if (!servers.insert(server_identity(url)).second) {
      throw lock_error(make_error_code(errc::invalid_argument),
                       "the same server is listed twice: " + redacted_url(url));
    }
  }
  connection_options opts;
  opts.connect_timeout = s.connect_timeout;
  opts.request_timeout = s.request_timeout;
  std::vector<std::shared_ptr<node>> nodes;
  nodes.reserve(urls.size());
  for (const auto& url : urls)
    nodes.push_back(make_node(ex, url, opts));
  return nodes;
}

}  // namespace

lock_manager::lock_manager(executor_type ex, const std::vector<std::string>& urls,
                           manager_options s)
    : lock_manager(ex, nodes_from_urls(ex, urls, s), s) {}

}  // namespace redlock

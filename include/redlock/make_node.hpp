// One entry point from a URL to a node: a plain server, a Sentinel or a Cluster deployment.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <asio/any_io_executor.hpp>

#include "redlock/endpoint.hpp"
#include "redlock/node.hpp"
#include "redlock/redis_node.hpp"

namespace redlock {

/// Builds the node a URL names: `redis://`, `rediss://` and `unix://` give a redis_node,
/// `redis+sentinel://` (and `rediss+`) a sentinel_node, `redis+cluster://` (and `rediss+`) a
/// cluster_node. `adjust`, when set, is applied to every endpoint the node will connect to
/// (e.g. to add TLS files given outside the URL). Throws lock_error(errc::invalid_url) with a
/// message that never contains a password.
std::shared_ptr<node> make_node(asio::any_io_executor ex, std::string_view url,
                                const connection_options& opts,
                                const std::function<void(endpoint&)>& adjust = {});

/// A key that is equal for two URLs exactly when they reach the same server or deployment,
/// whatever the db, user or password: the manager uses it to refuse a server listed twice.
/// Host names are compared as written (case-insensitively), not resolved.
/// Throws lock_error(errc::invalid_url) like make_node.
std::string server_identity(std::string_view url);

/// The URL as it is safe to print: passwords replaced by "***" (or left out).
/// Throws lock_error(errc::invalid_url) like make_node.
std::string redacted_url(std::string_view url);

}  // namespace redlock

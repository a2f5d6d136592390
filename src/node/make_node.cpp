#include "redlock/make_node.hpp"

#include <algorithm>
#include <cctype>

#include "redlock/cluster_node.hpp"
#include "redlock/error.hpp"
#include "redlock/sentinel_node.hpp"

namespace redlock {

namespace {

std::string endpoint_identity(const endpoint& ep) {
  if (ep.kind == endpoint::transport::unix_socket)
    return "unix:" + ep.path;
  std::string host = ep.host;
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return "tcp:[" + host + "]:" + std::to_string(ep.port);
}

// Members listed in any order name the same deployment.
std::string sorted_join(std::vector<std::string> parts) {
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : ",") + p;
  return out;
}

}  // namespace

std::shared_ptr<node> make_node(asio::any_io_executor ex, std::string_view url,
                                const connection_options& opts,
                                const std::function<void(endpoint&)>& adjust) {
  if (is_sentinel_url(url)) {
    sentinel_options cfg = parse_sentinel_url(url);
    cfg.options = opts;
    if (adjust) {
      for (auto& s : cfg.sentinels)
        adjust(s);
      adjust(cfg.master);
    }
    return std::make_shared<sentinel_node>(std::move(ex), std::move(cfg));
  }
  if (is_cluster_url(url)) {
    cluster_options cfg = parse_cluster_url(url);
    cfg.options = opts;
    if (adjust) {
      for (auto& s : cfg.seeds)
        adjust(s);
    }
    return std::make_shared<cluster_node>(std::move(ex), std::move(cfg));
  }
  endpoint ep = parse_endpoint(url);
  if (adjust)
    adjust(ep);
  return std::make_shared<redis_node>(std::move(ex), std::move(ep), opts);
}

std::string server_identity(std::string_view url) {
  if (is_sentinel_url(url)) {
    const sentinel_options cfg = parse_sentinel_url(url);
    std::vector<std::string> members;
    for (const auto& s : cfg.sentinels)
      members.push_back(endpoint_identity(s));
    return "sentinel:" + cfg.master_name + "@" + sorted_join(std::move(members));
  }
  if (is_cluster_url(url)) {
    const cluster_options cfg = parse_cluster_url(url);
    std::vector<std::string> members;
    for (const auto& s : cfg.seeds)
      members.push_back(endpoint_identity(s));
    return "cluster:" + sorted_join(std::move(members));
  }
  return endpoint_identity(parse_endpoint(url));
}

std::string redacted_url(std::string_view url) {
  // Built from the parsed parts, so no part of the original URL (which may hold passwords in
  // its userinfo or query) is copied.
  auto members = [](const std::vector<endpoint>& eps) {
    std::string out;
    for (const auto& e : eps) {
      out += out.empty() ? "" : ",";
      out += e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host;
      out += ":" + std::to_string(e.port);
    }
    return out;
  };
  if (is_sentinel_url(url)) {
    const sentinel_options cfg = parse_sentinel_url(url);
    return std::string(cfg.master.tls.enabled ? "rediss" : "redis") + "+sentinel://" +
           members(cfg.sentinels) + "/" + cfg.master_name;
  }
  if (is_cluster_url(url)) {
    const cluster_options cfg = parse_cluster_url(url);
    return std::string(cfg.seeds.front().tls.enabled ? "rediss" : "redis") + "+cluster://" +
           members(cfg.seeds);
  }
  return parse_endpoint(url).to_string();
}

}  // namespace redlock

// Private: the comma-separated host lists of redis+sentinel:// and redis+cluster:// URLs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "redlock/endpoint.hpp"

namespace redlock::detail {

/// Parses "host[:port],host[:port]..." into TCP endpoints, each through
/// parse_endpoint(prefix + host[:port] + suffix), so that credentials (in `prefix`) and TLS
/// parameters (in `suffix`) apply to every member. A host without a port gets
/// `default_port` when it is not empty. `what` names a member in messages ("sentinel").
/// On failure returns false and sets `why`; messages quote only the host, never `prefix`.
inline bool parse_host_list(std::string_view hosts, const std::string& prefix,
                            const std::string& suffix, std::string_view default_port,
                            std::string_view what, std::vector<endpoint>& out, std::string& why) {
  for (std::string_view h = hosts; !h.empty();) {
    const auto comma = h.find(',');
    const std::string_view host = h.substr(0, comma);
    h = comma == std::string_view::npos ? std::string_view{} : h.substr(comma + 1);
    if (host.empty()) {
      why = "empty host in the list";
      return false;
    }
    std::string hp(host);
    const bool bracketed = hp.front() == '[';
    const bool has_port =
        bracketed ? hp.find("]:") != std::string::npos : hp.find(':') != std::string::npos;
    if (!has_port && !default_port.empty())
      hp += ":" + std::string(default_port);
    std::error_code ec;
    std::string sub_why;
    endpoint e = parse_endpoint(prefix + hp + suffix, ec, sub_why);
    if (ec) {
      why = std::string(what) + " " + std::string(host) + ": " + sub_why;
      return false;
    }
    if (e.kind != endpoint::transport::tcp) {
      why = std::string(what) + "s must be TCP addresses";
      return false;
    }
    out.push_back(std::move(e));
  }
  return true;
}

}  // namespace redlock::detail

// Splitting server lists (--server and REDLOCK_SERVERS) into URLs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace redlock::cli {

/// Splits a comma-separated list of server URLs. A comma separates two URLs only when a URL
/// scheme follows it ("<letters, digits, + . ->://", after optional spaces): Sentinel and
/// Cluster URLs list their members with commas ("redis+sentinel://h1:26379,h2:26379/mymaster"),
/// and a member "host:port" never contains "://", so
/// "redis+cluster://a:7000,b:7001,redis://c:6379" is two URLs, the cluster and c. Every URL
/// must start with its scheme, so nothing else can be meant. Spaces and tabs around the
/// URLs are dropped, empty items skipped (a trailing comma is fine).
std::vector<std::string> split_server_list(std::string_view list);

}  // namespace redlock::cli

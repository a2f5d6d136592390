// Private: the pure parsers of the Sentinel and Cluster nodes. No I/O: each takes a reply
// (or its text) and returns what it means, or an error for anything malformed; none throws
// or reads out of bounds on hostile input. (detail::parse_redirect, for MOVED/ASK, is
// declared in redlock/cluster_node.hpp and defined with these in src/node/topology.cpp.)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "redlock/cluster_node.hpp"
#include "redlock/reply.hpp"

namespace redlock::detail {

/// The number of hash slots of a Redis Cluster.
inline constexpr std::size_t cluster_slot_count = 16384;

struct host_port {
  std::string host;  ///< an IPv6 literal has no brackets
  std::uint16_t port = 0;
  friend bool operator==(const host_port&, const host_port&) = default;
};

/// "host:port" split at the last colon (the host may be an IPv6 literal without brackets).
/// std::nullopt for an empty host, a missing colon, or a port that is not 1..65535.
std::optional<host_port> split_address(std::string_view address);

/// `host + ":" + port`, the form split_address reads back.
std::string join_address(std::string_view host, std::uint16_t port);

/// The reply to SENTINEL get-master-addr-by-name: [host, port] as two bulk strings. On
/// anything else returns std::nullopt and sets `why` ("unknown master" for nil, the sentinel's
/// answer when it does not know the name; "unexpected reply" otherwise).
std::optional<host_port> parse_master_address(const reply& r, std::string& why);

/// One range of CLUSTER SLOTS: slots [first, last] are served by `master`.
struct slot_range {
  std::uint16_t first = 0;
  std::uint16_t last = 0;
  host_port master;
  friend bool operator==(const slot_range&, const slot_range&) = default;
};

/// The reply to CLUSTER SLOTS: [[first, last, [host, port, id...], replicas...], ...]. A
/// master host that is nil, empty or "?" (the server has no endpoint it would advertise)
/// means `asked_host`, the host of the node that answered. std::nullopt for anything
/// malformed: not an array, a range with fewer than 3 elements, slots that are not integers
/// or not ordered within 0..16383, a host of another type, a port that is not 1..65535.
std::optional<std::vector<slot_range>> parse_cluster_slots(const reply& r,
                                                           std::string_view asked_host);

/// The members of a cluster as CLUSTER NODES lists them.
struct cluster_members {
  /// The node ids of every member that is not in the handshake, in order.
  std::vector<std::string> ids;
  /// "host:port" of the masters that serve slots (an empty host means `asked_host`).
  std::vector<std::string> masters;
};

/// The text of CLUSTER NODES: one line per member, "<id> <ip:port@cport[,hostname]> <flags>
/// <master> <ping> <pong> <epoch> <link> <slots>...". std::nullopt when a line has fewer than
/// 8 fields or an empty id, or when no member is listed. A master whose address cannot be
/// parsed is left out of `masters`.
std::optional<cluster_members> parse_cluster_nodes(std::string_view text,
                                                   std::string_view asked_host);

}  // namespace redlock::detail

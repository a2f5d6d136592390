// A node backed by a Redis Cluster: each request goes to the master that owns its keys' hash
// slot, following MOVED and ASK redirections.
//
// A lock's keys are written atomically by one script, so on a cluster node they must share a
// hash slot: give multi-resource locks a hash tag, e.g. "{order:42}:items" and
// "{order:42}:payment". Keys in different slots fail with errc::invalid_argument.
//
// Safety note: like Sentinel, a Cluster replicates asynchronously; a master that fails over
// before replicating a lock loses it. One Cluster is one Redlock node: use several independent
// deployments for a quorum (see the README).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "redlock/endpoint.hpp"
#include "redlock/node.hpp"
#include "redlock/redis_node.hpp"

namespace redlock {

struct cluster_options {
  /// Any nodes of the cluster; the slot map is read from the first that answers. Their
  /// credentials and TLS settings are used for every node of the cluster.
  std::vector<endpoint> seeds;
  connection_options options;
  /// Redirections (MOVED/ASK) followed for one request before it fails.
  int max_redirects = 5;
  /// The slot map is refreshed after a MOVED or a connection failure, but not more often.
  std::chrono::milliseconds min_refresh_interval{100};
};

/// The hash slot (0..16383) of a key, honouring `{hash tags}` like Redis Cluster.
std::uint16_t cluster_key_slot(std::string_view key) noexcept;

namespace detail {

/// A MOVED or ASK redirection from a cluster node.
struct cluster_redirect {
  bool ask = false;  ///< ASK: this request only; MOVED: the slot has a new owner
  std::uint16_t slot = 0;
  std::string host;  ///< as the server wrote it (an IPv6 literal has no brackets)
  std::uint16_t port = 0;
};

/// Parses the error reply "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>". An
/// empty host (Redis 7 sends ":<port>" when the preferred endpoint type is unknown-endpoint)
/// means the host of the node that sent the redirect, `sender_host`. Returns std::nullopt for
/// any other reply, a slot beyond 16383 or a port that is not 1..65535.
std::optional<cluster_redirect> parse_redirect(std::string_view error,
                                               std::string_view sender_host);

}  // namespace detail

/// True for `redis+cluster://` and `rediss+cluster://` URLs.
bool is_cluster_url(std::string_view url) noexcept;

/// Parses `redis+cluster://[user[:password]@]host:port[,host:port...][?tls parameters]`
/// (`rediss+cluster://` for TLS). The TLS parameters are those of parse_endpoint. On failure
/// sets ec to errc::invalid_url and `why` to a message that never contains the password.
cluster_options parse_cluster_url(std::string_view url, std::error_code& ec, std::string& why);
/// Throwing form: lock_error(errc::invalid_url).
cluster_options parse_cluster_url(std::string_view url);

/// A node whose requests go to the master owning their keys' slot.
/// Distinct objects: safe. Shared objects: safe.
class cluster_node final : public node {
 public:
  cluster_node(asio::any_io_executor ex, cluster_options cfg);
  ~cluster_node() override;  // closes; never blocks, never throws

  cluster_node(const cluster_node&) = delete;
  cluster_node& operator=(const cluster_node&) = delete;

  /// "redis+cluster://host:port,host:port" from the seeds (never a password).
  const std::string& id() const noexcept override;
  /// Fails with errc::invalid_argument (nothing sent) when the keys span several slots or
  /// there are none.
  void async_eval(const script& s, std::span<const std::string> keys,
                  std::span<const std::string> args, reply_handler handler) override;
  /// Answers one "cluster_node:<node id>" per member of the cluster (from `CLUSTER NODES`
  /// on a known node or a seed) plus "run_id:<run_id>" of every master that serves slots
  /// (from `INFO server`; a master that does not answer is left out). So two cluster nodes
  /// built from different seeds of one cluster share entries, and so do a cluster node and
  /// a redis_node on one of its masters. Fails (no identity) when no node answers
  /// `CLUSTER NODES`. Completes on the node's strand, never inside this call.
  void async_identify(identity_handler handler) override;
  /// Also closes every notifier this node opened.
  void close() override;

  /// A notifier that SSUBSCRIBEs each channel at the master owning the channel's hash slot
  /// (hashed like a key, hash tags included: cluster_key_slot), with one connection per
  /// master that has subscriptions (see redis_node::open_notifier for the connection). When
  /// a master drops a channel (its slot moved: the server sends "sunsubscribe"), refuses it
  /// (MOVED), or its connection is lost (`lost` for each of its channels), the slot map is
  /// read again and the channel subscribed at the slot's owner (`subscribed` once it
  /// confirmed). Events run on the node's strand, one at a time.
  std::shared_ptr<notifier> open_notifier(notification_handler on_event) override;

 private:
  struct impl;
  struct notifier_impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace redlock

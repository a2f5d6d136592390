// A node backed by a Redis Sentinel deployment: the master is found through the sentinels and
// followed across failovers.
//
// Safety note: Sentinel replication is asynchronous. A lock written to a master that fails over
// before replicating it is lost on the new master, so one Sentinel deployment is one Redlock
// node, not N of them: use several independent deployments for a quorum (see the README).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "redlock/endpoint.hpp"
#include "redlock/node.hpp"
#include "redlock/redis_node.hpp"

namespace redlock {

struct sentinel_options {
  /// Sentinel addresses, asked in order. Their own username/password/TLS apply to them.
  std::vector<endpoint> sentinels;
  /// The monitored master's name (`sentinel monitor <name> ...`).
  std::string master_name;
  /// Credentials, db and TLS settings for the master; host and port come from the sentinels.
  endpoint master;
  /// Connection behaviour for the sentinels and the master.
  connection_options options;
  /// After a failure that suggests a failover (connection lost, connect failed, timeout or a
  /// READONLY reply), the next request asks the sentinels again, but not more often than this.
  std::chrono::milliseconds min_resolve_interval{100};
  /// While everything works, the sentinels are still asked this often (in the background,
  /// without delaying requests) so that a failover that left the old master writable is
  /// noticed within about this time. Zero disables the periodic check.
  std::chrono::milliseconds refresh_interval{1000};
};

/// True for `redis+sentinel://` and `rediss+sentinel://` URLs.
bool is_sentinel_url(std::string_view url) noexcept;

/// Parses `redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master_name[/db]`
/// with optional query parameters: `sentinel_user`, `sentinel_password` (credentials for the
/// sentinels; the userinfo is the master's) and the TLS parameters of parse_endpoint (`ca`,
/// `ca_dir`, `cert`, `key`, `sni`, `insecure`), which apply to the sentinels and the master.
/// `rediss+sentinel://` turns TLS on for both. The sentinel port defaults to 26379. On failure
/// sets ec to errc::invalid_url and `why` to a message that never contains a password.
sentinel_options parse_sentinel_url(std::string_view url, std::error_code& ec, std::string& why);
/// Throwing form: lock_error(errc::invalid_url).
sentinel_options parse_sentinel_url(std::string_view url);

/// A node whose requests go to the current master of a Sentinel-monitored deployment.
/// Before the first lookup, and after a failure of the master that suggests a failover,
/// requests wait for the sentinels' answer (bounded by their request timeouts). A reply of
/// READONLY (the old master became a replica) or a connection failure marks the master
/// stale, so the next request asks the sentinels again. While the known master is healthy,
/// requests go to it at once, also while the periodic check runs; a check that fails (no
/// sentinel answers) never fails a request. A lookup that names a new master is followed.
/// When no master is known and no sentinel names one, requests fail with
/// errc::connect_failed; when one is known, they go to it.
/// Distinct objects: safe. Shared objects: safe.
class sentinel_node final : public node {
 public:
  sentinel_node(asio::any_io_executor ex, sentinel_options cfg);
  ~sentinel_node() override;  // closes; never blocks, never throws

  sentinel_node(const sentinel_node&) = delete;
  sentinel_node& operator=(const sentinel_node&) = delete;

  /// "redis+sentinel://host:port,host:port/master_name" (never a password).
  const std::string& id() const noexcept override;
  void async_eval(const script& s, std::span<const std::string> keys,
                  std::span<const std::string> args, reply_handler handler) override;
  /// Answers {"run_id:<run_id>"} of the current master (looked up first if needed), read
  /// with `INFO server`: the same entry a redis_node on that master answers, so that a
  /// Sentinel URL and its master's URL conflict. On failure: the request's error and no
  /// identity. Completes on an executor of the node's choosing, never inside this call.
  void async_identify(identity_handler handler) override;
  /// Also closes every notifier this node opened.
  void close() override;

  /// A notifier on the current master (see redis_node::open_notifier for the connection),
  /// following failovers: a lookup that names a new master (after the pub/sub connection was
  /// lost, or by the periodic check every refresh_interval while something is subscribed)
  /// moves the subscriptions there: `lost`, then `subscribed` per channel. Events run on the
  /// node's strand, one at a time.
  std::shared_ptr<notifier> open_notifier(notification_handler on_event) override;

  /// Any command, sent to the current master. Completion signature, errors, cancellation and
  /// handler as node::async_eval.
  void async_exec(std::vector<std::string> argv, reply_handler handler);

  /// "host:port" of the master as last resolved; empty before the first lookup.
  std::string current_master() const;

 private:
  struct impl;
  struct notifier_impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace redlock

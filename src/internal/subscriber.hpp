// Private: the pub/sub side of the built-in nodes (node::open_notifier), in two layers.
//
// subscription_machine has no I/O (like the request pipeline): it is told about the
// connection (begun, transport ready, closed), the channels wanted, and the bytes read, and
// says what to write and which notification events follow. It owns
// - the handshake (AUTH/SELECT from internal/pipeline.hpp's append_handshake), gating every
//   subscription until each handshake reply has succeeded;
// - per channel, the difference between what is wanted and what the server has: a channel is
//   one entry of a map, so subscribe/unsubscribe storms cost one command in flight per
//   channel at most (no queue grows with calls);
// - SSUBSCRIBE, and the fallback to SUBSCRIBE on a server that does not know SSUBSCRIBE
//   (Redis < 7 answers "ERR unknown command"): decided per connection, from the reply;
// - pushes (RESP2 arrays in subscribe mode): "ssubscribe"/"subscribe" confirmations,
//   "smessage"/"message" messages, "sunsubscribe" without a request of ours (the server
//   dropped the channel: its slot moved to another master).
//
// subscriber is the Asio transport around one machine: one connection to one endpoint
// (internal/transport.hpp, the same open as the request connection), a connect timeout, and
// reconnects with the node's backoff. It runs on a strand that its owner gives it (one
// strand per notifier, so that the owner's handler runs one call at a time).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <asio/post.hpp>

#include "internal/backoff.hpp"
#include "internal/pipeline.hpp"
#include "internal/resp.hpp"
#include "internal/transport.hpp"
#include "redlock/endpoint.hpp"
#include "redlock/error.hpp"
#include "redlock/node.hpp"
#include "redlock/redis_node.hpp"

namespace redlock::detail {

/// True for an error reply that means "this server has no such command" (so SSUBSCRIBE is
/// unknown and plain SUBSCRIBE is the fallback): "ERR unknown command ..." (Redis 6/7 and
/// earlier wordings).
bool is_unknown_command(std::string_view error) noexcept;

/// See the top of this file. Distinct objects: safe. Shared objects: unsafe.
class subscription_machine {
 public:
  /// One notification event, owning its strings.
  struct event {
    notification::kind what = notification::kind::message;
    std::string channel;
    std::string payload;
  };

  struct read_result {
    enum class status : std::uint8_t {
      ok,                ///< keep reading
      handshake_failed,  ///< AUTH/SELECT rejected: `code`, `why` (the server's message)
      protocol_error,    ///< unusable connection: `why`
    };
    status st = status::ok;
    errc code = errc::server_error;
    std::string why;
    /// The server answered on this connection for the first time in this read (the handshake
    /// succeeded, or the first reply without one): the owner's backoff starts over.
    bool answered = false;
    std::vector<event> events;
    /// Channels the server dropped or refused while still wanted here: a "sunsubscribe" it
    /// sent on its own (the slot moved) or an error for SSUBSCRIBE, e.g. MOVED (with `why`
    /// the server's message). They are not subscribed again on this connection until
    /// retry() or a new connection; a Cluster owner moves them to the slot's new master.
    std::vector<std::pair<std::string, std::string>> refused;
  };

  explicit subscription_machine(reader_limits limits = {});

  // ---- channels (any time) ----------------------------------------------------------------

  /// Adds `channel` to the wanted set. False when it was wanted already.
  bool want(const std::string& channel);
  /// Removes it. False when it was not wanted.
  bool unwant(const std::string& channel);
  /// Makes refused channels eligible again (they are subscribed at the next take_write).
  void retry_refused();
  bool wants(const std::string& channel) const;
  /// The wanted channels, in order.
  std::vector<std::string> wanted() const;
  bool nothing_wanted() const noexcept { return wanted_count_ == 0; }
  /// Nothing wanted and nothing in flight: the connection has no use any more.
  bool idle() const noexcept { return wanted_count_ == 0 && in_flight_.empty(); }

  // ---- connection events ------------------------------------------------------------------

  /// A new connection is being set up: reader reset, SSUBSCRIBE tried first again.
  void begin_connection();
  /// The transport is up: the handshake is queued (subscriptions follow once it succeeded).
  void transport_ready(const handshake& h);
  /// The connection is gone: every channel is off the server. Returns true when some
  /// channel was subscribed or being subscribed (a `lost` event is due).
  bool connection_closed();

  // ---- writing / reading ------------------------------------------------------------------

  /// Moves the bytes to write next into `out` and returns true; false when a write is in
  /// flight or there is nothing to write.
  bool take_write(std::string& out);
  void write_done() noexcept { write_in_flight_ = false; }
  read_result on_read(const char* data, std::size_t size);

  // ---- state ------------------------------------------------------------------------------

  bool ready() const noexcept { return ready_; }
  /// False once this connection's server refused SSUBSCRIBE as an unknown command.
  bool sharded() const noexcept { return sharded_; }
  /// Channels confirmed by the server on this connection.
  std::vector<std::string> subscribed() const;

 private:
  enum class on_server : std::uint8_t { off, subscribing, on, unsubscribing };
  struct channel_state {
    bool wanted = false;
    bool refused = false;  // dropped or refused by the server while wanted: wait for retry
    on_server server = on_server::off;
  };
  struct sent {
    bool subscribe = true;
    bool sharded = true;  // sent as SSUBSCRIBE/SUNSUBSCRIBE
    std::string channel;
  };

  void reconcile(const std::string& channel);
  void on_reply(reply&& r, read_result& out);
  void on_push(const reply& r, read_result& out);
  void forget_if_unused(std::map<std::string, channel_state>::iterator it);

  reply_reader reader_;
  std::map<std::string, channel_state> channels_;
  std::size_t wanted_count_ = 0;
  std::set<std::string> dirty_;  // channels whose wanted and server state may differ
  std::deque<sent> in_flight_;   // commands written or queued, in wire order, for errors
  std::string out_;
  std::size_t handshake_left_ = 0;
  bool ready_ = false;
  bool answered_ = false;
  bool sharded_ = true;
  bool write_in_flight_ = false;
};

/// What a notifier does on its strand; strand_notifier is its thread-safe face.
class notifier_core {
 public:
  virtual ~notifier_core() = default;
  virtual void subscribe(const std::string& channel) = 0;
  virtual void unsubscribe(const std::string& channel) = 0;
  virtual void close() = 0;
};

/// The notifier handed to users: every call is posted to the strand of `core`, so the
/// handler never runs inside subscribe()/unsubscribe() and calls may come from any thread.
/// Distinct objects: safe. Shared objects: safe.
class strand_notifier final : public notifier {
 public:
  strand_notifier(strand_type strand, std::shared_ptr<notifier_core> core);
  ~strand_notifier() override;  // posts close(); never blocks or throws
  void subscribe(std::string channel) override;
  void unsubscribe(std::string channel) override;
  void close() override;

 private:
  strand_type strand_;
  std::shared_ptr<notifier_core> core_;
};

/// One pub/sub connection to one endpoint (see the top of this file). Strand only: every
/// method must be called on the strand given at construction, and the callbacks run there.
class subscriber final : public notifier_core, public std::enable_shared_from_this<subscriber> {
 public:
  struct callbacks {
    /// Every event, `lost` included (see node.hpp's notification).
    std::function<void(const notification&)> on_event;
    /// The connection failed (lost, refused, timed out, handshake rejected) after the `lost`
    /// event if one was due. The subscriber reconnects by itself after its backoff unless
    /// the owner retargets or closes it. May be empty.
    std::function<void(const std::string& why)> on_down;
    /// A channel the server refused or dropped (see subscription_machine::read_result). May
    /// be empty: the channel is then subscribed again on the next connection.
    std::function<void(const std::string& channel, const std::string& why)> on_refused;
  };

  /// `lost_per_channel`: a lost connection is reported as one `lost` event per channel that
  /// was subscribed (a Cluster's shard), instead of one with an empty channel.
  subscriber(strand_type strand, endpoint ep, connection_options opts, callbacks cb,
             bool lost_per_channel = false);
  ~subscriber() override;

  void subscribe(const std::string& channel) override;
  void unsubscribe(const std::string& channel) override;
  /// Drops every subscription, the connection and the timers; no event follows.
  void close() override;

  /// Subscribes the refused channels again (e.g. after a slot-map refresh said this endpoint
  /// still owns them).
  void retry_refused();
  /// Moves the subscriptions to `ep` (a failover): drops the connection (`lost` when something
  /// was subscribed) and connects to `ep` at once. Nothing when `ep` is the current target.
  void retarget(const endpoint& ep);

  const endpoint& target() const noexcept { return ep_; }
  bool nothing_wanted() const noexcept { return machine_.nothing_wanted(); }
  std::vector<std::string> wanted() const { return machine_.wanted(); }
  bool connected() const noexcept { return conn_ && machine_.ready(); }

 private:
  void ensure_connected();
  void on_open(const std::shared_ptr<connection>& c);
  void maybe_write();
  void start_read(const std::shared_ptr<connection>& c);
  void on_read(const std::shared_ptr<connection>& c, std::size_t n);
  void fail_connection(const std::string& why);
  void drop_quietly();
  void emit_lost(const std::vector<std::string>& channels);
  void emit(notification::kind what, std::string_view channel, std::string_view payload);
  void check_idle();

  strand_type strand_;
  endpoint ep_;
  const connection_options opts_;
  callbacks cb_;
  const bool lost_per_channel_;
  subscription_machine machine_;
  std::shared_ptr<connection> conn_;
  std::optional<asio::ssl::context> tls_ctx_;
  backoff backoff_;
  steady_timer_type connect_timer_;
  steady_timer_type retry_timer_;
  bool retry_armed_ = false;
  bool closed_ = false;
};

/// open_notifier of a node whose impl (on `impl->strand_`) keeps its notifiers in
/// `impl->notifiers_` (weak) and closes them with itself (`impl->closed_`): registers a new
/// `Core` on the strand, before any subscribe posted after this returns, and hands out its
/// thread-safe face.
template <class Core, class Impl>
std::shared_ptr<notifier> open_registered_notifier(const std::shared_ptr<Impl>& impl,
                                                   notification_handler on_event) {
  auto core = std::make_shared<Core>(impl, std::move(on_event));
  asio::post(impl->strand_, [i = impl, core] {
    if (i->closed_)
      return core->close();
    std::erase_if(i->notifiers_, [](const auto& w) { return w.expired(); });
    i->notifiers_.push_back(core);
  });
  return std::make_shared<strand_notifier>(impl->strand_, core);
}

}  // namespace redlock::detail

#include "redlock/cluster_node.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include <asio/post.hpp>
#include <asio/strand.hpp>

#include "internal/host_list.hpp"
#include "internal/parse_or_throw.hpp"
#include "internal/resp.hpp"
#include "internal/subscriber.hpp"
#include "internal/topology.hpp"
#include "redlock/error.hpp"

namespace redlock {

namespace {

using detail::error_reply;

constexpr std::string_view plain_scheme = "redis+cluster://";
constexpr std::string_view tls_scheme = "rediss+cluster://";
using detail::join_address;
constexpr std::size_t slot_count = detail::cluster_slot_count;

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the checksum Redis Cluster uses
// for key slots.
std::uint16_t crc16(std::string_view data) noexcept {
  std::uint16_t crc = 0;
  for (unsigned char byte : data) {
    crc = static_cast<std::uint16_t>(crc ^ (byte << 8));
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

}  // namespace

std::uint16_t cluster_key_slot(std::string_view key) noexcept {
  // Only the part between the first '{' and the next '}' is hashed, when it is non-empty.
  if (const auto open = key.find('{'); open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1)
      key = key.substr(open + 1, close - open - 1);
  }
  return static_cast<std::uint16_t>(crc16(key) & (slot_count - 1));
}

bool is_cluster_url(std::string_view url) noexcept {
  return url.starts_with(plain_scheme) || url.starts_with(tls_scheme);
}

cluster_options parse_cluster_url(std::string_view url, std::error_code& ec, std::string& why) {
  ec.clear();
  why.clear();
  auto fail = [&](std::string msg) {
    ec = make_error_code(errc::invalid_url);
    why = "invalid cluster URL: " + std::move(msg);
    return cluster_options{};
  };
  const bool tls = url.starts_with(tls_scheme);
  if (!tls && !url.starts_with(plain_scheme))
    return fail("the scheme must be redis+cluster:// or rediss+cluster://");
  std::string_view rest = url.substr(tls ? tls_scheme.size() : plain_scheme.size());
  std::string query;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    query = "?" + std::string(rest.substr(q + 1));
    rest = rest.substr(0, q);
  }
  if (!rest.empty() && rest.back() == '/')
    rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos)
    return fail("a cluster has no databases: remove the path");
  std::string userinfo;
  std::string_view hosts = rest;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    userinfo = std::string(rest.substr(0, at)) + "@";
    hosts = rest.substr(at + 1);
  }
  if (hosts.empty())
    return fail("no host");
  cluster_options cfg;
  const std::string scheme = tls ? "rediss://" : "redis://";
  std::string why_member;
  if (!detail::parse_host_list(hosts, scheme + userinfo, query, "", "cluster node", cfg.seeds,
                               why_member))
    return fail(why_member);
  return cfg;
}

cluster_options parse_cluster_url(std::string_view url) {
  return detail::parse_or_throw<cluster_options>(parse_cluster_url, url);
}

struct cluster_node::impl : std::enable_shared_from_this<impl> {
  // The script is copied: a redirected request is sent again after the caller has returned.
  struct request {
    std::optional<script> s;
    std::vector<std::string> keys;
    std::vector<std::string> args;
    std::uint16_t slot = 0;
    int redirects = 0;
    reply_handler handler;
  };
  using request_ptr = std::shared_ptr<request>;

  impl(asio::any_io_executor ex, cluster_options cfg)
      : ex_(std::move(ex)), strand_(asio::make_strand(ex_)), cfg_(std::move(cfg)) {
    owner_.fill(-1);
    id_ = cfg_.seeds.front().tls.enabled ? "rediss+cluster://" : "redis+cluster://";
    for (std::size_t i = 0; i < cfg_.seeds.size(); ++i) {
      const endpoint& e = cfg_.seeds[i];
      id_ += i ? "," : "";
      id_ += e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host;
      id_ += ":" + std::to_string(e.port);
      seed_addresses_.push_back(join_address(e.host, e.port));
    }
  }

  // ---- routing ----------------------------------------------------------------------------

  void submit(request_ptr r) {
    if (closed_) {
      r->handler(errc::closed, error_reply("node " + id_ + " is closed"));
      return;
    }
    const int owner = owner_[r->slot];
    if (owner < 0) {
      waiting_.push_back(std::move(r));
      refresh(true);
      return;
    }
    send(std::move(r), addresses_[static_cast<std::size_t>(owner)], false);
  }

  void send(request_ptr r, const std::string& address, bool asking) {
    auto n = node_for(address);
    if (!n) {
      r->handler(errc::server_error, error_reply("bad node address from the cluster: " + address));
      return;
    }
    auto done = [self = shared_from_this(), r, host = n->get_endpoint().host](std::error_code ec,
                                                                              reply rep) mutable {
      asio::post(self->strand_,
                 [self, r, host = std::move(host), ec, rep = std::move(rep)]() mutable {
                   self->on_reply(std::move(r), host, ec, std::move(rep));
                 });
    };
    if (!asking) {
      n->async_eval(*r->s, r->keys, r->args, std::move(done));
      return;
    }
    // ASKING covers only the command right behind it on the same connection (both are
    // pipelined there in order). The script goes as EVAL: an EVALSHA answered NOSCRIPT would
    // be resent as EVAL without ASKING and come back as MOVED to the node that sent us here.
    std::vector<std::string> argv{"EVAL", r->s->text(), std::to_string(r->keys.size())};
    argv.insert(argv.end(), r->keys.begin(), r->keys.end());
    argv.insert(argv.end(), r->args.begin(), r->args.end());
    n->async_exec({"ASKING"}, [](std::error_code, reply) {});
    n->async_exec(std::move(argv), std::move(done));
  }

  // `sender_host`: the host the request went to, which a redirect without a host means.
  void on_reply(request_ptr r, const std::string& sender_host, std::error_code ec, reply rep) {
    if (rep.is_error() && !closed_ && r->redirects < cfg_.max_redirects) {
      if (auto to = detail::parse_redirect(rep.str, sender_host)) {
        ++r->redirects;
        const std::string address = join_address(to->host, to->port);
        if (!to->ask) {
          owner_[r->slot] = address_index(address);
          refresh(false);  // more slots have probably moved too
        }
        send(std::move(r), address, to->ask);
        return;
      }
    }
    if (ec == errc::connection_lost || ec == errc::connect_failed || ec == errc::timeout ||
        (rep.is_error() && rep.str.starts_with("CLUSTERDOWN")))
      refresh(false);  // a master may have failed over
    r->handler(ec, std::move(rep));
  }

  // ---- identity ---------------------------------------------------------------------------

  // Shared by the steps of one identification; the handler runs once, on the strand.
  struct identification {
    identity_handler handler;
    std::vector<std::string> candidates;
    std::vector<std::string> identities;
    std::size_t masters_left = 0;
  };
  using identification_ptr = std::shared_ptr<identification>;

  void identify(identity_handler handler) {
    if (closed_) {
      handler(errc::closed, {});
      return;
    }
    auto id = std::make_shared<identification>();
    id->handler = std::move(handler);
    id->candidates = candidates();
    ask_nodes(std::move(id), 0);
  }

  void ask_nodes(identification_ptr id, std::size_t i) {
    if (closed_) {
      id->handler(errc::closed, {});
      return;
    }
    if (i == id->candidates.size()) {
      id->handler(errc::connect_failed, {});
      return;
    }
    auto n = node_for(id->candidates[i]);
    if (!n) {
      ask_nodes(std::move(id), i + 1);
      return;
    }
    n->async_exec({"CLUSTER", "NODES"}, [self = shared_from_this(), id, i](std::error_code ec,
                                                                           reply rep) mutable {
      asio::post(self->strand_, [self, id = std::move(id), i, ec, rep = std::move(rep)]() mutable {
        if (ec || rep.kind != reply::type::string || !self->on_nodes(id, i, rep))
          self->ask_nodes(std::move(id), i + 1);
      });
    });
  }

  // CLUSTER NODES (detail::parse_cluster_nodes): the members' ids, then the run_ids of the
  // masters that serve slots.
  bool on_nodes(const identification_ptr& id, std::size_t i, const reply& rep) {
    id->identities.clear();  // from an earlier candidate's answer
    const auto asked = detail::split_address(id->candidates[i]);
    auto members = detail::parse_cluster_nodes(rep.str, asked ? asked->host : std::string());
    if (!members)
      return false;
    for (const auto& member : members->ids)
      id->identities.push_back("cluster_node:" + member);
    std::vector<std::string> masters = std::move(members->masters);
    id->masters_left = masters.size();
    if (masters.empty()) {
      id->handler({}, std::move(id->identities));
      return true;
    }
    for (const auto& m : masters) {
      // Each address was just joined from a parsed host and port, so node_for accepts it.
      node_for(m)->async_exec(
          {"INFO", "server"}, [self = shared_from_this(), id](std::error_code ec, reply r) mutable {
            asio::post(self->strand_, [self, id = std::move(id), ec, r = std::move(r)]() mutable {
              const std::string_view run_id = ec || r.kind != reply::type::string
                                                  ? std::string_view{}
                                                  : detail::info_field(r.str, "run_id");
              if (!run_id.empty())
                id->identities.push_back("run_id:" + std::string(run_id));
              if (--id->masters_left != 0)
                return;
              if (self->closed_)
                id->handler(errc::closed, {});  // the answers may be cut short by close()
              else
                id->handler({}, std::move(id->identities));
            });
          });
    }
    return true;
  }

  // ---- the slot map -----------------------------------------------------------------------

  // `needed`: requests are waiting for the map, so the rate limit does not apply.
  void refresh(bool needed) {
    if (refreshing_ || closed_)
      return;
    const auto now = std::chrono::steady_clock::now();
    if (!needed && now - last_refresh_ < cfg_.min_refresh_interval)
      return;
    refreshing_ = true;
    last_refresh_ = now;
    ask_slots(candidates(), 0, std::string());
  }

  // Nodes to ask about the cluster: known masters first (they are likelier to be up), then
  // the seeds.
  std::vector<std::string> candidates() const {
    std::vector<std::string> out = addresses_;
    for (const auto& s : seed_addresses_)
      if (std::find(out.begin(), out.end(), s) == out.end())
        out.push_back(s);
    return out;
  }

  void ask_slots(std::vector<std::string> candidates, std::size_t i, std::string errors) {
    if (closed_)
      return;
    if (i == candidates.size()) {
      refreshing_ = false;
      fail_waiting(errc::connect_failed,
                   "no node of " + id_ + " answered CLUSTER SLOTS: " + errors);
      return;
    }
    auto n = node_for(candidates[i]);
    n->async_exec({"CLUSTER", "SLOTS"}, [self = shared_from_this(), candidates, i, errors](
                                            std::error_code ec, reply rep) mutable {
      asio::post(self->strand_, [self, candidates = std::move(candidates), i,
                                 errors = std::move(errors), ec, rep = std::move(rep)]() mutable {
        if (!ec && self->apply_slots(rep, candidates[i])) {
          self->refreshing_ = false;
          self->after_refresh();
          return;
        }
        errors += errors.empty() ? "" : "; ";
        errors += candidates[i] + ": " +
                  (ec ? (rep.str.empty() ? ec.message() : rep.str)
                      : std::string("unexpected CLUSTER SLOTS reply"));
        self->ask_slots(std::move(candidates), i + 1, std::move(errors));
      });
    });
  }

  // CLUSTER SLOTS (detail::parse_cluster_slots); the map changes only when the whole reply
  // is well formed.
  bool apply_slots(const reply& rep, const std::string& asked) {
    const auto asked_hp = detail::split_address(asked);
    const auto ranges = detail::parse_cluster_slots(rep, asked_hp ? asked_hp->host : std::string());
    if (!ranges)
      return false;
    std::array<int, slot_count> owner;
    owner.fill(-1);
    for (const detail::slot_range& range : *ranges) {
      const int idx = address_index(join_address(range.master.host, range.master.port));
      for (std::size_t s = range.first; s <= range.last; ++s)
        owner[s] = idx;
    }
    owner_ = owner;
    return true;
  }

  void after_refresh() {
    notify_slots();
    std::deque<request_ptr> waiting;
    waiting.swap(waiting_);
    for (auto& r : waiting) {
      if (owner_[r->slot] < 0) {
        r->handler(errc::server_error,
                   error_reply("CLUSTERDOWN hash slot " + std::to_string(r->slot) +
                               " is not served by any master of " + id_));
      } else {
        submit(std::move(r));
      }
    }
  }

  void fail_waiting(errc code, const std::string& msg) {
    std::deque<request_ptr> waiting;
    waiting.swap(waiting_);
    for (auto& r : waiting)
      r->handler(code, error_reply(msg));
  }

  int address_index(const std::string& address) {
    for (std::size_t i = 0; i < addresses_.size(); ++i)
      if (addresses_[i] == address)
        return static_cast<int>(i);
    addresses_.push_back(address);
    return static_cast<int>(addresses_.size() - 1);
  }

  // One connection per cluster node, created on first use with the seeds' credentials/TLS.
  std::shared_ptr<redis_node> node_for(const std::string& address) {
    if (auto it = nodes_.find(address); it != nodes_.end())
      return it->second;
    const auto hp = detail::split_address(address);
    if (!hp)
      return nullptr;
    endpoint e = cfg_.seeds.front();
    e.host = hp->host;
    e.port = hp->port;
    auto n = std::make_shared<redis_node>(ex_, std::move(e), cfg_.options);
    nodes_.emplace(address, n);
    return n;
  }

  // ---- notifiers (strand only) ------------------------------------------------------------

  /// "host:port" of the master owning `slot`, or empty when unknown.
  std::string owner_address(std::uint16_t slot) const {
    const int idx = owner_[slot];
    return idx < 0 ? std::string() : addresses_[static_cast<std::size_t>(idx)];
  }
  void notify_slots();
  void close_notifiers();

  void close() {
    if (closed_)
      return;
    closed_ = true;
    close_notifiers();
    for (auto& [address, n] : nodes_)
      n->close();
    fail_waiting(errc::closed, "node " + id_ + " was closed");
  }

  asio::any_io_executor ex_;
  asio::strand<asio::any_io_executor> strand_;
  cluster_options cfg_;
  std::string id_;
  std::vector<std::string> seed_addresses_;
  std::vector<std::string> addresses_;  // index → "host:port"
  std::array<int, slot_count> owner_;   // slot → index into addresses_, −1 unknown
  std::map<std::string, std::shared_ptr<redis_node>> nodes_;
  std::deque<request_ptr> waiting_;
  std::chrono::steady_clock::time_point last_refresh_{};
  bool refreshing_ = false;
  bool closed_ = false;
  std::vector<std::weak_ptr<notifier_impl>> notifiers_;
};

// The notifier of a cluster_node: one subscriber per master that has channels, on the node's
// strand (it reads the slot map and starts refreshes directly). Each channel is placed at
// the owner of its slot; a channel whose owner is unknown waits for a refresh. After every
// refresh each channel is checked: moved to its slot's new owner, or subscribed again where
// it is when the server had dropped it. A link left without channels is closed. A timer
// (1 s, while something is subscribed) refreshes again when a channel is not placed or a
// link is not connected, so a refresh that failed (no node answered) is retried.
struct cluster_node::notifier_impl final : detail::notifier_core,
                                           std::enable_shared_from_this<notifier_impl> {
  notifier_impl(std::shared_ptr<cluster_node::impl> node, notification_handler h)
      : node_(std::move(node)),
        handler_(std::make_shared<notification_handler>(std::move(h))),
        timer_(node_->strand_) {}

  void subscribe(const std::string& channel) override {
    if (closed_ || channels_.count(channel))
      return;
    channels_[channel] = std::string();
    place(channel);
    arm_timer();
  }

  void unsubscribe(const std::string& channel) override {
    auto it = channels_.find(channel);
    if (closed_ || it == channels_.end())
      return;
    const std::string address = it->second;
    channels_.erase(it);
    if (auto l = links_.find(address); l != links_.end()) {
      l->second->unsubscribe(channel);
      // The link's connection closes by itself once the unsubscribe is confirmed; the link
      // object goes at the next placement pass if it stays empty.
    }
  }

  void close() override {
    if (closed_)
      return;
    closed_ = true;
    for (auto& [address, l] : links_)
      l->close();
    links_.clear();
    channels_.clear();
    timer_.cancel();
  }

  // Puts `channel` at its slot's owner as the node's map says; a refresh when unknown.
  void place(const std::string& channel) {
    auto it = channels_.find(channel);
    if (it == channels_.end())
      return;
    const std::string owner = node_->owner_address(cluster_key_slot(channel));
    if (owner.empty()) {
      node_->refresh(true);
      return;
    }
    move_to(it, owner);
  }

  void move_to(std::map<std::string, std::string>::iterator it, const std::string& owner) {
    if (it->second == owner)
      return;
    if (auto old = links_.find(it->second); old != links_.end())
      old->second->unsubscribe(it->first);
    it->second = owner;
    if (auto l = link_for(owner))
      l->subscribe(it->first);
  }

  std::shared_ptr<detail::subscriber> link_for(const std::string& address) {
    if (auto it = links_.find(address); it != links_.end())
      return it->second;
    const auto hp = detail::split_address(address);
    if (!hp)
      return nullptr;
    endpoint e = node_->cfg_.seeds.front();
    e.host = hp->host;
    e.port = hp->port;
    detail::subscriber::callbacks cb;
    // One handler for every connection: a stateful handler is not copied per link.
    cb.on_event = [h = handler_](const notification& n) {
      if (*h)
        (*h)(n);
    };
    cb.on_down = [w = weak_from_this()](const std::string&) {
      if (auto self = w.lock(); self && !self->closed_)
        self->node_->refresh(false);  // a master may have failed over
    };
    cb.on_refused = [w = weak_from_this(), host = hp->host](const std::string& channel,
                                                            const std::string& why) {
      if (auto self = w.lock(); self && !self->closed_)
        self->on_refused(channel, why, host);
    };
    auto l = std::make_shared<detail::subscriber>(node_->strand_, std::move(e), node_->cfg_.options,
                                                  std::move(cb),
                                                  /*lost_per_channel=*/true);
    links_.emplace(address, l);
    return l;
  }

  void on_refused(const std::string& channel, const std::string& why,
                  const std::string& sender_host) {
    auto it = channels_.find(channel);
    if (it == channels_.end())
      return;
    // MOVED names the new owner: go there at once. A dropped channel ("sunsubscribe" from
    // the server) does not, so the map is read again first.
    if (auto redirect = detail::parse_redirect(why, sender_host); redirect && !redirect->ask) {
      const std::string owner = join_address(redirect->host, redirect->port);
      node_->owner_[redirect->slot] = node_->address_index(owner);
      move_to(it, owner);
      node_->refresh(false);  // more slots have probably moved too
      return;
    }
    node_->refresh(true);
  }

  // After a refresh: every channel to its slot's owner; those whose owner did not change but
  // were dropped are subscribed there again; links without channels are closed.
  void on_slots() {
    if (closed_)
      return;
    for (auto it = channels_.begin(); it != channels_.end(); ++it) {
      const std::string owner = node_->owner_address(cluster_key_slot(it->first));
      if (!owner.empty())
        move_to(it, owner);
    }
    for (auto& [address, l] : links_)
      l->retry_refused();
    prune_links();
  }

  void prune_links() {
    for (auto it = links_.begin(); it != links_.end();) {
      if (it->second->nothing_wanted()) {
        // Not closed here: an unsubscribe may still be in flight, and the subscriber closes
        // its own connection once it is confirmed. Dropping our reference is enough; the
        // pending operations keep it alive until then.
        it = links_.erase(it);
      } else {
        ++it;
      }
    }
  }

  bool needs_refresh() const {
    for (const auto& [channel, address] : channels_)
      if (address.empty())
        return true;
    for (const auto& [address, l] : links_)
      if (!l->nothing_wanted() && !l->connected())
        return true;
    return false;
  }

  void arm_timer() {
    if (timer_armed_ || closed_)
      return;
    timer_armed_ = true;
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([self = shared_from_this()](asio::error_code ec) {
      self->timer_armed_ = false;
      if (ec || self->closed_ || self->channels_.empty())
        return;  // re-armed by the next subscribe
      self->prune_links();
      if (self->needs_refresh())
        self->node_->refresh(false);
      self->arm_timer();
    });
  }

  std::shared_ptr<cluster_node::impl> node_;
  std::shared_ptr<notification_handler> handler_;
  std::map<std::string, std::string> channels_;  // channel → "host:port" of its link, or ""
  std::map<std::string, std::shared_ptr<detail::subscriber>> links_;
  asio::basic_waitable_timer<std::chrono::steady_clock,
                             asio::wait_traits<std::chrono::steady_clock>,
                             asio::strand<asio::any_io_executor>>
      timer_;
  bool timer_armed_ = false;
  bool closed_ = false;
};

void cluster_node::impl::notify_slots() {
  std::erase_if(notifiers_, [](const auto& w) { return w.expired(); });
  for (auto& w : std::vector(notifiers_))
    if (auto n = w.lock())
      n->on_slots();
}

void cluster_node::impl::close_notifiers() {
  auto list = std::move(notifiers_);
  notifiers_.clear();
  for (auto& w : list)
    if (auto n = w.lock())
      n->close();
}

cluster_node::cluster_node(asio::any_io_executor ex, cluster_options cfg) {
  if (cfg.seeds.empty())
    throw lock_error(make_error_code(errc::invalid_argument), "cluster_node: no seed nodes");
  impl_ = std::make_shared<impl>(std::move(ex), std::move(cfg));
}

cluster_node::~cluster_node() {
  asio::post(impl_->strand_, [i = impl_] { i->close(); });
}

const std::string& cluster_node::id() const noexcept {
  return impl_->id_;
}

void cluster_node::async_eval(const script& s, std::span<const std::string> keys,
                              std::span<const std::string> args, reply_handler handler) {
  auto r = std::make_shared<impl::request>();
  r->handler = std::move(handler);
  if (keys.empty()) {
    asio::post(impl_->strand_, [r] {
      r->handler(errc::invalid_argument, error_reply("a cluster node needs at least one key"));
    });
    return;
  }
  r->slot = cluster_key_slot(keys.front());
  for (const auto& k : keys) {
    if (cluster_key_slot(k) != r->slot) {
      // Checked here, before anything is sent: the keys of one lock are written by one
      // script, which a cluster refuses across slots (CROSSSLOT).
      asio::post(impl_->strand_, [r] {
        r->handler(errc::invalid_argument,
                   error_reply("the keys of one lock map to different hash slots of the "
                               "cluster; give them a common hash tag, e.g. {order:42}:a"));
      });
      return;
    }
  }
  r->s.emplace(s);
  r->keys.assign(keys.begin(), keys.end());
  r->args.assign(args.begin(), args.end());
  asio::post(impl_->strand_, [i = impl_, r]() mutable { i->submit(std::move(r)); });
}

void cluster_node::async_identify(identity_handler handler) {
  asio::post(impl_->strand_,
             [i = impl_, h = std::move(handler)]() mutable { i->identify(std::move(h)); });
}

std::shared_ptr<notifier> cluster_node::open_notifier(notification_handler on_event) {
  return detail::open_registered_notifier<notifier_impl>(impl_, std::move(on_event));
}

void cluster_node::close() {
  asio::post(impl_->strand_, [i = impl_] { i->close(); });
}

}  // namespace redlock

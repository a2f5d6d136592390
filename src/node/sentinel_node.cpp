#include "redlock/sentinel_node.hpp"

#include <algorithm>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
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

constexpr std::string_view plain_scheme = "redis+sentinel://";
constexpr std::string_view tls_scheme = "rediss+sentinel://";

// Errors after which the master may have moved: ask the sentinels again.
bool suggests_failover(const std::error_code& ec, const reply& r) {
  if (ec == errc::connection_lost || ec == errc::connect_failed || ec == errc::timeout)
    return true;
  return r.is_error() && r.str.starts_with("READONLY");
}

}  // namespace

bool is_sentinel_url(std::string_view url) noexcept {
  return url.starts_with(plain_scheme) || url.starts_with(tls_scheme);
}

sentinel_options parse_sentinel_url(std::string_view url, std::error_code& ec, std::string& why) {
  ec.clear();
  why.clear();
  sentinel_options cfg;
  auto fail = [&](std::string msg) {
    ec = make_error_code(errc::invalid_url);
    why = "invalid sentinel URL: " + std::move(msg);
    return sentinel_options{};
  };
  const bool tls = url.starts_with(tls_scheme);
  if (!tls && !url.starts_with(plain_scheme))
    return fail("the scheme must be redis+sentinel:// or rediss+sentinel://");
  std::string_view rest = url.substr(tls ? tls_scheme.size() : plain_scheme.size());
  const std::string_view scheme = tls ? "rediss://" : "redis://";

  // Split off the query; it may hold passwords, so nothing of it is ever quoted here.
  std::string_view query;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  // Userinfo ends at the last '@' before the path.
  const auto slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  const std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  std::string_view userinfo;
  std::string_view hosts = authority;
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    userinfo = authority.substr(0, at);
    hosts = authority.substr(at + 1);
  }
  if (hosts.empty())
    return fail("no sentinel host");

  // Path: master_name[/db].
  std::string_view name = path;
  std::string_view db;
  if (const auto s = path.find('/'); s != std::string_view::npos) {
    name = path.substr(0, s);
    db = path.substr(s + 1);
  }
  if (name.empty())
    return fail("no master name (expected .../master_name[/db])");
  cfg.master_name = std::string(name);

  // Sentinel credentials come from the query; everything else of the query (TLS files) is
  // handed to parse_endpoint for the sentinels and the master alike.
  std::string sentinel_user;
  std::string sentinel_password;
  std::string common_query;
  for (std::string_view q = query; !q.empty();) {
    const auto amp = q.find('&');
    const std::string_view param = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (param.starts_with("sentinel_user=")) {
      sentinel_user = std::string(param.substr(14));
    } else if (param.starts_with("sentinel_password=")) {
      sentinel_password = std::string(param.substr(18));
    } else {
      common_query += common_query.empty() ? "" : "&";
      common_query += param;
    }
  }
  const std::string query_suffix = common_query.empty() ? "" : "?" + common_query;

  // The master template: its host is a stand-in, replaced by what the sentinels say.
  std::string master_url = std::string(scheme);
  if (!userinfo.empty())
    master_url += std::string(userinfo) + "@";
  master_url += "127.0.0.1";
  if (!db.empty())
    master_url += "/" + std::string(db);
  master_url += query_suffix;
  std::error_code sub_ec;
  std::string sub_why;
  cfg.master = parse_endpoint(master_url, sub_ec, sub_why);
  if (sub_ec)
    return fail("master settings: " + sub_why);

  std::string sentinel_userinfo;
  if (!sentinel_password.empty())
    sentinel_userinfo = sentinel_user + ":" + sentinel_password + "@";
  else if (!sentinel_user.empty())
    return fail("sentinel_user needs sentinel_password");
  if (!detail::parse_host_list(hosts, std::string(scheme) + sentinel_userinfo, query_suffix,
                               "26379", "sentinel", cfg.sentinels, sub_why))
    return fail(sub_why);
  return cfg;
}

sentinel_options parse_sentinel_url(std::string_view url) {
  return detail::parse_or_throw<sentinel_options>(parse_sentinel_url, url);
}

struct sentinel_node::impl : std::enable_shared_from_this<impl> {
  // A request waiting for the master's address. The script is copied because the caller's
  // may not outlive the lookup.
  struct queued {
    std::optional<script> s;
    std::vector<std::string> keys;
    std::vector<std::string> args;
    std::vector<std::string> argv;  // async_exec
    reply_handler handler;
  };

  // The current master's connection and its requests in flight.
  struct master_link {
    std::shared_ptr<redis_node> node;
    std::size_t in_flight = 0;
    bool retired = false;
  };

  impl(asio::any_io_executor ex, sentinel_options cfg)
      : ex_(std::move(ex)), strand_(asio::make_strand(ex_)), cfg_(std::move(cfg)) {
    id_ = cfg_.master.tls.enabled ? "rediss+sentinel://" : "redis+sentinel://";
    for (std::size_t i = 0; i < cfg_.sentinels.size(); ++i) {
      const endpoint& e = cfg_.sentinels[i];
      if (i)
        id_ += ',';
      id_ += e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host;
      id_ += ":" + std::to_string(e.port);
      sentinels_.push_back(std::make_shared<redis_node>(ex_, e, cfg_.options));
    }
    id_ += "/" + cfg_.master_name;
    if (cfg_.master.db != 0)
      id_ += "/" + std::to_string(cfg_.master.db);
  }

  void submit(queued q) {
    if (closed_) {
      q.handler(errc::closed, error_reply("node " + id_ + " is closed"));
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (master_ && !stale_) {
      // A healthy master is used while the periodic check runs in the background: the
      // check may be slow (an unresponsive sentinel costs its request timeout) or fail
      // (no sentinel reachable), and neither says anything against the master we know.
      if (!resolving_ && cfg_.refresh_interval.count() > 0 &&
          now - last_resolve_ >= cfg_.refresh_interval)
        resolve();
      forward(std::move(q));
      return;
    }
    // The master failed in a way that suggests a failover. A lookup that would come too soon
    // is not started: the stale master's failures are fast (backoff), and the sentinels are
    // not flooded. Otherwise the request waits for the answer, which is likely a new master.
    if (master_ && !resolving_ && now - last_resolve_ < cfg_.min_resolve_interval) {
      forward(std::move(q));
      return;
    }
    queue_.push_back(std::move(q));
    if (!resolving_)
      resolve();
  }

  void resolve() {
    resolving_ = true;
    last_resolve_ = std::chrono::steady_clock::now();
    ask(0, std::string());
  }

  void ask(std::size_t i, std::string errors) {
    if (closed_)
      return;
    if (i == sentinels_.size()) {
      resolving_ = false;
      if (master_) {
        // No sentinel could be asked, so nobody named a newer master: the one we know is
        // still the best answer. Its own reply (success, READONLY, a connect failure) is
        // more telling than "no sentinel answered", and failing requests here would fail
        // them against a master that may be perfectly healthy. A later failure of the
        // master marks it stale again, so the sentinels are asked again then.
        stale_ = false;
        drain_queue();
        return;
      }
      const std::string msg =
          "no sentinel of " + id_ + " named the master '" + cfg_.master_name + "': " + errors;
      while (!queue_.empty()) {
        queued q = std::move(queue_.front());
        queue_.pop_front();
        q.handler(errc::connect_failed, error_reply(msg));
      }
      return;
    }
    std::vector<std::string> argv{"SENTINEL", "get-master-addr-by-name", cfg_.master_name};
    sentinels_[i]->async_exec(
        std::move(argv), [self = shared_from_this(), i, errors = std::move(errors)](
                             std::error_code ec, reply r) mutable {
          asio::post(self->strand_,
                     [self, i, errors = std::move(errors), ec, r = std::move(r)]() mutable {
                       self->on_answer(i, std::move(errors), ec, std::move(r));
                     });
        });
  }

  void on_answer(std::size_t i, std::string errors, std::error_code ec, reply r) {
    if (closed_)
      return;
    std::string why;
    const auto master = ec ? std::nullopt : detail::parse_master_address(r, why);
    if (!master) {
      if (!errors.empty())
        errors += "; ";
      errors += sentinels_[i]->id() + ": ";
      if (ec)
        errors += r.str.empty() ? ec.message() : r.str;
      else
        errors += why;
      ask(i + 1, std::move(errors));
      return;
    }
    on_master(master->host, master->port);
  }

  void on_master(const std::string& host, std::uint16_t port) {
    resolving_ = false;
    stale_ = false;
    notify_master(host, port);
    if (!master_ || master_->node->get_endpoint().host != host ||
        master_->node->get_endpoint().port != port) {
      if (master_)
        retire(std::move(master_));
      endpoint e = cfg_.master;
      e.host = host;
      e.port = port;
      master_ = std::make_shared<master_link>();
      master_->node = std::make_shared<redis_node>(ex_, std::move(e), cfg_.options);
      std::lock_guard<std::mutex> g(addr_mutex_);
      addr_ = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
              std::to_string(port);
    }
    drain_queue();
  }

  void drain_queue() {
    while (!queue_.empty() && !closed_) {
      queued q = std::move(queue_.front());
      queue_.pop_front();
      forward(std::move(q));
    }
  }

  void forward(queued q) {
    // The reply comes back on the master's strand; staleness and the count are ours, so
    // they are updated here.
    std::shared_ptr<master_link> link = master_;
    ++link->in_flight;
    auto wrapped = [self = shared_from_this(), link, h = std::move(q.handler)](std::error_code ec,
                                                                               reply r) mutable {
      const bool failover = suggests_failover(ec, r);
      asio::post(self->strand_, [self, link, failover] { self->on_done(link, failover); });
      h(ec, std::move(r));
    };
    if (q.s)
      link->node->async_eval(*q.s, q.keys, q.args, std::move(wrapped));
    else
      link->node->async_exec(std::move(q.argv), std::move(wrapped));
  }

  void on_done(const std::shared_ptr<master_link>& link, bool failover) {
    --link->in_flight;
    if (failover && master_ == link)
      stale_ = true;
    if (link->retired && link->in_flight == 0) {
      link->node->close();
      std::erase(retiring_, link);
    }
  }

  // A master the sentinels no longer name. Its requests in flight were sent and may have
  // run there; closing it now would turn their answers into errc::closed, so it is closed
  // once they have completed (each is bounded by the request timeout).
  void retire(std::shared_ptr<master_link> link) {
    if (link->in_flight == 0) {
      link->node->close();
      return;
    }
    link->retired = true;
    retiring_.push_back(std::move(link));
  }

  // ---- notifiers (strand only) ------------------------------------------------------------

  // A lookup for the notifiers (a subscription without a master, a lost pub/sub connection,
  // the periodic check): the same lookup as the requests', rate-limited the same way.
  void resolve_for_notifier() {
    if (closed_ || resolving_)
      return;
    if (std::chrono::steady_clock::now() - last_resolve_ < cfg_.min_resolve_interval)
      return;  // the notifier's timer asks again
    resolve();
  }
  void notify_master(const std::string& host, std::uint16_t port);
  void close_notifiers();

  void close() {
    if (closed_)
      return;
    closed_ = true;
    close_notifiers();
    for (auto& s : sentinels_)
      s->close();
    if (master_)
      master_->node->close();
    for (auto& link : retiring_)
      link->node->close();
    retiring_.clear();
    while (!queue_.empty()) {
      queued q = std::move(queue_.front());
      queue_.pop_front();
      q.handler(errc::closed, error_reply("node " + id_ + " was closed"));
    }
  }

  asio::any_io_executor ex_;
  asio::strand<asio::any_io_executor> strand_;
  sentinel_options cfg_;
  std::string id_;
  std::vector<std::shared_ptr<redis_node>> sentinels_;
  std::shared_ptr<master_link> master_;
  std::vector<std::shared_ptr<master_link>> retiring_;
  std::deque<queued> queue_;
  std::chrono::steady_clock::time_point last_resolve_{};
  bool resolving_ = false;
  bool stale_ = true;
  bool closed_ = false;
  mutable std::mutex addr_mutex_;
  std::string addr_;
  std::vector<std::weak_ptr<notifier_impl>> notifiers_;  // strand only
};

// The notifier of a sentinel_node: one subscriber that follows the master. It runs on the
// node's strand, so it reads the node's master and starts its lookups directly. The
// subscriber is made once a master is known; a lookup that names another master retargets
// it (`lost`, then `subscribed` per channel at the new master). A lost connection starts a
// lookup (the old master is demoted in a failover, and Sentinel kills its pub/sub clients);
// while something is subscribed, a timer asks again every refresh_interval (1 s when that is
// zero), which also finds a master that changed while the old one stayed up.
struct sentinel_node::notifier_impl final : detail::notifier_core,
                                            std::enable_shared_from_this<notifier_impl> {
  notifier_impl(std::shared_ptr<sentinel_node::impl> node, notification_handler h)
      : node_(std::move(node)),
        handler_(std::make_shared<notification_handler>(std::move(h))),
        timer_(node_->strand_) {}

  void subscribe(const std::string& channel) override {
    if (closed_)
      return;
    if (sub_) {
      sub_->subscribe(channel);
    } else {
      pending_.insert(channel);
      if (node_->master_)
        on_master(node_->master_->node->get_endpoint());
      else
        node_->resolve_for_notifier();
    }
    arm_timer();
  }

  void unsubscribe(const std::string& channel) override {
    if (closed_)
      return;
    pending_.erase(channel);
    if (sub_)
      sub_->unsubscribe(channel);
  }

  void close() override {
    if (closed_)
      return;
    closed_ = true;
    pending_.clear();
    if (sub_)
      sub_->close();
    timer_.cancel();
  }

  void on_master(const endpoint& master) {
    if (closed_)
      return;
    if (sub_) {
      sub_->retarget(master);
      return;
    }
    if (pending_.empty())
      return;
    detail::subscriber::callbacks cb;
    // One handler for every connection: a stateful handler is not copied per link.
    cb.on_event = [h = handler_](const notification& n) {
      if (*h)
        (*h)(n);
    };
    cb.on_down = [w = weak_from_this()](const std::string&) {
      if (auto self = w.lock(); self && !self->closed_)
        self->node_->resolve_for_notifier();
    };
    sub_ = std::make_shared<detail::subscriber>(node_->strand_, master, node_->cfg_.options,
                                                std::move(cb));
    for (const auto& ch : pending_)
      sub_->subscribe(ch);
    pending_.clear();
  }

  bool wants_something() const { return !pending_.empty() || (sub_ && !sub_->nothing_wanted()); }

  void arm_timer() {
    if (timer_armed_ || closed_)
      return;
    timer_armed_ = true;
    const auto every = node_->cfg_.refresh_interval.count() > 0 ? node_->cfg_.refresh_interval
                                                                : std::chrono::milliseconds(1000);
    // Without a master the lookup is retried sooner (bounded by min_resolve_interval).
    const auto wait =
        sub_ ? every : std::max(node_->cfg_.min_resolve_interval, std::chrono::milliseconds(100));
    timer_.expires_after(wait);
    timer_.async_wait([self = shared_from_this()](asio::error_code ec) {
      self->timer_armed_ = false;
      if (ec || self->closed_ || !self->wants_something())
        return;  // re-armed by the next subscribe
      self->node_->resolve_for_notifier();
      self->arm_timer();
    });
  }

  std::shared_ptr<sentinel_node::impl> node_;
  std::shared_ptr<notification_handler> handler_;
  std::set<std::string> pending_;  // wanted before a master is known
  std::shared_ptr<detail::subscriber> sub_;
  asio::basic_waitable_timer<std::chrono::steady_clock,
                             asio::wait_traits<std::chrono::steady_clock>,
                             asio::strand<asio::any_io_executor>>
      timer_;
  bool timer_armed_ = false;
  bool closed_ = false;
};

void sentinel_node::impl::notify_master(const std::string& host, std::uint16_t port) {
  endpoint e = cfg_.master;
  e.host = host;
  e.port = port;
  std::erase_if(notifiers_, [](const auto& w) { return w.expired(); });
  for (auto& w : std::vector(notifiers_))
    if (auto n = w.lock())
      n->on_master(e);
}

void sentinel_node::impl::close_notifiers() {
  auto list = std::move(notifiers_);
  notifiers_.clear();
  for (auto& w : list)
    if (auto n = w.lock())
      n->close();
}

sentinel_node::sentinel_node(asio::any_io_executor ex, sentinel_options cfg) {
  if (cfg.sentinels.empty())
    throw lock_error(make_error_code(errc::invalid_argument), "sentinel_node: no sentinels");
  if (cfg.master_name.empty())
    throw lock_error(make_error_code(errc::invalid_argument), "sentinel_node: no master name");
  impl_ = std::make_shared<impl>(std::move(ex), std::move(cfg));
}

sentinel_node::~sentinel_node() {
  // Close on the strand; the impl stays alive until queued work has finished.
  asio::post(impl_->strand_, [i = impl_] { i->close(); });
}

const std::string& sentinel_node::id() const noexcept {
  return impl_->id_;
}

void sentinel_node::async_eval(const script& s, std::span<const std::string> keys,
                               std::span<const std::string> args, reply_handler handler) {
  impl::queued q;
  q.s.emplace(s);
  q.keys.assign(keys.begin(), keys.end());
  q.args.assign(args.begin(), args.end());
  q.handler = std::move(handler);
  asio::post(impl_->strand_, [i = impl_, q = std::move(q)]() mutable { i->submit(std::move(q)); });
}

void sentinel_node::async_exec(std::vector<std::string> argv, reply_handler handler) {
  impl::queued q;
  q.argv = std::move(argv);
  q.handler = std::move(handler);
  asio::post(impl_->strand_, [i = impl_, q = std::move(q)]() mutable { i->submit(std::move(q)); });
}

void sentinel_node::async_identify(identity_handler handler) {
  // Through the request path, so the master is looked up (and followed) like for a script.
  async_exec({"INFO", "server"}, [h = std::move(handler)](std::error_code ec, reply r) mutable {
    if (ec) {
      h(ec, {});
      return;
    }
    const std::string_view run_id = detail::info_field(r.str, "run_id");
    if (r.kind != reply::type::string || run_id.empty()) {
      h(make_error_code(errc::protocol_error), {});
      return;
    }
    h({}, {"run_id:" + std::string(run_id)});
  });
}

std::shared_ptr<notifier> sentinel_node::open_notifier(notification_handler on_event) {
  return detail::open_registered_notifier<notifier_impl>(impl_, std::move(on_event));
}

void sentinel_node::close() {
  asio::post(impl_->strand_, [i = impl_] { i->close(); });
}

std::string sentinel_node::current_master() const {
  std::lock_guard<std::mutex> g(impl_->addr_mutex_);
  return impl_->addr_;
}

}  // namespace redlock

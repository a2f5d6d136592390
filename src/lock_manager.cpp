// The lock manager's operations: a thin Asio driver over the decision core (core.hpp).
//
// One `operation` object per call holds the machine, the keys, the arguments and one timer;
// everything about it runs on the manager's strand. Node replies are posted to that strand,
// fed to the machine, and the machine's actions are carried out until it goes idle.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_set>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/system_executor.hpp>

#include "redlock/detail/core.hpp"
#include "redlock/detail/random.hpp"
#include "redlock/detail/scripts.hpp"
#include "redlock/error.hpp"
#include "redlock/lock_manager.hpp"

namespace redlock::detail {

namespace core_ns = redlock::detail::core;
using std::chrono::milliseconds;

class manager_impl {
 public:
  manager_impl(asio::any_io_executor ex, std::vector<std::shared_ptr<node>> nodes, settings s)
      : ex_(std::move(ex)),
        strand_(asio::make_strand(ex_)),
        nodes_(std::move(nodes)),
        settings_(s),
        quorum_(core_ns::quorum_of(nodes_.size())),
        backlog_(nodes_.size()),
        lag_limit_(s.node_lag_limit.count() > 0 ? s.node_lag_limit : s.request_timeout / 2) {}

  asio::any_io_executor ex_;
  asio::strand<asio::any_io_executor> strand_;
  std::vector<std::shared_ptr<node>> nodes_;
  settings settings_;
  std::size_t quorum_;
  // Per node, this manager's unanswered requests (strand only): see core::backlog.
  std::vector<core_ns::backlog> backlog_;
  core_ns::duration lag_limit_;

  std::mutex hook_mutex_;
  std::shared_ptr<const std::function<void(const node_error&)>> hook_;
  std::atomic<bool> has_hook_{false};

  std::mutex life_mutex_;
  std::size_t in_flight_ = 0;
  bool closing_ = false;
  bool closed_ = false;
  std::atomic<bool> closing_flag_{false};
  std::vector<quit_completion> quit_waiters_;

  // Called with life_mutex_ held by `lk`; releases it before touching nodes or handlers.
  void finish_quit(std::unique_lock<std::mutex>& lk) {
    closed_ = true;
    auto waiters = std::move(quit_waiters_);
    quit_waiters_.clear();
    lk.unlock();
    for (auto& n : nodes_)
      n->close();
    for (auto& w : waiters) {
      asio::post(strand_, [w = std::move(w)]() mutable { w(std::error_code{}); });
    }
  }
};

namespace {

std::error_code check_retry(int retry_count, milliseconds delay, milliseconds jitter) {
  if (retry_count < -1 || delay.count() < 0 || jitter.count() < 0) {
    return make_error_code(errc::invalid_argument);
  }
  return {};
}

std::error_code check_ttl(milliseconds ttl, double drift_factor) {
  // The TTL must leave some validity after the drift margin, and fit the wire.
  if (ttl.count() <= 0 || ttl > core_ns::max_ttl ||
      ttl <= core_ns::drift_margin(ttl, drift_factor)) {
    return make_error_code(errc::invalid_argument);
  }
  return {};
}

core_ns::retry_policy policy_for(const settings& s, const call_options& o) {
  return {o.retry_count.value_or(s.retry_count), o.retry_delay.value_or(s.retry_delay),
          o.retry_jitter.value_or(s.retry_jitter)};
}

std::error_code check_options(const settings& s, const call_options& o) {
  const auto p = policy_for(s, o);
  return check_retry(p.retry_count, p.delay, p.jitter);
}

std::error_code check_resources(const std::vector<std::string>& resources) {
  if (resources.empty())
    return make_error_code(errc::invalid_argument);
  if (resources.size() > 1) {
    std::vector<std::string_view> sorted(resources.begin(), resources.end());
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      return make_error_code(errc::invalid_argument);
    }
  }
  return {};
}

const script& script_for(core_ns::op_kind k) {
  switch (k) {
    case core_ns::op_kind::acquire:
      return acquire_script();
    case core_ns::op_kind::extend:
      return extend_script();
    case core_ns::op_kind::release:
      break;
  }
  return release_script();
}

enum class purpose : std::uint8_t { primary, release, resync };

class operation final : public std::enable_shared_from_this<operation> {
 public:
  operation(std::shared_ptr<manager_impl> m, const core_ns::op_config& cfg,
            std::vector<std::string> keys, std::string value, milliseconds ttl,
            std::uint64_t written = 0)
      : m_(std::move(m)),
        machine_(cfg, &random_u64),
        keys_(std::move(keys)),
        args_{std::move(value), std::to_string(ttl.count())},
        ttl_(ttl),
        timer_(m_->strand_),
        written_(written) {}

  lock_completion lock_done_;
  unlock_completion unlock_done_;

  void start() { run(machine_.resume(core_ns::event::start(core_ns::clock::now()))); }

  void cancel(std::error_code ec) {
    if (completed_)
      return;
    run(machine_.resume(core_ns::event::cancel(ec, core_ns::clock::now())));
  }

 private:
  enum class timer_use : std::uint8_t { none, attempt, retry, drain };

  void run(core_ns::action a) {
    using t = core_ns::action::type;
    for (;;) {
      switch (a.kind) {
        case t::idle:
          maybe_finish();
          return;
        case t::send:
          send_round(a.delay);
          break;
        case t::release_all:
          for (std::size_t i = 0; i < m_->nodes_.size(); ++i) {
            send(i, release_script(), purpose::release);
          }
          break;
        case t::resync:
          // Only where an acquire of this value once went (a node that lost the key, e.g. by
          // a restart): a node never asked stays out of the handle's `written` set, so a key
          // set there by an extend that then failed could never be found by the release.
          if (may_hold(a.node))
            send(a.node, acquire_script(), purpose::resync);
          break;
        case t::wait:
          arm(timer_use::retry, a.delay);
          break;
        case t::complete:
          complete(a.ec);
          break;
      }
      a = machine_.resume(core_ns::event::next());
    }
  }

  void send_round(core_ns::duration node_deadline) {
    const auto& s = script_for(machine_.config().kind);
    const auto& states = machine_.nodes();
    for (std::size_t i = 0; i < states.size(); ++i) {
      if (states[i].in_round)
        send(i, s, purpose::primary);
    }
    // Nodes may have no deadline of their own (custom nodes); this one bounds the attempt.
    arm(timer_use::attempt, node_deadline);
  }

  bool may_hold(std::size_t i) const noexcept { return i >= 64 || ((written_ >> i) & 1U) != 0; }

  // Answers node i without sending anything; posted, so the machine sees the same sequence of
  // events as with a real reply.
  void answer_locally(std::size_t i, purpose p, std::error_code ec, reply r) {
    asio::post(m_->strand_,
               [self = shared_from_this(), i, p, attempt = machine_.attempt_id(), ec,
                r = std::move(r)] { self->on_node_reply(i, p, attempt, ec, r, std::nullopt); });
  }

  void send(std::size_t i, const script& s, purpose p) {
    ++outstanding_;
    const auto attempt = machine_.attempt_id();
    const auto now = core_ns::clock::now();
    auto& backlog = m_->backlog_[i];
    const bool releasing =
        p == purpose::release || machine_.config().kind == core_ns::op_kind::release;
    if (releasing && !may_hold(i)) {
      // No acquire of this value ever went to node i, so it cannot hold it: "absent" is
      // certain, and sending would only feed a node that was skipped for lagging.
      reply absent;
      absent.kind = reply::type::integer;
      absent.integer = 0;
      return answer_locally(i, p, {}, std::move(absent));
    }
    // Acquires and extends to a lagging node fail now rather than deepen its queue; releases
    // always go out (they only remove keys).
    if (!releasing && backlog.lagging(now, m_->lag_limit_))
      return answer_locally(i, p, make_error_code(errc::node_lagging), reply{});
    const bool may_set_key =
        p == purpose::resync ||
        (p == purpose::primary && machine_.config().kind == core_ns::op_kind::acquire);
    if (may_set_key && i < 64)
      written_ |= std::uint64_t{1} << i;
    const auto ticket = backlog.sent(now);
    m_->nodes_[i]->async_eval(
        s, keys_, args_,
        [self = shared_from_this(), i, p, attempt, ticket](std::error_code ec, reply r) mutable {
          auto& strand = self->m_->strand_;
          asio::post(strand, [self = std::move(self), i, p, attempt, ticket, ec,
                              r = std::move(r)]() mutable {
            self->on_node_reply(i, p, attempt, ec, r, ticket);
          });
        });
  }

  void on_node_reply(std::size_t i, purpose p, std::uint32_t attempt, std::error_code ec,
                     const reply& r, std::optional<core_ns::backlog::ticket> ticket) {
    --outstanding_;
    if (ticket)
      m_->backlog_[i].answered(*ticket);
    const auto kind = p == purpose::primary   ? machine_.config().kind
                      : p == purpose::release ? core_ns::op_kind::release
                                              : core_ns::op_kind::acquire;
    std::error_code vote_ec;
    const auto a = core_ns::interpret(kind, ec, r, keys_.size(), vote_ec);
    std::string_view message = r.is_error() ? std::string_view(r.str) : std::string_view();
    if (a == core_ns::answer::error || a == core_ns::answer::timeout) {
      hook(i, vote_ec, message);
    }
    if (p == purpose::primary) {
      auto e = core_ns::event::reply(i, attempt, a, vote_ec, core_ns::clock::now());
      e.message = message;
      run(machine_.resume(e));
    } else {
      maybe_finish();
    }
  }

  void hook(std::size_t i, std::error_code ec, std::string_view message) {
    // errc::closed comes from our own quit or destructor, not from a failing node.
    if (ec == errc::closed || !m_->has_hook_.load(std::memory_order_acquire))
      return;
    report_node_error(*m_, node_error{m_->nodes_[i]->id(), ec, std::string(message)});
  }

  void arm(timer_use use, core_ns::duration d) {
    timer_use_ = use;
    const auto gen = ++timer_gen_;
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this(), gen](std::error_code ec) {
      if (ec || gen != self->timer_gen_)
        return;
      self->on_timer();
    });
  }

  void disarm() {
    ++timer_gen_;
    timer_use_ = timer_use::none;
    timer_.cancel();
  }

  void on_timer() {
    const auto now = core_ns::clock::now();
    switch (timer_use_) {
      case timer_use::none:
        return;
      case timer_use::attempt: {
        timer_use_ = timer_use::none;
        const auto& states = machine_.nodes();
        for (std::size_t i = 0; i < states.size(); ++i) {
          if (states[i].in_round && states[i].outcome == vote::pending) {
            hook(i, make_error_code(errc::timeout), {});
          }
        }
        run(machine_.resume(core_ns::event::attempt_timeout(now)));
        return;
      }
      case timer_use::retry:
        timer_use_ = timer_use::none;
        // quit() waits for operations in flight; a retry loop must not keep it waiting.
        if (m_->closing_flag_.load(std::memory_order_acquire)) {
          run(machine_.resume(core_ns::event::cancel(make_error_code(errc::closed), now)));
        } else {
          run(machine_.resume(core_ns::event::retry_timer(now)));
        }
        return;
      case timer_use::drain:
        timer_use_ = timer_use::none;
        drained_ = true;
        maybe_finish();
        return;
    }
  }

  redlock::report make_report() const {
    redlock::report rep;
    rep.attempts = machine_.attempts();
    rep.quorum = machine_.quorum();
    const auto& states = machine_.nodes();
    rep.nodes.reserve(states.size());
    for (std::size_t i = 0; i < states.size(); ++i) {
      const auto& s = states[i];
      node_result nr;
      const auto& n = m_->nodes_[i];
      nr.node = node_id(std::shared_ptr<const std::string>(n, &n->id()));  // shared, not copied
      nr.outcome = s.outcome;
      nr.ec = s.ec;
      nr.message = s.message;
      nr.latency = std::chrono::duration_cast<std::chrono::microseconds>(s.latency);
      rep.nodes.push_back(std::move(nr));
    }
    return rep;
  }

  void complete(std::error_code ec) {
    completed_ = true;
    disarm();
    auto rep = make_report();
    if (machine_.config().kind == core_ns::op_kind::release) {
      unlock_result res;
      res.released = machine_.released();
      res.absent = machine_.absent();
      res.nodes = m_->nodes_.size();
      res.report = std::move(rep);
      auto done = std::move(unlock_done_);
      if (outstanding_ > 0)
        arm(timer_use::drain, machine_.config().node_timeout);
      done(ec, std::move(res));
    } else {
      lock::parts parts;
      parts.manager = m_;
      parts.resources = keys_;
      if (!ec)
        parts.value = args_[0];
      parts.ttl = ttl_;
      parts.deadline = ec ? core_ns::time_point{} : machine_.deadline();
      parts.report = std::move(rep);
      parts.written = written_;
      auto done = std::move(lock_done_);
      if (outstanding_ > 0)
        arm(timer_use::drain, machine_.config().node_timeout);
      done(ec, lock(std::move(parts)));
    }
  }

  void maybe_finish() {
    if (!completed_ || !registered_)
      return;
    if (outstanding_ > 0 && !drained_)
      return;
    registered_ = false;
    disarm();
    end_operation(*m_);
  }

  std::shared_ptr<manager_impl> m_;
  core_ns::machine machine_;
  std::vector<std::string> keys_;
  std::array<std::string, 2> args_;  // ARGV[1] = value, ARGV[2] = ttl in ms
  milliseconds ttl_;
  asio::steady_timer timer_;
  timer_use timer_use_ = timer_use::none;
  std::uint64_t timer_gen_ = 0;
  std::size_t outstanding_ = 0;
  bool completed_ = false;
  bool registered_ = true;
  bool drained_ = false;
  std::uint64_t written_;  // see lock::parts::written
};

// Completes on the strand, never inside the initiating call.
void post_lock_error(const std::shared_ptr<manager_impl>& m, std::error_code ec,
                     lock_completion done) {
  lock::parts parts;
  parts.manager = m;
  parts.report.quorum = m->quorum_;
  asio::post(m->strand_, [done = std::move(done), ec, p = std::move(parts)]() mutable {
    done(ec, lock(std::move(p)));
  });
}

void post_unlock_error(const std::shared_ptr<manager_impl>& m, std::error_code ec,
                       unlock_completion done) {
  unlock_result res;
  if (m) {
    res.nodes = m->nodes_.size();
    res.report.quorum = m->quorum_;
  }
  auto f = [done = std::move(done), ec, res = std::move(res)]() mutable {
    done(ec, std::move(res));
  };
  if (m) {
    asio::post(m->strand_, std::move(f));
  } else {
    asio::post(asio::system_executor(), std::move(f));
  }
}

milliseconds node_timeout_for(const settings& s, milliseconds ttl) {
  return std::min(s.request_timeout, ttl);
}

struct cancel_handler {
  std::weak_ptr<operation> op;
  std::shared_ptr<manager_impl> m;
  void operator()(asio::cancellation_type type) {
    if (type == asio::cancellation_type::none)
      return;
    // Emitted on the canceller's thread: hop to the strand.
    asio::post(m->strand_, [w = op] {
      if (auto o = w.lock())
        o->cancel(make_error_code(errc::cancelled));
    });
  }
};

}  // namespace

std::shared_ptr<manager_impl> make_manager(asio::any_io_executor ex,
                                           std::vector<std::shared_ptr<node>> nodes, settings s) {
  auto invalid = [](const char* why) {
    throw lock_error(make_error_code(errc::invalid_argument), why);
  };
  if (nodes.empty())
    invalid("a lock manager needs at least one node");
  std::unordered_set<const node*> seen;
  std::unordered_set<std::string> ids;
  for (const auto& n : nodes) {
    if (!n)
      invalid("null node");
    // The same server twice would vote twice and break the quorum's meaning.
    if (!seen.insert(n.get()).second)
      invalid("the same node object is listed twice");
    if (!ids.insert(n->id()).second)
      invalid("the same node id is listed twice");
  }
  if (!(s.drift_factor >= 0.0 && s.drift_factor < 1.0))
    invalid("drift_factor must be in [0, 1)");
  if (check_retry(s.retry_count, s.retry_delay, s.retry_jitter)) {
    invalid("retry_count must be >= -1 and retry delays must not be negative");
  }
  if (s.request_timeout.count() <= 0 || s.connect_timeout.count() <= 0) {
    invalid("timeouts must be positive");
  }
  if (s.node_lag_limit.count() < 0)
    invalid("node_lag_limit must not be negative");
  return std::make_shared<manager_impl>(std::move(ex), std::move(nodes), s);
}

void start_lock(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                milliseconds ttl, call_options opts, lock_completion done) {
  start_lock(m, std::move(resources), ttl, opts, asio::cancellation_slot(), std::move(done));
}

// The fixed inputs of one operation, from the manager's settings and the call's overrides.
core_ns::op_config config_for(core_ns::op_kind kind, const manager_impl& m, milliseconds ttl,
                              const call_options& opts, core_ns::time_point lock_deadline = {}) {
  const auto& s = m.settings_;
  core_ns::op_config cfg;
  cfg.kind = kind;
  cfg.nodes = m.nodes_.size();
  cfg.ttl = ttl;
  cfg.drift_factor = s.drift_factor;
  cfg.retry = policy_for(s, opts);
  // An adopted handle may carry no ttl: release then waits the plain request timeout.
  cfg.node_timeout = ttl.count() > 0 ? node_timeout_for(s, ttl) : s.request_timeout;
  cfg.lock_deadline = lock_deadline;
  return cfg;
}

void start_lock(const std::shared_ptr<manager_impl>& m, std::vector<std::string> resources,
                milliseconds ttl, call_options opts, asio::cancellation_slot slot,
                lock_completion done) {
  const auto& s = m->settings_;
  std::error_code ec = check_resources(resources);
  if (!ec)
    ec = check_ttl(ttl, s.drift_factor);
  if (!ec)
    ec = check_options(s, opts);
  if (ec)
    return post_lock_error(m, ec, std::move(done));
  if (!begin_operation(*m))
    return post_lock_error(m, errc::closed, std::move(done));

  const auto cfg = config_for(core_ns::op_kind::acquire, *m, ttl, opts);
  std::shared_ptr<operation> op;
  try {
    op = std::make_shared<operation>(m, cfg, std::move(resources), make_lock_value(), ttl);
  } catch (...) {
    end_operation(*m);
    throw;
  }
  op->lock_done_ = std::move(done);
  if (slot.is_connected())
    slot.template emplace<cancel_handler>(cancel_handler{op, m});
  asio::post(m->strand_, [op] { op->start(); });
}

void start_extend(const std::shared_ptr<manager_impl>& m, const lock& l, milliseconds ttl,
                  call_options opts, lock_completion done) {
  if (!m) {
    asio::post(asio::system_executor(), [done = std::move(done)]() mutable {
      done(make_error_code(errc::invalid_argument), lock());
    });
    return;
  }
  const auto& s = m->settings_;
  std::error_code ec;
  if (!l.acquired() || l.manager() != m)
    ec = errc::invalid_argument;
  if (!ec)
    ec = check_ttl(ttl, s.drift_factor);
  if (!ec)
    ec = check_options(s, opts);
  if (ec)
    return post_lock_error(m, ec, std::move(done));
  if (!begin_operation(*m))
    return post_lock_error(m, errc::closed, std::move(done));

  const auto cfg = config_for(core_ns::op_kind::extend, *m, ttl, opts, l.validity_deadline());
  auto op = std::make_shared<operation>(m, cfg, l.resources(), l.value(), ttl, l.written_nodes());
  op->lock_done_ = std::move(done);
  asio::post(m->strand_, [op] { op->start(); });
}

void start_unlock(const std::shared_ptr<manager_impl>& m, const lock& l, call_options opts,
                  unlock_completion done) {
  if (!m || !l.acquired() || l.manager() != m) {
    return post_unlock_error(m, errc::invalid_argument, std::move(done));
  }
  const auto& s = m->settings_;
  if (auto ec = check_options(s, opts))
    return post_unlock_error(m, ec, std::move(done));
  if (!begin_operation(*m))
    return post_unlock_error(m, errc::closed, std::move(done));

  const auto cfg = config_for(core_ns::op_kind::release, *m, l.ttl(), opts, l.validity_deadline());
  auto op =
      std::make_shared<operation>(m, cfg, l.resources(), l.value(), l.ttl(), l.written_nodes());
  op->unlock_done_ = std::move(done);
  asio::post(m->strand_, [op] { op->start(); });
}

void start_quit(const std::shared_ptr<manager_impl>& m, quit_completion done) {
  std::unique_lock lk(m->life_mutex_);
  m->closing_ = true;
  m->closing_flag_.store(true, std::memory_order_release);
  if (m->closed_) {
    lk.unlock();
    asio::post(m->strand_, [done = std::move(done)]() mutable { done(std::error_code{}); });
    return;
  }
  m->quit_waiters_.push_back(std::move(done));
  if (m->in_flight_ == 0) {
    // Posted so that the completion never runs inside async_quit.
    m->finish_quit(lk);
  }
}

const asio::any_io_executor& executor_of(const manager_impl& m) noexcept {
  return m.ex_;
}

const std::vector<std::shared_ptr<node>>& nodes_of(const manager_impl& m) noexcept {
  return m.nodes_;
}

const settings& settings_of(const manager_impl& m) noexcept {
  return m.settings_;
}

void report_node_error(manager_impl& m, const node_error& e) {
  std::shared_ptr<const std::function<void(const node_error&)>> h;
  {
    std::lock_guard lk(m.hook_mutex_);
    h = m.hook_;
  }
  if (h && *h) {
    try {
      (*h)(e);
    } catch (...) {
      // The hook must not throw; an exception must not tear down an operation either.
    }
  }
}

bool begin_operation(manager_impl& m) noexcept {
  std::lock_guard lk(m.life_mutex_);
  if (m.closing_)
    return false;
  ++m.in_flight_;
  return true;
}

void end_operation(manager_impl& m) noexcept {
  std::unique_lock lk(m.life_mutex_);
  --m.in_flight_;
  if (m.closing_ && !m.closed_ && m.in_flight_ == 0)
    m.finish_quit(lk);
}

asio::any_io_executor fallback_executor(const manager_impl* m) noexcept {
  if (m)
    return m->ex_;
  return asio::system_executor();
}

}  // namespace redlock::detail

namespace redlock {

lock_manager::lock_manager(executor_type ex, std::vector<std::shared_ptr<node>> nodes, settings s)
    : impl_(detail::make_manager(std::move(ex), std::move(nodes), s)) {}

lock_manager::~lock_manager() {
  if (!impl_)
    return;
  auto& m = *impl_;
  std::unique_lock lk(m.life_mutex_);
  m.closing_ = true;
  m.closing_flag_.store(true, std::memory_order_release);
  if (m.closed_)
    return;
  // Close now, without waiting: operations in flight fail with errc::closed.
  m.finish_quit(lk);
}

std::size_t lock_manager::size() const noexcept {
  return impl_->nodes_.size();
}
std::size_t lock_manager::quorum() const noexcept {
  return impl_->quorum_;
}
const settings& lock_manager::get_settings() const noexcept {
  return impl_->settings_;
}

void lock_manager::on_node_error(std::function<void(const node_error&)> hook) {
  auto h = std::make_shared<const std::function<void(const node_error&)>>(std::move(hook));
  std::lock_guard lk(impl_->hook_mutex_);
  impl_->has_hook_.store(static_cast<bool>(*h), std::memory_order_release);
  impl_->hook_ = std::move(h);
}

}  // namespace redlock

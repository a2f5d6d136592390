// The fake deployment of redlock::testing (include/redlock/testing.hpp).
#include "redlock/testing.hpp"

#include <algorithm>
#include <charconv>
#include <string>
#include <utility>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <set>

#include "internal/scripts.hpp"
#include "redlock/error.hpp"

namespace redlock::testing {

// --- step -------------------------------------------------------------------------------

step step::store(std::chrono::milliseconds d) {
  step s;
  s.use_store = true;
  s.delay = d;
  return s;
}

step step::integer(long long v, std::chrono::milliseconds d) {
  step s;
  s.r.kind = redlock::reply::type::integer;
  s.r.integer = v;
  s.delay = d;
  return s;
}

step step::error(std::error_code ec, std::string message, std::chrono::milliseconds d) {
  step s;
  s.ec = ec;
  if (!message.empty()) {
    s.r.kind = redlock::reply::type::error;
    s.r.str = std::move(message);
  }
  s.delay = d;
  return s;
}

step step::error_reply(std::string message) {
  return error(make_error_code(errc::server_error), std::move(message));
}

step step::down() {
  return error(make_error_code(errc::connect_failed));
}

step step::silence() {
  step s;
  s.never = true;
  return s;
}

// --- fake_server ------------------------------------------------------------------------

namespace {

constexpr script_kind all_kinds[] = {script_kind::acquire,      script_kind::extend,
                                     script_kind::release,      script_kind::fenced_acquire,
                                     script_kind::confirm,      script_kind::other,
                                     script_kind::fair_acquire, script_kind::force_release};

script_kind kind_of(const script& s) {
  // By SHA1, as a server's script cache would: the manager sends these exact scripts.
  if (s.sha1() == detail::acquire_script().sha1() ||
      s.sha1() == detail::acquire_owner_script().sha1())
    return script_kind::acquire;
  if (s.sha1() == detail::extend_script().sha1() ||
      s.sha1() == detail::extend_owner_script().sha1())
    return script_kind::extend;
  if (s.sha1() == detail::force_release_script().sha1())
    return script_kind::force_release;
  if (s.sha1() == detail::release_script().sha1() ||
      s.sha1() == detail::release_notify_script().sha1() ||
      s.sha1() == detail::release_owner_script().sha1() ||
      s.sha1() == detail::release_notify_owner_script().sha1() ||
      s.sha1() == detail::fair_release_script().sha1())
    return script_kind::release;
  if (s.sha1() == detail::fair_acquire_script().sha1())
    return script_kind::fair_acquire;
  if (s.sha1() == detail::fenced_acquire_script().sha1())
    return script_kind::fenced_acquire;
  if (s.sha1() == detail::fence_confirm_script().sha1())
    return script_kind::confirm;
  return script_kind::other;
}

// ARGV[2] as milliseconds; nullopt when absent or not an integer (the key then gets no TTL,
// where Redis would fail the SET: the manager always sends a valid one).
std::optional<std::chrono::milliseconds> ttl_arg(const call& c) {
  if (c.args.size() < 2)
    return std::nullopt;
  long long ms = 0;
  const auto& a = c.args[1];
  if (auto [p, ec] = std::from_chars(a.data(), a.data() + a.size(), ms);
      ec != std::errc{} || p != a.data() + a.size() || ms <= 0)
    return std::nullopt;
  return std::chrono::milliseconds(ms);
}

}  // namespace

fake_server::fake_server(std::shared_ptr<virtual_clock> clock)
    : clock_(clock ? std::move(clock) : std::make_shared<virtual_clock>()) {}

void fake_server::set_all(const step& s) {
  std::lock_guard lk(mutex_);
  for (auto k : all_kinds)
    fallback_[k] = s;
}

void fake_server::go_down() {
  set_all(step::down());
}
void fake_server::stop_answering() {
  set_all(step::silence());
}
void fake_server::delay_answers(std::chrono::milliseconds d) {
  set_all(step::store(d));
}
void fake_server::answer_with_error(std::string message) {
  set_all(step::error_reply(std::move(message)));
}
void fake_server::recover() {
  set_all(step::store());
}

void fake_server::lose_keys() {
  std::lock_guard lk(mutex_);
  keys_.clear();
}

void fake_server::push(script_kind kind, step s) {
  std::lock_guard lk(mutex_);
  queued_[kind].push_back(std::move(s));
}

void fake_server::set_fallback(script_kind kind, step s) {
  std::lock_guard lk(mutex_);
  fallback_[kind] = std::move(s);
}

void fake_server::purge_expired() {
  const auto now = clock_->now();
  for (auto it = keys_.begin(); it != keys_.end();) {
    if (it->second.expires_at && *it->second.expires_at <= now)
      it = keys_.erase(it);
    else
      ++it;
  }
}

std::map<std::string, std::string> fake_server::store() const {
  std::lock_guard lk(mutex_);
  const_cast<fake_server*>(this)->purge_expired();
  std::map<std::string, std::string> out;
  for (const auto& [k, e] : keys_)
    out.emplace(k, e.value);
  return out;
}

std::optional<std::string> fake_server::value(const std::string& key) const {
  std::lock_guard lk(mutex_);
  const_cast<fake_server*>(this)->purge_expired();
  if (auto it = keys_.find(key); it != keys_.end())
    return it->second.value;
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> fake_server::ttl(const std::string& key) const {
  std::lock_guard lk(mutex_);
  const_cast<fake_server*>(this)->purge_expired();
  if (auto it = keys_.find(key); it != keys_.end() && it->second.expires_at)
    return *it->second.expires_at - clock_->now();
  return std::nullopt;
}

void fake_server::set_key(const std::string& key, const std::string& value,
                          std::optional<std::chrono::milliseconds> ttl) {
  std::lock_guard lk(mutex_);
  entry e{value, std::nullopt};
  if (ttl)
    e.expires_at = clock_->now() + *ttl;
  keys_[key] = std::move(e);
}

std::vector<call> fake_server::calls() const {
  std::lock_guard lk(mutex_);
  return calls_;
}

std::size_t fake_server::count(script_kind kind) const {
  std::lock_guard lk(mutex_);
  std::size_t n = 0;
  for (const auto& c : calls_)
    n += c.kind == kind ? 1 : 0;
  return n;
}

step fake_server::handle(const call& c) {
  announcements_t announced;
  step st = handle_locked(c, announced);
  if (!announced.empty())
    announce(announced);
  return st;
}

step fake_server::handle_locked(const call& c, announcements_t& announced) {
  std::lock_guard lk(mutex_);
  calls_.push_back(c);
  step st = step::store();
  if (auto& q = queued_[c.kind]; !q.empty()) {
    st = std::move(q.front());
    q.pop_front();
  } else if (auto it = fallback_.find(c.kind); it != fallback_.end()) {
    st = it->second;
  }
  if (st.use_store && !st.never) {
    // The script runs when the request arrives, as on a real server; a delay only holds
    // back the answer.
    st.r = run_store(c, announced);
    st.use_store = false;
  }
  return st;
}

redlock::reply fake_server::run_store(const call& c, announcements_t& announced) {
  // The semantics of src/manager/scripts.cpp; TTLs on the virtual clock.
  purge_expired();
  redlock::reply r;
  r.kind = redlock::reply::type::integer;
  if (c.args.empty() || c.kind == script_kind::other) {
    r.kind = redlock::reply::type::error;
    r.str = "ERR unknown script";
    return r;
  }
  if (c.fair)
    return run_fair(c, announced);
  if (c.owner)
    return run_owner(c, announced);
  if (c.kind == script_kind::force_release)
    return run_force(c, announced);
  const auto& value = c.args[0];
  const auto n = static_cast<long long>(c.keys.size());
  const auto ttl = ttl_arg(c);
  const auto expires_at = [&]() -> std::optional<std::chrono::milliseconds> {
    if (ttl)
      return clock_->now() + *ttl;
    return std::nullopt;
  };
  switch (c.kind) {
    case script_kind::acquire: {
      // Denied: -1 - the longest TTL among foreign keys, 0 when one never expires.
      std::optional<std::int64_t> wait;
      for (const auto& k : c.keys) {
        if (auto it = keys_.find(k); it != keys_.end() && it->second.value != value) {
          if (!it->second.expires_at)
            return r;
          const std::int64_t left = (*it->second.expires_at - clock_->now()).count();
          wait = std::max(wait.value_or(0), left);
        }
      }
      if (wait) {
        r.integer = -1 - *wait;
        return r;
      }
      for (const auto& k : c.keys)
        keys_[k] = entry{value, expires_at()};
      r.integer = n;
      return r;
    }
    case script_kind::extend: {
      bool missing = false;
      for (const auto& k : c.keys) {
        auto it = keys_.find(k);
        if (it == keys_.end()) {
          missing = true;
        } else if (it->second.value != value) {
          return r;
        }
      }
      if (missing) {
        r.integer = -1;
        return r;
      }
      for (const auto& k : c.keys)
        keys_[k].expires_at = expires_at();
      r.integer = n;
      return r;
    }
    case script_kind::release:
      for (const auto& k : c.keys) {
        if (auto it = keys_.find(k); it != keys_.end() && it->second.value == value) {
          keys_.erase(it);
          ++r.integer;
          // The SHA1 of the value, as the real script's redis.sha1hex(ARGV[1]).
          if (c.announces)
            announced.emplace_back(detail::release_channel(k), script(value).sha1());
        }
      }
      return r;
    case script_kind::fenced_acquire:
    case script_kind::confirm: {
      // KEYS: n lock keys, then their n counters (durable: no TTL).
      const std::size_t locks = c.keys.size() / 2;
      auto counter = [&](std::size_t i) -> std::uint64_t {
        auto it = keys_.find(c.keys[locks + i]);
        return it == keys_.end() ? 0 : std::stoull(it->second.value);
      };
      if (c.kind == script_kind::fenced_acquire) {
        for (std::size_t i = 0; i < locks; ++i) {
          if (auto it = keys_.find(c.keys[i]); it != keys_.end() && it->second.value != value)
            return r;
        }
        std::uint64_t t = 0;
        for (std::size_t i = 0; i < locks; ++i) {
          const auto next = counter(i) + 1;
          keys_[c.keys[locks + i]] = entry{std::to_string(next), std::nullopt};
          t = std::max(t, next);
        }
        for (std::size_t i = 0; i < locks; ++i)
          keys_[c.keys[i]] = entry{value, expires_at()};
        r.integer = static_cast<long long>(t);
        return r;
      }
      const auto t = c.args.size() > 1 ? std::stoull(c.args[1]) : 0;
      for (std::size_t i = 0; i < locks; ++i) {
        if (auto it = keys_.find(c.keys[i]); it == keys_.end() || it->second.value != value)
          return r;
      }
      for (std::size_t i = 0; i < locks; ++i) {
        if (counter(i) > t) {
          r.integer = -1;
          return r;
        }
      }
      for (std::size_t i = 0; i < locks; ++i)
        keys_[c.keys[locks + i]] = entry{std::to_string(t), std::nullopt};
      r.integer = 1;
      return r;
    }
    case script_kind::other:
    case script_kind::fair_acquire:
    case script_kind::force_release:
      break;
  }
  return r;
}

// The semantics of the owner scripts (acquire_owner_script() and the others in
// src/manager/scripts.cpp): KEYS = n lock keys, then their n owner record keys; ARGV = value,
// ttl, record. The lock keys behave exactly as with the plain scripts.
redlock::reply fake_server::run_owner(const call& c, announcements_t& announced) {
  redlock::reply r;
  r.kind = redlock::reply::type::integer;
  const std::size_t n = c.keys.size() / 2;
  const auto& value = c.args[0];
  const auto ttl = ttl_arg(c);
  const auto now = clock_->now();
  const std::string record = c.args.size() > 2 ? c.args[2] : std::string();
  const auto ours = [&](const std::string& key) {
    auto it = keys_.find(key);
    return it != keys_.end() && it->second.value.rfind(value + "\n", 0) == 0;
  };
  // A grant or an extension: our record gets the new TTL; where it is missing or not ours,
  // the record (if the call has one) is written.
  const auto write_records = [&] {
    for (std::size_t i = 0; i < n; ++i) {
      const auto& o = c.keys[n + i];
      if (ours(o))
        keys_[o].expires_at = ttl ? std::optional(now + *ttl) : std::nullopt;
      else if (!record.empty())
        keys_[o] = entry{record, ttl ? std::optional(now + *ttl) : std::nullopt};
    }
  };
  switch (c.kind) {
    case script_kind::acquire: {
      std::optional<std::int64_t> wait;
      for (std::size_t i = 0; i < n; ++i) {
        if (auto it = keys_.find(c.keys[i]); it != keys_.end() && it->second.value != value) {
          if (!it->second.expires_at)
            return r;
          wait = std::max<std::int64_t>(wait.value_or(0), (*it->second.expires_at - now).count());
        }
      }
      if (wait) {
        r.integer = -1 - *wait;
        return r;
      }
      for (std::size_t i = 0; i < n; ++i)
        keys_[c.keys[i]] = entry{value, ttl ? std::optional(now + *ttl) : std::nullopt};
      write_records();
      r.integer = static_cast<long long>(n);
      return r;
    }
    case script_kind::extend: {
      bool missing = false;
      for (std::size_t i = 0; i < n; ++i) {
        auto it = keys_.find(c.keys[i]);
        if (it == keys_.end())
          missing = true;
        else if (it->second.value != value)
          return r;
      }
      if (missing) {
        r.integer = -1;
        return r;
      }
      for (std::size_t i = 0; i < n; ++i)
        keys_[c.keys[i]].expires_at = ttl ? std::optional(now + *ttl) : std::nullopt;
      write_records();
      r.integer = static_cast<long long>(n);
      return r;
    }
    case script_kind::release:
      for (std::size_t i = 0; i < n; ++i) {
        const auto& k = c.keys[i];
        if (auto it = keys_.find(k); it != keys_.end() && it->second.value == value) {
          keys_.erase(it);
          ++r.integer;
          if (c.announces)
            announced.emplace_back(detail::release_channel(k), script(value).sha1());
        }
        if (ours(c.keys[n + i]))
          keys_.erase(c.keys[n + i]);
      }
      return r;
    default:
      break;
  }
  r.kind = redlock::reply::type::error;
  r.str = "ERR not an owner script";
  return r;
}

// The semantics of force_release_script(): every key is deleted, its value returned (nil
// when absent); the first ARGV[1] keys are lock keys, whose releases are announced.
redlock::reply fake_server::run_force(const call& c, announcements_t& announced) {
  redlock::reply r;
  r.kind = redlock::reply::type::array;
  std::size_t locks = 0;
  std::from_chars(c.args[0].data(), c.args[0].data() + c.args[0].size(), locks);
  for (std::size_t i = 0; i < c.keys.size(); ++i) {
    redlock::reply e;
    e.kind = redlock::reply::type::nil;
    if (auto it = keys_.find(c.keys[i]); it != keys_.end()) {
      e.kind = redlock::reply::type::string;
      e.str = it->second.value;
      if (i < locks)
        announced.emplace_back(detail::release_channel(c.keys[i]), script(e.str).sha1());
      keys_.erase(it);
    }
    r.elements.push_back(std::move(e));
  }
  return r;
}

std::vector<std::string> fake_server::live_queue(const std::string& queue_key) {
  std::vector<std::string> out;
  auto it = queues_.find(queue_key);
  if (it == queues_.end())
    return out;
  const auto now = clock_->now();
  std::erase_if(it->second, [&](const auto& e) { return e.second.lease_end <= now; });
  std::vector<std::pair<double, std::string>> order;
  for (const auto& [v, e] : it->second)
    order.emplace_back(e.ticket, v);
  std::sort(order.begin(), order.end());  // by ticket, then by value (as a ZSET)
  for (auto& o : order)
    out.push_back(std::move(o.second));
  if (it->second.empty())
    queues_.erase(it);
  return out;
}

// The semantics of fair_acquire_script() and fair_release_script() (src/manager/scripts.cpp);
// leases on the virtual clock. KEYS = n lock keys, n queues, n leases (the lease ZSET is
// folded into queues_, so the lease keys are not read).
redlock::reply fake_server::run_fair(const call& c, announcements_t& announced) {
  redlock::reply r;
  r.kind = redlock::reply::type::integer;
  const std::size_t n = c.keys.size() / 3;
  const auto& value = c.args[0];
  const auto now = clock_->now();
  if (c.kind == script_kind::fair_acquire) {
    if (c.args.size() < 4) {
      r.kind = redlock::reply::type::error;
      r.str = "ERR fair acquire needs value, ttl, ticket, lease";
      return r;
    }
    const double ticket = std::stod(c.args[2]);
    const auto lease = std::chrono::milliseconds(std::stoll(c.args[3]));
    for (std::size_t i = 0; i < n; ++i) {
      auto& gone = left_[c.keys[n + i]];
      std::erase_if(gone, [&](const auto& e) { return e.second <= now; });
      if (gone.count(value) != 0)
        return r;  // a waiter that left: not queued again
    }
    bool head = true;
    for (std::size_t i = 0; i < n; ++i) {
      live_queue(c.keys[n + i]);
      queues_[c.keys[n + i]][value] = queued{ticket, now + lease};
      if (live_queue(c.keys[n + i]).front() != value)
        head = false;
    }
    std::optional<std::int64_t> wait;
    for (std::size_t i = 0; i < n; ++i) {
      if (auto it = keys_.find(c.keys[i]); it != keys_.end() && it->second.value != value) {
        if (!it->second.expires_at)
          return r;
        const std::int64_t left = (*it->second.expires_at - now).count();
        wait = std::max(wait.value_or(0), left);
      }
    }
    if (wait) {
      r.integer = -1 - *wait;
      return r;
    }
    if (!head)
      return r;
    const auto ttl = ttl_arg(c);
    for (std::size_t i = 0; i < n; ++i) {
      keys_[c.keys[i]] = entry{value, ttl ? std::optional(now + *ttl) : std::nullopt};
      // The entry stays, its lease cut to the TTL (see fair_acquire_script()).
      if (ttl && *ttl < lease)
        queues_[c.keys[n + i]][value].lease_end = now + *ttl;
    }
    r.integer = static_cast<long long>(n);
    return r;
  }
  // A fair release.
  const bool stay = c.args.size() > 1 && c.args[1] == "stay";
  const auto lease = std::chrono::milliseconds(c.args.size() > 2 ? std::stoll(c.args[2]) : 2000);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& key = c.keys[i];
    bool changed = false;
    if (auto it = keys_.find(key); it != keys_.end() && it->second.value == value) {
      keys_.erase(it);
      ++r.integer;
      changed = true;
    }
    auto q = live_queue(c.keys[n + i]);
    if (!stay) {
      if (!q.empty()) {
        const bool was_head = q.front() == value;
        if (queues_[c.keys[n + i]].erase(value) == 1 && was_head)
          changed = true;
        q = live_queue(c.keys[n + i]);
      }
      left_[c.keys[n + i]][value] = now + lease;
    }
    if (changed && !stay) {
      announced.emplace_back(detail::release_channel(key),
                             q.empty() ? script(value).sha1() : "head:" + script(q.front()).sha1());
    }
  }
  return r;
}

std::vector<std::string> fake_server::queue(const std::string& resource) const {
  std::lock_guard lk(mutex_);
  return const_cast<fake_server*>(this)->live_queue(detail::fair_queue_key(resource));
}

// --- notifiers -------------------------------------------------------------------------

// One notifier's state, shared by the server (weakly) and the notifier object. Events go
// through a strand: one handler call at a time, never inside subscribe()/unsubscribe().
struct fake_server::subscriber : std::enable_shared_from_this<fake_server::subscriber> {
  explicit subscriber(asio::any_io_executor ex, notification_handler h)
      : strand(asio::make_strand(ex)), on_event(std::move(h)) {}

  asio::strand<asio::any_io_executor> strand;
  notification_handler on_event;
  std::mutex mutex;
  std::set<std::string> channels;
  bool closed = false;

  void emit(notification::kind what, std::string channel, std::string payload) {
    asio::post(strand, [self = shared_from_this(), what, channel = std::move(channel),
                        payload = std::move(payload)] {
      notification n;
      n.what = what;
      n.channel = channel;
      n.payload = payload;
      self->on_event(n);
    });
  }
};

namespace {

class fake_notifier final : public notifier {
 public:
  explicit fake_notifier(std::shared_ptr<fake_server::subscriber> s) : s_(std::move(s)) {}
  ~fake_notifier() override { close(); }

  void subscribe(std::string channel) override {
    {
      std::lock_guard lk(s_->mutex);
      if (s_->closed || !s_->channels.insert(channel).second)
        return;
    }
    s_->emit(notification::kind::subscribed, std::move(channel), {});
  }
  void unsubscribe(std::string channel) override {
    std::lock_guard lk(s_->mutex);
    s_->channels.erase(channel);
  }
  void close() override {
    std::lock_guard lk(s_->mutex);
    s_->closed = true;
    s_->channels.clear();
  }

 private:
  std::shared_ptr<fake_server::subscriber> s_;
};

}  // namespace

void fake_server::attach(const std::shared_ptr<subscriber>& s) {
  std::lock_guard lk(mutex_);
  std::erase_if(subscribers_, [](const auto& w) { return w.expired(); });
  subscribers_.push_back(s);
}

void fake_server::announce(const announcements_t& messages) {
  std::vector<std::shared_ptr<subscriber>> subs;
  {
    std::lock_guard lk(mutex_);
    if (drop_announcements_)
      return;
    for (const auto& w : subscribers_) {
      if (auto s = w.lock())
        subs.push_back(std::move(s));
    }
  }
  for (const auto& s : subs) {
    for (const auto& [ch, payload] : messages) {
      {
        std::lock_guard lk(s->mutex);
        if (s->closed || s->channels.count(ch) == 0)
          continue;
      }
      {
        std::lock_guard lk(mutex_);
        ++announcements_;
      }
      s->emit(notification::kind::message, ch, payload);
    }
  }
}

void fake_server::drop_announcements(bool drop) {
  std::lock_guard lk(mutex_);
  drop_announcements_ = drop;
}

std::size_t fake_server::subscribers(const std::string& channel) const {
  std::vector<std::shared_ptr<subscriber>> subs;
  {
    std::lock_guard lk(mutex_);
    for (const auto& w : subscribers_) {
      if (auto s = w.lock())
        subs.push_back(std::move(s));
    }
  }
  std::size_t n = 0;
  for (const auto& s : subs) {
    std::lock_guard lk(s->mutex);
    n += !s->closed && s->channels.count(channel) > 0 ? 1 : 0;
  }
  return n;
}

std::size_t fake_server::announcements() const {
  std::lock_guard lk(mutex_);
  return announcements_;
}

// --- fake_node --------------------------------------------------------------------------

fake_node::fake_node(asio::any_io_executor ex, std::string id, std::shared_ptr<fake_server> server)
    : ex_(std::move(ex)),
      id_(std::move(id)),
      server_(server ? std::move(server) : std::make_shared<fake_server>()) {}

void fake_node::async_eval(const script& s, std::span<const std::string> keys,
                           std::span<const std::string> args, reply_handler handler) {
  call c;
  c.kind = kind_of(s);
  c.fair = s.sha1() == detail::fair_acquire_script().sha1() ||
           s.sha1() == detail::fair_release_script().sha1();
  c.owner = s.sha1() == detail::acquire_owner_script().sha1() ||
            s.sha1() == detail::extend_owner_script().sha1() ||
            s.sha1() == detail::release_owner_script().sha1() ||
            s.sha1() == detail::release_notify_owner_script().sha1();
  c.announces = c.fair || s.sha1() == detail::release_notify_script().sha1() ||
                s.sha1() == detail::release_notify_owner_script().sha1();
  c.keys.assign(keys.begin(), keys.end());
  c.args.assign(args.begin(), args.end());

  std::unique_lock lk(mutex_);
  ++in_flight_;
  handler = [self = shared_from_this(), h = std::move(handler)](std::error_code e,
                                                                redlock::reply r) mutable {
    {
      std::lock_guard g(self->mutex_);
      --self->in_flight_;
    }
    h(e, std::move(r));
  };
  if (closed_) {
    lk.unlock();
    return deliver(std::move(handler), make_error_code(errc::closed), {}, {});
  }
  // A closed connection sends nothing, so only open nodes reach the server.
  step st = server_->handle(c);
  if (st.never) {
    silent_.push_back(std::move(handler));
    return;
  }
  lk.unlock();
  deliver(std::move(handler), st.ec, std::move(st.r), st.delay);
}

void fake_node::deliver(reply_handler h, std::error_code ec, redlock::reply r,
                        std::chrono::milliseconds delay) {
  // Never inline: node::async_eval promises the handler does not run inside the call.
  if (delay.count() > 0) {
    auto t = std::make_shared<asio::steady_timer>(ex_, delay);
    t->async_wait([t, h = std::move(h), ec, r = std::move(r)](std::error_code) mutable {
      h(ec, std::move(r));
    });
    return;
  }
  asio::post(ex_, [h = std::move(h), ec, r = std::move(r)]() mutable { h(ec, std::move(r)); });
}

void fake_node::close() {
  std::vector<reply_handler> pending;
  {
    std::lock_guard lk(mutex_);
    if (!closed_)
      in_flight_at_close_ = static_cast<long long>(in_flight_);
    closed_ = true;
    pending.swap(silent_);
    for (auto& w : notifiers_) {
      if (auto n = w.lock())
        n->close();
    }
    notifiers_.clear();
  }
  for (auto& h : pending)
    deliver(std::move(h), make_error_code(errc::closed), {}, {});
}

void fake_node::async_identify(identity_handler handler) {
  std::vector<std::string> ids;
  {
    std::lock_guard lk(mutex_);
    ids = identity_;
  }
  asio::post(ex_,
             [h = std::move(handler), ids = std::move(ids)]() mutable { h({}, std::move(ids)); });
}

std::shared_ptr<notifier> fake_node::open_notifier(notification_handler on_event) {
  auto sub = std::make_shared<fake_server::subscriber>(ex_, std::move(on_event));
  auto n = std::make_shared<fake_notifier>(sub);
  {
    std::lock_guard lk(mutex_);
    if (closed_)
      n->close();
    else
      notifiers_.push_back(n);
  }
  server_->attach(sub);
  return n;
}

void fake_node::set_identity(std::vector<std::string> ids) {
  std::lock_guard lk(mutex_);
  identity_ = std::move(ids);
}

bool fake_node::closed() const {
  std::lock_guard lk(mutex_);
  return closed_;
}

std::size_t fake_node::in_flight() const {
  std::lock_guard lk(mutex_);
  return in_flight_;
}

long long fake_node::in_flight_at_close() const {
  std::lock_guard lk(mutex_);
  return in_flight_at_close_;
}

// --- fake_deployment --------------------------------------------------------------------

fake_deployment::fake_deployment(asio::any_io_executor ex, std::size_t n, std::string prefix)
    : ex_(std::move(ex)), prefix_(std::move(prefix)), clock_(std::make_shared<virtual_clock>()) {
  for (std::size_t i = 0; i < n; ++i)
    servers_.push_back(std::make_shared<fake_server>(clock_));
}

std::vector<std::shared_ptr<redlock::node>> fake_deployment::nodes() {
  std::vector<std::shared_ptr<redlock::node>> out;
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    auto n = std::make_shared<fake_node>(ex_, prefix_ + std::to_string(i), servers_[i]);
    // One identity per server, so that the manager's duplicate-deployment check sees each
    // server once, as it would with real servers' run_ids.
    n->set_identity({"fake_server:" + prefix_ + std::to_string(i)});
    out.push_back(std::move(n));
  }
  return out;
}

std::size_t fake_deployment::count_holding(const std::string& key, const std::string& value) const {
  std::size_t n = 0;
  for (const auto& s : servers_)
    n += s->value(key) == value ? 1 : 0;
  return n;
}

}  // namespace redlock::testing

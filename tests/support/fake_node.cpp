#include "support/fake_node.hpp"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "internal/scripts.hpp"
#include "redlock/error.hpp"

namespace redlock::test {

fake_node::step fake_node::step::integer(long long v, std::chrono::milliseconds d) {
  step s;
  s.r.kind = redlock::reply::type::integer;
  s.r.integer = v;
  s.delay = d;
  return s;
}

fake_node::step fake_node::step::error(std::error_code ec, std::string message,
                                       std::chrono::milliseconds d) {
  step s;
  s.ec = ec;
  if (!message.empty()) {
    s.r.kind = redlock::reply::type::error;
    s.r.str = std::move(message);
  }
  s.delay = d;
  return s;
}

fake_node::step fake_node::step::silence() {
  step s;
  s.never = true;
  return s;
}

fake_node::step fake_node::step::store(std::chrono::milliseconds d) {
  step s;
  s.use_store = true;
  s.delay = d;
  return s;
}

fake_node::fake_node(asio::any_io_executor ex, std::string id)
    : ex_(std::move(ex)), id_(std::move(id)) {}

void fake_node::async_eval(const script& s, std::span<const std::string> keys,
                           std::span<const std::string> args, reply_handler handler) {
  call c;
  if (s.sha1() == detail::acquire_script().sha1()) {
    c.kind = script_kind::acquire;
  } else if (s.sha1() == detail::extend_script().sha1()) {
    c.kind = script_kind::extend;
  } else if (s.sha1() == detail::release_script().sha1()) {
    c.kind = script_kind::release;
  }
  c.keys.assign(keys.begin(), keys.end());
  c.args.assign(args.begin(), args.end());

  std::unique_lock lk(mutex_);
  calls_.push_back(c);
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
  step st = step::store();
  if (auto& q = queued_[c.kind]; !q.empty()) {
    st = std::move(q.front());
    q.pop_front();
  } else if (auto it = fallback_.find(c.kind); it != fallback_.end()) {
    st = it->second;
  }
  if (st.never) {
    silent_.push_back(std::move(handler));
    return;
  }
  redlock::reply r = st.use_store ? run_store(c.kind, c) : st.r;
  lk.unlock();
  deliver(std::move(handler), st.ec, std::move(r), st.delay);
}

redlock::reply fake_node::run_store(script_kind kind, const call& c) {
  // The semantics of src/scripts.cpp, on a map without expiry.
  redlock::reply r;
  r.kind = redlock::reply::type::integer;
  const auto& value = c.args.at(0);
  const auto n = static_cast<long long>(c.keys.size());
  switch (kind) {
    case script_kind::acquire:
      for (const auto& k : c.keys) {
        if (auto it = keys_.find(k); it != keys_.end() && it->second != value)
          return r;
      }
      for (const auto& k : c.keys)
        keys_[k] = value;
      r.integer = n;
      return r;
    case script_kind::extend: {
      bool missing = false;
      for (const auto& k : c.keys) {
        auto it = keys_.find(k);
        if (it == keys_.end()) {
          missing = true;
        } else if (it->second != value) {
          return r;
        }
      }
      r.integer = missing ? -1 : n;
      return r;
    }
    case script_kind::release:
      for (const auto& k : c.keys) {
        if (auto it = keys_.find(k); it != keys_.end() && it->second == value) {
          keys_.erase(it);
          ++r.integer;
        }
      }
      return r;
    case script_kind::other:
      break;
  }
  r.kind = redlock::reply::type::error;
  r.str = "ERR unknown script";
  return r;
}

void fake_node::deliver(reply_handler h, std::error_code ec, redlock::reply r,
                        std::chrono::milliseconds delay) {
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

void fake_node::set_identity(std::vector<std::string> ids) {
  std::lock_guard lk(mutex_);
  identity_ = std::move(ids);
}

void fake_node::push(script_kind kind, step s) {
  std::lock_guard lk(mutex_);
  queued_[kind].push_back(std::move(s));
}

void fake_node::set_fallback(script_kind kind, step s) {
  std::lock_guard lk(mutex_);
  fallback_[kind] = std::move(s);
}

std::vector<fake_node::call> fake_node::calls() const {
  std::lock_guard lk(mutex_);
  return calls_;
}

std::size_t fake_node::count(script_kind kind) const {
  std::lock_guard lk(mutex_);
  std::size_t n = 0;
  for (const auto& c : calls_)
    n += c.kind == kind ? 1 : 0;
  return n;
}

bool fake_node::closed() const {
  std::lock_guard lk(mutex_);
  return closed_;
}

std::map<std::string, std::string> fake_node::store() const {
  std::lock_guard lk(mutex_);
  return keys_;
}

void fake_node::set_key(const std::string& key, const std::string& value) {
  std::lock_guard lk(mutex_);
  keys_[key] = value;
}

}  // namespace redlock::test

namespace redlock::test {

void fake_node::clear_store() {
  std::lock_guard lk(mutex_);
  keys_.clear();
}

std::size_t fake_node::in_flight() const {
  std::lock_guard lk(mutex_);
  return in_flight_;
}

long long fake_node::in_flight_at_close() const {
  std::lock_guard lk(mutex_);
  return in_flight_at_close_;
}

}  // namespace redlock::test

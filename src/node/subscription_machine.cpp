#include <array>
#include <utility>

#include "internal/subscriber.hpp"

namespace redlock::detail {

namespace {

void append(std::string& out, std::string_view cmd, std::string_view channel) {
  std::array<std::string_view, 2> argv{cmd, channel};
  append_command(out, argv);
}

bool is_string(const reply& r) {
  return r.kind == reply::type::string || r.kind == reply::type::status;
}

}  // namespace

bool is_unknown_command(std::string_view error) noexcept {
  // Redis 2.8-7: "ERR unknown command 'SSUBSCRIBE', with args beginning with: ...";
  // some versions and proxies write "ERR unknown command `ssubscribe`".
  return error.starts_with("ERR unknown command");
}

subscription_machine::subscription_machine(reader_limits limits) : reader_(limits) {}

// ---- channels ------------------------------------------------------------------------------

bool subscription_machine::want(const std::string& channel) {
  channel_state& st = channels_[channel];
  if (st.wanted)
    return false;
  st.wanted = true;
  st.refused = false;
  ++wanted_count_;
  dirty_.insert(channel);
  return true;
}

bool subscription_machine::unwant(const std::string& channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end() || !it->second.wanted)
    return false;
  it->second.wanted = false;
  it->second.refused = false;
  --wanted_count_;
  dirty_.insert(channel);
  forget_if_unused(it);
  return true;
}

void subscription_machine::retry_refused() {
  for (auto& [name, st] : channels_) {
    if (st.refused) {
      st.refused = false;
      dirty_.insert(name);
    }
  }
}

bool subscription_machine::wants(const std::string& channel) const {
  auto it = channels_.find(channel);
  return it != channels_.end() && it->second.wanted;
}

std::vector<std::string> subscription_machine::wanted() const {
  std::vector<std::string> out;
  for (const auto& [name, st] : channels_)
    if (st.wanted)
      out.push_back(name);
  return out;
}

std::vector<std::string> subscription_machine::subscribed() const {
  std::vector<std::string> out;
  for (const auto& [name, st] : channels_)
    if (st.server == on_server::on)
      out.push_back(name);
  return out;
}

void subscription_machine::forget_if_unused(std::map<std::string, channel_state>::iterator it) {
  if (!it->second.wanted && it->second.server == on_server::off) {
    dirty_.erase(it->first);
    channels_.erase(it);
  }
}

// Brings one channel's server state towards what is wanted: at most one command per channel
// in flight, so the confirmations say exactly where the server stands.
void subscription_machine::reconcile(const std::string& channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end())
    return;
  channel_state& st = it->second;
  if (st.wanted && !st.refused && st.server == on_server::off) {
    append(out_, sharded_ ? "SSUBSCRIBE" : "SUBSCRIBE", channel);
    st.server = on_server::subscribing;
    in_flight_.push_back({true, sharded_, channel});
  } else if (!st.wanted && st.server == on_server::on) {
    append(out_, sharded_ ? "SUNSUBSCRIBE" : "UNSUBSCRIBE", channel);
    st.server = on_server::unsubscribing;
    in_flight_.push_back({false, sharded_, channel});
  }
  forget_if_unused(it);
}

// ---- connection events -------------------------------------------------------------------

void subscription_machine::begin_connection() {
  reader_.reset();
  // Each connection tries SSUBSCRIBE first: the server may have been upgraded or replaced.
  sharded_ = true;
  ready_ = false;
  answered_ = false;
  handshake_left_ = 0;
  write_in_flight_ = false;
  out_.clear();
  in_flight_.clear();
}

void subscription_machine::transport_ready(const handshake& h) {
  out_.clear();
  handshake_left_ = append_handshake(out_, h);
  if (handshake_left_ == 0) {
    ready_ = true;
    for (const auto& [name, st] : channels_)
      dirty_.insert(name);
  }
}

bool subscription_machine::connection_closed() {
  bool had = false;
  for (auto it = channels_.begin(); it != channels_.end();) {
    channel_state& st = it->second;
    if (st.wanted && (st.server == on_server::on || st.server == on_server::subscribing))
      had = true;
    st.server = on_server::off;
    st.refused = false;  // a new connection (maybe to the slot's new owner) tries again
    if (!st.wanted) {
      dirty_.erase(it->first);
      it = channels_.erase(it);
    } else {
      dirty_.insert(it->first);
      ++it;
    }
  }
  in_flight_.clear();
  out_.clear();
  ready_ = false;
  handshake_left_ = 0;
  write_in_flight_ = false;
  return had;
}

// ---- writing / reading -----------------------------------------------------------------------

bool subscription_machine::take_write(std::string& out) {
  if (write_in_flight_)
    return false;
  if (ready_) {
    std::set<std::string> dirty;
    dirty.swap(dirty_);
    for (const auto& ch : dirty)
      reconcile(ch);
  }
  if (out_.empty())
    return false;
  out.swap(out_);
  out_.clear();
  write_in_flight_ = true;
  return true;
}

subscription_machine::read_result subscription_machine::on_read(const char* data,
                                                                std::size_t size) {
  read_result out;
  const char* why = read_replies(
      reader_, data, size, [&] { return out.st == read_result::status::ok; },
      [&](reply&& r) { on_reply(std::move(r), out); });
  if (why) {
    out.st = read_result::status::protocol_error;
    out.why = why;
  }
  return out;
}

void subscription_machine::on_reply(reply&& r, read_result& out) {
  if (!answered_ && handshake_left_ == 0) {
    answered_ = true;
    out.answered = true;
  }
  if (handshake_left_ > 0) {
    if (r.is_error()) {
      out.st = read_result::status::handshake_failed;
      out.code = classify_error(r.str);
      out.why = r.str;
      return;
    }
    if (--handshake_left_ == 0) {
      ready_ = true;
      answered_ = true;
      out.answered = true;
      for (const auto& [name, st] : channels_)
        dirty_.insert(name);
    }
    return;
  }
  if (r.kind == reply::type::array)
    return on_push(r, out);
  if (!r.is_error() || in_flight_.empty())
    return;  // nothing of ours to match (no plain replies are expected in subscribe mode)
  // Errors answer our commands in order (pushes do not take the place of an error).
  sent cmd = std::move(in_flight_.front());
  in_flight_.pop_front();
  auto it = channels_.find(cmd.channel);
  if (it == channels_.end())
    return;
  channel_state& st = it->second;
  st.server = on_server::off;
  if (cmd.subscribe && cmd.sharded && is_unknown_command(r.str)) {
    // No sharded pub/sub on this server (Redis < 7): plain SUBSCRIBE from now on for this
    // connection. Every SSUBSCRIBE still in flight gets the same error and comes here too,
    // and each channel is subscribed again the plain way at the next write.
    sharded_ = false;
    dirty_.insert(cmd.channel);
    return;
  }
  if (cmd.subscribe && st.wanted) {
    st.refused = true;
    out.refused.emplace_back(cmd.channel, r.str);
  }
  dirty_.insert(cmd.channel);
  forget_if_unused(it);
}

void subscription_machine::on_push(const reply& r, read_result& out) {
  if (r.elements.size() < 3 || !is_string(r.elements[0]) || !is_string(r.elements[1]))
    return;  // "pong" or something we did not ask for: nothing to do
  const std::string& kind = r.elements[0].str;
  const std::string& channel = r.elements[1].str;
  if (kind == "smessage" || kind == "message") {
    if (wants(channel))
      out.events.push_back({notification::kind::message, channel, r.elements[2].str});
    return;
  }
  const bool sub = kind == "ssubscribe" || kind == "subscribe";
  const bool unsub = kind == "sunsubscribe" || kind == "unsubscribe";
  if (!sub && !unsub)
    return;
  const bool ours = !in_flight_.empty() && in_flight_.front().subscribe == sub &&
                    in_flight_.front().channel == channel;
  if (ours)
    in_flight_.pop_front();
  auto it = channels_.find(channel);
  if (it == channels_.end())
    return;
  channel_state& st = it->second;
  if (sub) {
    st.server = on_server::on;
    if (st.wanted)
      out.events.push_back({notification::kind::subscribed, channel, {}});
  } else if (ours) {
    st.server = on_server::off;
  } else {
    // The server dropped the channel by itself: in a Cluster, its slot moved to another
    // master. It is not subscribed here again (that would be refused with MOVED); the owner
    // moves it.
    const bool was_on = st.server == on_server::on;
    st.server = on_server::off;
    if (st.wanted) {
      st.refused = true;
      if (was_on)
        out.events.push_back({notification::kind::lost, channel, {}});
      out.refused.emplace_back(channel, "the server dropped the subscription");
    }
  }
  dirty_.insert(channel);
  forget_if_unused(it);
}

}  // namespace redlock::detail

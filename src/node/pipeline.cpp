#include "internal/pipeline.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <utility>

namespace redlock::detail {

namespace {

// Calls f with the arguments as a span of string_views, without allocating for short argvs.
template <class Range, class F>
void with_views(const Range& args, F&& f) {
  constexpr std::size_t small = 16;
  if (args.size() <= small) {
    std::array<std::string_view, small> views;
    std::size_t i = 0;
    for (const auto& a : args)
      views[i++] = a;
    f(std::span<const std::string_view>(views.data(), i));
  } else {
    std::vector<std::string_view> views(args.begin(), args.end());
    f(std::span<const std::string_view>(views));
  }
}

void complete(reply_handler& h, reply&& r) {
  std::error_code ec;
  if (r.is_error())
    ec = classify_error(r.str);
  h(ec, std::move(r));
}

}  // namespace

errc classify_error(std::string_view msg) noexcept {
  if (msg.starts_with("WRONGPASS"))
    return errc::auth_failed;
  if (msg.starts_with("NOAUTH"))
    return errc::auth_required;
  if (msg.starts_with("NOPERM"))
    return errc::no_permission;
  // Redis 6+: "ERR AUTH <password> called without any password configured for the default
  // user..."; Redis 5: "ERR Client sent AUTH, but no password is set".
  if (msg.starts_with("ERR") && (msg.find("without any password configured") != msg.npos ||
                                 msg.find("no password is set") != msg.npos))
    return errc::auth_not_configured;
  return errc::server_error;
}

// ---- script_entry and request ------------------------------------------------------------

script_entry::script_entry(const script& s) : sha1(s.sha1()) {
  // The codec writes the bulk strings; only the leading "*2\r\n" is dropped, because the
  // multi-bulk count is written per request (it includes the keys and arguments).
  std::array<std::string_view, 2> sha_argv{"EVALSHA", s.sha1()};
  append_command(evalsha_prefix, sha_argv);
  evalsha_prefix.erase(0, 4);
  std::array<std::string_view, 2> eval_argv{"EVAL", s.text()};
  append_command(eval_prefix, eval_argv);
  eval_prefix.erase(0, 4);
}

request request::eval(script_entry* s, std::unique_ptr<script_entry> owned,
                      std::span<const std::string> keys, std::span<const std::string> args,
                      reply_handler handler) {
  request r;
  r.handler = std::move(handler);
  r.k = kind::eval;
  r.owned_script = std::move(owned);
  r.script = s ? s : r.owned_script.get();
  char numkeys[24];
  const auto nk_end = std::to_chars(numkeys, numkeys + sizeof numkeys, keys.size()).ptr;
  const std::size_t n = 1 + keys.size() + args.size();
  auto encode = [&](std::span<const std::string_view> v) { append_command(r.tail, v); };
  constexpr std::size_t small = 16;
  if (n <= small) {
    std::array<std::string_view, small> views;
    std::size_t i = 0;
    views[i++] = std::string_view(numkeys, static_cast<std::size_t>(nk_end - numkeys));
    for (const auto& k : keys)
      views[i++] = k;
    for (const auto& a : args)
      views[i++] = a;
    encode(std::span<const std::string_view>(views.data(), i));
  } else {
    std::vector<std::string_view> views;
    views.reserve(n);
    views.emplace_back(numkeys, static_cast<std::size_t>(nk_end - numkeys));
    views.insert(views.end(), keys.begin(), keys.end());
    views.insert(views.end(), args.begin(), args.end());
    encode(std::span<const std::string_view>(views));
  }
  r.tail_skip = r.tail.find('\n') + 1;
  r.tail_count = n;
  return r;
}

// ---- request_ring ------------------------------------------------------------------------

void request_ring::grow() {
  std::vector<request> next(buf_.empty() ? 64 : buf_.size() * 2);
  for (std::size_t i = 0; i < size_; ++i)
    next[i] = std::move((*this)[i]);
  buf_ = std::move(next);
  head_ = 0;
}

std::size_t append_handshake(std::string& out, const handshake& h) {
  std::size_t n = 0;
  if (!h.password.empty()) {
    if (h.username.empty()) {
      std::array<std::string_view, 2> argv{"AUTH", h.password};
      append_command(out, argv);
    } else {
      std::array<std::string_view, 3> argv{"AUTH", h.username, h.password};
      append_command(out, argv);
    }
    ++n;
  }
  if (h.db != 0) {
    std::string db = std::to_string(h.db);
    std::array<std::string_view, 2> argv{"SELECT", db};
    append_command(out, argv);
    ++n;
  }
  return n;
}

// ---- pipeline: connection events ---------------------------------------------------------

pipeline::pipeline(pipeline_options opts) : opts_(opts), reader_(opts.limits) {}

void pipeline::begin_connection() {
  phase_ = phase::connecting;
  serial_ = next_serial_++;
  replies_ = 0;
  handshake_left_ = 0;
  resent_count_ = 0;
  handshake_out_.clear();
  write_in_flight_ = false;
  reader_.reset();
}

bool pipeline::transport_ready(const handshake& h) {
  phase_ = phase::handshaking;
  handshake_out_.clear();
  // Nothing but the handshake is written until every handshake reply has succeeded: queued
  // requests pipelined behind a failed AUTH would run as the `default` user, behind a failed
  // SELECT in db 0. They wait in pending_ under their own deadlines.
  const std::size_t n = append_handshake(handshake_out_, h);
  // Entries in reply order: AUTH first when there is one.
  if (h.db != 0) {
    request r;
    r.k = request::kind::select;
    entries_.push_front(std::move(r));
  }
  if (!h.password.empty()) {
    request r;
    r.k = request::kind::auth;
    entries_.push_front(std::move(r));
  }
  handshake_left_ = n;
  if (handshake_left_ == 0) {
    phase_ = phase::ready;
    return false;
  }
  return true;
}

void pipeline::connection_closed() noexcept {
  phase_ = phase::none;
  pending_.clear();
  handshake_out_.clear();
  handshake_left_ = 0;
  resent_count_ = 0;
  write_in_flight_ = false;
}

// ---- pipeline: requests ------------------------------------------------------------------

void pipeline::submit(request&& r, const std::vector<std::string>* argv, time_point now) {
  r.deadline = now + opts_.request_timeout;
  const std::size_t before = pending_.size();
  if (argv) {
    with_views(*argv, [&](std::span<const std::string_view> v) { append_command(pending_, v); });
  } else {
    encode_eval(r);
  }
  r.bytes = pending_.size() - before;
  entries_.push_back(std::move(r));
}

void pipeline::fail_all(errc code, const reply& r) {
  // Handlers cannot re-enter (see the class comment), so popping in place is safe.
  while (!entries_.empty()) {
    request req = entries_.pop_front();
    if (req.handler)
      req.handler(code, r);
  }
  handshake_left_ = 0;
  resent_count_ = 0;
}

void pipeline::encode_eval(request& r) {
  const bool use_sha = r.script->loaded_on == serial_;
  // EVAL loads the script; requests behind it on this connection can use EVALSHA. Should
  // this EVAL be dropped unsent, unload_dropped_eval() hands the load on.
  if (!use_sha)
    r.script->loaded_on = serial_;
  r.sent_as_evalsha = use_sha;
  append_eval(pending_, r, use_sha);
}

void pipeline::append_eval(std::string& out, const request& r, bool use_sha) {
  char head[24];
  head[0] = '*';
  char* p = std::to_chars(head + 1, head + sizeof head - 2, r.tail_count + 2).ptr;
  *p++ = '\r';
  *p++ = '\n';
  out.append(head, static_cast<std::size_t>(p - head));
  out.append(use_sha ? r.script->evalsha_prefix : r.script->eval_prefix);
  out.append(r.tail, r.tail_skip, std::string::npos);
}

void pipeline::resend(request req) {
  const std::size_t before = pending_.size();
  encode_eval(req);
  req.bytes = pending_.size() - before;
  req.resent = true;
  ++resent_count_;
  entries_.push_back(std::move(req));
}

// ---- pipeline: writing -------------------------------------------------------------------

bool pipeline::take_write(std::string& out) {
  if (write_in_flight_)
    return false;
  if (!handshake_out_.empty()) {
    out.swap(handshake_out_);
    handshake_out_.clear();
  } else if (phase_ == phase::ready && !pending_.empty()) {
    out.swap(pending_);
    pending_.clear();
  } else {
    return false;
  }
  write_in_flight_ = true;
  return true;
}

// ---- pipeline: reading -------------------------------------------------------------------

pipeline::read_result pipeline::on_read(const char* data, std::size_t size) {
  read_result out;
  const char* why = read_replies(
      reader_, data, size, [&] { return out.st == read_result::status::ok; },
      [&](reply&& r) {
        // The first reply of a connection without a handshake proves the server alive
        // (with one, the handshake's success does that).
        if (++replies_ == 1 && phase_ == phase::ready)
          out.answered = true;
        on_reply(std::move(r), out);
      });
  if (why) {
    out.st = read_result::status::protocol_error;
    out.why = why;
  }
  return out;
}

void pipeline::on_reply(reply&& r, read_result& out) {
  if (entries_.empty()) {
    out.st = read_result::status::protocol_error;
    out.why = "reply without a request";
    return;
  }
  request& front = entries_.front();
  const bool noscript = front.k == request::kind::eval && front.sent_as_evalsha && r.is_error() &&
                        r.str.starts_with("NOSCRIPT");
  if (front.k == request::kind::command || (front.k == request::kind::eval && !noscript)) {
    // The hot path: complete in place, without moving the request out of the ring.
    if (front.resent)
      --resent_count_;
    reply_handler h = std::move(front.handler);
    entries_.release_front();
    std::error_code ec;
    if (r.is_error())
      ec = classify_error(r.str);
    h(ec, std::move(r));
    return;
  }
  request req = entries_.pop_front();
  if (req.resent)
    --resent_count_;
  switch (req.k) {
    case request::kind::auth:
    case request::kind::select:
      --handshake_left_;
      if (r.is_error()) {
        // The queued requests were never sent: they fail with the server's code and
        // message, and the connection is done.
        out.st = read_result::status::handshake_failed;
        out.code = classify_error(r.str);
        out.why = r.str;
        connection_closed();
        fail_all(out.code, r);
        return;
      }
      if (handshake_left_ == 0) {
        phase_ = phase::ready;
        out.ready = true;
        out.answered = true;
      }
      return;
    case request::kind::eval:
      // noscript (else the hot path took it). The script cache was flushed (SCRIPT FLUSH,
      // a restart without our knowledge): send it again as EVAL. Caveat: the resent request
      // executes after requests that were pipelined behind it; only a flush between two of
      // our requests on one connection can cause that reordering, and the first use of a
      // script on each connection is sent as EVAL so that it does not happen normally.
      req.script->loaded_on = 0;
      resend(std::move(req));
      return;
    case request::kind::command:
      break;
  }
  complete(req.handler, std::move(r));
}

// ---- pipeline: deadlines -----------------------------------------------------------------

pipeline::time_point pipeline::next_deadline() const noexcept {
  // AUTH/SELECT have no request deadline (the connect timeout covers them), so look past
  // them; resent requests may sit behind younger ones.
  auto earliest = time_point::max();
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const request& r = entries_[i];
    if (r.k == request::kind::auth || r.k == request::kind::select)
      continue;
    earliest = std::min(earliest, r.deadline);
    if (resent_count_ == 0)
      break;
  }
  return earliest;
}

pipeline::expiry pipeline::on_deadline(time_point now, const reply& timed_out, const reply& lost) {
  if (!expired(now))
    return expiry::none;
  if (phase_ != phase::ready) {
    drop_expired_unsent(now, timed_out);
    return expiry::dropped_unsent;
  }
  connection_closed();
  while (!entries_.empty()) {
    request r = entries_.pop_front();
    if (!r.handler)
      continue;
    if (r.deadline <= now)
      r.handler(errc::timeout, timed_out);
    else
      r.handler(errc::connection_lost, lost);
  }
  return expiry::reset_connection;
}

// Expired requests are a prefix of the queued requests, behind the AUTH/SELECT entries,
// since deadlines are monotone (nothing is resent before the connection is ready). The
// connect attempt goes on under its own timeout for the others. Not the hot path.
void pipeline::drop_expired_unsent(time_point now, const reply& msg) {
  std::array<request, 2> handshake;  // at most AUTH and SELECT
  const std::size_t hs = handshake_left_;
  for (std::size_t i = 0; i < hs; ++i)
    handshake[i] = entries_.pop_front();
  std::vector<request> expired;
  std::size_t bytes = 0;
  while (!entries_.empty() && entries_.front().deadline <= now) {
    bytes += entries_.front().bytes;
    expired.push_back(entries_.pop_front());
  }
  pending_.erase(0, bytes);
  for (request& r : expired) {
    if (r.k == request::kind::eval && !r.sent_as_evalsha)
      unload_dropped_eval(*r.script);
  }
  for (std::size_t i = hs; i-- > 0;)
    entries_.push_front(std::move(handshake[i]));
  for (request& r : expired)
    r.handler(errc::timeout, msg);
}

// An EVAL that loads `s` on this connection was dropped unsent. Requests behind it were
// encoded as EVALSHA, counting on it; left so, the first would get NOSCRIPT and be resent
// behind requests queued after it (e.g. an acquire behind its own release). So the first
// queued request of `s` carries the EVAL instead; with none, `s` is simply not loaded.
void pipeline::unload_dropped_eval(script_entry& s) {
  std::size_t offset = 0;  // every queued entry is unsent: pending_ holds them in order
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    request& r = entries_[i];
    if (r.k == request::kind::eval && r.script == &s) {
      std::string eval;
      append_eval(eval, r, false);
      pending_.replace(offset, r.bytes, eval);
      r.bytes = eval.size();
      r.sent_as_evalsha = false;
      return;
    }
    offset += r.bytes;
  }
  s.loaded_on = 0;
}

}  // namespace redlock::detail

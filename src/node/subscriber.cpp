// The Asio side of the notifiers (see internal/subscriber.hpp): strand_notifier, the
// thread-safe face, and subscriber, one pub/sub connection driven by a subscription_machine.
//
// A subscriber connects lazily (on the first channel), and its connection closes once
// nothing is wanted and every unsubscribe was confirmed, so an unused notifier holds no
// connection. After a failure it emits `lost`, backs off (the node's capped exponential
// backoff, reset once the server answered on a new connection) and reconnects while
// something is wanted; the machine subscribes every wanted channel again and each
// confirmation emits `subscribed`.
#include <algorithm>
#include <utility>

#include <asio/post.hpp>
#include <asio/write.hpp>

#include "internal/subscriber.hpp"
#include "internal/tls_context.hpp"

namespace redlock::detail {

namespace {

using clock_type = std::chrono::steady_clock;

reader_limits limits_for(const connection_options& opts) {
  return reader_limits{opts.max_reply_bytes, reader_limits{}.max_array_elements,
                       std::max(reader_limits{}.max_buffered_bytes, opts.max_reply_bytes + 1024)};
}

}  // namespace

// ---- strand_notifier -----------------------------------------------------------------------

strand_notifier::strand_notifier(strand_type strand, std::shared_ptr<notifier_core> core)
    : strand_(std::move(strand)), core_(std::move(core)) {}

strand_notifier::~strand_notifier() {
  try {
    close();
  } catch (...) {
  }
}

void strand_notifier::subscribe(std::string channel) {
  asio::post(strand_, [c = core_, ch = std::move(channel)] { c->subscribe(ch); });
}

void strand_notifier::unsubscribe(std::string channel) {
  asio::post(strand_, [c = core_, ch = std::move(channel)] { c->unsubscribe(ch); });
}

void strand_notifier::close() {
  asio::post(strand_, [c = core_] { c->close(); });
}

// ---- subscriber ------------------------------------------------------------------------------

subscriber::subscriber(strand_type strand, endpoint ep, connection_options opts, callbacks cb,
                       bool lost_per_channel)
    : strand_(std::move(strand)),
      ep_(std::move(ep)),
      opts_(opts),
      cb_(std::move(cb)),
      lost_per_channel_(lost_per_channel),
      machine_(limits_for(opts)),
      backoff_(opts.backoff_initial, opts.backoff_max),
      connect_timer_(strand_),
      retry_timer_(strand_) {}

subscriber::~subscriber() {
  if (conn_)
    conn_->close();
}

void subscriber::subscribe(const std::string& channel) {
  if (closed_ || !machine_.want(channel))
    return;
  ensure_connected();
  maybe_write();
}

void subscriber::unsubscribe(const std::string& channel) {
  if (closed_ || !machine_.unwant(channel))
    return;
  maybe_write();
  check_idle();
}

void subscriber::close() {
  if (closed_)
    return;
  closed_ = true;
  drop_quietly();
  retry_timer_.cancel();
  retry_armed_ = false;
  for (const auto& ch : machine_.wanted())
    machine_.unwant(ch);
}

void subscriber::retry_refused() {
  if (closed_)
    return;
  machine_.retry_refused();
  ensure_connected();
  maybe_write();
}

void subscriber::retarget(const endpoint& ep) {
  if (closed_ || (ep.host == ep_.host && ep.port == ep_.port && ep.path == ep_.path))
    return;
  std::vector<std::string> were_on;
  if (conn_) {
    were_on = machine_.wanted();
    const bool had = machine_.connection_closed();
    conn_->close();
    conn_.reset();
    connect_timer_.cancel();
    if (!had)
      were_on.clear();
  }
  ep_ = ep;
  tls_ctx_.reset();  // the peer name it verifies is the old host's
  // A new server: no reason to wait for the old one's backoff.
  backoff_.restart();
  retry_timer_.cancel();
  retry_armed_ = false;
  emit_lost(were_on);
  ensure_connected();
}

void subscriber::ensure_connected() {
  if (closed_ || conn_ || retry_armed_ || machine_.nothing_wanted())
    return;
  const auto now = clock_type::now();
  if (backoff_.waiting(now)) {
    retry_armed_ = true;
    retry_timer_.expires_at(backoff_.next_attempt());
    retry_timer_.async_wait([self = shared_from_this()](asio::error_code ec) {
      if (ec || !self->retry_armed_)
        return;
      self->retry_armed_ = false;
      self->ensure_connected();
    });
    return;
  }
  if (ep_.tls.enabled && !tls_ctx_) {
    std::string why;
    tls_ctx_ = make_tls_context(ep_.tls, tls_peer_name(ep_), why);
    if (!tls_ctx_) {
      // A configuration error; retried after the backoff like any failed connect (the
      // request connection reports the same error to every request).
      backoff_.fail(now);
      if (cb_.on_down)
        cb_.on_down(why);
      return ensure_connected();
    }
  }
  machine_.begin_connection();
  auto c = std::make_shared<connection>();
  conn_ = c;
  connect_timer_.expires_at(now + opts_.connect_timeout);
  connect_timer_.async_wait([self = shared_from_this(), c](asio::error_code ec) {
    if (ec || c != self->conn_ || self->machine_.ready())
      return;
    self->fail_connection("connect timed out");
  });
  async_open(c, strand_, ep_, opts_.tcp_nodelay, tls_ctx_ ? &*tls_ctx_ : nullptr,
             [self = shared_from_this(), c](std::optional<errc> code, std::string why) {
               if (c != self->conn_)
                 return;
               if (code)
                 return self->fail_connection(why);
               self->on_open(c);
             });
}

void subscriber::on_open(const std::shared_ptr<connection>& c) {
  machine_.transport_ready(handshake{ep_.username, ep_.password, ep_.db});
  if (machine_.ready())
    connect_timer_.cancel();
  start_read(c);
  maybe_write();
  check_idle();
}

void subscriber::maybe_write() {
  if (!conn_ || !machine_.take_write(conn_->writing))
    return;
  auto c = conn_;
  c->with_stream([&](auto& stream) {
    asio::async_write(stream, asio::buffer(c->writing),
                      [self = shared_from_this(), c](asio::error_code ec, std::size_t) {
                        if (c != self->conn_)
                          return;
                        self->machine_.write_done();
                        if (ec)
                          return self->fail_connection("write: " + ec.message());
                        c->writing.clear();
                        self->maybe_write();
                        self->check_idle();
                      });
  });
}

void subscriber::start_read(const std::shared_ptr<connection>& c) {
  c->with_stream([&](auto& stream) {
    stream.async_read_some(asio::buffer(c->read_buf),
                           [self = shared_from_this(), c](asio::error_code ec, std::size_t n) {
                             if (c != self->conn_)
                               return;
                             if (ec)
                               return self->fail_connection("read: " + ec.message());
                             self->on_read(c, n);
                           });
  });
}

void subscriber::on_read(const std::shared_ptr<connection>& c, std::size_t n) {
  auto res = machine_.on_read(c->read_buf.data(), n);
  using status = subscription_machine::read_result::status;
  if (res.answered) {
    backoff_.reset();
    if (machine_.ready())
      connect_timer_.cancel();
  }
  // Events before failures: messages that arrived ahead of a protocol error are real.
  for (const auto& e : res.events) {
    emit(e.what, e.channel, e.payload);
    if (c != conn_ || closed_)
      return;  // the handler's owner closed or moved us (the owner's callbacks can)
  }
  if (res.st == status::handshake_failed)
    return fail_connection("handshake rejected: " + res.why);
  if (res.st == status::protocol_error)
    return fail_connection("protocol error: " + res.why);
  for (const auto& [channel, why] : res.refused) {
    if (cb_.on_refused)
      cb_.on_refused(channel, why);
    if (c != conn_ || closed_)
      return;
  }
  maybe_write();
  if (c != conn_)
    return;
  check_idle();
  if (c == conn_)
    start_read(c);
}

void subscriber::fail_connection(const std::string& why) {
  std::vector<std::string> were_on = machine_.wanted();
  if (!machine_.connection_closed())
    were_on.clear();
  if (conn_) {
    conn_->close();
    conn_.reset();
  }
  connect_timer_.cancel();
  backoff_.fail(clock_type::now());
  emit_lost(were_on);
  if (closed_)
    return;
  if (cb_.on_down)
    cb_.on_down(why);
  ensure_connected();
}

// Closes the connection without a `lost` event: nothing is wanted, or we are closing.
void subscriber::drop_quietly() {
  if (conn_) {
    conn_->close();
    conn_.reset();
  }
  machine_.connection_closed();
  connect_timer_.cancel();
}

void subscriber::check_idle() {
  // Nothing wanted and every unsubscribe confirmed: the connection has no use.
  if (conn_ && machine_.idle() && machine_.ready())
    drop_quietly();
}

void subscriber::emit_lost(const std::vector<std::string>& channels) {
  if (channels.empty() || closed_)
    return;
  if (!lost_per_channel_)
    return emit(notification::kind::lost, {}, {});
  for (const auto& ch : channels)
    emit(notification::kind::lost, ch, {});
}

void subscriber::emit(notification::kind what, std::string_view channel, std::string_view payload) {
  if (closed_ || !cb_.on_event)
    return;
  notification n;
  n.what = what;
  n.channel = channel;
  n.payload = payload;
  cb_.on_event(n);
}

}  // namespace redlock::detail

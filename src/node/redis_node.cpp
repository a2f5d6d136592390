// The built-in Redis node's transport: one connection (TCP, Unix socket or TLS) to one
// server, the timers, and a loop over what the request pipeline (internal/pipeline.hpp)
// asks for. The pipeline owns requests, encoding, reply matching, the handshake gating,
// NOSCRIPT resends and deadlines; the backoff (internal/backoff.hpp) decides when to
// reconnect; internal/tls_context.hpp builds the TLS setup; internal/transport.hpp opens the
// connection (shared with the notifiers' pub/sub connections, internal/subscriber.hpp).
//
// Shape: every piece of state lives in `impl` and is touched only on one strand. Public
// methods post to the strand, so a handler never runs inside the initiating call. Async
// operations capture a shared_ptr to the impl (and to the connection they run on), so the
// destructor of redis_node only posts close() and returns.
//
// Writes: one in flight at a time; requests that arrive meanwhile coalesce in the
// pipeline, which hands them over in one buffer when the write completes. A read loop feeds
// the pipeline, which completes as many requests as there are complete replies.
//
// Deadlines: the pipeline's deadlines are monotone in issue order, so a single timer armed
// for the oldest request suffices. The timer is not re-armed per request: when it fires it
// asks the pipeline what has expired and re-arms for the next deadline, so a busy connection
// pays about one timer operation per timeout period instead of one per request.
#include "redlock/redis_node.hpp"

#include <algorithm>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>

#include "internal/backoff.hpp"
#include "internal/pipeline.hpp"
#include "internal/resp.hpp"
#include "internal/subscriber.hpp"
#include "internal/tls_context.hpp"
#include "internal/transport.hpp"
#include "redlock/error.hpp"

namespace redlock {

namespace {

using clock_type = std::chrono::steady_clock;
using detail::strand_type;
using detail::tcp_socket;
using timer_type = detail::steady_timer_type;
using detail::connection;
using detail::error_reply;
using phase = detail::pipeline::phase;

// Scripts cached per node (SHA1, encoded EVAL/EVALSHA prefixes). Beyond this many distinct
// scripts each request carries its own copy, so a caller generating scripts cannot grow
// the node without bound.
constexpr std::size_t max_cached_scripts = 256;

std::string ms_string(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

detail::pipeline_options pipeline_options_for(const connection_options& opts) {
  detail::pipeline_options p;
  p.request_timeout = opts.request_timeout;
  p.limits = detail::reader_limits{
      opts.max_reply_bytes, detail::reader_limits{}.max_array_elements,
      std::max(detail::reader_limits{}.max_buffered_bytes, opts.max_reply_bytes + 1024)};
  return p;
}

}  // namespace

struct redis_node::impl : std::enable_shared_from_this<impl> {
  impl(asio::any_io_executor ex, endpoint ep, connection_options opts)
      : strand_(asio::make_strand(std::move(ex))),
        ep_(std::move(ep)),
        opts_(opts),
        id_(ep_.to_string()),
        handshake_{ep_.username, ep_.password, ep_.db},
        pipeline_(pipeline_options_for(opts)),
        request_timer_(strand_),
        connect_timer_(strand_),
        backoff_(opts.backoff_initial, opts.backoff_max) {}

  // ---- entry points (on the strand) ------------------------------------------------------

  // Called from any thread. Requests are handed to the strand in batches: the first one
  // into an empty inbox posts a drain, later ones ride along. Compared with one post per
  // request this saves a strand hand-off and an operation allocation per request when
  // requests arrive in bursts (as they do from the completion handlers of a busy client).
  void enqueue(detail::request&& r, std::vector<std::string>&& argv) {
    bool schedule = false;
    {
      std::lock_guard lock(inbox_mutex_);
      inbox_.emplace_back(std::move(r), std::move(argv));
      schedule = !drain_scheduled_;
      drain_scheduled_ = true;
    }
    if (schedule)
      asio::post(strand_, [self = shared_from_this()] { self->drain(); });
  }

  void drain() {
    {
      std::lock_guard lock(inbox_mutex_);
      draining_.swap(inbox_);
      drain_scheduled_ = false;
    }
    // One clock read per batch: a request's deadline counts from when the strand took it,
    // which is at most one batch later than when it was issued.
    const auto now = clock_type::now();
    for (auto& in : draining_) {
      const bool command = in.r.k == detail::request::kind::command;
      if (command && in.argv.empty()) {
        in.r.handler(errc::invalid_argument, error_reply("empty command"));
        continue;
      }
      submit(std::move(in.r), command ? &in.argv : nullptr, now);
    }
    draining_.clear();  // keeps the capacity for the next batch
  }

  void submit(detail::request&& r, const std::vector<std::string>* argv,
              clock_type::time_point now) {
    if (closed_) {
      r.handler(errc::closed, error_reply("node " + id_ + " is closed"));
      return;
    }
    bool launch = false;
    if (pipeline_.current_phase() == phase::none) {
      if (backoff_.waiting(now)) {
        r.handler(backoff_code_, error_reply(last_failure_ + "; next attempt in " +
                                             ms_string(backoff_.remaining(now))));
        return;
      }
      prepare_connection();
      launch = true;
    }
    pipeline_.submit(std::move(r), argv, now);
    if (!request_timer_armed_)
      arm_request_timer(pipeline_.next_deadline());
    if (launch)
      launch_connect();
    else
      maybe_write();
  }

  void close() {
    close_notifiers();
    if (closed_)
      return;
    drop_connection();
    closed_ = true;
    request_timer_.cancel();
    connect_timer_.cancel();
    fail_all(errc::closed, "node " + id_ + " was closed");
  }

  // Any thread. The node keeps weak references only: a notifier may outlive the node, and
  // the list is pruned of dead entries whenever one is added, so it stays as long as the
  // number of live notifiers.
  std::shared_ptr<notifier> open_notifier(notification_handler on_event) {
    auto strand = asio::make_strand(strand_.get_inner_executor());
    detail::subscriber::callbacks cb;
    cb.on_event = std::move(on_event);
    auto core = std::make_shared<detail::subscriber>(strand, ep_, opts_, std::move(cb));
    auto n = std::make_shared<detail::strand_notifier>(strand, core);
    std::lock_guard lock(notifiers_mutex_);
    if (notifiers_closed_) {
      n->close();
      return n;
    }
    std::erase_if(notifiers_, [](const std::weak_ptr<notifier>& w) { return w.expired(); });
    notifiers_.push_back(n);
    return n;
  }

  void close_notifiers() {
    std::vector<std::weak_ptr<notifier>> list;
    {
      std::lock_guard lock(notifiers_mutex_);
      notifiers_closed_ = true;
      list.swap(notifiers_);
    }
    for (auto& w : list)
      if (auto n = w.lock())
        n->close();
  }

  void post_close() {
    asio::post(strand_, [self = shared_from_this()] { self->close(); });
  }

  // ---- connecting -------------------------------------------------------------------------

  void prepare_connection() {
    pipeline_.begin_connection();
    conn_ = std::make_shared<connection>();
    connect_timer_.expires_at(clock_type::now() + opts_.connect_timeout);
    connect_timer_.async_wait([self = shared_from_this(), c = conn_](asio::error_code ec) {
      if (!ec)
        self->on_connect_timeout(c);
    });
  }

  void launch_connect() {
    if (ep_.tls.enabled && !ensure_tls_context())
      return connect_failed(errc::tls_failed, tls_ctx_error_);
    auto c = conn_;
    detail::async_open(c, strand_, ep_, opts_.tcp_nodelay, tls_ctx_ ? &*tls_ctx_ : nullptr,
                       [self = shared_from_this(), c](std::optional<errc> code, std::string why) {
                         if (c != self->conn_)
                           return;
                         if (code)
                           return self->connect_failed(*code, why);
                         self->on_transport_ready(c);
                       });
  }

  bool ensure_tls_context() {
    if (!tls_ctx_)
      tls_ctx_ = detail::make_tls_context(ep_.tls, detail::tls_peer_name(ep_), tls_ctx_error_);
    return tls_ctx_.has_value();
  }

  // TCP/Unix connected (and TLS handshake done): the pipeline queues AUTH/SELECT and
  // writes nothing else until every handshake reply has succeeded.
  void on_transport_ready(const std::shared_ptr<connection>& c) {
    const bool handshaking = pipeline_.transport_ready(handshake_);
    start_read(c);
    if (!handshaking)
      return become_ready(false);
    maybe_write();
  }

  // `answered`: the server has replied on this connection (the handshake succeeded), which
  // proves it alive and ends the backoff. Without a handshake the first reply does that
  // (see on_read): a paused server still accepts TCP connections, and a reset after a
  // timeout must keep doubling the backoff rather than start over.
  void become_ready(bool answered) {
    connect_timer_.cancel();
    if (answered)
      reset_backoff();
    maybe_write();
  }

  void reset_backoff() {
    backoff_.reset();
    last_failure_.clear();
  }

  void on_connect_timeout(const std::shared_ptr<connection>& c) {
    const phase p = pipeline_.current_phase();
    if (c != conn_ || (p != phase::connecting && p != phase::handshaking))
      return;
    connect_failed(errc::timeout,
                   "connect timed out after " + ms_string(opts_.connect_timeout) + stall_hint());
  }

  // A connect attempt failed: back off, and fail everything queued with `code`.
  void connect_failed(errc code, const std::string& why) {
    const auto delay = back_off("connect to " + id_ + " failed: " + why);
    fail_all(code, last_failure_ + "; next attempt in " + ms_string(delay));
  }

  // Closes the connection and backs off: no new attempt until the returned delay has
  // passed; meanwhile requests fail at once with connect_failed and `failure` (a whole
  // phrase, e.g. "connect to ... failed: ..."). The one backoff of the node: failed
  // connects, rejected handshakes and resets after a request timeout share it. Queued
  // entries stay; callers fail them.
  std::chrono::milliseconds back_off(std::string failure) {
    drop_connection();
    const auto delay = backoff_.fail(clock_type::now());
    last_failure_ = std::move(failure);
    backoff_code_ = errc::connect_failed;
    return delay;
  }

  // ---- I/O --------------------------------------------------------------------------------

  void maybe_write() {
    if (conn_ && pipeline_.take_write(conn_->writing))
      start_write(conn_);
  }

  void start_write(const std::shared_ptr<connection>& c) {
    c->with_stream([&](auto& stream) {
      asio::async_write(stream, asio::buffer(c->writing),
                        [self = shared_from_this(), c](asio::error_code ec, std::size_t) {
                          self->on_write(c, ec);
                        });
    });
  }

  void on_write(const std::shared_ptr<connection>& c, asio::error_code ec) {
    if (c != conn_)
      return;
    pipeline_.write_done();
    if (ec)
      return connection_error(c, ec, "write");
    c->writing.clear();
    maybe_write();
  }

  void start_read(const std::shared_ptr<connection>& c) {
    c->with_stream([&](auto& stream) {
      stream.async_read_some(asio::buffer(c->read_buf),
                             [self = shared_from_this(), c](asio::error_code ec, std::size_t n) {
                               self->on_read(c, ec, n);
                             });
    });
  }

  void on_read(const std::shared_ptr<connection>& c, asio::error_code ec, std::size_t n) {
    if (c != conn_)
      return;
    if (ec)
      return connection_error(c, ec, "read");
    const auto res = pipeline_.on_read(c->read_buf.data(), n);
    if (res.ready)
      connect_timer_.cancel();
    if (res.answered)
      reset_backoff();
    using status = detail::pipeline::read_result::status;
    switch (res.st) {
      case status::ok:
        break;
      case status::handshake_failed:
        // The pipeline failed the queued requests with the server's reply. A handshake the
        // server rejected (WRONGPASS, NOPERM, a missing db...) will be rejected again:
        // requests in the backoff window carry that code, not a generic connect failure.
        back_off("connect to " + id_ + " failed: " + res.why);
        backoff_code_ = res.code;
        return;
      case status::protocol_error:
        return protocol_failure(res.why);
    }
    maybe_write();  // a NOSCRIPT resend, or the requests waiting for the handshake
    start_read(c);
  }

  void connection_error(const std::shared_ptr<connection>& c, const asio::error_code& ec,
                        const char* what) {
    if (pipeline_.current_phase() == phase::handshaking ||
        (pipeline_.replies() == 0 && ec.category() == asio::error::get_ssl_category())) {
      // E.g. a TLS server rejecting our client certificate after the handshake, or the
      // server closing during AUTH: a failed connect, with backoff.
      const errc code = ec.category() == asio::error::get_ssl_category() ? errc::tls_failed
                                                                         : errc::connect_failed;
      return connect_failed(
          code, std::string(what) + ": " + detail::describe_tls_error(ec) + plain_to_tls_hint(*c));
    }
    const std::string hint = plain_to_tls_hint(*c);
    drop_connection();
    fail_all(errc::connection_lost,
             "connection to " + id_ + " lost: " + what + ": " + ec.message() + hint);
  }

  void protocol_failure(const std::string& why) {
    const std::string hint = conn_ ? plain_to_tls_hint(*conn_) : std::string();
    drop_connection();
    fail_all(errc::protocol_error, "protocol error from " + id_ + ": " + why + hint);
  }

  // ---- deadlines --------------------------------------------------------------------------

  void arm_request_timer(clock_type::time_point when) {
    request_timer_armed_ = true;
    request_timer_.expires_at(when);
    request_timer_.async_wait([self = shared_from_this()](asio::error_code ec) {
      if (ec)
        return;  // cancelled by close()
      self->on_request_timer();
    });
  }

  void on_request_timer() {
    request_timer_armed_ = false;
    if (closed_)
      return;
    const auto now = clock_type::now();
    if (pipeline_.expired(now)) {
      const reply timed_out = error_reply("request to " + id_ + " timed out after " +
                                          ms_string(opts_.request_timeout) + stall_hint());
      const reply lost = error_reply("connection to " + id_ + " reset after a request timed out");
      // After a reset the server may be stalled (paused, overloaded, a slow script), so
      // reconnect only after the backoff: an immediate reconnect would pile new requests
      // on it.
      if (pipeline_.on_deadline(now, timed_out, lost) == detail::pipeline::expiry::reset_connection)
        back_off(lost.str);
    }
    if (!pipeline_.empty()) {
      const auto next = pipeline_.next_deadline();
      if (next != clock_type::time_point::max())
        arm_request_timer(next);
    }
  }

  // The likely mistake behind a connection that stalls before its first reply, for timeout
  // messages: TLS to a plain port (a plain Redis waits for a newline that the ClientHello
  // need not contain) or plain to a TLS port (a TLS server may wait for a whole record).
  // Phrased as a question: a paused server looks the same.
  std::string stall_hint() const {
    if (!conn_ || pipeline_.replies() != 0 || ep_.kind == endpoint::transport::unix_socket)
      return {};
    const phase p = pipeline_.current_phase();
    if (conn_->tls) {
      if (p == phase::connecting && conn_->tcp_connected && !conn_->handshake_done)
        return " (the server did not answer the TLS handshake; is this a plain (non-TLS) port?)";
      return {};
    }
    if (p == phase::handshaking || p == phase::ready)
      return " (no reply on this connection; is this a TLS port (use rediss://)?)";
    return {};
  }

  // The same for a plain connection that the server closed, reset or answered with
  // something other than RESP before any reply: what a Redis TLS port does with plain text.
  std::string plain_to_tls_hint(const connection& c) const {
    if (c.tls || pipeline_.replies() != 0 || ep_.kind == endpoint::transport::unix_socket)
      return {};
    return " (no reply from the server; is this a TLS port (use rediss://)?)";
  }

  // ---- teardown ---------------------------------------------------------------------------

  // Closes the current connection (its pending operations complete as stale) and returns to
  // no connection. Queued requests stay; callers fail them.
  void drop_connection() {
    if (conn_) {
      conn_->close();
      conn_.reset();
    }
    pipeline_.connection_closed();
    connect_timer_.cancel();
  }

  void fail_all(errc code, const std::string& msg) { pipeline_.fail_all(code, error_reply(msg)); }

  // ---- script cache (any thread) ------------------------------------------------------

  // Returns the cached entry, or null with `owned` filled when the cache is full.
  detail::script_entry* script_for(const script& s, std::unique_ptr<detail::script_entry>& owned) {
    std::lock_guard lock(scripts_mutex_);
    for (const auto& e : scripts_)
      if (e->sha1 == s.sha1())
        return e.get();
    if (scripts_.size() < max_cached_scripts) {
      scripts_.push_back(std::make_unique<detail::script_entry>(s));
      return scripts_.back().get();
    }
    owned = std::make_unique<detail::script_entry>(s);
    return nullptr;
  }

  // Immutable after construction.
  strand_type strand_;
  const endpoint ep_;
  const connection_options opts_;
  const std::string id_;
  const detail::handshake handshake_;

  std::mutex scripts_mutex_;
  std::vector<std::unique_ptr<detail::script_entry>> scripts_;

  // Requests not yet taken by the strand (see enqueue()).
  struct inbound {
    inbound(detail::request&& req, std::vector<std::string>&& args)
        : r(std::move(req)), argv(std::move(args)) {}
    detail::request r;
    std::vector<std::string> argv;  // for commands; evals are encoded already
  };
  std::mutex inbox_mutex_;
  std::vector<inbound> inbox_;     // guarded by inbox_mutex_
  bool drain_scheduled_ = false;   // guarded by inbox_mutex_
  std::vector<inbound> draining_;  // strand only; swapped with inbox_ to keep both capacities

  std::mutex notifiers_mutex_;
  std::vector<std::weak_ptr<notifier>> notifiers_;  // guarded by notifiers_mutex_
  bool notifiers_closed_ = false;                   // guarded by notifiers_mutex_

  // Strand-only state.
  bool closed_ = false;
  std::shared_ptr<connection> conn_;
  detail::pipeline pipeline_;
  timer_type request_timer_;
  bool request_timer_armed_ = false;
  timer_type connect_timer_;
  std::optional<asio::ssl::context> tls_ctx_;
  std::string tls_ctx_error_;
  detail::backoff backoff_;
  std::string last_failure_;                  // why the node is backing off (see back_off())
  errc backoff_code_ = errc::connect_failed;  // what requests in the backoff window fail with
};

redis_node::redis_node(asio::any_io_executor ex, endpoint ep, connection_options opts)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(ep), opts)) {}

redis_node::~redis_node() {
  // Never blocks: the close runs on the strand; pending operations keep the impl alive
  // until they have completed.
  try {
    impl_->post_close();
  } catch (...) {
  }
}

const std::string& redis_node::id() const noexcept {
  return impl_->id_;
}

const endpoint& redis_node::get_endpoint() const noexcept {
  return impl_->ep_;
}

void redis_node::close() {
  impl_->post_close();
}

std::shared_ptr<notifier> redis_node::open_notifier(notification_handler on_event) {
  return impl_->open_notifier(std::move(on_event));
}

void redis_node::async_exec(std::vector<std::string> argv, reply_handler handler) {
  detail::request r;
  r.handler = std::move(handler);
  impl_->enqueue(std::move(r), std::move(argv));
}

void redis_node::async_identify(identity_handler handler) {
  // Through the normal request path: it waits for the handshake like any request, and it
  // costs one round trip on the pipelined connection.
  async_exec({"INFO", "server"}, [h = std::move(handler)](std::error_code ec, reply r) mutable {
    if (ec)
      return h(ec, {});
    const std::string_view run_id = detail::info_field(r.str, "run_id");
    if (run_id.empty())  // not a Redis server we know (a proxy?): identity unknown
      return h({}, {});
    std::vector<std::string> ids;
    ids.push_back("run_id:" + std::string(run_id));
    h({}, std::move(ids));
  });
}

void redis_node::async_eval(const script& s, std::span<const std::string> keys,
                            std::span<const std::string> args, reply_handler handler) {
  // Encoded here, in the caller's thread: one allocation holding every key and argument.
  std::unique_ptr<detail::script_entry> owned;
  detail::script_entry* entry = impl_->script_for(s, owned);
  impl_->enqueue(detail::request::eval(entry, std::move(owned), keys, args, std::move(handler)),
                 std::vector<std::string>{});
}

}  // namespace redlock

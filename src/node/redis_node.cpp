// The built-in Redis node: one pipelined connection (TCP, Unix socket or TLS) to one server.
//
// Shape: every piece of state lives in `impl` and is touched only on one strand. Public
// methods post to the strand, so a handler never runs inside the initiating call. Async
// operations capture a shared_ptr to the impl (and to the connection they run on), so the
// destructor of redis_node only posts close() and returns.
//
// Request life: encoded into `pending_` (one buffer for everything not yet handed to the
// socket) and recorded in `entries_` (a ring of handlers, FIFO in wire order). One write is
// in flight at a time; requests that arrive meanwhile coalesce into `pending_`, which is
// swapped with the connection's write buffer when the write completes. A read loop feeds
// the reply_reader and completes as many entries as there are complete replies.
//
// Deadlines: every request has the same timeout, so deadlines are monotone in issue order
// and a single timer armed for the oldest entry suffices. The timer is not re-armed per
// request: when it fires it checks the oldest entry and re-arms for it, so a busy connection
// pays about one timer operation per timeout period instead of one per request.
#include "redlock/redis_node.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>
#include <charconv>
#include <cstdint>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <string_view>
#include <utility>

#include "internal/resp.hpp"
#include "redlock/error.hpp"

namespace redlock {

namespace {

using clock_type = std::chrono::steady_clock;
using strand_type = asio::strand<asio::any_io_executor>;
// Concrete strand executors on the I/O objects: completion handlers are dispatched through
// the strand without the type erasure of any_io_executor.
using tcp_socket = asio::basic_stream_socket<asio::ip::tcp, strand_type>;
using unix_socket = asio::basic_stream_socket<asio::local::stream_protocol, strand_type>;
using tls_stream = asio::ssl::stream<tcp_socket>;
using timer_type =
    asio::basic_waitable_timer<clock_type, asio::wait_traits<clock_type>, strand_type>;
using resolver_type = asio::ip::basic_resolver<asio::ip::tcp, strand_type>;

constexpr std::size_t read_buffer_size = 64 * 1024;
// Scripts cached per node (SHA1, encoded EVAL/EVALSHA prefixes). Beyond this many distinct
// scripts each request carries its own copy, so a caller generating scripts cannot grow
// the node without bound.
constexpr std::size_t max_cached_scripts = 256;

bool starts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.substr(0, prefix.size()) == prefix;
}

// Maps an error reply to the code the layers above branch on; the reply keeps the message.
errc classify_error(std::string_view msg) noexcept {
  if (starts_with(msg, "WRONGPASS"))
    return errc::auth_failed;
  if (starts_with(msg, "NOAUTH"))
    return errc::auth_required;
  if (starts_with(msg, "NOPERM"))
    return errc::no_permission;
  // Redis 6+: "ERR AUTH <password> called without any password configured for the default
  // user..."; Redis 5: "ERR Client sent AUTH, but no password is set".
  if (starts_with(msg, "ERR") && (msg.find("without any password configured") != msg.npos ||
                                  msg.find("no password is set") != msg.npos))
    return errc::auth_not_configured;
  return errc::server_error;
}

reply error_reply(std::string msg) {
  reply r;
  r.kind = reply::type::error;
  r.str = std::move(msg);
  return r;
}

std::string ms_string(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

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

// A script as this node sends it. `sha1`, `evalsha_prefix` and `eval_prefix` are immutable
// after creation; `loaded_on` is touched only on the strand.
struct script_entry {
  std::string sha1;
  std::string evalsha_prefix;   // "$7\r\nEVALSHA\r\n$40\r\n<sha1>\r\n"
  std::string eval_prefix;      // "$4\r\nEVAL\r\n$<n>\r\n<text>\r\n"
  std::uint64_t loaded_on = 0;  // serial of the connection on which EVAL was last sent

  explicit script_entry(const script& s) : sha1(s.sha1()) {
    // The codec writes the bulk strings; only the leading "*2\r\n" is dropped, because
    // the multi-bulk count is written per request (it includes the keys and arguments).
    std::array<std::string_view, 2> sha_argv{"EVALSHA", s.sha1()};
    detail::append_command(evalsha_prefix, sha_argv);
    evalsha_prefix.erase(0, 4);
    std::array<std::string_view, 2> eval_argv{"EVAL", s.text()};
    detail::append_command(eval_prefix, eval_argv);
    eval_prefix.erase(0, 4);
  }
};

struct request {
  enum class kind : std::uint8_t { command, eval, auth, select };

  reply_handler handler;  // empty for AUTH/SELECT, which the node itself issues
  clock_type::time_point deadline = clock_type::time_point::max();
  std::size_t bytes = 0;  // encoded size, used while the request is still unsent
  kind k = kind::command;
  bool sent_as_evalsha = false;
  bool resent = false;  // re-queued after NOSCRIPT: its deadline is older than its position
  script_entry* script = nullptr;
  std::unique_ptr<script_entry> owned_script;  // only when the node's cache is full
  // For eval: "numkeys keys... args..." encoded as a multi-bulk (kept for a NOSCRIPT resend);
  // tail_skip is the length of its "*<n>\r\n" line, which is replaced per send.
  std::string tail;
  std::size_t tail_skip = 0;
  std::size_t tail_count = 0;
};

// FIFO of requests with push_front (AUTH/SELECT go before queued requests). A power-of-two
// ring in one vector: no allocation per request once it has grown to the working size.
class request_ring {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  request& operator[](std::size_t i) noexcept { return buf_[(head_ + i) & (buf_.size() - 1)]; }
  request& front() noexcept { return buf_[head_]; }

  void push_back(request&& r) {
    if (size_ == buf_.size())
      grow();
    (*this)[size_] = std::move(r);
    ++size_;
  }
  void push_front(request&& r) {
    if (size_ == buf_.size())
      grow();
    head_ = (head_ + buf_.size() - 1) & (buf_.size() - 1);
    buf_[head_] = std::move(r);
    ++size_;
  }
  // Drops the front request, whose handler the caller has moved out. The slot keeps its
  // buffers for reuse but nothing that belongs to the caller.
  void release_front() noexcept {
    request& r = buf_[head_];
    r.script = nullptr;
    r.owned_script.reset();
    r.tail.clear();
    r.resent = false;
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
  }
  request pop_front() {
    request r = std::move(buf_[head_]);
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
    return r;
  }

 private:
  void grow() {
    std::vector<request> next(buf_.empty() ? 64 : buf_.size() * 2);
    for (std::size_t i = 0; i < size_; ++i)
      next[i] = std::move((*this)[i]);
    buf_ = std::move(next);
    head_ = 0;
  }
  std::vector<request> buf_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

// One transport connection. Owned by shared_ptr: pending operations keep it alive (an
// ssl::stream must outlive its operations), and a handler whose connection is no longer the
// node's current one knows it is stale.
struct connection {
  explicit connection(std::uint64_t s) : serial(s), read_buf(read_buffer_size) {}

  template <class F>
  void with_stream(F&& f) {
    if (tls)
      f(*tls);
    else if (tcp)
      f(*tcp);
    else
      f(*local);
  }

  void close() noexcept {
    asio::error_code ec;
    if (resolver)
      resolver->cancel();
    if (tls)
      tls->lowest_layer().close(ec);
    if (tcp)
      tcp->close(ec);
    if (local)
      local->close(ec);
  }

  std::uint64_t serial;
  std::optional<resolver_type> resolver;
  std::optional<tcp_socket> tcp;
  std::optional<tls_stream> tls;
  std::optional<unix_socket> local;
  std::string writing;  // the buffer of the write in flight
  std::vector<char> read_buf;
  bool write_in_flight = false;
  bool tcp_connected = false;   // for hints: a stall after this is the TLS handshake's
  bool handshake_done = false;  // TLS handshake finished (errors after it are not tls_failed)
  std::uint64_t replies = 0;
};

}  // namespace

struct redis_node::impl : std::enable_shared_from_this<impl> {
  impl(asio::any_io_executor ex, endpoint ep, connection_options opts)
      : strand_(asio::make_strand(std::move(ex))),
        ep_(std::move(ep)),
        opts_(opts),
        id_(ep_.to_string()),
        reader_(detail::reader_limits{
            opts.max_reply_bytes, detail::reader_limits{}.max_array_elements,
            std::max(detail::reader_limits{}.max_buffered_bytes, opts.max_reply_bytes + 1024)}),
        request_timer_(strand_),
        connect_timer_(strand_),
        rng_(std::random_device{}()) {}

  enum class state { idle, connecting, handshaking, ready, closed };

  // ---- entry points (on the strand) ------------------------------------------------------

  // Called from any thread. Requests are handed to the strand in batches: the first one
  // into an empty inbox posts a drain, later ones ride along. Compared with one post per
  // request this saves a strand hand-off and an operation allocation per request when
  // requests arrive in bursts (as they do from the completion handlers of a busy client).
  void enqueue(request&& r, std::vector<std::string>&& argv) {
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
      if (in.r.k == request::kind::command && in.argv.empty()) {
        in.r.handler(errc::invalid_argument, error_reply("empty command"));
        continue;
      }
      const std::vector<std::string>* argv = in.r.k == request::kind::command ? &in.argv : nullptr;
      submit(std::move(in.r), argv, now);
    }
    draining_.clear();  // keeps the capacity for the next batch
  }

  void submit(request&& r, const std::vector<std::string>* argv, clock_type::time_point now) {
    if (state_ == state::closed) {
      r.handler(errc::closed, error_reply("node " + id_ + " is closed"));
      return;
    }
    bool launch = false;
    if (state_ == state::idle) {
      if (now < next_attempt_) {
        auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_attempt_ - now);
        r.handler(backoff_code_,
                  error_reply(last_failure_ + "; next attempt in " + ms_string(wait)));
        return;
      }
      prepare_connection();
      launch = true;
    }
    r.deadline = now + opts_.request_timeout;
    const std::size_t before = pending_.size();
    if (argv) {
      with_views(*argv,
                 [&](std::span<const std::string_view> v) { detail::append_command(pending_, v); });
    } else {
      encode_eval(r);
    }
    r.bytes = pending_.size() - before;
    entries_.push_back(std::move(r));
    if (!request_timer_armed_)
      arm_request_timer(entries_[entries_.size() - 1].deadline);
    if (launch)
      launch_connect();
    else
      maybe_write();
  }

  void close() {
    if (state_ == state::closed)
      return;
    drop_connection();
    state_ = state::closed;
    request_timer_.cancel();
    connect_timer_.cancel();
    fail_all(errc::closed, "node " + id_ + " was closed");
  }

  void post_close() {
    asio::post(strand_, [self = shared_from_this()] { self->close(); });
  }

  // ---- encoding ---------------------------------------------------------------------------

  void encode_eval(request& r) {
    const bool use_sha = r.script->loaded_on == serial_;
    // EVAL loads the script; requests behind it on this connection can use EVALSHA. Should
    // this EVAL be dropped unsent, unload_dropped_eval() hands the load on.
    if (!use_sha)
      r.script->loaded_on = serial_;
    r.sent_as_evalsha = use_sha;
    append_eval(pending_, r, use_sha);
  }

  static void append_eval(std::string& out, const request& r, bool use_sha) {
    char head[24];
    head[0] = '*';
    char* p = std::to_chars(head + 1, head + sizeof head - 2, r.tail_count + 2).ptr;
    *p++ = '\r';
    *p++ = '\n';
    out.append(head, static_cast<std::size_t>(p - head));
    out.append(use_sha ? r.script->evalsha_prefix : r.script->eval_prefix);
    out.append(r.tail, r.tail_skip, std::string::npos);
  }

  // ---- connecting -------------------------------------------------------------------------

  void prepare_connection() {
    state_ = state::connecting;
    serial_ = next_serial_++;
    conn_ = std::make_shared<connection>(serial_);
    handshake_left_ = 0;
    resent_count_ = 0;
    reader_.reset();
    connect_timer_.expires_at(clock_type::now() + opts_.connect_timeout);
    connect_timer_.async_wait([self = shared_from_this(), c = conn_](asio::error_code ec) {
      if (!ec)
        self->on_connect_timeout(c);
    });
  }

  void launch_connect() {
    auto c = conn_;
    auto self = shared_from_this();
    if (ep_.kind == endpoint::transport::unix_socket) {
      c->local.emplace(strand_);
      c->local->async_connect(
          asio::local::stream_protocol::endpoint(ep_.path), [self, c](asio::error_code ec) {
            if (c != self->conn_)
              return;
            if (ec)
              return self->connect_failed(errc::connect_failed, "connect: " + ec.message());
            self->on_transport_ready(c);
          });
      return;
    }
    if (ep_.tls.enabled) {
      if (!ensure_tls_context())
        return connect_failed(errc::tls_failed, tls_ctx_error_);
      c->tls.emplace(strand_, *tls_ctx_);
    } else {
      c->tcp.emplace(strand_);
    }
    tcp_socket& sock = c->tls ? c->tls->next_layer() : *c->tcp;
    asio::error_code aec;
    const auto addr = asio::ip::make_address(ep_.host, aec);
    if (!aec) {
      // An IP literal: no resolver round trip.
      sock.async_connect(asio::ip::tcp::endpoint(addr, ep_.port),
                         [self, c](asio::error_code ec) { self->on_tcp_connected(c, ec); });
      return;
    }
    c->resolver.emplace(strand_);
    c->resolver->async_resolve(
        ep_.host, std::to_string(ep_.port),
        [self, c](asio::error_code ec, asio::ip::tcp::resolver::results_type results) {
          if (c != self->conn_)
            return;
          if (ec)
            return self->connect_failed(errc::connect_failed,
                                        "resolve " + self->ep_.host + ": " + ec.message());
          tcp_socket& s = c->tls ? c->tls->next_layer() : *c->tcp;
          asio::async_connect(s, results,
                              [self, c](asio::error_code e, const asio::ip::tcp::endpoint&) {
                                self->on_tcp_connected(c, e);
                              });
        });
  }

  void on_tcp_connected(const std::shared_ptr<connection>& c, asio::error_code ec) {
    if (c != conn_)
      return;
    if (ec)
      return connect_failed(errc::connect_failed, "connect: " + ec.message());
    c->tcp_connected = true;
    tcp_socket& sock = c->tls ? c->tls->next_layer() : *c->tcp;
    if (opts_.tcp_nodelay)
      sock.set_option(asio::ip::tcp::no_delay(true), ec);
    if (!c->tls)
      return on_transport_ready(c);

    const std::string& name = ep_.tls.server_name.empty() ? ep_.host : ep_.tls.server_name;
    asio::error_code aec;
    (void)asio::ip::make_address(name, aec);
    // SNI carries host names only (RFC 6066); an IP literal is verified against the
    // certificate's IP SANs instead.
    if (aec && !SSL_set_tlsext_host_name(c->tls->native_handle(), name.c_str()))
      return connect_failed(errc::tls_failed, "cannot set TLS SNI name");
    if (ep_.tls.insecure_skip_verify) {
      c->tls->set_verify_mode(asio::ssl::verify_none, ec);
    } else {
      c->tls->set_verify_mode(asio::ssl::verify_peer, ec);
      if (!ec)
        c->tls->set_verify_callback(asio::ssl::host_name_verification(name), ec);
    }
    if (ec)
      return connect_failed(errc::tls_failed, "TLS setup: " + ec.message());
    c->tls->async_handshake(
        asio::ssl::stream_base::client, [self = shared_from_this(), c](asio::error_code e) {
          if (c != self->conn_)
            return;
          if (e)
            return self->connect_failed(errc::tls_failed,
                                        "TLS handshake: " + describe_tls(e) + not_tls_hint(e));
          c->handshake_done = true;
          self->on_transport_ready(c);
        });
  }

  static std::string describe_tls(const asio::error_code& e) {
    std::string msg = e.message();
    if (e.category() == asio::error::get_ssl_category()) {
      // e.g. "certificate verify failed (SSL routines)": add why the chain was rejected
      // when OpenSSL recorded it.
      if (ERR_GET_REASON(static_cast<unsigned long>(e.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED)
        msg += " (check the CA file/dir and the server name)";
    }
    return msg;
  }

  // A TLS handshake that failed because the answer was not TLS at all (a plain server that
  // answered the ClientHello with an error reply, or closed) says so.
  static std::string not_tls_hint(const asio::error_code& e) {
    bool not_tls = e == asio::ssl::error::stream_truncated || e == asio::error::eof ||
                   e == asio::error::connection_reset;
    if (e.category() == asio::error::get_ssl_category()) {
      const int reason = ERR_GET_REASON(static_cast<unsigned long>(e.value()));
      not_tls = not_tls || reason == SSL_R_WRONG_VERSION_NUMBER ||
                reason == SSL_R_PACKET_LENGTH_TOO_LONG || reason == SSL_R_RECORD_LENGTH_MISMATCH;
    }
    return not_tls ? " (the server did not answer the TLS handshake; is this a plain (non-TLS) "
                     "port?)"
                   : std::string();
  }

  bool ensure_tls_context() {
    if (tls_ctx_)
      return true;
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    asio::error_code ec;
    ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                        asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                        asio::ssl::context::no_tlsv1_1,
                    ec);
    const auto& t = ep_.tls;
    if (!ec && !t.insecure_skip_verify) {
      if (!t.ca_file.empty()) {
        ctx.load_verify_file(t.ca_file, ec);
        if (ec)
          return tls_context_error("cannot load CA file " + t.ca_file, ec);
      }
      if (!t.ca_dir.empty()) {
        ctx.add_verify_path(t.ca_dir, ec);
        if (ec)
          return tls_context_error("cannot use CA directory " + t.ca_dir, ec);
      }
      if (t.ca_file.empty() && t.ca_dir.empty()) {
        ctx.set_default_verify_paths(ec);
        if (ec)
          return tls_context_error("cannot load the system CA paths", ec);
      }
    }
    if (!ec && !t.cert_file.empty()) {
      ctx.use_certificate_chain_file(t.cert_file, ec);
      if (ec)
        return tls_context_error("cannot load client certificate " + t.cert_file, ec);
    }
    if (!ec && !t.key_file.empty()) {
      ctx.use_private_key_file(t.key_file, asio::ssl::context::pem, ec);
      if (ec)
        return tls_context_error("cannot load client key " + t.key_file, ec);
    }
    if (ec)
      return tls_context_error("TLS context", ec);
    tls_ctx_.emplace(std::move(ctx));
    return true;
  }

  bool tls_context_error(std::string what, const asio::error_code& ec) {
    tls_ctx_error_ = std::move(what) + ": " + ec.message();
    return false;
  }

  // TCP/Unix connected (and TLS handshake done): send AUTH/SELECT, and nothing else until
  // every handshake reply has succeeded. Queued requests wait in pending_ (under their own
  // deadlines): pipelined behind a failed AUTH they would run as the `default` user, behind
  // a failed SELECT in db 0.
  void on_transport_ready(const std::shared_ptr<connection>& c) {
    state_ = state::handshaking;
    std::string& out = c->writing;
    out.clear();
    if (ep_.db != 0) {
      std::string db = std::to_string(ep_.db);
      std::array<std::string_view, 2> argv{"SELECT", db};
      detail::append_command(out, argv);
      request r;
      r.k = request::kind::select;
      entries_.push_front(std::move(r));
      ++handshake_left_;
    }
    if (!ep_.password.empty()) {
      std::string hs;
      if (ep_.username.empty()) {
        std::array<std::string_view, 2> argv{"AUTH", ep_.password};
        detail::append_command(hs, argv);
      } else {
        std::array<std::string_view, 3> argv{"AUTH", ep_.username, ep_.password};
        detail::append_command(hs, argv);
      }
      out.insert(0, hs);
      request r;
      r.k = request::kind::auth;
      entries_.push_front(std::move(r));
      ++handshake_left_;
    }
    start_read(c);
    if (handshake_left_ == 0)
      return become_ready(false);
    start_write(c);
  }

  // `answered`: the server has replied on this connection (the handshake succeeded), which
  // proves it alive and ends the backoff. Without a handshake the first reply does that
  // (see on_read): a paused server still accepts TCP connections, and a reset after a
  // timeout must keep doubling the backoff rather than start over.
  void become_ready(bool answered) {
    state_ = state::ready;
    connect_timer_.cancel();
    if (answered)
      reset_backoff();
    maybe_write();
  }

  void reset_backoff() {
    backoff_ = std::chrono::milliseconds(0);
    last_failure_.clear();
  }

  void on_connect_timeout(const std::shared_ptr<connection>& c) {
    if (c != conn_ || (state_ != state::connecting && state_ != state::handshaking))
      return;
    connect_failed(errc::timeout,
                   "connect timed out after " + ms_string(opts_.connect_timeout) + stall_hint());
  }

  // A connect attempt failed: back off, and fail everything queued with `code`.
  void connect_failed(errc code, std::string why, const reply* server_reply = nullptr) {
    const auto delay = back_off("connect to " + id_ + " failed: " + why);
    // A handshake the server rejected (WRONGPASS, NOPERM, a missing db...) will be rejected
    // again: requests in the backoff window carry that code, not a generic connect failure.
    if (server_reply)
      backoff_code_ = code;
    if (server_reply)
      fail_all(code, *server_reply);
    else
      fail_all(code, last_failure_ + "; next attempt in " + ms_string(delay));
  }

  // Closes the connection and backs off: no new attempt until the returned delay has
  // passed (doubling from backoff_initial to backoff_max, uniform jitter in [b/2, b]);
  // meanwhile requests fail at once with connect_failed and `failure` (a whole phrase,
  // e.g. "connect to ... failed: ..."). The one backoff of the node: failed connects and
  // resets after a request timeout share it. Queued entries stay; callers fail them.
  std::chrono::milliseconds back_off(std::string failure) {
    drop_connection();
    backoff_ =
        backoff_.count() == 0 ? opts_.backoff_initial : std::min(backoff_ * 2, opts_.backoff_max);
    const auto lo = backoff_.count() / 2;
    std::uniform_int_distribution<std::int64_t> jitter(
        lo, std::max<std::int64_t>(lo, backoff_.count()));
    const std::chrono::milliseconds delay(jitter(rng_));
    next_attempt_ = clock_type::now() + delay;
    last_failure_ = std::move(failure);
    backoff_code_ = errc::connect_failed;
    return delay;
  }

  // ---- I/O --------------------------------------------------------------------------------

  void maybe_write() {
    // Only once ready: see on_transport_ready.
    if (state_ == state::ready && !conn_->write_in_flight && !pending_.empty()) {
      conn_->writing.swap(pending_);
      pending_.clear();
      start_write(conn_);
    }
  }

  void start_write(const std::shared_ptr<connection>& c) {
    c->write_in_flight = true;
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
    c->write_in_flight = false;
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
    if (auto fec = reader_.feed(c->read_buf.data(), n))
      return protocol_failure("reply exceeds the size limits");
    while (c == conn_) {
      std::error_code pec;
      std::optional<reply> r = reader_.next(pec);
      if (pec)
        return protocol_failure("malformed reply");
      if (!r)
        break;
      // The first reply of a connection without a handshake proves the server alive (with
      // one, become_ready() does that).
      if (++c->replies == 1 && state_ == state::ready)
        reset_backoff();
      on_reply(std::move(*r));
    }
    if (c == conn_)
      start_read(c);
  }

  void on_reply(reply&& r) {
    if (entries_.empty())
      return protocol_failure("reply without a request");
    request& front = entries_.front();
    const bool noscript = front.k == request::kind::eval && front.sent_as_evalsha && r.is_error() &&
                          starts_with(r.str, "NOSCRIPT");
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
          // The reply keeps the server's message; queued requests share it.
          const errc code = classify_error(r.str);
          return connect_failed(code, r.str, &r);
        }
        if (handshake_left_ == 0)
          become_ready(true);
        return;
      case request::kind::eval:
        if (noscript) {
          // The script cache was flushed (SCRIPT FLUSH, restart without our knowledge):
          // send it again as EVAL. Caveat: the resent request executes after requests
          // that were pipelined behind it; only a flush between two of our requests on one
          // connection can cause that reordering, and the first use of a script on each
          // connection is sent as EVAL so that it does not happen in the normal case.
          req.script->loaded_on = 0;
          resend(std::move(req));
          return;
        }
        break;
      case request::kind::command:
        break;
    }
    complete(req, std::move(r));
  }

  void resend(request req) {
    const std::size_t before = pending_.size();
    encode_eval(req);
    req.bytes = pending_.size() - before;
    req.resent = true;
    ++resent_count_;
    entries_.push_back(std::move(req));
    maybe_write();
  }

  static void complete(request& req, reply r) {
    std::error_code ec;
    if (r.is_error())
      ec = classify_error(r.str);
    req.handler(ec, std::move(r));
  }

  void connection_error(const std::shared_ptr<connection>& c, const asio::error_code& ec,
                        const char* what) {
    if (state_ == state::handshaking ||
        (c->replies == 0 && ec.category() == asio::error::get_ssl_category())) {
      // E.g. a TLS server rejecting our client certificate after the handshake, or the
      // server closing during AUTH: a failed connect, with backoff.
      const errc code = ec.category() == asio::error::get_ssl_category() ? errc::tls_failed
                                                                         : errc::connect_failed;
      return connect_failed(code,
                            std::string(what) + ": " + describe_tls(ec) + plain_to_tls_hint(*c));
    }
    const std::string hint = plain_to_tls_hint(*c);
    drop_connection();
    fail_all(errc::connection_lost,
             "connection to " + id_ + " lost: " + what + ": " + ec.message() + hint);
  }

  void protocol_failure(const char* why) {
    const std::string hint = conn_ ? plain_to_tls_hint(*conn_) : std::string();
    drop_connection();
    fail_all(errc::protocol_error, std::string("protocol error from ") + id_ + ": " + why + hint);
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

  clock_type::time_point earliest_deadline() {
    if (entries_.empty())
      return clock_type::time_point::max();
    // AUTH/SELECT have no request deadline (the connect timer covers them), so look past
    // them; resent requests may sit behind younger ones.
    auto earliest = clock_type::time_point::max();
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

  void on_request_timer() {
    request_timer_armed_ = false;
    if (state_ == state::closed)
      return;
    const auto now = clock_type::now();
    if (earliest_deadline() <= now) {
      const std::string msg = "request to " + id_ + " timed out after " +
                              ms_string(opts_.request_timeout) + stall_hint();
      if (state_ != state::ready) {
        drop_expired_unsent(now, msg);
      } else {
        // Replies after this one can no longer be matched: reset the connection. The
        // server may be stalled (paused, overloaded, a slow script), so reconnect only after
        // the backoff: an immediate reconnect would pile new requests on it.
        const std::string lost = "connection to " + id_ + " reset after a request timed out";
        back_off(lost);
        while (!entries_.empty()) {
          request r = entries_.pop_front();
          if (r.deadline <= now)
            r.handler(errc::timeout, error_reply(msg));
          else
            r.handler(errc::connection_lost, error_reply(lost));
        }
      }
    }
    if (!entries_.empty()) {
      auto next = earliest_deadline();
      if (next != clock_type::time_point::max())
        arm_request_timer(next);
    }
  }

  // Before the connection is ready nothing but the handshake is on the wire (see
  // on_transport_ready), so expired requests are dropped unsent: from the queue and from
  // pending_. They are a prefix of the queued requests, behind the AUTH/SELECT entries,
  // since deadlines are monotone. The connect attempt goes on under its own timeout for the
  // others. Not the hot path: a request expired before its connection was ready.
  void drop_expired_unsent(clock_type::time_point now, const std::string& msg) {
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
      r.handler(errc::timeout, error_reply(msg));
  }

  // An EVAL that loads `s` on this connection was dropped unsent. Requests behind it were
  // encoded as EVALSHA, counting on it; left so, the first would get NOSCRIPT and be resent
  // behind requests queued after it (e.g. an acquire behind its own release). So the first
  // queued request of `s` carries the EVAL instead; with none, `s` is simply not loaded.
  void unload_dropped_eval(script_entry& s) {
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

  // The likely mistake behind a connection that stalls before its first reply, for timeout
  // messages: TLS to a plain port (a plain Redis waits for a newline that the ClientHello
  // need not contain) or plain to a TLS port (a TLS server may wait for a whole record).
  // Phrased as a question: a paused server looks the same.
  std::string stall_hint() const {
    if (!conn_ || conn_->replies != 0 || ep_.kind == endpoint::transport::unix_socket)
      return {};
    if (conn_->tls) {
      if (state_ == state::connecting && conn_->tcp_connected && !conn_->handshake_done)
        return " (the server did not answer the TLS handshake; is this a plain (non-TLS) port?)";
      return {};
    }
    if (state_ == state::handshaking || state_ == state::ready)
      return " (no reply on this connection; is this a TLS port (use rediss://)?)";
    return {};
  }

  // The same for a plain connection that the server closed, reset or answered with
  // something other than RESP before any reply: what a Redis TLS port does with plain text.
  std::string plain_to_tls_hint(const connection& c) const {
    if (c.tls || c.replies != 0 || ep_.kind == endpoint::transport::unix_socket)
      return {};
    return " (no reply from the server; is this a TLS port (use rediss://)?)";
  }

  // ---- teardown ---------------------------------------------------------------------------

  // Closes the current connection (its pending operations complete as stale) and returns to
  // idle. Queued entries stay; callers fail them.
  void drop_connection() {
    if (conn_) {
      conn_->close();
      conn_.reset();
    }
    if (state_ != state::closed)
      state_ = state::idle;
    pending_.clear();
    handshake_left_ = 0;
    resent_count_ = 0;
    connect_timer_.cancel();
  }

  void fail_all(errc code, const std::string& msg) { fail_all(code, error_reply(msg)); }

  void fail_all(errc code, const reply& r) {
    // Handlers cannot re-enter (public methods post), so popping in place is safe.
    while (!entries_.empty()) {
      request req = entries_.pop_front();
      if (req.handler)
        req.handler(code, r);
    }
    resent_count_ = 0;
  }

  // ---- script cache (any thread) ------------------------------------------------------

  // Returns the cached entry, or null with `owned` filled when the cache is full.
  script_entry* script_for(const script& s, std::unique_ptr<script_entry>& owned) {
    std::lock_guard lock(scripts_mutex_);
    for (const auto& e : scripts_)
      if (e->sha1 == s.sha1())
        return e.get();
    if (scripts_.size() < max_cached_scripts) {
      scripts_.push_back(std::make_unique<script_entry>(s));
      return scripts_.back().get();
    }
    owned = std::make_unique<script_entry>(s);
    return nullptr;
  }

  // Immutable after construction.
  strand_type strand_;
  const endpoint ep_;
  const connection_options opts_;
  const std::string id_;

  std::mutex scripts_mutex_;
  std::vector<std::unique_ptr<script_entry>> scripts_;

  // Requests not yet taken by the strand (see enqueue()).
  struct inbound {
    inbound(request&& req, std::vector<std::string>&& args)
        : r(std::move(req)), argv(std::move(args)) {}
    request r;
    std::vector<std::string> argv;  // for commands; evals are encoded already
  };
  std::mutex inbox_mutex_;
  std::vector<inbound> inbox_;     // guarded by inbox_mutex_
  bool drain_scheduled_ = false;   // guarded by inbox_mutex_
  std::vector<inbound> draining_;  // strand only; swapped with inbox_ to keep both capacities

  // Strand-only state.
  state state_ = state::idle;
  std::shared_ptr<connection> conn_;
  std::uint64_t serial_ = 0;  // serial of conn_ (0: none yet)
  std::uint64_t next_serial_ = 1;
  request_ring entries_;
  std::size_t handshake_left_ = 0;
  std::size_t resent_count_ = 0;
  std::string pending_;
  detail::reply_reader reader_;
  timer_type request_timer_;
  bool request_timer_armed_ = false;
  timer_type connect_timer_;
  std::optional<asio::ssl::context> tls_ctx_;
  std::string tls_ctx_error_;
  clock_type::time_point next_attempt_{};
  std::chrono::milliseconds backoff_{0};
  std::string last_failure_;                  // why the node is backing off (see back_off())
  errc backoff_code_ = errc::connect_failed;  // what requests in the backoff window fail with
  std::minstd_rand rng_;
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

void redis_node::async_exec(std::vector<std::string> argv, reply_handler handler) {
  request r;
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
  request r;
  r.handler = std::move(handler);
  r.k = request::kind::eval;
  r.script = impl_->script_for(s, r.owned_script);
  if (!r.script)
    r.script = r.owned_script.get();
  char numkeys[24];
  const auto nk_end = std::to_chars(numkeys, numkeys + sizeof numkeys, keys.size()).ptr;
  const std::size_t n = 1 + keys.size() + args.size();
  auto encode = [&](std::span<const std::string_view> v) { detail::append_command(r.tail, v); };
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
  impl_->enqueue(std::move(r), std::vector<std::string>{});
}

}  // namespace redlock

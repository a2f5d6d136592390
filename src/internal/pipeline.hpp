// Private: the request pipeline of the built-in Redis node, with no I/O.
//
// Sans-I/O in the style of Boost.Redis's reader/writer machines: the transport (redis_node.cpp)
// tells it about connections (begun, transport ready, closed), hands it the bytes it read and
// the time, and asks it what to write and when the next deadline is. The pipeline owns
// everything between a caller's request and its completion:
//
// - Requests are encoded when submitted into one buffer of unsent bytes and recorded in a ring
//   (FIFO in wire order). One write is in flight at a time; requests submitted meanwhile
//   coalesce, and take_write() hands them all to the next write.
// - Replies are matched to requests in order; each completion handler runs from inside
//   on_read() (the pipeline never stores a reply).
// - Handshake gating: on a new connection only AUTH/SELECT are written until every handshake
//   reply has succeeded; a failed handshake fails the queued requests unsent with the server's
//   code and message.
// - EVALSHA -> NOSCRIPT -> EVAL: a script is sent as EVAL the first time on each connection,
//   EVALSHA after; a NOSCRIPT answer sends the request again as EVAL.
// - Deadlines: every request has the same timeout, so deadlines are monotone in submission
//   order (resent requests excepted) and next_deadline() is the oldest entry's. At a deadline,
//   an unsent request is dropped (errc::timeout); a sent one means replies can no longer be
//   matched, so every request fails, errc::timeout for the expired ones, errc::connection_lost
//   for the others, and the transport resets the connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "internal/resp.hpp"
#include "redlock/error.hpp"
#include "redlock/node.hpp"
#include "redlock/reply.hpp"

namespace redlock::detail {

/// Maps an error reply's message to the code the layers above branch on (WRONGPASS ->
/// auth_failed, NOAUTH -> auth_required, NOPERM -> no_permission, AUTH without a configured
/// password -> auth_not_configured, anything else -> server_error).
errc classify_error(std::string_view msg) noexcept;

/// A script as a node sends it. `sha1`, `evalsha_prefix` and `eval_prefix` are immutable
/// after creation (so an entry may be shared by threads that encode requests); `loaded_on` is
/// touched only by the pipeline.
struct script_entry {
  explicit script_entry(const script& s);

  std::string sha1;
  std::string evalsha_prefix;   ///< "$7\r\nEVALSHA\r\n$40\r\n<sha1>\r\n"
  std::string eval_prefix;      ///< "$4\r\nEVAL\r\n$<n>\r\n<text>\r\n"
  std::uint64_t loaded_on = 0;  ///< serial of the connection on which EVAL was last sent
};

/// One request, from submission to completion.
struct request {
  enum class kind : std::uint8_t { command, eval, auth, select };
  using time_point = std::chrono::steady_clock::time_point;

  /// An EVAL/EVALSHA of `s` (which must outlive the request, or be `owned`), encoded here:
  /// the keys and arguments are copied into one buffer, kept for a NOSCRIPT resend.
  static request eval(script_entry* s, std::unique_ptr<script_entry> owned,
                      std::span<const std::string> keys, std::span<const std::string> args,
                      reply_handler handler);

  reply_handler handler;  ///< empty for AUTH/SELECT, which the pipeline itself issues
  time_point deadline = time_point::max();
  std::size_t bytes = 0;  ///< encoded size, used while the request is still unsent
  kind k = kind::command;
  bool sent_as_evalsha = false;
  bool resent = false;  ///< re-queued after NOSCRIPT: its deadline is older than its position
  script_entry* script = nullptr;
  std::unique_ptr<script_entry> owned_script;  ///< only when the node's cache is full
  /// For eval: "numkeys keys... args..." encoded as a multi-bulk; tail_skip is the length of
  /// its "*<n>\r\n" line, which is replaced per send.
  std::string tail;
  std::size_t tail_skip = 0;
  std::size_t tail_count = 0;
};

/// FIFO of requests with push_front (AUTH/SELECT go before queued requests). A power-of-two
/// ring in one vector: no allocation per request once it has grown to the working size.
class request_ring {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  request& operator[](std::size_t i) noexcept { return buf_[(head_ + i) & (buf_.size() - 1)]; }
  const request& operator[](std::size_t i) const noexcept {
    return buf_[(head_ + i) & (buf_.size() - 1)];
  }
  request& front() noexcept { return buf_[head_]; }

  // Defined here so that they inline: they are on the path of every request.
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
  /// Drops the front request, whose handler the caller has moved out. The slot keeps its
  /// buffers for reuse but nothing that belongs to the caller.
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
  void grow();
  std::vector<request> buf_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

/// What a new connection sends before anything else: AUTH (when `password` is set, with
/// `username` when that is set too), then SELECT (when `db` is not 0).
struct handshake {
  std::string username;
  std::string password;
  int db = 0;
};

/// Appends the handshake's commands to `out`, AUTH before SELECT, and returns how many it
/// appended (0..2): each is answered by one reply, in that order. Shared by the pipeline and
/// the notifiers' pub/sub connections (internal/subscriber.hpp), which open the same way.
std::size_t append_handshake(std::string& out, const handshake& h);

struct pipeline_options {
  std::chrono::milliseconds request_timeout{500};
  reader_limits limits;
};

/// The pipeline of one node: see the top of this file. Distinct objects: safe. Shared
/// objects: unsafe (the node runs it on its strand). Completion handlers must not call back
/// into the pipeline (the node's public methods post).
class pipeline {
 public:
  using clock_type = std::chrono::steady_clock;
  using time_point = clock_type::time_point;

  /// The connection as the pipeline sees it.
  enum class phase : std::uint8_t {
    none,         ///< no connection; submitting a request needs begin_connection() first
    connecting,   ///< the transport is being set up: nothing can be written yet
    handshaking,  ///< AUTH/SELECT written or writable; requests wait behind them
    ready,        ///< requests are written as they come
  };

  /// What on_read() found, beyond the completions it ran.
  struct read_result {
    enum class status : std::uint8_t {
      ok,                ///< keep reading
      handshake_failed,  ///< the server rejected AUTH/SELECT; queued requests were failed
      protocol_error,    ///< the connection is unusable; `why` says how
    };
    status st = status::ok;
    /// The handshake completed in this read: the connection became ready.
    bool ready = false;
    /// The server proved alive on this connection in this read (the handshake succeeded, or
    /// the first reply on a connection without a handshake): the node's backoff starts over.
    bool answered = false;
    errc code = errc::server_error;  ///< handshake_failed: the rejection's code
    std::string why;                 ///< handshake_failed: the server's message
  };

  /// At a deadline (see on_deadline()).
  enum class expiry : std::uint8_t {
    none,              ///< nothing had expired
    dropped_unsent,    ///< expired requests that were still unsent were failed and dropped
    reset_connection,  ///< every request was failed; the transport must close the connection
  };

  explicit pipeline(pipeline_options opts);

  // ---- connection events -------------------------------------------------------------------

  /// A new connection is being set up (phase none -> connecting). Requests submitted from
  /// now on are encoded for it.
  void begin_connection();
  /// The transport is connected (TLS handshake done): queues AUTH/SELECT ahead of every
  /// request. Returns true when there is a handshake to wait for (phase handshaking); false
  /// when the connection is ready at once.
  bool transport_ready(const handshake& h);
  /// The connection is gone (or being dropped): unsent bytes are discarded and the phase is
  /// none. Queued requests stay; the transport fails them with fail_all().
  void connection_closed() noexcept;

  // ---- requests ----------------------------------------------------------------------------

  /// Queues `r` with the deadline now + request_timeout; `argv` for commands (non-empty),
  /// null for evals. Precondition: phase() != none.
  void submit(request&& r, const std::vector<std::string>* argv, time_point now);
  /// Fails every queued request with `code` and `r` (AUTH/SELECT entries are dropped).
  void fail_all(errc code, const reply& r);

  // ---- writing -----------------------------------------------------------------------------

  /// Moves the bytes to write next into `out` (whose old content is discarded; its capacity
  /// is kept for a later write) and returns true; false when a write is in flight or nothing
  /// may be written. Before the connection is ready only the handshake is written.
  bool take_write(std::string& out);
  /// The write handed out by take_write() completed.
  void write_done() noexcept { write_in_flight_ = false; }

  // ---- reading -----------------------------------------------------------------------------

  /// Bytes read from the connection: completes every request whose reply is complete, in
  /// order. Stops at a failure (see read_result); after protocol_error the transport closes
  /// the connection and fails the requests.
  read_result on_read(const char* data, std::size_t size);

  // ---- deadlines ---------------------------------------------------------------------------

  /// The earliest request deadline, or time_point::max() when no request has one.
  time_point next_deadline() const noexcept;
  /// True when some request's deadline is at or before `now`.
  bool expired(time_point now) const noexcept { return next_deadline() <= now; }
  /// Fails what has expired at `now` with errc::timeout and `timed_out`. Before the
  /// connection is ready nothing but the handshake was written, so expired requests are
  /// dropped unsent. Once ready, the replies behind an expired request can no longer be
  /// matched: every other request fails with errc::connection_lost and `lost`, and the
  /// connection is closed (phase none).
  expiry on_deadline(time_point now, const reply& timed_out, const reply& lost);

  // ---- state -------------------------------------------------------------------------------

  phase current_phase() const noexcept { return phase_; }
  /// Replies received on the current connection.
  std::uint64_t replies() const noexcept { return replies_; }
  bool empty() const noexcept { return entries_.empty(); }
  std::size_t size() const noexcept { return entries_.size(); }

 private:
  void on_reply(reply&& r, read_result& out);
  void encode_eval(request& r);
  static void append_eval(std::string& out, const request& r, bool use_sha);
  void resend(request req);
  void drop_expired_unsent(time_point now, const reply& msg);
  void unload_dropped_eval(script_entry& s);

  const pipeline_options opts_;
  phase phase_ = phase::none;
  std::uint64_t serial_ = 0;  // serial of the current connection (0: none yet)
  std::uint64_t next_serial_ = 1;
  std::uint64_t replies_ = 0;
  request_ring entries_;
  std::size_t handshake_left_ = 0;
  std::size_t resent_count_ = 0;
  std::string handshake_out_;  // AUTH/SELECT, written before pending_
  std::string pending_;        // encoded, not yet handed to a write
  bool write_in_flight_ = false;
  reply_reader reader_;
};

}  // namespace redlock::detail

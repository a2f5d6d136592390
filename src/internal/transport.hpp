// Private: the transport of the built-in Redis node's connections (TCP, Unix socket or TLS),
// shared by the request connection (redis_node.cpp) and the pub/sub connections of the
// notifiers (subscriber.cpp), so that both open a connection the same way: resolve (unless
// the host is an IP literal), connect, TCP_NODELAY, TLS handshake with SNI and verification.
// What is written on the connection (AUTH/SELECT, requests, SUBSCRIBE) is the caller's.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include "redlock/endpoint.hpp"
#include "redlock/error.hpp"

namespace redlock::detail {

using strand_type = asio::strand<asio::any_io_executor>;
// Concrete strand executors on the I/O objects: completion handlers are dispatched through
// the strand without the type erasure of any_io_executor.
using tcp_socket = asio::basic_stream_socket<asio::ip::tcp, strand_type>;
using unix_socket = asio::basic_stream_socket<asio::local::stream_protocol, strand_type>;
using tls_stream = asio::ssl::stream<tcp_socket>;
using steady_timer_type =
    asio::basic_waitable_timer<std::chrono::steady_clock,
                               asio::wait_traits<std::chrono::steady_clock>, strand_type>;
using resolver_type = asio::ip::basic_resolver<asio::ip::tcp, strand_type>;

inline constexpr std::size_t read_buffer_size = 64 * 1024;

/// One transport connection. Owned by shared_ptr: pending operations keep it alive (an
/// ssl::stream must outlive its operations, and so must the buffer of the write in flight),
/// and a handler whose connection is no longer its owner's current one knows it is stale.
struct connection {
  connection() : read_buf(read_buffer_size) {}

  template <class F>
  void with_stream(F&& f) {
    if (tls)
      f(*tls);
    else if (tcp)
      f(*tcp);
    else
      f(*local);
  }

  /// Cancels everything; an open in progress stops without calling its handler.
  void close() noexcept {
    closed = true;
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

  std::optional<resolver_type> resolver;
  std::optional<tcp_socket> tcp;
  std::optional<tls_stream> tls;
  std::optional<unix_socket> local;
  std::string writing;  // the buffer of the write in flight
  std::vector<char> read_buf;
  bool tcp_connected = false;   // for hints: a stall after this is the TLS handshake's
  bool handshake_done = false;  // TLS handshake finished (errors after it are not tls_failed)
  bool closed = false;          // close() was called: an open in progress stops silently
};

/// How async_open ended: `code` empty on success; otherwise connect_failed or tls_failed and
/// `why`, a phrase such as "connect: Connection refused" (never a password).
using open_handler = std::function<void(std::optional<errc> code, std::string why)>;

/// Opens `c` (fresh, not yet opened) to `ep` on `strand`. `tls` must be non-null exactly when
/// ep.tls.enabled (the caller owns the context, built with make_tls_context, and keeps it
/// alive). `done` runs once on the strand, unless c->close() was called first (then never):
/// the caller's connect timeout closes the connection and fails the attempt itself.
void async_open(const std::shared_ptr<connection>& c, strand_type strand, const endpoint& ep,
                bool tcp_nodelay, asio::ssl::context* tls, open_handler done);

}  // namespace redlock::detail

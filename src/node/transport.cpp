#include "internal/transport.hpp"

#include <utility>

#include <asio/connect.hpp>

#include "internal/tls_context.hpp"

namespace redlock::detail {

namespace {

// The steps after the TCP connect: TCP_NODELAY, then the TLS handshake when there is one.
void on_tcp_connected(const std::shared_ptr<connection>& c, const std::string& peer_name,
                      bool tcp_nodelay, asio::error_code ec, const open_handler& done) {
  if (c->closed)
    return;
  if (ec)
    return done(errc::connect_failed, "connect: " + ec.message());
  c->tcp_connected = true;
  tcp_socket& sock = c->tls ? c->tls->next_layer() : *c->tcp;
  if (tcp_nodelay)
    sock.set_option(asio::ip::tcp::no_delay(true), ec);
  if (!c->tls)
    return done(std::nullopt, {});
  // Verification is set up on the context (see make_tls_context); SNI is per connection.
  if (!set_tls_sni(c->tls->native_handle(), peer_name))
    return done(errc::tls_failed, "cannot set TLS SNI name");
  c->tls->async_handshake(asio::ssl::stream_base::client, [c, done](asio::error_code e) {
    if (c->closed)
      return;
    if (e)
      return done(errc::tls_failed, "TLS handshake: " + describe_tls_error(e) + not_tls_hint(e));
    c->handshake_done = true;
    done(std::nullopt, {});
  });
}

}  // namespace

void async_open(const std::shared_ptr<connection>& c, strand_type strand, const endpoint& ep,
                bool tcp_nodelay, asio::ssl::context* tls, open_handler done) {
  if (ep.kind == endpoint::transport::unix_socket) {
    c->local.emplace(strand);
    c->local->async_connect(asio::local::stream_protocol::endpoint(ep.path),
                            [c, done = std::move(done)](asio::error_code ec) {
                              if (c->closed)
                                return;
                              if (ec)
                                return done(errc::connect_failed, "connect: " + ec.message());
                              done(std::nullopt, {});
                            });
    return;
  }
  if (ep.tls.enabled) {
    if (!tls) {
      asio::post(strand, [c, done = std::move(done)] {
        if (!c->closed)
          done(errc::tls_failed, "no TLS context");
      });
      return;
    }
    c->tls.emplace(strand, *tls);
  } else {
    c->tcp.emplace(strand);
  }
  tcp_socket& sock = c->tls ? c->tls->next_layer() : *c->tcp;
  std::string peer = tls_peer_name(ep);
  asio::error_code aec;
  const auto addr = asio::ip::make_address(ep.host, aec);
  if (!aec) {
    // An IP literal: no resolver round trip.
    sock.async_connect(
        asio::ip::tcp::endpoint(addr, ep.port),
        [c, peer = std::move(peer), tcp_nodelay, done = std::move(done)](asio::error_code ec) {
          on_tcp_connected(c, peer, tcp_nodelay, ec, done);
        });
    return;
  }
  c->resolver.emplace(strand);
  c->resolver->async_resolve(
      ep.host, std::to_string(ep.port),
      [c, host = ep.host, peer = std::move(peer), tcp_nodelay, done = std::move(done)](
          asio::error_code ec, asio::ip::tcp::resolver::results_type results) {
        if (c->closed)
          return;
        if (ec)
          return done(errc::connect_failed, "resolve " + host + ": " + ec.message());
        tcp_socket& s = c->tls ? c->tls->next_layer() : *c->tcp;
        asio::async_connect(
            s, results,
            [c, peer, tcp_nodelay, done](asio::error_code e, const asio::ip::tcp::endpoint&) {
              on_tcp_connected(c, peer, tcp_nodelay, e, done);
            });
      });
}

}  // namespace redlock::detail

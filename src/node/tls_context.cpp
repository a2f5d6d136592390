#include "internal/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <asio/error.hpp>
#include <asio/ip/address.hpp>
#include <asio/ssl/error.hpp>
#include <asio/ssl/host_name_verification.hpp>
#include <utility>

namespace redlock::detail {

namespace {

bool is_ip_literal(const std::string& name) {
  asio::error_code ec;
  (void)asio::ip::make_address(name, ec);
  return !ec;
}

}  // namespace

const std::string& tls_peer_name(const endpoint& ep) noexcept {
  return ep.tls.server_name.empty() ? ep.host : ep.tls.server_name;
}

std::optional<asio::ssl::context> make_tls_context(const tls_options& t,
                                                   const std::string& peer_name, std::string& why) {
  auto fail = [&](std::string what, const asio::error_code& ec) {
    why = std::move(what) + ": " + ec.message();
    return std::nullopt;
  };
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  asio::error_code ec;
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                      asio::ssl::context::no_tlsv1_1,
                  ec);
  if (!ec && !t.insecure_skip_verify) {
    if (!t.ca_file.empty()) {
      ctx.load_verify_file(t.ca_file, ec);
      if (ec)
        return fail("cannot load CA file " + t.ca_file, ec);
    }
    if (!t.ca_dir.empty()) {
      ctx.add_verify_path(t.ca_dir, ec);
      if (ec)
        return fail("cannot use CA directory " + t.ca_dir, ec);
    }
    if (t.ca_file.empty() && t.ca_dir.empty()) {
      ctx.set_default_verify_paths(ec);
      if (ec)
        return fail("cannot load the system CA paths", ec);
    }
  }
  if (!ec && !t.cert_file.empty()) {
    ctx.use_certificate_chain_file(t.cert_file, ec);
    if (ec)
      return fail("cannot load client certificate " + t.cert_file, ec);
  }
  if (!ec && !t.key_file.empty()) {
    // Always a callback: without one OpenSSL asks for an encrypted key's passphrase on the
    // terminal, which would block a node's connect. An empty answer fails the load instead.
    ctx.set_password_callback(
        [passphrase = t.key_passphrase](std::size_t, asio::ssl::context::password_purpose) {
          return passphrase;
        },
        ec);
    if (!ec)
      ctx.use_private_key_file(t.key_file, asio::ssl::context::pem, ec);
    if (ec)
      return fail("cannot load client key " + t.key_file, ec);
  }
  // Verification lives on the context (SSL_new copies the mode, and asio's context callback
  // finds the context of each stream): the peer name is fixed per node, so every connection
  // of the node verifies the same way without per-stream setup.
  if (!ec) {
    if (t.insecure_skip_verify) {
      ctx.set_verify_mode(asio::ssl::verify_none, ec);
    } else {
      ctx.set_verify_mode(asio::ssl::verify_peer, ec);
      if (!ec)
        ctx.set_verify_callback(asio::ssl::host_name_verification(peer_name), ec);
    }
    if (ec)
      return fail("TLS setup", ec);
  }
  if (ec)
    return fail("TLS context", ec);
  return std::optional<asio::ssl::context>(std::move(ctx));
}

bool set_tls_sni(SSL* ssl, const std::string& peer_name) {
  if (is_ip_literal(peer_name))
    return true;  // verified against the certificate's IP SANs instead
  return SSL_set_tlsext_host_name(ssl, peer_name.c_str()) == 1;
}

std::string describe_tls_error(const asio::error_code& e) {
  std::string msg = e.message();
  if (e.category() == asio::error::get_ssl_category()) {
    // e.g. "certificate verify failed (SSL routines)": add why the chain was rejected when
    // OpenSSL recorded it.
    if (ERR_GET_REASON(static_cast<unsigned long>(e.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED)
      msg += " (check the CA file/dir and the server name)";
  }
  return msg;
}

std::string not_tls_hint(const asio::error_code& e) {
  // A plain server answers the ClientHello with an error reply, or closes.
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

}  // namespace redlock::detail

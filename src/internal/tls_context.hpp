// Private: the TLS client setup of the built-in Redis node (asio::ssl over OpenSSL): the
// context built from tls_options, certificate and host-name verification, SNI, and the
// wording of TLS failures.
#pragma once

#include <optional>
#include <string>

#include <asio/error_code.hpp>
#include <asio/ssl/context.hpp>

#include "redlock/endpoint.hpp"

namespace redlock::detail {

/// The name a TLS connection to `ep` sends as SNI and verifies the certificate against:
/// tls.server_name when set, else the host.
const std::string& tls_peer_name(const endpoint& ep) noexcept;

/// A client context for `t`: TLS 1.2 or later; the CA file and/or directory (the system
/// default paths when neither is given); the client certificate and key when given; and,
/// unless insecure_skip_verify, peer verification including `peer_name` (a host name, or an
/// IP literal checked against the certificate's IP SANs). Every stream made from it
/// verifies the same way. On failure returns std::nullopt and sets `why` (names the file).
std::optional<asio::ssl::context> make_tls_context(const tls_options& t,
                                                   const std::string& peer_name, std::string& why);

/// Sets SNI to `peer_name` on one connection's SSL object, unless it is an IP literal
/// (RFC 6066 allows host names only). False when OpenSSL refuses the name.
bool set_tls_sni(SSL* ssl, const std::string& peer_name);

/// e.message(), plus a pointer to the CA and server name settings for a failed verification.
std::string describe_tls_error(const asio::error_code& e);

/// " (the server did not answer the TLS handshake; ...)" when a failed handshake looks like
/// a plain (non-TLS) server on the other end, else empty.
std::string not_tls_hint(const asio::error_code& e);

}  // namespace redlock::detail

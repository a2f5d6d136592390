// internal/tls_context.hpp: building the client context from tls_options, the peer name,
// SNI, and the wording of TLS failures. No server: the handshake itself is covered by the
// TLS tests in tests/integration/redis_node_test.cpp.
#include <gtest/gtest.h>

#include <openssl/ssl.h>

#include <asio/error.hpp>
#include <asio/ssl/error.hpp>
#include <memory>
#include <string>

#include "internal/tls_context.hpp"
#include "support/certificates.hpp"

namespace {

using redlock::endpoint;
using redlock::tls_options;
using redlock::detail::make_tls_context;
using redlock::detail::not_tls_hint;
using redlock::detail::set_tls_sni;
using redlock::detail::tls_peer_name;

TEST(TlsContext, ThePeerNameIsTheServerNameElseTheHost) {
  endpoint ep;
  ep.host = "10.0.0.7";
  EXPECT_EQ(tls_peer_name(ep), "10.0.0.7");
  ep.tls.server_name = "redis.internal";
  EXPECT_EQ(tls_peer_name(ep), "redis.internal");
}

TEST(TlsContext, VerifiesThePeerUnlessTold) {
  std::string why;
  tls_options t;
  t.enabled = true;
  auto ctx = make_tls_context(t, "redis.internal", why);  // the system CA paths
  ASSERT_TRUE(ctx) << why;
  EXPECT_EQ(SSL_CTX_get_verify_mode(ctx->native_handle()), SSL_VERIFY_PEER);

  t.insecure_skip_verify = true;
  auto insecure = make_tls_context(t, "redis.internal", why);
  ASSERT_TRUE(insecure) << why;
  EXPECT_EQ(SSL_CTX_get_verify_mode(insecure->native_handle()), SSL_VERIFY_NONE);
}

TEST(TlsContext, AMissingFileIsNamedInTheError) {
  struct file_case {
    void (*set)(tls_options&);
    const char* expected;
  };
  const file_case cases[] = {
      {[](tls_options& t) { t.ca_file = "/nonexistent/ca.pem"; },
       "cannot load CA file /nonexistent/ca.pem: "},
      {[](tls_options& t) { t.cert_file = "/nonexistent/client.pem"; },
       "cannot load client certificate /nonexistent/client.pem: "},
      {[](tls_options& t) {
         t.insecure_skip_verify = true;
         t.key_file = "/nonexistent/client.key";
       },
       "cannot load client key /nonexistent/client.key: "},
  };
  for (const auto& c : cases) {
    tls_options t;
    t.enabled = true;
    c.set(t);
    std::string why;
    EXPECT_FALSE(make_tls_context(t, "h", why));
    EXPECT_EQ(why.rfind(c.expected, 0), 0u) << why;
  }
}

TEST(TlsContext, AnEncryptedKeyLoadsWithItsPassphraseOnlyAndNeverPrompts) {
  const auto& c = redlock::test::certs();
  tls_options t;
  t.enabled = true;
  t.insecure_skip_verify = true;
  t.cert_file = c.client_cert;
  t.key_file = c.encrypted_client_key;
  t.key_passphrase = c.client_key_passphrase;
  std::string why;
  auto ctx = make_tls_context(t, "h", why);
  ASSERT_TRUE(ctx) << why;
  EXPECT_EQ(SSL_CTX_check_private_key(ctx->native_handle()), 1) << "the key is not the cert's";
  // Wrong or no passphrase: the load fails at once (no prompt on a terminal), naming the file
  // and not the passphrase.
  for (const char* wrong : {"not-it", ""}) {
    t.key_passphrase = wrong;
    EXPECT_FALSE(make_tls_context(t, "h", why)) << "passphrase '" << wrong << "'";
    EXPECT_EQ(why.rfind("cannot load client key " + c.encrypted_client_key, 0), 0u) << why;
    EXPECT_EQ(why.find(c.client_key_passphrase), std::string::npos) << why;
  }
  // An unencrypted key ignores a passphrase.
  t.key_file = c.client_key;
  t.key_passphrase = "unused";
  EXPECT_TRUE(make_tls_context(t, "h", why)) << why;
}

TEST(TlsContext, SniIsSetForHostNamesOnly) {
  std::string why;
  tls_options t;
  t.insecure_skip_verify = true;
  auto ctx = make_tls_context(t, "h", why);
  ASSERT_TRUE(ctx) << why;
  const std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx->native_handle()), SSL_free);
  ASSERT_TRUE(ssl);
  ASSERT_TRUE(set_tls_sni(ssl.get(), "192.168.1.5"));
  EXPECT_EQ(SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name), nullptr);
  ASSERT_TRUE(set_tls_sni(ssl.get(), "::1"));
  EXPECT_EQ(SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name), nullptr);
  ASSERT_TRUE(set_tls_sni(ssl.get(), "redis.internal"));
  EXPECT_STREQ(SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name), "redis.internal");
}

TEST(TlsContext, AHandshakeCutShortSuggestsAPlainPort) {
  EXPECT_NE(not_tls_hint(asio::error::eof).find("plain (non-TLS) port"), std::string::npos);
  EXPECT_NE(not_tls_hint(asio::ssl::error::stream_truncated).find("plain"), std::string::npos);
  EXPECT_EQ(not_tls_hint(asio::error::timed_out), "");
}

}  // namespace

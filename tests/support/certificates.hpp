// TLS material for the tests, generated on the fly with the openssl CLI.
#pragma once

#include <string>

namespace redlock::test {

/// Paths of a CA, a server certificate/key (CN and SAN "localhost", IP 127.0.0.1) and a
/// client certificate/key, generated once per test process into a temp dir that is removed
/// at exit.
struct test_certs {
  std::string dir, ca_cert, server_cert, server_key, client_cert, client_key;
  std::string other_ca_cert;  ///< a CA that signed nothing here (verification must fail)
  std::string ca_dir;         ///< a hashed CA directory (`openssl rehash`) holding ca_cert
  /// client_key encrypted (AES-256, PKCS#8) with client_key_passphrase.
  std::string encrypted_client_key, client_key_passphrase;
};
/// Throws std::runtime_error (with openssl's output) when generating fails.
const test_certs& certs();

}  // namespace redlock::test

// Where a Redis server is and how to talk to it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace redlock {

/// TLS settings. Verification is on unless `insecure_skip_verify` is set.
struct tls_options {
  bool enabled = false;   ///< set by the rediss:// scheme
  std::string ca_file;    ///< PEM bundle of trusted CAs; empty: system default paths
  std::string ca_dir;     ///< directory of hashed CA certificates (c_rehash layout)
  std::string cert_file;  ///< client certificate (PEM), for servers with tls-auth-clients
  std::string key_file;   ///< client private key (PEM)
  /// Passphrase of an encrypted key_file; empty: the key must be unencrypted. Given to
  /// OpenSSL only (never prompted for on a terminal, never printed). Not settable from a
  /// URL, which would put it on command lines.
  std::string key_passphrase;
  std::string server_name;            ///< SNI and name to verify; empty: the endpoint's host
  bool insecure_skip_verify = false;  ///< disables certificate and name checks. Testing only.
};

/// One Redis server. Build it from a URL with parse_endpoint() or fill it in directly.
struct endpoint {
  enum class transport { tcp, unix_socket };

  transport kind = transport::tcp;
  std::string host = "127.0.0.1";  ///< name, IPv4 or IPv6 literal (without brackets)
  std::uint16_t port = 6379;
  std::string path;      ///< Unix socket path when kind == unix_socket
  std::string username;  ///< ACL user; empty: AUTH with password only
  std::string password;  ///< empty: no AUTH
  int db = 0;            ///< SELECTed after connecting when not 0
  tls_options tls;

  /// The endpoint as a URL with any password replaced by "***", e.g.
  /// "rediss://app:***@[::1]:6380/2". Safe to log.
  std::string to_string() const;
};

/// Parses `redis://[user[:password]@]host[:port][/db]`, `rediss://...` (TLS),
/// `unix:///path/to.sock[?db=N]` (also `?password=...&user=...`) and IPv6 literal hosts in
/// brackets. Userinfo may be percent-encoded. On failure sets ec to errc::invalid_url and
/// `why` to a message that says what is wrong and never contains the password.
///
/// Query parameters (values percent-decoded; each at most once):
///  - all schemes: `db=N`, `user=NAME`, `password=SECRET`;
///  - rediss:// only, filling tls_options: `ca=FILE`, `ca_dir=DIR`, `cert=FILE`, `key=FILE`,
///    `sni=NAME`, `insecure=true|false` (insecure_skip_verify).
/// Example: `rediss://app:pw@redis.local:6380/2?ca=/etc/redis/ca.pem&sni=redis.local`.
/// Percent-encode '@', '/', '?', '#', '&' and '%' inside user names and passwords; an '@'
/// after the host is rejected so that a mis-encoded password is never quoted in a message.
endpoint parse_endpoint(std::string_view url, std::error_code& ec, std::string& why);
/// Throwing form: lock_error(errc::invalid_url) whose what() explains the problem.
endpoint parse_endpoint(std::string_view url);

}  // namespace redlock

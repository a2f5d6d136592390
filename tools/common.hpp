// What every redlock subcommand shares: the servers, the manager settings, TLS files, the
// errors that end the program with a given exit code, and printing helpers.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "exit_codes.hpp"
#include "redlock/endpoint.hpp"
#include "redlock/lock_manager.hpp"
#include "redlock/options.hpp"

namespace redlock::cli {

/// Ends the program with `code` after printing "redlock: <what>" to stderr.
class exit_error : public std::runtime_error {
 public:
  exit_error(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

inline exit_error usage_error(const std::string& what) {
  return {exit_usage, what};
}

/// The global options as given (durations still as text, so that a bad value can be
/// reported by option name).
struct global_options {
  std::vector<std::string> servers;  ///< --server, repeatable
  std::optional<double> drift;
  std::string retry_delay, retry_jitter, request_timeout, connect_timeout;
  bool tls = false;
  std::string tls_ca, tls_ca_dir, tls_cert, tls_key, tls_server_name;
  bool tls_insecure = false;
  bool verbose = false;
  bool no_wakeup = false;               ///< --no-wakeup
  bool fair = false;                    ///< --fair
  bool json = false;                    ///< --json
  std::string password_file;            ///< --password-file
  std::string tls_key_passphrase_file;  ///< --tls-key-passphrase-file
};

/// The resolved configuration.
struct config {
  /// Server URLs as given (plain servers, Sentinel or Cluster deployments), validated.
  std::vector<std::string> urls;
  /// TLS flags given on the command line, applied to every TLS endpoint of every node
  /// (key_passphrase: from --tls-key-passphrase-file or REDLOCK_TLS_KEY_PASSPHRASE).
  tls_options tls_flags;
  bool force_tls = false;
  redlock::manager_options settings;
  bool verbose = false;
  /// From --password-file or REDLOCK_PASSWORD (empty: none): AUTH for every server whose URL
  /// has no password of its own (plain servers, Cluster members, a Sentinel deployment's
  /// master; not the sentinels, which take sentinel_password= in the URL). Never printed.
  std::string password;
};

/// Resolves servers (--server, else REDLOCK_SERVERS, else the default), parses durations,
/// applies TLS files, reads the password and the TLS key passphrase (resolve_secret). Throws
/// exit_error(exit_usage) saying what is wrong; never prints a password.
config resolve(const global_options& g);

/// A secret given off the command line: the first line of `file` (the option `option`;
/// trailing "\n" or "\r\n" removed) when given, else the environment variable `variable`,
/// else empty. Used for the default password (--password-file, REDLOCK_PASSWORD) and the TLS
/// key passphrase (--tls-key-passphrase-file, REDLOCK_TLS_KEY_PASSPHRASE). A file others may
/// read gets a warning on stderr, not a refusal: secrets mounted by container runtimes are
/// often 0644, and refusing would push people back to URLs on the command line. `variable` is
/// always removed from the environment and its bytes overwritten, so that neither run's
/// command nor /proc/<pid>/environ of redlock shows it. Throws a usage error for a missing,
/// unreadable or empty file, naming the file (never its content; `what_it_is` names what is
/// missing).
std::string resolve_secret(const std::string& option, const std::string& file, const char* variable,
                           const std::string& what_it_is);

/// Whether waiting acquires are woken by announced releases, and releases announce
/// themselves (manager_options::wakeup): off with `no_wakeup_flag` (--no-wakeup), else
/// REDLOCK_WAKEUP ("0" off; "1", empty or unset on). Throws a usage error naming the variable
/// for any other value.
bool resolve_wakeup(bool no_wakeup_flag);

/// Whether locks are taken in fair mode (manager_options::fair) and released as fair locks:
/// on with `flag` (--fair), else REDLOCK_FAIR ("1" on; "0", empty or unset off). Throws a
/// usage error naming the variable for any other value.
bool resolve_fair(bool flag);

/// The name of what turned fair mode on, for messages: "--fair" or "REDLOCK_FAIR=1".
std::string fair_source(bool flag);

/// Whether `run` and `acquire` take fenced locks: `flag` (--fencing) when set, else
/// REDLOCK_FENCING ("1" on; "0", empty or unset off). Throws a usage error naming the
/// variable for any other value.
bool resolve_fencing(bool flag);

/// Parses --fencing-token: a decimal integer from 1 to 2^64-1. Throws a usage error.
std::uint64_t fencing_token_option(const std::string& text);

/// The longest lock TTL: the servers keep it as a signed 32-bit count of milliseconds.
inline constexpr std::chrono::milliseconds max_lock_ttl{2'147'483'647};

/// Throws a usage error naming the argument for an empty or repeated resource name (an unset
/// shell variable would otherwise become one global lock).
void check_resources(const std::vector<std::string>& resources);

/// Parses a duration option; throws a usage error naming the option.
std::chrono::milliseconds duration_option(const std::string& name, const std::string& text);

/// Builds the manager over one node per configured URL (see redlock::make_node).
std::unique_ptr<lock_manager> make_manager(asio::any_io_executor ex, const config& c);

/// "'<resource>'" for one resource, "<N> resources" for several (printable, for messages).
std::string name_of(const std::vector<std::string>& resources);

/// Why an acquire failed, in one line for stderr: held by another owner, no quorum, too slow
/// for the TTL (each with the attempts made), the library's detail for refused calls.
std::string describe_acquire_failure(std::error_code ec, const std::vector<std::string>& resources,
                                     int attempts, const report& r);

/// Maps a failed lock operation to the exit code its kind of failure has.
int exit_code_for(std::error_code ec);

/// "<what>: <ec's message>", with the library's detail when it refused the call before
/// sending anything (the argument or the two nodes it names).
std::string failure_text(const std::string& what, std::error_code ec, const report& r);

/// Prints "redlock: <what>" and, when verbose or useful, the per-node report to stderr.
void print_failure(const std::string& what, const report& r, bool with_report);

/// Nodes of a release's report that did not confirm it (error, timeout or no answer yet):
/// the library keeps retrying there until the cleanup bound.
std::size_t unconfirmed_nodes(const report& r);

/// True when a node's answer says a key holds a value of another type (WRONGTYPE).
bool saw_wrong_type(const report& r);

/// One line per node of the report, indented, for stderr.
std::string indent_report(const report& r);

}  // namespace redlock::cli

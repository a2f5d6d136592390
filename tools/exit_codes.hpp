// Exit codes of the redlock tool. Listed in `redlock --help` and in the README.
//
// Codes other than 0 and 2 come from sysexits.h's range (64-78) so that they rarely collide
// with a command's own codes passed through by `redlock run`.
#pragma once

namespace redlock::cli {

enum exit_code : int {
  exit_ok = 0,
  /// status: the resources are free (no holder on a quorum). 3 as in LSB init scripts and
  /// `systemctl is-active` ("not running"), so `if redlock status R; then` means "held".
  exit_status_free = 3,
  /// status: servers answered (a quorum) but no quorum agrees on one holder or on free:
  /// a lock being acquired or released, expiring, or split by a failure. 4 as LSB's
  /// "status unknown".
  exit_status_indeterminate = 4,
  /// Bad arguments: unknown option, bad duration or TTL, empty or repeated resource, bad or
  /// duplicate server URL (or two of one deployment), missing TLS files, no servers.
  exit_usage = 2,
  /// Too many servers unreachable or failing (connect, auth, TLS, timeouts) for a quorum.
  exit_unavailable = 69,
  /// Unexpected internal error (fork failure, a bug).
  exit_software = 70,
  /// Not acquired: another owner held the lock for the whole wait (or at once with --no-wait).
  exit_not_acquired = 75,
  /// The lock was lost while the command ran (run), or is not held with this value
  /// (extend, release).
  exit_lost = 76,
  /// The command was found but could not be executed (like shells).
  exit_cannot_execute = 126,
  /// The command was not found (like shells).
  exit_not_found = 127,
  /// 128 + N: the command (or redlock while waiting) was ended by signal N.
  exit_signal_base = 128,
};

/// The table shown at the end of --help.
inline constexpr const char* exit_code_help =
    "Exit codes:\n"
    "  0        success (run: the command exited 0; status: held)\n"
    "  N        run: the command's own exit code\n"
    "  2        usage error: bad option, duration, resource, server URL, no servers\n"
    "  3        status: free (no holder on a quorum of servers)\n"
    "  4        status: indeterminate (a quorum answered but does not agree)\n"
    "  69       Redis unavailable: too many servers failing for a quorum (status:\n"
    "           too few answered to tell)\n"
    "  70       internal error\n"
    "  75       not acquired: held by another owner for the whole wait\n"
    "  76       lock lost while the command ran (run), or not held with this value\n"
    "           (extend, release)\n"
    "  126/127  run: the command could not be executed / was not found\n"
    "  128+N    the command (or redlock while waiting) was ended by signal N\n";

}  // namespace redlock::cli

// Owner metadata, the key prefix and `release --force` in the CLI (README "Owner metadata
// and the key prefix").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "redlock/owner.hpp"

namespace redlock::cli {

/// The global options of this part, as given.
struct owner_flags {
  std::optional<std::string> prefix;       ///< --prefix (else REDLOCK_PREFIX, else none)
  std::optional<std::string> owner_label;  ///< --owner-label
  bool no_owner = false;                   ///< --no-owner
};

/// Sets the key prefix (--prefix, else REDLOCK_PREFIX) and owner metadata (on unless
/// --no-owner: this process's host and pid, program "redlock", the label) in `c`. Throws a
/// usage error for a prefix with '{' or '}' (naming where it came from) or --owner-label with
/// --no-owner.
void resolve_owner(const owner_flags& f, config& c);

/// For `run` and `acquire`: the program the record names (run: its command's argv, joined
/// with spaces; acquire: "redlock acquire"). Owner metadata is turned off for fenced or fair
/// locks, which the library does not combine with it; with --owner-label given that is a
/// usage error naming both instead.
void owner_for_lock(config& c, const owner_flags& f, const std::string& program, bool fencing,
                    const std::string& fencing_source, const std::string& fair_source);

/// "pid 4242 on build-3, program backup.sh, since ..." with unprintable bytes escaped.
std::string owner_text(const lock_owner& o);
/// The record as a JSON object: {"host", "pid", "program", "label", "since_ms", "since"}.
std::string owner_json(const lock_owner& o);

struct force_args {
  std::vector<std::string> resources;
  bool yes = false;  ///< --yes: no question
};
/// `release --force`: asks on /dev/tty (y/N) unless --yes, refusing without --yes when stdin
/// is not a terminal; deletes whatever value holds each resource on every server and its
/// owner record; prints what it removed on stdout and logs what it did on stderr.
int cmd_force_release(const config& c, const force_args& a);

/// Exit code of `release --force` when the question was not answered "y".
inline constexpr int exit_declined = 1;

}  // namespace redlock::cli

// Owner metadata: who holds a lock (README "Owner metadata"). Opt-in with
// manager_options::owner; read back by inspection (inspect.hpp) and force release.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace redlock {

/// Who takes locks: written with every lock of a manager that has manager_options::owner set,
/// in a key of its own beside each lock key (`<key>:redlock-owner`, in the key's Cluster slot).
/// Information for people (`redlock status`); nothing ever depends on it. Each field is stored with
/// control characters replaced by spaces and cut to 256 bytes.
struct owner_info {
  std::string host;     ///< the machine's host name
  long long pid = 0;    ///< the process id (0: not given)
  std::string program;  ///< the program (or command) that holds the lock
  std::string label;    ///< free text given by the caller (call_options::owner_label per call)
};

/// This process: host name (gethostname), pid (getpid), program (the name it was started
/// under, without its directory), and `label`.
owner_info this_process(std::string label = {});

/// An owner record as stored on a node: the lock value it belongs to, when it was written
/// (wall clock, milliseconds since the Unix epoch, on the writer's clock) and who.
struct lock_owner {
  std::string value;       ///< the lock value the record was written with
  std::int64_t since = 0;  ///< wall-clock ms since the epoch at the acquisition (writer's clock)
  owner_info who;
};

/// The stored form: the value, then one "name=text" line each for since, host, pid, program
/// and label ("\n"-separated). Fields are cleaned as owner_info says.
std::string encode_owner(std::string_view value, std::int64_t since, const owner_info& who);
/// Reads a stored record; nullopt when `text` is not one (a garbled or foreign key: owner
/// metadata is never required, so such a key only means "no owner known"). Unknown lines
/// are ignored, so that later versions may add fields.
std::optional<lock_owner> decode_owner(std::string_view text);

/// One line for people, e.g. "pid 4242 on build-3, program backup.sh, label nightly, since
/// 2026-12-03T13:34:31.120Z" (parts that are empty or 0 are left out; the time is UTC).
std::string to_string(const lock_owner& o);

}  // namespace redlock

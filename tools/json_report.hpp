// The one JSON object an invocation with --json prints (schema: docs/cli-json.md).
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redlock::cli {

/// Collects the fields of the invocation's JSON object while the subcommand runs, and the
/// text of the failure that ends it; main() prints it once at the end, with the exit code
/// (so that every path, usage errors and exceptions included, yields exactly one object).
///
/// One per process (invocation()): a redlock process runs one subcommand, and failures are
/// reported from many places (the parser, resolve(), each command's body) that would
/// otherwise all need it passed along.
class json_report {
 public:
  bool enabled = false;  ///< --json given
  /// "run", "acquire", "extend", "release", "status", or empty (not known: a usage error
  /// before the subcommand was recognised).
  std::string command;
  /// The exit code is a result, not a failure: run's command's own code, or a status
  /// verdict (free, indeterminate).
  bool code_is_result = false;

  /// Sets field `name` to `raw`, a JSON value already rendered (see json_string).
  void set_raw(const std::string& name, std::string raw);
  void set_string(const std::string& name, std::string_view value);
  void set_int(const std::string& name, std::int64_t value);
  void set_bool(const std::string& name, bool value);
  void set_null(const std::string& name);
  /// A JSON array of strings.
  void set_strings(const std::string& name, const std::vector<std::string>& values);

  /// The failure's message (without the "redlock: " prefix). The first one is kept: later
  /// ones are consequences (e.g. the cleanup after a failed acquire).
  void fail(const std::string& message);
  const std::optional<std::string>& failure() const noexcept { return failure_; }

  /// The object, one line, with the envelope (schema, command, ok, exit_code, error) and the
  /// fields. A failure: exit_code not 0 and not code_is_result.
  std::string render(int exit_code) const;

  /// Writes render() and a newline to `out` (stdout; stderr for run) and flushes it.
  void print(std::FILE* out, int exit_code) const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
  std::optional<std::string> failure_;
};

/// This process's report.
json_report& invocation();

/// The name scripts match on for an exit code: "usage", "unavailable", "not_acquired",
/// "lost", "software", "cannot_execute", "not_found", "signal", "free", "indeterminate".
std::string exit_code_name(int code);

}  // namespace redlock::cli

// Parsing of durations given on the command line: "1500ms", "10s", "2m", "1.5s", "1h",
// "1m30s", "2h15m", "1s500ms".
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace redlock::cli {

/// Parses a non-negative duration: a decimal number followed by a unit (ms, s, m or min, h),
/// several such parts with larger units first and each unit at most once ("1m30s", "2h15m",
/// "1s500ms"; decimals only in the last part), or a bare "0". A bare number other than 0 is
/// rejected rather than guessed: redlock's peers disagree on whether it means seconds (flock,
/// timeout) or milliseconds (node-redlock). The result must be a whole number of milliseconds and
/// at most 100 days. On failure returns nullopt and sets `why` to a message that says what is
/// wrong.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text, std::string& why);

/// "1.5s", "250ms", "2m3s": short human form for status lines and messages.
std::string format_duration(std::chrono::milliseconds d);

}  // namespace redlock::cli

#include "duration.hpp"

#include <cstdint>
#include <cstdio>

namespace redlock::cli {

namespace {

constexpr std::int64_t max_ms = 100LL * 24 * 3600 * 1000;

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text, std::string& why) {
  const std::string quoted = "'" + std::string(text) + "'";
  if (text.empty()) {
    why = "empty duration; expected e.g. 1500ms, 10s, 2m";
    return std::nullopt;
  }
  if (text == "0")
    return std::chrono::milliseconds(0);

  // Digits, optionally one '.' and more digits; kept as an exact integer plus a scale so
  // that "1.5s" is 1500 ms without floating-point rounding.
  std::size_t i = 0;
  std::int64_t whole = 0;
  std::int64_t frac = 0;
  std::int64_t frac_scale = 1;
  bool digits = false;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    digits = true;
    whole = whole * 10 + (text[i] - '0');
    if (whole > max_ms) {
      why = "duration " + quoted + " is too large (at most 100 days)";
      return std::nullopt;
    }
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      digits = true;
      if (frac_scale < 1'000'000) {
        frac = frac * 10 + (text[i] - '0');
        frac_scale *= 10;
      } else if (text[i] != '0') {
        why = "duration " + quoted + " has too many decimals";
        return std::nullopt;
      }
    }
  }
  if (!digits) {
    why = "invalid duration " + quoted + ": expected a number with a unit, e.g. 1500ms, 10s, 2m";
    return std::nullopt;
  }
  const std::string_view unit = text.substr(i);
  std::int64_t unit_ms = 0;
  if (unit == "ms") {
    unit_ms = 1;
  } else if (unit == "s") {
    unit_ms = 1000;
  } else if (unit == "m" || unit == "min") {
    unit_ms = 60'000;
  } else if (unit == "h") {
    unit_ms = 3'600'000;
  } else if (unit.empty()) {
    why = "duration " + quoted + " has no unit: write e.g. " + std::string(text) + "ms or " +
          std::string(text) + "s";
    return std::nullopt;
  } else {
    why = "duration " + quoted + " has an unknown unit '" + std::string(unit) +
          "': use ms, s, m or h";
    return std::nullopt;
  }
  if (whole > max_ms / unit_ms) {
    why = "duration " + quoted + " is too large (at most 100 days)";
    return std::nullopt;
  }
  const std::int64_t frac_units = frac * unit_ms;
  if (frac_units % frac_scale != 0) {
    why = "duration " + quoted + " is not a whole number of milliseconds";
    return std::nullopt;
  }
  const std::int64_t total = whole * unit_ms + frac_units / frac_scale;
  if (total > max_ms) {
    why = "duration " + quoted + " is too large (at most 100 days)";
    return std::nullopt;
  }
  return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  char buf[64];
  if (ms < 0)
    return "-" + format_duration(-d);
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  } else if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%lld.%llds", static_cast<long long>(ms / 1000),
                  static_cast<long long>((ms % 1000) / 100));
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%llds", static_cast<long long>(ms / 60'000),
                  static_cast<long long>((ms % 60'000) / 1000));
  }
  return buf;
}

}  // namespace redlock::cli

#include "duration.hpp"

#include <cstdint>
#include <cstdio>

namespace redlock::cli {

namespace {

constexpr std::int64_t max_ms = 100LL * 24 * 3600 * 1000;

struct unit_info {
  std::string_view name;
  std::int64_t ms;
  int rank;  ///< larger units first: a compound must list ranks in decreasing order
};

/// The unit at the start of `rest` (longest match: "ms" before "m", "min" before "m").
const unit_info* match_unit(std::string_view rest, std::size_t& len) {
  static constexpr unit_info units[] = {
      {"ms", 1, 0}, {"min", 60'000, 2}, {"s", 1000, 1}, {"m", 60'000, 2}, {"h", 3'600'000, 3}};
  for (const auto& u : units) {
    if (rest.substr(0, u.name.size()) == u.name) {
      len = u.name.size();
      return &u;
    }
  }
  return nullptr;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text, std::string& why) {
  const std::string quoted = "'" + std::string(text) + "'";
  if (text.empty()) {
    why = "empty duration; expected e.g. 1500ms, 10s, 2m, 1m30s";
    return std::nullopt;
  }
  if (text == "0")
    return std::chrono::milliseconds(0);
  const std::string too_large = "duration " + quoted + " is too large (at most 100 days)";

  // One or more parts "<number><unit>", larger units first, each unit at most once
  // ("1h30m", "1m30s", "1s500ms"), as Go's time.ParseDuration and systemd write them.
  // Numbers are kept as an exact integer plus a scale so that "1.5s" is 1500 ms without
  // floating-point rounding; only the last part may have decimals ("1.5m30s" is ambiguous to
  // a reader).
  std::int64_t total = 0;
  int last_rank = 4;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t part_start = i;
    std::int64_t whole = 0;
    std::int64_t frac = 0;
    std::int64_t frac_scale = 1;
    bool digits = false;
    for (; i < text.size() && is_digit(text[i]); ++i) {
      digits = true;
      whole = whole * 10 + (text[i] - '0');
      if (whole > max_ms) {
        why = too_large;
        return std::nullopt;
      }
    }
    bool decimals = false;
    if (i < text.size() && text[i] == '.') {
      decimals = true;
      ++i;
      for (; i < text.size() && is_digit(text[i]); ++i) {
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
      why = "invalid duration " + quoted +
            ": expected a number with a unit, e.g. 1500ms, 10s, 2m, 1m30s";
      return std::nullopt;
    }
    std::size_t unit_len = 0;
    const unit_info* unit = match_unit(text.substr(i), unit_len);
    if (unit == nullptr) {
      std::size_t end = i;
      while (end < text.size() && !is_digit(text[end]) && text[end] != '.')
        ++end;
      const std::string_view bad = text.substr(i, end - i);
      if (bad.empty() && part_start == 0) {
        why = "duration " + quoted + " has no unit: write e.g. " + std::string(text) + "ms or " +
              std::string(text) + "s";
      } else if (bad.empty()) {
        why = "duration " + quoted + " ends without a unit after '" +
              std::string(text.substr(part_start)) + "'";
      } else {
        why = "duration " + quoted + " has an unknown unit '" + std::string(bad) +
              "': use ms, s, m or h";
      }
      return std::nullopt;
    }
    i += unit_len;
    if (unit->rank >= last_rank) {
      why = "duration " + quoted + ": units must each appear once, larger first (e.g. 1h30m, " +
            "1m30s, 1s500ms)";
      return std::nullopt;
    }
    last_rank = unit->rank;
    if (decimals && i < text.size()) {
      why = "duration " + quoted + ": only the last part may have decimals";
      return std::nullopt;
    }
    if (whole > max_ms / unit->ms) {
      why = too_large;
      return std::nullopt;
    }
    const std::int64_t frac_units = frac * unit->ms;
    if (frac_units % frac_scale != 0) {
      why = "duration " + quoted + " is not a whole number of milliseconds";
      return std::nullopt;
    }
    // Each part and the running total are at most max_ms, so the sum cannot overflow.
    total += whole * unit->ms + frac_units / frac_scale;
    if (total > max_ms) {
      why = too_large;
      return std::nullopt;
    }
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

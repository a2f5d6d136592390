// Output helpers: the rewritten status line on a terminal, and JSON string escaping.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace redlock::cli {

/// One line on stderr, rewritten in place with "\r", shown only when stderr is a
/// terminal. Scripts and logs (stderr redirected) never see it.
class status_line {
 public:
  status_line();
  explicit status_line(bool enabled) : enabled_(enabled) {}
  ~status_line() { clear(); }
  status_line(const status_line&) = delete;
  status_line& operator=(const status_line&) = delete;

  bool enabled() const noexcept { return enabled_; }
  void show(const std::string& text);
  /// Erases the line so that later messages start on a clean line.
  void clear();

 private:
  bool enabled_;
  bool shown_ = false;
};

/// `text` cut to fit one terminal line of `columns` columns (one column is kept free: writing
/// into the last one wraps on many terminals, and every rewrite would start a new line).
/// Counts UTF-8 sequences as one column each and never cuts one. columns == 0: unchanged.
std::string fit_width(std::string_view text, std::size_t columns);

/// The terminal width of `fd`, or 0 when unknown (not a terminal, no size set).
std::size_t terminal_columns(int fd);

/// `s` as a JSON string literal, with quotes. Valid UTF-8 passes through; a string that is
/// not valid UTF-8 (resource names and foreign lock values are binary) has each byte >= 0x80
/// written as \u00XX, so the output is always valid JSON.
std::string json_string(std::string_view s);

/// `s` for a human-readable line: control characters and invalid UTF-8 as \xNN escapes.
std::string printable(std::string_view s);

}  // namespace redlock::cli

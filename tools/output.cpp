#include "output.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>

namespace redlock::cli {

namespace {

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    unsigned min = 0;
    unsigned cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80, cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800, cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + len > s.size())
      return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

}  // namespace

std::string fit_width(std::string_view text, std::size_t columns) {
  if (columns == 0)
    return std::string(text);
  const std::size_t room = columns > 1 ? columns - 1 : 1;
  std::size_t used = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    // A byte that is not a UTF-8 continuation byte starts a new column.
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (used == room)
        return std::string(text.substr(0, i));
      ++used;
    }
  }
  return std::string(text);
}

std::size_t terminal_columns(int fd) {
  struct winsize ws {};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0)
    return 0;
  return ws.ws_col;
}

status_line::status_line() : enabled_(::isatty(STDERR_FILENO) == 1) {}

void status_line::show(const std::string& text) {
  if (!enabled_)
    return;
  // A line longer than the terminal wraps, and "\r" then rewrites only its last row: the
  // rows above pile up. Read the width each time (the window may be resized meanwhile).
  const std::string line = fit_width(text, terminal_columns(STDERR_FILENO));
  // \x1b[K erases what a longer previous line left behind.
  std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
  std::fflush(stderr);
  shown_ = true;
}

void status_line::clear() {
  if (!enabled_ || !shown_)
    return;
  std::fputs("\r\x1b[K", stderr);
  std::fflush(stderr);
  shown_ = false;
}

std::string json_string(std::string_view s) {
  const bool utf8 = valid_utf8(s);
  std::string out = "\"";
  char buf[8];
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F || (c >= 0x80 && !utf8)) {
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

std::string printable(std::string_view s) {
  const bool utf8 = valid_utf8(s);
  std::string out;
  char buf[8];
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F || (c >= 0x80 && !utf8) || c == '\\') {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace redlock::cli

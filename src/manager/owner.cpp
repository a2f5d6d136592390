// Owner records (include/redlock/owner.hpp): the text stored beside a lock key.
#include "redlock/owner.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>
#include <string>

#include <unistd.h>

namespace redlock {

namespace {

constexpr std::size_t max_field = 256;

// One line of the record: newlines (the separator) and other control characters would let a
// field forge another field, or garble a terminal that shows it.
std::string clean(std::string_view s) {
  std::string out(s.substr(0, max_field));
  for (auto& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = ' ';
  }
  return out;
}

std::string program_name() {
  // /proc/self/cmdline's first argument is the name the program was started under.
  std::string name;
  if (FILE* f = std::fopen("/proc/self/cmdline", "rb")) {
    int c = 0;
    while ((c = std::fgetc(f)) != EOF && c != '\0')
      name.push_back(static_cast<char>(c));
    std::fclose(f);
  }
  if (const auto slash = name.rfind('/'); slash != std::string::npos)
    name.erase(0, slash + 1);
  return name;
}

template <class Int>
bool parse_int(std::string_view s, Int& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

}  // namespace

owner_info this_process(std::string label) {
  owner_info o;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0)
    o.host = host;
  o.pid = static_cast<long long>(::getpid());
  o.program = program_name();
  o.label = std::move(label);
  return o;
}

std::string encode_owner(std::string_view value, std::int64_t since, const owner_info& who) {
  std::string out(value);
  out += "\nsince=" + std::to_string(since);
  out += "\nhost=" + clean(who.host);
  out += "\npid=" + std::to_string(who.pid);
  out += "\nprogram=" + clean(who.program);
  out += "\nlabel=" + clean(who.label);
  return out;
}

std::optional<lock_owner> decode_owner(std::string_view text) {
  const auto first = text.find('\n');
  if (first == std::string_view::npos || first == 0)
    return std::nullopt;
  lock_owner o;
  o.value = std::string(text.substr(0, first));
  bool has_since = false;
  std::size_t pos = first + 1;
  while (pos <= text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos)
      end = text.size();
    const auto line = text.substr(pos, end - pos);
    pos = end + 1;
    const auto eq = line.find('=');
    if (eq == std::string_view::npos)
      continue;
    const auto name = line.substr(0, eq);
    const auto field = line.substr(eq + 1);
    if (name == "since") {
      has_since = parse_int(field, o.since);
    } else if (name == "host") {
      o.who.host = std::string(field);
    } else if (name == "pid") {
      if (!parse_int(field, o.who.pid))
        o.who.pid = 0;
    } else if (name == "program") {
      o.who.program = std::string(field);
    } else if (name == "label") {
      o.who.label = std::string(field);
    }
  }
  // Without its time it is not a record of ours (a lock value alone, someone's text).
  if (!has_since)
    return std::nullopt;
  return o;
}

std::string to_string(const lock_owner& o) {
  std::string out;
  const auto part = [&out](const std::string& text) {
    if (!out.empty())
      out += ", ";
    out += text;
  };
  if (o.who.pid != 0)
    out = "pid " + std::to_string(o.who.pid);
  if (!o.who.host.empty())
    out += (out.empty() ? "on " : " on ") + o.who.host;
  if (!o.who.program.empty())
    part("program " + o.who.program);
  if (!o.who.label.empty())
    part("label " + o.who.label);
  if (o.since > 0) {
    const std::time_t secs = static_cast<std::time_t>(o.since / 1000);
    std::tm tm{};
    char buf[64] = {};
    if (::gmtime_r(&secs, &tm) != nullptr &&
        std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) > 0) {
      char ms[8];
      std::snprintf(ms, sizeof ms, ".%03dZ", static_cast<int>(o.since % 1000));
      part(std::string("since ") + buf + ms);
    }
  }
  return out;
}

}  // namespace redlock

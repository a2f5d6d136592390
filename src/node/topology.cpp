#include "internal/topology.hpp"

#include <charconv>
#include <utility>

namespace redlock::detail {

namespace {

// The whole of `s` as a port, 1..65535.
bool parse_port(std::string_view s, std::uint16_t& port) noexcept {
  const auto res = std::from_chars(s.data(), s.data() + s.size(), port);
  return res.ec == std::errc() && res.ptr == s.data() + s.size() && port != 0;
}

// `flag` is one of the comma-separated `flags` of a CLUSTER NODES line.
bool has_flag(std::string_view flags, std::string_view flag) noexcept {
  while (!flags.empty()) {
    const auto comma = flags.find(',');
    if (flags.substr(0, comma) == flag)
      return true;
    flags = comma == std::string_view::npos ? std::string_view{} : flags.substr(comma + 1);
  }
  return false;
}

}  // namespace

std::optional<host_port> split_address(std::string_view address) {
  const auto colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return std::nullopt;
  host_port hp;
  if (!parse_port(address.substr(colon + 1), hp.port))
    return std::nullopt;
  hp.host = std::string(address.substr(0, colon));
  return hp;
}

std::string join_address(std::string_view host, std::uint16_t port) {
  std::string out(host);
  out += ':';
  out += std::to_string(port);
  return out;
}

std::optional<host_port> parse_master_address(const reply& r, std::string& why) {
  if (r.kind == reply::type::nil) {
    why = "unknown master";
    return std::nullopt;
  }
  host_port hp;
  const bool ok = r.kind == reply::type::array && r.elements.size() == 2 &&
                  r.elements[0].kind == reply::type::string &&
                  r.elements[1].kind == reply::type::string && !r.elements[0].str.empty() &&
                  parse_port(r.elements[1].str, hp.port);
  if (!ok) {
    why = "unexpected reply";
    return std::nullopt;
  }
  hp.host = r.elements[0].str;
  return hp;
}

std::optional<std::vector<slot_range>> parse_cluster_slots(const reply& r,
                                                           std::string_view asked_host) {
  if (r.kind != reply::type::array)
    return std::nullopt;
  std::vector<slot_range> out;
  out.reserve(r.elements.size());
  for (const reply& range : r.elements) {
    if (range.kind != reply::type::array || range.elements.size() < 3)
      return std::nullopt;
    const reply& lo = range.elements[0];
    const reply& hi = range.elements[1];
    const reply& master = range.elements[2];
    if (lo.kind != reply::type::integer || hi.kind != reply::type::integer ||
        master.kind != reply::type::array || master.elements.size() < 2 ||
        master.elements[1].kind != reply::type::integer || lo.integer < 0 ||
        hi.integer >= static_cast<std::int64_t>(cluster_slot_count) || lo.integer > hi.integer)
      return std::nullopt;
    const reply& host = master.elements[0];
    const auto port = master.elements[1].integer;
    if (port <= 0 || port > 65535)
      return std::nullopt;
    slot_range s;
    s.first = static_cast<std::uint16_t>(lo.integer);
    s.last = static_cast<std::uint16_t>(hi.integer);
    s.master.port = static_cast<std::uint16_t>(port);
    if (host.kind == reply::type::nil ||
        (host.kind == reply::type::string && (host.str.empty() || host.str == "?"))) {
      // "Unknown endpoint" (nil from Redis 7 with cluster-preferred-endpoint-type
      // unknown-endpoint, "?" for a missing hostname): the node we asked is meant.
      s.master.host = std::string(asked_host);
    } else if (host.kind == reply::type::string) {
      s.master.host = host.str;
    } else {
      return std::nullopt;
    }
    if (s.master.host.empty())
      return std::nullopt;
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<cluster_members> parse_cluster_nodes(std::string_view text,
                                                   std::string_view asked_host) {
  cluster_members out;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (line.empty())
      continue;
    std::vector<std::string_view> fields;
    for (std::string_view rest = line; !rest.empty();) {
      const auto sp = rest.find(' ');
      fields.push_back(rest.substr(0, sp));
      rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
    }
    if (fields.size() < 8 || fields[0].empty())
      return std::nullopt;
    const std::string_view flags = fields[2];
    // A node still in the handshake has a provisional id that it will not keep.
    if (has_flag(flags, "handshake"))
      continue;
    out.ids.emplace_back(fields[0]);
    if (!has_flag(flags, "master") || fields.size() < 9)
      continue;  // a replica, or a master without slots: requests never go there
    const std::string_view address = fields[1].substr(0, fields[1].find('@'));
    // ":<port>": the node has no address to advertise; the node we asked is meant. (Only
    // when that is the only colon: "::1:7000" is the IPv6 loopback.)
    const auto hp = !address.empty() && address.rfind(':') == 0
                        ? split_address(std::string(asked_host) + std::string(address))
                        : split_address(address);
    if (hp)
      out.masters.push_back(join_address(hp->host, hp->port));
  }
  if (out.ids.empty())
    return std::nullopt;
  return out;
}

std::optional<cluster_redirect> parse_redirect(std::string_view error,
                                               std::string_view sender_host) {
  cluster_redirect r;
  if (error.starts_with("MOVED ")) {
    error.remove_prefix(6);
  } else if (error.starts_with("ASK ")) {
    error.remove_prefix(4);
    r.ask = true;
  } else {
    return std::nullopt;
  }
  const auto sp = error.find(' ');
  if (sp == std::string_view::npos)
    return std::nullopt;
  const std::string_view slot = error.substr(0, sp);
  const std::string_view address = error.substr(sp + 1);
  const auto res = std::from_chars(slot.data(), slot.data() + slot.size(), r.slot);
  if (res.ec != std::errc() || res.ptr != slot.data() + slot.size() || r.slot >= cluster_slot_count)
    return std::nullopt;
  const auto colon = address.rfind(':');
  if (colon == std::string_view::npos || !parse_port(address.substr(colon + 1), r.port))
    return std::nullopt;
  // No host: the redirect points at another port of the node we asked (Redis 7 writes
  // ":<port>" when it has no endpoint it would advertise).
  r.host = std::string(colon == 0 ? sender_host : address.substr(0, colon));
  if (r.host.empty())
    return std::nullopt;
  return r;
}

}  // namespace redlock::detail

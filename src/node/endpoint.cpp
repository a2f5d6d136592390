// Endpoint URLs: parsing with messages that say what is wrong, and printing with the password
// redacted.
//
// Secrets: a message quotes the URL only through redact(), which hides everything from the
// first ':' of the userinfo up to the *last* '@' of the whole URL, and every query value
// from "password=" to the end. Using the last '@' (rather than the URL grammar's authority
// end) keeps a password safe even when it holds an unencoded '/', '?' or '#', and the parser
// refuses any '@' after the host for the same reason, so the components it quotes in a
// message never come from the userinfo.
#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdint>
#include <string>
#include <string_view>

#include "internal/parse_or_throw.hpp"
#include "redlock/endpoint.hpp"
#include "redlock/error.hpp"

namespace redlock {

namespace {

constexpr std::string_view scheme_sep = "://";

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
           return lower(x) == lower(y);
         });
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// Percent-decodes s into out; false on a malformed escape.
bool percent_decode(std::string_view s, std::string& out) {
  out.clear();
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size())
      return false;
    const int hi = hex_value(s[i + 1]);
    const int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0)
      return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

// Percent-encodes everything but RFC 3986 unreserved characters (and '/' when keep_slash).
void percent_encode(std::string_view s, std::string& out, bool keep_slash = false) {
  static constexpr char hex[] = "0123456789ABCDEF";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                            c == '~' || (keep_slash && c == '/');
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0xF]);
    }
  }
}

// The URL with anything that may be a password replaced by "***"; see the file comment.
std::string redact(std::string_view url) {
  constexpr std::size_t npos = std::string_view::npos;
  // Userinfo password: from the first ':' after the scheme to the last '@'.
  const std::size_t sep = url.find(scheme_sep);
  const std::size_t auth = sep == npos ? 0 : sep + scheme_sep.size();
  std::size_t user_begin = npos;
  const std::size_t at = url.rfind('@');
  if (at != npos && at >= auth) {
    const std::size_t colon = url.substr(auth, at - auth).find(':');
    if (colon != npos)
      user_begin = auth + colon + 1;
  }
  // Query password: from the first "?password=" or "&password=" anywhere to the end. With an
  // unencoded '&' in the password its tail would otherwise look like further parameters.
  std::size_t query_begin = npos;
  for (std::size_t p = url.find_first_of("?&"); p != npos; p = url.find_first_of("?&", p + 1)) {
    if (iequals(url.substr(p + 1, 9), "password=")) {
      query_begin = p + 10;
      break;
    }
  }
  std::string out;
  if (query_begin != npos && (user_begin == npos || query_begin <= user_begin)) {
    out.append(url.substr(0, query_begin));
    out.append("***");
    return out;
  }
  if (user_begin == npos)
    return std::string(url);
  out.append(url.substr(0, user_begin));
  out.append("***");
  if (query_begin == npos) {
    out.append(url.substr(at));
  } else if (query_begin > at) {
    out.append(url.substr(at, query_begin - at));
    out.append("***");
  }
  return out;
}

bool parse_uint(std::string_view s, std::uint64_t max, std::uint64_t& v) {
  if (s.empty() || s.size() > 19)
    return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc{} && p == s.data() + s.size() && v <= max;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Quotes a component for a message, without exposing control characters.
std::string quoted(std::string_view s, std::size_t max = 64) {
  std::string out = "\"";
  for (char c : s.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0xF]);
    } else {
      out.push_back(c);
    }
  }
  if (s.size() > 64)
    out += "...";
  out.push_back('"');
  return out;
}

class parser {
 public:
  explicit parser(std::string_view url) : url_(url) {}

  // Returns false with why_ set on failure.
  bool run(endpoint& e) {
    const std::size_t sep = url_.find(scheme_sep);
    if (sep == std::string_view::npos) {
      return fail("missing scheme (expected redis://, rediss:// or unix://)");
    }
    const std::string_view scheme = url_.substr(0, sep);
    std::string_view rest = url_.substr(sep + scheme_sep.size());
    if (const std::size_t hash = rest.find('#'); hash != std::string_view::npos) {
      return fail("unexpected fragment ('#'); percent-encode '#' as %23");
    }
    std::string_view query;
    if (iequals(scheme, "unix")) {
      e.kind = endpoint::transport::unix_socket;
      if (const std::size_t q = rest.find('?'); q != std::string_view::npos) {
        query = rest.substr(q + 1);
        rest = rest.substr(0, q);
      }
      return parse_unix_path(rest, e) && parse_query(query, e);
    }
    if (iequals(scheme, "redis")) {
      e.tls.enabled = false;
    } else if (iequals(scheme, "rediss")) {
      e.tls.enabled = true;
    } else {
      return fail("unknown scheme " + quoted(scheme) + " (expected redis, rediss or unix)");
    }
    e.kind = endpoint::transport::tcp;
    const std::size_t auth_end = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, auth_end);
    std::string_view tail =
        auth_end == std::string_view::npos ? std::string_view{} : rest.substr(auth_end);
    if (tail.find('@') != std::string_view::npos) {
      return fail(
          "unexpected '@' after the host (percent-encode '@', '/', '?', '#' and '%' in the user "
          "name and password)");
    }
    if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
      if (!parse_userinfo(authority.substr(0, at), e))
        return false;
      authority = authority.substr(at + 1);
    }
    if (!parse_host_port(authority, e))
      return false;
    std::string_view path = tail;
    if (const std::size_t q = tail.find('?'); q != std::string_view::npos) {
      query = tail.substr(q + 1);
      path = tail.substr(0, q);
    }
    return parse_db_path(path, e) && parse_query(query, e);
  }

  const std::string& why() const { return why_; }

 private:
  bool fail(std::string what) {
    why_ = "invalid Redis URL " + quoted(redact(url_), 256) + ": " + std::move(what);
    return false;
  }

  bool parse_userinfo(std::string_view info, endpoint& e) {
    const std::size_t colon = info.find(':');
    if (!percent_decode(info.substr(0, colon), e.username)) {
      return fail("bad percent-encoding in the user name");
    }
    if (colon != std::string_view::npos && !percent_decode(info.substr(colon + 1), e.password)) {
      return fail("bad percent-encoding in the password");
    }
    return true;
  }

  bool parse_host_port(std::string_view hp, endpoint& e) {
    std::string_view port_text;
    bool has_port = false;
    if (!hp.empty() && hp.front() == '[') {
      const std::size_t close = hp.find(']');
      if (close == std::string_view::npos)
        return fail("unterminated IPv6 bracket '['");
      const std::string_view host = hp.substr(1, close - 1);
      if (host.empty())
        return fail("empty IPv6 literal '[]'");
      const bool ok = host.find(':') != std::string_view::npos &&
                      std::all_of(host.begin(), host.end(),
                                  [](char c) { return hex_value(c) >= 0 || c == ':' || c == '.'; });
      if (!ok)
        return fail("bad IPv6 literal " + quoted(host));
      e.host.assign(host);
      const std::string_view after = hp.substr(close + 1);
      if (!after.empty()) {
        if (after.front() != ':') {
          return fail("unexpected " + quoted(after) + " after the IPv6 literal");
        }
        has_port = true;
        port_text = after.substr(1);
      }
    } else {
      const std::size_t colon = hp.find(':');
      const std::string_view host = hp.substr(0, colon);
      if (colon != std::string_view::npos) {
        has_port = true;
        port_text = hp.substr(colon + 1);
        if (port_text.find(':') != std::string_view::npos) {
          return fail("too many ':' in the host (write IPv6 literals in brackets: [::1])");
        }
      }
      if (host.empty())
        return fail("empty host");
      if (host.find(']') != std::string_view::npos)
        return fail("unexpected ']' in the host");
      for (char c : host) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
        if (!ok)
          return fail("bad character " + quoted(std::string_view(&c, 1)) + " in the host");
      }
      e.host.assign(host);
    }
    if (has_port) {
      if (port_text.empty())
        return fail("empty port after ':'");
      if (!all_digits(port_text))
        return fail("bad port " + quoted(port_text));
      std::uint64_t port = 0;
      if (!parse_uint(port_text, UINT64_MAX, port) || port == 0 || port > 65535) {
        return fail("port " + quoted(port_text) + " out of range (1-65535)");
      }
      e.port = static_cast<std::uint16_t>(port);
    }
    return true;
  }

  bool parse_db(std::string_view text, endpoint& e) {
    std::uint64_t db = 0;
    if (!all_digits(text))
      return fail("bad db " + q(text) + " (expected a number)");
    if (!parse_uint(text, INT_MAX, db))
      return fail("db " + q(text) + " out of range");
    e.db = static_cast<int>(db);
    return true;
  }

  bool parse_db_path(std::string_view path, endpoint& e) {
    if (path.empty() || path == "/")
      return true;
    std::string_view db = path.substr(1);  // path starts with '/'
    if (const std::size_t slash = db.find('/'); slash != std::string_view::npos) {
      return fail("trailing garbage " + quoted(db.substr(slash)) + " after the db");
    }
    return parse_db(db, e);
  }

  bool parse_unix_path(std::string_view rest, endpoint& e) {
    if (rest.empty() || rest.front() != '/') {
      // Do not quote: a misplaced "user:password@" would land here.
      return fail("unix:// needs an empty host and an absolute path (unix:///path/to.sock)");
    }
    if (rest == "/")
      return fail("empty socket path");
    if (!percent_decode(rest, e.path))
      return fail("bad percent-encoding in the socket path");
    return true;
  }

  bool parse_bool(std::string_view name, std::string_view v, bool& out) {
    if (v == "true" || v == "1" || v == "yes") {
      out = true;
    } else if (v == "false" || v == "0" || v == "no") {
      out = false;
    } else {
      return fail("bad value " + q(v) + " for " + std::string(name) + " (expected true or false)");
    }
    return true;
  }

  // A component for a message. After a password parameter nothing of the query is quoted:
  // with an unencoded '&' in the password, its tail would look like further parameters.
  std::string q(std::string_view s) const {
    return after_password_ ? std::string("(a parameter after the password)") : quoted(s);
  }

  bool parse_query(std::string_view query, endpoint& e) {
    unsigned seen = 0;
    std::string value;
    while (!query.empty()) {
      const std::size_t amp = query.find('&');
      const std::string_view param = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
      if (param.empty())
        continue;
      const std::size_t eq = param.find('=');
      const std::string_view name = param.substr(0, eq);
      if (iequals(name, "password")) {
        if (eq == std::string_view::npos || !percent_decode(param.substr(eq + 1), e.password)) {
          return fail("bad password parameter (expected password=<percent-encoded>)");
        }
        if (!mark(seen, 0, name))
          return false;
        after_password_ = true;
        continue;
      }
      if (eq == std::string_view::npos) {
        return fail("query parameter " + q(name) + " has no value");
      }
      if (!percent_decode(param.substr(eq + 1), value)) {
        return fail("bad percent-encoding in query parameter " + q(name));
      }
      static constexpr std::string_view tls_names[] = {"ca",  "ca_dir", "cert",
                                                       "key", "sni",    "insecure"};
      const auto tls_it = std::find(std::begin(tls_names), std::end(tls_names), name);
      if (tls_it != std::end(tls_names)) {
        if (!e.tls.enabled) {
          return fail("TLS parameter " + q(name) + " needs the rediss:// scheme");
        }
        const unsigned bit = 3 + static_cast<unsigned>(tls_it - std::begin(tls_names));
        if (!mark(seen, bit, name))
          return false;
        if (name == "ca") {
          e.tls.ca_file = value;
        } else if (name == "ca_dir") {
          e.tls.ca_dir = value;
        } else if (name == "cert") {
          e.tls.cert_file = value;
        } else if (name == "key") {
          e.tls.key_file = value;
        } else if (name == "sni") {
          e.tls.server_name = value;
        } else if (!parse_bool(name, value, e.tls.insecure_skip_verify)) {
          return false;
        }
      } else if (name == "db") {
        if (!mark(seen, 1, name) || !parse_db(value, e))
          return false;
      } else if (name == "user") {
        if (!mark(seen, 2, name))
          return false;
        e.username = value;
      } else {
        return fail("unknown query parameter " + q(name));
      }
    }
    return true;
  }

  bool mark(unsigned& seen, unsigned bit, std::string_view name) {
    if (seen & (1u << bit))
      return fail("duplicate query parameter " + q(name));
    seen |= 1u << bit;
    return true;
  }

  std::string_view url_;
  std::string why_;
  bool after_password_ = false;
};

}  // namespace

endpoint parse_endpoint(std::string_view url, std::error_code& ec, std::string& why) {
  endpoint e;
  parser p(url);
  if (!p.run(e)) {
    ec = errc::invalid_url;
    why = p.why();
    return endpoint{};
  }
  ec.clear();
  why.clear();
  return e;
}

endpoint parse_endpoint(std::string_view url) {
  return detail::parse_or_throw<endpoint>(parse_endpoint, url);
}

std::string endpoint::to_string() const {
  std::string out;
  char sep = '?';
  auto param = [&](std::string_view name, std::string_view value, bool encode = true) {
    out.push_back(sep);
    sep = '&';
    out.append(name);
    out.push_back('=');
    if (encode) {
      percent_encode(value, out, true);
    } else {
      out.append(value);
    }
  };
  if (kind == transport::unix_socket) {
    out = "unix://";
    percent_encode(path, out, true);
    if (db != 0)
      param("db", std::to_string(db));
    if (!username.empty())
      param("user", username);
    if (!password.empty())
      param("password", "***", false);
    return out;
  }
  out = tls.enabled ? "rediss://" : "redis://";
  if (!username.empty() || !password.empty()) {
    percent_encode(username, out);
    if (!password.empty())
      out.append(":***");
    out.push_back('@');
  }
  if (host.find(':') != std::string::npos) {
    out.push_back('[');
    out.append(host);
    out.push_back(']');
  } else {
    out.append(host);
  }
  out.push_back(':');
  out.append(std::to_string(port));
  if (db != 0) {
    out.push_back('/');
    out.append(std::to_string(db));
  }
  if (tls.enabled) {
    if (!tls.ca_file.empty())
      param("ca", tls.ca_file);
    if (!tls.ca_dir.empty())
      param("ca_dir", tls.ca_dir);
    if (!tls.cert_file.empty())
      param("cert", tls.cert_file);
    if (!tls.key_file.empty())
      param("key", tls.key_file);
    if (!tls.server_name.empty())
      param("sni", tls.server_name);
    if (tls.insecure_skip_verify)
      param("insecure", "true");
  }
  return out;
}

}  // namespace redlock

#include "support/fault_fencing.hpp"

#include <algorithm>
#include <future>
#include <map>
#include <sstream>

#include "redlock/error.hpp"
#include "redlock/redis_node.hpp"
#include "support/io_thread.hpp"

namespace redlock::test {

namespace {

const char* write_letter(fenced_write w) {
  switch (w) {
    case fenced_write::accepted:
      return "a";
    case fenced_write::refused:
      return "r";
    case fenced_write::none:
      break;
  }
  return "n";
}

std::string describe(const fenced_section& s) {
  return "client " + std::to_string(s.section.client) + "'s section at " +
         std::to_string(s.section.start_ns) + " ns (token " + std::to_string(s.token) + ")";
}

}  // namespace

std::string fencing_result::summary() const {
  std::ostringstream o;
  o << sections << " sections, " << tokens_checked << " tokens checked (max " << max_token << "), "
    << accepted << " writes accepted, " << refused << " refused as stale; " << not_increasing
    << " not increasing, " << repeated << " repeated, " << stale_accepted
    << " stale writes accepted, " << unexplained_refusals << " unexplained refusals"
    << (unfenced ? ", " + std::to_string(unfenced) + " without a token" : std::string())
    << (store_mismatch ? ", the store's final token is not the highest accepted" : "");
  return o.str();
}

fencing_result check_fencing(std::vector<fenced_section> sections,
                             std::optional<std::uint64_t> final_store_token) {
  fencing_result r;
  r.sections = sections.size();
  auto note = [&r](const std::string& what) {
    if (r.first_problem.empty())
      r.first_problem = what;
  };
  std::sort(sections.begin(), sections.end(), [](const fenced_section& a, const fenced_section& b) {
    return a.section.start_ns < b.section.start_ns;
  });

  // (a) and (b): tokens in start order, and how often each was handed out.
  std::map<std::uint64_t, const fenced_section*> first_with;
  const fenced_section* prev = nullptr;
  for (const auto& s : sections) {
    if (s.token == 0) {
      ++r.unfenced;
      note(describe(s) + " has no fencing token");
      continue;
    }
    ++r.tokens_checked;
    r.max_token = std::max(r.max_token, s.token);
    if (prev != nullptr && s.token <= prev->token) {
      ++r.not_increasing;
      note(describe(s) + " started after " + describe(*prev) + " with a token that is not higher");
    }
    auto [it, fresh] = first_with.emplace(s.token, &s);
    if (!fresh) {
      ++r.repeated;
      note("token " + std::to_string(s.token) + " handed out twice: " + describe(*it->second) +
           " and " + describe(s));
    }
    prev = &s;
  }

  // (c): sweep the accepted writes by when they were sent, knowing the highest token among
  // the writes answered before that.
  std::vector<const fenced_section*> by_end, by_begin;
  for (const auto& s : sections) {
    if (s.write == fenced_write::accepted) {
      ++r.accepted;
      by_end.push_back(&s);
    } else if (s.write == fenced_write::refused) {
      ++r.refused;
    }
  }
  by_begin = by_end;
  std::sort(by_end.begin(), by_end.end(),
            [](auto* a, auto* b) { return a->write_end_ns < b->write_end_ns; });
  std::sort(by_begin.begin(), by_begin.end(),
            [](auto* a, auto* b) { return a->write_begin_ns < b->write_begin_ns; });
  const fenced_section* highest_before = nullptr;
  std::size_t j = 0;
  std::uint64_t max_accepted = 0;
  for (const auto* b : by_begin) {
    for (; j < by_end.size() && by_end[j]->write_end_ns < b->write_begin_ns; ++j)
      if (highest_before == nullptr || by_end[j]->token > highest_before->token)
        highest_before = by_end[j];
    if (highest_before != nullptr && b->token < highest_before->token) {
      ++r.stale_accepted;
      note("stale write accepted: " + describe(*b) + " wrote after the write of " +
           describe(*highest_before) + " had been accepted");
    }
    max_accepted = std::max(max_accepted, b->token);
  }

  // A refusal names the highest token; some accepted write must have carried it, sent before
  // the refusal came back.
  for (const auto& s : sections) {
    if (s.write != fenced_write::refused)
      continue;
    const bool explained = std::any_of(by_end.begin(), by_end.end(), [&s](const auto* a) {
      return a->token == s.highest && a->token > s.token && a->write_begin_ns < s.write_end_ns;
    });
    if (!explained) {
      ++r.unexplained_refusals;
      note(describe(s) + "'s write was refused for token " + std::to_string(s.highest) +
           ", which no accepted write had carried");
    }
  }

  if (final_store_token && *final_store_token != max_accepted) {
    r.store_mismatch = true;
    note("the store holds token " + std::to_string(*final_store_token) +
         " but the highest accepted write carried " + std::to_string(max_accepted));
  }
  return r;
}

std::vector<critical_section> acting_sections(const std::vector<fenced_section>& sections) {
  std::vector<critical_section> out;
  for (const auto& s : sections)
    if (s.write != fenced_write::none)
      out.push_back(s.section);
  return out;
}

std::string to_line(const fenced_section& s) {
  std::ostringstream o;
  o << to_line(s.section) << ' ' << s.token << ' ' << write_letter(s.write) << ' '
    << s.write_begin_ns << ' ' << s.write_end_ns << ' ' << s.highest;
  return o.str();
}

std::optional<fenced_section> parse_fenced_line(const std::string& line) {
  std::istringstream in(line);
  fenced_section s;
  auto& c = s.section;
  std::string w;
  if (!(in >> c.client >> c.start_ns >> c.end_ns >> c.read >> c.wrote >> s.token >> w >>
        s.write_begin_ns >> s.write_end_ns >> s.highest))
    return std::nullopt;
  if (w == "a")
    s.write = fenced_write::accepted;
  else if (w == "r")
    s.write = fenced_write::refused;
  else if (w == "n")
    s.write = fenced_write::none;
  else
    return std::nullopt;
  return s;
}

blocking_fenced_store::blocking_fenced_store(std::uint16_t port, std::string key,
                                             std::chrono::milliseconds timeout)
    : timeout_(timeout), io_(std::make_unique<io_thread>()) {
  endpoint ep;
  ep.port = port;
  connection_options o;
  o.connect_timeout = timeout;
  o.request_timeout = timeout;
  node_ = std::make_shared<redis_node>(io_->executor(), std::move(ep), o);
  store_ = std::make_unique<fenced_store>(io_->executor(), node_, std::move(key));
}

blocking_fenced_store::~blocking_fenced_store() {
  node_->close();
  io_->stop();
}

std::pair<std::error_code, fenced_value> blocking_fenced_store::read() {
  using outcome = std::pair<std::error_code, fenced_value>;
  auto p = std::make_shared<std::promise<outcome>>();
  auto f = p->get_future();
  store_->async_read([p](std::error_code ec, fenced_value v) { p->set_value({ec, std::move(v)}); });
  // The node's own timeout bounds the operation; this one only catches a lost completion.
  if (f.wait_for(timeout_ * 2 + std::chrono::seconds(1)) != std::future_status::ready)
    return {make_error_code(errc::timeout), {}};
  return f.get();
}

std::pair<std::error_code, fenced_write_result> blocking_fenced_store::write(std::uint64_t token,
                                                                             std::string value) {
  using outcome = std::pair<std::error_code, fenced_write_result>;
  auto p = std::make_shared<std::promise<outcome>>();
  auto f = p->get_future();
  store_->async_write(token, std::move(value), [p](std::error_code ec, fenced_write_result r) {
    p->set_value({ec, std::move(r)});
  });
  if (f.wait_for(timeout_ * 2 + std::chrono::seconds(1)) != std::future_status::ready)
    return {make_error_code(errc::timeout), {}};
  return f.get();
}

}  // namespace redlock::test

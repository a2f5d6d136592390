#include "json_report.hpp"

#include "exit_codes.hpp"
#include "output.hpp"

namespace redlock::cli {

void json_report::set_raw(const std::string& name, std::string raw) {
  for (auto& [n, v] : fields_) {
    if (n == name) {
      v = std::move(raw);
      return;
    }
  }
  fields_.emplace_back(name, std::move(raw));
}

void json_report::set_string(const std::string& name, std::string_view value) {
  set_raw(name, json_string(value));
}

void json_report::set_int(const std::string& name, std::int64_t value) {
  set_raw(name, std::to_string(value));
}

void json_report::set_bool(const std::string& name, bool value) {
  set_raw(name, value ? "true" : "false");
}

void json_report::set_null(const std::string& name) {
  set_raw(name, "null");
}

void json_report::set_strings(const std::string& name, const std::vector<std::string>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i)
    out += (i ? ", " : "") + json_string(values[i]);
  set_raw(name, out + "]");
}

void json_report::fail(const std::string& message) {
  if (!failure_)
    failure_ = message;
}

std::string exit_code_name(int code) {
  switch (code) {
    case exit_ok:
      return "ok";
    case exit_status_free:
      return "free";
    case exit_status_indeterminate:
      return "indeterminate";
    case exit_usage:
      return "usage";
    case exit_unavailable:
      return "unavailable";
    case exit_software:
      return "software";
    case exit_not_acquired:
      return "not_acquired";
    case exit_lost:
      return "lost";
    case exit_cannot_execute:
      return "cannot_execute";
    case exit_not_found:
      return "not_found";
    default:
      break;
  }
  return code > exit_signal_base ? "signal" : "other";
}

std::string json_report::render(int exit_code) const {
  const bool is_error = exit_code != exit_ok && !code_is_result;
  std::string out = "{\"schema\": 1, \"command\": ";
  out += command.empty() ? std::string("null") : json_string(command);
  out += ", \"ok\": ";
  out += is_error ? "false" : "true";
  out += ", \"exit_code\": " + std::to_string(exit_code) + ", \"error\": ";
  if (is_error) {
    out += "{\"code\": " + std::to_string(exit_code) +
           ", \"name\": " + json_string(exit_code_name(exit_code)) +
           ", \"message\": " + json_string(failure_.value_or(exit_code_name(exit_code))) + "}";
  } else {
    out += "null";
  }
  for (const auto& [n, v] : fields_)
    out += ", " + json_string(n) + ": " + v;
  return out + "}";
}

void json_report::print(std::FILE* out, int exit_code) const {
  const std::string line = render(exit_code) + "\n";
  std::fputs(line.c_str(), out);
  std::fflush(out);
}

json_report& invocation() {
  static json_report r;
  return r;
}

}  // namespace redlock::cli

// A blocking connection with a short timeout, for checking what the network does
// independently of the code under test (fault tests and the soak's register): the support
// kit's blocking_client with replies printed as strings.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "support/blocking_client.hpp"

namespace redlock::test {

class raw_client {
 public:
  raw_client(std::uint16_t port, std::chrono::milliseconds timeout)
      : client_("127.0.0.1", port, timeout) {}
  bool connected() const { return client_.connected(); }
  std::string error() const { return client_.error(); }
  /// The reply as a string ("(error) ..." for errors, "(nil)", integers in decimal), or
  /// nullopt on I/O failure or timeout.
  std::optional<std::string> command(const std::vector<std::string>& argv) {
    auto r = client_.command(argv);
    if (!r)
      return std::nullopt;
    switch (r->kind) {
      case reply::type::integer:
        return std::to_string(r->integer);
      case reply::type::nil:
        return "(nil)";
      case reply::type::error:
        return "(error) " + r->str;
      case reply::type::string:
      case reply::type::status:
        return r->str;
      case reply::type::array:
        break;
    }
    return "(array)";
  }

 private:
  blocking_client client_;
};

}  // namespace redlock::test

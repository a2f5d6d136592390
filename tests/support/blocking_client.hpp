// The one blocking Redis client of the tests (hiredis), for arranging and checking server
// state independently of the code under test.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "redlock/reply.hpp"

struct redisContext;

namespace redlock::test {

/// One connection. Every command is bounded by the timeout given at connect.
/// Distinct objects: safe. Shared objects: unsafe.
class blocking_client {
 public:
  /// Connects over TCP to host:port, or over the Unix socket `unix_path` when it is nonempty
  /// (which works even when the server runs in another network namespace). Never throws:
  /// check connected().
  blocking_client(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout,
                  const std::string& unix_path = {});
  ~blocking_client();
  blocking_client(blocking_client&&) noexcept;
  blocking_client& operator=(blocking_client&&) noexcept;

  /// False when the connect failed, or after an I/O failure or timeout.
  bool connected() const noexcept;
  /// Why the connect or the last command failed.
  std::string error() const;
  /// The reply (error replies included), or nullopt on I/O failure or timeout.
  std::optional<reply> command(const std::vector<std::string>& argv);
  /// The reply; throws std::runtime_error naming `what` on I/O failure or timeout.
  reply command_or_throw(const std::vector<std::string>& argv, const std::string& what);

 private:
  struct context_deleter {
    void operator()(redisContext* c) const noexcept;
  };
  std::unique_ptr<redisContext, context_deleter> ctx_;
  std::string error_;
};

}  // namespace redlock::test

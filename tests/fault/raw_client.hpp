// A blocking hiredis connection with a short timeout, for checking what the network does
// independently of the code under test (fault tests and the soak's register).
#pragma once

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace redlock::test {

class raw_client {
 public:
  raw_client(std::uint16_t port, std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ctx_.reset(redisConnectWithTimeout("127.0.0.1", port, tv));
    if (ctx_ && ctx_->err == 0)
      redisSetTimeout(ctx_.get(), tv);
  }
  bool connected() const { return ctx_ && ctx_->err == 0; }
  std::string error() const { return ctx_ ? ctx_->errstr : "no context"; }
  /// The reply as a string ("(error) ..." for errors, "(nil)", integers in decimal), or
  /// nullopt on I/O failure or timeout.
  std::optional<std::string> command(const std::vector<std::string>& argv) {
    if (!connected())
      return std::nullopt;
    std::vector<const char*> a;
    std::vector<size_t> l;
    for (const auto& s : argv) {
      a.push_back(s.data());
      l.push_back(s.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(ctx_.get(), static_cast<int>(a.size()), a.data(), l.data()));
    if (r == nullptr)
      return std::nullopt;
    std::string out;
    switch (r->type) {
      case REDIS_REPLY_INTEGER:
        out = std::to_string(r->integer);
        break;
      case REDIS_REPLY_NIL:
        out = "(nil)";
        break;
      case REDIS_REPLY_ERROR:
        out = "(error) " + std::string(r->str, r->len);
        break;
      case REDIS_REPLY_STRING:
      case REDIS_REPLY_STATUS:
        out = std::string(r->str, r->len);
        break;
      default:
        out = "(array)";
    }
    freeReplyObject(r);
    return out;
  }

 private:
  struct free_ctx {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  std::unique_ptr<redisContext, free_ctx> ctx_;
};

}  // namespace redlock::test
